//! Repeated `kill -9` of the real `cinder-volume` at random moments amid mixed work
//! (blank creates, clones of a snapshot that flatten, clones of volumes, snapshot creates
//! and deletes, volume deletes), restarting it each time: at the end every volume and
//! snapshot is final, no image is without a row, no available row is without its image,
//! no RBD snapshot is without a row (nor a row without it), no claim is left.
//!
//! CI runs `CINDER_CHAOS_ROUNDS` rounds (default 3); `scripts/chaos.sh` runs 10 and more.
//! `CINDER_CHAOS_SEED` repeats a run (the seed is printed).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use cinder_common::ops::{snapshot as snapshot_ops, volume as volume_ops};
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_rpc::messages::{CreateSnapshot, DeleteSnapshot, DeleteVolume, VolumeRequest};
use cinder_tests::{create_request, random_bytes, Rng, MIB};
use rbd_driver::{ImageSpec, SnapNamespace};

use crate::fixtures::{ceph, env_number, wait_serving, Killable, Proc};

fn volume_final(s: VolumeStatus) -> bool {
    !matches!(
        s,
        VolumeStatus::Creating
            | VolumeStatus::Deleting
            | VolumeStatus::Downloading
            | VolumeStatus::Extending
            | VolumeStatus::Retyping
            | VolumeStatus::Reverting
            | VolumeStatus::Managing
            | VolumeStatus::Uploading
            | VolumeStatus::Unmanaging
    )
}

fn snapshot_final(s: SnapshotStatus) -> bool {
    matches!(
        s,
        SnapshotStatus::Available | SnapshotStatus::Error | SnapshotStatus::ErrorDeleting
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill_9_amid_mixed_work_leaves_everything_final_and_nothing_orphaned() {
    let rounds = env_number("CINDER_CHAOS_ROUNDS", 3);
    let seed = env_number(
        "CINDER_CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    println!("chaos: {rounds} rounds, CINDER_CHAOS_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let c = ceph().await;
    // Its own pool, so "no image without a row" holds over the whole pool.
    let Killable {
        mut child,
        svc,
        pool,
        config,
        log,
    } = Killable::start("chaos").await;
    let img = |id: &str| ImageSpec::new(&pool, format!("volume-{id}"));

    // A source with 16 MiB of data and a snapshot: clones of it flatten.
    let base = svc.new_volume(1).await;
    svc.cast(create_request(&base, 1, None)).await;
    svc.wait_volume(&base, VolumeStatus::Available).await;
    c.driver
        .write(&img(&base), 0, random_bytes(seed, 16 * MIB as usize))
        .await
        .unwrap();
    let base_snap = svc.snapshot(&base).await;

    let mut volumes: Vec<String> = vec![base.clone()];
    let mut snapshots: Vec<(String, String)> = vec![(base.clone(), base_snap.clone())];
    let mut cast = BTreeMap::<&str, usize>::new();
    let mut unfinished_at_kills = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        // Twelve operations on what is final now.
        for _ in 0..12 {
            let available: Vec<String> = {
                let mut v = Vec::new();
                for id in &volumes {
                    if id != &base
                        && matches!(svc.db.volume(id).await, Ok(r) if r.status == VolumeStatus::Available)
                    {
                        v.push(id.clone());
                    }
                }
                v
            };
            let pick =
                |rng: &mut Rng, v: &[String]| v[(rng.next_u64() % v.len() as u64) as usize].clone();
            match rng.next_u64() % 6 {
                0 => {
                    let id = svc.new_volume(1).await;
                    svc.cast(create_request(&id, 1, None)).await;
                    volumes.push(id);
                    *cast.entry("create blank").or_default() += 1;
                }
                1 => {
                    let mut row = crate::fixtures::volume_row(1);
                    row.snapshot_id = Some(base_snap.clone());
                    let id = svc.db.create_volume(&row).await.unwrap().id;
                    svc.cast(create_request(&id, 1, Some(&base_snap))).await;
                    volumes.push(id);
                    *cast.entry("clone snapshot").or_default() += 1;
                }
                2 if !available.is_empty() => {
                    let src = pick(&mut rng, &available);
                    let mut row = crate::fixtures::volume_row(1);
                    row.source_volid = Some(src.clone());
                    let id = svc.db.create_volume(&row).await.unwrap().id;
                    let mut req = create_request(&id, 1, None);
                    if let VolumeRequest::CreateVolume(c) = &mut req {
                        c.source_volid = Some(src);
                    }
                    svc.cast(req).await;
                    volumes.push(id);
                    *cast.entry("clone volume").or_default() += 1;
                }
                3 if !available.is_empty() => {
                    let vol = pick(&mut rng, &available);
                    let id = uuid::Uuid::new_v4().to_string();
                    svc.db
                        .create_snapshot_row(&id, &vol, "p", "u", 1)
                        .await
                        .unwrap();
                    svc.cast(
                        CreateSnapshot {
                            volume_id: vol.clone(),
                            snapshot_id: id.clone(),
                        }
                        .into(),
                    )
                    .await;
                    snapshots.push((vol, id));
                    *cast.entry("create snapshot").or_default() += 1;
                }
                4 => {
                    // An available snapshot (not the base's).
                    let mut ready = Vec::new();
                    for (vol, id) in snapshots.iter().skip(1) {
                        if matches!(svc.db.snapshot(id).await, Ok(s) if s.status == SnapshotStatus::Available)
                        {
                            ready.push((vol.clone(), id.clone()));
                        }
                    }
                    if ready.is_empty() {
                        continue;
                    }
                    let (vol, id) = ready[(rng.next_u64() % ready.len() as u64) as usize].clone();
                    if svc.db.begin(&snapshot_ops::DELETE, &id).await.is_ok() {
                        svc.cast(
                            DeleteSnapshot {
                                volume_id: vol,
                                snapshot_id: id,
                            }
                            .into(),
                        )
                        .await;
                        *cast.entry("delete snapshot").or_default() += 1;
                    }
                }
                5 if !available.is_empty() => {
                    // A volume without snapshots (the API refuses the others).
                    let vol = pick(&mut rng, &available);
                    if !svc.db.snapshots_of_volume(&vol).await.unwrap().is_empty() {
                        continue;
                    }
                    if svc.db.begin(&volume_ops::DELETE, &vol).await.is_ok() {
                        svc.cast(VolumeRequest::DeleteVolume(DeleteVolume { volume_id: vol }))
                            .await;
                        *cast.entry("delete volume").or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        // Kill at a random moment of the work.
        let wait = Duration::from_millis(20 + rng.next_u64() % 800);
        tokio::time::sleep(wait).await;
        // Amid work: once some is claimed (running, not only queued), if any is left.
        let me = svc.row().await.id;
        let claimed_by = Instant::now() + Duration::from_secs(3);
        while svc.db.claims_of_service(me).await.unwrap().is_empty() && Instant::now() < claimed_by
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut busy = 0;
        for id in &volumes {
            if matches!(svc.db.volume(id).await, Ok(r) if !volume_final(r.status)) {
                busy += 1;
            }
        }
        for (_, id) in &snapshots {
            if matches!(svc.db.snapshot(id).await, Ok(s) if !snapshot_final(s.status)) {
                busy += 1;
            }
        }
        child.kill_9();
        println!("round {round}: killed {wait:?} after casting, {busy} volumes and snapshots busy");
        unfinished_at_kills.push(busy);
        child = Proc::volume(&config, &log);
        wait_serving(&svc.client, &svc.queue).await;
    }
    println!("cast: {cast:?} in {:?}", started.elapsed());
    assert!(
        unfinished_at_kills.iter().any(|n| *n > 0),
        "no kill came amid work: {unfinished_at_kills:?}"
    );

    // Everything settles.
    crate::fixtures::wait_for("every volume and snapshot final", 300, || async {
        let mut busy = Vec::new();
        for id in &volumes {
            match svc.db.volume(id).await {
                Ok(r) if !volume_final(r.status) => {
                    busy.push(format!("volume {id} {}", r.status.as_str()))
                }
                _ => {}
            }
        }
        for (_, id) in &snapshots {
            match svc.db.snapshot(id).await {
                Ok(s) if !snapshot_final(s.status) => {
                    busy.push(format!("snapshot {id} {}", s.status.as_str()))
                }
                _ => {}
            }
        }
        if busy.is_empty() {
            Ok(())
        } else {
            Err(format!("{busy:?}"))
        }
    })
    .await;
    let row = svc.row().await;
    crate::fixtures::wait_claims_released(&svc.db, row.id).await;

    // The invariants, over the whole pool.
    let mut outcome = BTreeMap::<String, usize>::new();
    let mut runs = BTreeMap::<u32, usize>::new();
    let live = svc.db.live_volume_ids().await.unwrap();
    for id in &volumes {
        let status = match svc.db.volume(id).await {
            Ok(r) => Some(r.status),
            Err(cinder_db::Error::NotFound { .. }) => None,
            Err(e) => panic!("reading volume {id}: {e}"),
        };
        *outcome
            .entry(status.map_or("deleted".into(), |s| s.as_str().to_string()))
            .or_default() += 1;
        *runs
            .entry(
                svc.db
                    .executions(&volume_ops::CREATE.claim(id))
                    .await
                    .unwrap(),
            )
            .or_default() += 1;
        let exists = c.driver.exists(&img(id)).await.unwrap();
        if status == Some(VolumeStatus::Available) {
            assert!(
                exists,
                "available volume {id} has no image; log {}",
                log.display()
            );
        }
        if status.is_none() || status == Some(VolumeStatus::Error) {
            assert!(
                !exists,
                "image of {id} left behind ({status:?}); log {}",
                log.display()
            );
        }
    }
    let images = c.driver.list_images(&pool).await.unwrap();
    for e in &images {
        let id = e.name.trim_start_matches("volume-");
        assert!(
            live.contains(id),
            "image {} has no row; log {}",
            e.name,
            log.display()
        );
    }
    // RBD snapshots and snapshot rows match, image by image.
    let mut rows_of = BTreeMap::<String, HashSet<String>>::new();
    for (vol, id) in &snapshots {
        if let Ok(s) = svc.db.snapshot(id).await {
            *outcome
                .entry(format!("snapshot {}", s.status.as_str()))
                .or_default() += 1;
            if s.status == SnapshotStatus::Available {
                rows_of
                    .entry(vol.clone())
                    .or_default()
                    .insert(format!("snapshot-{id}"));
            }
        } else {
            *outcome.entry("snapshot deleted".into()).or_default() += 1;
        }
    }
    for e in &images {
        let id = e.name.trim_start_matches("volume-").to_string();
        let on_image: HashSet<String> = c
            .driver
            .list_snapshots(&img(&id))
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.namespace == SnapNamespace::User)
            .map(|s| s.name)
            .collect();
        let want = rows_of.remove(&id).unwrap_or_default();
        assert_eq!(
            on_image,
            want,
            "RBD snapshots of volume {id} against its available snapshot rows; log {}",
            log.display()
        );
    }
    assert!(
        rows_of.is_empty(),
        "available snapshots whose volume has no image: {rows_of:?}"
    );
    println!(
        "after {rounds} kills (volumes and snapshots busy at each: {unfinished_at_kills:?}): {outcome:?}; creates by runs: {runs:?}"
    );
    // The kills cut work in flight: some restart found interrupted work to carry on
    // (not only rows whose messages were still queued).
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut interrupted = 0;
    for line in text.lines().filter(|l| l.contains("reconciliation done")) {
        println!("service log: {line}");
        let plain: String = line.chars().filter(|c| !c.is_control()).collect();
        for list in [
            "failed_creates",
            "rerun_creates",
            "resumed_deletes",
            "failed_others",
            "finished_others",
            "waiting",
        ] {
            interrupted += plain.contains(&format!("{list}: [\"")) as usize;
        }
    }
    assert!(
        interrupted > 0,
        "no restart found interrupted work: the kills came between operations"
    );
    // The deletes' trash entries are purged, but for images that live clones still
    // read from (clone v2 keeps a deleted parent in the trash until its clones go).
    let mut parents = HashSet::new();
    for e in &images {
        let id = e.name.trim_start_matches("volume-");
        if let Some(p) = c.driver.parent(&img(id)).await.unwrap() {
            parents.insert(p.image_id);
        }
    }
    crate::fixtures::wait_for(
        "the deleted volumes' images to leave the trash",
        90,
        || async {
            let trash: Vec<String> = c
                .driver
                .trash_list(&pool)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| !parents.contains(&e.id))
                .map(|e| e.name)
                .filter(|n| !live.contains(n.trim_start_matches("volume-")))
                .collect();
            if trash.is_empty() {
                Ok(())
            } else {
                Err(format!("{trash:?}"))
            }
        },
    )
    .await;

    child.terminate().await;
    svc.stop().await;
    let (conf, p2) = (c.conf.clone(), pool.clone());
    tokio::task::spawn_blocking(move || cinder_tests::delete_pool(&conf, &p2))
        .await
        .unwrap();
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&log);
}
