//! The OpenStack Block Storage v3 API (HTTP, keystone and noauth). Only crate that knows
//! HTTP and OpenStack JSON. Today it serves the versions documents and the scheduler's
//! pools view (`scheduler-stats/get_pools`); the rest of the v3 API arrives with its
//! own issue.
//!
//! # Layout
//! - [`error`]: OpenStack's error format.
//! - [`microversion`]: the `OpenStack-API-Version` header.
//! - [`context`]: the caller (noauth tokens).
//! - [`request_id`]: `x-openstack-request-id` on every response.
//! - `versions`: `GET /`, `GET /v3/`.
//! - `scheduler_stats`: `GET .../scheduler-stats/get_pools`.
#![warn(missing_docs)]

pub mod context;
pub mod error;
pub mod microversion;
pub mod request_id;
mod scheduler_stats;
mod versions;

use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use cinder_common::service::{CommonSettings, ServiceConfig};
use cinder_common::shutdown::CancellationToken;
use serde::Deserialize;

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// `address:port` the API listens on. Default `127.0.0.1:8776`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Seconds the API waits for a call to another service (Cinder's
    /// `rpc_response_timeout`). Default 60.
    #[serde(default = "default_rpc_timeout")]
    pub rpc_response_timeout: u64,
    /// `noauth` (the default, for development: `X-Auth-Token: user:project`, the user
    /// `admin` an admin). Keystone arrives with the rest of the API.
    #[serde(default = "default_auth")]
    pub auth_strategy: String,
    /// The base URL clients reach the API at, for the versions documents' links (Cinder's
    /// `public_endpoint`); unset: the request's own host.
    #[serde(default)]
    pub public_endpoint: Option<String>,
}

fn default_auth() -> String {
    "noauth".into()
}

fn default_listen() -> String {
    "127.0.0.1:8776".into()
}
fn default_rpc_timeout() -> u64 {
    60
}

impl ApiSettings {
    fn defaults() -> Self {
        ApiSettings {
            listen: default_listen(),
            rpc_response_timeout: default_rpc_timeout(),
            auth_strategy: default_auth(),
            public_endpoint: None,
        }
    }
}

/// This binary's configuration.
#[derive(Debug, Deserialize)]
pub struct Settings {
    /// `[service]`, `[database]`, `[amqp]`, `[logging]`.
    #[serde(flatten)]
    pub common: CommonSettings,
    /// `[api]`.
    #[serde(default = "ApiSettings::defaults")]
    pub api: ApiSettings,
}

impl ServiceConfig for Settings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) db: cinder_db::Db,
    pub(crate) rpc: Arc<cinder_rpc::Caster>,
    pub(crate) scheduler_topic: String,
    pub(crate) rpc_timeout_secs: u64,
    pub(crate) listen: String,
    pub(crate) public_endpoint: Option<String>,
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(versions::all))
        .route("/v3", get(versions::v3))
        .route("/v3/", get(versions::v3))
        .route(
            "/v3/{project_id}/scheduler-stats/get_pools",
            get(scheduler_stats::get_pools),
        )
        .route(
            "/v3/scheduler-stats/get_pools",
            get(scheduler_stats::get_pools),
        )
        .with_state(state)
        .layer(axum::middleware::from_fn(request_id::assign))
}

/// Runs until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    if settings.api.auth_strategy != "noauth" {
        anyhow::bail!(
            "[api] auth_strategy {:?}: only \"noauth\" is served so far (keystone arrives with the v3 API)",
            settings.api.auth_strategy
        );
    }
    let db = cinder_db::Db::connect_checked(settings.common.database.connection.expose()).await?;
    let amqp = &settings.common.amqp;
    let state = AppState {
        db,
        rpc: Arc::new(cinder_rpc::Caster::new(amqp.transport_url.expose())),
        scheduler_topic: amqp.scheduler_topic.clone(),
        rpc_timeout_secs: settings.api.rpc_response_timeout,
        listen: settings.api.listen.clone(),
        public_endpoint: settings.api.public_endpoint.clone(),
    };
    let listener = tokio::net::TcpListener::bind(&settings.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.api.listen))?;
    tracing::info!(listen = %settings.api.listen, "cinder-api serving (versions and scheduler-stats only: the v3 API arrives with its own issue)");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
