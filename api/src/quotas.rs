//! `/os-quota-sets/{project}` (show, `usage=true`, `defaults`, update, delete) and
//! `/limits`, with the per-type resources of every volume type.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::request::Req;
use crate::schema::schema;
use crate::AppState;

schema!(
    UPDATE,
    json!({
        "type": "object",
        "properties": {"quota_set": {
            "type": "object",
            "additionalProperties": {"type": ["integer", "string"], "pattern": "^-?[0-9]+$",
                                     "minimum": -1, "maximum": 2147483647},
            // cinderclient names the project in the body too.
            "properties": {"skip_validation": {"type": ["boolean", "string"]},
                           "tenant_id": {"type": "string"}, "id": {"type": "string"}},
        }},
        "required": ["quota_set"],
        "additionalProperties": false,
    })
);

/// Every resource of a project's quota set, in Cinder's order: the fixed ones, then
/// `volumes_<type>`, `gigabytes_<type>`, `snapshots_<type>` of every type.
async fn resources(state: &AppState) -> Result<Vec<String>, ApiError> {
    let mut r: Vec<String> = [
        "volumes",
        "snapshots",
        "gigabytes",
        "backups",
        "backup_gigabytes",
        "per_volume_gigabytes",
        "groups",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for t in state.db.list_types(None).await.map_err(ApiError::from_db)? {
        for k in ["volumes", "gigabytes", "snapshots"] {
            r.push(format!("{k}_{}", t.row.name));
        }
    }
    Ok(r)
}

/// The project's limits over every resource (-1 where none is set).
async fn limits_of(
    state: &AppState,
    project: &str,
    defaults_only: bool,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut defaults = state.quota.defaults();
    defaults.insert("groups".into(), 10);
    let set = if defaults_only {
        defaults
    } else {
        state
            .db
            .quota_limits(project, &defaults)
            .await
            .map_err(ApiError::from_db)?
    };
    let mut out = BTreeMap::new();
    for r in resources(state).await? {
        out.insert(r.clone(), set.get(&r).copied().unwrap_or(-1));
    }
    Ok(out)
}

fn may_read(r: &Req, project: &str) -> Result<(), ApiError> {
    if r.ctx.is_admin || r.ctx.project_id == project {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Policy doesn't allow volume_extension:quotas:show to be performed.",
        ))
    }
}

async fn quota_set(
    state: &AppState,
    project: &str,
    usage: bool,
    defaults_only: bool,
) -> Result<Value, ApiError> {
    let limits = limits_of(state, project, defaults_only).await?;
    let mut set = Map::new();
    set.insert("id".into(), json!(project));
    let usages = if usage {
        state.db.usages(project).await.map_err(ApiError::from_db)?
    } else {
        Default::default()
    };
    for (k, limit) in limits {
        if usage {
            let u = usages.get(&k).copied().unwrap_or_default();
            set.insert(
                k,
                json!({"limit": limit, "in_use": u.in_use, "reserved": u.reserved, "allocated": 0}),
            );
        } else {
            set.insert(k, json!(limit));
        }
    }
    Ok(Value::Object(set))
}

/// `GET /os-quota-sets/{project}[?usage=true]`.
pub(crate) async fn show(
    State(state): State<AppState>,
    r: Req,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    may_read(&r, &project)?;
    let usage = match r.query_value("usage") {
        None => false,
        Some(u) => cinder_common::strutils::bool_from_string(u)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid value '{u}' for usage")))?,
    };
    let set = quota_set(&state, &project, usage, false).await?;
    Ok(Json(json!({ "quota_set": set })).into_response())
}

/// `GET /os-quota-sets/{project}/defaults`.
pub(crate) async fn defaults(
    State(state): State<AppState>,
    r: Req,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    may_read(&r, &project)?;
    let set = quota_set(&state, &project, false, true).await?;
    Ok(Json(json!({ "quota_set": set })).into_response())
}

/// `PUT /os-quota-sets/{project}` (admin).
pub(crate) async fn update(
    State(state): State<AppState>,
    r: Req,
    Path(project): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:quotas:update")?;
    UPDATE.check(&body)?;
    let known = resources(&state).await?;
    let mut items: Vec<(String, i64)> = vec![];
    let mut bad = vec![];
    for (k, v) in body["quota_set"].as_object().into_iter().flatten() {
        if matches!(k.as_str(), "skip_validation" | "tenant_id" | "id") {
            continue;
        }
        if !known.contains(k) {
            bad.push(k.clone());
            continue;
        }
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| ApiError::bad_request(format!("Invalid value for {k}: {v}")))?;
        if n < -1 {
            return Err(ApiError::bad_request(format!(
                "Quota limit for {k} must be -1 or greater."
            )));
        }
        items.push((k.clone(), n));
    }
    if !bad.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Bad key(s) in quota set: {}",
            bad.join(", ")
        )));
    }
    for (k, n) in &items {
        state
            .db
            .set_project_quota(&project, k, *n)
            .await
            .map_err(ApiError::from_db)?;
    }
    let mut set = quota_set(&state, &project, false, false).await?;
    set.as_object_mut().map(|o| o.remove("id"));
    Ok(Json(json!({ "quota_set": set })).into_response())
}

/// `DELETE /os-quota-sets/{project}` (admin): back to the defaults.
pub(crate) async fn delete(
    State(state): State<AppState>,
    r: Req,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:quotas:delete")?;
    state
        .db
        .delete_project_quotas(&project)
        .await
        .map_err(ApiError::from_db)?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /limits`: the caller's absolute limits with their usage.
pub(crate) async fn limits(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    let project = r.ctx.project_id.clone();
    let l = limits_of(&state, &project, false).await?;
    let usages = state.db.usages(&project).await.map_err(ApiError::from_db)?;
    let used = |k: &str| usages.get(k).map(|u| u.in_use).unwrap_or(0);
    let absolute = json!({
        "maxTotalVolumes": l["volumes"],
        "maxTotalSnapshots": l["snapshots"],
        "maxTotalVolumeGigabytes": l["gigabytes"],
        "maxTotalBackups": l["backups"],
        "maxTotalBackupGigabytes": l["backup_gigabytes"],
        "totalVolumesUsed": used("volumes"),
        "totalGigabytesUsed": used("gigabytes"),
        "totalSnapshotsUsed": used("snapshots"),
        "totalBackupsUsed": used("backups"),
        "totalBackupGigabytesUsed": used("backup_gigabytes"),
    });
    Ok(Json(json!({"limits": {"rate": [], "absolute": absolute}})).into_response())
}
