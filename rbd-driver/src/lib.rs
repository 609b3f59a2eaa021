//! The Ceph layer of the volume service: RBD images, snapshots, clones, trash and diff
//! streams on a real cluster.
//!
//! # Layers
//! - [`rbd`](crate::rbd) (private): the safe wrapper over `rbd-sys` and the `ceph`
//!   crate. Synchronous, 1:1 with the C calls, the only module with `unsafe`, never logs.
//! - [`pool`]: [`BlockingPool`], the only place async code hands work to blocking calls.
//!   Two lanes of dedicated named threads (short metadata calls, long data-moving calls).
//! - [`RbdDriver`] (`ops`): async operations, each running all of its librbd calls in one
//!   closure on the pool, idempotent where a redelivered message could repeat them.
//! - [`diff`]: the `rbd diff v1` stream: strict reader, exporter, importer.
//!
//! # Invariants
//! - No librbd/librados call runs on an async worker: everything goes through
//!   [`BlockingPool::run`], and no handle crosses an `.await`.
//! - Two cluster connections per driver, one per lane of the pool; one ioctx per pool
//!   and connection, cached; ioctxs are destroyed before their connection.
//! - This crate knows nothing of OpenStack, AMQP, databases or HTTP.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod config;
mod ctl;
pub mod diff;
mod error;
mod ops;
pub mod pool;
mod rbd;
mod types;

pub use config::RbdConfig;
pub use ctl::{OpCtl, Progress, ProgressReport};
pub use error::{kind_of_errno, Error, ErrorKind, Result};
pub use ops::{Digesting, RawImportStats, RbdDriver, SendStats};
pub use pool::{BlockingPool, Lane, LaneStats, PoolStats};
pub use types::*;

/// Re-exported so callers can build cancellation tokens without naming tokio-util.
pub use tokio_util::sync::CancellationToken;
