//! The async driver: one connection per backend, ioctxs cached per pool, and every
//! operation run as one closure on the blocking pool so no librbd handle crosses an
//! `.await`. Operations a redelivered message could repeat are idempotent.

mod clone;
mod diff;
mod image;
mod snapshot;
mod stats;

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
    // Declared before `cluster`: threads stop taking work before the connection goes.
    pool: BlockingPool,
    cluster: Cluster,
    fsid: String,
    mon_cache: Mutex<Option<(Instant, Vec<MonAddr>)>>,
}

impl Inner {
    fn io(&self, pool: &str) -> Result<PoolIo> {
        self.cluster.pool(pool)
    }
}

/// The RBD driver for one backend. Cheap to clone.
#[derive(Clone)]
pub struct RbdDriver {
    inner: Arc<Inner>,
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
        let (id, conf, default_pool) = (
            config.client_id().to_string(),
            config.ceph_conf_path().to_string(),
            config.rbd_pool.clone(),
        );
        let (cluster, fsid) = pool
            .run(Lane::Short, &Default::default(), move || {
                let cluster = Cluster::connect(&id, &conf)?;
                cluster.pool(&default_pool)?;
                let fsid = cluster.fsid()?;
                Ok((cluster, fsid))
            })
            .await?;
        Ok(RbdDriver {
            inner: Arc::new(Inner {
                config,
                pool,
                cluster,
                fsid,
                mon_cache: Mutex::new(None),
            }),
        })
    }

    /// The configuration this driver runs with.
    pub fn config(&self) -> &RbdConfig {
        &self.inner.config
    }

    /// The cluster fsid (read once at connect).
    pub fn fsid(&self) -> &str {
        &self.inner.fsid
    }

    /// Load of the blocking pool's lanes.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Runs `f` on `lane`, cancellable by `ctl` while waiting for a slot.
    async fn run<T, F>(&self, lane: Lane, ctl: &OpCtl, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &OpCtl) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let job_ctl = ctl.clone();
        self.inner
            .pool
            .run(lane, &ctl.cancel, move || f(&inner, &job_ctl))
            .await
    }

    /// Runs a short, uncancellable call.
    async fn short<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        self.run(Lane::Short, &OpCtl::new(), move |inner, _| f(inner))
            .await
    }
}
