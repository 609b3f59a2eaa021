//! Who calls: the request context every handler gets, from the [`Identity`] that
//! [`crate::auth::authenticate`] found, and the policy of Cinder's defaults: a reader
//! (`reader` role) reads its project, a member (`member`) also writes, an admin (`admin`)
//! reads and writes everything. Admin-only rules are checked by the handlers
//! ([`Context::require_admin`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;

use cinder_common::settings::Secret;

use crate::auth::Identity;

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
    /// The caller's token, as it came (`X-Auth-Token`): calls to the image service on
    /// the caller's behalf carry it, here and, through the RPC context, in the volume
    /// service, as Cinder's context does.
    pub auth_token: Option<Secret>,
}

impl Context {
    /// The context of a noauth token.
    pub fn from_noauth_token(token: &str, request_id: String) -> Context {
        Context::of(Identity::from_noauth_token(token), request_id)
    }

    /// The context of `identity`.
    pub fn of(identity: Identity, request_id: String) -> Context {
        Context {
            is_admin: identity.has_role("admin"),
            user_id: identity.user_id,
            project_id: identity.project_id,
            request_id,
            auth_token: None,
        }
    }

    /// The caller's token, for the image service.
    pub fn token(&self) -> Option<&str> {
        self.auth_token.as_ref().map(Secret::expose)
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
        let identity = parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("Authentication required"))?;
        if identity.project_id.is_empty() {
            return Err(ApiError::forbidden(
                "The token is not scoped to a project: the Block Storage API needs a project-scoped token.",
            ));
        }
        let reads = matches!(parts.method, Method::GET | Method::HEAD);
        let allowed = if reads {
            ["admin", "member", "_member_", "reader"]
                .iter()
                .any(|r| identity.has_role(r))
        } else {
            ["admin", "member", "_member_"]
                .iter()
                .any(|r| identity.has_role(r))
        };
        if !allowed {
            let what = if reads { "read" } else { "write" };
            return Err(ApiError::forbidden(format!(
                "Policy doesn't allow {} {} to be performed: the token's roles ({}) may not {what} here.",
                parts.method,
                parts.uri.path(),
                identity.roles.join(", ")
            )));
        }
        let mut ctx = Context::of(identity, request_id);
        ctx.auth_token = parts
            .headers
            .get("x-auth-token")
            .and_then(|t| t.to_str().ok())
            .map(Secret::new);
        Ok(ctx)
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
