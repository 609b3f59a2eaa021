//! Snapshot rows.

use chrono::Utc;
use cinder_common::status::SnapshotStatus;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::entity::snapshots;
use crate::error::{Error, Result};
use crate::Db;

impl Db {
    /// Inserts a snapshot of `volume_id` in status `creating`.
    pub async fn create_snapshot_row(
        &self,
        id: &str,
        volume_id: &str,
        project_id: &str,
        user_id: &str,
        volume_size_gib: i32,
    ) -> Result<snapshots::Model> {
        let row = snapshots::ActiveModel {
            id: Set(id.into()),
            volume_id: Set(volume_id.into()),
            project_id: Set(project_id.into()),
            user_id: Set(user_id.into()),
            display_name: Set(None),
            display_description: Set(None),
            status: Set(SnapshotStatus::Creating),
            progress: Set(None),
            volume_size: Set(volume_size_gib),
            provider_location: Set(None),
            provider_id: Set(None),
            encryption_key_id: Set(None),
            volume_type_id: Set(None),
            group_snapshot_id: Set(None),
            use_quota: Set(true),
            created_at: Set(Utc::now().naive_utc()),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
        };
        snapshots::Entity::insert(row)
            .exec_without_returning(&self.conn)
            .await?;
        self.snapshot(id).await
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
