//! The data model the API, scheduler, volume and backup services share: sea-orm entities
//! over Cinder's tables, and the only ways that state changes.
//!
//! # Invariants
//! - A status changes only through [`Db::begin`] and [`Db::finish`], which take their
//!   statuses from the operations table (`cinder_common::ops`), or admin
//!   [`Db::reset_status`]; each is one conditional update (`UPDATE ... WHERE id = ? AND
//!   status IN (...)`): two racing requests never both win; the loser gets
//!   [`Error::Conflict`]. A final status and the release of its claim are one
//!   transaction. Attachments move volumes through `reserved`, `attaching`, `in-use`
//!   and back as Cinder does (`attachment.rs`): each move is one transaction with the
//!   attachment rows it follows from, and a volume's state after a detach is
//!   recomputed from the attachments that remain.
//! - Quota reservations are conditional updates of `quota_usages` rows, taken in a fixed
//!   order inside one transaction: safe under concurrency on SQLite, PostgreSQL and
//!   MariaDB alike, without `SELECT ... FOR UPDATE`.
//! - Services never migrate: [`Db::check_schema`] refuses a database whose newest applied
//!   migration is not [`SCHEMA_VERSION`] (`cinder-manage db sync` applies them).
//! - Entities never go on the wire.
#![warn(missing_docs)]

mod attachment;
mod backup;
mod db;
pub mod entity;
mod error;
mod glance_metadata;
mod json_rows;
mod list;
mod metadata;
mod quota;
mod schedule;
mod service;
mod snapshot;
mod soft_delete;
mod state;
mod volume;
mod volume_type;
mod work;

pub use attachment::{Connected, NewAttachment};
pub use backup::{
    backup_quota_deltas, BackupChanges, BackupListQuery, BackupSortKey, ImportedBackup, NewBackup,
};
pub use db::{Db, DEFAULT_SQLITE_URL};
pub use error::{through_outage, Error, Result, OUTAGE_PATIENCE};
pub use glance_metadata::ImageMetadataOf;
pub use list::{
    SnapshotListQuery, SnapshotSortKey, SortDir, VolumeDetails, VolumeListQuery, VolumeSortKey,
};
pub use metadata::Metadata;
pub use quota::{snapshot_quota_deltas, volume_quota_deltas, QuotaLimits, ReservationId, Usage};
pub use schedule::{NewMessage, Placement};
pub use service::{service_is_up, ServiceRegistration};
pub use snapshot::NewSnapshot;
pub use state::{Ending, Tracked};
pub use volume::{NewVolume, Rename, VolumeChanges};
pub use volume_type::{ProjectDefaultType, TypeRecord, TypeUpdate, VolumeType};

/// The newest migration this code expects (see `cinder-migrations`).
pub const SCHEMA_VERSION: &str = "m20261207_000001_create_executions";
