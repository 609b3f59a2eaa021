//! Quotas: limits, usage, and reservations (reserve, commit, roll back, expire).
//!
//! A reservation raises `quota_usages.reserved` by a conditional update that only
//! matches while `in_use + reserved + delta <= limit`; resources are taken in sorted
//! order inside one transaction, so concurrent reservations neither overshoot nor
//! deadlock, on any of the three databases. Committing moves the delta from `reserved`
//! to `in_use`; rolling back (or expiry) returns it. Each reservation row is finished
//! by a conditional update too, so a commit racing an expiry counts once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, SqlErr,
    TransactionTrait,
};

use crate::db::retry_transient;
use crate::entity::{quota_classes, quota_usages, quotas, reservations};
use crate::error::{Error, Result};
use crate::soft_delete::soft_delete;
use crate::Db;

/// Hard limits by resource (`volumes`, `gigabytes`, `snapshots`, `backups`,
/// `backup_gigabytes`, and per type `volumes_<type>`, `gigabytes_<type>`); -1 is unlimited.
pub type QuotaLimits = BTreeMap<String, i64>;

/// One reserved resource delta (a `reservations.uuid`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReservationId(pub String);

/// Usage of one resource by one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Committed.
    pub in_use: i64,
    /// Reserved, not yet committed or rolled back.
    pub reserved: i64,
}

impl Db {
    /// The project's limits: its own `quotas` rows, else the `default` quota class,
    /// else `defaults` (from configuration).
    pub async fn quota_limits(&self, project: &str, defaults: &QuotaLimits) -> Result<QuotaLimits> {
        let mut limits = defaults.clone();
        for c in quota_classes::Entity::find()
            .filter(quota_classes::Column::ClassName.eq("default"))
            .filter(quota_classes::Column::Deleted.eq(false))
            .all(&self.conn)
            .await?
        {
            limits.insert(c.resource, c.hard_limit as i64);
        }
        for q in quotas::Entity::find()
            .filter(quotas::Column::ProjectId.eq(project))
            .filter(quotas::Column::Deleted.eq(false))
            .all(&self.conn)
            .await?
        {
            limits.insert(q.resource, q.hard_limit as i64);
        }
        Ok(limits)
    }

    /// Sets a project's own limit for `resource`.
    pub async fn set_project_quota(&self, project: &str, resource: &str, limit: i64) -> Result<()> {
        let now = Utc::now().naive_utc();
        let updated = quotas::Entity::update_many()
            .col_expr(quotas::Column::HardLimit, Expr::value(limit as i32))
            .col_expr(quotas::Column::UpdatedAt, Expr::value(now))
            .filter(quotas::Column::ProjectId.eq(project))
            .filter(quotas::Column::Resource.eq(resource))
            .filter(quotas::Column::Deleted.eq(false))
            .exec(&self.conn)
            .await?;
        if updated.rows_affected == 0 {
            let row = quotas::ActiveModel {
                project_id: Set(project.into()),
                resource: Set(resource.into()),
                hard_limit: Set(limit as i32),
                allocated: Set(0),
                created_at: Set(now),
                updated_at: Set(None),
                deleted_at: Set(None),
                deleted: Set(false),
                ..Default::default()
            };
            quotas::Entity::insert(row)
                .exec_without_returning(&self.conn)
                .await?;
        }
        Ok(())
    }

    /// Usage of every resource `project` ever used, in one query.
    pub async fn usages(&self, project: &str) -> Result<BTreeMap<String, Usage>> {
        Ok(quota_usages::Entity::find()
            .filter(quota_usages::Column::ProjectId.eq(project))
            .all(&self.conn)
            .await?
            .into_iter()
            .map(|u| {
                let usage = Usage {
                    in_use: u.in_use as i64,
                    reserved: u.reserved as i64,
                };
                (u.resource, usage)
            })
            .collect())
    }

    /// Usage of `resource` by `project` (zero when never used).
    pub async fn usage(&self, project: &str, resource: &str) -> Result<Usage> {
        Ok(quota_usages::Entity::find()
            .filter(quota_usages::Column::ProjectId.eq(project))
            .filter(quota_usages::Column::Resource.eq(resource))
            .one(&self.conn)
            .await?
            .map(|u| Usage {
                in_use: u.in_use as i64,
                reserved: u.reserved as i64,
            })
            .unwrap_or_default())
    }

    /// Reserves `deltas` for `project` against `limits`, all or nothing; the
    /// reservations expire after `expire_after` unless committed or rolled back.
    /// [`Error::OverQuota`] names the first resource that does not fit.
    pub async fn reserve(
        &self,
        project: &str,
        deltas: &[(&str, i64)],
        limits: &QuotaLimits,
        expire_after: Duration,
    ) -> Result<Vec<ReservationId>> {
        let mut deltas: Vec<(&str, i64)> =
            deltas.iter().copied().filter(|(_, d)| *d != 0).collect();
        deltas.sort();
        for (resource, _) in &deltas {
            self.ensure_usage_row(project, resource).await?;
        }
        retry_transient!(
            self.try_reserve(project, &deltas, limits, expire_after)
                .await
        )
    }

    async fn ensure_usage_row(&self, project: &str, resource: &str) -> Result<()> {
        let row = quota_usages::ActiveModel {
            project_id: Set(project.into()),
            resource: Set(resource.into()),
            in_use: Set(0),
            reserved: Set(0),
            until_refresh: Set(None),
            created_at: Set(Utc::now().naive_utc()),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
            ..Default::default()
        };
        // A plain insert that tolerates losing the race to another one: portable, where
        // `ON CONFLICT DO NOTHING` is rendered as invalid SQL for MariaDB.
        let inserted = retry_transient!(quota_usages::Entity::insert(row.clone())
            .exec_without_returning(&self.conn)
            .await
            .map_err(Error::from));
        match inserted {
            Ok(_) => {}
            Err(Error::Db(e))
                if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn try_reserve(
        &self,
        project: &str,
        deltas: &[(&str, i64)],
        limits: &QuotaLimits,
        expire_after: Duration,
    ) -> Result<Vec<ReservationId>> {
        let now = Utc::now().naive_utc();
        let expire =
            now + chrono::Duration::from_std(expire_after).unwrap_or(chrono::Duration::hours(24));
        let txn = self.conn.begin().await?;
        let mut out = Vec::new();
        for (resource, delta) in deltas {
            let limit = limits.get(*resource).copied().unwrap_or(-1);
            let mut update = quota_usages::Entity::update_many()
                .col_expr(
                    quota_usages::Column::Reserved,
                    Expr::col(quota_usages::Column::Reserved).add(*delta),
                )
                .col_expr(quota_usages::Column::UpdatedAt, Expr::value(now))
                .filter(quota_usages::Column::ProjectId.eq(project))
                .filter(quota_usages::Column::Resource.eq(*resource));
            if limit >= 0 && *delta > 0 {
                update = update.filter(
                    Expr::col(quota_usages::Column::InUse)
                        .add(Expr::col(quota_usages::Column::Reserved))
                        .add(*delta)
                        .lte(limit),
                );
            }
            let updated = update.exec(&txn).await?;
            let usage = quota_usages::Entity::find()
                .filter(quota_usages::Column::ProjectId.eq(project))
                .filter(quota_usages::Column::Resource.eq(*resource))
                .one(&txn)
                .await?
                .ok_or_else(|| {
                    Error::Corrupt(format!("no quota_usages row for {project}/{resource}"))
                })?;
            if updated.rows_affected != 1 {
                txn.rollback().await?;
                return Err(Error::OverQuota {
                    resource: resource.to_string(),
                    requested: *delta,
                    limit,
                    in_use: usage.in_use as i64,
                    reserved: usage.reserved as i64,
                });
            }
            let id = uuid::Uuid::new_v4().to_string();
            let row = reservations::ActiveModel {
                uuid: Set(id.clone()),
                usage_id: Set(usage.id),
                project_id: Set(project.into()),
                resource: Set(resource.to_string()),
                delta: Set(*delta as i32),
                expire: Set(expire),
                allocated_id: Set(None),
                created_at: Set(now),
                updated_at: Set(None),
                deleted_at: Set(None),
                deleted: Set(false),
                ..Default::default()
            };
            reservations::Entity::insert(row)
                .exec_without_returning(&txn)
                .await?;
            out.push(ReservationId(id));
        }
        txn.commit().await?;
        Ok(out)
    }

    /// Commits reservations: their deltas move from `reserved` to `in_use`. Reservations
    /// already finished (committed, rolled back, expired) are skipped.
    pub async fn commit_reservations(&self, ids: &[ReservationId]) -> Result<()> {
        retry_transient!(self.finish_reservations(ids, true).await)
    }

    /// Rolls reservations back: their deltas leave `reserved`.
    pub async fn rollback_reservations(&self, ids: &[ReservationId]) -> Result<()> {
        retry_transient!(self.finish_reservations(ids, false).await)
    }

    /// How many reservations are neither committed nor rolled back (nor expired).
    pub async fn live_reservations(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(reservations::Entity::find()
            .filter(reservations::Column::Deleted.eq(false))
            .count(&self.conn)
            .await?)
    }

    /// Removes every limit of `project`'s own: it has the defaults again.
    pub async fn delete_project_quotas(&self, project: &str) -> Result<()> {
        soft_delete::<quotas::Entity>()
            .filter(quotas::Column::ProjectId.eq(project))
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Gives back usage of `project` (a volume that left a type, say).
    pub async fn release_usage(&self, project: &str, deltas: &[(String, i64)]) -> Result<()> {
        retry_transient!(release_usage_in(&self.conn, project, deltas).await)
    }

    /// Rolls back every reservation past its expiry; returns how many.
    pub async fn expire_reservations(&self) -> Result<usize> {
        let now = Utc::now().naive_utc();
        let expired: Vec<ReservationId> = reservations::Entity::find()
            .filter(reservations::Column::Deleted.eq(false))
            .filter(reservations::Column::Expire.lt(now))
            .all(&self.conn)
            .await?
            .into_iter()
            .map(|r| ReservationId(r.uuid))
            .collect();
        self.rollback_reservations(&expired).await?;
        Ok(expired.len())
    }

    async fn finish_reservations(&self, ids: &[ReservationId], commit: bool) -> Result<()> {
        let txn = self.conn.begin().await?;
        finish_reservations_in(&txn, ids, commit).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Commits (or rolls back) reservations inside the caller's transaction.
pub(crate) async fn finish_reservations_in<C: ConnectionTrait>(
    txn: &C,
    ids: &[ReservationId],
    commit: bool,
) -> Result<()> {
    let now = Utc::now().naive_utc();
    for ReservationId(id) in ids {
        let claimed = soft_delete::<reservations::Entity>()
            .filter(reservations::Column::Uuid.eq(id.as_str()))
            .exec(txn)
            .await?;
        if claimed.rows_affected == 0 {
            continue;
        }
        let r = reservations::Entity::find()
            .filter(reservations::Column::Uuid.eq(id.as_str()))
            .one(txn)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("reservation {id} vanished")))?;
        let mut update = quota_usages::Entity::update_many()
            .col_expr(
                quota_usages::Column::Reserved,
                Expr::col(quota_usages::Column::Reserved).sub(r.delta),
            )
            .col_expr(quota_usages::Column::UpdatedAt, Expr::value(now));
        if commit {
            update = update.col_expr(
                quota_usages::Column::InUse,
                Expr::col(quota_usages::Column::InUse).add(r.delta),
            );
        }
        update
            .filter(quota_usages::Column::Id.eq(r.usage_id))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// What a volume of `size` GiB and type `type_name` counts against: `volumes`,
/// `gigabytes` and, with a type, `volumes_<type>` and `gigabytes_<type>`.
pub fn volume_quota_deltas(type_name: Option<&str>, size: i64) -> Vec<(String, i64)> {
    let mut d = vec![("volumes".to_string(), 1), ("gigabytes".to_string(), size)];
    if let Some(t) = type_name {
        d.push((format!("volumes_{t}"), 1));
        d.push((format!("gigabytes_{t}"), size));
    }
    d
}

/// What a snapshot of a `size` GiB volume of type `type_name` counts against:
/// `snapshots`, `gigabytes` and, with a type, `snapshots_<type>` and `gigabytes_<type>`.
pub fn snapshot_quota_deltas(type_name: Option<&str>, size: i64) -> Vec<(String, i64)> {
    let mut d = vec![
        ("snapshots".to_string(), 1),
        ("gigabytes".to_string(), size),
    ];
    if let Some(t) = type_name {
        d.push((format!("snapshots_{t}"), 1));
        d.push((format!("gigabytes_{t}"), size));
    }
    d
}

/// Gives back the usage of something that went (a deleted volume or snapshot), in
/// the transaction that deletes it.
pub(crate) async fn release_usage_in<C: ConnectionTrait>(
    conn: &C,
    project: &str,
    deltas: &[(String, i64)],
) -> Result<()> {
    let now = Utc::now().naive_utc();
    for (resource, delta) in deltas {
        quota_usages::Entity::update_many()
            .col_expr(
                quota_usages::Column::InUse,
                Expr::col(quota_usages::Column::InUse).sub(*delta),
            )
            .col_expr(quota_usages::Column::UpdatedAt, Expr::value(now))
            .filter(quota_usages::Column::ProjectId.eq(project))
            .filter(quota_usages::Column::Resource.eq(resource.as_str()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Adds usage `project` never reserved (a managed volume's size, known only once the
/// backend found the image), creating the usage rows it lacks, in `conn`.
pub(crate) async fn add_usage_in<C: ConnectionTrait>(
    conn: &C,
    project: &str,
    deltas: &[(String, i64)],
) -> Result<()> {
    let now = Utc::now().naive_utc();
    for (resource, delta) in deltas {
        let res = quota_usages::Entity::update_many()
            .col_expr(
                quota_usages::Column::InUse,
                Expr::col(quota_usages::Column::InUse).add(*delta),
            )
            .col_expr(quota_usages::Column::UpdatedAt, Expr::value(now))
            .filter(quota_usages::Column::ProjectId.eq(project))
            .filter(quota_usages::Column::Resource.eq(resource.as_str()))
            .exec(conn)
            .await?;
        if res.rows_affected == 0 {
            quota_usages::Entity::insert(quota_usages::ActiveModel {
                project_id: Set(project.into()),
                resource: Set(resource.clone()),
                in_use: Set(*delta as i32),
                reserved: Set(0),
                until_refresh: Set(None),
                created_at: Set(now),
                updated_at: Set(None),
                deleted_at: Set(None),
                deleted: Set(false),
                ..Default::default()
            })
            .exec_without_returning(conn)
            .await?;
        }
    }
    Ok(())
}

/// The name of volume type `id`, deleted or not (quota resources are named by it).
pub(crate) async fn type_name_in<C: ConnectionTrait>(
    conn: &C,
    id: Option<&str>,
) -> Result<Option<String>> {
    let Some(id) = id else { return Ok(None) };
    Ok(
        crate::entity::volume_types::Entity::find_by_id(id.to_string())
            .one(conn)
            .await?
            .map(|t| t.name),
    )
}
