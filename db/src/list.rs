//! Volume listings with the API's filters, sort keys and marker pagination.
//!
//! Pagination is keyset (seek) pagination: the page after `marker` holds the rows that
//! sort strictly after the marker row on (sort keys..., id). Rows deleted or added
//! between pages neither repeat nor push others out; the marker row may itself have
//! been deleted since (soft-deleted rows stay readable).

use cinder_common::status::VolumeStatus;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Value};

use crate::entity::volumes;
use crate::error::{Error, Result};
use crate::Db;

/// Keys volumes can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeSortKey {
    /// `created_at`
    CreatedAt,
    /// `id`
    Id,
    /// `name` (`display_name`; a missing name sorts as empty)
    Name,
    /// `size`
    Size,
    /// `status`
    Status,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// A volume listing.
#[derive(Debug, Clone)]
pub struct VolumeListQuery {
    /// Only this project's volumes (`None`: all, for admins).
    pub project_id: Option<String>,
    /// Only volumes in this status.
    pub status: Option<VolumeStatus>,
    /// Only volumes with this exact name.
    pub name: Option<String>,
    /// Include soft-deleted rows (admins).
    pub include_deleted: bool,
    /// Sort keys, most significant first; `id` is added last when absent. Cinder's
    /// default is `created_at desc, id desc`.
    pub sort: Vec<(VolumeSortKey, SortDir)>,
    /// Id of the last row of the previous page.
    pub marker: Option<String>,
    /// Page size.
    pub limit: u64,
}

fn key_expr(k: VolumeSortKey) -> Expr {
    match k {
        VolumeSortKey::CreatedAt => Expr::col(volumes::Column::CreatedAt),
        VolumeSortKey::Id => Expr::col(volumes::Column::Id),
        VolumeSortKey::Name => {
            Func::coalesce([Expr::col(volumes::Column::DisplayName), Expr::val("")]).into()
        }
        VolumeSortKey::Size => Expr::col(volumes::Column::Size),
        VolumeSortKey::Status => Expr::col(volumes::Column::Status),
    }
}

fn key_value(k: VolumeSortKey, v: &volumes::Model) -> Value {
    match k {
        VolumeSortKey::CreatedAt => v.created_at.into(),
        VolumeSortKey::Id => v.id.clone().into(),
        VolumeSortKey::Name => v.display_name.clone().unwrap_or_default().into(),
        VolumeSortKey::Size => v.size.into(),
        VolumeSortKey::Status => v.status.into(),
    }
}

impl Db {
    /// One page of volumes.
    pub async fn list_volumes(&self, q: &VolumeListQuery) -> Result<Vec<volumes::Model>> {
        let mut sort = q.sort.clone();
        if sort.is_empty() {
            sort = vec![(VolumeSortKey::CreatedAt, SortDir::Desc)];
        }
        if !sort.iter().any(|(k, _)| *k == VolumeSortKey::Id) {
            let dir = sort.last().map(|(_, d)| *d).unwrap_or(SortDir::Desc);
            sort.push((VolumeSortKey::Id, dir));
        }
        let mut select = volumes::Entity::find();
        if !q.include_deleted {
            select = select.filter(volumes::Column::Deleted.eq(false));
        }
        if let Some(p) = &q.project_id {
            select = select.filter(volumes::Column::ProjectId.eq(p.as_str()));
        }
        if let Some(s) = q.status {
            select = select.filter(volumes::Column::Status.eq(s.as_str()));
        }
        if let Some(n) = &q.name {
            select = select.filter(volumes::Column::DisplayName.eq(n.as_str()));
        }
        if let Some(marker) = &q.marker {
            let m = volumes::Entity::find_by_id(marker.clone())
                .one(&self.conn)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "marker",
                    id: marker.clone(),
                })?;
            // (k1 > m1) OR (k1 = m1 AND k2 > m2) OR ... , with < for descending keys.
            let mut after = Condition::any();
            for i in 0..sort.len() {
                let mut term = Condition::all();
                for (k, _) in &sort[..i] {
                    term = term.add(ExprTrait::eq(key_expr(*k), key_value(*k, &m)));
                }
                let (k, dir) = sort[i];
                let e = key_expr(k);
                term = term.add(match dir {
                    SortDir::Asc => e.gt(key_value(k, &m)),
                    SortDir::Desc => e.lt(key_value(k, &m)),
                });
                after = after.add(term);
            }
            select = select.filter(after);
        }
        for (k, dir) in &sort {
            let order = match dir {
                SortDir::Asc => Order::Asc,
                SortDir::Desc => Order::Desc,
            };
            select = select.order_by(key_expr(*k), order);
        }
        Ok(select.limit(q.limit).all(&self.conn).await?)
    }
}
