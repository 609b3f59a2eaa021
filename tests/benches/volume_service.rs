//! Benchmark of the volume service through the real queue (no timing assertions; the
//! figures are printed with the bounds the volume-service issue names):
//!
//! 1. creates per second, blank and from a snapshot (copy-on-write clones): 200 casts
//!    back to back, throughput from the first cast to the last `available`, and the
//!    p50/p99 time from each cast to its volume's `available`;
//! 2. short work under long work: 32 creates that each flatten a clone of 128 MiB of
//!    data are cast at once, far more than the driver's 4 long slots; while they run,
//!    `initialize_connection` calls and blank creates through the service are timed
//!    (p50/p99 against the 100 ms bound), and so is the same image open straight from
//!    the bench's own librbd connection: what the single memstore OSD, busy with the
//!    flattens, gives anyone. Cinder runs every librbd call on one 20-thread pool, where
//!    20 long calls delay everything else.
//!
//! The service runs in-process on SQLite, with its defaults (32 short slots, 64 long
//! requests accepted, 16 short and 4 long driver threads, the long lane's connection
//! keeping one object operation in flight per OSD). Statuses are read by one
//! poller every 2 ms, so latencies carry up to 2 ms of polling.
//!
//! Run with `scripts/bench.sh volume_service`. `BENCH_BACKEND_EXTRA` adds lines to the
//! service's backend section (e.g. `long_op_objects_in_flight = 4`); the budget line
//! then still shows the defaults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cinder_common::ops::{snapshot as snapshot_ops, volume as volume_ops};
use cinder_common::shutdown::CancellationToken;
use cinder_common::status::SnapshotStatus;
use cinder_db::entity::volumes;
use cinder_db::Db;
use cinder_migrations::{Migrator, MigratorTrait};
use cinder_rpc::messages::{
    CreateSnapshot, DeleteSnapshot, DeleteVolume, GetCapabilities, InitializeConnection,
    TerminateConnection, VolumeRequest, VolumeTopic,
};
use cinder_rpc::{RequestContext, RpcClient};
use cinder_tests::{
    amqp_url, ceph_conf, create_pool, create_request, delete_pool, random_bytes, unique, MIB,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

const CREATES: usize = 200;
const LONG: usize = 32;
const FLATTEN_DATA: u64 = 128 * MIB;
const METRICS: &str = "127.0.0.1:9479";

/// Calls waiting for a short-lane thread in the service, from its Prometheus endpoint.
async fn short_lane_waiting() -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(METRICS).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .filter(|l| {
            l.starts_with("cinder_volume_driver_pool_threads")
                && l.contains("lane=\"short\"")
                && l.contains("state=\"waiting\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The service under test and a client.
struct Bench {
    db: Db,
    client: RpcClient,
    queue: String,
    /// When each watched volume was first seen in its awaited status.
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    /// Volumes the poller watches, with the status awaited.
    watch: Arc<Mutex<HashMap<String, &'static str>>>,
}

fn ctx() -> RequestContext {
    RequestContext {
        project_id: Some("bench".into()),
        user_id: Some("bench".into()),
        is_admin: false,
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Bench {
    async fn new_volume(&self) -> String {
        let row = cinder_tests::volume_row("bench", "bench", 1);
        self.db.create_volume(&row).await.unwrap();
        row.id
    }

    async fn cast(&self, body: VolumeRequest) {
        self.client
            .cast_request::<VolumeTopic>(&self.queue, ctx(), body)
            .await
            .unwrap();
    }

    /// Casts `body` for volume `id` and returns when it was cast; the poller records
    /// when the volume reaches `status`.
    async fn cast_watched(&self, id: &str, body: VolumeRequest, status: &'static str) -> Instant {
        self.watch.lock().unwrap().insert(id.to_string(), status);
        let t = Instant::now();
        self.cast(body).await;
        t
    }

    async fn wait_seen(&self, ids: &[String]) -> Vec<Instant> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if ids.iter().all(|i| seen.contains_key(i)) {
                    return ids.iter().map(|i| seen[i]).collect();
                }
            }
            assert!(
                Instant::now() < deadline,
                "volumes never reached their status"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn delete_all(&self, ids: &[String]) {
        for id in ids {
            self.db.begin(&volume_ops::DELETE, id).await.unwrap();
            self.cast(VolumeRequest::DeleteVolume(DeleteVolume {
                volume_id: id.clone(),
            }))
            .await;
        }
        for id in ids {
            while self.db.volume(id).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reads the statuses of every watched volume in one query every 2 ms.
async fn poll(
    bench_db: Db,
    watch: Arc<Mutex<HashMap<String, &'static str>>>,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let pending: Vec<String> = watch.lock().unwrap().keys().cloned().collect();
        if !pending.is_empty() {
            let rows: Vec<(String, String)> = volumes::Entity::find()
                .select_only()
                .column(volumes::Column::Id)
                .column(volumes::Column::Status)
                .filter(volumes::Column::Id.is_in(pending))
                .into_tuple()
                .all(bench_db.connection())
                .await
                .unwrap();
            let now = Instant::now();
            let mut w = watch.lock().unwrap();
            let mut s = seen.lock().unwrap();
            for (id, status) in rows {
                if status == "error" {
                    panic!("volume {id} went to error");
                }
                if w.get(&id) == Some(&status.as_str()) {
                    w.remove(&id);
                    s.insert(id, now);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Casts `CREATES` creates at once; returns their ids and the creates per second.
async fn creates_per_second(b: &Bench, what: &str, snapshot: Option<&str>) -> (Vec<String>, f64) {
    let mut ids = Vec::new();
    for _ in 0..CREATES {
        ids.push(b.new_volume().await);
    }
    let mut cast_at = Vec::new();
    for id in &ids {
        cast_at.push(
            b.cast_watched(id, create_request(id, 1, snapshot), "available")
                .await,
        );
    }
    let done = b.wait_seen(&ids).await;
    let mut lat: Vec<Duration> = done.iter().zip(&cast_at).map(|(d, c)| *d - *c).collect();
    lat.sort();
    let span = *done.iter().max().unwrap() - cast_at[0];
    println!(
        "{what:<22} {CREATES} creates in {:>6.2} s: {:>6.1} creates/s; cast -> available p50 {:>7.1} ms, p99 {:>7.1} ms",
        span.as_secs_f64(),
        CREATES as f64 / span.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
    );
    (ids, CREATES as f64 / span.as_secs_f64())
}

async fn short_under_long(
    b: &Arc<Bench>,
    snapshot: &str,
    driver: &rbd_driver::RbdDriver,
    pool: &str,
) -> Vec<String> {
    let reference = b.new_volume().await;
    b.cast_watched(&reference, create_request(&reference, 1, None), "available")
        .await;
    b.wait_seen(std::slice::from_ref(&reference)).await;
    let mut long = Vec::new();
    for _ in 0..LONG {
        long.push(b.new_volume().await);
    }
    let started = Instant::now();
    for id in &long {
        b.cast_watched(id, create_request(id, 1, Some(snapshot)), "available")
            .await;
    }
    let long = Arc::new(long);
    let running = {
        let (b, long) = (b.clone(), long.clone());
        move || {
            let seen = b.seen.lock().unwrap();
            long.iter().any(|i| !seen.contains_key(i))
        }
    };
    // Three samplers while the long work runs, each pausing 20 ms between samples:
    // connection info through the service, blank creates through the service, and the
    // same image open straight from this process's own librbd (what the cluster gives).
    let init = {
        let (b, reference, running) = (b.clone(), reference.clone(), running.clone());
        tokio::spawn(async move {
            let mut v = Vec::new();
            while running() {
                let t = Instant::now();
                let _: cinder_rpc::messages::ConnectionInfo = b
                    .client
                    .call(
                        &b.queue,
                        ctx(),
                        InitializeConnection {
                            volume_id: reference.clone(),
                            connector: serde_json::json!({"host": "bench"}),
                        },
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap();
                v.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            v
        })
    };
    let blank = {
        let (b, running) = (b.clone(), running.clone());
        tokio::spawn(async move {
            let (mut v, mut ids) = (Vec::new(), Vec::new());
            while running() {
                let id = b.new_volume().await;
                let cast = b
                    .cast_watched(&id, create_request(&id, 1, None), "available")
                    .await;
                let done = b.wait_seen(std::slice::from_ref(&id)).await[0];
                v.push(done - cast);
                ids.push(id);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (v, ids)
        })
    };
    let create_floor = {
        let (driver, running) = (driver.clone(), running.clone());
        let pool = pool.to_string();
        tokio::spawn(async move {
            let mut v = Vec::new();
            while running() {
                let spec = rbd_driver::ImageSpec::new(&pool, unique("floor"));
                let t = Instant::now();
                driver
                    .create_image(
                        &spec,
                        &rbd_driver::CreateOptions {
                            size: 1 << 30,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                v.push(t.elapsed());
                driver
                    .remove_image(&spec, rbd_driver::RemoveMode::PurgeNow, &Default::default())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            v
        })
    };
    let lanes = {
        let running = running.clone();
        tokio::spawn(async move {
            let mut worst = 0u64;
            while running() {
                worst = worst.max(short_lane_waiting().await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            worst
        })
    };
    let echo = {
        let (b, reference, running) = (b.clone(), reference.clone(), running.clone());
        tokio::spawn(async move {
            let mut v = Vec::new();
            while running() {
                let msg = TerminateConnection {
                    volume_id: reference.clone(),
                    connector: serde_json::json!({"host": "bench"}),
                };
                let t = Instant::now();
                b.client
                    .call(&b.queue, ctx(), msg, Duration::from_secs(60))
                    .await
                    .unwrap();
                v.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            v
        })
    };
    let floor = {
        let (driver, running) = (driver.clone(), running.clone());
        let spec = rbd_driver::ImageSpec::new(pool, format!("volume-{reference}"));
        tokio::spawn(async move {
            let mut v = Vec::new();
            while running() {
                let t = Instant::now();
                driver.image_info(&spec).await.unwrap();
                v.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            v
        })
    };
    let mut init = init.await.unwrap();
    let (mut blank, blank_ids) = blank.await.unwrap();
    let mut floor = floor.await.unwrap();
    let mut echo = echo.await.unwrap();
    let mut create_floor = create_floor.await.unwrap();
    let lanes = lanes.await.unwrap();
    let long_span = b.wait_seen(&long).await.into_iter().max().unwrap() - started;
    // The service runs on the same defaults as this driver.
    let (in_flight, per_op) = driver.long_lane_budget().await.unwrap();
    println!(
        "{LONG} creates that each flatten 128 MiB, cast at once (4 long driver threads, 64 long requests accepted; \
         the long lane keeps {in_flight} object operations in flight at the OSDs, {per_op} per operation): \
         all available after {:.2} s; meanwhile:",
        long_span.as_secs_f64(),
    );
    for (what, v) in [
        ("initialize_connection", &mut init),
        ("blank create", &mut blank),
        (
            "(librbd open+stat, same process as the bench: the cluster's own floor)",
            &mut floor,
        ),
        (
            "(librbd create, same process as the bench: the cluster's floor for a create)",
            &mut create_floor,
        ),
        (
            "(terminate_connection: no librbd, the broker round trip)",
            &mut echo,
        ),
    ] {
        v.sort();
        let p99 = percentile(v, 0.99);
        println!(
            "  {what:<22} {:>4} samples: p50 {:>6.1} ms, p99 {:>6.1} ms, max {:>6.1} ms{}",
            v.len(),
            ms(percentile(v, 0.5)),
            ms(p99),
            ms(*v.last().unwrap()),
            if what.starts_with('(') {
                String::new()
            } else {
                format!(
                    " (bound p99 < 100 ms: {})",
                    if p99 < Duration::from_millis(100) {
                        "met"
                    } else {
                        "MISSED"
                    }
                )
            }
        );
    }
    println!("  the service's short lane: at most {lanes} calls waiting for a thread (sampled every 50 ms)");
    long.iter()
        .cloned()
        .chain(blank_ids)
        .chain([reference])
        .collect()
}

fn main() {
    let conf = ceph_conf();
    let amqp = amqp_url();
    let pool = unique("bench-vs");
    create_pool(&conf, &pool);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dbfile = std::env::temp_dir().join(format!("{}.sqlite", unique("bench-vs")));
        let url = format!("sqlite://{}?mode=rwc", dbfile.display());
        let db = Db::connect(&url).await.unwrap();
        Migrator::up(db.connection(), None).await.unwrap();
        let host = unique("bench");
        let toml = format!(
            "[service]\nhost = \"{host}\"\n[database]\nconnection = \"{url}\"\n[amqp]\ntransport_url = \"{amqp}\"\n\
             [logging]\nlevel = \"warn\"\n[volume]\nmetrics_listen = \"{METRICS}\"\n\
             [backends.ceph]\nrbd_ceph_conf = \"{conf}\"\nrbd_pool = \"{pool}\"\nrbd_flatten_volume_from_snapshot = true\n{extra}\n",
            extra = std::env::var("BENCH_BACKEND_EXTRA").unwrap_or_default(),
        );
        let path = std::env::temp_dir().join(format!("{}.toml", unique("bench-vs")));
        std::fs::write(&path, toml).unwrap();
        let settings: cinder_volume::Settings =
            cinder_common::config::load_with_env(Some(&path), []).unwrap();
        std::fs::remove_file(&path).unwrap();
        let stop = CancellationToken::new();
        let service = tokio::spawn(cinder_volume::run(settings, vec![], stop.clone()));
        let queue = cinder_rpc::topology::volume_queue(&host, "ceph");
        let client = RpcClient::connect(&amqp).await.unwrap();
        while client
            .call(&queue, ctx(), GetCapabilities {}, Duration::from_secs(5))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let b = Arc::new(Bench {
            db: db.clone(),
            client,
            queue,
            seen: Default::default(),
            watch: Default::default(),
        });
        let poller = tokio::spawn(poll(db.clone(), b.watch.clone(), b.seen.clone(), stop.clone()));

        // The source: 128 MiB of data and a snapshot.
        let src = b.new_volume().await;
        b.cast_watched(&src, create_request(&src, 1, None), "available").await;
        b.wait_seen(std::slice::from_ref(&src)).await;
        let driver = rbd_driver::RbdDriver::connect(cinder_tests::driver_config(&conf, &pool))
            .await
            .unwrap();
        let img = rbd_driver::ImageSpec::new(&pool, format!("volume-{src}"));
        for i in 0..FLATTEN_DATA / (4 * MIB) {
            driver
                .write(&img, i * 4 * MIB, random_bytes(i + 1, (4 * MIB) as usize))
                .await
                .unwrap();
        }
        let snap = uuid::Uuid::new_v4().to_string();
        b.db.create_snapshot_row(&snap, &src, "bench", "bench", 1).await.unwrap();
        b.cast(VolumeRequest::CreateSnapshot(CreateSnapshot {
            volume_id: src.clone(),
            snapshot_id: snap.clone(),
        }))
        .await;
        while b.db.snapshot(&snap).await.unwrap().status != SnapshotStatus::Available {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        println!("volume service through RabbitMQ ({} on SQLite)", b.queue);
        let (blank, blank_rate) = creates_per_second(&b, "blank", None).await;
        b.delete_all(&blank).await;
        // From a snapshot: copy-on-write clones (the flatten option applies only to the
        // next part, so this one is measured with a second, clone-only service below).
        let mixed = short_under_long(&b, &snap, &driver, &pool).await;
        b.delete_all(&mixed).await;

        stop.cancel();
        service.await.unwrap().unwrap();
        poller.await.unwrap();

        // Clones without flatten: a second service on the same pool and database.
        let host2 = unique("bench");
        let toml = format!(
            "[service]\nhost = \"{host2}\"\n[database]\nconnection = \"{url}\"\n[amqp]\ntransport_url = \"{amqp}\"\n\
             [logging]\nlevel = \"warn\"\n\
             [backends.ceph]\nrbd_ceph_conf = \"{conf}\"\nrbd_pool = \"{pool}\"\n"
        );
        std::fs::write(&path, toml).unwrap();
        let settings: cinder_volume::Settings =
            cinder_common::config::load_with_env(Some(&path), []).unwrap();
        std::fs::remove_file(&path).unwrap();
        let stop = CancellationToken::new();
        let service = tokio::spawn(cinder_volume::run(settings, vec![], stop.clone()));
        let queue2 = cinder_rpc::topology::volume_queue(&host2, "ceph");
        while b
            .client
            .call(&queue2, ctx(), GetCapabilities {}, Duration::from_secs(5))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let b = Arc::try_unwrap(b).ok().expect("samplers ended");
        let b = Bench { queue: queue2, ..b };
        let poller = tokio::spawn(poll(db.clone(), b.watch.clone(), b.seen.clone(), stop.clone()));
        let (clones, clone_rate) = creates_per_second(&b, "from snapshot (clone)", Some(&snap)).await;
        b.delete_all(&clones).await;
        let floor = clone_floor(&driver, &pool, &src, &snap).await;
        println!(
            "  clones/blank creates: {:.2} (target at least 0.5); clones/the cluster's own clone rate: {:.2}",
            clone_rate / blank_rate,
            clone_rate / floor
        );
        b.db.begin(&snapshot_ops::DELETE, &snap)
            .await
            .unwrap();
        b.cast(VolumeRequest::DeleteSnapshot(DeleteSnapshot {
            volume_id: src.clone(),
            snapshot_id: snap.clone(),
        }))
        .await;
        while b.db.snapshot(&snap).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b.delete_all(&[src]).await;
        stop.cancel();
        service.await.unwrap().unwrap();
        poller.await.unwrap();
        let _ = std::fs::remove_file(&dbfile);
        let conn = lapin::Connection::connect(&amqp, Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        for q in [
            cinder_rpc::topology::volume_queue(&host, "ceph"),
            b.queue.clone(),
        ] {
            for q in [q.clone(), cinder_rpc::topology::rejected_queue(&q)] {
                let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
            }
        }
    });
    delete_pool(&conf, &pool);
}

/// The cluster's own clone rate: `CREATES` clones of the snapshot from the bench's
/// connection, 16 at a time (the service's short lane; `BENCH_CLONE_WIDTH` sets
/// another width), then removed.
async fn clone_floor(driver: &rbd_driver::RbdDriver, pool: &str, src: &str, snap: &str) -> f64 {
    let parent =
        rbd_driver::ImageSpec::new(pool, format!("volume-{src}")).snap(format!("snapshot-{snap}"));
    let names: Vec<rbd_driver::ImageSpec> = (0..CREATES)
        .map(|_| rbd_driver::ImageSpec::new(pool, unique("floor")))
        .collect();
    let width: usize = std::env::var("BENCH_CLONE_WIDTH")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(16);
    let gate = Arc::new(tokio::sync::Semaphore::new(width));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for child in names.clone() {
        let (driver, parent, gate) = (driver.clone(), parent.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            driver
                .clone_image(&parent, &child, &Default::default())
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    let rate = CREATES as f64 / took.as_secs_f64();
    println!(
        "  (librbd clone, same process as the bench, {width} at a time: the cluster's own clone rate) {CREATES} clones in {:>6.2} s: {rate:>6.1} clones/s",
        took.as_secs_f64()
    );
    for child in &names {
        driver
            .remove_image(
                child,
                rbd_driver::RemoveMode::PurgeNow,
                &rbd_driver::OpCtl::new(),
            )
            .await
            .unwrap();
    }
    rate
}
