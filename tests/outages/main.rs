//! Outages of the shared services the whole suite uses: RabbitMQ restarted, and gone
//! for `CINDER_BROKER_GONE_SECS` (12 s by default; `scripts/chaos.sh` makes it 30), Ceph's
//! OSDs paused for `CINDER_OSD_PAUSE_SECS` (10 s by default; 20 in `scripts/chaos.sh`), a
//! PostgreSQL of the test's own restarted. They live in their own test binary because
//! cargo runs test binaries one after another, so no other test sees the outage; within
//! this binary they take turns (`SERIAL`).

#[path = "../it/fixtures/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fixtures;

use cinder_common::ops::volume as volume_ops;
use cinder_tests::{create_request, queue_depth, random_bytes, MIB};
use std::process::Command;
use std::time::{Duration, Instant};

use cinder_common::status::VolumeStatus;
use fixtures::{
    ceph, env_number, free_local_addr, image, launch, metric, metrics_page, prepare, wait_serving,
    Proc, Service,
};

/// One outage at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is needed to restart the broker (Debian's rabbitmq-server package)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_amid_50_queued_creates_loses_none_and_doubles_none_and_clients_reconnect()
{
    let _serial = SERIAL.lock().await;
    let c = ceph().await;
    // Creates from a snapshot that flatten 64 MiB each, one at a time on the long lane,
    // four taken at once: most of the 50 are still on the broker (ready, or delivered and
    // not yet claimed) when it goes away.
    let mut p = prepare().await;
    p.concurrency = 4;
    // Two creates at a time wait for the long lane holding their claims; the rest stay
    // on the broker.
    p.volume_extra = "max_long_operations = 2".into();
    p.backend_extra = "long_op_threads = 1\nrbd_flatten_volume_from_snapshot = true".into();
    let svc = launch(c, p).await;
    let (src, snap) = source_with_snapshot(&svc, 64).await;
    let (ids, me) = clones_under_way(&svc, &snap, 50).await;
    // What the broker still holds right before it stops (read from the queue itself).
    let queue = svc.queue.clone();
    let (ready, unacked) = tokio::task::spawn_blocking(move || queue_depth(&queue))
        .await
        .unwrap()
        .expect("the service's queue exists");
    let read = Instant::now();
    rabbitmqctl(&["stop_app"]);
    let down = Instant::now();
    let mut done_before = 0;
    for id in &ids {
        done_before +=
            (svc.db.volume(id).await.unwrap().status == VolumeStatus::Available) as usize;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    println!(
        "at stop_app ({:?} after reading it) the queue held {ready} ready and {unacked} unacknowledged creates; \
         {done_before} of 50 were available; broker down for {:?}",
        down - read,
        down.elapsed()
    );
    assert!(
        ready + unacked >= 20,
        "the restart must hit queued work: {ready} ready + {unacked} unacknowledged < 20"
    );

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut available = 0;
        for id in &ids {
            let v = svc.db.volume(id).await.unwrap();
            assert_ne!(v.status, VolumeStatus::Error, "volume {id} failed");
            available += (v.status == VolumeStatus::Available) as usize;
        }
        if available == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {available} of 50 available after the restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every delivery handled, redelivered copies too, before counting the runs.
    wait_drained(&svc.queue).await;
    crate::fixtures::wait_claims_released(&svc.db, me).await;
    let mut runs = std::collections::BTreeMap::<u32, usize>::new();
    for id in &ids {
        let n = svc
            .db
            .executions(&volume_ops::CREATE.claim(id))
            .await
            .unwrap();
        *runs.entry(n).or_default() += 1;
        assert!(c.driver.exists(&image(c, id)).await.unwrap());
    }
    println!("after the restart all 50 volumes are available; creates by runs: {runs:?}");
    assert_eq!(
        runs,
        std::collections::BTreeMap::from([(1, 50)]),
        "each create ran exactly once"
    );
    // The client that cast the creates before the restart casts the deletes after it:
    // its first publish finds the connection gone, reconnects and sends again.
    for id in &ids {
        svc.delete(id).await;
        assert!(!c.driver.exists(&image(c, id)).await.unwrap());
    }
    svc.delete_snapshot(&src, &snap).await;
    svc.delete(&src).await;
    svc.stop().await;
}

/// Waits until every delivery on `queue` is acknowledged.
async fn wait_drained(queue: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let q = queue.to_string();
        let depth = tokio::task::spawn_blocking(move || queue_depth(&q))
            .await
            .unwrap();
        if depth == Some((0, 0)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries left on {queue}: {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The real `cinder-volume` with its metrics on a free port: flattening creates from
/// snapshots, one at a time on the long lane, four requests taken at once.
async fn real_service(tag: &str) -> (Proc, Service, String, std::path::PathBuf) {
    real_service_on(tag, prepare().await).await
}

/// [`real_service`] on the database of `p`.
async fn real_service_on(
    tag: &str,
    mut p: fixtures::Prepared,
) -> (Proc, Service, String, std::path::PathBuf) {
    let c = ceph().await;
    p.concurrency = 4;
    p.volume_extra = "max_long_operations = 2".into();
    p.backend_extra = "long_op_threads = 1\nrbd_flatten_volume_from_snapshot = true".into();
    let addr = free_local_addr();
    p.metrics_listen = addr.clone();
    let config = std::env::temp_dir().join(format!("{}.toml", cinder_tests::unique(tag)));
    std::fs::write(&config, p.config(c, &c.pool)).unwrap();
    let log = std::env::temp_dir().join(format!("{}.log", cinder_tests::unique(tag)));
    let child = Proc::volume(&config, &log);
    let svc = Service::elsewhere(p).await;
    wait_serving(&svc.client, &svc.queue).await;
    let _ = std::fs::remove_file(&config);
    (child, svc, addr, log)
}

/// Casts `n` creates from snapshot `snap` (each flattens) and waits until the first is
/// claimed: the work has begun. Returns the volumes and the service row's id.
async fn clones_under_way(svc: &Service, snap: &str, n: usize) -> (Vec<String>, i32) {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(svc.new_volume(1).await);
    }
    for id in &ids {
        svc.cast(create_request(id, 1, Some(snap))).await;
    }
    let me = svc.row().await.id;
    let started = Instant::now();
    while svc.db.claims_of_service(me).await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no create was claimed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ids, me)
}

/// A source volume holding `mib` MiB of data and its snapshot.
async fn source_with_snapshot(svc: &Service, mib: usize) -> (String, String) {
    let c = ceph().await;
    let src = svc.new_volume(1).await;
    svc.cast(create_request(&src, 1, None)).await;
    svc.wait_volume(&src, VolumeStatus::Available).await;
    c.driver
        .write(&image(c, &src), 0, random_bytes(7, mib * MIB as usize))
        .await
        .unwrap();
    let snap = svc.snapshot(&src).await;
    (src, snap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_gone_past_the_prefetch_window_loses_nothing_doubles_nothing_and_the_service_reports_itself_cut_off(
) {
    let _serial = SERIAL.lock().await;
    let c = ceph().await;
    let (child, svc, addr, log) = real_service("cinder-cutoff").await;
    let backend = svc.queue.trim_start_matches("cinder-volume.").to_string();
    let series = |name: &str| format!("{name}{{backend=\"{backend}\"}}");
    let healthy = metric(&metrics_page(&addr).await, &series("cinder_volume_healthy"));
    assert_eq!(healthy, Some(1.0), "healthy before the outage");

    let (src, snap) = source_with_snapshot(&svc, 32).await;
    let (ids, me) = clones_under_way(&svc, &snap, 40).await;
    let queue = svc.queue.clone();
    let (ready, unacked) = tokio::task::spawn_blocking(move || queue_depth(&queue))
        .await
        .unwrap()
        .expect("the service's queue exists");
    let gone_for = Duration::from_secs(env_number("CINDER_BROKER_GONE_SECS", 12));
    rabbitmqctl(&["stop_app"]);
    let down = Instant::now();
    // Cut off for longer than the service takes to run what it had taken (its prefetch
    // of 4 and the 2 long creates it had claimed).
    let mut flipped = None;
    let mut beat_age_max = 0f64;
    let mut healthy_while_down = 0;
    let mut samples = 0;
    while down.elapsed() < gone_for {
        let page = metrics_page(&addr).await;
        let connected = metric(&page, &series("cinder_volume_broker_connected"));
        if connected == Some(0.0) && flipped.is_none() {
            flipped = Some(down.elapsed());
        }
        if flipped.is_some() {
            samples += 1;
            healthy_while_down +=
                (metric(&page, &series("cinder_volume_healthy")) != Some(0.0)) as usize;
        }
        beat_age_max = beat_age_max
            .max(metric(&page, &series("cinder_volume_heartbeat_age_seconds")).unwrap_or(-1.0));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut done_while_down = 0;
    for id in &ids {
        done_while_down +=
            (svc.db.volume(id).await.unwrap().status == VolumeStatus::Available) as usize;
    }
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    println!(
        "broker gone {:?} with {ready} ready and {unacked} unacknowledged of 40 creates; the service said \
         cut off after {flipped:?} ({samples} samples, {healthy_while_down} of them not unhealthy); \
         {done_while_down} creates done meanwhile; heartbeat age at most {beat_age_max:.1} s",
        down.elapsed()
    );
    assert!(
        ready + unacked > 4,
        "more work than the prefetch window must wait on the broker: {ready} + {unacked}"
    );
    let flipped = flipped.expect("the metrics never said the broker was cut off");
    assert!(
        flipped <= Duration::from_secs(5),
        "reported cut off only after {flipped:?}"
    );
    assert_eq!(
        healthy_while_down, 0,
        "healthy while cut off from the broker"
    );
    assert!(
        done_while_down <= 30,
        "{done_while_down} of 40 finished without the broker: too little waited on it"
    );
    crate::fixtures::wait_until("the service to say it is connected again", 60, || async {
        metric(&metrics_page(&addr).await, &series("cinder_volume_healthy")) == Some(1.0)
    })
    .await;
    for id in &ids {
        let v = svc.wait_volume(id, VolumeStatus::Available).await;
        assert_eq!(v.clone_depth, 0, "flattened");
    }
    wait_drained(&svc.queue).await;
    crate::fixtures::wait_claims_released(&svc.db, me).await;
    let mut runs = std::collections::BTreeMap::<u32, usize>::new();
    for id in &ids {
        let n = svc
            .db
            .executions(&volume_ops::CREATE.claim(id))
            .await
            .unwrap();
        *runs.entry(n).or_default() += 1;
    }
    println!("after the outage all 40 are available; creates by runs: {runs:?}");
    assert_eq!(
        runs,
        std::collections::BTreeMap::from([(1, 40)]),
        "each create ran exactly once; log {}",
        log.display()
    );
    for id in &ids {
        svc.delete(id).await;
        assert!(!c.driver.exists(&image(c, id)).await.unwrap());
    }
    svc.delete_snapshot(&src, &snap).await;
    svc.delete(&src).await;
    child.terminate().await;
    svc.stop().await;
    let _ = std::fs::remove_file(&log);
}

/// Unpauses the OSDs when dropped, so a failing test never leaves the cluster paused.
struct Paused(String);

impl Paused {
    fn pause(conf: &str) -> Paused {
        cinder_tests::ceph(conf, &["osd", "pause"]);
        Paused(conf.to_string())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        cinder_tests::ceph(&self.0, &["osd", "unpause"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceph_paused_amid_20_operations_stalls_no_heartbeat_and_hangs_nothing() {
    let _serial = SERIAL.lock().await;
    let c = ceph().await;
    let (child, svc, addr, log) = real_service("cinder-paused").await;
    let (src, snap) = source_with_snapshot(&svc, 16).await;
    // Ten volumes to delete, then twenty operations: ten deletes, five blank creates,
    // five flattening clones.
    let mut doomed = Vec::new();
    for _ in 0..10 {
        let id = svc.new_volume(1).await;
        svc.cast(create_request(&id, 1, None)).await;
        doomed.push(id);
    }
    for id in &doomed {
        svc.wait_volume(id, VolumeStatus::Available).await;
    }
    // The service's own writes to its services row, seen every 100 ms.
    let me = svc.row().await.id;
    let watching = cinder_common::shutdown::CancellationToken::new();
    let watcher = {
        let (db, watching) = (svc.db.clone(), watching.clone());
        tokio::spawn(async move {
            let mut beats: Vec<(i64, chrono::NaiveDateTime)> = Vec::new();
            while !watching.is_cancelled() {
                let row = db.service(me).await.unwrap();
                if let Some(at) = row.updated_at {
                    if beats.last().map(|b| b.0) != Some(row.report_count) {
                        beats.push((row.report_count, at));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            beats
        })
    };
    let pause_for = Duration::from_secs(env_number("CINDER_OSD_PAUSE_SECS", 10));
    let paused = Paused::pause(&c.conf);
    let pause_began = Instant::now();
    let mut born = Vec::new();
    for (i, id) in doomed.iter().enumerate() {
        svc.db.begin(&volume_ops::DELETE, id).await.unwrap();
        svc.cast(cinder_rpc::messages::VolumeRequest::DeleteVolume(
            cinder_rpc::messages::DeleteVolume {
                volume_id: id.clone(),
            },
        ))
        .await;
        let new = svc.new_volume(1).await;
        let from = (i % 2 == 0).then_some(snap.as_str());
        svc.cast(create_request(&new, 1, from)).await;
        born.push(new);
    }
    let all: Vec<String> = doomed.iter().chain(&born).cloned().collect();
    let busy = || async {
        let mut n = 0;
        for id in &all {
            n += matches!(svc.db.volume(id).await, Ok(v) if matches!(v.status, VolumeStatus::Creating | VolumeStatus::Deleting))
                as usize;
        }
        n
    };
    tokio::time::sleep(pause_for.saturating_sub(pause_began.elapsed())).await;
    let busy_at_unpause = busy().await;
    let page = metrics_page(&addr).await;
    drop(paused);
    let paused_for = pause_began.elapsed();
    // The configured timeout: `rados osd op timeout` (60 s in the dev cluster's conf);
    // nothing may hang past it.
    let settled = Instant::now();
    crate::fixtures::wait_until("every operation to end", 90, || async { busy().await == 0 }).await;
    let settle = settled.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watching.cancel();
    let beats = watcher.await.unwrap();
    let mut largest = Duration::ZERO;
    let mut during = 0;
    for w in beats.windows(2) {
        let (writes, span) = (w[1].0 - w[0].0, (w[1].1 - w[0].1).to_std().unwrap());
        largest = largest.max(span / writes.max(1) as u32);
    }
    let began =
        chrono::Utc::now().naive_utc() - chrono::Duration::from_std(pause_began.elapsed()).unwrap();
    let ended = began + chrono::Duration::from_std(paused_for).unwrap();
    for (_, at) in &beats {
        during += (*at >= began && *at <= ended) as usize;
    }
    let mut outcome = std::collections::BTreeMap::<&str, usize>::new();
    for id in &all {
        let s = match svc.db.volume(id).await {
            Ok(v) => v.status.as_str(),
            Err(cinder_db::Error::NotFound { .. }) => "deleted",
            Err(e) => panic!("{e}"),
        };
        *outcome.entry(s).or_default() += 1;
    }
    println!(
        "OSDs paused {paused_for:?}: {busy_at_unpause} of 20 operations still waiting at unpause, all ended {settle:?} later: {outcome:?}; \
         heartbeat: {during} writes during the pause, largest gap {largest:?}; lanes at unpause: {:?}",
        page.lines()
            .filter(|l| l.starts_with("cinder_volume_driver_pool_threads{"))
            .collect::<Vec<_>>()
    );
    assert!(
        busy_at_unpause >= 10,
        "the pause must hold the work: only {busy_at_unpause} of 20 were waiting"
    );
    assert!(
        during as u64 >= paused_for.as_secs() - 1,
        "the heartbeat kept writing: {during} writes in {paused_for:?}"
    );
    assert!(
        largest <= Duration::from_millis(1500),
        "a heartbeat gap of {largest:?}; log {}",
        log.display()
    );
    for id in &all {
        match svc.db.volume(id).await {
            Ok(v) => {
                assert!(
                    matches!(v.status, VolumeStatus::Available | VolumeStatus::Error),
                    "volume {id} ended {}",
                    v.status.as_str()
                );
                assert_eq!(
                    c.driver.exists(&image(c, id)).await.unwrap(),
                    v.status == VolumeStatus::Available,
                    "volume {id} ({}) and its image",
                    v.status.as_str()
                );
            }
            Err(cinder_db::Error::NotFound { .. }) => {
                assert!(!c.driver.exists(&image(c, id)).await.unwrap())
            }
            Err(e) => panic!("{e}"),
        }
    }
    for id in &born {
        if svc.db.volume(id).await.is_ok() {
            svc.delete(id).await;
        }
    }
    svc.delete_snapshot(&src, &snap).await;
    svc.delete(&src).await;
    child.terminate().await;
    svc.stop().await;
    let _ = std::fs::remove_file(&log);
}

/// A PostgreSQL server of the test's own (Debian's binaries, run as the `postgres` user)
/// on a free port, so stopping it takes the database from this test alone; removed when
/// dropped.
struct OwnPostgres {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("runuser {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// initdb (trust on loopback) and start.
    fn start() -> OwnPostgres {
        let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries (Debian's postgresql package; scripts/test.sh installs it)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .collect();
        versions.sort();
        let bin = versions.pop().expect("no /usr/lib/postgresql/*/bin/initdb");
        let dir = std::env::temp_dir().join(cinder_tests::unique("cinder-pg"));
        std::fs::create_dir(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
        let port = free_local_addr()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let pg = OwnPostgres { dir, bin, port };
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                pg.data().to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.up();
        pg
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
    }

    fn down(&self) {
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_amid_50_creates_loses_none_runs_none_twice_and_the_heartbeat_resumes() {
    use cinder_migrations::{Migrator, MigratorTrait};
    let _serial = SERIAL.lock().await;
    let pg = tokio::task::spawn_blocking(OwnPostgres::start)
        .await
        .unwrap();
    let mut p = prepare().await;
    p.url = pg.url();
    p.db = cinder_db::Db::connect(&p.url).await.unwrap();
    Migrator::up(p.db.connection(), None).await.unwrap();
    let (mut child, svc, _, log) = real_service_on("cinder-pg", p).await;
    let (src, snap) = source_with_snapshot(&svc, 16).await;
    let (ids, me) = clones_under_way(&svc, &snap, 50).await;
    let beats_before = svc.db.service(me).await.unwrap().report_count;
    let mut done_before = 0;
    for id in &ids {
        done_before +=
            (svc.db.volume(id).await.unwrap().status == VolumeStatus::Available) as usize;
    }
    let pg = tokio::task::spawn_blocking(move || {
        pg.down();
        pg
    })
    .await
    .unwrap();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.up();
        pg
    })
    .await
    .unwrap();
    let outage = down.elapsed();
    assert!(
        child.child().try_wait().unwrap().is_none(),
        "the service survived the outage; log {}",
        log.display()
    );
    // The heartbeat resumes: new writes after the restart.
    let resumed_from = svc.db.service(me).await.unwrap().report_count;
    crate::fixtures::wait_until("the heartbeat to write again", 30, || async {
        svc.db.service(me).await.unwrap().report_count >= resumed_from + 2
    })
    .await;
    let mut ended = std::collections::BTreeMap::<&str, usize>::new();
    for id in &ids {
        let v = svc.wait_volume(id, VolumeStatus::Available).await;
        *ended.entry(v.status.as_str()).or_default() += 1;
    }
    wait_drained(&svc.queue).await;
    crate::fixtures::wait_claims_released(&svc.db, me).await;
    let mut runs = std::collections::BTreeMap::<u32, usize>::new();
    for id in &ids {
        let n = svc
            .db
            .executions(&volume_ops::CREATE.claim(id))
            .await
            .unwrap();
        *runs.entry(n).or_default() += 1;
    }
    println!(
        "PostgreSQL down {outage:?} with {done_before} of 50 creates done (heartbeat count {beats_before} before, \
         writing again from {resumed_from}): {ended:?}; creates by runs: {runs:?}"
    );
    assert!(
        done_before < 40,
        "the outage must hit the work: {done_before} of 50 were done"
    );
    assert_eq!(
        runs,
        std::collections::BTreeMap::from([(1, 50)]),
        "each create ran exactly once; log {}",
        log.display()
    );
    for id in &ids {
        svc.delete(id).await;
    }
    svc.delete_snapshot(&src, &snap).await;
    svc.delete(&src).await;
    child.terminate().await;
    svc.stop().await;
    drop(pg);
    let _ = std::fs::remove_file(&log);
}
