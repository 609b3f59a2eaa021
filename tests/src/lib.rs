//! Support shared by the integration tests and the benchmarks: the real dev cluster
//! from the environment, per-run pools, the `rbd`/`ceph` CLIs, and test data.
//!
//! Services come from the environment (`CEPH_CONF`, set by `scripts/test.sh` from
//! `scripts/ceph-dev.sh up`); a missing one fails the test with a message naming it.

use std::process::{Command, Output};

pub mod glance;
pub mod release;

use cinder_rpc::messages::{CreateVolume, VolumeRequest};

/// A create request for volume `id` of `size_gib` GiB: blank, or from `snapshot`.
pub fn create_request(id: &str, size_gib: u64, snapshot: Option<&str>) -> VolumeRequest {
    CreateVolume {
        volume_id: id.into(),
        size_gib,
        snapshot_id: snapshot.map(str::to_string),
        source_volid: None,
        image_location: None,
        image: None,
        schedule: None,
    }
    .into()
}

/// A volume row of `size` GiB for `project` and `user`, with a fresh id (status
/// `creating` once inserted).
pub fn volume_row(project: &str, user: &str, size: i32) -> cinder_db::NewVolume {
    cinder_db::NewVolume {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project.into(),
        user_id: user.into(),
        name: None,
        description: None,
        size_gib: size,
        availability_zone: None,
        volume_type_id: None,
        ..Default::default()
    }
}

/// The ceph.conf of the dev cluster, or a panic saying how to get one.
pub fn ceph_conf() -> String {
    match std::env::var("CEPH_CONF") {
        Ok(c) if std::path::Path::new(&c).exists() => c,
        Ok(c) => panic!(
            "CEPH_CONF={c} does not exist: start the dev cluster with `scripts/ceph-dev.sh up`"
        ),
        Err(_) => panic!(
            "CEPH_CONF is not set: these tests need the dev Ceph cluster. Run `scripts/test.sh`, \
             or `export CEPH_CONF=$(scripts/ceph-dev.sh up)` first"
        ),
    }
}

fn run(bin: &str, conf: &str, args: &[&str]) -> Output {
    let out = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{bin}` (is ceph-common installed?): {e}"));
    out
}

/// The RabbitMQ URL, or a panic saying how to get one.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| {
        panic!("AMQP_URL is not set: these tests need RabbitMQ. Run scripts/test.sh (it starts RabbitMQ and exports AMQP_URL)")
    })
}

/// A queue's messages on the broker as `rabbitmqctl list_queues` reports them, read from
/// the queue itself (not the management statistics): (ready, unacknowledged); `None`
/// when the queue does not exist in the virtual host of `AMQP_URL`. Needs `rabbitmqctl`
/// on this machine (the broker is local).
pub fn queue_depth(queue: &str) -> Option<(u64, u64)> {
    // The virtual host is the URL's path after the authority (percent-encoded), "/"
    // when there is none.
    let url = amqp_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let vhost = match rest.split_once('/') {
        Some((_, v)) if !v.is_empty() => v.replace("%2f", "/").replace("%2F", "/"),
        _ => "/".to_string(),
    };
    let out = Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            &vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
        .output()
        .expect("rabbitmqctl is needed to read queue depths (Debian's rabbitmq-server package)");
    assert!(
        out.status.success(),
        "rabbitmqctl list_queues: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() == 3 && f[0] == queue).then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
}

/// Runs the `rbd` CLI; panics with its stderr when it fails.
pub fn rbd(conf: &str, args: &[&str]) -> Vec<u8> {
    let out = run("rbd", conf, args);
    assert!(
        out.status.success(),
        "rbd {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the `rbd` CLI and returns its whole output, success or not.
pub fn rbd_raw(conf: &str, args: &[&str]) -> Output {
    run("rbd", conf, args)
}

/// Runs the `rados` CLI; panics with its stderr when it fails.
pub fn rados(conf: &str, args: &[&str]) -> Vec<u8> {
    let out = run("rados", conf, args);
    assert!(
        out.status.success(),
        "rados {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the `ceph` CLI; panics with its stderr when it fails.
pub fn ceph(conf: &str, args: &[&str]) -> Vec<u8> {
    let out = run("ceph", conf, args);
    assert!(
        out.status.success(),
        "ceph {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Creates a replicated RBD pool (size 1 on the dev cluster) and initialises it.
/// Returns once the monitors have the new pool's stats (the mgr reports them within its
/// stats period): until then `osd pool get-quota` fails with "no stats", and so does the
/// capacity report of a volume service started on the pool, which answers its first
/// calls with that error.
pub fn create_pool(conf: &str, pool: &str) {
    ceph(conf, &["osd", "pool", "create", pool, "8", "8"]);
    rbd(conf, &["pool", "init", pool]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !run("ceph", conf, &["osd", "pool", "get-quota", pool])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "pool {pool} has no stats after 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// Deletes a pool and everything in it.
pub fn delete_pool(conf: &str, pool: &str) {
    ceph(
        conf,
        &[
            "osd",
            "pool",
            "delete",
            pool,
            pool,
            "--yes-i-really-really-mean-it",
        ],
    );
}

/// A short unique name with a prefix.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Deterministic pseudo-random bytes (xorshift), never all zero.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A small deterministic generator (xorshift64*): random writes and their data.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// `k` distinct numbers below `n`, in random order.
    pub fn distinct(&mut self, k: usize, n: u64) -> Vec<u64> {
        let mut all: Vec<u64> = (0..n).collect();
        for i in 0..k {
            let j = i + (self.next_u64() as usize % (n as usize - i));
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

/// A driver config for `pool` on the cluster of `conf`.
pub fn driver_config(conf: &str, pool: &str) -> rbd_driver::RbdConfig {
    serde_json::from_value(serde_json::json!({ "rbd_ceph_conf": conf, "rbd_pool": pool }))
        .expect("valid config")
}

/// MiB.
pub const MIB: u64 = 1 << 20;

/// Removes every snapshot of `img`, then `img` itself (cleanup in tests and benchmarks).
pub async fn purge(d: &rbd_driver::RbdDriver, img: &rbd_driver::ImageSpec) {
    use rbd_driver::{OpCtl, RemoveMode};
    for s in d.list_snapshots(img).await.unwrap() {
        d.remove_snapshot(&img.snap(&s.name), &OpCtl::new())
            .await
            .unwrap();
    }
    d.remove_image(img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}
