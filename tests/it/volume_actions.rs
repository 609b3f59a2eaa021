//! Revert, retype, manage and unmanage through the real queue, and the short and long
//! budgets of the service.

use std::time::{Duration, Instant};

use cinder_common::ops::{snapshot as snapshot_ops, volume as volume_ops, Operation};
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_rpc::messages::{
    InitializeConnection, ManageExisting, Retype, RevertToSnapshot, UnmanageVolume,
};
use cinder_tests::{create_request, random_bytes, unique, MIB};
use rbd_driver::{CreateOptions, ImageSpec};

use crate::fixtures::{assert_same, ceph, ctx, image, launch, prepare, start, volume_row, Service};

/// Begins `op` on volume `id`, as the API does before it casts.
async fn begin(svc: &Service, id: &str, op: &Operation<VolumeStatus>) {
    svc.db.begin(op, id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_brings_back_the_snapshot_data_at_the_volume_size() {
    let c = ceph().await;
    let svc = start(c).await;
    let a = svc.new_volume(1).await;
    svc.cast(create_request(&a, 1, None)).await;
    svc.wait_volume(&a, VolumeStatus::Available).await;
    let before = random_bytes(1, 4 * MIB as usize);
    c.driver
        .write(&image(c, &a), 0, before.clone())
        .await
        .unwrap();
    let s = svc.snapshot(&a).await;
    // Written over and grown after the snapshot.
    c.driver
        .write(&image(c, &a), 0, random_bytes(2, 4 * MIB as usize))
        .await
        .unwrap();
    begin(&svc, &a, &volume_ops::EXTEND).await;
    svc.cast(
        cinder_rpc::messages::ExtendVolume {
            volume_id: a.clone(),
            new_size_gib: 2,
        }
        .into(),
    )
    .await;
    svc.wait_volume(&a, VolumeStatus::Available).await;

    begin(&svc, &a, &volume_ops::REVERT).await;
    svc.db.begin(&snapshot_ops::RESTORE, &s).await.unwrap();
    svc.cast(
        RevertToSnapshot {
            volume_id: a.clone(),
            snapshot_id: s.clone(),
        }
        .into(),
    )
    .await;
    let row = svc.wait_volume(&a, VolumeStatus::Available).await;
    svc.wait_snapshot(&s, Some("available")).await;
    assert_eq!(row.size, 2);
    let back = c
        .driver
        .read(&image(c, &a), None, 0, before.len())
        .await
        .unwrap();
    assert_same(&back, &before, "reverted data");
    assert_eq!(
        c.driver.image_info(&image(c, &a)).await.unwrap().size,
        2 << 30,
        "grown back to the volume's size after the rollback"
    );

    // A revert to a snapshot that is not there: the volume is in error (its content is
    // unknown to Cinder), the snapshot row goes back to available.
    let ghost = uuid::Uuid::new_v4().to_string();
    svc.db
        .create_snapshot_row(&ghost, &a, "p", "u", 2)
        .await
        .unwrap();
    svc.db
        .reset_status(&ghost, SnapshotStatus::Restoring)
        .await
        .unwrap();
    begin(&svc, &a, &volume_ops::REVERT).await;
    svc.cast(
        RevertToSnapshot {
            volume_id: a.clone(),
            snapshot_id: ghost.clone(),
        }
        .into(),
    )
    .await;
    svc.wait_volume(&a, VolumeStatus::Error).await;
    svc.wait_snapshot(&ghost, Some("available")).await;
    for snap in [&s, &ghost] {
        svc.delete_snapshot(&a, snap).await;
    }
    svc.delete(&a).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retype_on_the_same_backend_changes_the_row_and_returns_to_its_status() {
    let c = ceph().await;
    let svc = start(c).await;
    let a = svc.new_volume(1).await;
    svc.cast(create_request(&a, 1, None)).await;
    svc.wait_volume(&a, VolumeStatus::Available).await;
    begin(&svc, &a, &volume_ops::RETYPE).await;
    let gold = uuid::Uuid::new_v4().to_string();
    svc.cast(
        Retype {
            volume_id: a.clone(),
            new_type_id: Some(gold.clone()),
            previous_status: "available".into(),
        }
        .into(),
    )
    .await;
    let row = svc.wait_volume(&a, VolumeStatus::Available).await;
    assert_eq!(row.volume_type_id.as_deref(), Some(gold.as_str()));
    assert!(c.driver.exists(&image(c, &a)).await.unwrap());
    svc.delete(&a).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manage_adopts_an_image_and_unmanage_leaves_it_behind() {
    let c = ceph().await;
    let svc = start(c).await;
    let legacy = ImageSpec::new(&c.pool, unique("legacy"));
    let opts = CreateOptions {
        size: 1536 * MIB,
        ..Default::default()
    };
    c.driver.create_image(&legacy, &opts).await.unwrap();
    let data = random_bytes(3, 2 * MIB as usize);
    c.driver.write(&legacy, 0, data.clone()).await.unwrap();

    let managing = |svc: &Service| {
        let db = svc.db.clone();
        async move {
            db.create_volume_for(&volume_row(0), &volume_ops::MANAGE)
                .await
                .unwrap()
                .id
        }
    };

    let v = managing(&svc).await;
    svc.cast(
        ManageExisting {
            volume_id: v.clone(),
            source_name: legacy.name.clone(),
        }
        .into(),
    )
    .await;
    let row = svc.wait_volume(&v, VolumeStatus::Available).await;
    assert_eq!(row.size, 2, "1.5 GiB rounds up to 2");
    assert_eq!(
        row.provider_location.as_deref(),
        Some(image(c, &v).to_string().as_str())
    );
    assert!(!c.driver.exists(&legacy).await.unwrap(), "renamed");
    let back = c
        .driver
        .read(&image(c, &v), None, 0, data.len())
        .await
        .unwrap();
    assert_same(&back, &data, "managed data");

    // A name that is not in the pool, and another volume's image: error_managing, and
    // nothing in the pool changes.
    let missing = managing(&svc).await;
    svc.cast(
        ManageExisting {
            volume_id: missing.clone(),
            source_name: unique("nowhere"),
        }
        .into(),
    )
    .await;
    svc.wait_volume(&missing, VolumeStatus::ErrorManaging).await;
    let thief = managing(&svc).await;
    svc.cast(
        ManageExisting {
            volume_id: thief.clone(),
            source_name: format!("volume-{v}"),
        }
        .into(),
    )
    .await;
    svc.wait_volume(&thief, VolumeStatus::ErrorManaging).await;
    assert!(c.driver.exists(&image(c, &v)).await.unwrap());
    assert!(!c.driver.exists(&image(c, &thief)).await.unwrap());

    // Unmanage: the row goes, the image stays.
    begin(&svc, &v, &volume_ops::UNMANAGE).await;
    svc.cast(
        UnmanageVolume {
            volume_id: v.clone(),
        }
        .into(),
    )
    .await;
    svc.wait_gone(&v).await;
    assert!(c.driver.exists(&image(c, &v)).await.unwrap());
    svc.stop().await;
    c.purge(&image(c, &v)).await;
}

/// Long work queued beyond the driver's long lane does not hold the slots short work
/// needs: with a short budget of 4 requests and one long lane thread, 12 creates that
/// each flatten 64 MiB are cast first; a blank create and connection info cast after
/// them finish while most of those are still waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_work_passes_long_work_queued_beyond_its_budget() {
    let c = ceph().await;
    let mut p = prepare().await;
    p.concurrency = 4;
    p.volume_extra = "max_long_operations = 16".into();
    p.backend_extra = "long_op_threads = 1\nrbd_flatten_volume_from_snapshot = true".into();
    let svc = launch(c, p).await;

    let src = svc.new_volume(1).await;
    svc.cast(create_request(&src, 1, None)).await;
    svc.wait_volume(&src, VolumeStatus::Available).await;
    c.driver
        .write(&image(c, &src), 0, random_bytes(4, 64 * MIB as usize))
        .await
        .unwrap();
    let s = svc.snapshot(&src).await;

    let mut long = Vec::new();
    for _ in 0..12 {
        let id = svc.new_volume(1).await;
        svc.cast(create_request(&id, 1, Some(&s))).await;
        long.push(id);
    }
    let started = Instant::now();
    let quick = svc.new_volume(1).await;
    svc.cast(create_request(&quick, 1, None)).await;
    svc.wait_volume(&quick, VolumeStatus::Available).await;
    svc.client
        .call(
            &svc.queue,
            ctx(),
            InitializeConnection {
                volume_id: quick.clone(),
                connector: serde_json::json!({"host": "compute-1"}),
            },
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let short_done = started.elapsed();
    let mut still_creating = 0;
    for id in &long {
        if svc.db.volume(id).await.unwrap().status == VolumeStatus::Creating {
            still_creating += 1;
        }
    }
    println!(
        "short work done after {short_done:?} with {still_creating} of 12 flattening creates unfinished"
    );
    assert!(
        still_creating >= 6,
        "short work waited for long work: only {still_creating} of 12 long creates were left"
    );
    for id in &long {
        let row = svc.wait_volume(id, VolumeStatus::Available).await;
        assert_eq!(row.clone_depth, 0, "flattened");
    }
    for id in long.iter().chain([&quick]) {
        svc.delete(id).await;
    }
    svc.delete_snapshot(&src, &s).await;
    svc.delete(&src).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trash_sweep_purges_volume_images_left_in_the_trash_and_nothing_else() {
    let c = ceph().await;
    let mut p = prepare().await;
    p.volume_extra = "trash_purge_interval = 1".into();
    let svc = launch(c, p).await;
    let opts = CreateOptions {
        size: 8 * MIB,
        ..Default::default()
    };
    let volume = image(c, &uuid::Uuid::new_v4().to_string());
    let other = c.image("not-a-volume");
    let mut trashed = Vec::new();
    for spec in [&volume, &other] {
        c.driver.create_image(spec, &opts).await.unwrap();
        match c
            .driver
            .remove_image(spec, rbd_driver::RemoveMode::TrashOnly, &Default::default())
            .await
            .unwrap()
        {
            rbd_driver::RemoveOutcome::Trashed { trash_id } => trashed.push(trash_id),
            other => panic!("{other:?}"),
        }
    }
    let in_trash = |id: String| async move {
        c.driver
            .trash_list(&c.pool)
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == id)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_trash(trashed[0].clone()).await {
        assert!(
            Instant::now() < deadline,
            "the volume image stayed in the trash"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        in_trash(trashed[1].clone()).await,
        "an image that is not a volume is left alone"
    );
    svc.stop().await;
    c.driver
        .purge_trash(&c.pool, &trashed[1], &Default::default())
        .await
        .unwrap();
}
