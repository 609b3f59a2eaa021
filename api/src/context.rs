//! Who calls: the request context every handler gets. `[api] auth_strategy = noauth`
//! reads `X-Auth-Token: user:project` (no colon: the project is the user); the user
//! `admin` is an admin, any other user a member of its project (Cinder makes every
//! noauth caller an admin). Keystone arrives with the rest of the API.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// The caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Admin.
    pub is_admin: bool,
    /// The request id (`req-<uuid>`).
    pub request_id: String,
}

impl Context {
    /// The context of a noauth token.
    pub fn from_noauth_token(token: &str, request_id: String) -> Context {
        let (user, project) = token.split_once(':').unwrap_or((token, token));
        Context {
            is_admin: user == "admin",
            user_id: user.to_string(),
            project_id: project.to_string(),
            request_id,
        }
    }

    /// 403 unless the caller is an admin (`rule` names the policy, as Cinder says it).
    pub fn require_admin(&self, rule: &str) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "Policy doesn't allow {rule} to be performed."
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .extensions
            .get::<crate::request_id::RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let token = parts
            .headers
            .get("x-auth-token")
            .and_then(|t| t.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authentication required"))?;
        Ok(Context::from_noauth_token(token, request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noauth_tokens_name_user_and_project_and_only_admin_is_admin() {
        let c = Context::from_noauth_token("alice:p1", "req-1".into());
        assert_eq!(
            (c.user_id.as_str(), c.project_id.as_str(), c.is_admin),
            ("alice", "p1", false)
        );
        assert!(c.require_admin("x").is_err());
        let a = Context::from_noauth_token("admin", "req-2".into());
        assert_eq!((a.project_id.as_str(), a.is_admin), ("admin", true));
        assert!(a.require_admin("x").is_ok());
    }
}
