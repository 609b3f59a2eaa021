//! Two volume services with one cluster name serve a backend active-active: both
//! consume the cluster queue, a volume's work runs once, and the unfinished work of a
//! peer that is down is adopted (an interrupted blank create is run again).

use std::collections::BTreeMap;

use cinder_common::ops::{volume as volume_ops, Outcome, ResourceKind};
use cinder_common::status::VolumeStatus;
use cinder_db::Ending;
use cinder_rpc::messages::{DeleteVolume, VolumeRequest};
use cinder_tests::{amqp_url, create_request, unique};
use rbd_driver::CreateOptions;

use crate::fixtures::{
    ceph, image, launch, prepare, prepare_peer, volume_row, wait_claim_released,
    wait_claims_released,
};

async fn delete_queue(queue: &str) {
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in [
        queue.to_string(),
        cinder_rpc::topology::rejected_queue(queue),
    ] {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_shares_its_queue_and_runs_each_volume_once_despite_duplicates() {
    let c = ceph().await;
    let cluster = unique("cl");
    let mut p = prepare().await;
    p.volume_extra = format!("cluster = \"{cluster}\"");
    let peer = prepare_peer(&p);
    let a = launch(c, p).await;
    let b = launch(c, peer).await;
    let queue = cinder_rpc::topology::volume_cluster_queue(&cluster, "ceph");

    // Every create is cast twice (a redelivery, or a client retrying): the copies may
    // land on different peers at once; the claim lets one run and the other finds the
    // volume no longer creating.
    let mut ids = Vec::new();
    for _ in 0..30 {
        let id = a.new_volume(1).await;
        a.cast_to(&queue, create_request(&id, 1, None)).await;
        a.cast_to(&queue, create_request(&id, 1, None)).await;
        ids.push(id);
    }
    let mut by_host = BTreeMap::<String, usize>::new();
    for id in &ids {
        let row = a.wait_volume(id, VolumeStatus::Available).await;
        let host = row.host.unwrap();
        *by_host
            .entry(host.split('#').next().unwrap().to_string())
            .or_default() += 1;
        assert!(c.driver.exists(&image(c, id)).await.unwrap());
    }
    println!("creates served by host: {by_host:?}");
    assert_eq!(
        by_host.len(),
        2,
        "both peers served the cluster queue: {by_host:?}"
    );
    for s in [&a, &b] {
        let row = s.row().await;
        assert_eq!(
            row.cluster_name.as_deref(),
            Some(format!("{cluster}@ceph").as_str())
        );
        wait_claims_released(&s.db, row.id).await;
    }
    for id in &ids {
        a.db.begin(&volume_ops::DELETE, id).await.unwrap();
        a.cast_to(
            &queue,
            VolumeRequest::DeleteVolume(DeleteVolume {
                volume_id: id.clone(),
            }),
        )
        .await;
    }
    for id in &ids {
        a.wait_gone(id).await;
        assert!(!c.driver.exists(&image(c, id)).await.unwrap());
    }
    // Every delivery handled (the duplicates too) before counting, so a second run of
    // any create would have been counted.
    let q = queue.clone();
    crate::fixtures::wait_until("every delivery acknowledged", 60, || {
        let q = q.clone();
        async move {
            tokio::task::spawn_blocking(move || cinder_tests::queue_depth(&q))
                .await
                .unwrap()
                == Some((0, 0))
        }
    })
    .await;
    for s in [&a, &b] {
        wait_claims_released(&s.db, s.row().await.id).await;
    }
    let mut runs = BTreeMap::<(&str, u32), usize>::new();
    for id in &ids {
        for op in [&volume_ops::CREATE, &volume_ops::DELETE] {
            let n = a.db.executions(&op.claim(id)).await.unwrap();
            *runs.entry((op.name, n)).or_default() += 1;
        }
    }
    println!("runs per volume (operation, runs): volumes {runs:?}");
    assert_eq!(
        runs,
        BTreeMap::from([(("create_volume", 1), 30), (("delete_volume", 1), 30)]),
        "each of the 30 volumes created once and deleted once, despite 60 create deliveries"
    );
    b.stop().await;
    a.stop().await;
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_peer_adopts_the_unfinished_work_of_a_peer_that_is_down() {
    let c = ceph().await;
    let cluster = unique("cl");
    let mut p = prepare().await;
    p.volume_extra = format!("cluster = \"{cluster}\"");
    p.service_extra = "service_down_time = 2".into();
    // The dead peer: registered in the cluster, never heard from again, holding a
    // half-made create and a started delete.
    let dead = crate::fixtures::register_volume_service(
        &p.db,
        &format!("{}@ceph", unique("dead")),
        Some(format!("{cluster}@ceph")),
    )
    .await;
    let opts = CreateOptions {
        size: 1 << 30,
        ..Default::default()
    };
    let creating = p.db.create_volume(&volume_row(1)).await.unwrap().id;
    c.driver
        .create_image(&image(c, &creating), &opts)
        .await
        .unwrap();
    p.db.claim(&volume_ops::CREATE.claim(&creating), dead.id)
        .await
        .unwrap();
    let deleting = p.db.create_volume(&volume_row(1)).await.unwrap().id;
    c.driver
        .create_image(&image(c, &deleting), &opts)
        .await
        .unwrap();
    p.db.finish(
        None,
        &Ending::volume(&volume_ops::CREATE, &deleting, Outcome::Failed),
    )
    .await
    .unwrap();
    p.db.begin(&volume_ops::DELETE, &deleting).await.unwrap();
    p.db.claim(&volume_ops::DELETE.claim(&deleting), dead.id)
        .await
        .unwrap();

    let svc = launch(c, p).await;
    // The blank create is run again from scratch by the peer that adopted it.
    svc.wait_volume(&creating, VolumeStatus::Available).await;
    svc.wait_gone(&deleting).await;
    assert!(c.driver.exists(&image(c, &creating)).await.unwrap());
    assert!(!c.driver.exists(&image(c, &deleting)).await.unwrap());
    for id in [&creating, &deleting] {
        wait_claim_released(&svc.db, ResourceKind::Volume, id).await;
    }
    assert_eq!(
        svc.db
            .executions(&volume_ops::CREATE.claim(&creating))
            .await
            .unwrap(),
        1,
        "the adopted create ran once here"
    );
    svc.delete(&creating).await;
    svc.stop().await;
    delete_queue(&cinder_rpc::topology::volume_cluster_queue(
        &cluster, "ceph",
    ))
    .await;
}
