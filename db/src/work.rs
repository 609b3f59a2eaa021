//! The `workers` intent table: which service has claimed which operation on which
//! resource. A claim is written before any Ceph object is made and removed when the work
//! is done, so a service restarting after a crash finds exactly what it left unfinished.
//! The unique index on (resource_type, resource_id) makes one claim per resource.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr};

use crate::entity::workers;
use crate::error::{Error, Result};
use crate::Db;

impl Db {
    /// Claims `operation` on `resource_type`/`resource_id` for `service_id`. A claim the
    /// same service already holds for the same operation is returned again (a
    /// redelivered message); any other existing claim is [`Error::Conflict`].
    pub async fn claim_work(
        &self,
        resource_type: &str,
        resource_id: &str,
        operation: &str,
        service_id: i32,
    ) -> Result<workers::Model> {
        let row = workers::ActiveModel {
            resource_type: Set(resource_type.into()),
            resource_id: Set(resource_id.into()),
            status: Set("claimed".into()),
            operation: Set(operation.into()),
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
        let claim = self
            .claim_of(resource_type, resource_id)
            .await?
            .ok_or_else(|| {
                Error::Corrupt(format!("claim on {resource_type} {resource_id} vanished"))
            })?;
        if claim.service_id == Some(service_id) && claim.operation == operation {
            Ok(claim)
        } else {
            Err(Error::Conflict {
                kind: "claim",
                id: format!("{resource_type} {resource_id}"),
                expected: vec![format!("none, or {operation} by service {service_id}")],
                found: format!("{} by service {:?}", claim.operation, claim.service_id),
            })
        }
    }

    /// The claim on a resource, if any.
    pub async fn claim_of(
        &self,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<workers::Model>> {
        Ok(workers::Entity::find()
            .filter(workers::Column::ResourceType.eq(resource_type))
            .filter(workers::Column::ResourceId.eq(resource_id))
            .one(&self.conn)
            .await?)
    }

    /// Ends a claim (the work finished or was failed cleanly). Ending a claim that is
    /// gone succeeds.
    pub async fn release_work(&self, resource_type: &str, resource_id: &str) -> Result<()> {
        workers::Entity::delete_many()
            .filter(workers::Column::ResourceType.eq(resource_type))
            .filter(workers::Column::ResourceId.eq(resource_id))
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
}
