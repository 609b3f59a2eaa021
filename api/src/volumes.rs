//! `/volumes`: create (blank, from a snapshot, from a volume), list, detail, show,
//! update, delete (`cascade`, `force`), metadata, summary (3.12).
//!
//! Create is Cinder's API flow: validate, resolve the type and the source, reserve the
//! quota (`volumes`, `gigabytes` and the type's own), write the row with its metadata
//! and commit the reservation in one transaction, then cast to the scheduler.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_common::status::{AttachStatus, SnapshotStatus, VolumeStatus};
use cinder_db::entity::volumes;
use cinder_db::{Metadata, NewVolume, VolumeListQuery, VolumeSortKey};
use cinder_rpc::messages::{
    DeleteVolume, RequestContext, Retry, ScheduleCreateVolume, SchedulerHints, SchedulerTopic,
    VolumeRequest, VolumeTopic, VolumeTypeSpec,
};
use serde_json::{json, Value};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::images;
use crate::listing::{parse_metadata_filter, ListParams};
use crate::request::Req;
use crate::schema::{self, schema};
use crate::views::{self, VolumeExtras};
use crate::AppState;

schema!(
    CREATE,
    json!({
        "type": "object",
        "properties": {
            "volume": {
                "type": "object",
                "properties": {
                    "name": schema::name(),
                    "description": schema::description(),
                    "display_name": schema::name(),
                    "display_description": schema::description(),
                    "size": schema::size_or_null(),
                    "volume_type": {"type": ["string", "null"], "maxLength": 255},
                    "availability_zone": {"type": ["string", "null"], "maxLength": 255},
                    "snapshot_id": schema::uuid_or_null(),
                    "source_volid": schema::uuid_or_null(),
                    "backup_id": schema::uuid_or_null(),
                    "imageRef": {"type": ["string", "null"], "maxLength": 1024},
                    "image_id": {"type": ["string", "null"], "maxLength": 1024},
                    "metadata": schema::metadata(),
                    "multiattach": schema::boolean(),
                    "consistencygroup_id": schema::uuid_or_null(),
                    "group_id": schema::uuid_or_null(),
                },
                "additionalProperties": true,
            },
            "OS-SCH-HNT:scheduler_hints": {
                "type": ["object", "null"],
                "properties": {
                    "same_host": {"type": ["string", "array"], "items": {"type": "string"}},
                    "different_host": {"type": ["string", "array"], "items": {"type": "string"}},
                },
            },
        },
        "required": ["volume"],
        "additionalProperties": false,
    })
);

schema!(
    UPDATE,
    json!({
        "type": "object",
        "properties": {
            "volume": {
                "type": "object",
                "properties": {
                    "name": schema::name(),
                    "description": schema::description(),
                    "display_name": schema::name(),
                    "display_description": schema::description(),
                    "metadata": schema::metadata(),
                },
                "additionalProperties": false,
            },
        },
        "required": ["volume"],
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

schema!(
    META_ITEM,
    json!({
        "type": "object",
        "properties": {"meta": {
            "type": "object",
            "patternProperties": {"^.{1,255}$": {"type": "string", "maxLength": 255}},
            "additionalProperties": false,
            "minProperties": 1,
            "maxProperties": 1,
        }},
        "required": ["meta"],
        "additionalProperties": false,
    })
);

/// The RPC context of the caller.
pub(crate) fn rpc_ctx(r: &Req) -> RequestContext {
    RequestContext {
        project_id: Some(r.ctx.project_id.clone()),
        user_id: Some(r.ctx.user_id.clone()),
        is_admin: r.ctx.is_admin,
        auth_token: r.ctx.auth_token.clone(),
    }
}

/// 404 in Cinder's words.
pub(crate) fn volume_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume {id} could not be found."))
}

/// Volume `id` if the caller may see it (its project's, or any for an admin).
pub(crate) async fn visible_volume(
    state: &AppState,
    r: &Req,
    id: &str,
) -> Result<volumes::Model, ApiError> {
    match state.db.volume(id).await {
        Ok(v) if r.ctx.is_admin || v.project_id == r.ctx.project_id => Ok(v),
        Ok(_) | Err(cinder_db::Error::NotFound { .. }) => Err(volume_not_found(id)),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

/// The queue of the backend that holds volume `v` (its cluster's, if clustered).
pub(crate) fn volume_queue(v: &volumes::Model) -> Option<String> {
    if let Some(c) = &v.cluster_name {
        return Some(cinder_rpc::topology::cluster_queue(
            c.split('#').next().unwrap_or(c),
        ));
    }
    let host = v.host.as_deref()?;
    Some(cinder_rpc::topology::backend_queue(
        host.split('#').next().unwrap_or(host),
    ))
}

/// Casts `body` to the volume's backend; 503 when the broker does not take it.
pub(crate) async fn cast_to_volume(
    state: &AppState,
    r: &Req,
    v: &volumes::Model,
    body: VolumeRequest,
) -> Result<(), ApiError> {
    let queue = volume_queue(v).ok_or_else(|| {
        ApiError::bad_request(format!("Volume {} is not placed on any backend.", v.id))
    })?;
    state
        .rpc
        .cast_as::<VolumeTopic>(&queue, &r.ctx.request_id, &rpc_ctx(r), body)
        .await
        .map_err(|e| ApiError::unavailable(format!("the volume service cannot be reached: {e}")))
}

/// Metadata, attachments and type names of `rows`.
pub(crate) async fn extras(
    state: &AppState,
    rows: &[volumes::Model],
) -> Result<VolumeExtras, ApiError> {
    state
        .db
        .volume_details(rows)
        .await
        .map_err(ApiError::from_db)
}

/// One volume's detail document.
pub(crate) async fn detail_of(
    state: &AppState,
    r: &Req,
    v: &volumes::Model,
) -> Result<Value, ApiError> {
    let x = extras(state, std::slice::from_ref(v)).await?;
    Ok(views::volume_detail(r, v, &x))
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

fn metadata_of(v: Option<&Value>) -> Metadata {
    schema::string_map(v)
}

fn hint_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// A reservation that did not fit, in Cinder's words (413).
pub(crate) fn over_quota(e: cinder_db::Error) -> ApiError {
    match e {
        cinder_db::Error::OverQuota {
            resource,
            requested,
            limit,
            in_use,
            reserved,
        } => {
            let consumed = in_use + reserved;
            if resource.starts_with("gigabytes") {
                ApiError::too_large(format!(
                    "Requested volume or snapshot exceeds allowed {resource} quota. Requested {requested}G, quota is {limit}G and {consumed}G has been consumed."
                ))
            } else if resource.starts_with("snapshots") {
                ApiError::too_large(format!(
                    "Maximum number of snapshots allowed ({limit}) exceeded for quota '{resource}'."
                ))
            } else if resource.starts_with("backup") {
                ApiError::too_large(format!(
                    "Maximum number of backups allowed ({limit}) exceeded for quota '{resource}'."
                ))
            } else {
                ApiError::too_large(format!(
                    "Maximum number of volumes allowed ({limit}) exceeded for quota '{resource}'."
                ))
            }
        }
        e => ApiError::from_db(e),
    }
}

/// Reserves `deltas` for the caller's project against its limits.
pub(crate) async fn reserve(
    state: &AppState,
    project: &str,
    deltas: &[(String, i64)],
) -> Result<Vec<cinder_db::ReservationId>, ApiError> {
    let limits = state
        .db
        .quota_limits(project, &state.quota.defaults())
        .await
        .map_err(ApiError::from_db)?;
    let d: Vec<(&str, i64)> = deltas.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    state
        .db
        .reserve(
            project,
            &d,
            &limits,
            std::time::Duration::from_secs(state.quota.reservation_expire),
        )
        .await
        .map_err(over_quota)
}

/// The type a create asked for, or the default one.
async fn resolve_type(
    state: &AppState,
    r: &Req,
    asked: Option<&str>,
    inherited: Option<&str>,
) -> Result<cinder_db::VolumeType, ApiError> {
    // Named by the request or inherited: a type the caller must be able to use. The
    // project's own default likewise (a private type it lost access to is a 404, as
    // Cinder's); only a missing `default_volume_type` is the operator's fault.
    let (name, explicit) = match (asked, inherited) {
        (Some(a), _) => (a.to_string(), true),
        (None, Some(t)) => (t.to_string(), false),
        (None, None) => crate::types::project_default_or_conf(state, &r.ctx.project_id).await?,
    };
    match state.db.volume_type_by_name_or_id(&name).await {
        Ok(t) if crate::types::may_use(state, r, &t.id).await? => Ok(t),
        Ok(_) | Err(cinder_db::Error::NotFound { .. }) if explicit => Err(ApiError::not_found(
            format!("Volume type with name {name} could not be found."),
        )),
        Ok(_) | Err(cinder_db::Error::NotFound { .. }) => Err(ApiError::internal(format!(
            "The default volume type {name} does not exist."
        ))),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

/// The availability zones volumes may be created in.
pub(crate) async fn zones(state: &AppState) -> Result<Vec<String>, ApiError> {
    let mut z: Vec<String> = state
        .db
        .services()
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .filter(|s| s.binary == "cinder-volume")
        .map(|s| s.availability_zone)
        .collect();
    z.push(state.default_az.clone());
    z.sort();
    z.dedup();
    Ok(z)
}

/// `POST /volumes`.
pub(crate) async fn create(
    State(state): State<AppState>,
    r: Req,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let row = create_volume(&state, &r, &body).await?;
    let doc = detail_of(&state, &r, &row).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "volume": doc }))).into_response())
}

/// A create's work (`POST /volumes` with `body`): checks, quota, the row, the cast to
/// the scheduler. Also how a restore makes its new volume.
pub(crate) async fn create_volume(
    state: &AppState,
    r: &Req,
    body: &Value,
) -> Result<volumes::Model, ApiError> {
    CREATE.check(body)?;
    let vol = &body["volume"];
    if text(vol.get("backup_id")).is_some() {
        return Err(ApiError::bad_request(
            "Creating a volume from a backup is not available in this release.",
        ));
    }
    if text(vol.get("consistencygroup_id")).is_some() || text(vol.get("group_id")).is_some() {
        return Err(ApiError::bad_request(
            "Consistency groups and generic volume groups are not supported.",
        ));
    }
    let snapshot_id = text(vol.get("snapshot_id"));
    let source_volid = text(vol.get("source_volid"));
    // Cinder: `image_id` wins over `imageRef`.
    let image_ref = text(vol.get("image_id")).or(text(vol.get("imageRef")));
    let sources = [
        snapshot_id.is_some(),
        source_volid.is_some(),
        image_ref.is_some(),
    ];
    if sources.into_iter().filter(|s| *s).count() > 1 {
        return Err(ApiError::bad_request(
            "Invalid input received: May specify only one of backup, imageRef, snapshot, source volume",
        ));
    }
    let mut size = vol.get("size").and_then(schema::as_size);
    let mut inherited_type: Option<String> = None;
    let mut az = text(vol.get("availability_zone"));
    let mut bootable = false;
    let mut image_metadata = Metadata::new();
    let mut image: Option<cinder_glance::Image> = None;
    // The source decides what the request leaves out, and bounds the size.
    if let Some(sid) = &snapshot_id {
        let s = match state.db.snapshot(sid).await {
            Ok(s) if r.ctx.is_admin || s.project_id == r.ctx.project_id => s,
            Ok(_) | Err(cinder_db::Error::NotFound { .. }) => {
                return Err(ApiError::not_found(format!(
                    "Snapshot {sid} could not be found."
                )))
            }
            Err(e) => return Err(ApiError::from_db(e)),
        };
        if s.status != SnapshotStatus::Available {
            return Err(ApiError::bad_request(format!(
                "Invalid snapshot: Originating snapshot status must be one of 'available' values (it is {}).",
                s.status
            )));
        }
        let parent = state.db.volume(&s.volume_id).await.ok();
        let ssize = i64::from(s.volume_size);
        match size {
            None => size = Some(ssize),
            Some(n) if n < ssize => {
                return Err(ApiError::bad_request(format!(
                    "Invalid input received: Volume size '{n}'GB cannot be smaller than the snapshot size {ssize}GB. They must be >= original snapshot size."
                )))
            }
            _ => {}
        }
        inherited_type = s.volume_type_id.clone();
        if let Some(p) = parent {
            az = az.or(p.availability_zone.clone());
            bootable = p.bootable;
        }
        image_metadata = state
            .db
            .image_metadata(cinder_db::ImageMetadataOf::Snapshot(sid))
            .await
            .map_err(ApiError::from_db)?;
    }
    if let Some(src) = &source_volid {
        let s = visible_volume(state, r, src).await?;
        if !matches!(s.status, VolumeStatus::Available | VolumeStatus::InUse) {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: Source volume status must be available or in-use (it is {}).",
                s.status
            )));
        }
        let ssize = i64::from(s.size);
        match size {
            None => size = Some(ssize),
            Some(n) if n < ssize => {
                return Err(ApiError::bad_request(format!(
                    "Invalid input received: Volume size '{n}'GB cannot be smaller than the source volume size {ssize}GB. They must be >= original volume size."
                )))
            }
            _ => {}
        }
        inherited_type = s.volume_type_id.clone();
        az = az.or(s.availability_zone.clone());
        bootable = s.bootable;
        image_metadata = state
            .db
            .image_metadata(cinder_db::ImageMetadataOf::Volume(src))
            .await
            .map_err(ApiError::from_db)?;
    }
    let Some(size) = size else {
        if image_ref.is_some() {
            return Err(ApiError::bad_request(
                "Invalid input received: a volume made from an image needs a size (GiB).",
            ));
        }
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute size. Value: None. None is not of type 'integer', 'string'",
        ));
    };
    let mut image_type: Option<String> = None;
    if let Some(reference) = &image_ref {
        let i = images::resolve(state, r.ctx.token(), reference).await?;
        images::check(&i, size)?;
        // The image's volume type when the request names none (as if the request named
        // it: an unknown one is a 404, as Cinder's).
        image_type = i.properties().get(images::TYPE_PROPERTY).cloned();
        bootable = true;
        image_metadata = images::metadata_of(&i);
        image = Some(i);
    }
    if state.quota.per_volume_gigabytes >= 0 && size > state.quota.per_volume_gigabytes {
        return Err(ApiError::too_large(format!(
            "Requested volume size {size}G is larger than maximum allowed limit {}G.",
            state.quota.per_volume_gigabytes
        )));
    }
    let asked_type = text(vol.get("volume_type")).or(image_type);
    let ty = resolve_type(state, r, asked_type.as_deref(), inherited_type.as_deref()).await?;
    let az = az.unwrap_or_else(|| state.default_az.clone());
    if !zones(state).await?.contains(&az) {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: Availability zone '{az}' is invalid."
        )));
    }
    let multiattach = vol
        .get("multiattach")
        .and_then(schema::as_bool)
        .unwrap_or(false)
        || ty
            .extra_specs
            .get("multiattach")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("<is> true"));
    let hints = body.get("OS-SCH-HNT:scheduler_hints");
    let hints = SchedulerHints {
        same_host: hint_list(hints.and_then(|h| h.get("same_host"))),
        different_host: hint_list(hints.and_then(|h| h.get("different_host"))),
    };
    let named: Vec<String> = [&hints.same_host, &hints.different_host]
        .into_iter()
        .flatten()
        .flatten()
        .cloned()
        .collect();
    for id in &named {
        visible_volume(state, r, id).await?;
    }
    let metadata = metadata_of(vol.get("metadata"));
    let name = text(vol.get("name")).or(text(vol.get("display_name")));
    let description = text(vol.get("description")).or(text(vol.get("display_description")));

    let deltas = cinder_db::volume_quota_deltas(Some(&ty.name), size);
    let reservations = reserve(state, &r.ctx.project_id, &deltas).await?;
    let new = NewVolume {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: r.ctx.project_id.clone(),
        user_id: r.ctx.user_id.clone(),
        name,
        description,
        size_gib: size as i32,
        availability_zone: Some(az.clone()),
        volume_type_id: Some(ty.id.clone()),
        snapshot_id: snapshot_id.clone(),
        source_volid: source_volid.clone(),
        image_id: image.as_ref().map(|i| i.id().to_string()),
        multiattach,
        bootable,
        host: None,
        image_metadata,
    };
    let row = match state
        .db
        .create_volume_counted(
            &new,
            &cinder_common::ops::volume::CREATE,
            &metadata,
            &reservations,
        )
        .await
    {
        Ok(row) => row,
        Err(e) => {
            let _ = state.db.rollback_reservations(&reservations).await;
            return Err(ApiError::from_db(e));
        }
    };
    let ask = ScheduleCreateVolume {
        volume_id: row.id.clone(),
        size_gib: size as u64,
        volume_type: Some(VolumeTypeSpec {
            id: ty.id.clone(),
            name: ty.name.clone(),
            extra_specs: ty.extra_specs.clone(),
        }),
        availability_zone: Some(az),
        snapshot_id,
        source_volid,
        image_location: None,
        image: image.as_ref().map(|i| Box::new(images::source_of(i))),
        scheduler_hints: hints,
        retry: Retry::default(),
    };
    if let Err(e) = state
        .rpc
        .cast_as::<SchedulerTopic>(
            &state.scheduler_topic,
            &r.ctx.request_id,
            &rpc_ctx(r),
            ask.into(),
        )
        .await
    {
        tracing::error!(volume_id = %row.id, error = %e, "the create could not be cast to the scheduler");
        let _ = state
            .db
            .finish(
                None,
                &cinder_db::Ending::volume(
                    &cinder_common::ops::volume::CREATE,
                    &row.id,
                    cinder_common::ops::Outcome::Failed,
                ),
            )
            .await;
        return Err(ApiError::unavailable(format!(
            "The scheduler cannot be reached; volume {} is in error and may be deleted.",
            row.id
        )));
    }
    tracing::info!(volume_id = %row.id, size, "volume create accepted");
    Ok(row)
}

fn volume_sort_key(k: &str) -> Option<VolumeSortKey> {
    Some(match k {
        "created_at" => VolumeSortKey::CreatedAt,
        "updated_at" => VolumeSortKey::UpdatedAt,
        "id" => VolumeSortKey::Id,
        "name" | "display_name" => VolumeSortKey::Name,
        "size" => VolumeSortKey::Size,
        "status" => VolumeSortKey::Status,
        "availability_zone" => VolumeSortKey::AvailabilityZone,
        _ => return None,
    })
}

/// The listing a request asks for; `None` when a filter matches nothing by
/// construction (an unknown status).
fn volume_query(r: &Req, p: &ListParams) -> Result<Option<VolumeListQuery>, ApiError> {
    let mut q = VolumeListQuery {
        project_id: Some(r.ctx.project_id.clone()),
        sort: p.sort_keys(volume_sort_key)?,
        marker: p.marker.clone(),
        limit: p.limit,
        offset: p.offset,
        ..Default::default()
    };
    if r.ctx.is_admin && p.all_tenants {
        q.project_id = None;
    }
    let like = r.v.at_least(34);
    for (k, val) in &p.filters {
        match k.as_str() {
            "name" | "display_name" => q.name = Some(val.clone()),
            "name~" | "display_name~" if like => q.name_like = Some(val.clone()),
            "description~" | "display_description~" if like => {
                q.description_like = Some(val.clone())
            }
            "status" => match val.parse::<VolumeStatus>() {
                Ok(s) => q.status = Some(s),
                Err(_) => return Ok(None),
            },
            "availability_zone" => q.availability_zone = Some(val.clone()),
            "bootable" => {
                q.bootable = Some(cinder_common::strutils::bool_from_string(val).ok_or_else(
                    || ApiError::bad_request(format!("Invalid value '{val}' for bootable")),
                )?)
            }
            "size" => {
                q.size = Some(val.parse().map_err(|_| {
                    ApiError::bad_request(format!("Invalid value '{val}' for size"))
                })?)
            }
            "metadata" => q.metadata = parse_metadata_filter(val)?,
            "project_id" if r.ctx.is_admin && p.all_tenants => q.project_id = Some(val.clone()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid filters {k} are found in query options."
                )))
            }
        }
    }
    Ok(Some(q))
}

async fn list(state: &AppState, r: &Req, detailed: bool) -> Result<Response, ApiError> {
    let p = ListParams::parse(&r.query, r.v, state.max_limit)?;
    let q = volume_query(r, &p)?;
    let (rows, x, count) = match &q {
        None => (vec![], VolumeExtras::default(), 0),
        Some(q) => {
            let read = if detailed {
                state.db.list_volumes_detailed(q).await
            } else {
                state
                    .db
                    .list_volumes(q)
                    .await
                    .map(|rows| (rows, Default::default()))
            };
            let (rows, x) = match read {
                Ok(read) => read,
                Err(cinder_db::Error::NotFound { kind: "marker", id }) => {
                    return Err(ApiError::bad_request(format!(
                        "Marker {id} could not be found."
                    )))
                }
                Err(e) => return Err(ApiError::from_db(e)),
            };
            let count = if p.with_count {
                state.db.count_volumes(q).await.map_err(ApiError::from_db)?
            } else {
                0
            };
            (rows, x, count)
        }
    };
    let next = rows
        .last()
        .filter(|_| p.has_next(rows.len(), state.max_limit))
        .map(|last| crate::listing::next_link(&r.base, &r.path, &r.query, &last.id));
    let page = VolumePage {
        r,
        rows: &rows,
        x: detailed.then_some(&x),
        next,
        count: p.with_count.then_some(count),
    };
    // Written straight into the body (no `Value` tree), into a buffer sized for the page
    // up front: a detailed volume is 1-1.5 KB, and growing from axum's 128 bytes copied
    // the body about ten times.
    let per_row = if detailed { 2048 } else { 320 };
    let mut body = Vec::with_capacity(256 + rows.len() * per_row);
    serde_json::to_writer(&mut body, &page)
        .map_err(|e| ApiError::internal(format!("cannot write the volume list: {e}")))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A page of volumes, written straight from the rows.
struct VolumePage<'a> {
    r: &'a Req,
    rows: &'a [volumes::Model],
    /// `Some` for details.
    x: Option<&'a VolumeExtras>,
    next: Option<String>,
    count: Option<u64>,
}

impl serde::Serialize for VolumePage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.r;
        let mut m = s.serialize_map(None)?;
        match self.x {
            Some(x) => m.serialize_entry(
                "volumes",
                &views::Seq(self.rows.iter().map(|v| views::VolumeDetail { r, v, x })),
            )?,
            None => m.serialize_entry(
                "volumes",
                &views::Seq(self.rows.iter().map(|v| views::VolumeSummary { r, v })),
            )?,
        }
        if let Some(href) = &self.next {
            m.serialize_entry("volumes_links", &[json!({"href": href, "rel": "next"})])?;
        }
        if let Some(c) = self.count {
            m.serialize_entry("count", &c)?;
        }
        m.end()
    }
}

/// `GET /volumes`.
pub(crate) async fn index(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    list(&state, &r, false).await
}

/// `GET /volumes/detail`.
pub(crate) async fn detail(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    list(&state, &r, true).await
}

/// `GET /volumes/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let v = visible_volume(&state, &r, &id).await?;
    Ok(Json(json!({ "volume": detail_of(&state, &r, &v).await? })).into_response())
}

/// `PUT /volumes/{id}`.
pub(crate) async fn update(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    UPDATE.check(&body)?;
    let v = visible_volume(&state, &r, &id).await?;
    let u = &body["volume"];
    let field = |a: &str, b: &str| -> Option<Option<String>> {
        u.get(a)
            .or(u.get(b))
            .map(|x| x.as_str().map(str::to_string))
    };
    let rename = cinder_db::Rename {
        name: field("name", "display_name"),
        description: field("description", "display_description"),
    };
    let v = state
        .db
        .rename_volume(&v.id, &rename)
        .await
        .map_err(ApiError::from_db)?;
    if let Some(m) = u.get("metadata") {
        state
            .db
            .set_volume_metadata(&v.id, &metadata_of(Some(m)), true)
            .await
            .map_err(ApiError::from_db)?;
    }
    Ok(Json(json!({ "volume": detail_of(&state, &r, &v).await? })).into_response())
}

/// `DELETE /volumes/{id}[?cascade=true][&force=true]`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let flag = |k: &str| -> Result<bool, ApiError> {
        match r.query_value(k) {
            None => Ok(false),
            Some(v) => cinder_common::strutils::bool_from_string(v)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid value '{v}' for {k}"))),
        }
    };
    let cascade = flag("cascade")?;
    let force = r.v.at_least(23) && flag("force")?;
    if force {
        r.ctx.require_admin("volume:force_delete")?;
    }
    let v = visible_volume(&state, &r, &id).await?;
    delete_volume(&state, &r, &v, cascade, force).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The checks and state changes of a delete, then the cast (shared with
/// `os-force_delete`).
pub(crate) async fn delete_volume(
    state: &AppState,
    r: &Req,
    v: &volumes::Model,
    cascade: bool,
    force: bool,
) -> Result<(), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer.",
        )
    };
    if v.attach_status == AttachStatus::Attached {
        return Err(invalid());
    }
    let snaps = state
        .db
        .snapshots_of_volume(&v.id)
        .await
        .map_err(ApiError::from_db)?;
    if !snaps.is_empty() {
        if !cascade {
            return Err(invalid());
        }
        if let Some(s) = snaps.iter().find(|s| {
            !matches!(
                s.status,
                SnapshotStatus::Available | SnapshotStatus::Error | SnapshotStatus::Deleting
            )
        }) {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: Snapshot {} is {}: a cascade delete needs every snapshot available or in error.",
                s.id, s.status
            )));
        }
    }
    if v.host.is_none() && v.cluster_name.is_none() {
        // Never placed: nothing on a backend; the row goes here.
        if !force && !cinder_common::ops::volume::DELETE.begins_from(v.status) {
            return Err(invalid());
        }
        state
            .db
            .reset_status(&v.id, VolumeStatus::Deleting)
            .await
            .map_err(ApiError::from_db)?;
        return state
            .db
            .finish(
                None,
                &cinder_db::Ending::volume(
                    &cinder_common::ops::volume::DELETE,
                    &v.id,
                    cinder_common::ops::Outcome::Done,
                ),
            )
            .await
            .map_err(ApiError::from_db);
    }
    let began = if force {
        state.db.reset_status(&v.id, VolumeStatus::Deleting).await
    } else {
        state
            .db
            .begin(&cinder_common::ops::volume::DELETE, &v.id)
            .await
    };
    match began {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { .. }) => return Err(invalid()),
        Err(e) => return Err(ApiError::from_db(e)),
    }
    // A cascade: the volume service deletes the snapshots marked `deleting` first.
    for s in &snaps {
        if s.status != SnapshotStatus::Deleting {
            match state
                .db
                .begin(&cinder_common::ops::snapshot::DELETE, &s.id)
                .await
            {
                Ok(()) | Err(cinder_db::Error::Conflict { .. }) => {}
                Err(e) => return Err(ApiError::from_db(e)),
            }
        }
    }
    cast_to_volume(
        state,
        r,
        v,
        VolumeRequest::DeleteVolume(DeleteVolume {
            volume_id: v.id.clone(),
        }),
    )
    .await
}

/// `GET /volumes/summary` (3.12): count and total size of the visible volumes, and
/// (3.36) every metadata key with its values.
pub(crate) async fn summary(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    r.since(12)?;
    let p = ListParams::parse(&r.query, r.v, u64::MAX)?;
    let mut q = VolumeListQuery {
        project_id: Some(r.ctx.project_id.clone()),
        limit: u64::MAX >> 1,
        ..Default::default()
    };
    if r.ctx.is_admin && p.all_tenants {
        q.project_id = None;
    }
    let rows = state.db.list_volumes(&q).await.map_err(ApiError::from_db)?;
    let total_size: i64 = rows.iter().map(|v| i64::from(v.size)).sum();
    let mut out = json!({"total_size": total_size, "total_count": rows.len()});
    if r.v.at_least(36) {
        let ids: Vec<String> = rows.iter().map(|v| v.id.clone()).collect();
        let meta = state
            .db
            .volume_metadata_many(&ids)
            .await
            .map_err(ApiError::from_db)?;
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in meta.values() {
            for (k, v) in m {
                let vals = keys.entry(k.clone()).or_default();
                if !vals.contains(v) {
                    vals.push(v.clone());
                }
            }
        }
        out["metadata"] = json!(keys);
    }
    Ok(Json(json!({ "volume-summary": out })).into_response())
}

/// `GET /volumes/{id}/metadata`.
pub(crate) async fn metadata_show(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let v = visible_volume(&state, &r, &id).await?;
    let m = state
        .db
        .volume_metadata(&v.id)
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
    let v = visible_volume(state, r, id).await?;
    if v.status == VolumeStatus::Maintenance {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: Volume {} is in maintenance.",
            v.id
        )));
    }
    let m = state
        .db
        .set_volume_metadata(&v.id, &metadata_of(body.get("metadata")), replace)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "metadata": m })).into_response())
}

/// `POST /volumes/{id}/metadata`: adds or updates keys.
pub(crate) async fn metadata_update(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    write_metadata(&state, &r, &id, &body, false).await
}

/// `PUT /volumes/{id}/metadata`: replaces all.
pub(crate) async fn metadata_replace(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    write_metadata(&state, &r, &id, &body, true).await
}

/// `GET /volumes/{id}/metadata/{key}`.
pub(crate) async fn metadata_item(
    State(state): State<AppState>,
    r: Req,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let v = visible_volume(&state, &r, &id).await?;
    let m = state
        .db
        .volume_metadata(&v.id)
        .await
        .map_err(ApiError::from_db)?;
    match m.get(&key) {
        Some(val) => Ok(Json(json!({ "meta": { key: val } })).into_response()),
        None => Err(ApiError::not_found(format!(
            "Metadata item was not found: {key}"
        ))),
    }
}

/// `PUT /volumes/{id}/metadata/{key}`: the body's one key must be `key`.
pub(crate) async fn metadata_item_set(
    State(state): State<AppState>,
    r: Req,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    META_ITEM.check(&body)?;
    let item = metadata_of(body.get("meta"));
    if !item.contains_key(&key) {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    let v = visible_volume(&state, &r, &id).await?;
    state
        .db
        .set_volume_metadata(&v.id, &item, false)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "meta": item })).into_response())
}

/// `DELETE /volumes/{id}/metadata/{key}`.
pub(crate) async fn metadata_item_delete(
    State(state): State<AppState>,
    r: Req,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let v = visible_volume(&state, &r, &id).await?;
    match state.db.delete_volume_metadata_key(&v.id, &key).await {
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
        for s in [&*CREATE, &*UPDATE, &*METADATA, &*META_ITEM] {
            let _ = s.check(&json!({}));
        }
        assert!(CREATE.check(&json!({"volume": {"size": 1}})).is_ok());
        assert!(CREATE
            .check(&json!({"volume": {"size": 1}, "bogus": 1}))
            .is_err());
        assert_eq!(volume_sort_key("display_name"), Some(VolumeSortKey::Name));
    }
}
