//! Operations: `/os-services` (list with up/down from `service_down_time`, enable,
//! disable, disable with a reason), `/os-availability-zone`, `/capabilities/{host}`,
//! and the user messages (`/messages`, 3.3).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_rpc::messages::GetCapabilities;
use serde_json::{json, Value};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::request::Req;
use crate::schema::schema;
use crate::views::ts;
use crate::AppState;

schema!(
    SERVICE,
    json!({
        "type": "object",
        "properties": {
            "host": {"type": "string", "minLength": 1, "maxLength": 255},
            "binary": {"type": "string", "minLength": 1, "maxLength": 255},
            "disabled_reason": {"type": ["string", "null"], "maxLength": 255},
        },
        "required": ["host", "binary"],
        "additionalProperties": false,
    })
);

/// `GET /os-services` (admin): every service, up or down by its heartbeat.
pub(crate) async fn index(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:services:index")?;
    let host = r.query_value("host").map(str::to_string);
    let binary = r.query_value("binary").map(str::to_string);
    let now = chrono::Utc::now().naive_utc();
    let down = Duration::from_secs(state.service_down_time);
    let docs: Vec<Value> = state
        .db
        .services()
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .filter(|s| host.as_deref().is_none_or(|h| s.host == h))
        .filter(|s| binary.as_deref().is_none_or(|b| s.binary == b))
        .map(|s| {
            let up = cinder_db::service_is_up(&s, down, now);
            let mut d = json!({
                "binary": s.binary,
                "host": s.host,
                "zone": s.availability_zone,
                "status": if s.disabled { "disabled" } else { "enabled" },
                "state": if up { "up" } else { "down" },
                "updated_at": s.updated_at.as_ref().map(ts),
                "disabled_reason": s.disabled_reason,
                "replication_status": s.replication_status.as_deref().unwrap_or("disabled"),
                "active_backend_id": s.active_backend_id,
                "frozen": s.frozen,
            });
            if r.v.at_least(7) {
                d["cluster"] = json!(s.cluster_name);
            }
            if r.v.at_least(49) && s.binary == "cinder-volume" {
                d["backend_state"] = json!(if up { "up" } else { "down" });
            }
            d
        })
        .collect();
    Ok(Json(json!({ "services": docs })).into_response())
}

/// `PUT /os-services/{enable|disable|disable-log-reason}` (admin).
pub(crate) async fn update(
    State(state): State<AppState>,
    r: Req,
    Path(action): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:services:update")?;
    let disable = match action.as_str() {
        "enable" => false,
        "disable" | "disable-log-reason" => true,
        "freeze" | "thaw" | "failover_host" | "failover" | "set-log" | "get-log" => {
            return Err(ApiError::bad_request(format!(
                "{action} is not supported: the RBD backends here have no replication to fail over and no runtime log levels."
            )))
        }
        _ => return Err(ApiError::not_found(format!("Unknown action {action}"))),
    };
    SERVICE.check(&body)?;
    let host = body["host"].as_str().unwrap_or_default();
    let binary = body["binary"].as_str().unwrap_or_default();
    let reason = if action == "disable-log-reason" {
        let reason = body["disabled_reason"]
            .as_str()
            .map(str::trim)
            .unwrap_or("");
        if reason.is_empty() {
            return Err(ApiError::bad_request(
                "Disabled reason contains invalid characters or is too long",
            ));
        }
        Some(reason.to_string())
    } else {
        None
    };
    let found = state
        .db
        .set_service_disabled(host, binary, disable, reason.as_deref())
        .await
        .map_err(ApiError::from_db)?;
    if !found {
        return Err(ApiError::not_found(format!(
            "Service {binary} on host {host} could not be found."
        )));
    }
    Ok(Json(json!({
        "host": host,
        "binary": binary,
        "service": binary,
        "status": if disable { "disabled" } else { "enabled" },
        "disabled": disable,
        "disabled_reason": reason,
    }))
    .into_response())
}

/// `GET /os-availability-zone`.
pub(crate) async fn zones(State(state): State<AppState>, _r: Req) -> Result<Response, ApiError> {
    let now = chrono::Utc::now().naive_utc();
    let down = Duration::from_secs(state.service_down_time);
    let services = state.db.services().await.map_err(ApiError::from_db)?;
    let mut zones: Vec<(String, bool)> = vec![];
    for s in services.iter().filter(|s| s.binary == "cinder-volume") {
        let up = !s.disabled && cinder_db::service_is_up(s, down, now);
        match zones.iter_mut().find(|(z, _)| *z == s.availability_zone) {
            Some((_, avail)) => *avail |= up,
            None => zones.push((s.availability_zone.clone(), up)),
        }
    }
    if zones.is_empty() {
        zones.push((state.default_az.clone(), false));
    }
    let docs: Vec<Value> = zones
        .into_iter()
        .map(|(z, a)| json!({"zoneName": z, "zoneState": {"available": a}}))
        .collect();
    Ok(Json(json!({ "availabilityZoneInfo": docs })).into_response())
}

/// `GET /capabilities/{host}` (admin): the backend's own report.
pub(crate) async fn capabilities(
    State(state): State<AppState>,
    r: Req,
    Path(host): Path<String>,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:capabilities")?;
    let backend = host.split('#').next().unwrap_or(&host).to_string();
    let services = state.db.services().await.map_err(ApiError::from_db)?;
    if !services
        .iter()
        .any(|s| s.binary == "cinder-volume" && s.host == backend)
    {
        return Err(ApiError::not_found(format!(
            "Service {host} could not be found."
        )));
    }
    let caps: Value = state
        .rpc
        .call_as(
            &cinder_rpc::topology::backend_queue(&backend),
            &r.ctx.request_id,
            &crate::volumes::rpc_ctx(&r),
            GetCapabilities {},
            Duration::from_secs(state.rpc_timeout_secs),
        )
        .await
        .map_err(crate::actions::rpc_failure)?;
    let name = caps["volume_backend_name"].clone();
    Ok(Json(json!({
        "namespace": format!("OS::Storage::Capabilities::{host}"),
        "vendor_name": caps["vendor_name"],
        "volume_backend_name": name,
        "pool_name": caps.get("pool_name").cloned().unwrap_or(name.clone()),
        "driver_version": caps["driver_version"],
        "storage_protocol": caps["storage_protocol"],
        "display_name": Value::Null,
        "description": Value::Null,
        "visibility": Value::Null,
        "replication_targets": [],
        "properties": {
            "thin_provisioning": {"title": "Thin Provisioning", "description": "Sets thin provisioning.", "type": "boolean"},
            "compression": {"title": "Compression", "description": "Enables compression.", "type": "boolean"},
            "qos": {"title": "QoS", "description": "Enables QoS.", "type": "boolean"},
            "replication_enabled": {"title": "Replication", "description": "Enables replication.", "type": "boolean"},
        },
    }))
    .into_response())
}

fn message_view(r: &Req, m: &cinder_db::entity::messages::Model) -> Value {
    json!({
        "id": m.id,
        "event_id": m.event_id,
        "user_message": cinder_common::messages::user_message(m.action_id.as_deref(), m.detail_id.as_deref()),
        "message_level": m.message_level,
        "resource_type": m.resource_type,
        "resource_uuid": m.resource_uuid,
        "created_at": ts(&m.created_at),
        "guaranteed_until": ts(&m.expires_at),
        "request_id": m.request_id,
        "links": r.links("messages", &m.id),
    })
}

/// `GET /messages` (3.3): the caller's project's, filtered by `resource_uuid`,
/// `resource_type`, `event_id`, `request_id`, `message_level`.
pub(crate) async fn messages(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    r.since(3)?;
    let p = crate::listing::ListParams::parse(&r.query, r.v, state.max_limit)?;
    for k in p.filters.keys() {
        if !matches!(
            k.as_str(),
            "resource_uuid" | "resource_type" | "event_id" | "request_id" | "message_level"
        ) {
            return Err(ApiError::bad_request(format!(
                "Invalid filters {k} are found in query options."
            )));
        }
    }
    let project = (!(r.ctx.is_admin && p.all_tenants)).then_some(r.ctx.project_id.as_str());
    let rows = state
        .db
        .list_messages(project)
        .await
        .map_err(ApiError::from_db)?;
    let docs: Vec<Value> = rows
        .iter()
        .filter(|m| {
            p.filters.iter().all(|(k, v)| {
                let have = match k.as_str() {
                    "resource_uuid" => m.resource_uuid.as_deref(),
                    "resource_type" => Some(m.resource_type.as_str()),
                    "event_id" => Some(m.event_id.as_str()),
                    "request_id" => Some(m.request_id.as_str()),
                    _ => Some(m.message_level.as_str()),
                };
                have == Some(v.as_str())
            })
        })
        .skip(p.offset as usize)
        .take(p.limit as usize)
        .map(|m| message_view(&r, m))
        .collect();
    Ok(Json(json!({ "messages": docs })).into_response())
}

async fn visible_message(
    state: &AppState,
    r: &Req,
    id: &str,
) -> Result<cinder_db::entity::messages::Model, ApiError> {
    match state.db.message(id).await {
        Ok(m) if r.ctx.is_admin || m.project_id == r.ctx.project_id => Ok(m),
        Ok(_) | Err(cinder_db::Error::NotFound { .. }) => Err(ApiError::not_found(format!(
            "Message {id} could not be found."
        ))),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

/// `GET /messages/{id}`.
pub(crate) async fn message(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    r.since(3)?;
    let m = visible_message(&state, &r, &id).await?;
    Ok(Json(json!({ "message": message_view(&r, &m) })).into_response())
}

/// `DELETE /messages/{id}`: 204.
pub(crate) async fn delete_message(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    r.since(3)?;
    let m = visible_message(&state, &r, &id).await?;
    state
        .db
        .delete_message(&m.id)
        .await
        .map_err(ApiError::from_db)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
