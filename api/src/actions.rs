//! `POST /volumes/{id}/action` and `POST /snapshots/{id}/action`: one action per body
//! (none or several: 400 "Malformed request body"; an unknown one: 400 "There is no such
//! action"), each with its JSON schema, preconditions and codes as Cinder's.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_common::ops;
use cinder_common::status::{AttachStatus, SnapshotStatus, VolumeStatus};
use cinder_db::entity::volumes;
use cinder_rpc::messages::{
    CopyVolumeToImage, ExtendVolume, InitializeConnection, Reimage, Retype, RevertToSnapshot,
    TerminateConnection, UnmanageVolume, VolumeRequest,
};
use serde_json::{json, Value};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::request::Req;
use crate::schema::{self, schema};
use crate::snapshots::{delete_snapshot, visible_snapshot};
use crate::volumes::{
    cast_to_volume, delete_volume, reserve, rpc_ctx, visible_volume, volume_queue,
};
use crate::AppState;

/// The single `(action, argument)` of an action body.
pub(crate) fn one_action(body: &Value) -> Result<(String, Value), ApiError> {
    match body.as_object() {
        Some(o) if o.len() == 1 => {
            let (k, v) = o.iter().next().expect("one key");
            Ok((k.clone(), v.clone()))
        }
        _ => Err(ApiError::bad_request("Malformed request body")),
    }
}

fn no_such_action(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "There is no such action: {name}. Verify the request body and Content-Type header and try again."
    ))
}

fn action_schema(name: &str, arg: Value) -> Value {
    json!({"type": "object", "properties": {name: arg}, "required": [name],
           "additionalProperties": false})
}

schema!(
    EXTEND,
    action_schema(
        "os-extend",
        json!({"type": "object", "properties": {"new_size": schema::size()},
               "required": ["new_size"], "additionalProperties": false})
    )
);
schema!(
    RESET_STATUS,
    action_schema(
        "os-reset_status",
        json!({"type": "object", "properties": {
                   "status": {"type": ["string", "null"]},
                   "attach_status": {"type": ["string", "null"], "enum": ["attached", "detached", null]},
                   "migration_status": {"type": ["string", "null"]}},
               "additionalProperties": false})
    )
);
schema!(
    SNAPSHOT_RESET_STATUS,
    action_schema(
        "os-reset_status",
        json!({"type": "object", "properties": {"status": {"type": "string"}},
               "required": ["status"], "additionalProperties": false})
    )
);
schema!(
    SET_BOOTABLE,
    action_schema(
        "os-set_bootable",
        json!({"type": "object", "properties": {"bootable": schema::boolean()},
               "required": ["bootable"], "additionalProperties": false})
    )
);
schema!(
    READONLY,
    action_schema(
        "os-update_readonly_flag",
        json!({"type": "object", "properties": {"readonly": schema::boolean()},
               "required": ["readonly"], "additionalProperties": false})
    )
);
schema!(
    ATTACH,
    action_schema(
        "os-attach",
        json!({"type": "object", "properties": {
                   "mountpoint": {"type": "string", "minLength": 1, "maxLength": 255},
                   "instance_uuid": schema::uuid(),
                   "host_name": {"type": "string", "maxLength": 255},
                   "mode": {"type": "string", "enum": ["rw", "ro"]}},
               "required": ["mountpoint"],
               "anyOf": [{"required": ["instance_uuid"]}, {"required": ["host_name"]}],
               "additionalProperties": false})
    )
);
schema!(
    DETACH,
    action_schema(
        "os-detach",
        json!({"type": ["object", "null"], "properties": {"attachment_id": schema::uuid_or_null()},
               "additionalProperties": false})
    )
);
schema!(
    CONNECTOR,
    json!({"type": "object", "properties": {
               "os-initialize_connection": {"type": "object",
                   "properties": {"connector": {"type": ["object", "string"]}},
                   "required": ["connector"], "additionalProperties": false},
               "os-terminate_connection": {"type": "object",
                   "properties": {"connector": {"type": ["object", "string", "null"]}},
                   "required": ["connector"], "additionalProperties": false}},
           "additionalProperties": false})
);
schema!(
    SET_IMAGE_METADATA,
    action_schema(
        "os-set_image_metadata",
        json!({"type": "object", "properties": {"metadata": {
                   "type": "object",
                   "patternProperties": {"^[a-zA-Z0-9-_:. /]{1,255}$": {"type": "string", "maxLength": 65535}},
                   "additionalProperties": false}},
               "required": ["metadata"], "additionalProperties": false})
    )
);
schema!(
    UNSET_IMAGE_METADATA,
    action_schema(
        "os-unset_image_metadata",
        json!({"type": "object", "properties": {"key": {"type": "string", "minLength": 1, "maxLength": 255}},
               "required": ["key"], "additionalProperties": false})
    )
);
fn upload_args(v31: bool) -> Value {
    let mut props = json!({
        "image_name": {"type": "string", "minLength": 1, "maxLength": 255},
        "force": schema::boolean(),
        "disk_format": {"type": "string",
                        "enum": ["raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"]},
        "container_format": {"type": ["string", "null"], "maxLength": 255},
    });
    if v31 {
        props["visibility"] = json!({"type": "string",
                                     "enum": ["community", "public", "private", "shared"]});
        props["protected"] = schema::boolean();
    }
    action_schema(
        "os-volume_upload_image",
        json!({"type": "object", "properties": props, "required": ["image_name"],
               "additionalProperties": false}),
    )
}
schema!(
    REIMAGE,
    action_schema(
        "os-reimage",
        json!({"type": "object", "properties": {
                   "image_id": schema::uuid(),
                   "reimage_reserved": schema::boolean()},
               "required": ["image_id"], "additionalProperties": false})
    )
);
schema!(UPLOAD_IMAGE, upload_args(false));
schema!(UPLOAD_IMAGE_31, upload_args(true));
schema!(
    REVERT,
    action_schema(
        "revert",
        json!({"type": "object", "properties": {"snapshot_id": {"type": ["string", "null"]}},
               "additionalProperties": true})
    )
);
schema!(
    RETYPE,
    action_schema(
        "os-retype",
        json!({"type": "object", "properties": {
                   "new_type": {"type": "string", "minLength": 1, "maxLength": 255},
                   "migration_policy": {"type": ["string", "null"], "enum": ["on-demand", "never", null]}},
               "required": ["new_type"], "additionalProperties": false})
    )
);
schema!(
    UPDATE_SNAPSHOT_STATUS,
    action_schema(
        "os-update_snapshot_status",
        json!({"type": "object", "properties": {
                   "status": {"type": "string"},
                   "progress": {"type": "string", "pattern": "^([0-9]|[1-9][0-9]|100)%$"}},
               "required": ["status"], "additionalProperties": false})
    )
);

fn invalid_volume(reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Invalid volume: {reason}"))
}

/// `POST /volumes/{id}/action`.
pub(crate) async fn volume_action(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (name, _) = one_action(&body)?;
    let s = &state;
    match name.as_str() {
        "os-extend" => extend(s, &r, &id, &body).await,
        "os-reset_status" => reset_status(s, &r, &id, &body).await,
        "os-force_delete" => {
            r.ctx
                .require_admin("volume_extension:volume_admin_actions:force_delete")?;
            let v = visible_volume(s, &r, &id).await?;
            delete_volume(s, &r, &v, false, true).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-set_bootable" => {
            SET_BOOTABLE.check(&body)?;
            let v = visible_volume(s, &r, &id).await?;
            if v.status == VolumeStatus::Maintenance {
                return Err(invalid_volume(
                    "The volume cannot be updated during maintenance.",
                ));
            }
            let b = schema::as_bool(&body["os-set_bootable"]["bootable"]).unwrap_or(false);
            s.db.set_bootable(&v.id, b)
                .await
                .map_err(ApiError::from_db)?;
            Ok(StatusCode::OK.into_response())
        }
        "os-update_readonly_flag" => {
            READONLY.check(&body)?;
            let v = visible_volume(s, &r, &id).await?;
            if v.status != VolumeStatus::Available {
                return Err(invalid_volume(format!(
                    "Volume {} status must be available to update readonly flag, but current status is: {}.",
                    v.id, v.status
                )));
            }
            let ro = schema::as_bool(&body["os-update_readonly_flag"]["readonly"]).unwrap_or(false);
            s.db.set_admin_metadata(&v.id, "readonly", if ro { "True" } else { "False" })
                .await
                .map_err(ApiError::from_db)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-reserve" => {
            let v = visible_volume(s, &r, &id).await?;
            let from: &[VolumeStatus] = if v.multiattach {
                &[VolumeStatus::Available, VolumeStatus::InUse]
            } else {
                &[VolumeStatus::Available]
            };
            match s
                .db
                .move_volume_status(&v.id, from, VolumeStatus::Attaching)
                .await
            {
                Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
                Err(cinder_db::Error::Conflict { found, .. }) => Err(invalid_volume(format!(
                    "Volume status must be available to reserve, but the status is {found}."
                ))),
                Err(e) => Err(ApiError::from_db(e)),
            }
        }
        "os-unreserve" => {
            let v = visible_volume(s, &r, &id).await?;
            s.db.unreserve(&v.id).await.map_err(ApiError::from_db)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-begin_detaching" => {
            let v = visible_volume(s, &r, &id).await?;
            let bad = || {
                invalid_volume("Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.")
            };
            if v.attach_status != AttachStatus::Attached {
                return Err(bad());
            }
            match s
                .db
                .move_volume_status(&v.id, &[VolumeStatus::InUse], VolumeStatus::Detaching)
                .await
            {
                Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
                Err(cinder_db::Error::Conflict { .. }) => Err(bad()),
                Err(e) => Err(ApiError::from_db(e)),
            }
        }
        "os-roll_detaching" => {
            let v = visible_volume(s, &r, &id).await?;
            match s
                .db
                .move_volume_status(&v.id, &[VolumeStatus::Detaching], VolumeStatus::InUse)
                .await
            {
                Ok(()) | Err(cinder_db::Error::Conflict { .. }) => {
                    Ok(StatusCode::ACCEPTED.into_response())
                }
                Err(e) => Err(ApiError::from_db(e)),
            }
        }
        "os-attach" => attach(s, &r, &id, &body).await,
        "os-detach" => detach(s, &r, &id, &body).await,
        "os-initialize_connection" => initialize_connection(s, &r, &id, &body).await,
        "os-terminate_connection" => terminate_connection(s, &r, &id, &body).await,
        "revert" if r.v.at_least(40) => revert(s, &r, &id, &body).await,
        "os-retype" => retype(s, &r, &id, &body).await,
        "os-migrate_volume" => {
            r.ctx
                .require_admin("volume_extension:volume_admin_actions:migrate_volume")?;
            visible_volume(s, &r, &id).await?;
            Err(invalid_volume(
                "Migration between backends is not supported: every backend of this service is the same RBD family. Retype within the backend, or create a volume from this one on the other backend.",
            ))
        }
        "os-unmanage" => {
            r.ctx.require_admin("volume_extension:volume_unmanage")?;
            let v = visible_volume(s, &r, &id).await?;
            unmanage(s, &r, &v).await
        }
        "os-set_image_metadata" => {
            SET_IMAGE_METADATA.check(&body)?;
            let v = visible_volume(s, &r, &id).await?;
            image_metadata_writable(&v, "Updating")?;
            let items = schema::string_map(Some(&body["os-set_image_metadata"]["metadata"]));
            let all = crate::images::set(s, &v.id, &items).await?;
            Ok((StatusCode::OK, Json(json!({ "metadata": all }))).into_response())
        }
        "os-unset_image_metadata" => {
            UNSET_IMAGE_METADATA.check(&body)?;
            let v = visible_volume(s, &r, &id).await?;
            image_metadata_writable(&v, "Deleting")?;
            let key = body["os-unset_image_metadata"]["key"]
                .as_str()
                .unwrap_or_default();
            crate::images::unset(s, &v.id, key).await?;
            Ok(StatusCode::OK.into_response())
        }
        "os-show_image_metadata" => {
            let v = visible_volume(s, &r, &id).await?;
            let all = crate::images::show(s, &v.id).await?;
            Ok((StatusCode::OK, Json(json!({ "metadata": all }))).into_response())
        }
        "os-volume_upload_image" => upload_image(s, &r, &id, &body).await,
        "os-reimage" => reimage(s, &r, &id, &body).await,
        _ => Err(no_such_action(&name)),
    }
}

/// Image properties an upload does not carry over from the volume's image metadata
/// (Cinder's `glance_core_properties`: Glance sets them itself).
const CORE_PROPERTIES: &[&str] = &[
    "checksum",
    "container_format",
    "disk_format",
    "image_name",
    "image_id",
    "min_disk",
    "min_ram",
    "name",
    "size",
];

/// `os-volume_upload_image`: the image is created in Glance (`queued`) before the
/// answer, the volume is `uploading`, and its backend fills the image.
async fn upload_image(
    state: &AppState,
    r: &Req,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let v31 = r.v.at_least(1);
    if v31 {
        UPLOAD_IMAGE_31.check(body)?;
    } else {
        UPLOAD_IMAGE.check(body)?;
    }
    let a = &body["os-volume_upload_image"];
    let v = visible_volume(state, r, id).await?;
    let glance = crate::images::glance(state)?;
    // Cinder's `upload_public` policy (admins only), before the volume's status.
    if v31 && a["visibility"].as_str() == Some("public") {
        r.ctx
            .require_admin("volume_extension:volume_actions:upload_public")?;
    }
    let force =
        a.get("force").and_then(schema::as_bool).unwrap_or(false) && state.enable_force_upload;
    let allowed: &[VolumeStatus] = if force {
        &[VolumeStatus::Available, VolumeStatus::InUse]
    } else {
        &[VolumeStatus::Available]
    };
    let refused = || {
        invalid_volume(format!(
            "Volume {} status must be {}",
            v.id,
            if force {
                "available or in-use"
            } else {
                "available"
            }
        ))
    };
    if !allowed.contains(&v.status) {
        return Err(refused());
    }
    let image_name = a["image_name"].as_str().unwrap_or_default().to_string();
    let disk_format = a["disk_format"].as_str().unwrap_or("raw").to_string();
    let container_format = a["container_format"].as_str().unwrap_or("bare").to_string();
    let mut meta = json!({
        "name": image_name,
        "disk_format": disk_format,
        "container_format": container_format,
    });
    if v31 {
        meta["visibility"] = json!(a["visibility"].as_str().unwrap_or("private"));
        meta["protected"] = json!(a
            .get("protected")
            .and_then(schema::as_bool)
            .unwrap_or(false));
    }
    let image_meta = crate::images::show(state, &v.id).await.unwrap_or_default();
    for (k, val) in &image_meta {
        let reserved = ["os_glance", "img_signature", "signature_verified"]
            .iter()
            .any(|p| k.starts_with(p));
        if !CORE_PROPERTIES.contains(&k.as_str()) && !reserved && meta.get(k).is_none() {
            meta[k] = json!(val);
        }
    }
    match state
        .db
        .begin_from(&ops::volume::UPLOAD, &v.id, allowed)
        .await
    {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { .. }) => return Err(refused()),
        Err(e) => return Err(ApiError::from_db(e)),
    }
    let back = |state: &AppState, id: String| {
        let state = state.clone();
        async move {
            let ending = cinder_db::Ending::volume(
                &ops::volume::UPLOAD,
                &id,
                cinder_common::ops::Outcome::Failed,
            );
            if let Err(e) = state.db.finish(None, &ending).await {
                tracing::error!(volume_id = %id, error = %e, "cannot put the volume back after a failed upload request");
            }
        }
    };
    let image = match glance.create(r.ctx.token(), &meta).await {
        Ok(i) => i,
        Err(e) => {
            back(state, v.id.clone()).await;
            return Err(match e {
                cinder_glance::Error::Refused { message, .. } => {
                    ApiError::bad_request(format!("Glance refused the image: {message}"))
                }
                e => ApiError::unavailable(format!("The image service cannot be reached: {e}")),
            });
        }
    };
    let cast = cast_to_volume(
        state,
        r,
        &v,
        VolumeRequest::CopyVolumeToImage(CopyVolumeToImage {
            volume_id: v.id.clone(),
            image_id: image.id().to_string(),
            disk_format: disk_format.clone(),
            container_format: container_format.clone(),
        }),
    )
    .await;
    if let Err(e) = cast {
        back(state, v.id.clone()).await;
        let _ = glance.delete(r.ctx.token(), image.id()).await;
        return Err(e);
    }
    let volume_type = match &v.volume_type_id {
        Some(t) => match state.db.type_record(t).await {
            Ok(t) => json!({
                "id": t.row.id,
                "name": t.row.name,
                "description": t.row.description,
                "is_public": t.row.is_public,
                // Extra specs name backends: admins only, as the types API shows them.
                "extra_specs": if r.ctx.is_admin { json!(t.extra_specs) } else { json!({}) },
                "qos_specs_id": t.row.qos_specs_id,
                "deleted": false,
                "created_at": crate::views::ts(&t.row.created_at),
                "updated_at": t.row.updated_at.as_ref().map(crate::views::ts),
                "deleted_at": Value::Null,
            }),
            Err(_) => Value::Null,
        },
        None => Value::Null,
    };
    let mut out = json!({
        "id": v.id,
        "updated_at": v.updated_at.as_ref().map(crate::views::ts),
        "status": "uploading",
        "display_description": v.display_description,
        "size": v.size,
        "volume_type": volume_type,
        "image_id": image.id(),
        "container_format": container_format,
        "disk_format": disk_format,
        "image_name": image.name(),
    });
    for k in ["protected", "visibility"] {
        if let Some(x) = image.0.get(k) {
            out[k] = x.clone();
        }
    }
    tracing::info!(volume_id = %v.id, image_id = %image.id(), "upload to image accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "os-volume_upload_image": out })),
    )
        .into_response())
}

/// `os-reimage` (3.68): the volume's data replaced by an image's. Checked here as a
/// create from the image is; the volume is `downloading` until its backend is done.
async fn reimage(state: &AppState, r: &Req, id: &str, body: &Value) -> Result<Response, ApiError> {
    if !r.v.at_least(68) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    REIMAGE.check(body)?;
    let a = &body["os-reimage"];
    let v = visible_volume(state, r, id).await?;
    let reserved = a
        .get("reimage_reserved")
        .and_then(schema::as_bool)
        .unwrap_or(false);
    let live = state
        .db
        .attachments_of_volumes(std::slice::from_ref(&v.id))
        .await
        .map_err(ApiError::from_db)?
        .remove(&v.id)
        .unwrap_or_default();
    if live.len() > 1 {
        return Err(ApiError::conflict(
            "Cannot re-image a volume which is attached to more than one server.",
        ));
    }
    let allowed: &[VolumeStatus] = if reserved {
        &[
            VolumeStatus::Available,
            VolumeStatus::Error,
            VolumeStatus::Reserved,
        ]
    } else {
        &[VolumeStatus::Available, VolumeStatus::Error]
    };
    let refused = |status: &str| {
        invalid_volume(format!(
            "Volume {} status must be {}, but current status is {status}.",
            v.id,
            if reserved {
                "available or error or reserved"
            } else {
                "available or error"
            }
        ))
    };
    if !allowed.contains(&v.status) {
        return Err(refused(v.status.as_str()));
    }
    let image_id = a["image_id"].as_str().unwrap_or_default();
    let glance = crate::images::glance(state)?;
    let image = match glance.image(r.ctx.token(), image_id).await {
        Ok(i) => i,
        Err(cinder_glance::Error::NotFound(_) | cinder_glance::Error::Refused { .. }) => {
            return Err(ApiError::not_found(format!(
                "Image {image_id} could not be found."
            )))
        }
        Err(e) => {
            return Err(ApiError::unavailable(format!(
                "The image service cannot be reached: {e}"
            )))
        }
    };
    crate::images::check(&image, i64::from(v.size))?;
    match state.db.begin(&ops::volume::REIMAGE, &v.id).await {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { found, .. }) => return Err(refused(&found)),
        Err(e) => return Err(ApiError::from_db(e)),
    }
    let cast = cast_to_volume(
        state,
        r,
        &v,
        VolumeRequest::Reimage(Reimage {
            volume_id: v.id.clone(),
            image: crate::images::source_of(&image),
            image_metadata: crate::images::metadata_of(&image),
        }),
    )
    .await;
    if let Err(e) = cast {
        // Nothing was touched: back to where it was (the done end), not `error`.
        let ending = cinder_db::Ending::volume(
            &ops::volume::REIMAGE,
            &v.id,
            cinder_common::ops::Outcome::Done,
        );
        let _ = state.db.finish(None, &ending).await;
        return Err(e);
    }
    tracing::info!(volume_id = %v.id, image_id, "re-image accepted");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Cinder refuses image metadata changes of a volume in maintenance or uploading.
fn image_metadata_writable(v: &volumes::Model, verb: &str) -> Result<(), ApiError> {
    if matches!(
        v.status,
        VolumeStatus::Maintenance | VolumeStatus::Uploading
    ) {
        return Err(invalid_volume(format!(
            "{verb} volume metadata is not allowed for volumes in {} status.",
            v.status
        )));
    }
    Ok(())
}

async fn extend(state: &AppState, r: &Req, id: &str, body: &Value) -> Result<Response, ApiError> {
    EXTEND.check(body)?;
    let v = visible_volume(state, r, id).await?;
    let new_size = schema::as_size(&body["os-extend"]["new_size"]).unwrap_or(0);
    if new_size <= i64::from(v.size) {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {new_size}).",
            v.size
        )));
    }
    let expected = if r.v.at_least(42) && v.status == VolumeStatus::InUse {
        VolumeStatus::InUse
    } else {
        VolumeStatus::Available
    };
    if v.status != expected {
        return Err(invalid_volume(format!(
            "Volume {} status must be '{{'status': '{expected}'}}' to extend, currently {}.",
            v.id, v.status
        )));
    }
    if state.quota.per_volume_gigabytes >= 0 && new_size > state.quota.per_volume_gigabytes {
        return Err(ApiError::too_large(format!(
            "Requested volume size {new_size}G is larger than maximum allowed limit {}G.",
            state.quota.per_volume_gigabytes
        )));
    }
    let type_name = type_name(state, &v).await?;
    let grow = new_size - i64::from(v.size);
    let mut deltas = vec![("gigabytes".to_string(), grow)];
    if let Some(t) = &type_name {
        deltas.push((format!("gigabytes_{t}"), grow));
    }
    let reservations = reserve(state, &v.project_id, &deltas).await?;
    match state.db.begin(&ops::volume::EXTEND, &v.id).await {
        Ok(()) => {}
        Err(e) => {
            let _ = state.db.rollback_reservations(&reservations).await;
            return Err(match e {
                cinder_db::Error::Conflict { found, .. } => invalid_volume(format!(
                    "Volume {} status must be '{{'status': '{expected}'}}' to extend, currently {found}.",
                    v.id
                )),
                e => ApiError::from_db(e),
            });
        }
    }
    state
        .db
        .commit_reservations(&reservations)
        .await
        .map_err(ApiError::from_db)?;
    cast_to_volume(
        state,
        r,
        &v,
        VolumeRequest::ExtendVolume(ExtendVolume {
            volume_id: v.id.clone(),
            new_size_gib: new_size as u64,
        }),
    )
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn type_name(state: &AppState, v: &volumes::Model) -> Result<Option<String>, ApiError> {
    Ok(match &v.volume_type_id {
        Some(t) => state
            .db
            .volume_type_names(std::slice::from_ref(t))
            .await
            .map_err(ApiError::from_db)?
            .remove(t),
        None => None,
    })
}

async fn reset_status(
    state: &AppState,
    r: &Req,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    r.ctx
        .require_admin("volume_extension:volume_admin_actions:reset_status")?;
    RESET_STATUS.check(body)?;
    let a = &body["os-reset_status"];
    let status = a
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_lowercase);
    let attach = a.get("attach_status").and_then(|s| s.as_str());
    let migration = a.get("migration_status").and_then(|s| s.as_str());
    if status.is_none() && attach.is_none() && migration.is_none() {
        return Err(ApiError::bad_request(
            "Must specify 'status', 'attach_status' or 'migration_status' for update.",
        ));
    }
    let status = match status {
        None => None,
        Some(s) => Some(s.parse::<VolumeStatus>().map_err(|_| {
            let all: Vec<&str> = VolumeStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(format!(
                "Volume status: {s} is invalid, valid statuses are: ({}).",
                all.join(", ")
            ))
        })?),
    };
    if migration.is_some_and(|m| m != "none") {
        return Err(ApiError::bad_request(
            "Migration status: this service does not migrate volumes; only 'none' is valid.",
        ));
    }
    let v = visible_volume(state, r, id).await?;
    if matches!(
        status,
        Some(VolumeStatus::Deleting | VolumeStatus::ErrorDeleting | VolumeStatus::Detaching)
    ) {
        return Err(ApiError::bad_request(format!(
            "Cannot reset-state to {}",
            status.expect("matched")
        )));
    }
    let attachments = state
        .db
        .list_attachments(None, Some(&v.id), None)
        .await
        .map_err(ApiError::from_db)?;
    if status == Some(VolumeStatus::InUse) && attachments.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot reset-state to in-use because volume does not have any attachments.",
        ));
    }
    if let Some(s) = status {
        state
            .db
            .reset_status(&v.id, s)
            .await
            .map_err(ApiError::from_db)?;
    }
    match attach {
        Some("detached") => {
            for a in &attachments {
                state.db.detach(&a.id).await.map_err(ApiError::from_db)?;
            }
            state
                .db
                .set_attach_status(&v.id, AttachStatus::Detached)
                .await
                .map_err(ApiError::from_db)?;
        }
        Some("attached") => state
            .db
            .set_attach_status(&v.id, AttachStatus::Attached)
            .await
            .map_err(ApiError::from_db)?,
        _ => {}
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn attach(state: &AppState, r: &Req, id: &str, body: &Value) -> Result<Response, ApiError> {
    ATTACH.check(body)?;
    let a = &body["os-attach"];
    let v = visible_volume(state, r, id).await?;
    if v.status == VolumeStatus::Maintenance {
        return Err(invalid_volume(
            "The volume cannot be attached in maintenance mode.",
        ));
    }
    let mode = a["mode"].as_str().unwrap_or("rw").to_string();
    let ro = state
        .db
        .admin_metadata(&v.id, "readonly")
        .await
        .map_err(ApiError::from_db)?;
    if ro.as_deref() == Some("True") && mode != "ro" {
        return Err(ApiError::bad_request(format!(
            "Invalid attaching mode '{mode}' for volume {}.",
            v.id
        )));
    }
    if v.status == VolumeStatus::InUse && !v.multiattach {
        return Err(invalid_volume(
            "volume is already attached and multiple attachments are not enabled",
        ));
    }
    let from: &[VolumeStatus] = if v.multiattach {
        &[
            VolumeStatus::Attaching,
            VolumeStatus::Available,
            VolumeStatus::Reserved,
            VolumeStatus::InUse,
        ]
    } else {
        &[
            VolumeStatus::Attaching,
            VolumeStatus::Available,
            VolumeStatus::Reserved,
        ]
    };
    let new = cinder_db::NewAttachment {
        id: uuid::Uuid::new_v4().to_string(),
        volume_id: v.id.clone(),
        instance_uuid: a["instance_uuid"].as_str().map(str::to_string),
        attached_host: a["host_name"].as_str().map(str::to_string),
        attach_mode: Some(mode.clone()),
        mountpoint: a["mountpoint"].as_str().map(str::to_string),
    };
    match state.db.attach_now(&new, from).await {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { found, .. }) => {
            return Err(invalid_volume(format!(
                "Volume {} cannot be attached while {found}.",
                v.id
            )))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    }
    state
        .db
        .set_admin_metadata(&v.id, "attached_mode", &mode)
        .await
        .map_err(ApiError::from_db)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn detach(state: &AppState, r: &Req, id: &str, body: &Value) -> Result<Response, ApiError> {
    DETACH.check(body)?;
    let v = visible_volume(state, r, id).await?;
    let attachments = state
        .db
        .list_attachments(None, Some(&v.id), None)
        .await
        .map_err(ApiError::from_db)?;
    let asked = body["os-detach"]
        .get("attachment_id")
        .and_then(|a| a.as_str())
        .map(str::to_string);
    let which =
        match (asked, attachments.len()) {
            (Some(a), _) => {
                if !attachments.iter().any(|x| x.id == a) {
                    return Err(ApiError::not_found(format!(
                        "Volume attachment could not be found with filter: attachment_id = {a}."
                    )));
                }
                Some(a)
            }
            (None, 0) => None,
            (None, 1) => Some(attachments[0].id.clone()),
            (None, _) => return Err(invalid_volume(
                "Detach volume failed: More than one attachment, but no attachment_id provided.",
            )),
        };
    match which {
        Some(a) => {
            state.db.detach(&a).await.map_err(ApiError::from_db)?;
        }
        None => {
            state.db.unreserve(&v.id).await.map_err(ApiError::from_db)?;
            let _ = state
                .db
                .move_volume_status(
                    &v.id,
                    &[VolumeStatus::Detaching, VolumeStatus::InUse],
                    VolumeStatus::Available,
                )
                .await;
            state
                .db
                .set_attach_status(&v.id, AttachStatus::Detached)
                .await
                .map_err(ApiError::from_db)?;
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Calls the volume's backend for connection info for `connector`.
pub(crate) async fn connection_info(
    state: &AppState,
    r: &Req,
    v: &volumes::Model,
    connector: &Value,
) -> Result<cinder_rpc::messages::ConnectionInfo, ApiError> {
    let queue = volume_queue(v)
        .ok_or_else(|| invalid_volume(format!("Volume {} is not placed on any backend.", v.id)))?;
    state
        .rpc
        .call_as(
            &queue,
            &r.ctx.request_id,
            &rpc_ctx(r),
            InitializeConnection {
                volume_id: v.id.clone(),
                connector: connector.clone(),
            },
            Duration::from_secs(state.rpc_timeout_secs),
        )
        .await
        .map_err(rpc_failure)
}

/// A failed call, as Cinder answers one.
pub(crate) fn rpc_failure(e: cinder_rpc::RpcError) -> ApiError {
    match e {
        cinder_rpc::RpcError::Remote(remote) => match remote.kind {
            cinder_rpc::messages::RemoteErrorKind::InvalidInput => {
                ApiError::bad_request(format!("Invalid input received: {}", remote.message))
            }
            cinder_rpc::messages::RemoteErrorKind::NotFound => ApiError::not_found(remote.message),
            _ => ApiError::internal(format!(
                "Unable to fetch connection information from backend: {}",
                remote.message
            )),
        },
        cinder_rpc::RpcError::Timeout(..) => {
            ApiError::unavailable("The volume service did not answer in time.")
        }
        e => ApiError::unavailable(format!("The volume service cannot be reached: {e}")),
    }
}

/// The access mode of `v`'s connections: `ro` when the volume is read-only.
pub(crate) async fn access_mode(state: &AppState, v: &volumes::Model) -> Result<String, ApiError> {
    let attached = state
        .db
        .admin_metadata(&v.id, "attached_mode")
        .await
        .map_err(ApiError::from_db)?;
    if let Some(m) = attached {
        return Ok(m);
    }
    let ro = state
        .db
        .admin_metadata(&v.id, "readonly")
        .await
        .map_err(ApiError::from_db)?;
    Ok(if ro.as_deref() == Some("True") {
        "ro"
    } else {
        "rw"
    }
    .into())
}

async fn initialize_connection(
    state: &AppState,
    r: &Req,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    CONNECTOR.check(body)?;
    let v = visible_volume(state, r, id).await?;
    if v.status == VolumeStatus::Maintenance {
        return Err(invalid_volume(
            "The volume connection cannot be initialized in maintenance mode.",
        ));
    }
    let connector = &body["os-initialize_connection"]["connector"];
    let info = connection_info(state, r, &v, connector).await?;
    let mut data = info.data;
    data["access_mode"] = json!(access_mode(state, &v).await?);
    data["encrypted"] = json!(v.encryption_key_id.is_some());
    data["qos_specs"] = Value::Null;
    Ok(Json(json!({"connection_info": {
        "driver_volume_type": info.driver_volume_type,
        "data": data,
    }}))
    .into_response())
}

async fn terminate_connection(
    state: &AppState,
    r: &Req,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    CONNECTOR.check(body)?;
    let v = visible_volume(state, r, id).await?;
    let queue = volume_queue(&v)
        .ok_or_else(|| invalid_volume(format!("Volume {} is not placed on any backend.", v.id)))?;
    state
        .rpc
        .call_as(
            &queue,
            &r.ctx.request_id,
            &rpc_ctx(r),
            TerminateConnection {
                volume_id: v.id.clone(),
                connector: body["os-terminate_connection"]["connector"].clone(),
            },
            Duration::from_secs(state.rpc_timeout_secs),
        )
        .await
        .map_err(|e| match rpc_failure(e) {
            e if e.status.is_server_error() => {
                ApiError::internal("Unable to terminate volume connection from backend.")
            }
            e => e,
        })?;
    state.db.unreserve(&v.id).await.map_err(ApiError::from_db)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn revert(state: &AppState, r: &Req, id: &str, body: &Value) -> Result<Response, ApiError> {
    REVERT.check(body)?;
    let v = visible_volume(state, r, id).await?;
    let snaps = state
        .db
        .snapshots_of_volume(&v.id)
        .await
        .map_err(ApiError::from_db)?;
    let Some(latest) = snaps.last() else {
        return Err(ApiError::bad_request(format!(
            "Volume {} doesn't have any snapshots.",
            v.id
        )));
    };
    let asked = body["revert"]["snapshot_id"].as_str().unwrap_or("None");
    if asked != latest.id {
        return Err(ApiError::bad_request(format!(
            "Specified snapshot {asked} is None or not the latest one of volume {}.",
            v.id
        )));
    }
    if latest.volume_size != v.size {
        return Err(ApiError::bad_request(format!(
            "Can't revert volume {} to its latest snapshot {}. The volume size must be equal to the snapshot size.",
            v.id, latest.id
        )));
    }
    match state.db.begin(&ops::volume::REVERT, &v.id).await {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { .. }) => {
            return Err(ApiError::conflict(format!(
                "Invalid volume: Can't revert volume {} to its latest snapshot {}. Volume's status must be 'available'.",
                v.id, latest.id
            )))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    }
    match state.db.begin(&ops::snapshot::RESTORE, &latest.id).await {
        Ok(()) => {}
        Err(e) => {
            // Unlike Cinder, the volume does not stay `reverting`.
            let _ = state
                .db
                .move_volume_status(&v.id, &[VolumeStatus::Reverting], VolumeStatus::Available)
                .await;
            return Err(match e {
                cinder_db::Error::Conflict { .. } => ApiError::conflict(format!(
                    "Invalid snapshot: Can't revert volume {} to its latest snapshot {}. Snapshot's status must be 'available'.",
                    v.id, latest.id
                )),
                e => ApiError::from_db(e),
            });
        }
    }
    cast_to_volume(
        state,
        r,
        &v,
        VolumeRequest::RevertToSnapshot(RevertToSnapshot {
            volume_id: v.id.clone(),
            snapshot_id: latest.id.clone(),
        }),
    )
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn retype(state: &AppState, r: &Req, id: &str, body: &Value) -> Result<Response, ApiError> {
    RETYPE.check(body)?;
    let v = visible_volume(state, r, id).await?;
    let asked = body["os-retype"]["new_type"].as_str().unwrap_or_default();
    let ty = match state.db.volume_type_by_name_or_id(asked).await {
        Ok(t) if crate::types::may_use(state, r, &t.id).await? => t,
        Ok(_) | Err(cinder_db::Error::NotFound { .. }) => {
            return Err(ApiError::not_found(format!(
                "Volume type with name {asked} could not be found."
            )))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    };
    let bad = || {
        invalid_volume("Retype needs volume to be in available or in-use state, not be part of an active migration or a consistency group, requested type has to be different that the one from the volume, and for in-use volumes front-end qos specs cannot change.")
    };
    if v.volume_type_id.as_deref() == Some(ty.id.as_str())
        || !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse)
    {
        return Err(bad());
    }
    let to_multi = ty
        .extra_specs
        .get("multiattach")
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("<is> true"));
    if to_multi != v.multiattach && v.status != VolumeStatus::Available {
        return Err(ApiError::bad_request(
            "Invalid input received: Invalid volume_type passed, retypes affecting multiattach are only allowed on available volumes.",
        ));
    }
    // The data stays where it is: the new type must accept this backend.
    let backend_name = v
        .host
        .as_deref()
        .and_then(|h| h.split_once('#'))
        .map(|(_, p)| p.to_string());
    if let (Some(want), Some(have)) = (ty.extra_specs.get("volume_backend_name"), &backend_name) {
        if want != have {
            return Err(invalid_volume(format!(
                "Retype to {} needs backend {want}, but the volume is on {have}: moving data between backends is not supported.",
                ty.name
            )));
        }
    }
    let old = type_name(state, &v).await?;
    let size = i64::from(v.size);
    let new_deltas = vec![
        (format!("volumes_{}", ty.name), 1),
        (format!("gigabytes_{}", ty.name), size),
    ];
    let reservations = reserve(state, &v.project_id, &new_deltas).await?;
    match state.db.begin(&ops::volume::RETYPE, &v.id).await {
        Ok(()) => {}
        Err(e) => {
            let _ = state.db.rollback_reservations(&reservations).await;
            return Err(match e {
                cinder_db::Error::Conflict { .. } => bad(),
                e => ApiError::from_db(e),
            });
        }
    }
    state
        .db
        .commit_reservations(&reservations)
        .await
        .map_err(ApiError::from_db)?;
    if let Some(o) = old {
        state
            .db
            .release_usage(
                &v.project_id,
                &[
                    (format!("volumes_{o}"), 1),
                    (format!("gigabytes_{o}"), size),
                ],
            )
            .await
            .map_err(ApiError::from_db)?;
    }
    cast_to_volume(
        state,
        r,
        &v,
        VolumeRequest::Retype(Retype {
            volume_id: v.id.clone(),
            new_type_id: Some(ty.id.clone()),
            previous_status: v.status.as_str().to_string(),
        }),
    )
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn unmanage(state: &AppState, r: &Req, v: &volumes::Model) -> Result<Response, ApiError> {
    let invalid = || {
        invalid_volume("Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer.")
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
        return Err(invalid());
    }
    match state.db.begin(&ops::volume::UNMANAGE, &v.id).await {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { .. }) => return Err(invalid()),
        Err(e) => return Err(ApiError::from_db(e)),
    }
    cast_to_volume(
        state,
        r,
        v,
        VolumeRequest::UnmanageVolume(UnmanageVolume {
            volume_id: v.id.clone(),
        }),
    )
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /snapshots/{id}/action`.
pub(crate) async fn snapshot_action(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (name, _) = one_action(&body)?;
    match name.as_str() {
        "os-reset_status" => {
            r.ctx
                .require_admin("volume_extension:snapshot_admin_actions:reset_status")?;
            SNAPSHOT_RESET_STATUS.check(&body)?;
            let want = body["os-reset_status"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            let to: SnapshotStatus = want.parse().map_err(|_| {
                let all: Vec<&str> = SnapshotStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(format!(
                    "Snapshot status: {want} is invalid, valid statuses are: ({}).",
                    all.join(", ")
                ))
            })?;
            let s = visible_snapshot(&state, &r, &id).await?;
            state
                .db
                .reset_status(&s.id, to)
                .await
                .map_err(ApiError::from_db)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-force_delete" => {
            r.ctx
                .require_admin("volume_extension:snapshot_admin_actions:force_delete")?;
            let s = visible_snapshot(&state, &r, &id).await?;
            delete_snapshot(&state, &r, &s, true).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-update_snapshot_status" => {
            UPDATE_SNAPSHOT_STATUS.check(&body)?;
            let s = visible_snapshot(&state, &r, &id).await?;
            let want = body["os-update_snapshot_status"]["status"]
                .as_str()
                .unwrap_or_default();
            let allowed: &[&str] = match s.status {
                SnapshotStatus::Creating => &["creating", "available", "error"],
                SnapshotStatus::Deleting => &["deleting", "error_deleting"],
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Snapshot status {other} not allowed for update_snapshot_status"
                    )))
                }
            };
            if !allowed.contains(&want) {
                return Err(ApiError::bad_request(format!(
                    "Provided snapshot status {want} not allowed for snapshot with status {}.",
                    s.status
                )));
            }
            let to: SnapshotStatus = want
                .parse()
                .map_err(|_| ApiError::bad_request(format!("Invalid snapshot status {want}")))?;
            state
                .db
                .move_snapshot_status(&s.id, &[s.status], to)
                .await
                .map_err(ApiError::from_db)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => Err(no_such_action(&name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_body_names_exactly_one_action() {
        assert!(one_action(&json!({"os-extend": {"new_size": 2}})).is_ok());
        for bad in [json!({}), json!({"a": 1, "b": 2})] {
            let e = one_action(&bad).unwrap_err();
            assert_eq!(e.message, "Malformed request body");
        }
        for s in [
            &*EXTEND,
            &*RESET_STATUS,
            &*SNAPSHOT_RESET_STATUS,
            &*SET_BOOTABLE,
            &*READONLY,
            &*ATTACH,
            &*DETACH,
            &*CONNECTOR,
            &*REVERT,
            &*RETYPE,
            &*UPDATE_SNAPSHOT_STATUS,
        ] {
            let _ = s.check(&json!({}));
        }
        assert!(ATTACH
            .check(&json!({"os-attach": {"mountpoint": "/dev/vdb"}}))
            .is_err());
        assert!(ATTACH
            .check(&json!({"os-attach": {"mountpoint": "/dev/vdb", "host_name": "h"}}))
            .is_ok());
    }
}
