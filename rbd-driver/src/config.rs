//! The driver's configuration: its part of a `[backends.<name>]` section (the volume
//! service's policy options, such as clone depth, live with the volume drivers). Option
//! names follow Cinder's `RBD_OPTS` so operators' knowledge carries over.

use serde::Deserialize;

/// Configuration of one RBD backend. Every field has a serde default; see
/// `etc/cinder.sample.toml` for the commented list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbdConfig {
    /// Pool the volumes live in. Default `rbd`.
    #[serde(default = "default_pool")]
    pub rbd_pool: String,
    /// Ceph client id (without `client.`); unset means librados' default, `admin`.
    #[serde(default)]
    pub rbd_user: Option<String>,
    /// Path to ceph.conf; empty means `/etc/ceph/ceph.conf`. Client timeouts
    /// (`rados_mon_op_timeout`, `rados_osd_op_timeout`, `client_mount_timeout`) go in its
    /// `[client]` section: librados takes no configuration after connecting.
    #[serde(default)]
    pub rbd_ceph_conf: String,
    /// Object size of new images in MiB (order = log2). Default 4.
    #[serde(default = "default_chunk_size")]
    pub rbd_store_chunk_size: u32,
    /// Clone format for new clones: 2 (no protected snapshots needed, trash namespace) or 1.
    /// Default 2.
    #[serde(default = "default_clone_format")]
    pub rbd_clone_format: u8,
    /// Threads (and concurrent operations) for short librbd calls: open, stat, create,
    /// snapshot, clone, connection info. Default 16.
    #[serde(default = "default_short_threads")]
    pub short_op_threads: usize,
    /// Threads (and concurrent operations) for long librbd calls: flatten, purge, resize,
    /// rollback, diff export and import, copy. Default 4.
    #[serde(default = "default_long_threads")]
    pub long_op_threads: usize,
    /// Objects one long operation works on at once: reads or writes in flight per diff
    /// export or import, and librbd's own `rbd_concurrent_management_ops` for flatten,
    /// rollback and purge on the long lane's connection. Default 10 (Ceph's).
    #[serde(default = "default_concurrent_management_ops")]
    pub rbd_concurrent_management_ops: usize,
    /// Object operations the long lane keeps in flight at once across all its work
    /// (librados `objecter_inflight_ops` of its connection): its share of the OSDs, so
    /// flattens and copies never fill the OSD queues that short work waits in. 0 (the
    /// default) means one per OSD that is up when the driver connects.
    #[serde(default)]
    pub long_op_objects_in_flight: usize,
    /// How long mon addresses from `mon dump` are cached, in seconds. Default 300.
    #[serde(default = "default_mon_addrs_cache_secs")]
    pub mon_addrs_cache_secs: u64,
}

fn default_pool() -> String {
    "rbd".into()
}
fn default_chunk_size() -> u32 {
    4
}
fn default_clone_format() -> u8 {
    2
}
fn default_short_threads() -> usize {
    16
}
fn default_long_threads() -> usize {
    4
}
fn default_concurrent_management_ops() -> usize {
    10
}
fn default_mon_addrs_cache_secs() -> u64 {
    300
}

impl RbdConfig {
    /// Checks what serde cannot: ranges and power-of-two sizes.
    pub fn validate(&self) -> Result<(), String> {
        if self.rbd_pool.is_empty() {
            return Err("rbd_pool must not be empty".into());
        }
        let chunk = self.rbd_store_chunk_size;
        if chunk == 0 || !chunk.is_power_of_two() || chunk > 32 {
            return Err(format!(
                "rbd_store_chunk_size must be a power of two from 1 to 32 MiB, not {chunk}"
            ));
        }
        if !matches!(self.rbd_clone_format, 1 | 2) {
            return Err(format!(
                "rbd_clone_format must be 1 or 2, not {}",
                self.rbd_clone_format
            ));
        }
        if self.short_op_threads == 0 || self.long_op_threads == 0 {
            return Err("short_op_threads and long_op_threads must be at least 1".into());
        }
        if self.rbd_concurrent_management_ops == 0 {
            return Err("rbd_concurrent_management_ops must be at least 1".into());
        }
        Ok(())
    }

    /// The object order for new images: log2 of `rbd_store_chunk_size` MiB.
    pub fn order(&self) -> u8 {
        20 + self.rbd_store_chunk_size.trailing_zeros() as u8
    }

    /// The ceph.conf path librados reads.
    pub fn ceph_conf_path(&self) -> &str {
        if self.rbd_ceph_conf.is_empty() {
            "/etc/ceph/ceph.conf"
        } else {
            &self.rbd_ceph_conf
        }
    }

    /// The librados client id.
    pub fn client_id(&self) -> &str {
        self.rbd_user.as_deref().unwrap_or("admin")
    }
}
