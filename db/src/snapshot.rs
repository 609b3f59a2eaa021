//! Snapshot rows.

use chrono::Utc;
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use crate::entity::{snapshots, volumes};
use crate::error::{Error, Result};
use crate::Db;

/// What the API knows when it creates a snapshot row (status `creating`).
#[derive(Debug, Clone, Default)]
pub struct NewSnapshot {
    /// Snapshot id.
    pub id: String,
    /// Its volume.
    pub volume_id: String,
    /// Owning project.
    pub project_id: String,
    /// Creating user.
    pub user_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// The volume's size (GiB).
    pub volume_size_gib: i32,
    /// The volume's type.
    pub volume_type_id: Option<String>,
}

fn new_row(s: &NewSnapshot, counted: bool) -> snapshots::ActiveModel {
    snapshots::ActiveModel {
        id: Set(s.id.clone()),
        volume_id: Set(s.volume_id.clone()),
        project_id: Set(s.project_id.clone()),
        user_id: Set(s.user_id.clone()),
        display_name: Set(s.name.clone()),
        display_description: Set(s.description.clone()),
        status: Set(SnapshotStatus::Creating),
        progress: Set(Some("0%".into())),
        volume_size: Set(s.volume_size_gib),
        provider_location: Set(None),
        provider_id: Set(None),
        encryption_key_id: Set(None),
        volume_type_id: Set(s.volume_type_id.clone()),
        group_snapshot_id: Set(None),
        use_quota: Set(counted),
        created_at: Set(Utc::now().naive_utc()),
        updated_at: Set(None),
        deleted_at: Set(None),
        deleted: Set(false),
    }
}

impl Db {
    /// Inserts a snapshot of `volume_id` in status `creating`, holding no quota.
    pub async fn create_snapshot_row(
        &self,
        id: &str,
        volume_id: &str,
        project_id: &str,
        user_id: &str,
        volume_size_gib: i32,
    ) -> Result<snapshots::Model> {
        let new = NewSnapshot {
            id: id.into(),
            volume_id: volume_id.into(),
            project_id: project_id.into(),
            user_id: user_id.into(),
            volume_size_gib,
            ..Default::default()
        };
        snapshots::Entity::insert(new_row(&new, false))
            .exec_without_returning(&self.conn)
            .await?;
        self.snapshot(id).await
    }

    /// The API's create: inserts the snapshot (`creating`) with its metadata and commits
    /// its quota `reservations`, in one transaction, if and only if its volume is still
    /// in one of `volume_statuses` ([`Error::Conflict`] otherwise).
    pub async fn create_snapshot_counted(
        &self,
        s: &NewSnapshot,
        volume_statuses: &[VolumeStatus],
        metadata: &crate::Metadata,
        reservations: &[crate::ReservationId],
    ) -> Result<snapshots::Model> {
        crate::db::retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                // The guard: the volume is (still) in a status a snapshot may be taken in.
                let guard = volumes::Entity::update_many()
                    .col_expr(
                        volumes::Column::UpdatedAt,
                        Expr::value(Utc::now().naive_utc()),
                    )
                    .filter(volumes::Column::Id.eq(s.volume_id.as_str()))
                    .filter(volumes::Column::Deleted.eq(false))
                    .filter(
                        volumes::Column::Status.is_in(volume_statuses.iter().map(|v| v.as_str())),
                    )
                    .exec(&txn)
                    .await?;
                if guard.rows_affected != 1 {
                    txn.rollback().await?;
                    return Err(Error::Conflict {
                        kind: "volume",
                        id: s.volume_id.clone(),
                        expected: volume_statuses
                            .iter()
                            .map(|v| v.as_str().to_string())
                            .collect(),
                        found: "another status".into(),
                    });
                }
                snapshots::Entity::insert(new_row(s, true))
                    .exec_without_returning(&txn)
                    .await?;
                crate::metadata::write_snapshot_metadata(&txn, &s.id, metadata, false).await?;
                // The volume's image metadata goes with the snapshot (and on to the
                // volumes made from it), as Cinder copies it.
                crate::glance_metadata::copy_in(
                    &txn,
                    crate::ImageMetadataOf::Volume(&s.volume_id),
                    crate::ImageMetadataOf::Snapshot(&s.id),
                )
                .await?;
                crate::quota::finish_reservations_in(&txn, reservations, true).await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )?;
        self.snapshot(&s.id).await
    }

    /// Moves snapshot `id` from one of `from` to `to` (`os-update_snapshot_status`);
    /// [`Error::Conflict`] when it is in none of them.
    pub async fn move_snapshot_status(
        &self,
        id: &str,
        from: &[SnapshotStatus],
        to: SnapshotStatus,
    ) -> Result<()> {
        let res = snapshots::Entity::update_many()
            .col_expr(snapshots::Column::Status, Expr::value(to.as_str()))
            .col_expr(
                snapshots::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(snapshots::Column::Id.eq(id))
            .filter(snapshots::Column::Deleted.eq(false))
            .filter(snapshots::Column::Status.is_in(from.iter().map(|s| s.as_str())))
            .exec(&self.conn)
            .await?;
        if res.rows_affected == 1 {
            Ok(())
        } else {
            Err(Error::Conflict {
                kind: "snapshot",
                id: id.to_string(),
                expected: from.iter().map(|s| s.as_str().to_string()).collect(),
                found: "another status".into(),
            })
        }
    }

    /// The non-deleted snapshots of `volume_id`, any status.
    pub async fn snapshots_of_volume(&self, volume_id: &str) -> Result<Vec<snapshots::Model>> {
        Ok(snapshots::Entity::find()
            .filter(snapshots::Column::VolumeId.eq(volume_id))
            .filter(snapshots::Column::Deleted.eq(false))
            .order_by_asc(snapshots::Column::CreatedAt)
            .all(&self.conn)
            .await?)
    }

    /// Snapshots of `volume_id` in `status` (a revert's restoring snapshot, found again
    /// after a crash).
    pub async fn snapshots_of(
        &self,
        volume_id: &str,
        status: SnapshotStatus,
    ) -> Result<Vec<snapshots::Model>> {
        Ok(snapshots::Entity::find()
            .filter(snapshots::Column::VolumeId.eq(volume_id))
            .filter(snapshots::Column::Deleted.eq(false))
            .filter(snapshots::Column::Status.eq(status.as_str()))
            .all(&self.conn)
            .await?)
    }

    /// A non-deleted snapshot.
    pub async fn snapshot(&self, id: &str) -> Result<snapshots::Model> {
        snapshots::Entity::find_by_id(id.to_string())
            .filter(snapshots::Column::Deleted.eq(false))
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "snapshot",
                id: id.to_string(),
            })
    }
}
