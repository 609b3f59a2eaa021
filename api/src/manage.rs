//! `POST /os-volume-manage` (and `POST /manageable_volumes`, 3.8): an image already in a
//! backend's pool becomes a volume (admin). The API reserves the volume in quota and
//! writes the row `managing` on the named backend; the backend finds the image, renames
//! it to the volume's name and sets the size, whose gigabytes count from then on.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_common::ops;
use cinder_db::entity::services;
use cinder_db::NewVolume;
use cinder_db::SortDir;
use cinder_rpc::messages::{
    GetManageableVolumes, ManageExisting, ManageableVolume, RemoteErrorKind, VolumeRequest,
};
use serde_json::{json, Value};
use std::time::Duration;

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::listing::ListParams;
use crate::request::Req;
use crate::schema::{self, schema};
use crate::volumes::{cast_to_volume, detail_of, reserve};
use crate::AppState;

schema!(
    MANAGE,
    json!({
        "type": "object",
        "properties": {"volume": {
            "type": "object",
            "properties": {
                "ref": {"type": ["object", "string"]},
                "host": {"type": ["string", "null"], "minLength": 1, "maxLength": 255,
                         "pattern": "^[a-zA-Z0-9-._#@:/+\\[\\]]*$"},
                "cluster": {"type": ["string", "null"], "maxLength": 255},
                "name": schema::name(),
                "description": schema::description(),
                "availability_zone": {"type": ["string", "null"], "maxLength": 255},
                "volume_type": {"type": ["string", "null"], "maxLength": 255},
                "bootable": schema::boolean(),
                "metadata": schema::metadata(),
            },
            "required": ["ref"],
            "additionalProperties": false,
        }},
        "required": ["volume"],
        "additionalProperties": false,
    })
);

/// The volume service of `backend`; `None` when there is none, 400 when it is disabled
/// or down (Cinder's `_get_service_by_host_cluster`).
async fn backend_service(
    state: &AppState,
    backend: &str,
) -> Result<Option<services::Model>, ApiError> {
    let services = state.db.services().await.map_err(ApiError::from_db)?;
    let Some(svc) = services
        .into_iter()
        .find(|s| s.binary == "cinder-volume" && s.host == backend)
    else {
        return Ok(None);
    };
    let now = chrono::Utc::now().naive_utc();
    if svc.disabled
        || !cinder_db::service_is_up(
            &svc,
            std::time::Duration::from_secs(state.service_down_time),
            now,
        )
    {
        return Err(ApiError::bad_request(
            "Service is unavailable at this time.",
        ));
    }
    Ok(Some(svc))
}

/// `POST /os-volume-manage`, `POST /manageable_volumes`.
pub(crate) async fn manage(
    State(state): State<AppState>,
    r: Req,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if r.path.ends_with("/manageable_volumes") {
        r.since(8)?;
    }
    r.ctx.require_admin("volume:manage_existing")?;
    MANAGE.check(&body)?;
    let v = &body["volume"];
    let host = v["host"].as_str().map(str::to_string);
    // `cluster` from 3.16 (Cinder's manage_existing); clusters are named by their
    // hosts here, as in the manageable listing.
    let cluster = v["cluster"]
        .as_str()
        .filter(|c| r.v.at_least(16) && !c.is_empty());
    let host = match (host, cluster) {
        (Some(h), None) => h,
        (None, Some(c)) => c.to_string(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "Invalid input received: Host field is missing.",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Invalid input received: One and only one of cluster and host must be set.",
            ))
        }
    };
    let source = match &v["ref"] {
        Value::Object(o) => o.get("source-name").and_then(|s| s.as_str()),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input received: Manage existing volume failed: the reference must name the image as {\"source-name\": \"<image>\"}.",
        )
    })?
    .to_string();
    let backend = host.split('#').next().unwrap_or(&host).to_string();
    let svc = match backend_service(&state, &backend).await? {
        Some(svc) => svc,
        None => return Err(ApiError::bad_request(format!("Host '{backend}' not found"))),
    };
    // The volume's host names its pool as created volumes' do.
    let full_host = if host.contains('#') {
        host.clone()
    } else {
        let pool = svc
            .capabilities
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .and_then(|c| c["volume_backend_name"].as_str().map(str::to_string))
            .unwrap_or_else(|| "RBD".into());
        format!("{backend}#{pool}")
    };
    let asked = v["volume_type"].as_str();
    let name = match asked {
        Some(a) => a.to_string(),
        None => crate::types::default_of(&state, &r.ctx.project_id).await?,
    };
    let ty = state
        .db
        .volume_type_by_name_or_id(&name)
        .await
        .map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid volume type: Cannot find requested '{name}' volume type"
            ))
        })?;
    let mut deltas = vec![("volumes".to_string(), 1)];
    deltas.push((format!("volumes_{}", ty.name), 1));
    let reservations = reserve(&state, &r.ctx.project_id, &deltas).await?;
    let metadata = crate::schema::string_map(v.get("metadata"));
    let new = NewVolume {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: r.ctx.project_id.clone(),
        user_id: r.ctx.user_id.clone(),
        name: v["name"].as_str().map(str::to_string),
        description: v["description"].as_str().map(str::to_string),
        size_gib: 0,
        availability_zone: Some(
            v["availability_zone"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| svc.availability_zone.clone()),
        ),
        volume_type_id: Some(ty.id.clone()),
        bootable: v.get("bootable").and_then(schema::as_bool).unwrap_or(false),
        multiattach: ty
            .extra_specs
            .get("multiattach")
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("<is> true")),
        host: Some(full_host),
        ..Default::default()
    };
    let row = match state
        .db
        .create_volume_counted(&new, &ops::volume::MANAGE, &metadata, &reservations)
        .await
    {
        Ok(row) => row,
        Err(e) => {
            let _ = state.db.rollback_reservations(&reservations).await;
            return Err(ApiError::from_db(e));
        }
    };
    cast_to_volume(
        &state,
        &r,
        &row,
        VolumeRequest::ManageExisting(ManageExisting {
            volume_id: row.id.clone(),
            source_name: source,
        }),
    )
    .await?;
    let mut doc = detail_of(&state, &r, &row).await?;
    // Cinder's legacy view: managing reads as creating.
    doc["status"] = json!("creating");
    Ok((StatusCode::ACCEPTED, Json(json!({ "volume": doc }))).into_response())
}

/// The sort keys of the manageable listing.
#[derive(Clone, Copy)]
enum SortBy {
    Reference,
    Size,
}

/// `GET /manageable_volumes[/detail]` (3.8, admin): the images of the `host`'s pool,
/// as its volume service lists them, sorted and paged here (`reference` or `size`,
/// `marker` being the JSON of a `reference`).
pub(crate) async fn manageable(
    State(state): State<AppState>,
    r: Req,
) -> Result<Response, ApiError> {
    r.since(8)?;
    r.ctx.require_admin("volume_extension:list_manageable")?;
    let detail = r.path.ends_with("/detail");
    let mut query = r.query.clone();
    query.retain(|(k, _)| k != "host" && k != "cluster");
    let p = ListParams::parse(&query, r.v, state.max_limit)?;
    let known = |k: &str| match k {
        "reference" => Some(SortBy::Reference),
        "size" => Some(SortBy::Size),
        _ => None,
    };
    let bad: Vec<&str> = p
        .sort
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| known(k).is_none())
        .collect();
    if !bad.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid sort keys passed: {}",
            bad.join(", ")
        )));
    }
    let mut sort = p.sort_keys(known)?;
    if sort.is_empty() {
        sort.push((SortBy::Reference, SortDir::Desc));
    }
    let cluster = if r.v.at_least(17) {
        r.query_value("cluster").filter(|c| !c.is_empty())
    } else {
        None
    };
    let host = r.query_value("host").filter(|h| !h.is_empty());
    let host = match (host, cluster) {
        (Some(h), None) => h.to_string(),
        (None, None) if !r.v.at_least(17) => {
            return Err(ApiError::bad_request(
                "Invalid input received: Host field is missing.",
            ))
        }
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::bad_request(
                "Invalid input received: One and only one of cluster and host must be set.",
            ))
        }
        // Clusters are named by their hosts here.
        (None, Some(c)) => c.to_string(),
    };
    let backend = host.split('#').next().unwrap_or(&host).to_string();
    if backend_service(&state, &backend).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "Service {backend} could not be found."
        )));
    }
    let mut images: Vec<ManageableVolume> = state
        .rpc
        .call_as(
            &cinder_rpc::topology::backend_queue(&backend),
            &r.ctx.request_id,
            &crate::volumes::rpc_ctx(&r),
            GetManageableVolumes {},
            Duration::from_secs(state.rpc_timeout_secs),
        )
        .await
        .map_err(|e| match e {
            cinder_rpc::RpcError::Remote(remote)
                if !matches!(
                    remote.kind,
                    RemoteErrorKind::InvalidInput | RemoteErrorKind::NotFound
                ) =>
            {
                ApiError::internal(format!(
                    "Unable to list the manageable volumes of {backend}: {}",
                    remote.message
                ))
            }
            e => crate::actions::rpc_failure(e),
        })?;
    images.sort_by(|a, b| {
        for (by, dir) in &sort {
            let o = match by {
                SortBy::Reference => a.name.cmp(&b.name),
                SortBy::Size => a.size_gib.cmp(&b.size_gib),
            };
            let o = match dir {
                SortDir::Asc => o,
                SortDir::Desc => o.reverse(),
            };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let start = match &p.marker {
        None => 0,
        Some(m) => {
            let reference: Value = serde_json::from_str(m).map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid input received: marker {m} can not be analysed, please use json like format"
                ))
            })?;
            // The whole reference must match, as Cinder compares them.
            match images
                .iter()
                .position(|i| reference == json!({"source-name": i.name}))
            {
                Some(i) => i + 1,
                None => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input received: marker not found: {m}"
                    )))
                }
            }
        }
    };
    let page: Vec<Value> = images
        .iter()
        .skip(start.saturating_add(p.offset as usize))
        .take(p.limit as usize)
        .map(|i| {
            let mut doc = json!({
                "reference": {"source-name": i.name},
                "size": i.size_gib,
                "safe_to_manage": i.safe_to_manage,
            });
            if detail {
                doc["reason_not_safe"] = json!(i.reason_not_safe);
                doc["cinder_id"] = json!(i.cinder_id);
                doc["extra_info"] = Value::Null;
            }
            doc
        })
        .collect();
    Ok(Json(json!({ "manageable-volumes": page })).into_response())
}
