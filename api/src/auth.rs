//! Who calls: `[api] auth_strategy`. `noauth` reads `X-Auth-Token: user:project` (no
//! colon: the project is the user; the user `admin` is an admin, any other user a member
//! of its project). `keystone` validates the token against Keystone's
//! `GET /v3/auth/tokens` with the service credentials of `[keystone_authtoken]`, as
//! keystonemiddleware does, and caches each answer (valid or not) for at most
//! `token_cache_time` seconds and never past the token's expiry, in a cache of at most
//! `token_cache_size` tokens. A token Keystone does not know, expired or revoked gets
//! 401; Keystone unreachable gets 503 (nothing cached).
//!
//! The middleware [`authenticate`] puts the caller's [`Identity`] into the request; the
//! [`crate::context::Context`] extractor applies the policy (reader, member, admin).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cinder_common::settings::Secret;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// The caller, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Role names (Keystone lists implied roles too: `admin` implies `member` implies
    /// `reader`).
    pub roles: Vec<String>,
}

impl Identity {
    /// The identity of a noauth token.
    pub fn from_noauth_token(token: &str) -> Identity {
        let (user, project) = token.split_once(':').unwrap_or((token, token));
        let roles: &[&str] = if user == "admin" {
            &["admin", "member", "reader"]
        } else {
            &["member", "reader"]
        };
        Identity {
            user_id: user.to_string(),
            project_id: project.to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// `[keystone_authtoken]`: how the API reaches Keystone (keystonemiddleware's option
/// names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneSettings {
    /// Keystone's URL (with or without `/v3`), e.g. `http://127.0.0.1:5000/v3`.
    pub auth_url: String,
    /// The service user that validates tokens. Needs the `service` or `admin` role.
    pub username: String,
    /// Its password.
    pub password: Secret,
    /// Its project. Default `service`.
    #[serde(default = "default_service_project")]
    pub project_name: String,
    /// The user's domain. Default `Default`.
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    /// The project's domain. Default `Default`.
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    /// Seconds an answer about a token is reused (keystonemiddleware's default 300):
    /// a revoked token is refused at most this long after its revocation.
    #[serde(default = "default_cache_time")]
    pub token_cache_time: u64,
    /// Most tokens remembered. Default 10000.
    #[serde(default = "default_cache_size")]
    pub token_cache_size: usize,
    /// Seconds a request to Keystone may take. Default 10.
    #[serde(default = "default_timeout")]
    pub http_request_timeout: u64,
}

fn default_service_project() -> String {
    "service".into()
}
fn default_domain() -> String {
    "Default".into()
}
fn default_cache_time() -> u64 {
    300
}
fn default_cache_size() -> usize {
    10_000
}
fn default_timeout() -> u64 {
    10
}

/// How tokens are read.
#[derive(Clone)]
pub enum Authenticator {
    /// `user:project` tokens.
    NoAuth,
    /// Keystone tokens.
    Keystone(Arc<Keystone>),
}

impl Authenticator {
    /// The identity behind `token`.
    pub async fn identify(&self, token: &str) -> Result<Identity, ApiError> {
        match self {
            Authenticator::NoAuth => Ok(Identity::from_noauth_token(token)),
            Authenticator::Keystone(k) => k.identify(token).await,
        }
    }
}

/// A remembered answer about one token.
struct Cached {
    answer: Option<Identity>,
    until: Instant,
}

/// Keystone's token validation, with the service token and the cache.
pub struct Keystone {
    settings: KeystoneSettings,
    /// `.../v3`.
    base: String,
    http: reqwest::Client,
    /// The service's own token and when to renew it.
    service_token: tokio::sync::Mutex<Option<(String, Instant)>>,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Why a validation did not give an answer.
enum Failure {
    /// Our service token was refused: renew it and ask again.
    ServiceToken,
    /// Keystone failed or is unreachable.
    Unavailable(String),
}

impl Keystone {
    /// A validator for `settings` (no request is made yet).
    pub fn new(settings: KeystoneSettings) -> anyhow::Result<Keystone> {
        let url = settings.auth_url.trim_end_matches('/');
        let base = if url.ends_with("/v3") {
            url.to_string()
        } else {
            format!("{url}/v3")
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.http_request_timeout.max(1)))
            .build()?;
        Ok(Keystone {
            settings,
            base,
            http,
            service_token: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The identity behind `token`: from the cache, or from Keystone.
    pub async fn identify(&self, token: &str) -> Result<Identity, ApiError> {
        if let Some(answer) = self.cached(token) {
            return answer.ok_or_else(invalid_token);
        }
        let mut renewed = false;
        let answer = loop {
            let service = self.service_token(renewed).await?;
            match self.validate(&service, token).await {
                Ok(answer) => break answer,
                Err(Failure::ServiceToken) if !renewed => renewed = true,
                Err(Failure::ServiceToken) => {
                    return Err(unavailable(
                        "identity service: our service credentials are refused",
                    ))
                }
                Err(Failure::Unavailable(why)) => return Err(unavailable(&why)),
            }
        };
        self.remember(token, &answer);
        answer
            .map(|(identity, _)| identity)
            .ok_or_else(invalid_token)
    }

    fn cached(&self, token: &str) -> Option<Option<Identity>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(token)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.answer.clone())
    }

    fn remember(&self, token: &str, answer: &Option<(Identity, Duration)>) {
        let now = Instant::now();
        let mut ttl = Duration::from_secs(self.settings.token_cache_time);
        if let Some((_, left)) = answer {
            ttl = ttl.min(*left);
        }
        if ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.settings.token_cache_size.max(1) {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= self.settings.token_cache_size.max(1) {
                cache.clear();
            }
        }
        cache.insert(
            token.to_string(),
            Cached {
                answer: answer.as_ref().map(|(i, _)| i.clone()),
                until: now + ttl,
            },
        );
    }

    /// Our own token; a new one when `renew` or when it is close to expiry.
    async fn service_token(&self, renew: bool) -> Result<String, ApiError> {
        let mut held = self.service_token.lock().await;
        if let Some((token, until)) = held.as_ref() {
            if !renew && *until > Instant::now() {
                return Ok(token.clone());
            }
        }
        let s = &self.settings;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": s.username,
                "domain": {"name": s.user_domain_name},
                "password": s.password.expose(),
            }}},
            "scope": {"project": {
                "name": s.project_name,
                "domain": {"name": s.project_domain_name},
            }},
        }});
        let request = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.base))
            .json(&body);
        let r = send_retrying(request)
            .await
            .map_err(|e| unavailable(&format!("identity service: {e}")))?;
        let status = r.status();
        let token = r
            .headers()
            .get("x-subject-token")
            .and_then(|t| t.to_str().ok())
            .map(str::to_string);
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let token = match token {
            Some(t) if status.is_success() => t,
            _ => {
                tracing::error!(%status, user = %s.username, "Keystone refuses the service credentials of [keystone_authtoken]");
                return Err(unavailable(
                    "identity service: our service credentials are refused",
                ));
            }
        };
        // Renew a minute before expiry (or halfway for short-lived tokens).
        let left = time_left(&v["token"]["expires_at"]).unwrap_or(Duration::from_secs(600));
        let renew_in = left.saturating_sub(Duration::from_secs(60)).max(left / 2);
        *held = Some((token.clone(), Instant::now() + renew_in));
        Ok(token)
    }

    /// Keystone's answer about `token`: its identity and time left, or `None` when
    /// Keystone does not accept it.
    async fn validate(
        &self,
        service: &str,
        token: &str,
    ) -> Result<Option<(Identity, Duration)>, Failure> {
        if token.len() > 8192 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Ok(None);
        }
        let request = self
            .http
            .get(format!("{}/auth/tokens?nocatalog", self.base))
            .header("X-Auth-Token", service)
            .header("X-Subject-Token", token);
        let r = send_retrying(request)
            .await
            .map_err(|e| Failure::Unavailable(format!("identity service: {e}")))?;
        match r.status().as_u16() {
            200 => {}
            // Unknown, malformed, expired or revoked.
            400 | 404 => return Ok(None),
            401 => return Err(Failure::ServiceToken),
            403 => {
                tracing::error!(user = %self.settings.username, "Keystone does not let the service user validate tokens: give it the service role");
                return Err(Failure::Unavailable(
                    "identity service: our service user may not validate tokens".into(),
                ));
            }
            s => {
                return Err(Failure::Unavailable(format!(
                    "identity service: answered {s}"
                )))
            }
        }
        let v: Value = r.json().await.map_err(|e| {
            Failure::Unavailable(format!("identity service: unreadable answer: {e}"))
        })?;
        Ok(identity_of(&v["token"]))
    }
}

/// Sends `request`, once more when the first attempt fails in transport (a kept-alive
/// connection the server has closed meanwhile, as uWSGI does): both requests to
/// Keystone are safe to repeat.
async fn send_retrying(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let again = request.try_clone();
    match request.send().await {
        Err(e) if !e.is_timeout() => match again {
            Some(again) => again.send().await,
            None => Err(e),
        },
        r => r,
    }
}

/// The identity in a validated token's body, and its time left; `None` for tokens this
/// API cannot serve (not scoped to a project, already expired).
fn identity_of(t: &Value) -> Option<(Identity, Duration)> {
    let left = time_left(&t["expires_at"])?;
    let user_id = t["user"]["id"].as_str()?.to_string();
    let project_id = t["project"]["id"].as_str()?.to_string();
    let roles = t["roles"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["name"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some((
        Identity {
            user_id,
            project_id,
            roles,
        },
        left,
    ))
}

/// Time until `expires_at` (Keystone's `2026-12-04T17:01:21.000000Z`); `None` when
/// absent, malformed or past.
fn time_left(expires_at: &Value) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(expires_at.as_str()?).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
        .filter(|d| !d.is_zero())
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized("The request you have made requires authentication.")
}

fn unavailable(why: &str) -> ApiError {
    tracing::warn!(why, "token validation failed");
    ApiError::unavailable(format!(
        "The server is currently unavailable ({why}). Please try again at a later time."
    ))
}

/// Identifies the caller of every v3 route that carries `X-Auth-Token`; refuses a token
/// that names no one with 401. Requests without a token pass: the handlers that need a
/// caller refuse them.
pub async fn authenticate(
    State(auth): State<Authenticator>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|t| t.to_str().ok())
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if let Some(token) = token {
        match auth.identify(&token).await {
            Ok(identity) => {
                req.extensions_mut().insert(identity);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noauth_tokens_name_user_and_project_and_only_admin_holds_the_admin_role() {
        let c = Identity::from_noauth_token("alice:p1");
        assert_eq!((c.user_id.as_str(), c.project_id.as_str()), ("alice", "p1"));
        assert!(c.has_role("member") && !c.has_role("admin"));
        let a = Identity::from_noauth_token("admin");
        assert_eq!(a.project_id, "admin");
        assert!(a.has_role("admin"));
    }

    #[test]
    fn a_validated_token_body_gives_user_project_roles_and_time_left() {
        let at = (chrono::Utc::now() + chrono::Duration::hours(1))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let t = json!({"expires_at": at, "user": {"id": "u1", "name": "alice"},
            "project": {"id": "p1", "name": "one"},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}]});
        let (i, left) = identity_of(&t).unwrap();
        assert_eq!(
            i,
            Identity {
                user_id: "u1".into(),
                project_id: "p1".into(),
                roles: vec!["member".into(), "reader".into()],
            }
        );
        assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
        let mut unscoped = t.clone();
        unscoped.as_object_mut().unwrap().remove("project");
        assert!(identity_of(&unscoped).is_none());
        let mut past = t;
        past["expires_at"] = json!("2020-01-01T00:00:00.000000Z");
        assert!(identity_of(&past).is_none());
    }
}
