//! The `workers` intent table: which service has claimed which operation on which
//! resource. A claim is written before any Ceph object is made and removed when the work
//! is done, so a service restarting after a crash finds exactly what it left unfinished.
//! The unique index on (resource_type, resource_id) makes one claim per resource.

use chrono::Utc;
use cinder_common::ops::{ClaimKey, ResourceKind};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr};

use crate::db::retry_transient;
use crate::entity::{executions, services, workers};
use crate::error::{Error, Result};
use crate::Db;

impl Db {
    /// Claims `key` for `service_id`. A claim the same service already holds for the
    /// same operation is returned again (a redelivered message); any other existing
    /// claim is [`Error::Conflict`].
    pub async fn claim(&self, key: &ClaimKey, service_id: i32) -> Result<workers::Model> {
        let row = workers::ActiveModel {
            resource_type: Set(key.resource.as_str().into()),
            resource_id: Set(key.id.clone()),
            status: Set("claimed".into()),
            operation: Set(key.operation.into()),
            service_id: Set(Some(service_id)),
            race_preventer: Set(0),
            created_at: Set(Utc::now().naive_utc()),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
            ..Default::default()
        };
        match workers::Entity::insert(row)
            .exec_without_returning(&self.conn)
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            Err(e) => return Err(e.into()),
        }
        let claim = self.claim_on(key.resource, &key.id).await?.ok_or_else(|| {
            Error::Corrupt(format!("claim on {} {} vanished", key.resource, key.id))
        })?;
        if claim.service_id == Some(service_id) && claim.operation == key.operation {
            Ok(claim)
        } else {
            Err(Error::Conflict {
                kind: "claim",
                id: format!("{} {}", key.resource, key.id),
                expected: vec![format!(
                    "none, or {} by service {service_id}",
                    key.operation
                )],
                found: format!("{} by service {:?}", claim.operation, claim.service_id),
            })
        }
    }

    /// The claim on a resource, if any.
    pub async fn claim_on(
        &self,
        resource: ResourceKind,
        resource_id: &str,
    ) -> Result<Option<workers::Model>> {
        Ok(workers::Entity::find()
            .filter(workers::Column::ResourceType.eq(resource.as_str()))
            .filter(workers::Column::ResourceId.eq(resource_id))
            .one(&self.conn)
            .await?)
    }

    /// Ends service `holder`'s claim without a status change (the work found nothing to
    /// do, or its resource moved on). Ending a claim that is gone, or another service's,
    /// changes nothing and succeeds. Work that ends with a status releases its claim in
    /// [`Db::finish`].
    pub async fn release(&self, key: &ClaimKey, holder: i32) -> Result<()> {
        crate::state::release(&self.conn, key, holder).await?;
        Ok(())
    }

    /// Counts one more beginning of `key`'s work by `service_id` (one upsert, so two
    /// services beginning at once both count): called once the claim is held and the
    /// resource is still busy with the operation, before the driver is called.
    pub async fn count_execution(&self, key: &ClaimKey, service_id: i32) -> Result<()> {
        use sea_orm::sea_query::{Expr, OnConflict};
        use sea_orm::ExprTrait;
        let now = Utc::now().naive_utc();
        retry_transient!(executions::Entity::insert(executions::ActiveModel {
            resource_type: Set(key.resource.as_str().into()),
            resource_id: Set(key.id.clone()),
            operation: Set(key.operation.into()),
            runs: Set(1),
            service_id: Set(Some(service_id)),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                executions::Column::ResourceType,
                executions::Column::ResourceId,
                executions::Column::Operation,
            ])
            .value(
                executions::Column::Runs,
                Expr::col((executions::Entity, executions::Column::Runs)).add(1),
            )
            .update_columns([executions::Column::ServiceId, executions::Column::UpdatedAt])
            .to_owned(),
        )
        .exec_without_returning(&self.conn)
        .await
        .map_err(Error::from))?;
        Ok(())
    }

    /// How many times `key`'s work began (0: never).
    pub async fn executions(&self, key: &ClaimKey) -> Result<u32> {
        Ok(executions::Entity::find_by_id((
            key.resource.as_str().to_string(),
            key.id.clone(),
            key.operation.to_string(),
        ))
        .one(&self.conn)
        .await?
        .map(|r| r.runs.max(0) as u32)
        .unwrap_or(0))
    }

    /// Removes a stored claim this build does not know (by row id).
    pub async fn drop_claim_row(&self, claim_id: i32) -> Result<()> {
        workers::Entity::delete_by_id(claim_id)
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Every claim a service holds, oldest first: what it must resume or fail at start.
    pub async fn claims_of_service(&self, service_id: i32) -> Result<Vec<workers::Model>> {
        Ok(workers::Entity::find()
            .filter(workers::Column::ServiceId.eq(service_id))
            .order_by_asc(workers::Column::Id)
            .all(&self.conn)
            .await?)
    }

    /// Claims held by other services of `cluster_name` that are down (no heartbeat for
    /// `down_time`): work a dead peer of an active-active cluster left unfinished.
    pub async fn claims_of_down_peers(
        &self,
        cluster_name: &str,
        me: i32,
        down_time: std::time::Duration,
    ) -> Result<Vec<workers::Model>> {
        let now = Utc::now().naive_utc();
        let down: Vec<i32> = services::Entity::find()
            .filter(services::Column::ClusterName.eq(cluster_name))
            .filter(services::Column::Id.ne(me))
            .filter(services::Column::Deleted.eq(false))
            .all(&self.conn)
            .await?
            .into_iter()
            .filter(|s| !crate::service_is_up(s, down_time, now))
            .map(|s| s.id)
            .collect();
        if down.is_empty() {
            return Ok(Vec::new());
        }
        Ok(workers::Entity::find()
            .filter(workers::Column::ServiceId.is_in(down))
            .order_by_asc(workers::Column::Id)
            .all(&self.conn)
            .await?)
    }

    /// Moves claim `claim_id` from service `from` to service `to`, if `from` still holds
    /// it (one conditional `UPDATE`); false when another peer adopted it first.
    pub async fn adopt_claim(&self, claim_id: i32, from: i32, to: i32) -> Result<bool> {
        use sea_orm::sea_query::Expr;
        let res = workers::Entity::update_many()
            .col_expr(workers::Column::ServiceId, Expr::value(to))
            .col_expr(
                workers::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(workers::Column::Id.eq(claim_id))
            .filter(workers::Column::ServiceId.eq(from))
            .exec(&self.conn)
            .await?;
        Ok(res.rows_affected == 1)
    }
}
