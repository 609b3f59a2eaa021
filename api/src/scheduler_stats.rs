//! `GET /v3/{project_id}/scheduler-stats/get_pools` (and without the project id, 3.67):
//! the pools the scheduler sees, with their capabilities on `detail`.
//!
//! Filters as Cinder's: none before 3.28; from 3.28 `name` and any capability (equal
//! after conversion); from 3.31 only `name` and `volume_type` (anything else is 400);
//! `volume_type` (name or id) from 3.35, matched as the scheduler's capabilities filter
//! matches it.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_rpc::messages::{GetPools, RequestContext, VolumeTypeSpec};

use crate::context::Context;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::AppState;

/// oslo's strict `bool_from_string`.
fn strict_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    cinder_common::strutils::bool_from_string(v).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid value '{v}' for {key}: it must be a boolean"
        ))
    })
}

/// Cinder's `_equal_after_convert`: a boolean capability against a boolean string,
/// anything else by its text.
fn equal_after_convert(cap: &serde_json::Value, want: &str) -> bool {
    match cap {
        serde_json::Value::Bool(b) => strict_bool("", want).is_ok_and(|w| w == *b),
        serde_json::Value::String(s) => s == want,
        serde_json::Value::Number(n) => {
            n.to_string() == want
                || (n.as_f64().is_some() && want.parse::<f64>().ok() == n.as_f64())
        }
        _ => false,
    }
}

pub(crate) async fn get_pools(
    State(state): State<AppState>,
    ctx: Context,
    headers: HeaderMap,
    Query(mut query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let v = Microversion::from_headers(&headers)?;
    ctx.require_admin("scheduler_extension:scheduler_stats:get_pools")?;
    let detail = match query.remove("detail") {
        Some(d) => strict_bool("detail", &d)?,
        None => false,
    };
    if !v.at_least(28) {
        query.clear();
    }
    if v.at_least(31) {
        let invalid: Vec<&String> = query
            .keys()
            .filter(|k| !matches!(k.as_str(), "name" | "volume_type"))
            .collect();
        if !invalid.is_empty() {
            let names: Vec<&str> = invalid.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "Invalid filters {} are found in query options.",
                names.join(",")
            )));
        }
    }
    let volume_type = query.remove("volume_type");
    let volume_type = match volume_type {
        Some(t) if v.at_least(35) => {
            let ty = state
                .db
                .volume_type_by_name_or_id(&t)
                .await
                .map_err(|e| match e {
                    cinder_db::Error::NotFound { .. } => ApiError::not_found(format!(
                        "Volume type with name or id {t} could not be found."
                    )),
                    e => ApiError::internal(e.to_string()),
                })?;
            Some(VolumeTypeSpec {
                id: ty.id,
                name: ty.name,
                extra_specs: ty.extra_specs,
            })
        }
        _ => None,
    };
    let name = query.remove("name");
    let ask = GetPools {
        detail: true,
        name,
        volume_type,
    };
    let ctx = RequestContext {
        is_admin: true,
        ..Default::default()
    };
    let pools = state
        .rpc
        .call(
            &state.scheduler_topic,
            &ctx,
            ask,
            Duration::from_secs(state.rpc_timeout_secs),
        )
        .await
        .map_err(|e| ApiError::unavailable(format!("the scheduler did not answer: {e}")))?;
    let pools: Vec<serde_json::Value> = pools
        .into_iter()
        .filter(|p| {
            // 3.28 to 3.30: the remaining keys are capabilities.
            query.iter().all(|(k, want)| {
                p.capabilities
                    .as_ref()
                    .and_then(|c| c.get(k))
                    .is_some_and(|c| equal_after_convert(c, want))
            })
        })
        .map(|p| match (detail, p.capabilities) {
            (true, Some(c)) => serde_json::json!({"name": p.name, "capabilities": c}),
            _ => serde_json::json!({"name": p.name}),
        })
        .collect();
    Ok((v.headers(), Json(serde_json::json!({ "pools": pools }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capability_filters_compare_after_conversion() {
        assert!(equal_after_convert(&json!(true), "True"));
        assert!(equal_after_convert(&json!(false), "no"));
        assert!(!equal_after_convert(&json!(true), "maybe"));
        assert!(equal_after_convert(&json!("ceph"), "ceph"));
        assert!(equal_after_convert(&json!(10), "10"));
        assert!(equal_after_convert(&json!(10.5), "10.5"));
        assert!(!equal_after_convert(&json!(10), "11"));
        assert!(!equal_after_convert(&json!(null), ""));
    }
}
