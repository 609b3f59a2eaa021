//! The OpenStack Block Storage v3 API (HTTP, keystone and noauth). Only crate that knows
//! HTTP and OpenStack JSON.
//!
//! # Layout
//! - [`error`]: OpenStack's error format.
//! - [`microversion`]: the `OpenStack-API-Version` header.
//! - [`auth`]: tokens (noauth, Keystone) into identities.
//! - [`context`]: the caller and the policy of reader, member and admin.
//! - [`request_id`]: `x-openstack-request-id` on every response.
//! - [`request`]: the project-less paths (3.67), the microversion layer, [`request::Req`].
//! - [`body`], [`schema`]: request bodies and their JSON schemas.
//! - [`listing`]: `limit`/`marker`/`sort`/`offset`/`with_count`, next links.
//! - `views`: the JSON of volumes and snapshots.
//! - `versions`, `volumes`, `actions`, `attachments`, `snapshots`, `types`, `manage`,
//!   `quotas` (quota sets, limits), `services` (services, zones, capabilities, user
//!   messages), `scheduler_stats`: the routes.
#![warn(missing_docs)]

mod actions;
mod attachments;
pub mod auth;
mod backups;
pub mod body;
pub mod context;
pub mod error;
mod images;
pub mod listing;
mod manage;
pub mod microversion;
mod quotas;
pub mod request;
pub mod request_id;
mod scheduler_stats;
pub mod schema;
mod services;
mod snapshots;
mod types;
mod versions;
mod views;
mod volumes;

use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
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
    /// `admin` an admin) or `keystone` (tokens validated by the Keystone of
    /// `[keystone_authtoken]`).
    #[serde(default = "default_auth")]
    pub auth_strategy: String,
    /// The base URL clients reach the API at, for the versions documents' links (Cinder's
    /// `public_endpoint`); unset: the request's own host.
    #[serde(default)]
    pub public_endpoint: Option<String>,
    /// Largest request body accepted, in bytes (Cinder's `osapi_max_request_body_size`;
    /// 413 beyond). Default 114688.
    #[serde(default = "default_max_body")]
    pub osapi_max_request_body_size: usize,
    /// Most items a list returns (Cinder's `osapi_max_limit`). Default 1000.
    #[serde(default = "default_max_limit")]
    pub osapi_max_limit: u64,
    /// The type of volumes created without one (Cinder's `default_volume_type`).
    /// Default `__DEFAULT__`, which the schema creates.
    #[serde(default = "default_type")]
    pub default_volume_type: String,
    /// Whether `os-volume_upload_image` with `force` may upload an `in-use` volume
    /// (Cinder's `enable_force_upload`; without it `force` is ignored). Default false.
    #[serde(default)]
    pub enable_force_upload: bool,
}

fn default_max_body() -> usize {
    114_688
}
fn default_max_limit() -> u64 {
    1000
}
fn default_type() -> String {
    "__DEFAULT__".into()
}

/// `[quota]`: the default limits (Cinder's `quota_*` options) for projects with none of
/// their own; -1 is unlimited.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    /// Volumes per project. Default 10.
    #[serde(default = "ten")]
    pub volumes: i64,
    /// Snapshots per project. Default 10.
    #[serde(default = "ten")]
    pub snapshots: i64,
    /// GiB of volumes and snapshots per project. Default 1000.
    #[serde(default = "thousand")]
    pub gigabytes: i64,
    /// Backups per project. Default 10.
    #[serde(default = "ten")]
    pub backups: i64,
    /// GiB of backups per project. Default 1000.
    #[serde(default = "thousand")]
    pub backup_gigabytes: i64,
    /// Largest single volume, GiB (Cinder's `per_volume_size_limit`). Default -1.
    #[serde(default = "unlimited")]
    pub per_volume_gigabytes: i64,
    /// Seconds before an unfinished reservation is given back. Default 86400.
    #[serde(default = "day")]
    pub reservation_expire: u64,
}

fn ten() -> i64 {
    10
}
fn thousand() -> i64 {
    1000
}
fn unlimited() -> i64 {
    -1
}
fn day() -> u64 {
    86_400
}

impl QuotaSettings {
    fn defaults_section() -> Self {
        QuotaSettings {
            volumes: ten(),
            snapshots: ten(),
            gigabytes: thousand(),
            backups: ten(),
            backup_gigabytes: thousand(),
            per_volume_gigabytes: unlimited(),
            reservation_expire: day(),
        }
    }

    /// The limits a project without its own has.
    pub fn defaults(&self) -> cinder_db::QuotaLimits {
        [
            ("volumes", self.volumes),
            ("snapshots", self.snapshots),
            ("gigabytes", self.gigabytes),
            ("backups", self.backups),
            ("backup_gigabytes", self.backup_gigabytes),
            ("per_volume_gigabytes", self.per_volume_gigabytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
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
            osapi_max_request_body_size: default_max_body(),
            osapi_max_limit: default_max_limit(),
            default_volume_type: default_type(),
            enable_force_upload: false,
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
    /// `[quota]`.
    #[serde(default = "QuotaSettings::defaults_section")]
    pub quota: QuotaSettings,
    /// `[keystone_authtoken]`, for `auth_strategy = "keystone"`.
    #[serde(default)]
    pub keystone_authtoken: Option<auth::KeystoneSettings>,
    /// `[glance]`: the image service volumes are made from and uploaded to.
    #[serde(default)]
    pub glance: cinder_common::settings::GlanceSettings,
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
    pub(crate) max_body: usize,
    pub(crate) max_limit: u64,
    pub(crate) default_volume_type: String,
    pub(crate) default_az: String,
    pub(crate) quota: QuotaSettings,
    pub(crate) service_down_time: u64,
    /// The image service; `None` without `[glance] api_servers`.
    pub(crate) glance: Option<cinder_glance::Glance>,
    /// `[api] enable_force_upload`.
    pub(crate) enable_force_upload: bool,
}

async fn no_route() -> ApiError {
    ApiError::not_found("The resource could not be found.")
}

fn v3_routes(auth: auth::Authenticator) -> Router<AppState> {
    use axum::routing::post;
    Router::new()
        .route("/v3/volumes", get(volumes::index).post(volumes::create))
        .route("/v3/volumes/detail", get(volumes::detail))
        .route("/v3/volumes/summary", get(volumes::summary))
        .route(
            "/v3/volumes/{id}",
            get(volumes::show)
                .put(volumes::update)
                .delete(volumes::delete),
        )
        .route(
            "/v3/volumes/{id}/metadata",
            get(volumes::metadata_show)
                .post(volumes::metadata_update)
                .put(volumes::metadata_replace),
        )
        .route(
            "/v3/volumes/{id}/metadata/{key}",
            get(volumes::metadata_item)
                .put(volumes::metadata_item_set)
                .delete(volumes::metadata_item_delete),
        )
        .route("/v3/volumes/{id}/action", post(actions::volume_action))
        .route("/v3/snapshots/{id}/action", post(actions::snapshot_action))
        .route(
            "/v3/attachments",
            get(attachments::index).post(attachments::create),
        )
        .route("/v3/attachments/detail", get(attachments::index_detail))
        .route(
            "/v3/attachments/{id}",
            get(attachments::show)
                .put(attachments::update)
                .delete(attachments::delete),
        )
        .route("/v3/attachments/{id}/action", post(attachments::action))
        .route("/v3/os-volume-manage", post(manage::manage))
        .route(
            "/v3/os-quota-sets/{project}",
            get(quotas::show).put(quotas::update).delete(quotas::delete),
        )
        .route(
            "/v3/os-quota-sets/{project}/defaults",
            get(quotas::defaults),
        )
        .route("/v3/limits", get(quotas::limits))
        .route("/v3/os-services", get(services::index))
        .route(
            "/v3/os-services/{action}",
            axum::routing::put(services::update),
        )
        .route("/v3/os-availability-zone", get(services::zones))
        .route("/v3/capabilities/{host}", get(services::capabilities))
        .route("/v3/messages", get(services::messages))
        .route(
            "/v3/messages/{id}",
            get(services::message).delete(services::delete_message),
        )
        .route(
            "/v3/manageable_volumes",
            get(manage::manageable).post(manage::manage),
        )
        .route("/v3/manageable_volumes/detail", get(manage::manageable))
        .route(
            "/v3/snapshots",
            get(snapshots::index).post(snapshots::create),
        )
        .route("/v3/snapshots/detail", get(snapshots::index))
        .route(
            "/v3/snapshots/{id}",
            get(snapshots::show)
                .put(snapshots::update)
                .delete(snapshots::delete),
        )
        .route(
            "/v3/snapshots/{id}/metadata",
            get(snapshots::metadata_show)
                .post(snapshots::metadata_update)
                .put(snapshots::metadata_replace),
        )
        .route(
            "/v3/snapshots/{id}/metadata/{key}",
            axum::routing::delete(snapshots::metadata_item_delete),
        )
        .route("/v3/types", get(types::index).post(types::create))
        .route(
            "/v3/types/{id}",
            get(types::show).put(types::update).delete(types::delete),
        )
        .route(
            "/v3/types/{id}/extra_specs",
            get(types::specs_index).post(types::specs_create),
        )
        .route(
            "/v3/types/{id}/extra_specs/{key}",
            get(types::spec_show)
                .put(types::spec_set)
                .delete(types::spec_delete),
        )
        .route("/v3/types/{id}/action", post(types::action))
        .route("/v3/default-types", get(types::default_index))
        .route(
            "/v3/default-types/{project}",
            get(types::default_show)
                .put(types::default_set)
                .delete(types::default_unset),
        )
        .route(
            "/v3/types/{id}/os-volume-type-access",
            get(types::access_list),
        )
        .route(
            "/v3/scheduler-stats/get_pools",
            get(scheduler_stats::get_pools),
        )
        .route("/v3/backups", get(backups::index).post(backups::create))
        .route("/v3/backups/detail", get(backups::detail_index))
        .route("/v3/backups/import_record", post(backups::import_record))
        .route(
            "/v3/backups/{id}",
            get(backups::show)
                .put(backups::update)
                .delete(backups::delete),
        )
        .route("/v3/backups/{id}/restore", post(backups::restore))
        .route("/v3/backups/{id}/action", post(backups::action))
        .route(
            "/v3/backups/{id}/export_record",
            get(backups::export_record),
        )
        .route_layer(axum::middleware::from_fn(request::microversion))
        .route_layer(axum::middleware::from_fn_with_state(
            auth,
            auth::authenticate,
        ))
}

fn router(state: AppState, auth: auth::Authenticator) -> Router {
    let inner = Router::new()
        .route("/", get(versions::all))
        .route("/v3", get(versions::v3))
        .route("/v3/", get(versions::v3))
        .merge(v3_routes(auth))
        .fallback(no_route)
        .with_state(state)
        .layer(axum::middleware::from_fn(request_id::assign));
    // Project-less paths (3.67): the project segment goes before routing, so the outer
    // router only hands every request, rewritten, to the inner one.
    Router::new()
        .fallback_service(inner)
        .layer(axum::middleware::from_fn(request::strip_project))
}

/// Runs until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let auth = match (
        settings.api.auth_strategy.as_str(),
        &settings.keystone_authtoken,
    ) {
        ("noauth", _) => auth::Authenticator::NoAuth,
        ("keystone", Some(k)) => {
            tracing::info!(auth_url = %k.auth_url, user = %k.username, "tokens are validated by Keystone");
            auth::Authenticator::Keystone(Arc::new(auth::Keystone::new(k.clone())?))
        }
        ("keystone", None) => anyhow::bail!(
            "[api] auth_strategy = \"keystone\" needs a [keystone_authtoken] section (auth_url, username, password)"
        ),
        (other, _) => anyhow::bail!(
            "[api] auth_strategy {other:?}: \"noauth\" or \"keystone\""
        ),
    };
    let db = cinder_db::Db::connect_checked(settings.common.database.connection.expose()).await?;
    let amqp = &settings.common.amqp;
    let state = AppState {
        db,
        rpc: Arc::new(cinder_rpc::Caster::new(amqp.transport_url.expose())),
        scheduler_topic: amqp.scheduler_topic.clone(),
        rpc_timeout_secs: settings.api.rpc_response_timeout,
        listen: settings.api.listen.clone(),
        public_endpoint: settings.api.public_endpoint.clone(),
        max_body: settings.api.osapi_max_request_body_size,
        max_limit: settings.api.osapi_max_limit.max(1),
        default_volume_type: settings.api.default_volume_type.clone(),
        default_az: settings.common.service.storage_availability_zone.clone(),
        quota: settings.quota.clone(),
        service_down_time: settings.common.service.service_down_time,
        enable_force_upload: settings.api.enable_force_upload,
        glance: cinder_glance::Glance::from_settings(&settings.glance)?,
    };
    let listener = tokio::net::TcpListener::bind(&settings.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.api.listen))?;
    tracing::info!(listen = %settings.api.listen, "cinder-api serving");
    axum::serve(listener, router(state, auth))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
