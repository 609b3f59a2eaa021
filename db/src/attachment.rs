//! Attachments (`volume_attachment`) and the volume statuses they move, as Cinder moves
//! them: an attachment is `reserved`, then `attaching` once a host's connector is
//! known, then `attached`; the volume is `reserved`, `attaching`, then `in-use`; when
//! an attachment goes, the volume's state is recomputed from the ones that remain.
//!
//! Each change is one transaction, and every volume status write in it is a
//! conditional update on the statuses it may come from.

use chrono::Utc;
use cinder_common::status::{AttachStatus, VolumeStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

use crate::db::retry_transient;
use crate::entity::{volume_admin_metadata, volume_attachment, volumes};
use crate::error::{Error, Result};
use crate::soft_delete::soft_delete;
use crate::Db;

/// A new attachment.
#[derive(Debug, Clone, Default)]
pub struct NewAttachment {
    /// Attachment id.
    pub id: String,
    /// The volume.
    pub volume_id: String,
    /// The server.
    pub instance_uuid: Option<String>,
    /// The host (legacy `os-attach` with `host_name`).
    pub attached_host: Option<String>,
    /// `rw` or `ro`.
    pub attach_mode: Option<String>,
    /// Device path.
    pub mountpoint: Option<String>,
}

/// What a host's connector made of an attachment.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    /// The connector (JSON).
    pub connector: String,
    /// The connection info (JSON).
    pub connection_info: String,
    /// The connector's host.
    pub host: Option<String>,
    /// The connector's mountpoint.
    pub mountpoint: Option<String>,
    /// `rw` or `ro`.
    pub mode: String,
}

/// Moves volume `id` from one of `from` to `to` (and its attach status, when given),
/// in `conn`; [`Error::Conflict`] names the status it had.
pub(crate) async fn move_volume<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    from: &[VolumeStatus],
    to: VolumeStatus,
    attach: Option<AttachStatus>,
) -> Result<()> {
    let mut u = volumes::Entity::update_many()
        .col_expr(volumes::Column::Status, Expr::value(to.as_str()))
        .col_expr(
            volumes::Column::UpdatedAt,
            Expr::value(Utc::now().naive_utc()),
        )
        .filter(volumes::Column::Id.eq(id))
        .filter(volumes::Column::Deleted.eq(false))
        .filter(volumes::Column::Status.is_in(from.iter().map(|s| s.as_str())));
    if let Some(a) = attach {
        u = u.col_expr(volumes::Column::AttachStatus, Expr::value(a.as_str()));
    }
    if u.exec(conn).await?.rows_affected == 1 {
        return Ok(());
    }
    let found = volumes::Entity::find_by_id(id.to_string())
        .filter(volumes::Column::Deleted.eq(false))
        .one(conn)
        .await?;
    match found {
        None => Err(Error::NotFound {
            kind: "volume",
            id: id.to_string(),
        }),
        Some(v) => Err(Error::Conflict {
            kind: "volume",
            id: id.to_string(),
            expected: from.iter().map(|s| s.as_str().to_string()).collect(),
            found: v.status.as_str().to_string(),
        }),
    }
}

fn row(a: &NewAttachment, status: AttachStatus) -> volume_attachment::ActiveModel {
    let now = Utc::now().naive_utc();
    volume_attachment::ActiveModel {
        id: Set(a.id.clone()),
        volume_id: Set(a.volume_id.clone()),
        attached_host: Set(a.attached_host.clone()),
        instance_uuid: Set(a.instance_uuid.clone()),
        mountpoint: Set(a.mountpoint.clone()),
        attach_time: Set((status == AttachStatus::Attached).then_some(now)),
        detach_time: Set(None),
        attach_mode: Set(a.attach_mode.clone()),
        attach_status: Set(status),
        connection_info: Set(None),
        connector: Set(None),
        created_at: Set(now),
        updated_at: Set(None),
        deleted_at: Set(None),
        deleted: Set(false),
    }
}

/// The volume's attach status and status from its live attachments (Cinder's
/// `volume_detached`): the first of attached, attaching, detaching, reserved present,
/// else detached; `attached` is `in-use`, `detached` is `available`, the others keep
/// the volume's status.
async fn recompute<C: ConnectionTrait>(conn: &C, volume_id: &str) -> Result<()> {
    let live = volume_attachment::Entity::find()
        .filter(volume_attachment::Column::VolumeId.eq(volume_id))
        .filter(volume_attachment::Column::Deleted.eq(false))
        .all(conn)
        .await?;
    let order = [
        AttachStatus::Attached,
        AttachStatus::Attaching,
        AttachStatus::Detaching,
        AttachStatus::Reserved,
    ];
    let attach = order
        .into_iter()
        .find(|s| live.iter().any(|a| a.attach_status == *s))
        .unwrap_or(AttachStatus::Detached);
    let mut u = volumes::Entity::update_many()
        .col_expr(volumes::Column::AttachStatus, Expr::value(attach.as_str()))
        .col_expr(
            volumes::Column::UpdatedAt,
            Expr::value(Utc::now().naive_utc()),
        )
        .filter(volumes::Column::Id.eq(volume_id))
        .filter(volumes::Column::Deleted.eq(false));
    let status = match attach {
        AttachStatus::Attached => Some(VolumeStatus::InUse),
        AttachStatus::Detached => Some(VolumeStatus::Available),
        _ => None,
    };
    if let Some(s) = status {
        // An upload or a migration keeps its status (Cinder's rule).
        u = u
            .col_expr(volumes::Column::Status, Expr::value(s.as_str()))
            .filter(volumes::Column::Status.ne(VolumeStatus::Uploading.as_str()));
    }
    u.exec(conn).await?;
    Ok(())
}

impl Db {
    /// Reserves volume `a.volume_id` for a new attachment (`reserved`): the volume moves
    /// from one of `from` to `reserved`, the attachment row is inserted, in one
    /// transaction.
    pub async fn reserve_attachment(
        &self,
        a: &NewAttachment,
        from: &[VolumeStatus],
    ) -> Result<volume_attachment::Model> {
        retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                move_volume(&txn, &a.volume_id, from, VolumeStatus::Reserved, None).await?;
                volume_attachment::Entity::insert(row(a, AttachStatus::Reserved))
                    .exec_without_returning(&txn)
                    .await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )?;
        self.attachment(&a.id).await
    }

    /// A live attachment.
    pub async fn attachment(&self, id: &str) -> Result<volume_attachment::Model> {
        volume_attachment::Entity::find_by_id(id.to_string())
            .filter(volume_attachment::Column::Deleted.eq(false))
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "attachment",
                id: id.to_string(),
            })
    }

    /// The live attachments of `project` (all with `None`), optionally of one volume or
    /// server, oldest first.
    pub async fn list_attachments(
        &self,
        project: Option<&str>,
        volume_id: Option<&str>,
        instance_uuid: Option<&str>,
    ) -> Result<Vec<volume_attachment::Model>> {
        let mut q =
            volume_attachment::Entity::find().filter(volume_attachment::Column::Deleted.eq(false));
        if let Some(p) = project {
            let own = sea_orm::sea_query::Query::select()
                .column(volumes::Column::Id)
                .from(volumes::Entity)
                .and_where(volumes::Column::ProjectId.eq(p))
                .to_owned();
            q = q.filter(volume_attachment::Column::VolumeId.in_subquery(own));
        }
        if let Some(v) = volume_id {
            q = q.filter(volume_attachment::Column::VolumeId.eq(v));
        }
        if let Some(i) = instance_uuid {
            q = q.filter(volume_attachment::Column::InstanceUuid.eq(i));
        }
        Ok(q.order_by_asc(volume_attachment::Column::CreatedAt)
            .all(&self.conn)
            .await?)
    }

    /// A host connected: the attachment and its volume are `attaching`, the connector
    /// and connection info recorded.
    pub async fn attachment_connected(&self, id: &str, c: &Connected) -> Result<()> {
        let a = self.attachment(id).await?;
        retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                let now = Utc::now().naive_utc();
                volume_attachment::Entity::update_many()
                    .col_expr(
                        volume_attachment::Column::AttachStatus,
                        Expr::value(AttachStatus::Attaching.as_str()),
                    )
                    .col_expr(volume_attachment::Column::AttachTime, Expr::value(now))
                    .col_expr(
                        volume_attachment::Column::Connector,
                        Expr::value(c.connector.clone()),
                    )
                    .col_expr(
                        volume_attachment::Column::ConnectionInfo,
                        Expr::value(c.connection_info.clone()),
                    )
                    .col_expr(
                        volume_attachment::Column::AttachedHost,
                        Expr::value(c.host.clone()),
                    )
                    .col_expr(
                        volume_attachment::Column::Mountpoint,
                        Expr::value(c.mountpoint.clone().unwrap_or_else(|| "na".into())),
                    )
                    .col_expr(
                        volume_attachment::Column::AttachMode,
                        Expr::value(c.mode.clone()),
                    )
                    .col_expr(volume_attachment::Column::UpdatedAt, Expr::value(now))
                    .filter(volume_attachment::Column::Id.eq(id))
                    .filter(volume_attachment::Column::Deleted.eq(false))
                    .exec(&txn)
                    .await?;
                volumes::Entity::update_many()
                    .col_expr(
                        volumes::Column::Status,
                        Expr::value(VolumeStatus::Attaching.as_str()),
                    )
                    .col_expr(
                        volumes::Column::AttachStatus,
                        Expr::value(AttachStatus::Attaching.as_str()),
                    )
                    .col_expr(volumes::Column::UpdatedAt, Expr::value(now))
                    .filter(volumes::Column::Id.eq(a.volume_id.as_str()))
                    .filter(volumes::Column::Deleted.eq(false))
                    // A multiattach volume already in use stays in use.
                    .filter(volumes::Column::Status.ne(VolumeStatus::InUse.as_str()))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )
    }

    /// `os-complete`: the attachment is `attached`, its volume `in-use`.
    pub async fn complete_attachment(&self, id: &str) -> Result<()> {
        let a = self.attachment(id).await?;
        retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                let now = Utc::now().naive_utc();
                volume_attachment::Entity::update_many()
                    .col_expr(
                        volume_attachment::Column::AttachStatus,
                        Expr::value(AttachStatus::Attached.as_str()),
                    )
                    .col_expr(volume_attachment::Column::UpdatedAt, Expr::value(now))
                    .filter(volume_attachment::Column::Id.eq(id))
                    .filter(volume_attachment::Column::Deleted.eq(false))
                    .exec(&txn)
                    .await?;
                if a.attach_time.is_none() {
                    volume_attachment::Entity::update_many()
                        .col_expr(volume_attachment::Column::AttachTime, Expr::value(now))
                        .filter(volume_attachment::Column::Id.eq(id))
                        .exec(&txn)
                        .await?;
                }
                recompute(&txn, &a.volume_id).await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )
    }

    /// Legacy `os-attach`: a new attachment, at once `attached`; the volume moves from
    /// one of `from` to `in-use`.
    pub async fn attach_now(&self, a: &NewAttachment, from: &[VolumeStatus]) -> Result<()> {
        retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                move_volume(
                    &txn,
                    &a.volume_id,
                    from,
                    VolumeStatus::InUse,
                    Some(AttachStatus::Attached),
                )
                .await?;
                volume_attachment::Entity::insert(row(a, AttachStatus::Attached))
                    .exec_without_returning(&txn)
                    .await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )
    }

    /// The attachment goes (soft-deleted, `detached`); its volume's state is
    /// recomputed from the ones that remain. Returns those.
    pub async fn detach(&self, id: &str) -> Result<Vec<volume_attachment::Model>> {
        let a = self.attachment(id).await?;
        retry_transient!(
            async {
                let txn = self.conn.begin().await?;
                let now = Utc::now().naive_utc();
                soft_delete::<volume_attachment::Entity>()
                    .col_expr(
                        volume_attachment::Column::AttachStatus,
                        Expr::value(AttachStatus::Detached.as_str()),
                    )
                    .col_expr(volume_attachment::Column::DetachTime, Expr::value(now))
                    .filter(volume_attachment::Column::Id.eq(id))
                    .exec(&txn)
                    .await?;
                recompute(&txn, &a.volume_id).await?;
                txn.commit().await?;
                Ok::<(), Error>(())
            }
            .await
        )?;
        self.list_attachments(None, Some(&a.volume_id), None).await
    }

    /// Moves volume `id` from one of `from` to `to` (legacy `os-reserve` and kin).
    pub async fn move_volume_status(
        &self,
        id: &str,
        from: &[VolumeStatus],
        to: VolumeStatus,
    ) -> Result<()> {
        retry_transient!(move_volume(&self.conn, id, from, to, None).await)
    }

    /// `os-unreserve`: an `attaching` volume goes back to `in-use` when it has
    /// attachments, else `available`; anything else is left as it is.
    pub async fn unreserve(&self, id: &str) -> Result<()> {
        let has = !self
            .list_attachments(None, Some(id), None)
            .await?
            .is_empty();
        let to = if has {
            VolumeStatus::InUse
        } else {
            VolumeStatus::Available
        };
        match self
            .move_volume_status(id, &[VolumeStatus::Attaching], to)
            .await
        {
            Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sets `bootable`.
    pub async fn set_bootable(&self, id: &str, bootable: bool) -> Result<()> {
        volumes::Entity::update_many()
            .col_expr(volumes::Column::Bootable, Expr::value(bootable))
            .col_expr(
                volumes::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(volumes::Column::Id.eq(id))
            .filter(volumes::Column::Deleted.eq(false))
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Sets the attach status (admin `os-reset_status`).
    pub async fn set_attach_status(&self, id: &str, a: AttachStatus) -> Result<()> {
        volumes::Entity::update_many()
            .col_expr(volumes::Column::AttachStatus, Expr::value(a.as_str()))
            .col_expr(
                volumes::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(volumes::Column::Id.eq(id))
            .filter(volumes::Column::Deleted.eq(false))
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Sets admin metadata `key` of volume `id` (`readonly`, `attached_mode`).
    pub async fn set_admin_metadata(&self, id: &str, key: &str, value: &str) -> Result<()> {
        let now = Utc::now().naive_utc();
        soft_delete::<volume_admin_metadata::Entity>()
            .filter(volume_admin_metadata::Column::VolumeId.eq(id))
            .filter(volume_admin_metadata::Column::Key.eq(key))
            .exec(&self.conn)
            .await?;
        volume_admin_metadata::Entity::insert(volume_admin_metadata::ActiveModel {
            volume_id: Set(id.to_string()),
            key: Set(key.to_string()),
            value: Set(Some(value.to_string())),
            created_at: Set(now),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
            ..Default::default()
        })
        .exec_without_returning(&self.conn)
        .await?;
        Ok(())
    }

    /// Admin metadata `key` of volume `id`.
    pub async fn admin_metadata(&self, id: &str, key: &str) -> Result<Option<String>> {
        Ok(volume_admin_metadata::Entity::find()
            .filter(volume_admin_metadata::Column::VolumeId.eq(id))
            .filter(volume_admin_metadata::Column::Key.eq(key))
            .filter(volume_admin_metadata::Column::Deleted.eq(false))
            .one(&self.conn)
            .await?
            .and_then(|m| m.value))
    }
}
