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
            status: Set(SnapshotStatus::Creating.as_str().into()),
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

    /// Soft-deletes a snapshot that is `deleting`.
    pub async fn soft_delete_snapshot(&self, id: &str) -> Result<()> {
        use sea_orm::sea_query::Expr;
        let now = Utc::now().naive_utc();
        let res = snapshots::Entity::update_many()
            .col_expr(snapshots::Column::Deleted, Expr::value(true))
            .col_expr(snapshots::Column::DeletedAt, Expr::value(now))
            .col_expr(
                snapshots::Column::Status,
                Expr::value(SnapshotStatus::Deleted.as_str()),
            )
            .filter(snapshots::Column::Id.eq(id))
            .filter(snapshots::Column::Deleted.eq(false))
            .filter(snapshots::Column::Status.eq(SnapshotStatus::Deleting.as_str()))
            .exec(&self.conn)
            .await?;
        if res.rows_affected == 1 {
            return Ok(());
        }
        let s = self.snapshot(id).await?;
        Err(Error::Conflict {
            kind: "snapshot",
            id: id.into(),
            expected: vec!["deleting".into()],
            found: s.status,
        })
    }

    /// Puts back to `available` every snapshot of `volume_id` left `restoring` by an
    /// interrupted revert; returns how many.
    pub async fn snapshots_restoring_to_available(&self, volume_id: &str) -> Result<u64> {
        use sea_orm::sea_query::Expr;
        let res = snapshots::Entity::update_many()
            .col_expr(
                snapshots::Column::Status,
                Expr::value(SnapshotStatus::Available.as_str()),
            )
            .col_expr(
                snapshots::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(snapshots::Column::VolumeId.eq(volume_id))
            .filter(snapshots::Column::Deleted.eq(false))
            .filter(snapshots::Column::Status.eq(SnapshotStatus::Restoring.as_str()))
            .exec(&self.conn)
            .await?;
        Ok(res.rows_affected)
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
