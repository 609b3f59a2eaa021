//! The versions documents: `GET /` (300 Multiple Choices) and `GET /v3/` (200), both
//! `{"versions": [...]}` with the one v3 entry, its `self` link built from
//! `[api] public_endpoint` or the request's own host.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::microversion::MAX_MINOR;
use crate::AppState;

/// When the newest microversion came (Cinder's `UPDATED`).
const UPDATED: &str = "2023-08-31T00:00:00Z";

fn document(state: &AppState, headers: &HeaderMap) -> serde_json::Value {
    let base = match &state.public_endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or(&state.listen);
            format!("http://{host}")
        }
    };
    // A base already ending in a version (`.../v3`) is not repeated.
    let base = match base.rsplit_once('/') {
        Some((head, last)) if last.starts_with('v') && last[1..].parse::<u32>().is_ok() => {
            head.to_string()
        }
        _ => base,
    };
    serde_json::json!({
        "versions": [{
            "id": "v3.0",
            "status": "CURRENT",
            "version": format!("3.{MAX_MINOR}"),
            "min_version": "3.0",
            "updated": UPDATED,
            "links": [
                {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                {"rel": "self", "href": format!("{base}/v3/")},
            ],
            "media-types": [{
                "base": "application/json",
                "type": "application/vnd.openstack.volume+json;version=3",
            }],
        }]
    })
}

/// `GET /`: 300 with every version.
pub(crate) async fn all(State(state): State<AppState>, headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(document(&state, &headers)),
    )
        .into_response()
}

/// `GET /v3/`: 200 with the v3 document, without a token too (openstacksdk's
/// discovery reads it before it authenticates; Cinder's noauth 204 breaks it).
pub(crate) async fn v3(State(state): State<AppState>, headers: HeaderMap) -> Response {
    (StatusCode::OK, Json(document(&state, &headers))).into_response()
}
