//! Request bodies: read up to `[api] osapi_max_request_body_size` bytes (413 beyond),
//! parsed as one JSON object (400 otherwise), then checked against the JSON schema of
//! the request (`schema`) before anything reads it.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::Value;

use crate::error::ApiError;
use crate::AppState;

/// A JSON object body.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.max_body;
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::too_large("Request is too large."))?;
        parse(&bytes).map(JsonBody)
    }
}

/// The body as a JSON object.
pub fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "Malformed request body: the body is empty",
        ));
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Malformed request body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "Malformed request body: the body must be a JSON object",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_must_be_one_json_object() {
        assert!(parse(br#"{"volume": {}}"#).is_ok());
        for bad in [&b""[..], b"  ", b"{", b"[1]", b"\"x\"", b"{\"a\":1}x"] {
            assert_eq!(parse(bad).unwrap_err().status.as_u16(), 400, "{bad:?}");
        }
    }
}
