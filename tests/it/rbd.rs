//! The RBD driver against the dev cluster: image lifecycle, snapshots, clones, trash,
//! error kinds and cluster facts.

use cinder_tests::{random_bytes, rbd, MIB};
use rbd_driver::{
    CloneOptions, CreateOptions, ErrorKind, ImageSpec, OpCtl, Progress, RbdDriver, RemoveMode,
    RemoveOutcome, SnapNamespace,
};

use crate::fixtures::{big_clone, ceph, drop_clone, wait_until};

fn size(bytes: u64) -> CreateOptions {
    CreateOptions {
        size: bytes,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_idempotent_for_the_same_size_and_refuses_another() {
    let c = ceph().await;
    let img = c.image("create");
    c.driver.create_image(&img, &size(16 * MIB)).await.unwrap();
    c.driver
        .create_image(&img, &size(16 * MIB))
        .await
        .expect("a redelivered create succeeds");
    let e = c
        .driver
        .create_image(&img, &size(32 * MIB))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let info = c.driver.image_info(&img).await.unwrap();
    assert_eq!(
        (info.size, info.order, info.object_size),
        (16 * MIB, 22, 4 * MIB)
    );
    assert!(info.parent.is_none());
    assert!(!info.id.is_empty());
    c.driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_honours_order_features_and_appears_in_the_listing() {
    let c = ceph().await;
    let img = c.image("opts");
    let opts = CreateOptions {
        size: 8 * MIB,
        order: Some(23),
        features: Some(1),
        data_pool: None,
    };
    c.driver.create_image(&img, &opts).await.unwrap();
    let info = c.driver.image_info(&img).await.unwrap();
    assert_eq!((info.order, info.features), (23, 1));
    let names: Vec<String> = c
        .driver
        .list_images(&c.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&img.name));
    c.driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_grows_and_shrinks_and_rename_is_idempotent() {
    let c = ceph().await;
    let img = c.image("resize");
    c.driver.create_image(&img, &size(8 * MIB)).await.unwrap();
    c.driver
        .resize(&img, 24 * MIB, false, &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(c.driver.image_info(&img).await.unwrap().size, 24 * MIB);
    let e = c
        .driver
        .resize(&img, 4 * MIB, false, &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidInput,
        "shrinking needs allow_shrink: {e}"
    );
    c.driver
        .resize(&img, 4 * MIB, true, &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(c.driver.image_info(&img).await.unwrap().size, 4 * MIB);

    let renamed = ImageSpec::new(&c.pool, format!("{}-renamed", img.name));
    c.driver.rename_image(&img, &renamed.name).await.unwrap();
    c.driver
        .rename_image(&img, &renamed.name)
        .await
        .expect("a repeated rename succeeds");
    assert!(!c.driver.exists(&img).await.unwrap());
    assert!(c.driver.exists(&renamed).await.unwrap());
    c.driver
        .remove_image(&renamed, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_images_are_not_found_and_removing_them_succeeds() {
    let c = ceph().await;
    let img = c.image("missing");
    let e = c.driver.image_info(&img).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains(&img.name),
        "errors name their target: {e}"
    );
    let r = c
        .driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(r, RemoveOutcome::AlreadyGone);
    c.driver
        .remove_snapshot(&img.snap("s"), &OpCtl::new())
        .await
        .expect("removing a snapshot of a missing image succeeds");
    let e = c
        .driver
        .create_image(&ImageSpec::new("no-such-pool", "x"), &size(MIB))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// A process killed inside librbd leaves names `rbd ls` lists but no image can be
/// opened by; removing the image by that name repairs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_left_dangling_by_a_killed_process_are_repaired_on_remove() {
    let c = ceph().await;
    let listed = |name: String| async move {
        c.driver
            .list_images(&c.pool)
            .await
            .unwrap()
            .iter()
            .any(|e| e.name == name)
    };
    let encoded = |s: &str| {
        let mut v = (s.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        let path = std::env::temp_dir().join(cinder_tests::unique("omap"));
        std::fs::write(&path, v).unwrap();
        path
    };

    // A name → id entry in the pool's directory, as librbd writes it.
    let dir_add = |name: &str, id: &str| {
        for (key, value) in [(format!("name_{name}"), id), (format!("id_{id}"), name)] {
            let file = encoded(value);
            cinder_tests::rados(
                &c.conf,
                &[
                    "-p",
                    &c.pool,
                    "setomapval",
                    "rbd_directory",
                    &key,
                    "--input-file",
                    file.to_str().unwrap(),
                ],
            );
            std::fs::remove_file(file).unwrap();
        }
    };

    // A trash move cut between removing the id object and the directory entry.
    let a = c.image("half-trashed");
    c.driver.create_image(&a, &size(8 * MIB)).await.unwrap();
    let id = c.driver.image_info(&a).await.unwrap().id;
    rbd(&c.conf, &["trash", "mv", &a.to_string()]);
    dir_add(&a.name, &id);
    assert!(listed(a.name.clone()).await && !c.driver.exists(&a).await.unwrap());
    assert_eq!(
        c.driver
            .remove_image(&a, RemoveMode::TrashOnly, &OpCtl::new())
            .await
            .unwrap(),
        RemoveOutcome::Trashed {
            trash_id: id.clone()
        },
        "the trashed image is found"
    );
    assert!(!listed(a.name.clone()).await, "the dangling name is gone");
    c.driver
        .purge_trash(&c.pool, &id, &OpCtl::new())
        .await
        .expect("the trashed image is intact and purges");

    // A create cut before the id object was complete: the directory entry and header
    // exist, the id object does not.
    let b = c.image("half-made");
    c.driver.create_image(&b, &size(8 * MIB)).await.unwrap();
    let b_id = c.driver.image_info(&b).await.unwrap().id;
    cinder_tests::rados(
        &c.conf,
        &["-p", &c.pool, "rm", &format!("rbd_id.{}", b.name)],
    );
    assert!(listed(b.name.clone()).await && !c.driver.exists(&b).await.unwrap());
    assert_eq!(
        c.driver
            .remove_image(&b, RemoveMode::PurgeNow, &OpCtl::new())
            .await
            .unwrap(),
        RemoveOutcome::AlreadyGone
    );
    assert!(!listed(b.name.clone()).await, "the half-made image is gone");
    let objects = String::from_utf8(cinder_tests::rados(&c.conf, &["-p", &c.pool, "ls"])).unwrap();
    assert!(
        !objects.lines().any(|o| o == format!("rbd_header.{b_id}")),
        "no header of the half-made image"
    );

    // A create cut between its id object and its directory entry: no name lists it and
    // no open finds it; its id object (and a header, had one been written) goes.
    let object_exists = |oid: String| {
        std::process::Command::new("rados")
            .args(["-c", &c.conf, "-p", &c.pool, "stat", &oid])
            .output()
            .unwrap()
            .status
            .success()
    };
    let put = |oid: String, data: &[u8]| {
        let path = std::env::temp_dir().join(cinder_tests::unique("obj"));
        std::fs::write(&path, data).unwrap();
        cinder_tests::rados(
            &c.conf,
            &["-p", &c.pool, "put", &oid, path.to_str().unwrap()],
        );
        std::fs::remove_file(path).unwrap();
    };
    let idbytes = |id: &str| {
        let mut v = (id.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(id.as_bytes());
        v
    };
    let d = c.image("cut-before-dir");
    let d_id = "0badc0ffee42";
    put(format!("rbd_id.{}", d.name), &idbytes(d_id));
    put(format!("rbd_object_map.{d_id}"), b"");
    assert!(!listed(d.name.clone()).await && !c.driver.exists(&d).await.unwrap());
    assert_eq!(
        c.driver
            .remove_image(&d, RemoveMode::PurgeNow, &OpCtl::new())
            .await
            .unwrap(),
        RemoveOutcome::AlreadyGone
    );
    for oid in [
        format!("rbd_id.{}", d.name),
        format!("rbd_header.{d_id}"),
        format!("rbd_object_map.{d_id}"),
    ] {
        assert!(!object_exists(oid.clone()), "{oid} left behind");
    }

    // A trash move cut after it added the trash entry, before it removed the id object
    // and the name: the image still opens by name; the move is finished, the trashed
    // image (its header) stays and purges.
    let e = c.image("cut-trash-move");
    c.driver.create_image(&e, &size(8 * MIB)).await.unwrap();
    let e_id = c.driver.image_info(&e).await.unwrap().id;
    rbd(&c.conf, &["trash", "mv", &e.to_string()]);
    put(format!("rbd_id.{}", e.name), &idbytes(&e_id));
    dir_add(&e.name, &e_id);
    assert!(listed(e.name.clone()).await && c.driver.exists(&e).await.unwrap());
    assert_eq!(
        c.driver
            .remove_image(&e, RemoveMode::TrashOnly, &OpCtl::new())
            .await
            .unwrap(),
        RemoveOutcome::Trashed {
            trash_id: e_id.clone()
        }
    );
    assert!(!object_exists(format!("rbd_id.{}", e.name)));
    assert!(!listed(e.name.clone()).await, "the name is gone");
    assert!(
        object_exists(format!("rbd_header.{e_id}")),
        "the trashed image keeps its header"
    );
    // A trash move cut before it set the entry's state back from `moving` (librbd
    // refuses to remove such an entry, EUCLEAN): set so here through the `rbd` class
    // (Debian's python3-rados), then purged.
    let script = format!(
        "import rados,struct\n\
         c=rados.Rados(conffile='{conf}'); c.connect(); io=c.open_ioctx('{pool}')\n\
         i=b'{id}'\n\
         io.execute('rbd_trash','rbd','trash_state_set',struct.pack('<I',len(i))+i+bytes([1,0]))\n",
        conf = c.conf,
        pool = c.pool,
        id = e_id
    );
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .expect("Debian's python3 with python3-rados sets a trash state");
    assert!(
        out.status.success(),
        "setting the trash entry moving: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = std::process::Command::new("rbd")
        .args(["-c", &c.conf, "trash", "rm", "-p", &c.pool, &e_id])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "librbd removes a moving entry: the case is not made"
    );
    c.driver
        .purge_trash(&c.pool, &e_id, &OpCtl::new())
        .await
        .expect("the trashed image, left moving, is set back and purges");
    assert!(
        !c.driver
            .trash_list(&c.pool)
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == e_id),
        "the trash entry is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_goes_through_the_trash_in_every_mode() {
    let c = ceph().await;
    // Purge now.
    let a = c.image("rm-now");
    c.driver.create_image(&a, &size(8 * MIB)).await.unwrap();
    c.driver.write(&a, 0, random_bytes(1, 4096)).await.unwrap();
    assert_eq!(
        c.driver
            .remove_image(&a, RemoveMode::PurgeNow, &OpCtl::new())
            .await
            .unwrap(),
        RemoveOutcome::Purged
    );
    assert!(!c.driver.exists(&a).await.unwrap());
    assert!(!c
        .driver
        .trash_list(&c.pool)
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == a.name));

    // Trash only, then our own purge.
    let b = c.image("rm-trash");
    c.driver.create_image(&b, &size(8 * MIB)).await.unwrap();
    let RemoveOutcome::Trashed { trash_id } = c
        .driver
        .remove_image(&b, RemoveMode::TrashOnly, &OpCtl::new())
        .await
        .unwrap()
    else {
        panic!("expected Trashed");
    };
    assert!(!c.driver.exists(&b).await.unwrap());
    // A redelivered remove finds the trash entry again.
    let again = c
        .driver
        .remove_image(&b, RemoveMode::TrashOnly, &OpCtl::new())
        .await
        .unwrap();
    assert_eq!(
        again,
        RemoveOutcome::Trashed {
            trash_id: trash_id.clone()
        }
    );
    c.driver
        .purge_trash(&c.pool, &trash_id, &OpCtl::new())
        .await
        .unwrap();
    c.driver
        .purge_trash(&c.pool, &trash_id, &OpCtl::new())
        .await
        .expect("purging a gone entry succeeds");
    assert!(!c
        .driver
        .trash_list(&c.pool)
        .await
        .unwrap()
        .iter()
        .any(|t| t.id == trash_id));

    // Queued with the mgr.
    let q = c.image("rm-queued");
    c.driver.create_image(&q, &size(8 * MIB)).await.unwrap();
    let RemoveOutcome::PurgeQueued { trash_id, task_id } = c
        .driver
        .remove_image(&q, RemoveMode::QueuePurge, &OpCtl::new())
        .await
        .unwrap()
    else {
        panic!("expected PurgeQueued");
    };
    assert!(!task_id.is_empty());
    let (d, pool) = (&c.driver, &c.pool);
    wait_until("the mgr to purge the trash entry", 60, || async {
        !d.trash_list(pool)
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == trash_id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_refuses_images_with_snapshots_or_watchers_and_leaves_them() {
    let c = ceph().await;
    let img = c.image("rm-refuse");
    c.driver.create_image(&img, &size(8 * MIB)).await.unwrap();
    c.driver.create_snapshot(&img.snap("s1")).await.unwrap();
    let e = c
        .driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HasDependents, "{e}");
    assert!(c.driver.exists(&img).await.unwrap());
    c.driver
        .remove_snapshot(&img.snap("s1"), &OpCtl::new())
        .await
        .unwrap();

    // Another client holding the image open (as a hypervisor would).
    let mut watcher = std::process::Command::new("rbd")
        .args(["-c", &c.conf, "watch", &img.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run rbd watch");
    let (d, spec) = (&c.driver, &img);
    wait_until("rbd watch to register", 20, || async {
        !d.watchers(spec).await.unwrap().is_empty()
    })
    .await;
    let e = c
        .driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(e.to_string().contains("in use by"), "{e}");
    assert!(c.driver.exists(&img).await.unwrap());
    // `rbd watch` ends (and unwatches) on a newline.
    use std::io::Write;
    watcher.stdin.take().unwrap().write_all(b"\n").unwrap();
    watcher.wait().unwrap();
    wait_until("the watch to go", 60, || async {
        d.watchers(spec).await.unwrap().is_empty()
    })
    .await;
    c.driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_idempotent_and_rollback_restores_data() {
    let c = ceph().await;
    let img = c.image("snap");
    c.driver.create_image(&img, &size(8 * MIB)).await.unwrap();
    let before = random_bytes(7, 64 * 1024);
    c.driver.write(&img, MIB, before.clone()).await.unwrap();
    let s1 = img.snap("s1");
    c.driver.create_snapshot(&s1).await.unwrap();
    c.driver
        .create_snapshot(&s1)
        .await
        .expect("a repeated snapshot create succeeds");
    let snaps = c.driver.list_snapshots(&img).await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        (snaps[0].name.as_str(), snaps[0].size, &snaps[0].namespace),
        ("s1", 8 * MIB, &SnapNamespace::User)
    );

    c.driver
        .write(&img, MIB, random_bytes(8, 64 * 1024))
        .await
        .unwrap();
    crate::fixtures::assert_same(
        &c.driver
            .read(&img, Some("s1"), MIB, before.len())
            .await
            .unwrap(),
        &before,
        "the snapshot keeps the old data",
    );
    let (progress, rx) = Progress::channel();
    c.driver
        .rollback_to_snapshot(&s1, &OpCtl::new().with_progress(progress))
        .await
        .unwrap();
    assert!(rx.borrow().total > 0, "rollback reports progress");
    crate::fixtures::assert_same(
        &c.driver.read(&img, None, MIB, before.len()).await.unwrap(),
        &before,
        "rolled back",
    );

    c.driver.protect_snapshot(&s1).await.unwrap();
    c.driver
        .protect_snapshot(&s1)
        .await
        .expect("protecting twice succeeds");
    assert!(c.driver.list_snapshots(&img).await.unwrap()[0].protected);
    let e = c
        .driver
        .remove_snapshot(&s1, &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Busy,
        "a protected snapshot is never removed implicitly: {e}"
    );
    c.driver.unprotect_snapshot(&s1).await.unwrap();
    c.driver
        .unprotect_snapshot(&s1)
        .await
        .expect("unprotecting twice succeeds");
    c.driver.remove_snapshot(&s1, &OpCtl::new()).await.unwrap();
    c.driver
        .remove_snapshot(&s1, &OpCtl::new())
        .await
        .expect("removing twice succeeds");
    assert!(c.driver.list_snapshots(&img).await.unwrap().is_empty());
    c.driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

/// A Glance-style image: `<pool>/<id>` with a protected snapshot `snap`, made with the CLI
/// the way glance_store does it.
fn glance_image(conf: &str, spec: &ImageSpec, data_mib: u64) {
    rbd(
        conf,
        &[
            "create",
            "--size",
            "64M",
            "--object-size",
            "8M",
            &spec.to_string(),
        ],
    );
    if data_mib > 0 {
        rbd(
            conf,
            &[
                "bench",
                "--io-type",
                "write",
                "--io-size",
                "4M",
                "--io-total",
                &format!("{data_mib}M"),
                "--io-pattern",
                "seq",
                &spec.to_string(),
            ],
        );
    }
    rbd(conf, &["snap", "create", &format!("{spec}@snap")]);
    rbd(conf, &["snap", "protect", &format!("{spec}@snap")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_cross_pools_and_depth_counts_every_parent_kind() {
    let c = ceph().await;
    let glance = c.glance_image();
    let conf = c.conf.clone();
    let g = glance.clone();
    tokio::task::spawn_blocking(move || glance_image(&conf, &g, 8))
        .await
        .unwrap();

    // Volume from image: cross-pool clone of images/<id>@snap.
    let v1 = c.image("from-glance");
    c.driver
        .clone_image(&glance.snap("snap"), &v1, &CloneOptions::default())
        .await
        .unwrap();
    c.driver
        .clone_image(&glance.snap("snap"), &v1, &CloneOptions::default())
        .await
        .expect("a repeated clone succeeds");
    let p = c.driver.parent(&v1).await.unwrap().expect("a parent");
    assert_eq!(
        (p.pool.as_str(), p.image.as_str(), p.snap.as_str()),
        (c.images_pool.as_str(), glance.name.as_str(), "snap")
    );
    let kids = c.driver.children(&glance.snap("snap")).await.unwrap();
    assert!(kids.iter().any(|k| k.image == v1.name && k.pool == c.pool));
    assert_eq!(
        c.driver.image_info(&v1).await.unwrap().order,
        23,
        "a clone keeps its parent's object size"
    );

    // Volume from a snapshot of that volume, then from a snapshot of that one.
    c.driver.create_snapshot(&v1.snap("s")).await.unwrap();
    let v2 = c.image("depth2");
    c.driver
        .clone_image(&v1.snap("s"), &v2, &CloneOptions::default())
        .await
        .unwrap();
    c.driver.create_snapshot(&v2.snap("s")).await.unwrap();
    let v3 = c.image("depth3");
    c.driver
        .clone_image(&v2.snap("s"), &v3, &CloneOptions::default())
        .await
        .unwrap();
    assert_eq!(c.driver.clone_depth(&glance).await.unwrap(), 0);
    assert_eq!(c.driver.clone_depth(&v1).await.unwrap(), 1);
    assert_eq!(
        c.driver.clone_depth(&v3).await.unwrap(),
        3,
        "Glance image, volume and snapshot parents all count"
    );

    // A clone with another parent under the same name is a conflict, not success.
    let e = c
        .driver
        .clone_image(&v1.snap("s"), &v3, &CloneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    // Flatten cuts the chain; the data stays.
    let before = c.driver.read(&v3, None, 0, 4096).await.unwrap();
    c.driver.flatten(&v3, &OpCtl::new()).await.unwrap();
    c.driver
        .flatten(&v3, &OpCtl::new())
        .await
        .expect("flattening a flat image succeeds");
    assert_eq!(c.driver.clone_depth(&v3).await.unwrap(), 0);
    crate::fixtures::assert_same(
        &c.driver.read(&v3, None, 0, 4096).await.unwrap(),
        &before,
        "flattened data",
    );

    // Glance's snapshot is never touched: it is still protected.
    let gs = c.driver.list_snapshots(&glance).await.unwrap();
    assert!(gs.iter().any(|s| s.name == "snap" && s.protected));

    for v in [&v3, &v2, &v1] {
        c.purge(v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_with_clones_waits_in_the_trash_until_they_go() {
    let c = ceph().await;
    let parent = c.image("trash-parent");
    c.driver
        .create_image(&parent, &size(8 * MIB))
        .await
        .unwrap();
    let data = random_bytes(3, 8192);
    c.driver.write(&parent, 0, data.clone()).await.unwrap();
    c.driver.create_snapshot(&parent.snap("s")).await.unwrap();
    let child = c.image("trash-child");
    c.driver
        .clone_image(&parent.snap("s"), &child, &CloneOptions::default())
        .await
        .unwrap();

    // Clone v2: removing the snapshot with a clone moves it to the trash namespace.
    c.driver
        .remove_snapshot(&parent.snap("s"), &OpCtl::new())
        .await
        .unwrap();
    let snaps = c.driver.list_snapshots(&parent).await.unwrap();
    assert!(
        matches!(&snaps[..], [s] if matches!(&s.namespace, SnapNamespace::Trash { original_name } if original_name == "s")),
        "{snaps:?}"
    );
    let e = c
        .driver
        .remove_trashed_snapshot(&parent, snaps[0].id)
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Busy | ErrorKind::HasDependents),
        "{e}"
    );

    // Deleting the parent does not block on a flatten: it waits in the trash.
    let out = c
        .driver
        .remove_image(&parent, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
    let RemoveOutcome::Trashed { trash_id } = out else {
        panic!("expected Trashed, got {out:?}")
    };
    crate::fixtures::assert_same(
        &c.driver.read(&child, None, 0, data.len()).await.unwrap(),
        &data,
        "the clone still reads its parent's data",
    );
    let p = c.driver.parent(&child).await.unwrap().unwrap();
    assert!(p.in_trash);

    // Once the clone is flattened the trashed parent can be purged.
    c.driver.flatten(&child, &OpCtl::new()).await.unwrap();
    c.driver
        .purge_trash(&c.pool, &trash_id, &OpCtl::new())
        .await
        .unwrap();
    assert!(!c
        .driver
        .trash_list(&c.pool)
        .await
        .unwrap()
        .iter()
        .any(|t| t.id == trash_id));
    crate::fixtures::assert_same(
        &c.driver.read(&child, None, 0, data.len()).await.unwrap(),
        &data,
        "flattened clone data",
    );
    c.driver
        .remove_image(&child, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flatten_cancelled_midway_keeps_the_parent() {
    let c = ceph().await;
    let (parent, child) = big_clone(c, 256).await;
    let (progress, mut rx) = Progress::channel();
    let ctl = OpCtl::new().with_progress(progress);
    let cancel = ctl.cancel.clone();
    let canceller = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            if rx.borrow().done >= 1 {
                cancel.cancel();
                return *rx.borrow();
            }
        }
        panic!("no progress reported");
    });
    let e = c.driver.flatten(&child, &ctl).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    let seen = canceller.await.unwrap();
    assert!(seen.total > seen.done, "cancelled midway: {seen:?}");
    let p = c.driver.parent(&child).await.unwrap();
    assert!(
        p.is_some(),
        "a cancelled flatten leaves the clone with its parent"
    );
    // The clone still works and a new flatten completes.
    c.driver.flatten(&child, &OpCtl::new()).await.unwrap();
    assert!(c.driver.parent(&child).await.unwrap().is_none());
    drop_clone(&c.driver, &parent, &child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flatten_queued_with_the_mgr_completes_on_its_own() {
    let c = ceph().await;
    let (parent, child) = big_clone(c, 16).await;
    let task = c.driver.queue_flatten(&child).await.unwrap();
    assert!(!task.is_empty());
    let (d, ch) = (&c.driver, &child);
    wait_until("the mgr flatten", 60, || async {
        d.parent(ch).await.unwrap().is_none()
    })
    .await;
    drop_clone(&c.driver, &parent, &child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_lane_keeps_one_object_operation_in_flight_per_osd_unless_told() {
    let c = ceph().await;
    // The dev cluster has one OSD: one operation at once for all long work, while a
    // flatten still asks for Ceph's ten per operation (the throttle holds the rest).
    assert_eq!(c.driver.long_lane_budget().await.unwrap(), (1, 10));
    let mut config = cinder_tests::driver_config(&c.conf, &c.pool);
    config.long_op_objects_in_flight = 6;
    config.rbd_concurrent_management_ops = 3;
    let told = RbdDriver::connect(config).await.unwrap();
    assert_eq!(told.long_lane_budget().await.unwrap(), (6, 3));
    // Long work runs under the budget: a clone flattened on the long lane has its data.
    let (parent, child) = big_clone(c, 16).await;
    told.flatten(&child, &OpCtl::new()).await.unwrap();
    assert!(told.parent(&child).await.unwrap().is_none());
    crate::fixtures::assert_same(
        &told.read(&child, None, 0, 4096).await.unwrap(),
        &told.read(&parent, None, 0, 4096).await.unwrap(),
        "flattened data",
    );
    drop(told);
    drop_clone(&c.driver, &parent, &child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_facts_come_from_one_connection() {
    let c = ceph().await;
    let fsid = String::from_utf8(cinder_tests::ceph(&c.conf, &["fsid"])).unwrap();
    assert_eq!(c.driver.fsid(), fsid.trim());
    let mons = c.driver.mon_addrs().await.unwrap();
    assert_eq!(mons.len(), 1);
    assert_eq!(mons[0].host, "127.0.0.1");
    assert_eq!(c.driver.mon_addrs().await.unwrap(), mons, "cached");

    let img = c.image("usage");
    c.driver.create_image(&img, &size(16 * MIB)).await.unwrap();
    c.driver
        .write(&img, 0, random_bytes(5, 4 * MIB as usize))
        .await
        .unwrap();
    let (d, pool) = (&c.driver, &c.pool);
    // `df` lags the writes by a few seconds (PG stats).
    wait_until("df to count the write", 30, || async {
        d.pool_usage(pool).await.unwrap().stored_bytes >= 4 * MIB
    })
    .await;
    let u = c.driver.pool_usage(&c.pool).await.unwrap();
    assert!(u.max_avail_bytes > 0);
    assert_eq!(u.quota_max_bytes, 0);
    cinder_tests::ceph(
        &c.conf,
        &[
            "osd",
            "pool",
            "set-quota",
            &c.images_pool,
            "max_bytes",
            "1073741824",
        ],
    );
    assert_eq!(
        c.driver
            .pool_usage(&c.images_pool)
            .await
            .unwrap()
            .quota_max_bytes,
        1 << 30
    );
    cinder_tests::ceph(
        &c.conf,
        &["osd", "pool", "set-quota", &c.images_pool, "max_bytes", "0"],
    );
    c.driver
        .remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_with_a_wrong_pool_or_conf_fails_clearly() {
    let c = ceph().await;
    let e = RbdDriver::connect(cinder_tests::driver_config(&c.conf, "no-such-pool"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("no-such-pool"), "{e}");
    let e = RbdDriver::connect(cinder_tests::driver_config("/nonexistent/ceph.conf", "rbd"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("/nonexistent/ceph.conf"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_copy_has_the_data_and_a_cancelled_one_leaves_nothing() {
    let c = ceph().await;
    let (parent, child) = big_clone(c, 256).await;
    let copy = c.image("copy");
    let (progress, rx) = Progress::channel();
    c.driver
        .copy_image(
            &child,
            None,
            &copy,
            &CloneOptions::default(),
            &OpCtl::new().with_progress(progress),
        )
        .await
        .unwrap();
    assert!(rx.borrow().total > 0, "copy reports progress");
    assert!(
        c.driver.parent(&copy).await.unwrap().is_none(),
        "a copy is flat"
    );
    for off in [0, 100 * MIB, 252 * MIB] {
        crate::fixtures::assert_same(
            &c.driver.read(&copy, None, off, 4096).await.unwrap(),
            &c.driver.read(&child, None, off, 4096).await.unwrap(),
            "copied data",
        );
    }
    let e = c
        .driver
        .copy_image(&child, None, &copy, &CloneOptions::default(), &OpCtl::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    let cancelled = c.image("copy-cancelled");
    let (progress, mut rx) = Progress::channel();
    let ctl = OpCtl::new().with_progress(progress);
    let cancel = ctl.cancel.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            if rx.borrow().done >= 1 {
                cancel.cancel();
                return;
            }
        }
    });
    let e = c
        .driver
        .copy_image(&child, None, &cancelled, &CloneOptions::default(), &ctl)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(
        !c.driver.exists(&cancelled).await.unwrap(),
        "no half-made copy left"
    );
    c.purge(&copy).await;
    drop_clone(&c.driver, &parent, &child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_can_keep_their_data_in_another_pool() {
    let c = ceph().await;
    let img = c.image("datapool");
    let opts = CreateOptions {
        size: 8 * MIB,
        data_pool: Some(c.images_pool.clone()),
        ..Default::default()
    };
    c.driver.create_image(&img, &opts).await.unwrap();
    let info = c.driver.image_info(&img).await.unwrap();
    assert_ne!(info.features & (1 << 7), 0, "the data-pool feature is set");
    let data = random_bytes(77, 8192);
    c.driver.write(&img, 0, data.clone()).await.unwrap();
    crate::fixtures::assert_same(
        &c.driver.read(&img, None, 0, 8192).await.unwrap(),
        &data,
        "data-pool image data",
    );
    c.purge(&img).await;
}
