//! `/snapshots`: create (`force` for an in-use volume up to 3.65; from 3.66 in-use
//! needs no force, and `force=false` is refused), list, detail, show, update, delete,
//! metadata.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_db::entity::snapshots;
use cinder_db::{NewSnapshot, SnapshotListQuery, SnapshotSortKey};
use cinder_rpc::messages::{CreateSnapshot, DeleteSnapshot, VolumeRequest};
use serde_json::{json, Value};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::listing::{parse_metadata_filter, ListParams};
use crate::request::Req;
use crate::schema::{self, schema};
use crate::views;
use crate::volumes::{cast_to_volume, reserve, visible_volume};
use crate::AppState;

schema!(
    CREATE,
    json!({
        "type": "object",
        "properties": {
            "snapshot": {
                "type": "object",
                "properties": {
                    "name": schema::name(),
                    "description": schema::description(),
                    "display_name": schema::name(),
                    "display_description": schema::description(),
                    "volume_id": schema::uuid(),
                    "force": schema::boolean(),
                    "metadata": schema::metadata(),
                },
                "required": ["volume_id"],
                "additionalProperties": false,
            },
        },
        "required": ["snapshot"],
        "additionalProperties": false,
    })
);

schema!(
    UPDATE,
    json!({
        "type": "object",
        "properties": {
            "snapshot": {
                "type": "object",
                "properties": {
                    "name": schema::name(),
                    "description": schema::description(),
                    "display_name": schema::name(),
                    "display_description": schema::description(),
                },
                "additionalProperties": false,
            },
        },
        "required": ["snapshot"],
        "additionalProperties": false,
    })
);

schema!(
    METADATA,
    json!({
        "type": "object",
        "properties": {"metadata": schema::metadata_required()},
        "required": ["metadata"],
        "additionalProperties": false,
    })
);

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Snapshot {id} could not be found."))
}

/// Snapshot `id` if the caller may see it.
pub(crate) async fn visible_snapshot(
    state: &AppState,
    r: &Req,
    id: &str,
) -> Result<snapshots::Model, ApiError> {
    match state.db.snapshot(id).await {
        Ok(s) if r.ctx.is_admin || s.project_id == r.ctx.project_id => Ok(s),
        Ok(_) | Err(cinder_db::Error::NotFound { .. }) => Err(not_found(id)),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

async fn doc(state: &AppState, r: &Req, s: &snapshots::Model) -> Result<Value, ApiError> {
    let m = state
        .db
        .snapshot_metadata(&s.id)
        .await
        .map_err(ApiError::from_db)?;
    Ok(views::snapshot(r, s, &m))
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

/// `POST /snapshots`.
pub(crate) async fn create(
    State(state): State<AppState>,
    r: Req,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    CREATE.check(&body)?;
    let s = &body["snapshot"];
    let volume_id = text(s.get("volume_id")).unwrap_or_default();
    let v = visible_volume(&state, &r, &volume_id).await?;
    let force = match s.get("force") {
        None => None,
        Some(f) => schema::as_bool(f),
    };
    // 3.66: in-use needs no force, and `force=false` is refused.
    let allowed: &[VolumeStatus] = if r.v.at_least(66) {
        if force == Some(false) {
            return Err(ApiError::bad_request(
                // Cinder's words, double space and spelling included.
                "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored.",
            ));
        }
        &[VolumeStatus::Available, VolumeStatus::InUse]
    } else if force == Some(true) {
        &[VolumeStatus::Available, VolumeStatus::InUse]
    } else {
        &[VolumeStatus::Available]
    };
    if !allowed.contains(&v.status) {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: Volume {} status must be {}, but current status is: {}.",
            v.id,
            allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            v.status
        )));
    }
    let type_name = match &v.volume_type_id {
        Some(t) => state
            .db
            .volume_type_names(std::slice::from_ref(t))
            .await
            .map_err(ApiError::from_db)?
            .remove(t),
        None => None,
    };
    let deltas = cinder_db::snapshot_quota_deltas(type_name.as_deref(), v.size.into());
    let reservations = reserve(&state, &r.ctx.project_id, &deltas).await?;
    let new = NewSnapshot {
        id: uuid::Uuid::new_v4().to_string(),
        volume_id: v.id.clone(),
        project_id: r.ctx.project_id.clone(),
        user_id: r.ctx.user_id.clone(),
        name: text(s.get("name")).or(text(s.get("display_name"))),
        description: text(s.get("description")).or(text(s.get("display_description"))),
        volume_size_gib: v.size,
        volume_type_id: v.volume_type_id.clone(),
    };
    let metadata = crate::schema::string_map(s.get("metadata"));
    let row = match state
        .db
        .create_snapshot_counted(&new, allowed, &metadata, &reservations)
        .await
    {
        Ok(row) => row,
        Err(e) => {
            let _ = state.db.rollback_reservations(&reservations).await;
            return Err(match e {
                cinder_db::Error::Conflict { .. } => ApiError::bad_request(format!(
                    "Invalid volume: Volume {} changed status while the snapshot was requested.",
                    v.id
                )),
                e => ApiError::from_db(e),
            });
        }
    };
    let cast = cast_to_volume(
        &state,
        &r,
        &v,
        VolumeRequest::CreateSnapshot(CreateSnapshot {
            volume_id: v.id.clone(),
            snapshot_id: row.id.clone(),
        }),
    )
    .await;
    if let Err(e) = cast {
        let _ = state
            .db
            .finish(
                None,
                &cinder_db::Ending::snapshot(
                    &cinder_common::ops::snapshot::CREATE,
                    &row.id,
                    cinder_common::ops::Outcome::Failed,
                ),
            )
            .await;
        return Err(e);
    }
    let d = doc(&state, &r, &row).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "snapshot": d }))).into_response())
}

fn sort_key(k: &str) -> Option<SnapshotSortKey> {
    Some(match k {
        "created_at" => SnapshotSortKey::CreatedAt,
        "id" => SnapshotSortKey::Id,
        "name" | "display_name" => SnapshotSortKey::Name,
        "status" => SnapshotSortKey::Status,
        "size" | "volume_size" => SnapshotSortKey::Size,
        _ => return None,
    })
}

async fn list(state: &AppState, r: &Req) -> Result<Response, ApiError> {
    let p = ListParams::parse(&r.query, r.v, state.max_limit)?;
    let mut q = SnapshotListQuery {
        project_id: Some(r.ctx.project_id.clone()),
        sort: p.sort_keys(sort_key)?,
        marker: p.marker.clone(),
        limit: p.limit,
        offset: p.offset,
        ..Default::default()
    };
    if r.ctx.is_admin && p.all_tenants {
        q.project_id = None;
    }
    let mut empty = false;
    for (k, val) in &p.filters {
        match k.as_str() {
            "name" | "display_name" => q.name = Some(val.clone()),
            "volume_id" => q.volume_id = Some(val.clone()),
            "status" => match val.parse::<SnapshotStatus>() {
                Ok(s) => q.status = Some(s),
                Err(_) => empty = true,
            },
            "metadata" => q.metadata = parse_metadata_filter(val)?,
            "project_id" if r.ctx.is_admin && p.all_tenants => q.project_id = Some(val.clone()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid filters {k} are found in query options."
                )))
            }
        }
    }
    let rows = if empty {
        vec![]
    } else {
        match state.db.list_snapshots(&q).await {
            Ok(rows) => rows,
            Err(cinder_db::Error::NotFound { kind: "marker", id }) => {
                return Err(ApiError::bad_request(format!(
                    "Marker {id} could not be found."
                )))
            }
            Err(e) => return Err(ApiError::from_db(e)),
        }
    };
    let ids: Vec<String> = rows.iter().map(|s| s.id.clone()).collect();
    let meta = state
        .db
        .snapshot_metadata_many(&ids)
        .await
        .map_err(ApiError::from_db)?;
    let docs: Vec<Value> = rows
        .iter()
        .map(|s| views::snapshot(r, s, &meta.get(&s.id).cloned().unwrap_or_default()))
        .collect();
    let mut out = json!({ "snapshots": docs });
    if let Some(last) = rows
        .last()
        .filter(|_| p.has_next(rows.len(), state.max_limit))
    {
        out["snapshots_links"] = json!([{
            "href": crate::listing::next_link(&r.base, &r.path, &r.query, &last.id),
            "rel": "next",
        }]);
    }
    if p.with_count {
        let n = if empty {
            0
        } else {
            state
                .db
                .count_snapshots(&q)
                .await
                .map_err(ApiError::from_db)?
        };
        out["count"] = json!(n);
    }
    Ok(Json(out).into_response())
}

/// `GET /snapshots` and `GET /snapshots/detail` (the same fields).
pub(crate) async fn index(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    list(&state, &r).await
}

/// `GET /snapshots/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = visible_snapshot(&state, &r, &id).await?;
    Ok(Json(json!({ "snapshot": doc(&state, &r, &s).await? })).into_response())
}

/// `PUT /snapshots/{id}`.
pub(crate) async fn update(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    UPDATE.check(&body)?;
    let s = visible_snapshot(&state, &r, &id).await?;
    let u = &body["snapshot"];
    let field = |a: &str, b: &str| -> Option<Option<String>> {
        u.get(a)
            .or(u.get(b))
            .map(|x| x.as_str().map(str::to_string))
    };
    let s = state
        .db
        .rename_snapshot(
            &s.id,
            &cinder_db::Rename {
                name: field("name", "display_name"),
                description: field("description", "display_description"),
            },
        )
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "snapshot": doc(&state, &r, &s).await? })).into_response())
}

/// `DELETE /snapshots/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = visible_snapshot(&state, &r, &id).await?;
    delete_snapshot(&state, &r, &s, false).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Begins the delete of `s` (any status with `force`) and casts it.
pub(crate) async fn delete_snapshot(
    state: &AppState,
    r: &Req,
    s: &snapshots::Model,
    force: bool,
) -> Result<(), ApiError> {
    let began = if force {
        state.db.reset_status(&s.id, SnapshotStatus::Deleting).await
    } else {
        state
            .db
            .begin(&cinder_common::ops::snapshot::DELETE, &s.id)
            .await
    };
    match began {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { found, .. }) => {
            return Err(ApiError::bad_request(format!(
                "Invalid snapshot: Snapshot status must be available or error and must not be part of a group (it is {found})."
            )))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    }
    let v = state
        .db
        .volume(&s.volume_id)
        .await
        .map_err(ApiError::from_db)?;
    cast_to_volume(
        state,
        r,
        &v,
        VolumeRequest::DeleteSnapshot(DeleteSnapshot {
            volume_id: v.id.clone(),
            snapshot_id: s.id.clone(),
        }),
    )
    .await
}

/// `GET /snapshots/{id}/metadata`.
pub(crate) async fn metadata_show(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = visible_snapshot(&state, &r, &id).await?;
    let m = state
        .db
        .snapshot_metadata(&s.id)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "metadata": m })).into_response())
}

async fn write_metadata(
    state: &AppState,
    r: &Req,
    id: &str,
    body: &Value,
    replace: bool,
) -> Result<Response, ApiError> {
    METADATA.check(body)?;
    let s = visible_snapshot(state, r, id).await?;
    let items = crate::schema::string_map(body.get("metadata"));
    let m = state
        .db
        .set_snapshot_metadata(&s.id, &items, replace)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "metadata": m })).into_response())
}

/// `POST /snapshots/{id}/metadata`.
pub(crate) async fn metadata_update(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    write_metadata(&state, &r, &id, &body, false).await
}

/// `PUT /snapshots/{id}/metadata`.
pub(crate) async fn metadata_replace(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    write_metadata(&state, &r, &id, &body, true).await
}

/// `DELETE /snapshots/{id}/metadata/{key}`.
pub(crate) async fn metadata_item_delete(
    State(state): State<AppState>,
    r: Req,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let s = visible_snapshot(&state, &r, &id).await?;
    match state.db.delete_snapshot_metadata_key(&s.id, &key).await {
        Ok(()) => Ok(StatusCode::OK.into_response()),
        Err(cinder_db::Error::NotFound { .. }) => Err(ApiError::not_found(format!(
            "Metadata item was not found: {key}"
        ))),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles() {
        for s in [&*CREATE, &*UPDATE, &*METADATA] {
            let _ = s.check(&json!({}));
        }
        assert!(CREATE
            .check(&json!({"snapshot": {"volume_id": "x", "force": "True"}}))
            .is_ok());
        assert!(CREATE
            .check(&json!({"snapshot": {"volume_id": "x", "force": "maybe"}}))
            .is_err());
    }
}
