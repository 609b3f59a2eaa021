//! Errors in OpenStack's format: `{"<kind>": {"code": N, "message": "..."}}`, the kind
//! named as Cinder's fault wrapper names it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// For the caller.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// 413 (a body over the limit, a quota exceeded).
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: message.into(),
        }
    }

    /// 501.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_IMPLEMENTED,
            message: message.into(),
        }
    }

    /// A database failure that is not the caller's: 500, logged with its cause.
    pub fn from_db(e: cinder_db::Error) -> Self {
        match e {
            cinder_db::Error::NotFound { kind, id } => {
                ApiError::not_found(format!("{kind} {id} could not be found."))
            }
            e => {
                tracing::error!(error = %e, "database error");
                ApiError::internal("The server has either erred or is incapable of performing the requested operation.")
            }
        }
    }

    /// 406 (a microversion out of range).
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_ACCEPTABLE,
            message: message.into(),
        }
    }

    /// 503: a service behind the API does not answer.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// Cinder's name for the fault.
    pub fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            409 => "conflictingRequest",
            413 => "overLimit",
            415 => "badMediaType",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            _ => "computeFault",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut fault =
            serde_json::json!({ "code": self.status.as_u16(), "message": self.message });
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // As Cinder's overLimit: retry at once (nothing frees by waiting).
            fault["retryAfter"] = "0".into();
            let body = serde_json::json!({ self.kind(): fault });
            return (self.status, [("Retry-After", "0")], Json(body)).into_response();
        }
        let body = serde_json::json!({ self.kind(): fault });
        (self.status, Json(body)).into_response()
    }
}
