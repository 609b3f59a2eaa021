//! `/attachments` (3.27; `os-complete` 3.44; `mode` 3.54): the flow Nova runs. Create
//! reserves the volume (`reserved`); a connector (at create or update) asks the backend
//! for the `rbd` connection info and makes attachment and volume `attaching`;
//! `os-complete` makes them `attached` / `in-use`; delete disconnects and recomputes the
//! volume from the attachments that remain (`available` when none).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_common::status::{AttachStatus, VolumeStatus};
use cinder_db::entity::{volume_attachment, volumes};
use cinder_rpc::messages::TerminateConnection;
use serde_json::{json, Value};

use crate::actions::{access_mode, connection_info, one_action, rpc_failure};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::request::Req;
use crate::schema::{self, schema};
use crate::volumes::{rpc_ctx, visible_volume, volume_queue};
use crate::AppState;

schema!(
    CREATE,
    json!({
        "type": "object",
        "properties": {"attachment": {
            "type": "object",
            "properties": {
                "volume_uuid": schema::uuid(),
                "instance_uuid": schema::uuid(),
                "connector": {"type": ["object", "null"]},
                "mode": {"type": "string", "enum": ["rw", "ro"]},
            },
            "required": ["volume_uuid"],
            "additionalProperties": false,
        }},
        "required": ["attachment"],
        "additionalProperties": false,
    })
);

schema!(
    UPDATE,
    json!({
        "type": "object",
        "properties": {"attachment": {
            "type": "object",
            "properties": {"connector": {"type": "object", "minProperties": 1}},
            "required": ["connector"],
            "additionalProperties": false,
        }},
        "required": ["attachment"],
        "additionalProperties": false,
    })
);

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Volume attachment could not be found with filter: attachment_id = {id}."
    ))
}

fn ts(t: &Option<chrono::NaiveDateTime>) -> Value {
    t.as_ref().map(crate::views::ts).unwrap_or(json!(""))
}

fn summary(a: &volume_attachment::Model) -> Value {
    json!({
        "id": a.id,
        "status": a.attach_status.as_str(),
        "instance": a.instance_uuid,
        "volume_id": a.volume_id,
    })
}

fn detail(a: &volume_attachment::Model) -> Value {
    let mut d = summary(a);
    d["attached_at"] = ts(&a.attach_time);
    d["detached_at"] = ts(&a.detach_time);
    d["attach_mode"] = json!(a.attach_mode);
    d["connection_info"] = a
        .connection_info
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_else(|| json!({}));
    d
}

/// Attachment `id` and its volume, if the caller may see them.
async fn visible(
    state: &AppState,
    r: &Req,
    id: &str,
) -> Result<(volume_attachment::Model, volumes::Model), ApiError> {
    let a = match state.db.attachment(id).await {
        Ok(a) => a,
        Err(cinder_db::Error::NotFound { .. }) => return Err(not_found(id)),
        Err(e) => return Err(ApiError::from_db(e)),
    };
    let v = visible_volume(state, r, &a.volume_id)
        .await
        .map_err(|_| not_found(id))?;
    Ok((a, v))
}

/// Asks the backend for the connection of `connector` and records it: attachment and
/// volume `attaching`. The connection info is Cinder's new-style, flattened one.
async fn connect(
    state: &AppState,
    r: &Req,
    a: &volume_attachment::Model,
    v: &volumes::Model,
    connector: &Value,
) -> Result<(), ApiError> {
    let Some(host) = connector.get("host").and_then(|h| h.as_str()) else {
        return Err(ApiError::bad_request(
            "Invalid input received: the connector has no host.",
        ));
    };
    let info = connection_info(state, r, v, connector).await?;
    let mode = a
        .attach_mode
        .clone()
        .filter(|m| m != "null")
        .or_else(|| {
            connector
                .get("mode")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "rw".into());
    let mut flat = match info.data {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    flat.insert("driver_volume_type".into(), json!(info.driver_volume_type));
    flat.insert("attachment_id".into(), json!(a.id));
    flat.insert("access_mode".into(), json!(access_mode(state, v).await?));
    flat.insert("encrypted".into(), json!(v.encryption_key_id.is_some()));
    flat.insert("qos_specs".into(), Value::Null);
    flat.insert(
        "enforce_multipath".into(),
        json!(connector
            .get("enforce_multipath")
            .and_then(|e| e.as_bool())
            .unwrap_or(false)),
    );
    state
        .db
        .attachment_connected(
            &a.id,
            &cinder_db::Connected {
                connector: connector.to_string(),
                connection_info: Value::Object(flat).to_string(),
                host: Some(host.to_string()),
                mountpoint: connector
                    .get("mountpoint")
                    .and_then(|m| m.as_str())
                    .map(str::to_string),
                mode,
            },
        )
        .await
        .map_err(ApiError::from_db)
}

/// `POST /attachments`: 200.
pub(crate) async fn create(
    State(state): State<AppState>,
    r: Req,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.since(27)?;
    CREATE.check(&body)?;
    let b = &body["attachment"];
    if b.get("mode").is_some() && !r.v.at_least(54) {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute attachment. Additional properties are not allowed ('mode' was unexpected)",
        ));
    }
    let v = visible_volume(&state, &r, b["volume_uuid"].as_str().unwrap_or_default()).await?;
    if v.status.as_str().contains("error") {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume {} currently has a status of: {} ",
            v.id, v.status
        )));
    }
    let instance = b["instance_uuid"].as_str().map(str::to_string);
    let readonly = state
        .db
        .admin_metadata(&v.id, "readonly")
        .await
        .map_err(ApiError::from_db)?;
    let mode = if readonly.as_deref() == Some("True") {
        Some("ro".to_string())
    } else {
        b["mode"].as_str().map(str::to_string)
    };
    let new = cinder_db::NewAttachment {
        id: uuid::Uuid::new_v4().to_string(),
        volume_id: v.id.clone(),
        instance_uuid: instance.clone(),
        attach_mode: Some(mode.unwrap_or_else(|| "null".into())),
        ..Default::default()
    };
    // Not while `downloading`: the create still has to finish from there (Nova waits
    // for `available` before it attaches anyway).
    let from: &[VolumeStatus] = if v.multiattach {
        &[VolumeStatus::Available, VolumeStatus::InUse]
    } else {
        &[VolumeStatus::Available]
    };
    let a = match state.db.reserve_attachment(&new, from).await {
        Ok(a) => a,
        Err(cinder_db::Error::Conflict { found, .. }) => {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: Volume {} status must be {} to reserve, but the current status is {found}.",
                v.id,
                from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
            )))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    };
    if let Some(connector) = b.get("connector").filter(|c| c.is_object()) {
        if let Err(e) = connect(&state, &r, &a, &v, connector).await {
            // Nothing half-made stays: the reservation goes with the failure.
            let _ = state.db.detach(&a.id).await;
            return Err(e);
        }
    }
    let a = state
        .db
        .attachment(&a.id)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "attachment": detail(&a) })).into_response())
}

/// `PUT /attachments/{id}`: a connector; 200 with the connection info.
pub(crate) async fn update(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.since(27)?;
    UPDATE.check(&body)?;
    let (a, v) = visible(&state, &r, &id).await?;
    if v.status.as_str().contains("error") {
        return Err(ApiError::conflict(format!(
            "Resource conflict: Volume attachments can not be updated if the volume is in an error state. The Volume {} currently has a status of: {} ",
            v.id, v.status
        )));
    }
    if !v.multiattach {
        let others = state
            .db
            .list_attachments(None, Some(&v.id), None)
            .await
            .map_err(ApiError::from_db)?;
        if others
            .iter()
            .any(|o| o.id != a.id && o.connection_info.is_some())
        {
            return Err(ApiError::conflict(format!(
                "Resource conflict: duplicate connectors detected on volume {}",
                v.id
            )));
        }
    }
    connect(&state, &r, &a, &v, &body["attachment"]["connector"]).await?;
    let a = state
        .db
        .attachment(&a.id)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "attachment": detail(&a) })).into_response())
}

/// `POST /attachments/{id}/action` `{"os-complete": null}` (3.44): 204.
pub(crate) async fn action(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.since(27)?;
    let (name, _) = one_action(&body)?;
    if name != "os-complete" || !r.v.at_least(44) {
        return Err(ApiError::bad_request(format!(
            "There is no such action: {name}. Verify the request body and Content-Type header and try again."
        )));
    }
    let (a, _) = visible(&state, &r, &id).await?;
    state
        .db
        .complete_attachment(&a.id)
        .await
        .map_err(ApiError::from_db)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /attachments/{id}`: 200 with the volume's remaining attachments.
pub(crate) async fn delete(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    r.since(27)?;
    let (a, v) = visible(&state, &r, &id).await?;
    if a.attach_status != AttachStatus::Reserved {
        if let (Some(connector), Some(queue)) = (a.connector.as_deref(), volume_queue(&v)) {
            let connector: Value = serde_json::from_str(connector).unwrap_or(Value::Null);
            state
                .rpc
                .call_as(
                    &queue,
                    &r.ctx.request_id,
                    &rpc_ctx(&r),
                    TerminateConnection {
                        volume_id: v.id.clone(),
                        connector,
                    },
                    std::time::Duration::from_secs(state.rpc_timeout_secs),
                )
                .await
                .map_err(rpc_failure)?;
        }
    }
    let left = state.db.detach(&a.id).await.map_err(ApiError::from_db)?;
    let docs: Vec<Value> = left.iter().map(summary).collect();
    Ok(Json(json!({ "attachments": docs })).into_response())
}

/// `GET /attachments/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    r.since(27)?;
    let (a, _) = visible(&state, &r, &id).await?;
    Ok(Json(json!({ "attachment": detail(&a) })).into_response())
}

async fn list(state: &AppState, r: &Req, detailed: bool) -> Result<Response, ApiError> {
    r.since(27)?;
    let p = crate::listing::ListParams::parse(&r.query, r.v, state.max_limit)?;
    let project = (!(r.ctx.is_admin && p.all_tenants)).then_some(r.ctx.project_id.as_str());
    let mut volume_id = None;
    let mut instance = None;
    let mut attach_status = None;
    for (k, val) in &p.filters {
        match k.as_str() {
            "volume_id" => volume_id = Some(val.as_str()),
            "instance_id" => instance = Some(val.as_str()),
            "attach_status" | "status" => attach_status = Some(val.as_str()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid filters {k} are found in query options."
                )))
            }
        }
    }
    let mut rows = state
        .db
        .list_attachments(project, volume_id, instance)
        .await
        .map_err(ApiError::from_db)?;
    if let Some(s) = attach_status {
        rows.retain(|a| a.attach_status.as_str() == s);
    }
    let docs: Vec<Value> = rows
        .iter()
        .skip(p.offset as usize)
        .take(p.limit as usize)
        .map(|a| if detailed { detail(a) } else { summary(a) })
        .collect();
    Ok(Json(json!({ "attachments": docs })).into_response())
}

/// `GET /attachments`.
pub(crate) async fn index(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    list(&state, &r, false).await
}

/// `GET /attachments/detail`.
pub(crate) async fn index_detail(
    State(state): State<AppState>,
    r: Req,
) -> Result<Response, ApiError> {
    list(&state, &r, true).await
}
