//! Volume rows.

use chrono::Utc;
use cinder_common::status::{AttachStatus, VolumeStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, UpdateMany};

use crate::entity::volumes;
use crate::error::{Error, Result};
use crate::Db;

/// What the API knows when it creates a volume row (status `creating`).
#[derive(Debug, Clone)]
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
    /// row (create, manage), detached.
    pub async fn create_volume_for(
        &self,
        v: &NewVolume,
        op: &cinder_common::ops::Operation<VolumeStatus>,
    ) -> Result<volumes::Model> {
        let now = Utc::now().naive_utc();
        let row = volumes::ActiveModel {
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
            snapshot_id: Set(None),
            source_volid: Set(None),
            image_id: Set(None),
            backup_id: Set(None),
            host: Set(None),
            cluster_name: Set(None),
            provider_location: Set(None),
            provider_id: Set(None),
            bootable: Set(false),
            multiattach: Set(false),
            encryption_key_id: Set(None),
            migration_status: Set(None),
            replication_status: Set(None),
            previous_status: Set(None),
            use_quota: Set(true),
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
        };
        volumes::Entity::insert(row)
            .exec_without_returning(&self.conn)
            .await?;
        self.volume(&v.id).await
    }

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
