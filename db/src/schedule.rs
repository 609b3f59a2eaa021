//! What the scheduler reads and writes: the volume services it places on, the placement
//! of a volume (written before the cast, conditionally, so two schedulers never both
//! place one volume), a reschedule's release of a failed placement, and user messages.

use chrono::Utc;
use cinder_common::messages as catalogue;
use cinder_common::ops::ClaimKey;
use cinder_common::status::VolumeStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::db::retry_transient;
use crate::entity::{messages, services, volumes};
use crate::error::{Error, Result};
use crate::soft_delete::soft_delete;
use crate::Db;

/// A placement: where the scheduler put a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `host@backend#pool`.
    pub host: String,
    /// `cluster@backend`, for a backend served active-active.
    pub cluster_name: Option<String>,
    /// The zone of the service placed on.
    pub availability_zone: String,
}

/// A user message to record (the messages API shows it).
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The project that sees it.
    pub project_id: String,
    /// The request that failed.
    pub request_id: String,
    /// `VOLUME`, `SNAPSHOT`, ...
    pub resource_type: String,
    /// The resource.
    pub resource_uuid: Option<String>,
    /// `VOLUME_<type>_<action>_<detail>`.
    pub event_id: String,
    /// Action id.
    pub action_id: String,
    /// Detail id.
    pub detail_id: String,
    /// `ERROR`.
    pub message_level: String,
    /// How long it is kept.
    pub ttl: std::time::Duration,
}

fn on_host(host: &str) -> Condition {
    Condition::any()
        .add(volumes::Column::Host.eq(host))
        .add(volumes::Column::Host.like(format!("{host}#%")))
}

/// Places volume `id` nowhere again if it is still `creating` on `host` (`host@backend`,
/// any pool); returns the rows changed (0 or 1).
async fn clear_placement<C: ConnectionTrait>(conn: &C, id: &str, host: &str) -> Result<u64> {
    Ok(volumes::Entity::update_many()
        .col_expr(volumes::Column::Host, Expr::value(Option::<String>::None))
        .col_expr(
            volumes::Column::ClusterName,
            Expr::value(Option::<String>::None),
        )
        .filter(volumes::Column::Id.eq(id))
        .filter(volumes::Column::Deleted.eq(false))
        .filter(volumes::Column::Status.eq(VolumeStatus::Creating))
        .filter(on_host(host))
        .exec(conn)
        .await?
        .rows_affected)
}

impl NewMessage {
    /// An `ERROR` message about volume `volume_id` for `project`, kept for Cinder's
    /// `message_ttl`.
    pub fn volume_error(
        project_id: String,
        request_id: String,
        volume_id: &str,
        action: catalogue::Action,
        detail: catalogue::Detail,
    ) -> NewMessage {
        NewMessage {
            project_id,
            request_id,
            resource_type: "VOLUME".into(),
            resource_uuid: Some(volume_id.to_string()),
            event_id: catalogue::event_id("VOLUME", action, detail),
            action_id: action.id.into(),
            detail_id: detail.id.into(),
            message_level: "ERROR".into(),
            ttl: std::time::Duration::from_secs(catalogue::MESSAGE_TTL_SECS),
        }
    }
}

impl Db {
    /// Every registered volume service (not deleted), oldest first.
    pub async fn volume_services(&self) -> Result<Vec<services::Model>> {
        Ok(services::Entity::find()
            .filter(services::Column::Binary.eq("cinder-volume"))
            .filter(services::Column::Deleted.eq(false))
            .order_by_asc(services::Column::Id)
            .all(&self.conn)
            .await?)
    }

    /// Places volume `id` if it is still `creating` and placed nowhere; `false` when
    /// another scheduler placed it first or it moved on.
    pub async fn place_volume(&self, id: &str, at: &Placement) -> Result<bool> {
        let res = retry_transient!(volumes::Entity::update_many()
            .col_expr(volumes::Column::Host, Expr::value(at.host.clone()))
            .col_expr(
                volumes::Column::ClusterName,
                Expr::value(at.cluster_name.clone())
            )
            .col_expr(
                volumes::Column::AvailabilityZone,
                Expr::value(at.availability_zone.clone())
            )
            .col_expr(
                volumes::Column::ScheduledAt,
                Expr::value(Utc::now().naive_utc())
            )
            .filter(volumes::Column::Id.eq(id))
            .filter(volumes::Column::Deleted.eq(false))
            .filter(volumes::Column::Status.eq(VolumeStatus::Creating))
            .filter(volumes::Column::Host.is_null())
            .exec(&self.conn)
            .await
            .map_err(Error::from))?;
        Ok(res.rows_affected == 1)
    }

    /// Takes back a placement on `host` (`host@backend`, any pool) whose cast failed,
    /// if the volume is still `creating` there; `false` when it moved on.
    pub async fn unplace_volume(&self, id: &str, host: &str) -> Result<bool> {
        Ok(retry_transient!(clear_placement(&self.conn, id, host).await)? == 1)
    }

    /// A volume service gives a failed create back for rescheduling: the volume, still
    /// `creating`, is placed nowhere again, and `claim` (held by `holder`) is released,
    /// in one transaction. [`Error::Conflict`] when the volume is no longer `creating`
    /// on `host` (`host@backend`), [`Error::ClaimNotHeld`] when the claim is not
    /// `holder`'s; nothing changes then.
    pub async fn reschedule_volume(
        &self,
        claim: (&ClaimKey, i32),
        id: &str,
        host: &str,
    ) -> Result<()> {
        retry_transient!(self.reschedule_once(claim, id, host).await)
    }

    async fn reschedule_once(&self, claim: (&ClaimKey, i32), id: &str, host: &str) -> Result<()> {
        let txn = self.conn.begin().await?;
        if clear_placement(&txn, id, host).await? != 1 {
            return Err(Error::Conflict {
                kind: "volume",
                id: id.to_string(),
                expected: vec![format!("creating on {host}")],
                found: "elsewhere or no longer creating".into(),
            });
        }
        let (key, holder) = claim;
        if crate::state::release(&txn, key, holder).await? != 1 {
            return Err(Error::ClaimNotHeld {
                claim: key.to_string(),
                holder,
            });
        }
        txn.commit().await?;
        Ok(())
    }

    /// The hosts of the non-deleted volumes among `ids` of `project` (`None`: any
    /// project): what `same_host` / `different_host` hints name.
    pub async fn hosts_of_volumes(
        &self,
        ids: &[String],
        project: Option<&str>,
    ) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = volumes::Entity::find()
            .select_only()
            .column(volumes::Column::Host)
            .filter(volumes::Column::Id.is_in(ids.iter().cloned()))
            .filter(volumes::Column::Deleted.eq(false))
            .filter(volumes::Column::Host.is_not_null());
        if let Some(p) = project {
            q = q.filter(volumes::Column::ProjectId.eq(p));
        }
        let hosts: Vec<Option<String>> = q.into_tuple().all(&self.conn).await?;
        Ok(hosts.into_iter().flatten().collect())
    }

    /// Records a user message.
    pub async fn create_message(&self, m: &NewMessage) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now().naive_utc();
        let ttl = chrono::Duration::from_std(m.ttl).unwrap_or(chrono::Duration::days(30));
        let row = messages::ActiveModel {
            id: Set(id.clone()),
            project_id: Set(m.project_id.clone()),
            request_id: Set(m.request_id.clone()),
            resource_type: Set(m.resource_type.clone()),
            resource_uuid: Set(m.resource_uuid.clone()),
            event_id: Set(m.event_id.clone()),
            message_level: Set(m.message_level.clone()),
            detail_id: Set(Some(m.detail_id.clone())),
            action_id: Set(Some(m.action_id.clone())),
            expires_at: Set(now + ttl),
            created_at: Set(now),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
        };
        retry_transient!(messages::Entity::insert(row.clone())
            .exec_without_returning(&self.conn)
            .await
            .map_err(Error::from))?;
        Ok(id)
    }

    /// The messages about `resource_uuid`, oldest first.
    pub async fn messages_about(&self, resource_uuid: &str) -> Result<Vec<messages::Model>> {
        Ok(messages::Entity::find()
            .filter(messages::Column::ResourceUuid.eq(resource_uuid))
            .filter(messages::Column::Deleted.eq(false))
            .order_by_asc(messages::Column::CreatedAt)
            .all(&self.conn)
            .await?)
    }

    /// The live messages of `project` (all with `None`), newest first.
    pub async fn list_messages(&self, project: Option<&str>) -> Result<Vec<messages::Model>> {
        let mut q = messages::Entity::find()
            .filter(messages::Column::Deleted.eq(false))
            .filter(messages::Column::ExpiresAt.gt(Utc::now().naive_utc()));
        if let Some(p) = project {
            q = q.filter(messages::Column::ProjectId.eq(p));
        }
        Ok(q.order_by_desc(messages::Column::CreatedAt)
            .all(&self.conn)
            .await?)
    }

    /// A live message.
    pub async fn message(&self, id: &str) -> Result<messages::Model> {
        messages::Entity::find_by_id(id.to_string())
            .filter(messages::Column::Deleted.eq(false))
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "message",
                id: id.to_string(),
            })
    }

    /// Deletes message `id`.
    pub async fn delete_message(&self, id: &str) -> Result<()> {
        soft_delete::<messages::Entity>()
            .filter(messages::Column::Id.eq(id))
            .exec(&self.conn)
            .await?;
        Ok(())
    }
}
