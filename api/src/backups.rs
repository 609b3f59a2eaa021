//! `/backups`: create (full or incremental, of a volume or of a snapshot), list, detail,
//! show, update (3.9), delete, restore (to a new or an existing volume), the admin
//! actions `os-reset_status` and `os-force_delete`, and `export_record` /
//! `import_record`, with Cinder's bodies, codes and messages. The work runs in the
//! backup service on `cinder-backup.<host>`; every check here comes before any change,
//! and a refusal changes nothing.
//!
//! Where this differs from Cinder on purpose: a create with no backup service up is a
//! 503 that changes nothing (Cinder answers 202 and the backup ends `error`); a forced
//! delete works on this driver (Cinder's Ceph driver answers 405) and cancels a running
//! stream; the detail shows `progress` while a backup or restore runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use cinder_common::ops::{self, Outcome};
use cinder_common::status::{BackupStatus, SnapshotStatus, VolumeStatus};
use cinder_db::entity::backups;
use cinder_db::{BackupListQuery, BackupSortKey, Ending, NewBackup};
use cinder_rpc::messages::{BackupRequest, BackupTopic, CreateBackup, DeleteBackup, RestoreBackup};
use serde_json::{json, Map, Value};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::listing::ListParams;
use crate::request::Req;
use crate::schema::{self, schema};
use crate::views::ts;
use crate::volumes::{rpc_ctx, visible_volume};
use crate::AppState;

fn create_schema(metadata: bool, az: bool) -> Value {
    let mut props = json!({
        "volume_id": schema::uuid(),
        "container": {"type": ["string", "null"], "minLength": 0, "maxLength": 255},
        "description": schema::description(),
        "incremental": schema::boolean(),
        "force": schema::boolean(),
        "name": schema::name(),
        "snapshot_id": schema::uuid_or_null(),
    });
    if metadata {
        props["metadata"] = schema::metadata();
    }
    if az {
        props["availability_zone"] = json!({"type": ["string", "null"], "maxLength": 255});
    }
    json!({
        "type": "object",
        "properties": {"backup": {
            "type": "object",
            "properties": props,
            "required": ["volume_id"],
            "additionalProperties": false,
        }},
        "required": ["backup"],
        "additionalProperties": false,
    })
}

schema!(CREATE, create_schema(false, false));
schema!(CREATE_343, create_schema(true, false));
schema!(CREATE_351, create_schema(true, true));

fn update_schema(metadata: bool) -> Value {
    let mut props = json!({"name": schema::name(), "description": schema::description()});
    if metadata {
        props["metadata"] = schema::metadata_required();
    }
    json!({
        "type": "object",
        "properties": {"backup": {
            "type": "object",
            "properties": props,
            "additionalProperties": false,
        }},
        "required": ["backup"],
        "additionalProperties": false,
    })
}

schema!(UPDATE, update_schema(false));
schema!(UPDATE_343, update_schema(true));

schema!(
    RESTORE,
    json!({
        "type": "object",
        "properties": {"restore": {
            "type": "object",
            "properties": {"name": schema::name(), "volume_id": schema::uuid_or_null()},
            "additionalProperties": false,
        }},
        "required": ["restore"],
        "additionalProperties": false,
    })
);

schema!(
    IMPORT,
    json!({
        "type": "object",
        "properties": {"backup-record": {
            "type": "object",
            "properties": {
                "backup_service": {"type": "string", "minLength": 0, "maxLength": 255},
                "backup_url": {"type": "string", "minLength": 1},
            },
            "required": ["backup_service", "backup_url"],
            "additionalProperties": false,
        }},
        "required": ["backup-record"],
        "additionalProperties": false,
    })
);

schema!(
    RESET_STATUS,
    json!({
        "type": "object",
        "properties": {"os-reset_status": {
            "type": "object",
            "properties": {"status": {"type": "string"}},
            "required": ["status"],
            "additionalProperties": false,
        }},
        "required": ["os-reset_status"],
        "additionalProperties": false,
    })
);

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Backup {id} could not be found."))
}

fn no_service() -> ApiError {
    ApiError::not_found("Service cinder-backup could not be found.")
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

/// Backup `id` if the caller may see it.
async fn visible_backup(state: &AppState, r: &Req, id: &str) -> Result<backups::Model, ApiError> {
    match state.db.backup(id).await {
        Ok(b) if r.ctx.is_admin || b.project_id == r.ctx.project_id => Ok(b),
        Ok(_) | Err(cinder_db::Error::NotFound { .. }) => Err(not_found(id)),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

/// The host of a backup service that is enabled and up: `preferred` if it is, else one
/// in `zone` (if given), else any; `None` when there is none.
async fn backup_host(
    state: &AppState,
    preferred: Option<&str>,
    zone: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let now = chrono::Utc::now().naive_utc();
    let down = std::time::Duration::from_secs(state.service_down_time);
    let up: Vec<_> = state
        .db
        .services()
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .filter(|s| s.binary == "cinder-backup" && !s.disabled)
        .filter(|s| cinder_db::service_is_up(s, down, now))
        .collect();
    if let Some(p) = preferred {
        if up.iter().any(|s| s.host == p) {
            return Ok(Some(p.to_string()));
        }
    }
    let fit: Vec<_> = up
        .iter()
        .filter(|s| zone.is_none_or(|z| s.availability_zone == z))
        .collect();
    if fit.is_empty() {
        return Ok(None);
    }
    // Spread the work over the services that fit.
    let pick = (uuid::Uuid::new_v4().as_u128() % fit.len() as u128) as usize;
    Ok(Some(fit[pick].host.clone()))
}

async fn cast(state: &AppState, r: &Req, host: &str, body: BackupRequest) -> Result<(), ApiError> {
    let queue = cinder_rpc::topology::backup_queue(host);
    state
        .rpc
        .cast_as::<BackupTopic>(&queue, &r.ctx.request_id, &rpc_ctx(r), body)
        .await
        .map_err(|e| ApiError::unavailable(format!("the backup service cannot be reached: {e}")))
}

/// `{"id", "name", "links"}`.
fn summary(r: &Req, b: &backups::Model) -> Value {
    json!({"id": b.id, "name": b.display_name, "links": r.links("backups", &b.id)})
}

/// The detail view, per microversion and caller.
fn detail(r: &Req, b: &backups::Model, metadata: Option<&cinder_db::Metadata>) -> Value {
    let mut d = Map::new();
    d.insert("id".into(), json!(b.id));
    d.insert("status".into(), json!(b.status.as_str()));
    d.insert("size".into(), json!(b.size));
    d.insert("object_count".into(), json!(b.object_count.unwrap_or(0)));
    d.insert("availability_zone".into(), json!(b.availability_zone));
    d.insert("container".into(), json!(b.container));
    d.insert("created_at".into(), ts(&b.created_at));
    d.insert(
        "updated_at".into(),
        b.updated_at.as_ref().map(ts).unwrap_or(Value::Null),
    );
    d.insert("name".into(), json!(b.display_name));
    d.insert("description".into(), json!(b.display_description));
    d.insert("fail_reason".into(), json!(b.fail_reason));
    d.insert("volume_id".into(), json!(b.volume_id));
    d.insert("links".into(), r.links("backups", &b.id));
    d.insert("is_incremental".into(), json!(b.parent_id.is_some()));
    d.insert(
        "has_dependent_backups".into(),
        json!(b.num_dependent_backups > 0),
    );
    d.insert("snapshot_id".into(), json!(b.snapshot_id));
    d.insert(
        "data_timestamp".into(),
        b.data_timestamp.as_ref().map(ts).unwrap_or(Value::Null),
    );
    // Ours: how far a running backup or restore is.
    let progress = match b.status {
        BackupStatus::Creating | BackupStatus::Restoring => {
            b.progress.clone().unwrap_or_else(|| "0%".into())
        }
        _ => b.progress.clone().unwrap_or_else(|| "100%".into()),
    };
    d.insert("progress".into(), json!(progress));
    if r.v.at_least(18) && r.ctx.is_admin {
        d.insert(
            "os-backup-project-attr:project_id".into(),
            json!(b.project_id),
        );
    }
    if r.v.at_least(43) {
        d.insert(
            "metadata".into(),
            json!(metadata.cloned().unwrap_or_default()),
        );
    }
    if r.v.at_least(56) && r.ctx.is_admin {
        d.insert("user_id".into(), json!(b.user_id));
    }
    if r.v.at_least(64) {
        if let Some(k) = b
            .encryption_key_id
            .as_deref()
            .filter(|k| *k != "00000000-0000-0000-0000-000000000000")
        {
            d.insert("encryption_key_id".into(), json!(k));
        }
    }
    Value::Object(d)
}

fn over_quota(e: cinder_db::Error) -> ApiError {
    match e {
        cinder_db::Error::OverQuota {
            resource,
            requested,
            limit,
            in_use,
            reserved,
        } if resource == "backup_gigabytes" => ApiError::too_large(format!(
            "VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds allowed Backup gigabytes quota. Requested {requested}G, quota is {limit}G and {}G has been consumed.",
            in_use + reserved
        )),
        cinder_db::Error::OverQuota { limit, .. } => ApiError::too_large(format!(
            "BackupLimitExceeded: Maximum number of backups allowed ({limit}) exceeded"
        )),
        e => ApiError::from_db(e),
    }
}

/// `POST /backups`.
pub(crate) async fn create(
    State(state): State<AppState>,
    r: Req,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if r.v.at_least(51) {
        CREATE_351.check(&body)?;
    } else if r.v.at_least(43) {
        CREATE_343.check(&body)?;
    } else {
        CREATE.check(&body)?;
    }
    let b = &body["backup"];
    let flag = |k: &str| b.get(k).and_then(schema::as_bool).unwrap_or(false);
    let (incremental, force) = (flag("incremental"), flag("force"));
    let volume_id = text(b.get("volume_id")).unwrap_or_default();
    let v = visible_volume(&state, &r, &volume_id).await?;
    let snapshot = match text(b.get("snapshot_id")) {
        None => None,
        Some(sid) => {
            let s = crate::snapshots::visible_snapshot(&state, &r, &sid).await?;
            if s.volume_id != v.id {
                return Err(ApiError::bad_request(format!(
                    "Invalid volume: Volume {} does not match with snapshot.volume_id {}.",
                    v.id, s.volume_id
                )));
            }
            if s.status != SnapshotStatus::Available {
                return Err(ApiError::bad_request(format!(
                    "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"{}\".",
                    s.status
                )));
            }
            Some(s)
        }
    };
    if snapshot.is_none() {
        if !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse) {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"{}\".",
                v.status
            )));
        }
        if v.status == VolumeStatus::InUse && !force {
            return Err(ApiError::bad_request(
                "Invalid volume: Backing up an in-use volume must use the force flag.",
            ));
        }
    }
    let parent = if incremental {
        let all = state
            .db
            .backups_of_volume(&v.id)
            .await
            .map_err(ApiError::from_db)?;
        // Two incrementals of one volume at once would write the same base image.
        if let Some(busy) = all
            .iter()
            .find(|x| x.status == BackupStatus::Creating && x.parent_id.is_some())
        {
            return Err(ApiError::bad_request(format!(
                "Invalid backup: incremental backup {} of this volume is being created; try again when it is done.",
                busy.id
            )));
        }
        let latest = all
            .into_iter()
            .filter(|x| x.project_id == r.ctx.project_id && x.status == BackupStatus::Available)
            .filter(|x| {
                snapshot
                    .as_ref()
                    .is_none_or(|s| x.data_timestamp.unwrap_or(x.created_at) < s.created_at)
            })
            .max_by_key(|x| (x.data_timestamp.unwrap_or(x.created_at), x.created_at));
        match latest {
            Some(p) => Some(p),
            None => {
                return Err(ApiError::bad_request(
                    "Invalid backup: No backups available to do an incremental backup.",
                ))
            }
        }
    } else {
        None
    };
    let zone = if r.v.at_least(51) {
        text(b.get("availability_zone"))
    } else {
        None
    };
    let Some(host) = backup_host(&state, None, zone.as_deref()).await? else {
        return Err(ApiError::unavailable(
            "Service cinder-backup could not be found.",
        ));
    };
    let deltas = cinder_db::backup_quota_deltas(v.size.into());
    let limits = state
        .db
        .quota_limits(&r.ctx.project_id, &state.quota.defaults())
        .await
        .map_err(ApiError::from_db)?;
    let d: Vec<(&str, i64)> = deltas.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    let reservations = state
        .db
        .reserve(
            &r.ctx.project_id,
            &d,
            &limits,
            std::time::Duration::from_secs(state.quota.reservation_expire),
        )
        .await
        .map_err(over_quota)?;
    let new = NewBackup {
        id: uuid::Uuid::new_v4().to_string(),
        volume_id: v.id.clone(),
        snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
        project_id: r.ctx.project_id.clone(),
        user_id: r.ctx.user_id.clone(),
        host: host.clone(),
        availability_zone: zone.or(v.availability_zone.clone()),
        name: text(b.get("name")).map(|s| s.trim().to_string()),
        description: text(b.get("description")).map(|s| s.trim().to_string()),
        container: text(b.get("container")),
        size_gib: v.size,
        parent_id: parent.as_ref().map(|p| p.id.clone()),
        data_timestamp: snapshot
            .as_ref()
            .map(|s| s.created_at)
            .unwrap_or_else(|| chrono::Utc::now().naive_utc()),
    };
    let metadata = schema::string_map(b.get("metadata"));
    let statuses: &[VolumeStatus] = if force {
        &[VolumeStatus::Available, VolumeStatus::InUse]
    } else {
        &[VolumeStatus::Available]
    };
    let row = match state
        .db
        .create_backup_counted(&new, statuses, &metadata, &reservations)
        .await
    {
        Ok(row) => row,
        Err(e) => {
            let _ = state.db.rollback_reservations(&reservations).await;
            return Err(match e {
                cinder_db::Error::Conflict { kind, id, found, .. } => ApiError::bad_request(
                    format!("Invalid {kind}: {kind} {id} changed status ({found}) while the backup was requested."),
                ),
                e => ApiError::from_db(e),
            });
        }
    };
    if let Err(e) = cast(
        &state,
        &r,
        &host,
        CreateBackup {
            backup_id: row.id.clone(),
        }
        .into(),
    )
    .await
    {
        let source = match &row.snapshot_id {
            Some(s) => Ending::snapshot(&ops::snapshot::BACKUP, s, Outcome::Failed),
            None => Ending::volume(&ops::volume::BACKUP, &row.volume_id, Outcome::Failed),
        };
        let _ = state
            .db
            .finish(
                None,
                &Ending::backup(&ops::backup::CREATE, &row.id, Outcome::Failed)
                    .with_backup(cinder_db::BackupChanges {
                        fail_reason: Some(Some("the backup service could not be reached".into())),
                        ..Default::default()
                    })
                    .and_if_busy(source),
            )
            .await;
        return Err(e);
    }
    tracing::info!(backup_id = %row.id, volume_id = %v.id, incremental, %host, "backup accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "backup": summary(&r, &row) })),
    )
        .into_response())
}

fn sort_key(r: &Req) -> impl Fn(&str) -> Option<BackupSortKey> + '_ {
    move |k: &str| {
        Some(match k {
            "created_at" => BackupSortKey::CreatedAt,
            "id" => BackupSortKey::Id,
            "display_name" => BackupSortKey::Name,
            "name" if r.v.at_least(37) => BackupSortKey::Name,
            "status" => BackupSortKey::Status,
            "size" => BackupSortKey::Size,
            "volume_id" => BackupSortKey::VolumeId,
            "data_timestamp" => BackupSortKey::DataTimestamp,
            _ => return None,
        })
    }
}

async fn list(state: &AppState, r: &Req, detailed: bool) -> Result<Response, ApiError> {
    let p = ListParams::parse(&r.query, r.v, state.max_limit)?;
    let mut q = BackupListQuery {
        project_id: Some(r.ctx.project_id.clone()),
        sort: p.sort_keys(sort_key(r))?,
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
            "status" => match val.parse::<BackupStatus>() {
                Ok(s) => q.status = Some(s),
                Err(_) => empty = true,
            },
            "project_id" if r.ctx.is_admin => q.project_id = Some(val.clone()),
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
        match state.db.list_backups(&q).await {
            Ok(rows) => rows,
            Err(cinder_db::Error::NotFound { kind: "marker", id }) => return Err(not_found(&id)),
            Err(e) => return Err(ApiError::from_db(e)),
        }
    };
    let docs: Vec<Value> = if detailed {
        let ids: Vec<String> = rows.iter().map(|b| b.id.clone()).collect();
        let meta = if r.v.at_least(43) {
            state
                .db
                .backup_metadata_many(&ids)
                .await
                .map_err(ApiError::from_db)?
        } else {
            Default::default()
        };
        rows.iter().map(|b| detail(r, b, meta.get(&b.id))).collect()
    } else {
        rows.iter().map(|b| summary(r, b)).collect()
    };
    let mut out = json!({ "backups": docs });
    if let Some(last) = rows
        .last()
        .filter(|_| p.has_next(rows.len(), state.max_limit))
    {
        out["backups_links"] = json!([{
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
                .count_backups(&q)
                .await
                .map_err(ApiError::from_db)?
        };
        out["count"] = json!(n);
    }
    Ok(Json(out).into_response())
}

/// `GET /backups`.
pub(crate) async fn index(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    list(&state, &r, false).await
}

/// `GET /backups/detail`.
pub(crate) async fn detail_index(
    State(state): State<AppState>,
    r: Req,
) -> Result<Response, ApiError> {
    list(&state, &r, true).await
}

async fn detail_of(state: &AppState, r: &Req, b: &backups::Model) -> Result<Value, ApiError> {
    let m = if r.v.at_least(43) {
        Some(
            state
                .db
                .backup_metadata(&b.id)
                .await
                .map_err(ApiError::from_db)?,
        )
    } else {
        None
    };
    Ok(detail(r, b, m.as_ref()))
}

/// `GET /backups/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = visible_backup(&state, &r, &id).await?;
    Ok(Json(json!({ "backup": detail_of(&state, &r, &b).await? })).into_response())
}

/// `PUT /backups/{id}` (3.9).
pub(crate) async fn update(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if !r.v.at_least(9) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    if r.v.at_least(43) {
        UPDATE_343.check(&body)?;
    } else {
        UPDATE.check(&body)?;
    }
    let b = visible_backup(&state, &r, &id).await?;
    let u = &body["backup"];
    let field = |k: &str| u.get(k).map(|x| x.as_str().map(|s| s.trim().to_string()));
    let b = state
        .db
        .rename_backup(
            &b.id,
            &cinder_db::Rename {
                name: field("name"),
                description: field("description"),
            },
        )
        .await
        .map_err(ApiError::from_db)?;
    if let Some(m) = u.get("metadata") {
        state
            .db
            .set_backup_metadata(&b.id, &schema::string_map(Some(m)), true)
            .await
            .map_err(ApiError::from_db)?;
    }
    Ok(Json(json!({ "backup": summary(&r, &b) })).into_response())
}

/// `DELETE /backups/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = visible_backup(&state, &r, &id).await?;
    delete_backup(&state, &r, &b, false).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Begins the delete of `b` (any status with `force`, which also cancels its running
/// stream) and casts it.
async fn delete_backup(
    state: &AppState,
    r: &Req,
    b: &backups::Model,
    force: bool,
) -> Result<(), ApiError> {
    if !force && !matches!(b.status, BackupStatus::Available | BackupStatus::Error) {
        return Err(ApiError::bad_request(
            "Invalid backup: Backup status must be available or error",
        ));
    }
    if b.num_dependent_backups > 0 {
        return Err(ApiError::bad_request(
            "Invalid backup: Incremental backups exist for this backup.",
        ));
    }
    let host = backup_host(state, b.host.as_deref(), None)
        .await?
        .ok_or_else(no_service)?;
    let began = if force {
        state.db.reset_status(&b.id, BackupStatus::Deleting).await
    } else {
        state.db.begin(&ops::backup::DELETE, &b.id).await
    };
    match began {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { found, .. }) => {
            return Err(ApiError::bad_request(format!(
                "Invalid backup: Backup status must be available or error (it is {found})"
            )))
        }
        Err(cinder_db::Error::NotFound { .. }) => return Err(not_found(&b.id)),
        Err(e) => return Err(ApiError::from_db(e)),
    }
    cast(
        state,
        r,
        &host,
        DeleteBackup {
            backup_id: b.id.clone(),
        }
        .into(),
    )
    .await
}

/// `POST /backups/{id}/restore`.
pub(crate) async fn restore(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    RESTORE.check(&body)?;
    let rq = &body["restore"];
    let b = visible_backup(&state, &r, &id).await?;
    if b.status != BackupStatus::Available {
        return Err(ApiError::bad_request(
            "Invalid backup: Backup status must be available",
        ));
    }
    let host = backup_host(&state, b.host.as_deref(), None)
        .await?
        .ok_or_else(no_service)?;
    let target = match text(rq.get("volume_id")) {
        Some(vid) => {
            let v = visible_volume(&state, &r, &vid).await?;
            if v.status != VolumeStatus::Available {
                return Err(ApiError::bad_request(
                    "Invalid volume: Volume to be restored to must be available",
                ));
            }
            if b.size > v.size {
                return Err(ApiError::bad_request(format!(
                    "Invalid volume: volume size {} is too small to restore backup of size {}.",
                    v.size, b.size
                )));
            }
            Some(v)
        }
        None => None,
    };
    let (v, new_volume) = match target {
        Some(v) => (v, false),
        None => {
            let name = text(rq.get("name")).unwrap_or_else(|| format!("restore_backup_{}", b.id));
            let body = json!({"volume": {
                "size": b.size,
                "name": name,
                "description": "auto-created_from_restore_from_backup",
            }});
            (
                crate::volumes::create_volume(&state, &r, &body).await?,
                true,
            )
        }
    };
    match state.db.begin_restore(&b.id, &v.id, !new_volume).await {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { kind, found, .. }) => {
            return Err(ApiError::bad_request(format!(
                "Invalid {kind}: the {kind} became {found} while the restore was requested"
            )))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    }
    let sent = cast(
        &state,
        &r,
        &host,
        RestoreBackup {
            backup_id: b.id.clone(),
            volume_id: v.id.clone(),
            new_volume,
        }
        .into(),
    )
    .await;
    if let Err(e) = sent {
        let mut ending = Ending::backup(&ops::backup::RESTORE, &b.id, Outcome::Failed);
        if !new_volume {
            ending = ending.and_if_busy(Ending::volume(
                &ops::volume::RESTORE,
                &v.id,
                Outcome::Failed,
            ));
        }
        let _ = state.db.finish(None, &ending).await;
        return Err(e);
    }
    tracing::info!(backup_id = %b.id, volume_id = %v.id, new_volume, "restore accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"restore": {
            "backup_id": b.id,
            "volume_id": v.id,
            "volume_name": v.display_name,
        }})),
    )
        .into_response())
}

/// `POST /backups/{id}/action`: `os-reset_status`, `os-force_delete`.
pub(crate) async fn action(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (name, _) = crate::actions::one_action(&body)?;
    match name.as_str() {
        "os-reset_status" => {
            r.ctx
                .require_admin("volume_extension:backup_admin_actions:reset_status")?;
            RESET_STATUS.check(&body)?;
            let want = body["os-reset_status"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            let to = match want.as_str() {
                "available" => BackupStatus::Available,
                "error" => BackupStatus::Error,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Backup status: {want} is invalid, valid statuses are: ['available', 'error']."
                    )))
                }
            };
            let b = visible_backup(&state, &r, &id).await?;
            state
                .db
                .reset_status(&b.id, to)
                .await
                .map_err(ApiError::from_db)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-force_delete" => {
            r.ctx
                .require_admin("volume_extension:backup_admin_actions:force_delete")?;
            let b = visible_backup(&state, &r, &id).await?;
            delete_backup(&state, &r, &b, true).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        other => Err(ApiError::bad_request(format!(
            "There is no such action: {other}. Verify the request body and Content-Type header and try again."
        ))),
    }
}

/// `GET /backups/{id}/export_record`.
pub(crate) async fn export_record(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("backup:export-import")?;
    let b = visible_backup(&state, &r, &id).await?;
    if b.status != BackupStatus::Available {
        return Err(ApiError::bad_request(format!(
            "Invalid backup: Backup status must be available and not {}.",
            b.status
        )));
    }
    let record = json!({
        "id": b.id,
        "volume_id": b.volume_id,
        "snapshot_id": b.snapshot_id,
        "display_name": b.display_name,
        "display_description": b.display_description,
        "container": b.container,
        "size": b.size,
        "service": b.service,
        "service_metadata": b.service_metadata,
        "parent_id": b.parent_id,
        "data_timestamp": b.data_timestamp.as_ref().map(ts),
        "availability_zone": b.availability_zone,
        "is_incremental": b.parent_id.is_some(),
    });
    let url = base64::engine::general_purpose::STANDARD.encode(record.to_string());
    Ok(Json(json!({"backup-record": {
        "backup_service": b.service,
        "backup_url": url,
    }}))
    .into_response())
}

/// `POST /backups/import_record`: the record of a backup whose data the backup pool
/// holds (exported here or from another deployment on the same backup cluster).
pub(crate) async fn import_record(
    State(state): State<AppState>,
    r: Req,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("backup:backup-import")?;
    IMPORT.check(&body)?;
    let rec = &body["backup-record"];
    let service = text(rec.get("backup_service")).unwrap_or_default();
    let url = text(rec.get("backup_url")).unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(url.trim())
        .map_err(|_| {
            ApiError::bad_request("Invalid input received: Can't decode backup record.")
        })?;
    let fields: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("Invalid input received: Can't parse backup record."))?;
    let id = text(fields.get("id")).ok_or_else(|| {
        ApiError::bad_request("Invalid input received: Provided backup record is missing an id.")
    })?;
    let size = fields.get("size").and_then(Value::as_i64).ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input received: Provided backup record is missing size attribute.",
        )
    })?;
    let Some(host) = backup_host(&state, None, None).await? else {
        return Err(ApiError::unavailable(format!(
            "Service {service} could not be found."
        )));
    };
    match state.db.backup(&id).await {
        Ok(_) => {
            return Err(ApiError::bad_request(
                "Invalid backup: Backup already exists in database.",
            ))
        }
        Err(cinder_db::Error::NotFound { .. }) => {}
        Err(e) => return Err(ApiError::from_db(e)),
    }
    let imported = cinder_db::ImportedBackup {
        id: id.clone(),
        volume_id: text(fields.get("volume_id")).unwrap_or_default(),
        snapshot_id: text(fields.get("snapshot_id")),
        project_id: r.ctx.project_id.clone(),
        user_id: r.ctx.user_id.clone(),
        host,
        name: text(fields.get("display_name")),
        description: text(fields.get("display_description")),
        container: text(fields.get("container")),
        size_gib: i32::try_from(size).unwrap_or(0),
        service: text(fields.get("service")),
        service_metadata: text(fields.get("service_metadata")),
        parent_id: text(fields.get("parent_id")),
        availability_zone: text(fields.get("availability_zone")),
    };
    let row = match state.db.import_backup(&imported).await {
        Ok(row) => row,
        Err(cinder_db::Error::Conflict { .. }) => {
            return Err(ApiError::bad_request(
                "Invalid backup: Backup already exists in database.",
            ))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "backup": summary(&r, &row) })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_gates_its_microversion_fields() {
        for s in [
            &*CREATE,
            &*CREATE_343,
            &*CREATE_351,
            &*UPDATE,
            &*UPDATE_343,
            &*RESTORE,
            &*IMPORT,
            &*RESET_STATUS,
        ] {
            let _ = s.check(&json!({}));
        }
        let with_meta = json!({"backup": {"volume_id": "v", "metadata": {"k": "v"}}});
        assert!(CREATE.check(&with_meta).is_err());
        assert!(CREATE_343.check(&with_meta).is_ok());
        let with_az = json!({"backup": {"volume_id": "v", "availability_zone": "nova"}});
        assert!(CREATE_343.check(&with_az).is_err());
        assert!(CREATE_351.check(&with_az).is_ok());
        assert!(CREATE
            .check(&json!({"backup": {"volume_id": "v", "incremental": "yes"}}))
            .is_ok());
        assert!(CREATE
            .check(&json!({"backup": {"volume_id": "v", "incremental": "maybe"}}))
            .is_err());
        assert!(RESTORE.check(&json!({"restore": {}})).is_ok());
        assert!(RESTORE.check(&json!({"restore": {"size": 1}})).is_err());
    }
}
