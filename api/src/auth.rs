//! Who calls: `[api] auth_strategy`. `noauth` reads `X-Auth-Token: user:project` (no
//! colon: the project is the user; the user `admin` is an admin, any other user a member
//! of its project). `keystone` validates the token against Keystone's
//! `GET /v3/auth/tokens` with the service credentials of `[keystone_authtoken]`, as
//! keystonemiddleware does, and caches each answer (valid or not) for at most
//! `token_cache_time` seconds and never past the token's expiry, in a cache of at most
//! `token_cache_size` tokens keyed by the token's SHA-256. A token Keystone does not
//! know, expired or revoked gets 401, and so does one that cannot be a token (too long,
//! odd bytes) without asking Keystone or taking a cache entry; Keystone unreachable or
//! answering nonsense gets 503 (nothing cached). Role names compare without case, as
//! oslo.policy's `role:` checks do. An `https://` `auth_url` is verified against the
//! system's trusted certificates (OpenSSL's), or the `cafile` bundle; `insecure = true`
//! skips the verification, as keystonemiddleware's option of that name does.
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

    /// Whether the caller holds `role` (case-insensitive, as oslo.policy).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
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
    /// PEM bundle of the CAs that sign Keystone's HTTPS certificate, trusted besides
    /// the system's. Unset: the system's only.
    #[serde(default)]
    pub cafile: Option<String>,
    /// Skip the verification of Keystone's HTTPS certificate. Default false.
    #[serde(default)]
    pub insecure: bool,
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

/// The SHA-256 of a token: what the cache keeps instead of the token.
type TokenKey = [u8; 32];

fn key_of(token: &str) -> TokenKey {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Whether `token` could be a token at all (Fernet and JWS tokens are a few hundred
/// printable ASCII bytes).
fn plausible(token: &str) -> bool {
    token.len() <= 8192 && token.bytes().all(|b| b.is_ascii_graphic())
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
    cache: Mutex<HashMap<TokenKey, Cached>>,
}

/// Why a validation did not give an answer.
enum Failure {
    /// Our service token was refused: renew it and ask again.
    ServiceToken,
    /// Keystone failed, is unreachable or answered nonsense.
    Unavailable(String),
}

impl Keystone {
    /// A validator for `settings` (no request is made yet).
    pub fn new(settings: KeystoneSettings) -> anyhow::Result<Keystone> {
        let url = settings.auth_url.trim_end_matches('/');
        if !url.starts_with("http://") && !url.starts_with("https://") {
            anyhow::bail!(
                "[keystone_authtoken] auth_url {url:?} is not an http:// or https:// URL"
            );
        }
        let base = if url.ends_with("/v3") {
            url.to_string()
        } else {
            format!("{url}/v3")
        };
        if settings.insecure && url.starts_with("https://") {
            tracing::warn!(auth_url = %url, "[keystone_authtoken] insecure = true: Keystone's certificate is not verified");
        }
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.http_request_timeout.max(1)))
            .danger_accept_invalid_certs(settings.insecure);
        if let Some(path) = &settings.cafile {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("[keystone_authtoken] cafile {path}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow::anyhow!("[keystone_authtoken] cafile {path}: not a PEM bundle: {e}")
            })?;
            if certs.is_empty() {
                anyhow::bail!("[keystone_authtoken] cafile {path}: no certificate in it");
            }
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        let http = http.build()?;
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
        if !plausible(token) {
            return Err(invalid_token());
        }
        let key = key_of(token);
        if let Some(answer) = self.cached(&key) {
            return answer.ok_or_else(invalid_token);
        }
        let mut refused = None;
        let answer = loop {
            let service = self.service_token(refused.as_deref()).await?;
            match self.validate(&service, token).await {
                Ok(answer) => break answer,
                Err(Failure::ServiceToken) if refused.is_none() => refused = Some(service),
                Err(Failure::ServiceToken) => {
                    return Err(unavailable(
                        "identity service: our service credentials are refused",
                    ))
                }
                Err(Failure::Unavailable(why)) => return Err(unavailable(&why)),
            }
        };
        self.remember(key, &answer);
        answer
            .map(|(identity, _)| identity)
            .ok_or_else(invalid_token)
    }

    fn cached(&self, key: &TokenKey) -> Option<Option<Identity>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.answer.clone())
    }

    fn remember(&self, key: TokenKey, answer: &Option<(Identity, Duration)>) {
        let now = Instant::now();
        let mut ttl = Duration::from_secs(self.settings.token_cache_time);
        if let Some((_, left)) = answer {
            ttl = ttl.min(*left);
        }
        if ttl.is_zero() {
            return;
        }
        let cap = self.settings.token_cache_size.max(1);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= cap {
            cache.retain(|_, c| c.until > now);
        }
        if cache.len() >= cap {
            // Still full of live answers: forget the quarter closest to their end.
            let mut ends: Vec<Instant> = cache.values().map(|c| c.until).collect();
            ends.sort_unstable();
            let cut = ends[ends.len() / 4];
            cache.retain(|_, c| c.until > cut);
        }
        cache.insert(
            key,
            Cached {
                answer: answer.as_ref().map(|(i, _)| i.clone()),
                until: now + ttl,
            },
        );
    }

    /// Our own token; a new one when it is close to expiry or when Keystone refused
    /// `refused` and that is still the one held (requests refused together renew once:
    /// the others find the new token when they get the lock).
    async fn service_token(&self, refused: Option<&str>) -> Result<String, ApiError> {
        let mut held = self.service_token.lock().await;
        if let Some((token, until)) = held.as_ref() {
            let fresh = match refused {
                Some(r) => r != token,
                None => *until > Instant::now(),
            };
            if fresh {
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
        identity_of(&v["token"]).map_err(Failure::Unavailable)
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

/// The identity in a validated token's body and its time left; `None` for a token
/// already past its expiry. A token not scoped to a project has an empty project (the
/// policy refuses it with 403); a body without user or expiry is Keystone's fault.
fn identity_of(t: &Value) -> Result<Option<(Identity, Duration)>, String> {
    let expires = chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().unwrap_or(""))
        .map_err(|_| "identity service: a validated token without a readable expiry".to_string())?;
    let user_id = t["user"]["id"]
        .as_str()
        .ok_or("identity service: a validated token without a user")?
        .to_string();
    let left = match (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std() {
        Ok(d) if !d.is_zero() => d,
        _ => return Ok(None),
    };
    let project_id = t["project"]["id"].as_str().unwrap_or_default().to_string();
    let roles = t["roles"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["name"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((
        Identity {
            user_id,
            project_id,
            roles,
        },
        left,
    )))
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
        let (i, left) = identity_of(&t).unwrap().unwrap();
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
        assert_eq!(identity_of(&unscoped).unwrap().unwrap().0.project_id, "");
        let mut past = t.clone();
        past["expires_at"] = json!("2020-01-01T00:00:00.000000Z");
        assert!(identity_of(&past).unwrap().is_none());
        let mut userless = t;
        userless.as_object_mut().unwrap().remove("user");
        assert!(
            identity_of(&userless).is_err(),
            "Keystone's fault, not the token's"
        );
    }

    fn settings(cache_size: usize) -> KeystoneSettings {
        KeystoneSettings {
            auth_url: "http://127.0.0.1:1/v3".into(),
            username: "cinder".into(),
            password: Secret::new("x"),
            project_name: default_service_project(),
            user_domain_name: default_domain(),
            project_domain_name: default_domain(),
            token_cache_time: 300,
            token_cache_size: cache_size,
            http_request_timeout: 1,
            cafile: None,
            insecure: false,
        }
    }

    #[test]
    fn the_token_cache_stays_within_its_size_and_keeps_the_newest_answers() {
        let k = Keystone::new(settings(8)).unwrap();
        for i in 0..100 {
            k.remember(key_of(&format!("t{i}")), &None);
            std::thread::sleep(Duration::from_micros(50));
        }
        assert!(k.cache.lock().unwrap().len() <= 8);
        assert_eq!(
            k.cached(&key_of("t99")),
            Some(None),
            "the newest answer stays"
        );
    }

    #[tokio::test]
    async fn tokens_that_cannot_be_tokens_are_refused_without_keystone_or_a_cache_entry() {
        // Keystone at port 1 answers nothing: a request to it would be a 503.
        let k = Keystone::new(settings(8)).unwrap();
        for t in ["a b", "tab\there", &"x".repeat(9000), "caf\u{e9}"] {
            let e = k.identify(t).await.unwrap_err();
            assert_eq!(e.kind(), "unauthorized", "{t:?}");
        }
        assert!(k.cache.lock().unwrap().is_empty());
        let e = k.identify("gAAAAABplausible").await.unwrap_err();
        assert_eq!(
            e.kind(),
            "serviceUnavailable",
            "Keystone down is not the token's fault"
        );
        assert!(
            k.cache.lock().unwrap().is_empty(),
            "nothing cached when Keystone is down"
        );
    }

    #[test]
    fn a_keystone_url_or_ca_bundle_that_cannot_work_is_refused_at_start() {
        let mut s = settings(8);
        s.auth_url = "https://keystone.example:5000/v3".into();
        assert!(Keystone::new(s.clone()).is_ok(), "https is served");
        s.auth_url = "ftp://keystone.example/v3".into();
        assert!(Keystone::new(s.clone()).is_err());
        s.auth_url = "https://keystone.example:5000/v3".into();
        s.cafile = Some("/nonexistent/ca.pem".into());
        assert!(Keystone::new(s.clone()).is_err(), "a missing cafile");
        let dir = std::env::temp_dir().join(format!("ks-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        s.cafile = Some(empty.to_string_lossy().into_owned());
        assert!(Keystone::new(s).is_err(), "a cafile without a certificate");
        let _ = std::fs::remove_dir_all(dir);
    }
}
