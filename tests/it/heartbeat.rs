//! The heartbeat is never late while librbd is busy: with `report_interval` = 1 s, a
//! flatten of a clone of a volume holding 1 GiB of data and 16 concurrent clone/delete
//! workers run, and no gap between two heartbeat writes exceeds 1.5 s.

use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_db::{service_is_up, ServiceRegistration};
use cinder_service::Heartbeat;
use rbd_driver::{CloneOptions, CreateOptions, ImageSpec, OpCtl, RemoveMode};
use tokio::task::JoinSet;

use crate::fixtures::{big_clone, ceph, drop_clone, Backend, TestDb};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_is_never_late_while_a_1_gib_flatten_and_16_operations_run() {
    let c = ceph().await;
    let (t, db) = TestDb::migrated(Backend::Sqlite).await;
    let row = crate::fixtures::register_volume_service(&db, "it@ceph", None).await;
    let (_caps_tx, caps_rx) = tokio::sync::watch::channel(None);
    let heartbeat = Heartbeat::new(db.clone(), row.id, Duration::from_secs(1), caps_rx);
    let stats = heartbeat.stats();
    let stop = CancellationToken::new();
    let beating = tokio::spawn(heartbeat.run(stop.clone()));

    let (parent, child) = big_clone(c, 1024).await;
    let started = std::time::Instant::now();
    let d = c.driver.clone();
    let ch = child.clone();
    let flatten = tokio::spawn(async move { d.flatten(&ch, &OpCtl::new()).await.unwrap() });
    let mut ops = JoinSet::new();
    for i in 0..16 {
        let (d, pool, parent) = (c.driver.clone(), c.pool.clone(), parent.clone());
        let flatten_running = flatten.abort_handle();
        ops.spawn(async move {
            let mut n = 0;
            loop {
                let img = ImageSpec::new(&pool, cinder_tests::unique(&format!("hb{i}")));
                d.clone_image(&parent.snap("s"), &img, &CloneOptions::default())
                    .await
                    .unwrap();
                d.create_image(
                    &ImageSpec::new(&pool, format!("{}-blank", img.name)),
                    &CreateOptions {
                        size: 1 << 30,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
                d.remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
                    .await
                    .unwrap();
                d.remove_image(
                    &ImageSpec::new(&pool, format!("{}-blank", img.name)),
                    RemoveMode::PurgeNow,
                    &OpCtl::new(),
                )
                .await
                .unwrap();
                n += 4;
                if flatten_running.is_finished() {
                    return n;
                }
            }
        });
    }
    let mut operations = 0;
    while let Some(r) = ops.join_next().await {
        operations += r.unwrap();
    }
    flatten.await.unwrap();
    let busy = started.elapsed();
    // One more beat after the load, then stop.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stop.cancel();
    beating.await.unwrap();
    println!(
        "heartbeat: {} writes, {} failures, largest gap {:?} (report_interval 1 s) during {busy:?} of a 1 GiB flatten and {operations} clone/create/delete operations by 16 workers",
        stats.writes(),
        stats.failures(),
        stats.max_gap()
    );
    assert_eq!(stats.failures(), 0);
    assert!(
        stats.writes() >= busy.as_secs(),
        "a write every second: {} in {busy:?}",
        stats.writes()
    );
    assert!(
        stats.max_gap() <= Duration::from_millis(1500),
        "a heartbeat gap of {:?}",
        stats.max_gap()
    );
    assert!(c.driver.parent(&child).await.unwrap().is_none());
    drop_clone(&c.driver, &parent, &child).await;
    t.drop(db).await;
}
