//! The async driver: two connections per backend, one for each lane of the blocking
//! pool, ioctxs cached per pool and connection, and every operation run as one closure
//! on the blocking pool so no librbd handle crosses an `.await`. Operations a
//! redelivered message could repeat are idempotent.
//!
//! Why two connections: a librados client has one objecter, whose in-flight byte budget
//! (`objecter_inflight_op_bytes`, 100 MiB) a few flattens' 4 MiB copy-ups fill, and
//! librbd one op thread per client for image state machines. On one shared connection a
//! stat queues behind the flattens' traffic however free the short lane's threads are.

mod backup;
mod clone;
mod diff;
mod image;
mod raw;
mod snapshot;
mod stats;

pub use backup::{Digesting, SendStats};
pub use raw::RawImportStats;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::instrument;

use crate::config::RbdConfig;
use crate::ctl::OpCtl;
use crate::error::{Error, Result};
use crate::pool::{BlockingPool, Lane, PoolStats};
use crate::rbd::{Cluster, PoolIo};
use crate::types::MonAddr;

pub(crate) struct Inner {
    config: RbdConfig,
    // Declared before the connections: threads stop taking work before they go.
    pool: BlockingPool,
    /// The short lane's connection (metadata calls).
    cluster: Cluster,
    /// The long lane's connection (flatten, copy, rollback, diff, purge).
    long_cluster: Cluster,
    fsid: String,
    mon_cache: Mutex<Option<(Instant, Vec<MonAddr>)>>,
}

impl Inner {
    /// The rados instance ids of both connections (watches of our own).
    fn own_ids(&self) -> [u64; 2] {
        [self.cluster.instance_id(), self.long_cluster.instance_id()]
    }
}

/// The OSDs that are up (`osd stat`): the default long-lane budget is one object
/// operation in flight per OSD.
fn up_osds(cluster: &Cluster) -> Result<usize> {
    let out = cluster.command(
        crate::rbd::CommandTarget::Mon,
        &serde_json::json!({"prefix": "osd stat", "format": "json"}),
    )?;
    let v: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| Error::Unexpected(format!("osd stat: {e}")))?;
    // Pacific prints the counts at the top level; older releases under "osdmap".
    let up = v
        .get("num_up_osds")
        .or_else(|| v.get("osdmap").and_then(|m| m.get("num_up_osds")))
        .and_then(|n| n.as_u64())
        .ok_or_else(|| Error::Unexpected(format!("osd stat without num_up_osds: {v}")))?;
    Ok((up as usize).max(1))
}

/// What an operation's closure works with: the driver's state and the connection of
/// the lane it runs on.
pub(crate) struct Conn<'a> {
    inner: &'a Inner,
    cluster: &'a Cluster,
}

impl Conn<'_> {
    /// The ioctx of `pool` on this lane's connection.
    fn io(&self, pool: &str) -> Result<PoolIo> {
        self.cluster.pool(pool)
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.inner
    }
}

/// The RBD driver for one backend. Cheap to clone.
#[derive(Clone)]
pub struct RbdDriver {
    inner: Arc<Inner>,
    /// Every call goes over the long lane's connection (see [`RbdDriver::background`]).
    background: bool,
}

impl std::fmt::Debug for RbdDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RbdDriver")
            .field("pool", &self.inner.config.rbd_pool)
            .field("fsid", &self.inner.fsid)
            .finish()
    }
}

impl RbdDriver {
    /// Starts the blocking pool, connects to the cluster once, and checks that the
    /// backend's pool can be opened (a wrong pool or key fails here, clearly).
    #[instrument(skip_all, fields(pool = %config.rbd_pool, conf = %config.ceph_conf_path()))]
    pub async fn connect(config: RbdConfig) -> Result<RbdDriver> {
        config.validate().map_err(Error::InvalidArgument)?;
        let pool = BlockingPool::new(config.short_op_threads, config.long_op_threads)?;
        let (id, conf, default_pool, per_op, in_flight) = (
            config.client_id().to_string(),
            config.ceph_conf_path().to_string(),
            config.rbd_pool.clone(),
            config.rbd_concurrent_management_ops,
            config.long_op_objects_in_flight,
        );
        let fallback = config.long_op_threads;
        let (cluster, long_cluster, fsid, long_in_flight) = pool
            .run(Lane::Short, &Default::default(), move || {
                let cluster = Cluster::connect(&id, &conf, &[])?;
                cluster.pool(&default_pool)?;
                let fsid = cluster.fsid()?;
                let in_flight = match in_flight {
                    0 => up_osds(&cluster).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, fallback, "cannot count the OSDs that are up; the long lane keeps one object operation in flight per long thread");
                        fallback
                    }),
                    n => n,
                };
                // The long lane's own budget at the OSDs: at most `in_flight` object
                // operations at once across all its work (a flatten's copy-ups, and the
                // clones and stats of long requests), each flatten or purge running up to
                // `per_op` of them. Measured on the one-OSD dev cluster under 32 flattens:
                // a blank create's p99 1.3 s with Ceph's defaults, 120-175 ms with one.
                let long_cluster = Cluster::connect(
                    &id,
                    &conf,
                    &[
                        ("objecter_inflight_ops", in_flight.to_string()),
                        ("rbd_concurrent_management_ops", per_op.to_string()),
                    ],
                )?;
                Ok((cluster, long_cluster, fsid, in_flight))
            })
            .await?;
        tracing::info!(
            long_in_flight,
            long_per_op = config.rbd_concurrent_management_ops,
            "connected; the long lane's budget at the OSDs"
        );
        Ok(RbdDriver {
            background: false,
            inner: Arc::new(Inner {
                config,
                pool,
                cluster,
                long_cluster,
                fsid,
                mon_cache: Mutex::new(None),
            }),
        })
    }

    /// The same driver for the work of a long request: its short calls (clone, stat,
    /// parent lookups) still run on the short lane's threads but go over the long lane's
    /// connection with its flattens, leaving the short connection to interactive work
    /// (connection info, blank creates, snapshots). Measured: a blank create's
    /// `rbd_create4` shared a connection with eight long requests' clones and stats at
    /// p50 48 ms, p90 175 ms, max 954 ms; on a connection of its own, p50 39, p90 93,
    /// max 198 ms.
    pub fn background(&self) -> RbdDriver {
        RbdDriver {
            inner: self.inner.clone(),
            background: true,
        }
    }

    /// The configuration this driver runs with.
    pub fn config(&self) -> &RbdConfig {
        &self.inner.config
    }

    /// The cluster fsid (read once at connect).
    pub fn fsid(&self) -> &str {
        &self.inner.fsid
    }

    /// The long lane's budget at the OSDs, as its connection has it: object operations
    /// in flight at once (`objecter_inflight_ops`) and per operation
    /// (`rbd_concurrent_management_ops`).
    pub async fn long_lane_budget(&self) -> Result<(u64, u64)> {
        self.run(Lane::Short, &Default::default(), |conn, _| {
            let get = |name: &str| -> Result<u64> {
                let v = conn.inner.long_cluster.option(name)?;
                v.trim()
                    .parse()
                    .map_err(|_| Error::Unexpected(format!("{name} = {v:?}")))
            };
            Ok((
                get("objecter_inflight_ops")?,
                get("rbd_concurrent_management_ops")?,
            ))
        })
        .await
    }

    /// Load of the blocking pool's lanes.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Runs `f` on `lane`, cancellable by `ctl` while waiting for a slot.
    async fn run<T, F>(&self, lane: Lane, ctl: &OpCtl, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&Conn<'a>, &OpCtl) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let job_ctl = ctl.clone();
        let long_conn = lane == Lane::Long || self.background;
        self.inner
            .pool
            .run(lane, &ctl.cancel, move || {
                let conn = Conn {
                    inner: &inner,
                    cluster: if long_conn {
                        &inner.long_cluster
                    } else {
                        &inner.cluster
                    },
                };
                f(&conn, &job_ctl)
            })
            .await
    }

    /// Runs a short, uncancellable call.
    async fn short<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&Conn<'a>) -> Result<T> + Send + 'static,
    {
        self.run(Lane::Short, &OpCtl::new(), move |inner, _| f(inner))
            .await
    }
}
