//! How state changes: one way to begin an operation and one way to finish it, both
//! driven by the operations table (`cinder_common::ops`).
//!
//! - [`Db::begin`] moves a resource from one of the operation's `from` statuses to its
//!   `busy` status (volumes also record where they came from in `previous_status`).
//! - [`Db::finish`] moves it from `busy` to the operation's done or failed end, sets the
//!   columns the work produced, and releases the work's claim, in one transaction: a
//!   resource is never final while still claimed, nor claimed once final.
//! - [`Db::reset_status`] is admin `os-reset_status`, the one bypass.
//!
//! Every status write is the same conditional `UPDATE ... WHERE id = ? AND status IN
//! (...)`, written once here ([`conditional`]); a lost race is [`Error::Conflict`].

use chrono::Utc;
use cinder_common::ops::{ClaimKey, Final, Operation, Outcome, Status};
use cinder_common::status::{BackupStatus, SnapshotStatus, VolumeStatus};
use sea_orm::sea_query::{Expr, Func, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
    UpdateMany, Value,
};

use crate::db::retry_transient;
use crate::entity::{backups, snapshots, volumes, workers};
use crate::error::{Error, Result};
use crate::volume::VolumeChanges;
use crate::Db;

/// A status column of its own table: what [`conditional`] needs to know of it.
pub trait Tracked: Status + Into<Value> {
    /// The table.
    type Entity: EntityTrait;
    /// Columns an operation's end may set besides the status.
    type Changes: Default + Send + Sync;
    /// `id`.
    const ID: <Self::Entity as EntityTrait>::Column;
    /// `status`.
    const STATUS: <Self::Entity as EntityTrait>::Column;
    /// `updated_at`.
    const UPDATED_AT: <Self::Entity as EntityTrait>::Column;
    /// `deleted`.
    const DELETED: <Self::Entity as EntityTrait>::Column;
    /// `deleted_at`.
    const DELETED_AT: <Self::Entity as EntityTrait>::Column;
    /// `previous_status`, where the table has one.
    const PREVIOUS: Option<<Self::Entity as EntityTrait>::Column>;
    /// Adds `changes` to `update`.
    fn set(update: UpdateMany<Self::Entity>, changes: &Self::Changes) -> UpdateMany<Self::Entity>;
}

macro_rules! tracked {
    ($status:ty, $entity:ident, $changes:ty, $previous:expr, $set:expr) => {
        impl Tracked for $status {
            type Entity = $entity::Entity;
            type Changes = $changes;
            const ID: $entity::Column = $entity::Column::Id;
            const STATUS: $entity::Column = $entity::Column::Status;
            const UPDATED_AT: $entity::Column = $entity::Column::UpdatedAt;
            const DELETED: $entity::Column = $entity::Column::Deleted;
            const DELETED_AT: $entity::Column = $entity::Column::DeletedAt;
            const PREVIOUS: Option<$entity::Column> = $previous;
            fn set(
                update: UpdateMany<$entity::Entity>,
                changes: &$changes,
            ) -> UpdateMany<$entity::Entity> {
                ($set)(update, changes)
            }
        }
    };
}

tracked!(
    VolumeStatus,
    volumes,
    VolumeChanges,
    Some(volumes::Column::PreviousStatus),
    crate::volume::apply_changes
);
tracked!(SnapshotStatus, snapshots, (), None, |u, _: &()| u);
tracked!(
    BackupStatus,
    backups,
    crate::backup::BackupChanges,
    None,
    crate::backup::apply_backup_changes
);

/// What a status write does to `previous_status` (where the table has one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Previous {
    /// Leaves it.
    Keep,
    /// Records the status the row had (an operation begins).
    Record,
    /// Clears it (an admin reset).
    Clear,
}

/// The one conditional status write: `id` moves to `to` (with `changes`) if and only
/// if it is not deleted and its status is one of `expected`.
pub(crate) async fn conditional<S: Tracked, C: ConnectionTrait>(
    conn: &C,
    id: &str,
    expected: &[S],
    to: Final<S>,
    changes: &S::Changes,
    previous: Previous,
) -> Result<()> {
    let now = Utc::now().naive_utc();
    let mut update = <S::Entity as EntityTrait>::update_many();
    // First: MySQL evaluates assignments left to right, so `previous_status = status`
    // must read the status before the status is set.
    match (previous, S::PREVIOUS) {
        (Previous::Record, Some(column)) => {
            update = update.col_expr(column, Expr::col(S::STATUS));
        }
        (Previous::Clear, Some(column)) => {
            update = update.col_expr(column, Expr::value(Option::<String>::None));
        }
        _ => {}
    }
    let status: SimpleExpr = match to {
        Final::To(s) => Expr::value(s.spelling()),
        Final::Previous { otherwise } => match S::PREVIOUS {
            Some(previous) => {
                Func::coalesce([Expr::col(previous), Expr::value(otherwise.spelling())]).into()
            }
            None => Expr::value(otherwise.spelling()),
        },
        Final::Deleted => {
            update = update
                .col_expr(S::DELETED, Expr::value(true))
                .col_expr(S::DELETED_AT, Expr::value(now));
            Expr::value("deleted")
        }
    };
    update = update
        .col_expr(S::STATUS, status)
        .col_expr(S::UPDATED_AT, Expr::value(now));
    let res = S::set(update, changes)
        .filter(S::ID.eq(id))
        .filter(S::DELETED.eq(false))
        .filter(S::STATUS.is_in(expected.iter().map(|s| s.spelling())))
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        return Ok(());
    }
    let found: Option<String> = <S::Entity as EntityTrait>::find()
        .select_only()
        .column(S::STATUS)
        .filter(S::ID.eq(id))
        .filter(S::DELETED.eq(false))
        .into_tuple()
        .one(conn)
        .await?;
    match found {
        None => Err(Error::NotFound {
            kind: S::KIND.as_str(),
            id: id.to_string(),
        }),
        Some(found) => Err(Error::Conflict {
            kind: S::KIND.as_str(),
            id: id.to_string(),
            expected: expected.iter().map(|s| s.spelling().to_string()).collect(),
            found,
        }),
    }
}

/// One status change of an [`Ending`].
enum Step {
    Volume(
        &'static Operation<VolumeStatus>,
        String,
        Outcome,
        VolumeChanges,
    ),
    Snapshot(&'static Operation<SnapshotStatus>, String, Outcome),
    Backup(
        &'static Operation<BackupStatus>,
        String,
        Outcome,
        crate::backup::BackupChanges,
    ),
}

/// How operations end: one or more resources leave their busy status together.
pub struct Ending {
    steps: Vec<(Step, bool)>,
    /// A failed extend of this volume to this many GiB: the growth the API counted
    /// goes back (Cinder rolls the extend's reservation back).
    failed_growth: Option<(String, i64)>,
}

impl Ending {
    /// Volume `id` ends `op` with `outcome`.
    pub fn volume(op: &'static Operation<VolumeStatus>, id: &str, outcome: Outcome) -> Self {
        Ending {
            steps: vec![(
                Step::Volume(op, id.into(), outcome, VolumeChanges::default()),
                false,
            )],
            failed_growth: None,
        }
    }

    /// Snapshot `id` ends `op` with `outcome`.
    pub fn snapshot(op: &'static Operation<SnapshotStatus>, id: &str, outcome: Outcome) -> Self {
        Ending {
            steps: vec![(Step::Snapshot(op, id.into(), outcome), false)],
            failed_growth: None,
        }
    }

    /// Backup `id` ends `op` with `outcome`.
    pub fn backup(op: &'static Operation<BackupStatus>, id: &str, outcome: Outcome) -> Self {
        Ending {
            steps: vec![(
                Step::Backup(op, id.into(), outcome, Default::default()),
                false,
            )],
            failed_growth: None,
        }
    }

    /// Also sets `changes` on the (first) volume of the ending.
    pub fn with(mut self, changes: VolumeChanges) -> Self {
        if let Some((Step::Volume(_, _, _, c), _)) = self
            .steps
            .iter_mut()
            .find(|(s, _)| matches!(s, Step::Volume(..)))
        {
            *c = changes;
        }
        self
    }

    /// Also sets `changes` on the (first) backup of the ending.
    pub fn with_backup(mut self, changes: crate::backup::BackupChanges) -> Self {
        if let Some((Step::Backup(_, _, _, c), _)) = self
            .steps
            .iter_mut()
            .find(|(s, _)| matches!(s, Step::Backup(..)))
        {
            *c = changes;
        }
        self
    }

    /// Also gives back the quota of a failed extend of volume `id` to `new_size_gib`
    /// (the growth over the size the row still has), in the same transaction.
    pub fn giving_back_growth(mut self, id: &str, new_size_gib: i64) -> Self {
        self.failed_growth = Some((id.to_string(), new_size_gib));
        self
    }

    /// Also ends `other`, if it is still busy with its operation (a conflict there is
    /// not an error: someone else already moved it on).
    pub fn and_if_busy(mut self, other: Ending) -> Self {
        self.steps
            .extend(other.steps.into_iter().map(|(s, _)| (s, true)));
        self
    }

    async fn apply<C: ConnectionTrait>(&self, conn: &C) -> Result<()> {
        for (step, if_busy) in &self.steps {
            let r = match step {
                Step::Volume(op, id, o, changes) => {
                    let r =
                        conditional(conn, id, &op.running(), op.end(*o), changes, Previous::Keep)
                            .await;
                    if r.is_ok() && op.end(*o) == Final::Deleted {
                        release_volume_usage(conn, id).await?;
                        forget_volume_rows(conn, id).await?;
                    }
                    if r.is_ok()
                        && op.name == cinder_common::ops::volume::MANAGE.name
                        && *o == Outcome::Done
                    {
                        count_managed_size(conn, id).await?;
                    }
                    r
                }
                Step::Snapshot(op, id, o) => {
                    let r =
                        conditional(conn, id, &op.running(), op.end(*o), &(), Previous::Keep).await;
                    if r.is_ok() && op.end(*o) == Final::Deleted {
                        release_snapshot_usage(conn, id).await?;
                        forget_snapshot_rows(conn, id).await?;
                    }
                    r
                }
                Step::Backup(op, id, o, changes) => {
                    let r =
                        conditional(conn, id, &op.running(), op.end(*o), changes, Previous::Keep)
                            .await;
                    if r.is_ok() && op.end(*o) == Final::Deleted {
                        crate::backup::release_backup(conn, id).await?;
                    }
                    r
                }
            };
            match r {
                Err(Error::Conflict { .. } | Error::NotFound { .. }) if *if_busy => {}
                other => other?,
            }
        }
        if let Some((id, new_size)) = &self.failed_growth {
            release_growth(conn, id, *new_size).await?;
        }
        Ok(())
    }
}

/// The gigabytes a failed extend had counted go back.
async fn release_growth<C: ConnectionTrait>(conn: &C, id: &str, new_size: i64) -> Result<()> {
    let Some(v) = volumes::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    let grow = new_size - i64::from(v.size);
    if !v.use_quota || grow <= 0 {
        return Ok(());
    }
    let t = crate::quota::type_name_in(conn, v.volume_type_id.as_deref()).await?;
    let mut deltas = vec![("gigabytes".to_string(), grow)];
    if let Some(t) = t {
        deltas.push((format!("gigabytes_{t}"), grow));
    }
    crate::quota::release_usage_in(conn, &v.project_id, &deltas).await
}

/// A deleted volume's metadata, admin metadata and image metadata go with it (soft
/// deleted in the transaction that deletes it, as Cinder's `volume_destroy` and
/// `volume_glance_metadata_delete_by_volume` do).
async fn forget_volume_rows<C: ConnectionTrait>(conn: &C, id: &str) -> Result<()> {
    use crate::entity::{volume_admin_metadata, volume_glance_metadata, volume_metadata};
    use crate::soft_delete::soft_delete;
    soft_delete::<volume_metadata::Entity>()
        .filter(volume_metadata::Column::VolumeId.eq(id))
        .exec(conn)
        .await?;
    soft_delete::<volume_admin_metadata::Entity>()
        .filter(volume_admin_metadata::Column::VolumeId.eq(id))
        .exec(conn)
        .await?;
    soft_delete::<volume_glance_metadata::Entity>()
        .filter(volume_glance_metadata::Column::VolumeId.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A deleted snapshot's metadata and image metadata go with it (Cinder's
/// `snapshot_destroy` and `volume_glance_metadata_delete_by_snapshot`).
async fn forget_snapshot_rows<C: ConnectionTrait>(conn: &C, id: &str) -> Result<()> {
    use crate::entity::{snapshot_metadata, volume_glance_metadata};
    use crate::soft_delete::soft_delete;
    soft_delete::<snapshot_metadata::Entity>()
        .filter(snapshot_metadata::Column::SnapshotId.eq(id))
        .exec(conn)
        .await?;
    soft_delete::<volume_glance_metadata::Entity>()
        .filter(volume_glance_metadata::Column::SnapshotId.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A deleted volume gives its quota back (in the transaction that deletes it).
async fn release_volume_usage<C: ConnectionTrait>(conn: &C, id: &str) -> Result<()> {
    let Some(v) = volumes::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    if !v.use_quota {
        return Ok(());
    }
    let t = crate::quota::type_name_in(conn, v.volume_type_id.as_deref()).await?;
    let deltas = crate::quota::volume_quota_deltas(t.as_deref(), v.size.into());
    crate::quota::release_usage_in(conn, &v.project_id, &deltas).await
}

/// A managed volume's size is known once the backend found its image: its gigabytes
/// count from then on (the API reserved the volume itself).
async fn count_managed_size<C: ConnectionTrait>(conn: &C, id: &str) -> Result<()> {
    let Some(v) = volumes::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    if !v.use_quota {
        return Ok(());
    }
    let t = crate::quota::type_name_in(conn, v.volume_type_id.as_deref()).await?;
    let mut add = vec![("gigabytes".to_string(), i64::from(v.size))];
    if let Some(t) = t {
        add.push((format!("gigabytes_{t}"), i64::from(v.size)));
    }
    crate::quota::add_usage_in(conn, &v.project_id, &add).await
}

/// A deleted snapshot gives its quota back.
async fn release_snapshot_usage<C: ConnectionTrait>(conn: &C, id: &str) -> Result<()> {
    let Some(s) = snapshots::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    if !s.use_quota {
        return Ok(());
    }
    let t = crate::quota::type_name_in(conn, s.volume_type_id.as_deref()).await?;
    let deltas = crate::quota::snapshot_quota_deltas(t.as_deref(), s.volume_size.into());
    crate::quota::release_usage_in(conn, &s.project_id, &deltas).await
}

impl Db {
    /// Begins `op` on resource `id`: from one of `op.from` to `op.busy`, recording the
    /// status it came from. [`Error::Conflict`] when it is in none of them.
    pub async fn begin<S: Tracked>(&self, op: &Operation<S>, id: &str) -> Result<()> {
        retry_transient!(
            conditional(
                &self.conn,
                id,
                op.from,
                Final::To(op.busy),
                &S::Changes::default(),
                Previous::Record
            )
            .await
        )
    }

    /// Begins `op` on resource `id` from one of `from` only (a subset of `op.from`: an
    /// upload without `force` takes only an available volume).
    pub async fn begin_from<S: Tracked>(
        &self,
        op: &Operation<S>,
        id: &str,
        from: &[S],
    ) -> Result<()> {
        debug_assert!(from.iter().all(|s| op.from.contains(s)));
        retry_transient!(
            conditional(
                &self.conn,
                id,
                from,
                Final::To(op.busy),
                &S::Changes::default(),
                Previous::Record
            )
            .await
        )
    }

    /// Moves resource `id`, running `op`, from one of the statuses `op` holds to
    /// `to`, another of them (a create from `creating` to `downloading`).
    /// [`Error::Conflict`] when it is in none of them (it moved on).
    pub async fn pass<S: Tracked>(&self, op: &Operation<S>, id: &str, to: S) -> Result<()> {
        debug_assert!(
            op.running().contains(&to),
            "{to} is not a status of {}",
            op.name
        );
        retry_transient!(
            conditional(
                &self.conn,
                id,
                &op.running(),
                Final::To(to),
                &S::Changes::default(),
                Previous::Keep
            )
            .await
        )
    }

    /// Finishes: every step of `ending` leaves its busy status, and `claim` (if any:
    /// the key and the service holding it) is released, in one transaction. When a
    /// required step finds its resource no longer busy, or the claim is no longer that
    /// service's (a peer adopted it), it is [`Error::Conflict`] or
    /// [`Error::ClaimNotHeld`], and nothing changes.
    pub async fn finish(&self, claim: Option<(&ClaimKey, i32)>, ending: &Ending) -> Result<()> {
        retry_transient!(self.finish_once(claim, ending).await)
    }

    async fn finish_once(&self, claim: Option<(&ClaimKey, i32)>, ending: &Ending) -> Result<()> {
        let txn = self.conn.begin().await?;
        ending.apply(&txn).await?;
        if let Some((key, holder)) = claim {
            if release(&txn, key, holder).await? != 1 {
                return Err(Error::ClaimNotHeld {
                    claim: key.to_string(),
                    holder,
                });
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// Admin `os-reset_status`: resource `id` goes to `to` whatever its status (not
    /// when deleted), forgetting any previous status an operation recorded.
    pub async fn reset_status<S: Tracked>(&self, id: &str, to: S) -> Result<()> {
        retry_transient!(
            conditional(
                &self.conn,
                id,
                S::ALL,
                Final::To(to),
                &S::Changes::default(),
                Previous::Clear
            )
            .await
        )
    }
}

/// Deletes the claim `key` if service `holder` holds it for that operation; returns how
/// many rows went (0 or 1).
pub(crate) async fn release<C: ConnectionTrait>(
    conn: &C,
    key: &ClaimKey,
    holder: i32,
) -> Result<u64> {
    let res = workers::Entity::delete_many()
        .filter(workers::Column::ResourceType.eq(key.resource.as_str()))
        .filter(workers::Column::ResourceId.eq(key.id.as_str()))
        .filter(workers::Column::Operation.eq(key.operation))
        .filter(workers::Column::ServiceId.eq(holder))
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}
