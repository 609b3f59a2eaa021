//! Volume rows.

use chrono::Utc;
use cinder_common::status::{AttachStatus, VolumeStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
    UpdateMany,
};

use crate::entity::volumes;
use crate::error::{Error, Result};
use crate::Db;

/// What the API knows when it creates a volume row (status `creating`).
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    /// Volume id (a UUID).
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Creating user.
    pub user_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Size in GiB.
    pub size_gib: i32,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Volume type id.
    pub volume_type_id: Option<String>,
    /// Created from this snapshot (recorded so an interrupted create can be redone).
    pub snapshot_id: Option<String>,
    /// Created from this volume.
    pub source_volid: Option<String>,
    /// Created from this image.
    pub image_id: Option<String>,
    /// May attach to several servers at once.
    pub multiattach: bool,
    /// Bootable (a volume of a bootable source).
    pub bootable: bool,
    /// `host@backend#pool`, when the row is made on its backend already (manage).
    pub host: Option<String>,
    /// Image metadata (`volume_glance_metadata`): the image's, or the source's.
    pub image_metadata: crate::Metadata,
}

/// Columns a volume service sets together with a status change.
#[derive(Debug, Clone, Default)]
pub struct VolumeChanges {
    /// `host@backend#pool`.
    pub host: Option<String>,
    /// Driver location (RBD `pool/image`).
    pub provider_location: Option<String>,
    /// The RBD clone parent (`pool/image@snap`); `Some(None)` clears it.
    pub rbd_parent: Option<Option<String>>,
    /// Clone depth.
    pub clone_depth: Option<i32>,
    /// Size in GiB.
    pub size_gib: Option<i32>,
    /// When it became available.
    pub launched_at: bool,
    /// The volume type; `Some(None)` clears it.
    pub volume_type_id: Option<Option<String>>,
}

/// Adds the columns of `changes` to a volume update.
pub(crate) fn apply_changes(
    mut update: UpdateMany<volumes::Entity>,
    changes: &VolumeChanges,
) -> UpdateMany<volumes::Entity> {
    if let Some(h) = &changes.host {
        update = update.col_expr(volumes::Column::Host, Expr::value(h.clone()));
    }
    if let Some(p) = &changes.provider_location {
        update = update.col_expr(volumes::Column::ProviderLocation, Expr::value(p.clone()));
    }
    if let Some(p) = &changes.rbd_parent {
        update = update.col_expr(volumes::Column::RbdParent, Expr::value(p.clone()));
    }
    if let Some(d) = changes.clone_depth {
        update = update.col_expr(volumes::Column::CloneDepth, Expr::value(d));
    }
    if let Some(s) = changes.size_gib {
        update = update.col_expr(volumes::Column::Size, Expr::value(s));
    }
    if let Some(t) = &changes.volume_type_id {
        update = update.col_expr(volumes::Column::VolumeTypeId, Expr::value(t.clone()));
    }
    if changes.launched_at {
        update = update.col_expr(
            volumes::Column::LaunchedAt,
            Expr::value(Utc::now().naive_utc()),
        );
    }
    update
}

impl Db {
    /// Sum of the sizes (GiB) of the non-deleted volumes on `host` (`host@backend`,
    /// with or without `#pool`): provisioned capacity from the database, never a scan.
    /// (Summed here: `SUM` comes back as DECIMAL on MariaDB.)
    pub async fn provisioned_gib(&self, host: &str) -> Result<i64> {
        let sizes: Vec<i32> = volumes::Entity::find()
            .select_only()
            .column(volumes::Column::Size)
            .filter(volumes::Column::Deleted.eq(false))
            .filter(
                sea_orm::Condition::any()
                    .add(volumes::Column::Host.eq(host))
                    .add(volumes::Column::Host.like(format!("{host}#%"))),
            )
            .into_tuple()
            .all(&self.conn)
            .await?;
        Ok(sizes.into_iter().map(i64::from).sum())
    }

    /// Ids of every non-deleted volume, in one query (start-up reconciliation).
    pub async fn live_volume_ids(&self) -> Result<std::collections::HashSet<String>> {
        let ids: Vec<String> = volumes::Entity::find()
            .select_only()
            .column(volumes::Column::Id)
            .filter(volumes::Column::Deleted.eq(false))
            .into_tuple()
            .all(&self.conn)
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// Inserts a volume in status `creating`, detached.
    pub async fn create_volume(&self, v: &NewVolume) -> Result<volumes::Model> {
        self.create_volume_for(v, &cinder_common::ops::volume::CREATE)
            .await
    }

    /// Inserts a volume in the busy status of `op`, an operation that begins with the
    /// row (create, manage), detached, holding no quota.
    pub async fn create_volume_for(
        &self,
        v: &NewVolume,
        op: &cinder_common::ops::Operation<VolumeStatus>,
    ) -> Result<volumes::Model> {
        volumes::Entity::insert(new_row(v, op, false))
            .exec_without_returning(&self.conn)
            .await?;
        self.volume(&v.id).await
    }

    /// The API's create (or manage): inserts the volume in the busy status of `op` with
    /// its metadata and commits
    /// the quota `reservations` taken for it, in one transaction: the row exists if and
    /// only if its quota is in use.
    pub async fn create_volume_counted(
        &self,
        v: &NewVolume,
        op: &cinder_common::ops::Operation<VolumeStatus>,
        metadata: &crate::Metadata,
        reservations: &[crate::ReservationId],
    ) -> Result<volumes::Model> {
        crate::db::retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                volumes::Entity::insert(new_row(v, op, true))
                    .exec_without_returning(&txn)
                    .await?;
                crate::metadata::write_volume_metadata(&txn, &v.id, metadata, false).await?;
                crate::glance_metadata::write_in(
                    &txn,
                    crate::ImageMetadataOf::Volume(&v.id),
                    &v.image_metadata,
                )
                .await?;
                crate::quota::finish_reservations_in(&txn, reservations, true).await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )?;
        self.volume(&v.id).await
    }
}

/// The row of a new volume in the busy status of `op`, detached.
///
/// `counted`: it holds quota (committed with it), so its delete gives quota back.
fn new_row(
    v: &NewVolume,
    op: &cinder_common::ops::Operation<VolumeStatus>,
    counted: bool,
) -> volumes::ActiveModel {
    let now = Utc::now().naive_utc();
    volumes::ActiveModel {
        id: Set(v.id.clone()),
        project_id: Set(v.project_id.clone()),
        user_id: Set(v.user_id.clone()),
        display_name: Set(v.name.clone()),
        display_description: Set(v.description.clone()),
        size: Set(v.size_gib),
        status: Set(op.busy),
        attach_status: Set(AttachStatus::Detached),
        availability_zone: Set(v.availability_zone.clone()),
        volume_type_id: Set(v.volume_type_id.clone()),
        snapshot_id: Set(v.snapshot_id.clone()),
        source_volid: Set(v.source_volid.clone()),
        image_id: Set(v.image_id.clone()),
        backup_id: Set(None),
        host: Set(v.host.clone()),
        cluster_name: Set(None),
        provider_location: Set(None),
        provider_id: Set(None),
        bootable: Set(v.bootable),
        multiattach: Set(v.multiattach),
        encryption_key_id: Set(None),
        migration_status: Set(None),
        replication_status: Set(None),
        previous_status: Set(None),
        use_quota: Set(counted),
        group_id: Set(None),
        service_uuid: Set(None),
        shared_targets: Set(true),
        scheduled_at: Set(None),
        launched_at: Set(None),
        terminated_at: Set(None),
        rbd_parent: Set(None),
        clone_depth: Set(0),
        created_at: Set(now),
        updated_at: Set(None),
        deleted_at: Set(None),
        deleted: Set(false),
    }
}

impl Db {
    /// A non-deleted volume.
    pub async fn volume(&self, id: &str) -> Result<volumes::Model> {
        volumes::Entity::find_by_id(id.to_string())
            .filter(volumes::Column::Deleted.eq(false))
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "volume",
                id: id.to_string(),
            })
    }
}

/// The user-editable fields of a volume or snapshot (`PUT`): `Some` sets.
#[derive(Debug, Clone, Default)]
pub struct Rename {
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New description.
    pub description: Option<Option<String>>,
}

impl Db {
    /// Sets the name and description of volume `id`.
    pub async fn rename_volume(&self, id: &str, r: &Rename) -> Result<volumes::Model> {
        let mut u = volumes::Entity::update_many()
            .col_expr(
                volumes::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(volumes::Column::Id.eq(id))
            .filter(volumes::Column::Deleted.eq(false));
        if let Some(n) = &r.name {
            u = u.col_expr(volumes::Column::DisplayName, Expr::value(n.clone()));
        }
        if let Some(d) = &r.description {
            u = u.col_expr(volumes::Column::DisplayDescription, Expr::value(d.clone()));
        }
        if u.exec(&self.conn).await?.rows_affected == 0 {
            return Err(Error::NotFound {
                kind: "volume",
                id: id.to_string(),
            });
        }
        self.volume(id).await
    }

    /// Sets the name and description of snapshot `id`.
    pub async fn rename_snapshot(
        &self,
        id: &str,
        r: &Rename,
    ) -> Result<crate::entity::snapshots::Model> {
        use crate::entity::snapshots;
        let mut u = snapshots::Entity::update_many()
            .col_expr(
                snapshots::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(snapshots::Column::Id.eq(id))
            .filter(snapshots::Column::Deleted.eq(false));
        if let Some(n) = &r.name {
            u = u.col_expr(snapshots::Column::DisplayName, Expr::value(n.clone()));
        }
        if let Some(d) = &r.description {
            u = u.col_expr(
                snapshots::Column::DisplayDescription,
                Expr::value(d.clone()),
            );
        }
        if u.exec(&self.conn).await?.rows_affected == 0 {
            return Err(Error::NotFound {
                kind: "snapshot",
                id: id.to_string(),
            });
        }
        self.snapshot(id).await
    }

    /// The live attachments (not detached) of many volumes, in one query.
    pub async fn attachments_of_volumes(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<crate::entity::volume_attachment::Model>>>
    {
        use crate::entity::volume_attachment as va;
        let mut out: std::collections::HashMap<String, Vec<va::Model>> = Default::default();
        for chunk in ids.chunks(500) {
            let select = va::Entity::find()
                .filter(va::Column::VolumeId.is_in(chunk.iter().cloned()))
                .filter(va::Column::Deleted.eq(false));
            for a in self.all_rows(select).await? {
                out.entry(a.volume_id.clone()).or_default().push(a);
            }
        }
        Ok(out)
    }

    /// Names of the volume types `ids`, deleted ones too (a volume keeps showing the
    /// name of its type).
    pub async fn volume_type_names(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>> {
        use crate::entity::volume_types;
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let names: Vec<(String, String)> = volume_types::Entity::find()
            .select_only()
            .column(volume_types::Column::Id)
            .column(volume_types::Column::Name)
            .filter(volume_types::Column::Id.is_in(ids.iter().cloned()))
            .into_tuple()
            .all(&self.conn)
            .await?;
        Ok(names.into_iter().collect())
    }
}
