//! Rows are soft-deleted, as in Cinder: `deleted` set and `deleted_at` stamped, never
//! removed. One helper writes that update for every table that has the two columns.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, UpdateMany};

use crate::entity::{
    backup_metadata, messages, quotas, reservations, snapshot_metadata, volume_admin_metadata,
    volume_attachment, volume_glance_metadata, volume_metadata, volume_type_extra_specs,
    volume_type_projects, volume_types,
};

/// A table with Cinder's `deleted` and `deleted_at` columns.
pub(crate) trait SoftDeleted: EntityTrait {
    /// `deleted`.
    const DELETED: Self::Column;
    /// `deleted_at`.
    const DELETED_AT: Self::Column;
}

macro_rules! soft_deleted {
    ($($m:ident),* $(,)?) => {$(
        impl SoftDeleted for $m::Entity {
            const DELETED: $m::Column = $m::Column::Deleted;
            const DELETED_AT: $m::Column = $m::Column::DeletedAt;
        }
    )*};
}

soft_deleted!(
    backup_metadata,
    messages,
    quotas,
    reservations,
    snapshot_metadata,
    volume_admin_metadata,
    volume_attachment,
    volume_glance_metadata,
    volume_metadata,
    volume_type_extra_specs,
    volume_type_projects,
    volume_types,
);

/// Soft-deletes the live rows of `E` that the caller's filters select (rows deleted
/// before keep their `deleted_at`).
pub(crate) fn soft_delete<E: SoftDeleted>() -> UpdateMany<E> {
    E::update_many()
        .col_expr(E::DELETED, Expr::value(true))
        .col_expr(E::DELETED_AT, Expr::value(Utc::now().naive_utc()))
        .filter(E::DELETED.eq(false))
}
