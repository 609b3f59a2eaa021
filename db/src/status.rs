//! Conditional status updates: the only way a status changes.

use chrono::Utc;
use cinder_common::status::{BackupStatus, SnapshotStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::entity::{backups, snapshots};
use crate::error::{Error, Result};
use crate::Db;

macro_rules! conditional_status {
    ($(#[$doc:meta])* $fn:ident, $entity:ident, $status:ty, $kind:literal) => {
        $(#[$doc])*
        pub async fn $fn(&self, id: &str, expected: &[$status], new: $status) -> Result<()> {
            let now = Utc::now().naive_utc();
            let res = $entity::Entity::update_many()
                .col_expr($entity::Column::Status, Expr::value(new.as_str()))
                .col_expr($entity::Column::UpdatedAt, Expr::value(now))
                .filter($entity::Column::Id.eq(id))
                .filter($entity::Column::Deleted.eq(false))
                .filter($entity::Column::Status.is_in(expected.iter().map(|s| s.as_str())))
                .exec(&self.conn)
                .await?;
            if res.rows_affected == 1 {
                return Ok(());
            }
            let current = $entity::Entity::find_by_id(id.to_string())
                .filter($entity::Column::Deleted.eq(false))
                .one(&self.conn)
                .await?;
            match current {
                None => Err(Error::NotFound { kind: $kind, id: id.to_string() }),
                Some(row) => Err(Error::Conflict {
                    kind: $kind,
                    id: id.to_string(),
                    expected: expected.iter().map(|s| s.as_str().to_string()).collect(),
                    found: row.status,
                }),
            }
        }
    };
}

impl Db {
    conditional_status!(
        /// Moves snapshot `id` to `new` if (and only if) its status is one of `expected`:
        /// one `UPDATE ... WHERE status IN (...)`. A lost race is [`Error::Conflict`].
        update_snapshot_status_if, snapshots, SnapshotStatus, "snapshot"
    );
    conditional_status!(
        /// [`Db::update_snapshot_status_if`] for backups.
        update_backup_status_if, backups, BackupStatus, "backup"
    );
}
