//! `kill -9` of the real `cinder-volume` process amid creates and deletes, then a restart:
//! every volume ends in a final status, no image is left without a row, and no row
//! claims an image that does not exist.

use std::time::Duration;

use cinder_common::status::VolumeStatus;
use cinder_rpc::messages::{DeleteVolume, VolumeRequest};
use cinder_tests::{create_request, random_bytes, MIB};
use rbd_driver::ImageSpec;

use crate::fixtures::{ceph, wait_serving, Killable, Proc};

fn is_final(status: Option<VolumeStatus>) -> bool {
    matches!(
        status,
        None | Some(VolumeStatus::Available | VolumeStatus::Error)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_amid_creates_and_deletes_leaves_no_orphan_after_restart() {
    let c = ceph().await;
    // Its own pool, so "no image without a row" can be checked over the whole pool.
    let Killable {
        mut child,
        svc,
        pool,
        config,
        log,
    } = Killable::start("crash").await;
    let img = |id: &str| ImageSpec::new(&pool, format!("volume-{id}"));

    // A source with data and a snapshot: creates from it flatten 32 MiB each, one at a
    // time, so the kill lands amid them.
    let src = svc.new_volume(1).await;
    svc.cast(create_request(&src, 1, None)).await;
    svc.wait_volume(&src, VolumeStatus::Available).await;
    c.driver
        .write(&img(&src), 0, random_bytes(9, 32 * MIB as usize))
        .await
        .unwrap();
    let snap = svc.snapshot(&src).await;
    // Ten volumes to delete.
    let mut doomed = Vec::new();
    for _ in 0..10 {
        let id = svc.new_volume(1).await;
        svc.cast(create_request(&id, 1, None)).await;
        doomed.push(id);
    }
    for id in &doomed {
        svc.wait_volume(id, VolumeStatus::Available).await;
    }

    // 20 operations: 10 deletes, 5 blank creates and 5 creates from the snapshot.
    let mut born = Vec::new();
    for (i, id) in doomed.iter().enumerate() {
        svc.db
            .begin(&cinder_common::ops::volume::DELETE, id)
            .await
            .unwrap();
        svc.cast(VolumeRequest::DeleteVolume(DeleteVolume {
            volume_id: id.clone(),
        }))
        .await;
        if i % 2 == 0 {
            let new = svc.new_volume(1).await;
            svc.cast(create_request(&new, 1, Some(&snap))).await;
            born.push(new);
        } else {
            let new = svc.new_volume(1).await;
            svc.cast(create_request(&new, 1, None)).await;
            born.push(new);
        }
    }
    // Kill once some of the work is done and some is not.
    let all: Vec<String> = doomed.iter().chain(&born).cloned().collect();
    // `None`: the row is gone (deleted). Any other database error fails the test, it
    // never reads as "deleted".
    let status_of = |id: String| {
        let db = svc.db.clone();
        async move {
            match db.volume(&id).await {
                Ok(v) => Some(v.status),
                Err(cinder_db::Error::NotFound { .. }) => None,
                Err(e) => panic!("reading volume {id}: {e}"),
            }
        }
    };
    let mut finished = 0;
    for _ in 0..400 {
        finished = 0;
        for id in &all {
            if is_final(status_of(id.clone()).await) {
                finished += 1;
            }
        }
        if finished >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill_9();
    let mut unfinished = Vec::new();
    for id in &all {
        if !is_final(status_of(id.clone()).await) {
            unfinished.push(id.clone());
        }
    }
    println!(
        "killed with {finished} of 20 operations finished, {} unfinished",
        unfinished.len()
    );
    assert!(!unfinished.is_empty(), "the kill came after all the work");

    let child = Proc::volume(&config, &log);
    wait_serving(&svc.client, &svc.queue).await;
    for _ in 0..600 {
        let mut done = true;
        for id in &all {
            done &= is_final(status_of(id.clone()).await);
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut outcome = std::collections::BTreeMap::<&str, usize>::new();
    for id in &all {
        let status = status_of(id.clone()).await;
        assert!(
            is_final(status),
            "volume {id} ended {status:?}; log: {}",
            log.display()
        );
        *outcome
            .entry(status.map_or("deleted", |s| s.as_str()))
            .or_default() += 1;
        let exists = c.driver.exists(&img(id)).await.unwrap();
        match status {
            Some(VolumeStatus::Available) => {
                assert!(exists, "row {id} is available without its image")
            }
            _ => assert!(!exists, "image of {id} left behind ({status:?})"),
        }
    }
    println!("after the restart: {outcome:?}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for line in text
        .lines()
        .filter(|l| l.contains("reconciliation done") || l.contains("retrying in the background"))
    {
        println!("service log: {line}");
    }
    for id in &doomed {
        assert!(
            status_of(id.clone()).await.is_none(),
            "every delete is carried to its end"
        );
    }
    let live = svc.db.live_volume_ids().await.unwrap();
    for e in c.driver.list_images(&pool).await.unwrap() {
        let id = e.name.trim_start_matches("volume-");
        assert!(live.contains(id), "image {} has no row", e.name);
    }
    // The trash too: no live volume's image is there, and what the deletes moved there
    // is purged (by the mgr, or the service's trash sweep).
    let trashed = || async {
        c.driver
            .trash_list(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
    };
    for name in trashed().await {
        let id = name.trim_start_matches("volume-");
        assert!(
            !live.contains(id),
            "live volume {id} has its image in the trash"
        );
    }
    crate::fixtures::wait_for(
        "the deleted volumes' images to leave the trash",
        90,
        || async {
            match trashed().await {
                t if t.is_empty() => Ok(()),
                t => Err(format!("{t:?}")),
            }
        },
    )
    .await;
    let row = svc.row().await;
    crate::fixtures::wait_claims_released(&svc.db, row.id).await;

    // Clean up through the service, then stop it with SIGTERM.
    for id in born.iter().filter(|id| live.contains(*id)) {
        svc.delete(id).await;
    }
    svc.delete_snapshot(&src, &snap).await;
    svc.delete(&src).await;
    child.terminate().await;
    svc.stop().await;
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&log);
}
