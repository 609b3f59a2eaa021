//! Image metadata (`volume_glance_metadata`): the properties of the Glance image a volume
//! was made from, on the volume and on its snapshots; the API shows them as
//! `volume_image_metadata`, Nova reads them for volume-backed servers. Written with the
//! volume's row (`create_volume_counted`), copied to a snapshot with its row
//! (`create_snapshot_counted`), changed by the image metadata actions.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

use crate::db::retry_transient;
use crate::entity::volume_glance_metadata as gm;
use crate::error::{Error, Result};
use crate::soft_delete::soft_delete;
use crate::{Db, Metadata};

/// Whose image metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMetadataOf<'a> {
    /// A volume's.
    Volume(&'a str),
    /// A snapshot's.
    Snapshot(&'a str),
}

impl ImageMetadataOf<'_> {
    fn filter(self) -> sea_orm::sea_query::SimpleExpr {
        match self {
            ImageMetadataOf::Volume(id) => gm::Column::VolumeId.eq(id),
            ImageMetadataOf::Snapshot(id) => gm::Column::SnapshotId.eq(id),
        }
    }
}

pub(crate) async fn read_in<C: ConnectionTrait>(
    conn: &C,
    of: ImageMetadataOf<'_>,
) -> Result<Metadata> {
    Ok(gm::Entity::find()
        .filter(of.filter())
        .filter(gm::Column::Deleted.eq(false))
        .order_by_asc(gm::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.key, r.value.unwrap_or_default()))
        .collect())
}

/// Writes `items` as image metadata of `of` (keys present are replaced), inside the
/// caller's transaction.
pub(crate) async fn write_in<C: ConnectionTrait>(
    conn: &C,
    of: ImageMetadataOf<'_>,
    items: &Metadata,
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let now = Utc::now().naive_utc();
    soft_delete::<gm::Entity>()
        .filter(of.filter())
        .filter(gm::Column::Key.is_in(items.keys().cloned()))
        .exec(conn)
        .await?;
    let (volume_id, snapshot_id) = match of {
        ImageMetadataOf::Volume(id) => (Some(id.to_string()), None),
        ImageMetadataOf::Snapshot(id) => (None, Some(id.to_string())),
    };
    let rows = items.iter().map(|(k, v)| gm::ActiveModel {
        volume_id: Set(volume_id.clone()),
        snapshot_id: Set(snapshot_id.clone()),
        key: Set(k.clone()),
        value: Set(Some(v.clone())),
        created_at: Set(now),
        updated_at: Set(None),
        deleted_at: Set(None),
        deleted: Set(false),
        ..Default::default()
    });
    gm::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Copies the image metadata of `from` to `to` inside the caller's transaction.
pub(crate) async fn copy_in<C: ConnectionTrait>(
    conn: &C,
    from: ImageMetadataOf<'_>,
    to: ImageMetadataOf<'_>,
) -> Result<()> {
    let items = read_in(conn, from).await?;
    write_in(conn, to, &items).await
}

impl Db {
    /// The image metadata of `of` (empty: not made from an image).
    pub async fn image_metadata(&self, of: ImageMetadataOf<'_>) -> Result<Metadata> {
        read_in(&self.conn, of).await
    }

    /// The image metadata of many volumes in one query per 500; volumes without any
    /// are absent.
    pub async fn volumes_image_metadata(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Metadata>> {
        let mut out: HashMap<String, Metadata> = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows = gm::Entity::find()
                .filter(gm::Column::VolumeId.is_in(chunk.iter().cloned()))
                .filter(gm::Column::Deleted.eq(false))
                .order_by_asc(gm::Column::Id)
                .all(&self.conn)
                .await?;
            for r in rows {
                if let Some(v) = r.volume_id {
                    out.entry(v)
                        .or_default()
                        .insert(r.key, r.value.unwrap_or_default());
                }
            }
        }
        Ok(out)
    }

    /// Sets `items` in the image metadata of `of` (other keys stay); returns the
    /// metadata after the write.
    pub async fn set_image_metadata(
        &self,
        of: ImageMetadataOf<'_>,
        items: &Metadata,
    ) -> Result<Metadata> {
        retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                write_in(&txn, of, items).await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )?;
        self.image_metadata(of).await
    }

    /// Makes `items` the whole image metadata of `of` (other keys go), in one
    /// transaction.
    pub async fn replace_image_metadata(
        &self,
        of: ImageMetadataOf<'_>,
        items: &Metadata,
    ) -> Result<()> {
        retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                soft_delete::<gm::Entity>()
                    .filter(of.filter())
                    .exec(&txn)
                    .await?;
                write_in(&txn, of, items).await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )
    }

    /// Deletes `key` from the image metadata of `of`; [`Error::NotFound`] when absent.
    pub async fn delete_image_metadata_key(
        &self,
        of: ImageMetadataOf<'_>,
        key: &str,
    ) -> Result<()> {
        let res = soft_delete::<gm::Entity>()
            .filter(of.filter())
            .filter(gm::Column::Key.eq(key))
            .exec(&self.conn)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::NotFound {
                kind: "image metadata key",
                id: key.to_string(),
            });
        }
        Ok(())
    }
}
