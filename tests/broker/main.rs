//! Tests that restart the shared RabbitMQ. They live in their own test binary because
//! cargo runs test binaries one after another, so no other test loses its broker.

#[path = "../it/fixtures/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fixtures;

use cinder_tests::create_request;
use std::process::Command;
use std::time::{Duration, Instant};

use cinder_common::status::VolumeStatus;
use fixtures::{ceph, image, launch, prepare};

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
    let c = ceph().await;
    // Four at a time, so most creates are still queued when the broker goes away.
    let mut p = prepare().await;
    p.concurrency = 4;
    let svc = launch(c, p).await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(svc.new_volume(1).await);
    }
    for id in &ids {
        svc.cast(create_request(id, 1, None)).await;
    }
    // Restart the broker while most creates are still queued.
    let mut done_before = 0;
    for id in &ids {
        done_before +=
            (svc.db.volume(id).await.unwrap().status == VolumeStatus::Available) as usize;
    }
    rabbitmqctl(&["stop_app"]);
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    println!(
        "broker down for {:?}; {done_before} of 50 were available when it stopped",
        down.elapsed()
    );
    assert!(done_before < 50, "the restart must hit queued work");

    let deadline = Instant::now() + Duration::from_secs(180);
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
    let names: Vec<String> = c
        .driver
        .list_images(&c.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for id in &ids {
        let n = names
            .iter()
            .filter(|n| **n == format!("volume-{id}"))
            .count();
        assert_eq!(n, 1, "volume-{id} exists once");
    }
    println!("all 50 volumes available after the broker restart, each image once");
    // The client that cast the creates before the restart casts the deletes after it:
    // its first publish finds the connection gone, reconnects and sends again.
    for id in &ids {
        svc.delete(id).await;
        assert!(!c.driver.exists(&image(c, id)).await.unwrap());
    }
    svc.stop().await;
}
