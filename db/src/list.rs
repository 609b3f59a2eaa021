//! Volume listings with the API's filters, sort keys and marker pagination.
//!
//! Pagination is keyset (seek) pagination: the page after `marker` holds the rows that
//! sort strictly after the marker row on (sort keys..., id). Rows deleted or added
//! between pages neither repeat nor push others out; the marker row may itself have
//! been deleted since (soft-deleted rows stay readable).

use std::collections::HashMap;

use cinder_common::status::{AttachStatus, VolumeStatus};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Value,
};

use crate::entity::{snapshot_metadata, snapshots, volume_attachment, volume_metadata, volumes};
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::Db;

/// What a volume's detail view shows besides its row, for a page of volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeDetails {
    /// Metadata by volume id (volumes without metadata are absent).
    pub metadata: HashMap<String, Metadata>,
    /// Live attachments by volume id, oldest first (only volumes that have some).
    pub attachments: HashMap<String, Vec<volume_attachment::Model>>,
    /// Type names by type id (deleted types too: a volume keeps its type's name).
    pub type_names: HashMap<String, String>,
    /// Image metadata by volume id (volumes without any are absent).
    pub image_metadata: HashMap<String, Metadata>,
}

/// Attachments oldest first (then by id), whichever way they were read.
fn in_order(mut list: Vec<volume_attachment::Model>) -> Vec<volume_attachment::Model> {
    list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    list
}

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
    /// `updated_at` (never updated sorts as created)
    UpdatedAt,
    /// `availability_zone`
    AvailabilityZone,
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
#[derive(Debug, Clone, Default)]
pub struct VolumeListQuery {
    /// Only this project's volumes (`None`: all, for admins).
    pub project_id: Option<String>,
    /// Only volumes in this status.
    pub status: Option<VolumeStatus>,
    /// Only volumes with this exact name.
    pub name: Option<String>,
    /// Include soft-deleted rows (admins).
    pub include_deleted: bool,
    /// Only volumes whose name contains this (`name~`, 3.34).
    pub name_like: Option<String>,
    /// Only volumes whose description contains this.
    pub description_like: Option<String>,
    /// Only volumes in this availability zone.
    pub availability_zone: Option<String>,
    /// Only bootable (or only non-bootable) volumes.
    pub bootable: Option<bool>,
    /// Only volumes with every one of these metadata items.
    pub metadata: Vec<(String, String)>,
    /// Only volumes of this size.
    pub size: Option<i32>,
    /// Skip this many rows (after the marker).
    pub offset: u64,
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
        VolumeSortKey::UpdatedAt => Func::coalesce([
            Expr::col(volumes::Column::UpdatedAt),
            Expr::col(volumes::Column::CreatedAt),
        ])
        .into(),
        VolumeSortKey::AvailabilityZone => {
            Func::coalesce([Expr::col(volumes::Column::AvailabilityZone), Expr::val("")]).into()
        }
    }
}

fn key_value(k: VolumeSortKey, v: &volumes::Model) -> Value {
    match k {
        VolumeSortKey::CreatedAt => v.created_at.into(),
        VolumeSortKey::Id => v.id.clone().into(),
        VolumeSortKey::Name => v.display_name.clone().unwrap_or_default().into(),
        VolumeSortKey::Size => v.size.into(),
        VolumeSortKey::Status => v.status.into(),
        VolumeSortKey::UpdatedAt => v.updated_at.unwrap_or(v.created_at).into(),
        VolumeSortKey::AvailabilityZone => v.availability_zone.clone().unwrap_or_default().into(),
    }
}

/// `%text%` with the LIKE wildcards in `text` escaped.
fn contains(text: &str) -> LikeExpr {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// The filters of `q` (not the marker).
fn filtered(q: &VolumeListQuery) -> sea_orm::Select<volumes::Entity> {
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
    if let Some(n) = &q.name_like {
        select = select.filter(volumes::Column::DisplayName.like(contains(n)));
    }
    if let Some(n) = &q.description_like {
        select = select.filter(volumes::Column::DisplayDescription.like(contains(n)));
    }
    if let Some(z) = &q.availability_zone {
        select = select.filter(volumes::Column::AvailabilityZone.eq(z.as_str()));
    }
    if let Some(b) = q.bootable {
        select = select.filter(volumes::Column::Bootable.eq(b));
    }
    if let Some(size) = q.size {
        select = select.filter(volumes::Column::Size.eq(size));
    }
    for (k, v) in &q.metadata {
        let items = sea_orm::sea_query::Query::select()
            .column(volume_metadata::Column::VolumeId)
            .from(volume_metadata::Entity)
            .and_where(volume_metadata::Column::Key.eq(k.as_str()))
            .and_where(volume_metadata::Column::Value.eq(v.as_str()))
            .and_where(volume_metadata::Column::Deleted.eq(false))
            .to_owned();
        select = select.filter(volumes::Column::Id.in_subquery(items));
    }
    select
}

/// The rows after the marker row whose sort keys have `values`:
/// (k1 > m1) OR (k1 = m1 AND k2 > m2) OR ..., with < for descending keys.
pub(crate) fn after_marker(keys: &[(Expr, Value, SortDir)]) -> Condition {
    let mut after = Condition::any();
    for i in 0..keys.len() {
        let mut term = Condition::all();
        for (e, v, _) in &keys[..i] {
            term = term.add(ExprTrait::eq(e.clone(), v.clone()));
        }
        let (e, v, dir) = &keys[i];
        term = term.add(match dir {
            SortDir::Asc => e.clone().gt(v.clone()),
            SortDir::Desc => e.clone().lt(v.clone()),
        });
        after = after.add(term);
    }
    after
}

impl Db {
    /// One page of volumes.
    pub async fn list_volumes(&self, q: &VolumeListQuery) -> Result<Vec<volumes::Model>> {
        let select = self.volume_page(q).await?;
        self.all_rows(select).await
    }

    /// One page of volumes with what their detail views show besides the row. On
    /// SQLite this is one folded read; elsewhere the page, then [`Db::volume_details`].
    pub async fn list_volumes_detailed(
        &self,
        q: &VolumeListQuery,
    ) -> Result<(Vec<volumes::Model>, VolumeDetails)> {
        let select = self.volume_page(q).await?;
        if self.folds() {
            let extra = crate::json_rows::DetailedVolume::extra_sql();
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            if let Some(rows) = self
                .folded_rows::<crate::json_rows::DetailedVolume>(
                    select.as_query(),
                    <volumes::Model as crate::json_rows::JsonRow>::COLUMNS,
                    &extra,
                )
                .await?
            {
                let mut d = VolumeDetails::default();
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    if !r.metadata.is_empty() {
                        d.metadata.insert(
                            r.volume.id.clone(),
                            r.metadata
                                .into_iter()
                                .map(|(k, v)| (k, v.unwrap_or_default()))
                                .collect(),
                        );
                    }
                    if let (Some(t), Some(name)) = (&r.volume.volume_type_id, r.type_name) {
                        d.type_names.insert(t.clone(), name);
                    }
                    if !r.attachments.is_empty() {
                        d.attachments
                            .insert(r.volume.id.clone(), in_order(r.attachments));
                    }
                    out.push(r.volume);
                }
                let ids: Vec<String> = out.iter().map(|v| v.id.clone()).collect();
                d.image_metadata = self.volumes_image_metadata(&ids).await?;
                return Ok((out, d));
            }
        }
        let rows = select.all(&self.conn).await?;
        let d = self.volume_details(&rows).await?;
        Ok((rows, d))
    }

    /// Metadata, live attachments and type names of `rows`, in three concurrent reads.
    pub async fn volume_details(&self, rows: &[volumes::Model]) -> Result<VolumeDetails> {
        let ids: Vec<String> = rows.iter().map(|v| v.id.clone()).collect();
        // Only a volume with live attachments is other than detached (`attachment`
        // recomputes the volume from them; resets and detaches end them first), and a
        // multiattach volume may read `attaching` while another attachment is attached:
        // every volume that is not detached, and most pages need no attachment query.
        let attached: Vec<String> = rows
            .iter()
            .filter(|v| v.attach_status != AttachStatus::Detached)
            .map(|v| v.id.clone())
            .collect();
        let mut type_ids: Vec<String> = rows
            .iter()
            .filter_map(|v| v.volume_type_id.clone())
            .collect();
        type_ids.sort();
        type_ids.dedup();
        let (metadata, mut attachments, type_names, image_metadata) = tokio::try_join!(
            self.volume_metadata_many(&ids),
            async {
                if attached.is_empty() {
                    Ok(Default::default())
                } else {
                    self.attachments_of_volumes(&attached).await
                }
            },
            self.volume_type_names(&type_ids),
            self.volumes_image_metadata(&ids),
        )?;
        for list in attachments.values_mut() {
            *list = in_order(std::mem::take(list));
        }
        Ok(VolumeDetails {
            metadata,
            attachments,
            type_names,
            image_metadata,
        })
    }

    /// The filtered, sorted page of `q` (after its marker), not yet read.
    async fn volume_page(&self, q: &VolumeListQuery) -> Result<sea_orm::Select<volumes::Entity>> {
        let mut sort = q.sort.clone();
        if sort.is_empty() {
            sort = vec![(VolumeSortKey::CreatedAt, SortDir::Desc)];
        }
        if !sort.iter().any(|(k, _)| *k == VolumeSortKey::Id) {
            let dir = sort.last().map(|(_, d)| *d).unwrap_or(SortDir::Desc);
            sort.push((VolumeSortKey::Id, dir));
        }
        let mut select = filtered(q);
        if let Some(marker) = &q.marker {
            let m = volumes::Entity::find_by_id(marker.clone())
                .one(&self.conn)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "marker",
                    id: marker.clone(),
                })?;
            let keys: Vec<(Expr, Value, SortDir)> = sort
                .iter()
                .map(|(k, d)| (key_expr(*k), key_value(*k, &m), *d))
                .collect();
            let after = after_marker(&keys);
            select = select.filter(after);
        }
        for (k, dir) in &sort {
            let order = match dir {
                SortDir::Asc => Order::Asc,
                SortDir::Desc => Order::Desc,
            };
            select = select.order_by(key_expr(*k), order);
        }
        Ok(select.offset(q.offset).limit(q.limit))
    }

    /// How many volumes match the filters of `q` (marker, offset and limit aside).
    pub async fn count_volumes(&self, q: &VolumeListQuery) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(filtered(q).count(&self.conn).await?)
    }
}

/// A snapshot listing (sorted by creation, newest first, or by `sort`).
#[derive(Debug, Clone, Default)]
pub struct SnapshotListQuery {
    /// Only this project's snapshots (`None`: all, for admins).
    pub project_id: Option<String>,
    /// Only snapshots of this volume.
    pub volume_id: Option<String>,
    /// Only snapshots in this status.
    pub status: Option<cinder_common::status::SnapshotStatus>,
    /// Only snapshots with this exact name.
    pub name: Option<String>,
    /// Only snapshots with every one of these metadata items.
    pub metadata: Vec<(String, String)>,
    /// Sort keys, most significant first (`id` added last).
    pub sort: Vec<(SnapshotSortKey, SortDir)>,
    /// Id of the last row of the previous page.
    pub marker: Option<String>,
    /// Skip this many rows (after the marker).
    pub offset: u64,
    /// Page size.
    pub limit: u64,
}

/// Keys snapshots can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSortKey {
    /// `created_at`
    CreatedAt,
    /// `id`
    Id,
    /// `name`
    Name,
    /// `status`
    Status,
    /// `size` (the volume's)
    Size,
}

fn snapshot_key(k: SnapshotSortKey, s: &snapshots::Model) -> (Expr, Value) {
    match k {
        SnapshotSortKey::CreatedAt => {
            (Expr::col(snapshots::Column::CreatedAt), s.created_at.into())
        }
        SnapshotSortKey::Id => (Expr::col(snapshots::Column::Id), s.id.clone().into()),
        SnapshotSortKey::Name => (
            Func::coalesce([Expr::col(snapshots::Column::DisplayName), Expr::val("")]).into(),
            s.display_name.clone().unwrap_or_default().into(),
        ),
        SnapshotSortKey::Status => (Expr::col(snapshots::Column::Status), s.status.into()),
        SnapshotSortKey::Size => (
            Expr::col(snapshots::Column::VolumeSize),
            s.volume_size.into(),
        ),
    }
}

fn filtered_snapshots(q: &SnapshotListQuery) -> sea_orm::Select<snapshots::Entity> {
    let mut select = snapshots::Entity::find().filter(snapshots::Column::Deleted.eq(false));
    if let Some(p) = &q.project_id {
        select = select.filter(snapshots::Column::ProjectId.eq(p.as_str()));
    }
    if let Some(v) = &q.volume_id {
        select = select.filter(snapshots::Column::VolumeId.eq(v.as_str()));
    }
    if let Some(s) = q.status {
        select = select.filter(snapshots::Column::Status.eq(s.as_str()));
    }
    if let Some(n) = &q.name {
        select = select.filter(snapshots::Column::DisplayName.eq(n.as_str()));
    }
    for (k, v) in &q.metadata {
        let items = sea_orm::sea_query::Query::select()
            .column(snapshot_metadata::Column::SnapshotId)
            .from(snapshot_metadata::Entity)
            .and_where(snapshot_metadata::Column::Key.eq(k.as_str()))
            .and_where(snapshot_metadata::Column::Value.eq(v.as_str()))
            .and_where(snapshot_metadata::Column::Deleted.eq(false))
            .to_owned();
        select = select.filter(snapshots::Column::Id.in_subquery(items));
    }
    select
}

impl Db {
    /// One page of snapshots.
    pub async fn list_snapshots(&self, q: &SnapshotListQuery) -> Result<Vec<snapshots::Model>> {
        let mut sort = q.sort.clone();
        if sort.is_empty() {
            sort = vec![(SnapshotSortKey::CreatedAt, SortDir::Desc)];
        }
        if !sort.iter().any(|(k, _)| *k == SnapshotSortKey::Id) {
            let dir = sort.last().map(|(_, d)| *d).unwrap_or(SortDir::Desc);
            sort.push((SnapshotSortKey::Id, dir));
        }
        let mut select = filtered_snapshots(q);
        if let Some(marker) = &q.marker {
            let m = snapshots::Entity::find_by_id(marker.clone())
                .one(&self.conn)
                .await?
                .ok_or_else(|| Error::NotFound {
                    kind: "marker",
                    id: marker.clone(),
                })?;
            let keys: Vec<(Expr, Value, SortDir)> = sort
                .iter()
                .map(|(k, d)| {
                    let (e, v) = snapshot_key(*k, &m);
                    (e, v, *d)
                })
                .collect();
            select = select.filter(after_marker(&keys));
        }
        for (k, dir) in &sort {
            let order = match dir {
                SortDir::Asc => Order::Asc,
                SortDir::Desc => Order::Desc,
            };
            let e = match k {
                SnapshotSortKey::CreatedAt => Expr::col(snapshots::Column::CreatedAt),
                SnapshotSortKey::Id => Expr::col(snapshots::Column::Id),
                SnapshotSortKey::Name => {
                    Func::coalesce([Expr::col(snapshots::Column::DisplayName), Expr::val("")])
                        .into()
                }
                SnapshotSortKey::Status => Expr::col(snapshots::Column::Status),
                SnapshotSortKey::Size => Expr::col(snapshots::Column::VolumeSize),
            };
            select = select.order_by(e, order);
        }
        self.all_rows(select.offset(q.offset).limit(q.limit)).await
    }

    /// How many snapshots match the filters of `q`.
    pub async fn count_snapshots(&self, q: &SnapshotListQuery) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(filtered_snapshots(q).count(&self.conn).await?)
    }
}
