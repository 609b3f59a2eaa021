//! User metadata of volumes, snapshots and backups (`volume_metadata`,
//! `snapshot_metadata`, `backup_metadata`):
//! read one or many, replace all, update some, delete one key. Rows are soft-deleted
//! like every other; a write is one transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};

use crate::db::retry_transient;
use crate::entity::{backup_metadata, snapshot_metadata, volume_metadata};
use crate::error::{Error, Result};
use crate::soft_delete::soft_delete;
use crate::Db;

/// Key → value.
pub type Metadata = BTreeMap<String, String>;

macro_rules! metadata_table {
    ($entity:ident, $owner:ident, $field:ident, $read:ident, $read_many:ident, $write:ident, $write_in:ident, $delete_key:ident, $kind:literal) => {
        impl Db {
            #[doc = concat!("The metadata of ", $kind, " `id`.")]
            pub async fn $read(&self, id: &str) -> Result<Metadata> {
                Ok(self
                    .$read_many(std::slice::from_ref(&id.to_string()))
                    .await?
                    .remove(id)
                    .unwrap_or_default())
            }

            #[doc = concat!("The metadata of many ", $kind, "s in one query.")]
            pub async fn $read_many(&self, ids: &[String]) -> Result<HashMap<String, Metadata>> {
                let mut out: HashMap<String, Metadata> = HashMap::new();
                if ids.is_empty() {
                    return Ok(out);
                }
                for chunk in ids.chunks(500) {
                    let select = $entity::Entity::find()
                        .filter($entity::Column::$owner.is_in(chunk.iter().cloned()))
                        .filter($entity::Column::Deleted.eq(false));
                    for r in self.all_rows(select).await? {
                        out.entry(r.$field)
                            .or_default()
                            .insert(r.key, r.value.unwrap_or_default());
                    }
                }
                Ok(out)
            }

            #[doc = concat!("Writes `items` to the metadata of ", $kind, " `id`: with `replace`, the")]
            /// keys not in `items` go. Returns the metadata after the write.
            pub async fn $write(&self, id: &str, items: &Metadata, replace: bool) -> Result<Metadata> {
                retry_transient!(async {
                    let txn = self.conn.begin().await?;
                    $write_in(&txn, id, items, replace).await?;
                    txn.commit().await?;
                    Ok::<(), Error>(())
                }
                .await)?;
                self.$read(id).await
            }

            #[doc = concat!("Deletes `key` from the metadata of ", $kind, " `id`; [`Error::NotFound`] when absent.")]
            pub async fn $delete_key(&self, id: &str, key: &str) -> Result<()> {
                let res = soft_delete::<$entity::Entity>()
                    .filter($entity::Column::$owner.eq(id))
                    .filter($entity::Column::Key.eq(key))
                    .exec(&self.conn)
                    .await?;
                if res.rows_affected == 0 {
                    return Err(Error::NotFound {
                        kind: "metadata key",
                        id: key.to_string(),
                    });
                }
                Ok(())
            }
        }

        /// The write of one metadata table, inside the caller's transaction.
        pub(crate) async fn $write_in<C: ConnectionTrait>(
            conn: &C,
            id: &str,
            items: &Metadata,
            replace: bool,
        ) -> Result<()> {
            let now = Utc::now().naive_utc();
            let mut gone = soft_delete::<$entity::Entity>()
                .filter($entity::Column::$owner.eq(id));
            if !replace {
                gone = gone.filter($entity::Column::Key.is_in(items.keys().cloned()));
            }
            if replace || !items.is_empty() {
                gone.exec(conn).await?;
            }
            for (k, v) in items {
                $entity::Entity::insert($entity::ActiveModel {
                    $field: Set(id.to_string()),
                    key: Set(k.clone()),
                    value: Set(Some(v.clone())),
                    created_at: Set(now),
                    updated_at: Set(None),
                    deleted_at: Set(None),
                    deleted: Set(false),
                    ..Default::default()
                })
                .exec_without_returning(conn)
                .await?;
            }
            Ok(())
        }
    };
}

metadata_table!(
    volume_metadata,
    VolumeId,
    volume_id,
    volume_metadata,
    volume_metadata_many,
    set_volume_metadata,
    write_volume_metadata,
    delete_volume_metadata_key,
    "volume"
);
metadata_table!(
    snapshot_metadata,
    SnapshotId,
    snapshot_id,
    snapshot_metadata,
    snapshot_metadata_many,
    set_snapshot_metadata,
    write_snapshot_metadata,
    delete_snapshot_metadata_key,
    "snapshot"
);
metadata_table!(
    backup_metadata,
    BackupId,
    backup_id,
    backup_metadata,
    backup_metadata_many,
    set_backup_metadata,
    write_backup_metadata,
    delete_backup_metadata_key,
    "backup"
);
