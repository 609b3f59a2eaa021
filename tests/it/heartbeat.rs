//! The heartbeat is never late while librbd is busy: the real `cinder-volume` binary with
//! `report_interval` = 1 s flattens a clone of a volume holding 1 GiB of data while 16
//! clients create and delete volumes through its queue, and no gap between two of its
//! writes to its services row exceeds 1.5 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cinder_common::shutdown::CancellationToken;
use cinder_common::status::VolumeStatus;
use cinder_db::{service_is_up, ServiceRegistration};
use cinder_tests::{create_request, rbd, unique};
use tokio::task::JoinSet;

use crate::fixtures::{ceph, image, prepare, wait_serving, Backend, Proc, Service, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_liveness_follow_the_heartbeat() {
    let (t, db) = TestDb::migrated(Backend::Sqlite).await;
    let reg = ServiceRegistration {
        host: "node-1@ceph".into(),
        binary: "cinder-volume".into(),
        topic: "cinder-volume".into(),
        availability_zone: "nova".into(),
        cluster_name: None,
    };
    let row = db.register_service(&reg).await.unwrap();
    assert_eq!(
        db.register_service(&reg).await.unwrap().id,
        row.id,
        "registering again finds the row"
    );
    let now = chrono::Utc::now().naive_utc();
    assert!(
        !service_is_up(&row, Duration::from_secs(60), now),
        "never reported: down"
    );
    db.heartbeat(row.id, Some(&serde_json::json!({"free_capacity_gb": 10})))
        .await
        .unwrap();
    let row = db.service(row.id).await.unwrap();
    assert_eq!(row.report_count, 1);
    assert_eq!(
        row.capabilities.as_deref(),
        Some(r#"{"free_capacity_gb":10}"#)
    );
    assert!(service_is_up(
        &row,
        Duration::from_secs(60),
        chrono::Utc::now().naive_utc()
    ));
    let later = chrono::Utc::now().naive_utc() + chrono::Duration::seconds(61);
    assert!(
        !service_is_up(&row, Duration::from_secs(60), later),
        "silent past service_down_time: down"
    );
    t.drop(db).await;
}

/// Heartbeat writes as the test saw them in the services row: (report_count, updated_at).
type Beats = Vec<(i64, chrono::NaiveDateTime)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_service_heartbeats_every_second_through_a_1_gib_flatten_and_16_busy_clients() {
    let c = ceph().await;
    // The real binary, report_interval = 1 s (the fixture's), flattening creates from
    // snapshots before they are available.
    let mut p = prepare().await;
    p.backend_extra = "rbd_flatten_volume_from_snapshot = true".into();
    let addr = crate::fixtures::free_local_addr();
    p.metrics_listen = addr.clone();
    let backend = format!("{}@ceph", p.host);
    let config = std::env::temp_dir().join(format!("{}.toml", unique("cinder-hb")));
    std::fs::write(&config, p.config(c, &c.pool)).unwrap();
    let log = std::env::temp_dir().join(format!("{}.log", unique("cinder-hb")));
    let child = Proc::volume(&config, &log);
    let svc = Arc::new(Service::elsewhere(p).await);
    wait_serving(&svc.client, &svc.queue).await;

    // A source volume holding 1 GiB of data, and its snapshot.
    let src = svc.new_volume(1).await;
    svc.cast(create_request(&src, 1, None)).await;
    svc.wait_volume(&src, VolumeStatus::Available).await;
    let (conf, spec) = (c.conf.clone(), image(c, &src).to_string());
    tokio::task::spawn_blocking(move || {
        rbd(
            &conf,
            &[
                "bench",
                "--io-type",
                "write",
                "--io-size",
                "4M",
                "--io-total",
                "1024M",
                "--io-pattern",
                "seq",
                &spec,
            ],
        )
    })
    .await
    .unwrap();
    let snap = svc.snapshot(&src).await;

    // The service's own writes to its row, seen every 100 ms.
    let me = svc.row().await.id;
    let watching = CancellationToken::new();
    let watcher = {
        let (db, watching) = (svc.db.clone(), watching.clone());
        tokio::spawn(async move {
            let mut beats: Beats = Vec::new();
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

    // The flatten: a create from the snapshot, flattened before it is available; and 16
    // clients creating and deleting blank volumes through the queue until the flatten is
    // done and at least 10 s have passed.
    let started = Instant::now();
    let big = svc.new_volume(1).await;
    svc.cast(create_request(&big, 1, Some(&snap))).await;
    let flatten = {
        let (svc, big) = (svc.clone(), big.clone());
        tokio::spawn(async move {
            svc.wait_volume(&big, VolumeStatus::Available).await;
            started.elapsed()
        })
    };
    let mut clients = JoinSet::new();
    for _ in 0..16 {
        let svc = svc.clone();
        let flatten_running = flatten.abort_handle();
        clients.spawn(async move {
            let mut n = 0;
            while !flatten_running.is_finished() || started.elapsed() < Duration::from_secs(10) {
                let id = svc.new_volume(1).await;
                svc.cast(create_request(&id, 1, None)).await;
                svc.wait_volume(&id, VolumeStatus::Available).await;
                svc.delete(&id).await;
                n += 2;
            }
            n
        });
    }
    let mut operations = 0;
    while let Some(r) = clients.join_next().await {
        operations += r.unwrap();
    }
    let flattened_in = flatten.await.unwrap();
    let busy = started.elapsed();
    // One more beat after the load, then stop watching.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watching.cancel();
    let beats = watcher.await.unwrap();
    // The service's own measure of its largest gap, beside the one seen from outside.
    let own_gap = crate::fixtures::metric(
        &crate::fixtures::metrics_page(&addr).await,
        &format!("cinder_volume_heartbeat_max_gap_seconds{{backend=\"{backend}\"}}"),
    )
    .expect("the heartbeat's largest gap on the metrics");
    let window: Beats = beats;
    let mut largest = Duration::ZERO;
    let mut unseen = 0;
    for w in window.windows(2) {
        let (writes, span) = (w[1].0 - w[0].0, (w[1].1 - w[0].1).to_std().unwrap());
        // A poll that missed a write (the test stalled): the span holds `writes` gaps,
        // none shorter than their mean.
        if writes > 1 {
            unseen += writes - 1;
        }
        largest = largest.max(span / writes.max(1) as u32);
    }
    println!(
        "cinder-volume: {} heartbeat writes over {busy:?} busy (a 1 GiB flatten done in {flattened_in:?}, \
         {operations} create/delete operations by 16 clients through the queue); largest gap between \
         two writes {largest:?} ({unseen} writes between polls; the service's own measure {own_gap:.3} s); \
         report_interval 1 s",
        window.len(),
    );
    assert!(busy >= Duration::from_secs(10), "busy for only {busy:?}");
    assert!(
        flattened_in >= Duration::from_secs(1),
        "the flatten took {flattened_in:?}: not 1 GiB of copy-up"
    );
    assert!(
        operations >= 32,
        "the clients did only {operations} operations"
    );
    assert!(
        (window.len() as u64) >= busy.as_secs(),
        "a write every second: {} in {busy:?}",
        window.len()
    );
    assert!(
        own_gap <= 1.5,
        "the service measured a heartbeat gap of {own_gap} s; log: {}",
        log.display()
    );
    assert!(
        largest <= Duration::from_millis(1500),
        "a heartbeat gap of {largest:?}; log: {}",
        log.display()
    );
    assert!(
        c.driver.parent(&image(c, &big)).await.unwrap().is_none(),
        "the create flattened"
    );

    svc.delete(&big).await;
    svc.delete_snapshot(&src, &snap).await;
    svc.delete(&src).await;
    child.terminate().await;
    let svc = Arc::into_inner(svc).expect("no client holds the service");
    svc.stop().await;
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&log);
}
