//! The volume manager's protocol against the fake driver (no Ceph; the real broker and
//! a SQLite database): claim, ack, final status and release; duplicate deliveries;
//! waiting for another operation's claim; failures; and the resume of every operation
//! after a crash. The fake counts every driver call per resource, so "exactly once" is
//! counted, not inferred.

use std::sync::Arc;
use std::time::Duration;

use cinder_common::ops::{snapshot as snap_ops, volume as vol_ops, Outcome, ResourceKind};
use cinder_common::shutdown::CancellationToken;
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_db::{Db, Ending};
use cinder_drivers::fake::FakeDriver;
use cinder_drivers::DriverErrorKind;
use cinder_rpc::messages::{
    CreateSnapshot, DeleteVolume, ExtendVolume, InitializeConnection, VolumeRequest, VolumeTopic,
};
use cinder_rpc::RpcClient;
use cinder_service::{Claims, Intake, Recovery};
use cinder_tests::{amqp_url, create_request};
use cinder_volume::manager::{LongBudgets, VolumeManager};
use cinder_volume::recovery::{reconcile, Reconciled};

use crate::fixtures::{ctx, prepare, register_volume_service, volume_row, wait_for, wait_serving};

/// A volume manager over the fake driver, serving its own queue.
struct Fake {
    db: Db,
    fake: Arc<FakeDriver>,
    manager: Arc<VolumeManager<FakeDriver>>,
    recovery: Recovery<VolumeManager<FakeDriver>>,
    client: RpcClient,
    queue: String,
    service_id: i32,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Fake {
    /// The manager and its recovery, not serving yet.
    async fn new() -> Fake {
        let p = prepare().await;
        let row = register_volume_service(&p.db, &format!("{}@fake", p.host), None).await;
        let stop = CancellationToken::new();
        let fake = Arc::new(FakeDriver::new());
        let claims = Arc::new(Claims::new(p.db.clone(), row.id));
        let manager = Arc::new(VolumeManager::new(
            claims.clone(),
            fake.clone(),
            format!("{}@fake", p.host),
            Arc::default(),
            LongBudgets {
                accepted: 8,
                running: 2,
            },
            stop.clone(),
        ));
        let recovery = Recovery::start(
            manager.clone(),
            claims,
            Duration::from_secs(6),
            stop.clone(),
        );
        Fake {
            db: p.db.clone(),
            fake,
            manager,
            recovery,
            client: RpcClient::connect(&amqp_url()).await.unwrap(),
            queue: cinder_rpc::topology::volume_queue(&p.host, "fake"),
            service_id: row.id,
            stop,
            task: None,
        }
    }

    /// The manager and its recovery, serving its queue.
    async fn serving() -> Fake {
        let mut f = Fake::new().await;
        let intake = Intake::new(&amqp_url(), 8, f.stop.clone());
        let server = intake.bind::<VolumeTopic>(&f.queue).await.unwrap();
        let (manager, queue) = (f.manager.clone(), f.queue.clone());
        f.task = Some(tokio::spawn(async move {
            intake
                .serve(
                    manager,
                    vec![(queue, server)],
                    Duration::from_secs(5),
                    || {},
                )
                .await
        }));
        wait_serving(&f.client, &f.queue).await;
        f
    }

    async fn cast(&self, body: VolumeRequest) {
        self.client
            .cast_request::<VolumeTopic>(&self.queue, ctx(), body)
            .await
            .unwrap();
    }

    async fn status(&self, id: &str) -> Option<VolumeStatus> {
        self.db.volume(id).await.ok().map(|v| v.status)
    }

    /// Waits for volume `id` to reach `want` (`None`: deleted); then its claim must be
    /// gone at once: the final status and the release are one transaction.
    async fn wait_final(&self, id: &str, want: Option<VolumeStatus>) {
        wait_for(&format!("volume {id} to become {want:?}"), 10, || async {
            match self.status(id).await {
                s if s == want => Ok(()),
                s => Err(format!("({s:?})")),
            }
        })
        .await;
        assert!(
            self.db
                .claim_on(ResourceKind::Volume, id)
                .await
                .unwrap()
                .is_none(),
            "volume {id} is final ({want:?}) while still claimed"
        );
    }

    async fn available_volume(&self, size: i32) -> String {
        let id = self.db.create_volume(&volume_row(size)).await.unwrap().id;
        self.fake.add_volume(&id, size as u64);
        self.db
            .finish(None, &Ending::volume(&vol_ops::CREATE, &id, Outcome::Done))
            .await
            .unwrap();
        id
    }

    /// Waits until a call of `op` for `id` reached the driver (held or not).
    async fn reached(&self, op: &str, id: &str) {
        wait_for(&format!("{op} of {id} to reach the driver"), 10, || async {
            match self.fake.calls(op, id) {
                0 => Err(String::new()),
                _ => Ok(()),
            }
        })
        .await
    }

    /// Begins a delete of volume `id` and casts it, as the API does.
    async fn delete(&self, id: &str) {
        self.db.begin(&vol_ops::DELETE, id).await.unwrap();
        self.cast(
            DeleteVolume {
                volume_id: id.to_string(),
            }
            .into(),
        )
        .await;
    }

    /// An available volume an admin set to `status` (in use, say).
    async fn volume_in(&self, status: VolumeStatus) -> String {
        let id = self.available_volume(1).await;
        self.db.reset_status(&id, status).await.unwrap();
        id
    }

    /// A snapshot row of `volume_id`, `restoring` it.
    async fn restoring_snapshot(&self, volume_id: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.db
            .create_snapshot_row(&id, volume_id, "p", "u", 1)
            .await
            .unwrap();
        self.db
            .reset_status(&id, SnapshotStatus::Restoring)
            .await
            .unwrap();
        id
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_is_claimed_acknowledged_finished_and_released_together() {
    let f = Fake::serving().await;
    let id = f.db.create_volume(&volume_row(2)).await.unwrap().id;
    f.cast(create_request(&id, 2, None)).await;
    f.wait_final(&id, Some(VolumeStatus::Available)).await;
    assert_eq!(f.fake.calls("create_volume", &id), 1);
    assert_eq!(f.fake.volume_size(&id), Some(2));
    let row = f.db.volume(&id).await.unwrap();
    assert!(
        row.host.as_deref().unwrap().ends_with("@fake#fake"),
        "{:?}",
        row.host
    );

    f.delete(&id).await;
    f.wait_final(&id, None).await;
    assert_eq!(f.fake.calls("delete_volume", &id), 1);
    assert_eq!(f.fake.volume_size(&id), None);

    // A call replies (and claims nothing).
    let other = f.available_volume(1).await;
    let info = f
        .client
        .call(
            &f.queue,
            ctx(),
            InitializeConnection {
                volume_id: other.clone(),
                connector: serde_json::json!({}),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(info.driver_volume_type, "fake");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_run_the_work_once() {
    let f = Fake::serving().await;
    let id = f.db.create_volume(&volume_row(1)).await.unwrap().id;
    f.fake.hold("create_volume");
    f.cast(create_request(&id, 1, None)).await;
    f.reached("create_volume", &id).await;
    // Redelivered while the first runs: dropped.
    f.cast(create_request(&id, 1, None)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.fake.release("create_volume");
    f.wait_final(&id, Some(VolumeStatus::Available)).await;
    // Redelivered after it ended: nothing to build.
    f.cast(create_request(&id, 1, None)).await;
    // A create cast after it ends after it (one queue, delivered in order).
    let probe = f.db.create_volume(&volume_row(1)).await.unwrap().id;
    f.cast(create_request(&probe, 1, None)).await;
    f.wait_final(&probe, Some(VolumeStatus::Available)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        f.fake.calls("create_volume", &id),
        1,
        "three deliveries of one create reached the driver more than once"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_waits_for_another_operations_claim_then_runs() {
    let f = Fake::serving().await;
    let id = f.available_volume(1).await;
    let peer = register_volume_service(&f.db, &format!("{}-peer", f.queue), None).await;
    let other = vol_ops::EXTEND.claim(&id);
    f.db.claim(&other, peer.id).await.unwrap();
    f.delete(&id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        f.fake.calls("delete_volume", &id),
        0,
        "ran while another operation held the volume"
    );
    assert_eq!(f.status(&id).await, Some(VolumeStatus::Deleting));
    f.db.release(&other, peer.id).await.unwrap();
    f.wait_final(&id, None).await;
    assert_eq!(f.fake.calls("delete_volume", &id), 1);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_driver_leaves_the_operations_failure_status_and_no_claim() {
    let f = Fake::serving().await;
    let id = f.available_volume(1).await;
    f.fake.fail("extend_volume", Some(DriverErrorKind::Other));
    f.db.begin(&vol_ops::EXTEND, &id).await.unwrap();
    f.cast(
        ExtendVolume {
            volume_id: id.clone(),
            new_size_gib: 2,
        }
        .into(),
    )
    .await;
    f.wait_final(&id, Some(VolumeStatus::ErrorExtending)).await;
    assert_eq!(f.db.volume(&id).await.unwrap().size, 1, "the size stays");

    // A snapshot of a volume the driver does not have: the snapshot fails, the volume
    // is untouched.
    let ghost = f.db.create_volume(&volume_row(1)).await.unwrap().id;
    let snap = uuid::Uuid::new_v4().to_string();
    f.db.create_snapshot_row(&snap, &ghost, "p", "u", 1)
        .await
        .unwrap();
    f.cast(
        CreateSnapshot {
            volume_id: ghost.clone(),
            snapshot_id: snap.clone(),
        }
        .into(),
    )
    .await;
    wait_for("the snapshot to fail", 10, || async {
        match f.db.snapshot(&snap).await.map(|s| s.status) {
            Ok(SnapshotStatus::Error) => Ok(()),
            s => Err(format!("({s:?})")),
        }
    })
    .await;
    assert!(f
        .db
        .claim_on(ResourceKind::Snapshot, &snap)
        .await
        .unwrap()
        .is_none());
    f.stop().await;
}

/// Leaves what a process killed amid `op` on volume `id` leaves: the busy status and
/// the claim.
async fn interrupted(f: &Fake, op: &'static cinder_common::ops::Operation<VolumeStatus>, id: &str) {
    if !op.from.is_empty() {
        f.db.begin(op, id).await.unwrap();
    }
    f.db.claim(&op.claim(id), f.service_id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interrupted_operation_resumes_to_its_table_status() {
    let f = Fake::new().await;
    // A blank create is run again from scratch; one from an image is not (its data
    // needs the caller's token): it fails.
    let creating = f.db.create_volume(&volume_row(1)).await.unwrap().id;
    f.fake.add_volume(&creating, 1); // half-made
    interrupted(&f, &vol_ops::CREATE, &creating).await;
    let from_image = {
        let mut row = volume_row(1);
        row.image_id = Some(uuid::Uuid::new_v4().to_string());
        f.db.create_volume(&row).await.unwrap().id
    };
    f.fake.add_volume(&from_image, 1); // half-made
    interrupted(&f, &vol_ops::CREATE, &from_image).await;
    let deleting = f.available_volume(1).await;
    interrupted(&f, &vol_ops::DELETE, &deleting).await;
    let extending = f.volume_in(VolumeStatus::InUse).await;
    interrupted(&f, &vol_ops::EXTEND, &extending).await;
    let retyping = f.volume_in(VolumeStatus::InUse).await;
    interrupted(&f, &vol_ops::RETYPE, &retyping).await;
    let reverting = f.available_volume(1).await;
    let restoring = f.restoring_snapshot(&reverting).await;
    interrupted(&f, &vol_ops::REVERT, &reverting).await;
    // A revert whose volume an admin reset meanwhile: its snapshot still comes back.
    let reset = f.available_volume(1).await;
    let reset_snap = f.restoring_snapshot(&reset).await;
    interrupted(&f, &vol_ops::REVERT, &reset).await;
    f.db.reset_status(&reset, VolumeStatus::Available)
        .await
        .unwrap();
    let renamed =
        f.db.create_volume_for(&volume_row(0), &vol_ops::MANAGE)
            .await
            .unwrap()
            .id;
    f.fake.add_volume(&renamed, 3); // the rename happened before the kill
    interrupted(&f, &vol_ops::MANAGE, &renamed).await;
    let unrenamed =
        f.db.create_volume_for(&volume_row(0), &vol_ops::MANAGE)
            .await
            .unwrap()
            .id;
    interrupted(&f, &vol_ops::MANAGE, &unrenamed).await;
    let unmanaging = f.available_volume(1).await;
    interrupted(&f, &vol_ops::UNMANAGE, &unmanaging).await;
    let snap_creating = uuid::Uuid::new_v4().to_string();
    f.db.create_snapshot_row(&snap_creating, &deleting, "p", "u", 1)
        .await
        .unwrap();
    f.fake.add_snapshot(&deleting, &snap_creating);
    f.db.claim(&snap_ops::CREATE.claim(&snap_creating), f.service_id)
        .await
        .unwrap();
    let source = f.available_volume(1).await;
    let snap_deleting = uuid::Uuid::new_v4().to_string();
    f.db.create_snapshot_row(&snap_deleting, &source, "p", "u", 1)
        .await
        .unwrap();
    f.db.finish(
        None,
        &Ending::snapshot(&snap_ops::CREATE, &snap_deleting, Outcome::Done),
    )
    .await
    .unwrap();
    f.fake.add_snapshot(&source, &snap_deleting);
    f.db.begin(&snap_ops::DELETE, &snap_deleting).await.unwrap();
    f.db.claim(&snap_ops::DELETE.claim(&snap_deleting), f.service_id)
        .await
        .unwrap();
    // Another service's kind of work: its table failure status.
    let backing_up = f.available_volume(1).await;
    interrupted(&f, &vol_ops::BACKUP, &backing_up).await;

    let started = std::time::Instant::now();
    let report: Reconciled = reconcile(&f.manager, &f.recovery).await.unwrap();
    println!("reconciled in {:?}: {report:?}", started.elapsed());

    // (volume, status after its resume)
    let expect = [
        (&from_image, Some(VolumeStatus::Error)),
        (&deleting, None),
        (&extending, Some(VolumeStatus::ErrorExtending)),
        (&retyping, Some(VolumeStatus::InUse)),
        (&reverting, Some(VolumeStatus::Error)),
        (&renamed, Some(VolumeStatus::Available)),
        (&unrenamed, Some(VolumeStatus::ErrorManaging)),
        (&unmanaging, None),
        (&backing_up, Some(VolumeStatus::Available)),
    ];
    for (id, want) in expect {
        assert_eq!(f.status(id).await, want, "volume {id}");
    }
    // The blank create runs again in the background, never before serving.
    assert_eq!(report.waiting, vec![creating.clone()], "{report:?}");
    f.wait_final(&creating, Some(VolumeStatus::Available)).await;
    assert_eq!(
        f.fake.volume_size(&creating),
        Some(1),
        "the re-run made the volume"
    );
    assert_eq!(
        f.fake.volume_size(&from_image),
        None,
        "the half-made image goes"
    );
    assert_eq!(f.fake.volume_size(&deleting), None);
    assert_eq!(
        f.fake.volume_size(&unmanaging),
        Some(1),
        "unmanage leaves the image"
    );
    assert_eq!(
        f.db.volume(&renamed).await.unwrap().size,
        3,
        "the managed size is recorded"
    );
    assert_eq!(
        f.db.snapshot(&restoring).await.unwrap().status,
        SnapshotStatus::Available
    );
    assert_eq!(f.status(&reset).await, Some(VolumeStatus::Available));
    assert_eq!(
        f.db.snapshot(&reset_snap).await.unwrap().status,
        SnapshotStatus::Available,
        "the snapshot of a reset volume stayed restoring"
    );
    assert_eq!(
        f.db.snapshot(&snap_creating).await.unwrap().status,
        SnapshotStatus::Error
    );
    assert!(!f.fake.has_snapshot(&deleting, &snap_creating));
    assert!(
        f.db.snapshot(&snap_deleting).await.is_err(),
        "the snapshot delete finished"
    );
    assert!(!f.fake.has_snapshot(&source, &snap_deleting));
    assert_eq!(
        (report.failed_creates.len(), report.resumed_deletes.len()),
        (2, 2),
        "{report:?}"
    );
    assert!(
        f.db.claims_of_service(f.service_id)
            .await
            .unwrap()
            .is_empty(),
        "claims left after recovery"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_on_a_watched_image_is_retried_in_the_background_until_it_goes() {
    let f = Fake::new().await;
    let creating = f.db.create_volume(&volume_row(1)).await.unwrap().id;
    f.fake.add_volume(&creating, 1);
    f.fake.set_busy(&creating, true);
    interrupted(&f, &vol_ops::CREATE, &creating).await;
    let report = reconcile(&f.manager, &f.recovery).await.unwrap();
    assert_eq!(report.waiting, vec![creating.clone()]);
    assert_eq!(
        f.status(&creating).await,
        Some(VolumeStatus::Creating),
        "kept while watched"
    );
    // The dead watch goes: the next retry (every 2 s) removes the half-made image and
    // runs the blank create again.
    f.fake.set_busy(&creating, false);
    f.wait_final(&creating, Some(VolumeStatus::Available)).await;
    assert_eq!(f.fake.volume_size(&creating), Some(1));

    // Watched past the deadline (6 s here): the create fails, its claim goes.
    let stuck = f.db.create_volume(&volume_row(1)).await.unwrap().id;
    f.fake.add_volume(&stuck, 1);
    f.fake.set_busy(&stuck, true);
    interrupted(&f, &vol_ops::CREATE, &stuck).await;
    reconcile(&f.manager, &f.recovery).await.unwrap();
    f.wait_final(&stuck, Some(VolumeStatus::Error)).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_keeps_its_image_only_when_an_admin_reset_the_volume_to_available() {
    let f = Fake::serving().await;
    f.fake.hold("create_volume");
    let mut ids = Vec::new();
    for reset_to in [VolumeStatus::Available, VolumeStatus::Error] {
        let id = f.db.create_volume(&volume_row(1)).await.unwrap().id;
        f.cast(create_request(&id, 1, None)).await;
        f.reached("create_volume", &id).await;
        f.db.reset_status(&id, reset_to).await.unwrap();
        ids.push((id, reset_to));
    }
    f.fake.release("create_volume");
    for (id, status) in &ids {
        wait_for(&format!("the claim on {id} to go"), 10, || async {
            match f.db.claim_on(ResourceKind::Volume, id).await.unwrap() {
                None => Ok(()),
                Some(c) => Err(format!("({})", c.operation)),
            }
        })
        .await;
        assert_eq!(f.status(id).await, Some(*status), "the reset stands");
    }
    assert_eq!(
        f.fake.volume_size(&ids[0].0),
        Some(1),
        "the volume reset to available lost its image"
    );
    assert_eq!(
        f.fake.volume_size(&ids[1].0),
        None,
        "the volume reset to error kept an image"
    );
    f.stop().await;
}
