//! `services` rows: registration and the heartbeat.

use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::services;
use crate::error::{Error, Result};
use crate::Db;

/// Who a service is.
#[derive(Debug, Clone)]
pub struct ServiceRegistration {
    /// `host` for the scheduler and api, `host@backend` for volume services.
    pub host: String,
    /// `cinder-volume`, `cinder-scheduler`, ...
    pub binary: String,
    /// RPC topic.
    pub topic: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Cluster (active-active), if any.
    pub cluster_name: Option<String>,
}

impl Db {
    /// Finds the service's row (host, binary) or creates it; returns it.
    pub async fn register_service(&self, r: &ServiceRegistration) -> Result<services::Model> {
        if let Some(row) = self.find_service(&r.host, &r.binary).await? {
            return Ok(row);
        }
        let now = Utc::now().naive_utc();
        let row = services::ActiveModel {
            uuid: Set(uuid::Uuid::new_v4().to_string()),
            host: Set(r.host.clone()),
            binary: Set(r.binary.clone()),
            topic: Set(r.topic.clone()),
            availability_zone: Set(r.availability_zone.clone()),
            disabled: Set(false),
            disabled_reason: Set(None),
            report_count: Set(0),
            capabilities: Set(None),
            cluster_name: Set(r.cluster_name.clone()),
            rpc_current_version: Set(None),
            object_current_version: Set(None),
            replication_status: Set(None),
            active_backend_id: Set(None),
            frozen: Set(false),
            created_at: Set(now),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
            ..Default::default()
        };
        services::Entity::insert(row)
            .exec_without_returning(&self.conn)
            .await?;
        self.find_service(&r.host, &r.binary)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("service {}/{} vanished", r.host, r.binary)))
    }

    /// The non-deleted service row for (host, binary), oldest first if duplicated.
    pub async fn find_service(&self, host: &str, binary: &str) -> Result<Option<services::Model>> {
        Ok(services::Entity::find()
            .filter(services::Column::Host.eq(host))
            .filter(services::Column::Binary.eq(binary))
            .filter(services::Column::Deleted.eq(false))
            .order_by_asc(services::Column::Id)
            .one(&self.conn)
            .await?)
    }

    /// One heartbeat: `report_count + 1`, `updated_at = now`, and the capabilities when
    /// given (the scheduler reads them from here: fresh stats mean a live backend).
    pub async fn heartbeat(
        &self,
        service_id: i32,
        capabilities: Option<&serde_json::Value>,
    ) -> Result<()> {
        let mut update = services::Entity::update_many()
            .col_expr(
                services::Column::ReportCount,
                Expr::col(services::Column::ReportCount).add(1),
            )
            .col_expr(
                services::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            );
        if let Some(c) = capabilities {
            update = update.col_expr(services::Column::Capabilities, Expr::value(c.to_string()));
        }
        let res = update
            .filter(services::Column::Id.eq(service_id))
            .exec(&self.conn)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::NotFound {
                kind: "service",
                id: service_id.to_string(),
            });
        }
        Ok(())
    }

    /// A service row by id.
    pub async fn service(&self, id: i32) -> Result<services::Model> {
        services::Entity::find_by_id(id)
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "service",
                id: id.to_string(),
            })
    }
}

/// Cinder's rule: a service is up when its last heartbeat is younger than
/// `service_down_time` (never reported: down).
pub fn service_is_up(
    row: &services::Model,
    service_down_time: Duration,
    now: NaiveDateTime,
) -> bool {
    let last = row.updated_at.unwrap_or(row.created_at);
    row.report_count > 0
        && (now - last)
            .to_std()
            .map(|age| age <= service_down_time)
            .unwrap_or(true)
}

impl Db {
    /// Every registered service (not deleted), by binary then host.
    pub async fn services(&self) -> Result<Vec<services::Model>> {
        Ok(services::Entity::find()
            .filter(services::Column::Deleted.eq(false))
            .order_by_asc(services::Column::Binary)
            .order_by_asc(services::Column::Host)
            .all(&self.conn)
            .await?)
    }

    /// Enables or disables service `binary` on `host`; `false` when there is none.
    pub async fn set_service_disabled(
        &self,
        host: &str,
        binary: &str,
        disabled: bool,
        reason: Option<&str>,
    ) -> Result<bool> {
        let res = services::Entity::update_many()
            .col_expr(services::Column::Disabled, Expr::value(disabled))
            .col_expr(
                services::Column::DisabledReason,
                Expr::value(reason.map(str::to_string)),
            )
            .filter(services::Column::Host.eq(host))
            .filter(services::Column::Binary.eq(binary))
            .filter(services::Column::Deleted.eq(false))
            .exec(&self.conn)
            .await?;
        Ok(res.rows_affected > 0)
    }
}
