//! The volume service end to end through a real queue: rows in a real database, casts
//! and calls over RabbitMQ, images on the dev Ceph cluster.

use std::time::Duration;

use cinder_common::ops::{volume as volume_ops, Outcome};
use cinder_common::status::VolumeStatus;
use cinder_db::Ending;
use cinder_rpc::messages::VolumeTopic;
use cinder_rpc::messages::{
    ConnectionInfo, CreateVolume, ExtendVolume, GetCapabilities, InitializeConnection,
    VolumeRequest,
};
use cinder_rpc::{Envelope, Topic};
use cinder_tests::{create_request, rbd, unique};
use rbd_driver::ImageSpec;

use crate::fixtures::{ceph, ctx, image, launch, launch_on, prepare, start, volume_row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_live_and_die_through_the_queue() {
    let c = ceph().await;
    let svc = start(c).await;

    // Blank.
    let a = svc.new_volume(1).await;
    svc.cast(create_request(&a, 1, None)).await;
    let row = svc.wait_volume(&a, VolumeStatus::Available).await;
    assert_eq!(
        row.provider_location.as_deref(),
        Some(image(c, &a).to_string().as_str())
    );
    assert!(
        row.host.as_deref().unwrap().ends_with("@ceph#RBD"),
        "{:?}",
        row.host
    );
    assert_eq!(
        c.driver.image_info(&image(c, &a)).await.unwrap().size,
        1 << 30
    );

    // Connection info for Nova.
    let info: ConnectionInfo = svc
        .client
        .call(
            &svc.queue,
            ctx(),
            InitializeConnection {
                volume_id: a.clone(),
                connector: serde_json::json!({"host": "compute-1"}),
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(info.driver_volume_type, "rbd");
    assert_eq!(info.data["name"], image(c, &a).to_string());
    assert_eq!(info.data["hosts"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(info.data["secret_uuid"], c.driver.fsid());
    assert_eq!(info.data["discard"], true);

    // Extend.
    svc.db.begin(&volume_ops::EXTEND, &a).await.unwrap();
    svc.cast(
        ExtendVolume {
            volume_id: a.clone(),
            new_size_gib: 2,
        }
        .into(),
    )
    .await;
    assert_eq!(svc.wait_volume(&a, VolumeStatus::Available).await.size, 2);
    assert_eq!(
        c.driver.image_info(&image(c, &a)).await.unwrap().size,
        2 << 30
    );

    // Snapshot, then a bigger volume from it.
    let s = svc.snapshot(&a).await;
    let b = svc.new_volume(3).await;
    svc.cast(create_request(&b, 3, Some(&s))).await;
    let row = svc.wait_volume(&b, VolumeStatus::Available).await;
    assert_eq!(
        row.rbd_parent.as_deref(),
        Some(format!("{}/volume-{a}@snapshot-{s}", c.pool).as_str())
    );
    assert_eq!(row.clone_depth, 1);
    assert_eq!(
        c.driver.image_info(&image(c, &b)).await.unwrap().size,
        3 << 30
    );

    // A volume from a volume leaves no snapshot behind on the source (clone v2 trash).
    let d = svc.new_volume(2).await;
    svc.cast(
        CreateVolume {
            volume_id: d.clone(),
            size_gib: 2,
            snapshot_id: None,
            source_volid: Some(a.clone()),
            image_location: None,
            image: None,
            schedule: None,
        }
        .into(),
    )
    .await;
    let row = svc.wait_volume(&d, VolumeStatus::Available).await;
    assert!(row.rbd_parent.is_some());
    let user_snaps: Vec<String> = c
        .driver
        .list_snapshots(&image(c, &a))
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.namespace == rbd_driver::SnapNamespace::User)
        .map(|x| x.name)
        .collect();
    assert_eq!(user_snaps, [format!("snapshot-{s}")]);

    // Capabilities for the scheduler reach the service row through the heartbeat.
    let caps: serde_json::Value = svc
        .client
        .call(
            &svc.queue,
            ctx(),
            GetCapabilities {},
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(caps["total_capacity_gb"].as_f64().unwrap() > 0.0, "{caps}");
    assert_eq!(caps["provisioned_capacity_gb"], 7);
    let row = svc
        .db
        .find_service(
            svc.queue.trim_start_matches("cinder-volume."),
            "cinder-volume",
        )
        .await
        .unwrap()
        .unwrap();
    assert!(row.report_count > 0);
    assert!(
        row.capabilities
            .as_deref()
            .unwrap_or("")
            .contains("free_capacity_gb"),
        "{:?}",
        row.capabilities
    );

    // Delete everything; the images leave the pool (into the trash, purged by the mgr).
    for v in [&d, &b] {
        svc.delete(v).await;
    }
    svc.delete_snapshot(&a, &s).await;
    svc.delete(&a).await;
    let names: Vec<String> = c
        .driver
        .list_images(&c.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for v in [&a, &b, &d] {
        assert!(
            !names.contains(&format!("volume-{v}")),
            "volume-{v} left in the pool"
        );
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_clone_across_pools_and_bad_locations_end_in_error_without_leftovers() {
    let c = ceph().await;
    let svc = start(c).await;
    let glance = c.glance_image();
    let g = glance.to_string();
    let conf = c.conf.clone();
    tokio::task::spawn_blocking(move || {
        rbd(&conf, &["create", "--size", "64M", &g]);
        rbd(&conf, &["snap", "create", &format!("{g}@snap")]);
        rbd(&conf, &["snap", "protect", &format!("{g}@snap")]);
    })
    .await
    .unwrap();
    let v = svc.new_volume(1).await;
    let location = format!(
        "rbd://{}/{}/{}/snap",
        c.driver.fsid(),
        glance.pool,
        glance.name
    );
    svc.cast(
        CreateVolume {
            volume_id: v.clone(),
            size_gib: 1,
            snapshot_id: None,
            source_volid: None,
            image_location: Some(location),
            image: None,
            schedule: None,
        }
        .into(),
    )
    .await;
    let row = svc.wait_volume(&v, VolumeStatus::Available).await;
    assert_eq!(
        row.rbd_parent.as_deref(),
        Some(format!("{glance}@snap").as_str())
    );
    assert_eq!(
        c.driver.image_info(&image(c, &v)).await.unwrap().size,
        1 << 30,
        "resized to the volume size"
    );

    // Another cluster's fsid is not cloneable: error, and no image left behind.
    let w = svc.new_volume(1).await;
    let foreign = format!(
        "rbd://00000000-0000-0000-0000-000000000000/{}/{}/snap",
        glance.pool, glance.name
    );
    svc.cast(
        CreateVolume {
            volume_id: w.clone(),
            size_gib: 1,
            snapshot_id: None,
            source_volid: None,
            image_location: Some(foreign),
            image: None,
            schedule: None,
        }
        .into(),
    )
    .await;
    svc.wait_volume(&w, VolumeStatus::Error).await;
    assert!(!c.driver.exists(&image(c, &w)).await.unwrap());

    // A clone of a missing snapshot fails the same way.
    let x = svc.new_volume(1).await;
    svc.cast(
        CreateVolume {
            volume_id: x.clone(),
            size_gib: 1,
            snapshot_id: None,
            source_volid: Some(unique("nope")),
            image_location: None,
            image: None,
            schedule: None,
        }
        .into(),
    )
    .await;
    svc.wait_volume(&x, VolumeStatus::Error).await;
    assert!(!c.driver.exists(&image(c, &x)).await.unwrap());

    svc.delete(&v).await;
    assert!(
        c.driver
            .list_snapshots(&glance)
            .await
            .unwrap()
            .iter()
            .any(|s| s.name == "snap" && s.protected),
        "Glance's snapshot untouched"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_create_makes_one_volume() {
    let c = ceph().await;
    let svc = start(c).await;
    let v = svc.new_volume(1).await;
    let msg = CreateVolume {
        volume_id: v.clone(),
        size_gib: 1,
        snapshot_id: None,
        source_volid: None,
        image_location: None,
        image: None,
        schedule: None,
    };
    let env = Envelope::new(VolumeTopic::VERSION, ctx(), VolumeRequest::from(msg));
    svc.client.cast_envelope(&svc.queue, &env).await.unwrap();
    svc.client.cast_envelope(&svc.queue, &env).await.unwrap();
    svc.wait_volume(&v, VolumeStatus::Available).await;
    // Both deliveries handled (acknowledged) before counting, so a second run would
    // have been counted.
    let queue = svc.queue.clone();
    crate::fixtures::wait_until("both deliveries acknowledged", 30, || {
        let q = queue.clone();
        async move {
            tokio::task::spawn_blocking(move || cinder_tests::queue_depth(&q))
                .await
                .unwrap()
                == Some((0, 0))
        }
    })
    .await;
    // The claim goes last (a delivery is acknowledged once claimed, before it counts
    // its run): no claim left means every run that would start has been counted.
    let row = svc.row().await;
    crate::fixtures::wait_claims_released(&svc.db, row.id).await;
    assert_eq!(
        svc.db.volume(&v).await.unwrap().status,
        VolumeStatus::Available
    );
    let runs = svc
        .db
        .executions(&cinder_common::ops::volume::CREATE.claim(&v))
        .await
        .unwrap();
    println!("two deliveries of one create: the create ran {runs} time(s)");
    assert_eq!(runs, 1, "the create ran once");
    let count = c
        .driver
        .list_images(&c.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.name == format!("volume-{v}"))
        .count();
    assert_eq!(count, 1);
    svc.delete(&v).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_reconciliation_reruns_or_fails_creates_resumes_deletes_and_reports_strangers() {
    let c = ceph().await;
    // A pool of its own: every image in it is this test's, so the report can be read
    // exactly.
    let pool = cinder_tests::unique("it-reconcile");
    let (conf, pl) = (c.conf.clone(), pool.clone());
    tokio::task::spawn_blocking(move || cinder_tests::create_pool(&conf, &pl))
        .await
        .unwrap();
    let image = |id: &str| ImageSpec::new(&pool, format!("volume-{id}"));
    let mut p = prepare().await;
    let addr = crate::fixtures::free_local_addr();
    p.metrics_listen = addr.clone();
    let backend = format!("{}@ceph", p.host);
    // What a crash leaves: the service row, its claims, a half-made image, an interrupted
    // delete, a volume that is fine, and an image no row knows.
    let row = crate::fixtures::register_volume_service(&p.db, &backend, None).await;
    // Two interrupted creates, each with a half-made image holding data: a blank one
    // (run again from scratch) and one from a Glance image (failed: its data needs the
    // caller's token).
    let creating = p.db.create_volume(&volume_row(1)).await.unwrap().id;
    let from_image = {
        let mut r = volume_row(1);
        r.image_id = Some(uuid::Uuid::new_v4().to_string());
        p.db.create_volume(&r).await.unwrap().id
    };
    let opts = rbd_driver::CreateOptions {
        size: 1 << 30,
        ..Default::default()
    };
    for id in [&creating, &from_image] {
        p.db.claim(&volume_ops::CREATE.claim(id), row.id)
            .await
            .unwrap();
        c.driver.create_image(&image(id), &opts).await.unwrap();
        c.driver
            .write(&image(id), 0, cinder_tests::random_bytes(3, 4096))
            .await
            .unwrap();
    }

    let deleting = p.db.create_volume(&volume_row(1)).await.unwrap().id;
    c.driver
        .create_image(&image(&deleting), &opts)
        .await
        .unwrap();
    p.db.finish(
        None,
        &Ending::volume(&volume_ops::CREATE, &deleting, Outcome::Done),
    )
    .await
    .unwrap();
    p.db.begin(&volume_ops::DELETE, &deleting).await.unwrap();
    p.db.claim(&volume_ops::DELETE.claim(&deleting), row.id)
        .await
        .unwrap();

    let fine = p.db.create_volume(&volume_row(1)).await.unwrap().id;
    c.driver.create_image(&image(&fine), &opts).await.unwrap();
    p.db.finish(
        None,
        &Ending::volume(&volume_ops::CREATE, &fine, Outcome::Done),
    )
    .await
    .unwrap();

    let stranger = image(&uuid::Uuid::new_v4().to_string());
    c.driver.create_image(&stranger, &opts).await.unwrap();

    let db = p.db.clone();
    let svc = launch_on(c, p, &pool).await;
    // An interrupted blank create is run again, in the background once serving.
    svc.wait_volume(&creating, VolumeStatus::Available).await;
    assert_eq!(
        c.driver
            .read(&image(&creating), None, 0, 4096)
            .await
            .unwrap(),
        vec![0u8; 4096],
        "from scratch: the half-made image went first"
    );
    assert_eq!(
        db.executions(&volume_ops::CREATE.claim(&creating))
            .await
            .unwrap(),
        1,
        "the re-run is counted"
    );
    assert_eq!(
        db.volume(&from_image).await.unwrap().status,
        VolumeStatus::Error,
        "an interrupted create from an image fails cleanly"
    );
    assert!(
        !c.driver.exists(&image(&from_image)).await.unwrap(),
        "its half-made image is removed"
    );
    assert!(
        db.volume(&deleting).await.is_err(),
        "an interrupted delete is carried to its end"
    );
    assert!(!c.driver.exists(&image(&deleting)).await.unwrap());
    assert!(
        c.driver.exists(&stranger).await.unwrap(),
        "an unknown image is never deleted"
    );
    // ... but reported, by name, for an operator to look at: it and only it.
    let page = crate::fixtures::metrics_page(&addr).await;
    let count = format!("cinder_volume_unknown_images{{backend=\"{backend}\"}} 1");
    assert!(page.contains(&count), "{count} not in:\n{page}");
    let line = format!(
        "cinder_volume_unknown_image{{backend=\"{backend}\",image=\"{}\"}} 1",
        stranger.name
    );
    assert!(page.contains(&line), "{line} not in:\n{page}");
    let named = page
        .lines()
        .filter(|l| l.starts_with("cinder_volume_unknown_image{"))
        .count();
    assert_eq!(named, 1, "{page}");
    for known in [&fine, &creating] {
        assert!(
            !page.contains(&image(known).name),
            "a live volume's image is known"
        );
    }
    // No claim left.
    crate::fixtures::wait_claims_released(&db, row.id).await;
    svc.stop().await;
    let (conf, pl) = (c.conf.clone(), pool.clone());
    tokio::task::spawn_blocking(move || cinder_tests::delete_pool(&conf, &pl))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_show_operations_lanes_heartbeat_capacity_and_health() {
    let c = ceph().await;
    let mut p = prepare().await;
    let addr = crate::fixtures::free_local_addr();
    p.metrics_listen = addr.clone();
    let backend = format!("{}@ceph", p.host);
    let svc = launch(c, p).await;
    let v = svc.new_volume(1).await;
    svc.cast(create_request(&v, 1, None)).await;
    svc.wait_volume(&v, VolumeStatus::Available).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let page = crate::fixtures::metrics_page(&addr).await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    let b = format!("backend=\"{backend}\"");
    for needle in [
        format!("cinder_volume_operations_seconds_count{{{b},method=\"create_volume\",outcome=\"ok\"}} 1"),
        format!("cinder_volume_operations_seconds_bucket{{{b},method=\"create_volume\",outcome=\"ok\",le=\"+Inf\"}} 1"),
        "cinder_volume_operations_in_flight 0".to_string(),
        format!("cinder_volume_driver_pool_threads{{{b},lane=\"long\",state=\"waiting\"}} 0"),
        format!("cinder_volume_heartbeat_age_seconds{{{b}}}"),
        format!("cinder_volume_capacity_gb{{{b},kind=\"provisioned\"}} 1"),
    ] {
        assert!(page.contains(&needle), "missing {needle} in\n{page}");
    }
    for family in ["cinder_volume_broker_connected", "cinder_volume_healthy"] {
        assert_eq!(
            crate::fixtures::metric(&page, &format!("{family}{{{b}}}")),
            Some(1.0),
            "{family} in\n{page}"
        );
    }
    // Each family's lines in one block, after its HELP and TYPE.
    let mut seen = std::collections::HashSet::new();
    let mut current = String::new();
    for line in page.lines().skip_while(|l| !l.starts_with('#')) {
        let family = if let Some(rest) = line.strip_prefix("# TYPE ") {
            rest.split(' ').next().unwrap().to_string()
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| seen.contains(*b)))
                .unwrap_or(name);
            assert_eq!(
                base, current,
                "{line} outside its family's block in\n{page}"
            );
            continue;
        };
        assert!(
            seen.insert(family.clone()),
            "{family} in two blocks in\n{page}"
        );
        current = family;
    }
    assert!(crate::fixtures::http_page(&addr, "/other")
        .await
        .starts_with("HTTP/1.1 404"));
    svc.delete(&v).await;
    svc.stop().await;
}
