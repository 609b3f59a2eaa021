//! Backup rows: the API's create (the source held `backing-up`, the parent's dependent
//! count, the row, its metadata and its quota, in one transaction), the chain's reads,
//! listings, progress, and what an operation's end writes ([`BackupChanges`]).

use chrono::{NaiveDateTime, Utc};
use cinder_common::ops::{snapshot as snapshot_ops, Final};
use cinder_common::status::{BackupStatus, SnapshotStatus, VolumeStatus};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, UpdateMany, Value,
};

use crate::entity::backups;
use crate::error::{Error, Result};
use crate::list::{after_marker, SortDir};
use crate::state::{conditional, Previous};
use crate::volume::VolumeChanges;
use crate::Db;

/// What the API knows when it creates a backup row (status `creating`).
#[derive(Debug, Clone, Default)]
pub struct NewBackup {
    /// Backup id.
    pub id: String,
    /// The volume backed up.
    pub volume_id: String,
    /// The snapshot backed up (a backup of a snapshot), if any.
    pub snapshot_id: Option<String>,
    /// Owning project.
    pub project_id: String,
    /// Creating user.
    pub user_id: String,
    /// The backup service's host that runs it.
    pub host: String,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Container (the backup pool, by default).
    pub container: Option<String>,
    /// Size in GiB (the volume's).
    pub size_gib: i32,
    /// The parent of an incremental backup.
    pub parent_id: Option<String>,
    /// When the data was taken: the snapshot's creation, else now.
    pub data_timestamp: NaiveDateTime,
}

/// A backup record brought in by `import_record`: inserted `available`.
#[derive(Debug, Clone, Default)]
pub struct ImportedBackup {
    /// Its id (as exported).
    pub id: String,
    /// The volume it was taken of (it may no longer exist).
    pub volume_id: String,
    /// The snapshot it was taken of.
    pub snapshot_id: Option<String>,
    /// The importing project.
    pub project_id: String,
    /// The importing user.
    pub user_id: String,
    /// The backup service that owns it now.
    pub host: String,
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Container.
    pub container: Option<String>,
    /// Size, GiB.
    pub size_gib: i32,
    /// The driver that made it.
    pub service: Option<String>,
    /// Its chain record.
    pub service_metadata: Option<String>,
    /// Its parent, if incremental.
    pub parent_id: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
}

/// The columns an operation's end may set on a backup besides its status.
#[derive(Debug, Clone, Default)]
pub struct BackupChanges {
    /// The chain record (base image, restore point, digest...).
    pub service_metadata: Option<String>,
    /// Why it failed (`Some(None)` clears it).
    pub fail_reason: Option<Option<String>>,
    /// The volume a restore wrote (`Some(None)` clears it).
    pub restore_volume_id: Option<Option<String>>,
    /// Progress ("100%").
    pub progress: Option<String>,
}

pub(crate) fn apply_backup_changes(
    mut u: UpdateMany<backups::Entity>,
    c: &BackupChanges,
) -> UpdateMany<backups::Entity> {
    if let Some(m) = &c.service_metadata {
        u = u.col_expr(backups::Column::ServiceMetadata, Expr::value(m.clone()));
    }
    if let Some(r) = &c.fail_reason {
        u = u.col_expr(backups::Column::FailReason, Expr::value(r.clone()));
    }
    if let Some(r) = &c.restore_volume_id {
        u = u.col_expr(backups::Column::RestoreVolumeId, Expr::value(r.clone()));
    }
    if let Some(p) = &c.progress {
        u = u.col_expr(backups::Column::Progress, Expr::value(p.clone()));
    }
    u
}

/// The quota a backup of `size` GiB counts.
pub fn backup_quota_deltas(size: i64) -> Vec<(String, i64)> {
    vec![
        ("backups".to_string(), 1),
        ("backup_gigabytes".to_string(), size),
    ]
}

/// A backup that goes gives its quota back and its parent one dependent less (in the
/// transaction that deletes it).
pub(crate) async fn release_backup<C: ConnectionTrait>(conn: &C, id: &str) -> Result<()> {
    let Some(b) = backups::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    if let Some(parent) = &b.parent_id {
        backups::Entity::update_many()
            .col_expr(
                backups::Column::NumDependentBackups,
                Expr::col(backups::Column::NumDependentBackups).sub(Expr::val(1)),
            )
            .filter(backups::Column::Id.eq(parent.as_str()))
            .filter(backups::Column::NumDependentBackups.gt(0))
            .exec(conn)
            .await?;
    }
    crate::quota::release_usage_in(conn, &b.project_id, &backup_quota_deltas(b.size.into())).await
}

/// Keys backups can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupSortKey {
    /// `created_at`
    CreatedAt,
    /// `id`
    Id,
    /// `name`
    Name,
    /// `status`
    Status,
    /// `size`
    Size,
    /// `volume_id`
    VolumeId,
    /// `data_timestamp`
    DataTimestamp,
}

/// A backup listing.
#[derive(Debug, Clone, Default)]
pub struct BackupListQuery {
    /// Only this project's backups (`None`: all, for admins).
    pub project_id: Option<String>,
    /// Only backups of this volume.
    pub volume_id: Option<String>,
    /// Only backups in this status.
    pub status: Option<BackupStatus>,
    /// Only backups with this exact name.
    pub name: Option<String>,
    /// Sort keys, most significant first (default `created_at desc`, then `id`).
    pub sort: Vec<(BackupSortKey, SortDir)>,
    /// Id of the last row of the previous page.
    pub marker: Option<String>,
    /// Skip this many rows (after the marker).
    pub offset: u64,
    /// Page size.
    pub limit: u64,
}

fn key_of(k: BackupSortKey, b: &backups::Model) -> (Expr, Value) {
    use backups::Column as C;
    match k {
        BackupSortKey::CreatedAt => (Expr::col(C::CreatedAt), b.created_at.into()),
        BackupSortKey::Id => (Expr::col(C::Id), b.id.clone().into()),
        BackupSortKey::Name => (
            Func::coalesce([Expr::col(C::DisplayName), Expr::val("")]).into(),
            b.display_name.clone().unwrap_or_default().into(),
        ),
        BackupSortKey::Status => (Expr::col(C::Status), b.status.into()),
        BackupSortKey::Size => (Expr::col(C::Size), b.size.into()),
        BackupSortKey::VolumeId => (Expr::col(C::VolumeId), b.volume_id.clone().into()),
        BackupSortKey::DataTimestamp => (
            Func::coalesce([Expr::col(C::DataTimestamp), Expr::col(C::CreatedAt)]).into(),
            b.data_timestamp.unwrap_or(b.created_at).into(),
        ),
    }
}

fn filtered(q: &BackupListQuery) -> sea_orm::Select<backups::Entity> {
    let mut select = backups::Entity::find().filter(backups::Column::Deleted.eq(false));
    if let Some(p) = &q.project_id {
        select = select.filter(backups::Column::ProjectId.eq(p.as_str()));
    }
    if let Some(v) = &q.volume_id {
        select = select.filter(backups::Column::VolumeId.eq(v.as_str()));
    }
    if let Some(s) = q.status {
        select = select.filter(backups::Column::Status.eq(s.as_str()));
    }
    if let Some(n) = &q.name {
        select = select.filter(backups::Column::DisplayName.eq(n.as_str()));
    }
    select
}

fn guard_failed(kind: &'static str, id: &str, expected: &[&str]) -> Error {
    Error::Conflict {
        kind,
        id: id.to_string(),
        expected: expected.iter().map(|s| s.to_string()).collect(),
        found: "another status".into(),
    }
}

impl Db {
    /// The API's create: the source goes `backing-up` (the volume from one of
    /// `volume_statuses`, recording where it was; or the snapshot from `available`), the
    /// parent (if any, still `available`) counts one more dependent, the row is inserted
    /// `creating` with its metadata, and the quota `reservations` are committed, all in
    /// one transaction. [`Error::Conflict`] names what was not in the status it needed.
    pub async fn create_backup_counted(
        &self,
        b: &NewBackup,
        volume_statuses: &[VolumeStatus],
        metadata: &crate::Metadata,
        reservations: &[crate::ReservationId],
    ) -> Result<backups::Model> {
        crate::db::retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                let source = match &b.snapshot_id {
                    Some(s) => {
                        conditional::<SnapshotStatus, _>(
                            &txn,
                            s,
                            snapshot_ops::BACKUP.from,
                            Final::To(snapshot_ops::BACKUP.busy),
                            &(),
                            Previous::Keep,
                        )
                        .await
                    }
                    None => {
                        conditional::<VolumeStatus, _>(
                            &txn,
                            &b.volume_id,
                            volume_statuses,
                            Final::To(VolumeStatus::BackingUp),
                            &VolumeChanges::default(),
                            Previous::Record,
                        )
                        .await
                    }
                };
                if let Err(e) = source {
                    txn.rollback().await?;
                    return Err(e);
                }
                if let Some(parent) = &b.parent_id {
                    let up = backups::Entity::update_many()
                        .col_expr(
                            backups::Column::NumDependentBackups,
                            Expr::col(backups::Column::NumDependentBackups).add(Expr::val(1)),
                        )
                        .filter(backups::Column::Id.eq(parent.as_str()))
                        .filter(backups::Column::Deleted.eq(false))
                        .filter(backups::Column::Status.eq(BackupStatus::Available.as_str()))
                        .exec(&txn)
                        .await?;
                    if up.rows_affected != 1 {
                        txn.rollback().await?;
                        return Err(guard_failed("backup", parent, &["available"]));
                    }
                }
                let now = Utc::now().naive_utc();
                backups::Entity::insert(backups::ActiveModel {
                    id: Set(b.id.clone()),
                    volume_id: Set(b.volume_id.clone()),
                    snapshot_id: Set(b.snapshot_id.clone()),
                    project_id: Set(b.project_id.clone()),
                    user_id: Set(b.user_id.clone()),
                    host: Set(Some(b.host.clone())),
                    availability_zone: Set(b.availability_zone.clone()),
                    display_name: Set(b.name.clone()),
                    display_description: Set(b.description.clone()),
                    container: Set(b.container.clone()),
                    status: Set(BackupStatus::Creating),
                    fail_reason: Set(None),
                    service_metadata: Set(None),
                    service: Set(Some("cinder_rs.backup.rbd".into())),
                    size: Set(b.size_gib),
                    object_count: Set(None),
                    parent_id: Set(b.parent_id.clone()),
                    num_dependent_backups: Set(0),
                    data_timestamp: Set(Some(b.data_timestamp)),
                    restore_volume_id: Set(None),
                    temp_volume_id: Set(None),
                    temp_snapshot_id: Set(None),
                    is_incremental: Set(b.parent_id.is_some()),
                    encryption_key_id: Set(None),
                    progress: Set(Some("0%".into())),
                    created_at: Set(now),
                    updated_at: Set(None),
                    deleted_at: Set(None),
                    deleted: Set(false),
                })
                .exec_without_returning(&txn)
                .await?;
                crate::metadata::write_backup_metadata(&txn, &b.id, metadata, false).await?;
                crate::quota::finish_reservations_in(&txn, reservations, true).await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )?;
        self.backup(&b.id).await
    }

    /// The API's restore: backup `id` from `available` to `restoring`, naming the
    /// volume it restores onto, and (an existing volume) that volume from `available` to
    /// `restoring-backup`, in one transaction. A new volume begins its restore in the
    /// backup service, once created. [`Error::Conflict`] names what was not available.
    pub async fn begin_restore(&self, id: &str, volume_id: &str, existing: bool) -> Result<()> {
        crate::db::retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                let r = conditional::<BackupStatus, _>(
                    &txn,
                    id,
                    cinder_common::ops::backup::RESTORE.from,
                    Final::To(BackupStatus::Restoring),
                    &BackupChanges {
                        restore_volume_id: Some(Some(volume_id.to_string())),
                        fail_reason: Some(None),
                        progress: Some("0%".into()),
                        ..Default::default()
                    },
                    Previous::Keep,
                )
                .await;
                let r = match r {
                    Ok(()) if existing => {
                        conditional::<VolumeStatus, _>(
                            &txn,
                            volume_id,
                            cinder_common::ops::volume::RESTORE.from,
                            Final::To(cinder_common::ops::volume::RESTORE.busy),
                            &VolumeChanges::default(),
                            Previous::Record,
                        )
                        .await
                    }
                    r => r,
                };
                if let Err(e) = r {
                    txn.rollback().await?;
                    return Err(e);
                }
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )
    }

    /// Inserts an imported backup record, `available`. [`Error::Conflict`] when a row of
    /// that id exists (deleted ones too: ids are never reused).
    pub async fn import_backup(&self, b: &ImportedBackup) -> Result<backups::Model> {
        if backups::Entity::find_by_id(b.id.clone())
            .one(&self.conn)
            .await?
            .is_some()
        {
            return Err(guard_failed("backup", &b.id, &["absent"]));
        }
        let now = Utc::now().naive_utc();
        backups::Entity::insert(backups::ActiveModel {
            id: Set(b.id.clone()),
            volume_id: Set(b.volume_id.clone()),
            snapshot_id: Set(b.snapshot_id.clone()),
            project_id: Set(b.project_id.clone()),
            user_id: Set(b.user_id.clone()),
            host: Set(Some(b.host.clone())),
            availability_zone: Set(b.availability_zone.clone()),
            display_name: Set(b.name.clone()),
            display_description: Set(b.description.clone()),
            container: Set(b.container.clone()),
            status: Set(BackupStatus::Available),
            fail_reason: Set(None),
            service_metadata: Set(b.service_metadata.clone()),
            service: Set(b.service.clone()),
            size: Set(b.size_gib),
            object_count: Set(None),
            parent_id: Set(b.parent_id.clone()),
            num_dependent_backups: Set(0),
            data_timestamp: Set(Some(now)),
            restore_volume_id: Set(None),
            temp_volume_id: Set(None),
            temp_snapshot_id: Set(None),
            is_incremental: Set(b.parent_id.is_some()),
            encryption_key_id: Set(None),
            progress: Set(Some("100%".into())),
            created_at: Set(now),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
        })
        .exec_without_returning(&self.conn)
        .await?;
        self.backup(&b.id).await
    }

    /// A backup, deleted or not (what a late message about a deleted backup needs).
    pub async fn backup_including_deleted(&self, id: &str) -> Result<backups::Model> {
        backups::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "backup",
                id: id.to_string(),
            })
    }

    /// A non-deleted backup.
    pub async fn backup(&self, id: &str) -> Result<backups::Model> {
        backups::Entity::find_by_id(id.to_string())
            .filter(backups::Column::Deleted.eq(false))
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "backup",
                id: id.to_string(),
            })
    }

    /// The parent an incremental backup of `volume_id` takes: its latest `available`
    /// backup by data timestamp (then creation), as Cinder picks it.
    pub async fn latest_available_backup(&self, volume_id: &str) -> Result<Option<backups::Model>> {
        Ok(backups::Entity::find()
            .filter(backups::Column::VolumeId.eq(volume_id))
            .filter(backups::Column::Deleted.eq(false))
            .filter(backups::Column::Status.eq(BackupStatus::Available.as_str()))
            .order_by(
                Func::coalesce([
                    Expr::col(backups::Column::DataTimestamp),
                    Expr::col(backups::Column::CreatedAt),
                ]),
                Order::Desc,
            )
            .order_by_desc(backups::Column::CreatedAt)
            .one(&self.conn)
            .await?)
    }

    /// The non-deleted backups of `volume_id`, oldest first.
    pub async fn backups_of_volume(&self, volume_id: &str) -> Result<Vec<backups::Model>> {
        Ok(backups::Entity::find()
            .filter(backups::Column::VolumeId.eq(volume_id))
            .filter(backups::Column::Deleted.eq(false))
            .order_by_asc(backups::Column::CreatedAt)
            .all(&self.conn)
            .await?)
    }

    /// Writes the progress of a running backup or restore ("42%"): not a status, so a
    /// plain update.
    pub async fn set_backup_progress(&self, id: &str, progress: &str) -> Result<()> {
        backups::Entity::update_many()
            .col_expr(backups::Column::Progress, Expr::value(progress))
            .filter(backups::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Sets the name and description of backup `id`.
    pub async fn rename_backup(&self, id: &str, r: &crate::Rename) -> Result<backups::Model> {
        let mut u = backups::Entity::update_many().col_expr(
            backups::Column::UpdatedAt,
            Expr::value(Utc::now().naive_utc()),
        );
        if let Some(n) = &r.name {
            u = u.col_expr(backups::Column::DisplayName, Expr::value(n.clone()));
        }
        if let Some(d) = &r.description {
            u = u.col_expr(backups::Column::DisplayDescription, Expr::value(d.clone()));
        }
        u.filter(backups::Column::Id.eq(id))
            .filter(backups::Column::Deleted.eq(false))
            .exec(&self.conn)
            .await?;
        self.backup(id).await
    }

    /// A page of backups.
    pub async fn list_backups(&self, q: &BackupListQuery) -> Result<Vec<backups::Model>> {
        let mut sort = q.sort.clone();
        if sort.is_empty() {
            sort = vec![(BackupSortKey::CreatedAt, SortDir::Desc)];
        }
        if !sort.iter().any(|(k, _)| *k == BackupSortKey::Id) {
            let dir = sort.last().map(|(_, d)| *d).unwrap_or(SortDir::Desc);
            sort.push((BackupSortKey::Id, dir));
        }
        let mut select = filtered(q);
        if let Some(marker) = &q.marker {
            let m = backups::Entity::find_by_id(marker.clone())
                .one(&self.conn)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "marker",
                    id: marker.clone(),
                })?;
            let keys: Vec<(Expr, Value, SortDir)> = sort
                .iter()
                .map(|(k, d)| {
                    let (e, v) = key_of(*k, &m);
                    (e, v, *d)
                })
                .collect();
            select = select.filter(after_marker(&keys));
        }
        for (k, dir) in &sort {
            let order = match dir {
                SortDir::Asc => Order::Asc,
                SortDir::Desc => Order::Desc,
            };
            select = select.order_by(key_of(*k, &placeholder()).0, order);
        }
        self.all_rows(select.offset(q.offset).limit(q.limit)).await
    }

    /// How many backups match `q` (ignoring its page).
    pub async fn count_backups(&self, q: &BackupListQuery) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(filtered(q).count(&self.conn).await?)
    }

    /// Creating or restoring backups whose service is `host` (a restart's own work is
    /// found through its claims; this finds rows whose claim never got written).
    pub async fn busy_backups_of_host(&self, host: &str) -> Result<Vec<backups::Model>> {
        Ok(backups::Entity::find()
            .filter(backups::Column::Host.eq(host))
            .filter(backups::Column::Deleted.eq(false))
            .filter(backups::Column::Status.is_in([
                BackupStatus::Creating.as_str(),
                BackupStatus::Restoring.as_str(),
                BackupStatus::Deleting.as_str(),
            ]))
            .all(&self.conn)
            .await?)
    }
}

/// A row whose values are never read (only the sort expressions are).
fn placeholder() -> backups::Model {
    backups::Model {
        id: String::new(),
        volume_id: String::new(),
        snapshot_id: None,
        project_id: String::new(),
        user_id: String::new(),
        host: None,
        availability_zone: None,
        display_name: None,
        display_description: None,
        container: None,
        status: BackupStatus::Available,
        fail_reason: None,
        service_metadata: None,
        service: None,
        size: 0,
        object_count: None,
        parent_id: None,
        num_dependent_backups: 0,
        data_timestamp: None,
        restore_volume_id: None,
        temp_volume_id: None,
        temp_snapshot_id: None,
        is_incremental: false,
        encryption_key_id: None,
        progress: None,
        created_at: NaiveDateTime::default(),
        updated_at: None,
        deleted_at: None,
        deleted: false,
    }
}
