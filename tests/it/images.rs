//! Volumes and a real Glance (`GLANCE_URL`, images in the dev cluster's `images` pool)
//! through our API: copy-on-write clones of raw images, downloads of other formats,
//! image metadata, the refusals that reserve nothing, and Nova's direct snapshot.

use std::time::{Duration, Instant};

use rbd_driver::{CloneOptions, CreateOptions, ImageSpec, OpCtl};
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{Stack, ADMIN, ALICE};
use crate::fixtures::*;

const MIB: usize = 1 << 20;
const GIB: u64 = 1 << 30;

/// `n` bytes of a deterministic pattern (no zero 4 KiB block).
fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut v = cinder_tests::Rng(seed | 1).bytes(n);
    for b in v.iter_mut().step_by(4096) {
        *b |= 1;
    }
    v
}

/// Reads `len` bytes of volume `id` from offset 0, from the stack's pool.
async fn volume_bytes(s: &Stack, id: &str, len: usize) -> Vec<u8> {
    let c = ceph().await;
    c.driver
        .read(
            &ImageSpec::new(&s.pool, format!("volume-{id}")),
            None,
            0,
            len,
        )
        .await
        .unwrap()
}

async fn parent_of(s: &Stack, id: &str) -> Option<rbd_driver::ParentInfo> {
    let c = ceph().await;
    c.driver
        .parent(&ImageSpec::new(&s.pool, format!("volume-{id}")))
        .await
        .unwrap()
}

async fn create_from_image(s: &Stack, image_ref: &str, size: u64) -> String {
    let r = s
        .api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": size, "imageRef": image_ref, "name": "boot"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["volume"]["id"].as_str().unwrap().to_string()
}

async fn action(s: &Stack, id: &str, body: Value) -> crate::api::Resp {
    s.api
        .post(&format!("/v3/volumes/{id}/action"), ALICE, body)
        .await
}

/// Deletes `kind` (`volumes`, `snapshots`) `ids` through the API, each gone before the
/// next.
async fn delete_all(api: &crate::api::Api, kind: &str, ids: &[&String]) {
    for id in ids {
        let path = format!("/v3/{kind}/{id}");
        assert_eq!(api.delete(&path, ALICE).await.status, 202, "{path}");
        api.wait_gone(ALICE, &path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raw_image_in_rbd_makes_a_copy_on_write_clone_that_keeps_its_metadata_and_holds_the_image(
) {
    let c = ceph().await;
    let g = Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    let data = pattern(12, 4 * MIB);
    let name = cinder_tests::unique("raw");
    let image = g
        .upload(
            &name,
            "raw",
            data.clone(),
            json!({"os_distro": "debian", "hw_disk_bus": "scsi"}),
        )
        .await;
    let meta = g.get(&image).await;
    let location = format!("rbd://{}/images/{image}/snap", c.driver.fsid());
    assert_eq!(meta["direct_url"], location.as_str(), "{meta}");

    // By id, as Nova sends it; and by URL, as a client may.
    let id = create_from_image(&s, &image, 1).await;
    let v = s.api.wait_volume(ALICE, &id, "available").await;
    assert_eq!(v["bootable"], "true", "{v}");
    let im = &v["volume_image_metadata"];
    assert_eq!(im["image_id"], image.as_str(), "{v}");
    assert_eq!(im["image_name"], name.as_str());
    assert_eq!(im["disk_format"], "raw");
    assert_eq!(im["container_format"], "bare");
    assert_eq!(im["size"], (4 * MIB).to_string());
    assert_eq!(im["os_distro"], "debian");
    assert_eq!(im["hw_disk_bus"], "scsi");
    assert_eq!(im["checksum"], meta["checksum"]);
    let p = parent_of(&s, &id).await.expect("a clone");
    assert_eq!(
        (p.pool.as_str(), p.image.as_str(), p.snap.as_str()),
        ("images", image.as_str(), "snap")
    );
    // Admins see the clone parent (what keeps Glance from deleting the image).
    let r = s.api.get(&format!("/v3/volumes/{id}"), ADMIN).await;
    assert_eq!(
        r.body["volume"]["os-vol-rbd-attr:parent"],
        format!("images/{image}@snap"),
        "{}",
        r.body
    );
    assert!(
        v.get("os-vol-rbd-attr:parent").is_none(),
        "not for members: {v}"
    );
    let info = c
        .driver
        .image_info(&ImageSpec::new(&s.pool, format!("volume-{id}")))
        .await
        .unwrap();
    assert_eq!(info.size, GIB, "grown to the volume's size");
    assert_eq!(
        volume_bytes(&s, &id, 4 * MIB).await,
        data,
        "the image's bytes"
    );

    // Image metadata actions.
    let r = action(&s, &id, json!({"os-show_image_metadata": {}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["image_id"], image.as_str());
    let r = action(
        &s,
        &id,
        json!({"os-set_image_metadata": {"metadata": {"hw_qemu_guest_agent": "yes"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["hw_qemu_guest_agent"], "yes");
    assert_eq!(
        r.body["metadata"]["os_distro"], "debian",
        "merged, not replaced"
    );
    let r = action(
        &s,
        &id,
        json!({"os-unset_image_metadata": {"key": "hw_disk_bus"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = action(
        &s,
        &id,
        json!({"os-unset_image_metadata": {"key": "hw_disk_bus"}}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Glance metadata for volume/snapshot {id} cannot be found.")
    );
    let r = action(
        &s,
        &id,
        json!({"os-set_image_metadata": {"metadata": {"bad key!": "x"}}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Snapshots, volumes made from them and clones keep the image metadata.
    let r = s
        .api
        .post(
            "/v3/snapshots",
            ALICE,
            json!({"snapshot": {"volume_id": id}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    s.api.wait_snapshot(ALICE, &snap, "available").await;
    let r = s
        .api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"snapshot_id": snap}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let from_snap = r.body["volume"]["id"].as_str().unwrap().to_string();
    let r = s
        .api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"source_volid": id}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let cloned = r.body["volume"]["id"].as_str().unwrap().to_string();
    for v in [&from_snap, &cloned] {
        let d = s.api.wait_volume(ALICE, v, "available").await;
        assert_eq!(d["bootable"], "true", "{d}");
        assert_eq!(
            d["volume_image_metadata"]["image_id"],
            image.as_str(),
            "{d}"
        );
        assert_eq!(
            d["volume_image_metadata"]["hw_qemu_guest_agent"], "yes",
            "{d}"
        );
        assert!(
            d["volume_image_metadata"].get("hw_disk_bus").is_none(),
            "{d}"
        );
        assert_eq!(volume_bytes(&s, v, 4 * MIB).await, data);
    }
    // In the detailed list too.
    let r = s.api.get("/v3/volumes/detail", ALICE).await;
    let listed = r.body["volumes"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .all(|v| v["volume_image_metadata"]["image_id"] == image.as_str()));

    // Glance refuses to delete the image while clones of it exist.
    assert_eq!(g.delete(&image).await, 409);
    assert_eq!(g.get(&image).await["status"], "active");
    delete_all(&s.api, "volumes", &[&from_snap, &cloned]).await;
    delete_all(&s.api, "snapshots", &[&snap]).await;
    assert_eq!(
        g.delete(&image).await,
        409,
        "the first volume still holds it"
    );
    delete_all(&s.api, "volumes", &[&id]).await;
    // Its image metadata went with it (soft-deleted in the same transaction).
    for v in [&id, &from_snap, &cloned] {
        let left =
            s.db.image_metadata(cinder_db::ImageMetadataOf::Volume(v))
                .await
                .unwrap();
        assert!(left.is_empty(), "{v}: {left:?}");
    }
    let left =
        s.db.image_metadata(cinder_db::ImageMetadataOf::Snapshot(&snap))
            .await
            .unwrap();
    assert!(left.is_empty(), "snapshot {snap}: {left:?}");
    g.delete_eventually(&image).await;
    s.down().await;
}

/// A qcow2 file of a `disk`-byte disk holding `data` at its start, made by qemu-img.
fn qcow2_of(data: &[u8], disk: u64) -> Vec<u8> {
    let dir = std::env::temp_dir().join(cinder_tests::unique("qcow2"));
    std::fs::create_dir_all(&dir).unwrap();
    let raw = dir.join("disk.raw");
    let qcow = dir.join("disk.qcow2");
    {
        let f = std::fs::File::create(&raw).unwrap();
        f.set_len(disk).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(data, 0).unwrap();
    }
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&qcow).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_qcow2_image_is_downloaded_and_converted_while_the_volume_reads_downloading() {
    let c = ceph().await;
    let g = Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    // A qcow2 of 96 MiB of data at the start of a 256 MiB disk, made by qemu-img.
    let data = pattern(34, 96 * MIB);
    let image = g
        .upload(
            &cinder_tests::unique("qcow"),
            "qcow2",
            qcow2_of(&data, 256 * MIB as u64),
            json!({}),
        )
        .await;
    assert_eq!(g.get(&image).await["virtual_size"], 256 * MIB as u64);

    let id = create_from_image(&s, &image, 1).await;
    // The status, read straight from the database as often as it can be.
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = s.db.volume(&id).await.unwrap().status.as_str().to_string();
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == "available" || st == "error" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {st} after 120 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("available"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s == "downloading"),
        "the download path: {seen:?}"
    );
    assert_eq!(parent_of(&s, &id).await, None, "a download, not a clone");
    let v = s.api.wait_volume(ALICE, &id, "available").await;
    assert_eq!(v["bootable"], "true");
    assert_eq!(v["volume_image_metadata"]["disk_format"], "qcow2");
    let got = volume_bytes(&s, &id, 128 * MIB).await;
    assert!(got[..96 * MIB] == data[..], "the data, converted to raw");
    assert!(
        got[96 * MIB..].iter().all(|b| *b == 0),
        "zeroes after the data"
    );
    delete_all(&s.api, "volumes", &[&id]).await;
    assert_eq!(
        g.delete(&image).await,
        204,
        "a download holds nothing of the image"
    );
    s.down().await;
}

/// Makes `images/<id>` of `size` bytes (sparse, `data` at 0) with a protected `snap`
/// through librbd and registers it in Glance by location, as Nova's direct snapshot
/// does; returns the image id.
async fn image_by_location(g: &Glance, size: u64, data: &[u8], name: &str) -> String {
    let c = ceph().await;
    let image = g
        .create(json!({"name": name, "disk_format": "raw", "container_format": "bare"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let spec = ImageSpec::new("images", &image);
    let opts = CreateOptions {
        size,
        ..Default::default()
    };
    c.driver.create_image(&spec, &opts).await.unwrap();
    if !data.is_empty() {
        c.driver.write(&spec, 0, data.to_vec()).await.unwrap();
    }
    c.driver.create_snapshot(&spec.snap("snap")).await.unwrap();
    c.driver.protect_snapshot(&spec.snap("snap")).await.unwrap();
    g.add_location(
        &image,
        &format!("rbd://{}/images/{image}/snap", c.driver.fsid()),
    )
    .await;
    assert_eq!(g.get(&image).await["status"], "active");
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_references_and_images_that_cannot_serve_are_refused_before_anything_is_reserved() {
    let c = ceph().await;
    let g = Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    let small = pattern(5, MIB);
    let ok = g
        .upload(&cinder_tests::unique("ok"), "raw", small.clone(), json!({}))
        .await;
    let dup = cinder_tests::unique("twin");
    let twin_a = g.upload(&dup, "raw", small.clone(), json!({})).await;
    let twin_b = g.upload(&dup, "raw", small.clone(), json!({})).await;
    let deactivated = g
        .upload(
            &cinder_tests::unique("off"),
            "raw",
            small.clone(),
            json!({}),
        )
        .await;
    g.deactivate(&deactivated).await;
    let min_disk = g
        .upload(
            &cinder_tests::unique("big-min"),
            "raw",
            small.clone(),
            json!({"min_disk": 5}),
        )
        .await;
    let large = image_by_location(&g, 2 * GIB, &[], &cinder_tests::unique("large")).await;
    assert_eq!(g.get(&large).await["size"], 2 * GIB);

    let before = (s.state_of("p1").await, s.images().await);
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(&str, Value, u16, String)> = vec![
        ("unknown id", json!({"size": 1, "imageRef": unknown}), 400,
         "Invalid image identifier or unable to access requested image.".into()),
        ("unknown name", json!({"size": 1, "imageRef": "no-such-image-name"}), 400,
         "Invalid image identifier or unable to access requested image.".into()),
        ("ambiguous name", json!({"size": 1, "imageRef": dup}), 409,
         format!("Multiple matches found for '{dup}', use an ID to be more specific.")),
        ("deactivated", json!({"size": 1, "imageRef": deactivated}), 400,
         format!("Invalid input received: Image {deactivated} is not active.")),
        ("min_disk above the size", json!({"size": 1, "imageRef": min_disk}), 400,
         "Invalid input received: Volume size 1GB cannot be smaller than the image minDisk size 5GB.".into()),
        ("image larger than the volume", json!({"size": 1, "imageRef": large}), 400,
         "Invalid input received: Size of specified image 2GB is larger than volume size 1GB.".into()),
        ("no size", json!({"imageRef": ok}), 400, "needs a size".into()),
        ("two sources", json!({"size": 1, "imageRef": ok, "source_volid": unknown}), 400,
         "May specify only one of".into()),
    ];
    for (case, vol, status, message) in &cases {
        let r = s
            .api
            .post("/v3/volumes", ALICE, json!({"volume": vol}))
            .await;
        assert_eq!(r.status, *status, "{case}: {}", r.body);
        let fault = r
            .body
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or_default();
        assert_eq!(fault["code"], *status, "{case}: {}", r.body);
        assert!(
            fault["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message.as_str()),
            "{case}: {}",
            r.body
        );
    }
    assert_eq!(
        (s.state_of("p1").await, s.images().await),
        before,
        "nothing reserved or made"
    );
    // The same image, by name and by URL, is fine.
    let by_url = create_from_image(&s, &format!("{}/v2/images/{ok}", g.url), 1).await;
    let v = s.api.wait_volume(ALICE, &by_url, "available").await;
    assert_eq!(v["volume_image_metadata"]["image_id"], ok.as_str());
    // The image's volume type applies when the request names none.
    let r = s
        .api
        .post(
            "/v3/types",
            ADMIN,
            json!({"volume_type": {"name": "from-image"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let typed = g
        .upload(
            &cinder_tests::unique("typed"),
            "raw",
            small.clone(),
            json!({"cinder_img_volume_type": "from-image"}),
        )
        .await;
    let tv = create_from_image(&s, &typed, 1).await;
    let v = s.api.wait_volume(ALICE, &tv, "available").await;
    assert_eq!(v["volume_type"], "from-image", "{v}");
    let r = s
        .api
        .call(
            Method::GET,
            &format!("/v3/volumes/{tv}"),
            ALICE,
            Some("3.0"),
            None,
        )
        .await;
    assert_eq!(
        r.body["volume"]["volume_image_metadata"]["cinder_img_volume_type"],
        "from-image"
    );
    // The clones first, then every image (the test Glance outlives the run).
    delete_all(&s.api, "volumes", &[&by_url, &tv]).await;
    for i in [
        &ok,
        &twin_a,
        &twin_b,
        &deactivated,
        &min_disk,
        &large,
        &typed,
    ] {
        g.delete_eventually(i).await;
    }
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_made_as_novas_direct_snapshot_makes_clones() {
    let c = ceph().await;
    let g = Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    // A server's disk in the volumes pool, as Nova's RBD image backend keeps it.
    let data = pattern(77, 2 * MIB);
    let disk = ImageSpec::new(&s.pool, cinder_tests::unique("instance-disk"));
    let opts = CreateOptions {
        size: GIB,
        ..Default::default()
    };
    c.driver.create_image(&disk, &opts).await.unwrap();
    c.driver.write(&disk, 0, data.clone()).await.unwrap();
    // Nova's direct snapshot: temporary snapshot, protect, clone into the images pool,
    // flatten, drop the temporary snapshot, `snap` + protect, location to Glance.
    let image = g
        .create(json!({"name": cinder_tests::unique("nova-snap"), "disk_format": "raw", "container_format": "bare"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let temp = disk.snap(uuid::Uuid::new_v4().simple().to_string());
    c.driver.create_snapshot(&temp).await.unwrap();
    c.driver.protect_snapshot(&temp).await.unwrap();
    let target = ImageSpec::new("images", &image);
    c.driver
        .clone_image(&temp, &target, &CloneOptions::default())
        .await
        .unwrap();
    c.driver.flatten(&target, &OpCtl::new()).await.unwrap();
    c.driver.unprotect_snapshot(&temp).await.unwrap();
    c.driver
        .remove_snapshot(&temp, &OpCtl::new())
        .await
        .unwrap();
    c.driver
        .create_snapshot(&target.snap("snap"))
        .await
        .unwrap();
    c.driver
        .protect_snapshot(&target.snap("snap"))
        .await
        .unwrap();
    g.add_location(
        &image,
        &format!("rbd://{}/images/{image}/snap", c.driver.fsid()),
    )
    .await;
    assert_eq!(g.get(&image).await["status"], "active");

    let id = create_from_image(&s, &image, 1).await;
    s.api.wait_volume(ALICE, &id, "available").await;
    let p = parent_of(&s, &id).await.expect("a clone");
    assert_eq!(
        (p.pool.as_str(), p.image.as_str(), p.snap.as_str()),
        ("images", image.as_str(), "snap")
    );
    assert_eq!(volume_bytes(&s, &id, 2 * MIB).await, data);
    delete_all(&s.api, "volumes", &[&id]).await;
    g.delete_eventually(&image).await;
    c.driver
        .remove_image(&disk, rbd_driver::RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
    s.down().await;
}

/// `md5sum` of `data` (Glance's `checksum`).
fn md5_of(data: &[u8]) -> String {
    let path = std::env::temp_dir().join(cinder_tests::unique("md5"));
    std::fs::write(&path, data).unwrap();
    let out = std::process::Command::new("md5sum")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}

async fn upload(s: &Stack, id: &str, name: &str, disk_format: &str) -> Value {
    let r = s
        .api
        .call(
            Method::POST,
            &format!("/v3/volumes/{id}/action"),
            ALICE,
            Some("3.1"),
            Some(json!({"os-volume_upload_image": {
                "image_name": name, "disk_format": disk_format, "container_format": "bare",
                "visibility": "private", "protected": false}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["os-volume_upload_image"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volume_uploads_as_a_raw_copy_in_glances_pool_or_as_converted_qcow2_data() {
    let c = ceph().await;
    let g = Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    let r = s
        .api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 1, "name": "src"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    s.api.wait_volume(ALICE, &id, "available").await;
    let spec = ImageSpec::new(&s.pool, format!("volume-{id}"));
    let (head, far) = (pattern(91, 4 * MIB), pattern(92, MIB));
    c.driver.write(&spec, 0, head.clone()).await.unwrap();
    c.driver.write(&spec, 512 << 20, far.clone()).await.unwrap();
    // What a volume made from the image must hold, region by region.
    let check = |got_head: Vec<u8>, got_far: Vec<u8>, what: &str| {
        assert!(got_head == head, "{what}: the first 4 MiB");
        assert!(got_far == far, "{what}: the MiB at 512 MiB");
    };

    // Raw: a flattened copy in Glance's pool, registered by location.
    let name = cinder_tests::unique("up-raw");
    let u = upload(&s, &id, &name, "raw").await;
    assert_eq!(u["id"], id.as_str());
    assert_eq!(u["status"], "uploading");
    assert_eq!(u["image_name"], name.as_str());
    assert_eq!(
        (u["disk_format"].as_str(), u["container_format"].as_str()),
        (Some("raw"), Some("bare"))
    );
    assert_eq!(
        (u["visibility"].as_str(), u["protected"].as_bool()),
        (Some("private"), Some(false))
    );
    assert!(u["volume_type"]["name"].is_string(), "the type object: {u}");
    let image = u["image_id"].as_str().unwrap().to_string();
    s.api.wait_volume(ALICE, &id, "available").await;
    let meta = g.get(&image).await;
    assert_eq!(meta["status"], "active", "{meta}");
    assert_eq!(meta["size"], GIB);
    let location = format!("rbd://{}/images/{image}/snap", c.driver.fsid());
    assert_eq!(
        meta["locations"][0]["url"],
        location.as_str(),
        "the direct path: {meta}"
    );
    let copy = ImageSpec::new("images", &image);
    assert_eq!(c.driver.parent(&copy).await.unwrap(), None, "flattened");
    check(
        c.driver
            .read(&copy, Some("snap"), 0, 4 * MIB)
            .await
            .unwrap(),
        c.driver
            .read(&copy, Some("snap"), 512 << 20, MIB)
            .await
            .unwrap(),
        "the image copy",
    );
    let from_raw = create_from_image(&s, &image, 1).await;
    s.api.wait_volume(ALICE, &from_raw, "available").await;
    let p = parent_of(&s, &from_raw).await.expect("a clone again");
    assert_eq!(
        (p.pool.as_str(), p.image.as_str(), p.snap.as_str()),
        ("images", image.as_str(), "snap")
    );
    let vspec = ImageSpec::new(&s.pool, format!("volume-{from_raw}"));
    check(
        c.driver.read(&vspec, None, 0, 4 * MIB).await.unwrap(),
        c.driver.read(&vspec, None, 512 << 20, MIB).await.unwrap(),
        "the volume from the raw upload",
    );

    // qcow2: the data, converted, with Glance's checksum over what arrived.
    let name = cinder_tests::unique("up-qcow2");
    let u = upload(&s, &id, &name, "qcow2").await;
    let qimage = u["image_id"].as_str().unwrap().to_string();
    s.api.wait_volume(ALICE, &id, "available").await;
    let meta = g.get(&qimage).await;
    assert_eq!(meta["status"], "active", "{meta}");
    assert_eq!(meta["disk_format"], "qcow2");
    assert_eq!(meta["virtual_size"], GIB, "{meta}");
    let data = g.data(&qimage).await;
    assert!(
        data.len() < 16 * MIB,
        "a sparse qcow2: {} bytes",
        data.len()
    );
    assert_eq!(
        meta["checksum"],
        md5_of(&data).as_str(),
        "Glance's checksum of the upload"
    );
    let dir = std::env::temp_dir().join(cinder_tests::unique("qcow2-back"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("i.qcow2"), &data).unwrap();
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(dir.join("i.qcow2"))
        .arg(dir.join("i.raw"))
        .status()
        .unwrap();
    assert!(st.success());
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(dir.join("i.raw")).unwrap();
        let (mut h, mut x) = (vec![0u8; 4 * MIB], vec![0u8; MIB]);
        f.read_exact_at(&mut h, 0).unwrap();
        f.read_exact_at(&mut x, 512 << 20).unwrap();
        check(h, x, "the qcow2 image, converted back");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let from_qcow = create_from_image(&s, &qimage, 1).await;
    s.api.wait_volume(ALICE, &from_qcow, "available").await;
    assert_eq!(parent_of(&s, &from_qcow).await, None, "downloaded");
    let vspec = ImageSpec::new(&s.pool, format!("volume-{from_qcow}"));
    check(
        c.driver.read(&vspec, None, 0, 4 * MIB).await.unwrap(),
        c.driver.read(&vspec, None, 512 << 20, MIB).await.unwrap(),
        "the volume from the qcow2 upload",
    );
    let r = s.api.get_v("/v3/messages", ALICE, "3.3").await;
    assert_eq!(r.body["messages"], json!([]), "no failure: {}", r.body);

    // Refusals: a volume that is not available (reserved for a server), a format
    // Cinder does not know, visibility before 3.1; none changes the volume.
    let att = s.api.reserve(ALICE, &id).await;
    let r = s
        .api
        .post(
            &format!("/v3/volumes/{id}/action"),
            ALICE,
            json!({"os-volume_upload_image": {"image_name": "x", "force": true}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Invalid volume: Volume {id} status must be available"),
        "force is ignored without enable_force_upload"
    );
    s.api.wait_volume(ALICE, &id, "reserved").await;
    // Public images are for admins to make (Cinder's upload_public policy): refused
    // before the volume's status is even looked at, and no image is made.
    let public = cinder_tests::unique("public");
    let r = s
        .api
        .call(
            Method::POST,
            &format!("/v3/volumes/{id}/action"),
            ALICE,
            Some("3.1"),
            Some(json!({"os-volume_upload_image": {"image_name": public, "visibility": "public"}})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Policy doesn't allow volume_extension:volume_actions:upload_public to be performed."
    );
    assert_eq!(g.named(&public).await, Vec::<Value>::new());
    s.api.wait_volume(ALICE, &id, "reserved").await;
    s.api.unreserve(ALICE, &att).await;
    s.api.wait_volume(ALICE, &id, "available").await;
    let r = s
        .api
        .post(
            &format!("/v3/volumes/{id}/action"),
            ALICE,
            json!({"os-volume_upload_image": {"image_name": "x", "disk_format": "iso"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s
        .api
        .post(
            &format!("/v3/volumes/{id}/action"),
            ALICE,
            json!({"os-volume_upload_image": {"image_name": "x", "visibility": "public"}}),
        )
        .await;
    assert_eq!(r.status, 400, "visibility needs 3.1: {}", r.body);
    delete_all(&s.api, "volumes", &[&from_raw, &from_qcow, &id]).await;
    assert_eq!(g.delete(&qimage).await, 204);
    g.delete_eventually(&image).await;
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn novas_calls_for_a_volume_backed_server_work_as_nova_sends_them() {
    let c = ceph().await;
    let g = Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    let api = &s.api;
    let image = g
        .upload(
            &cinder_tests::unique("nova"),
            "raw",
            pattern(8, MIB),
            json!({"hw_disk_bus": "virtio"}),
        )
        .await;
    // nova/virt/block_device.py through cinderclient at 3.0: every field, nulls
    // included.
    let r = api
        .call(
            Method::POST,
            "/v3/volumes",
            ALICE,
            Some("3.0"),
            Some(
                json!({"volume": {"size": 1, "consistencygroup_id": null, "snapshot_id": null,
                                   "name": "", "description": "", "volume_type": null,
                                   "availability_zone": null, "metadata": {},
                                   "imageRef": image, "source_volid": null, "backup_id": null}}),
            ),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = api.wait_volume(ALICE, &id, "available").await;
    // Nova reads the image metadata of a boot volume (block_device.py).
    assert_eq!(v["volume_image_metadata"]["image_id"], image.as_str());
    assert_eq!(v["volume_image_metadata"]["hw_disk_bus"], "virtio");
    let r = api.get_v(&format!("/v3/volumes/{id}"), ALICE, "3.48").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Attachments at 3.44: reserve, connect, complete.
    let att = api.reserve(ALICE, &id).await;
    let connector = json!({"host": "compute-1", "ip": "192.0.2.10", "initiator": "iqn.x",
                           "platform": "x86_64", "os_type": "linux", "multipath": false,
                           "do_local_attach": false, "mountpoint": "/dev/vda"});
    let r = api
        .call(
            Method::PUT,
            &format!("/v3/attachments/{att}"),
            ALICE,
            Some("3.44"),
            Some(json!({"attachment": {"connector": connector}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // What nova/virt/libvirt/volume/net.py reads.
    let ci = &r.body["attachment"]["connection_info"];
    assert_eq!(ci["driver_volume_type"], "rbd", "{ci}");
    assert_eq!(ci["name"], format!("{}/volume-{id}", s.pool));
    assert!(
        !ci["hosts"].as_array().unwrap().is_empty() && ci["ports"].is_array(),
        "{ci}"
    );
    assert!(
        ci["ports"].as_array().unwrap().iter().all(Value::is_string),
        "{ci}"
    );
    assert!(
        ci["auth_enabled"].is_boolean() && ci["secret_type"] == "ceph",
        "{ci}"
    );
    assert_eq!(ci["access_mode"], "rw");
    assert_eq!(ci["discard"], true);
    assert_eq!(ci["volume_id"], id.as_str());
    let r = api
        .call(
            Method::POST,
            &format!("/v3/attachments/{att}/action"),
            ALICE,
            Some("3.44"),
            Some(json!({"os-complete": null})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    api.wait_volume(ALICE, &id, "in-use").await;

    // A server snapshot of a volume-backed server: force=true at 3.0.
    let r = api
        .call(
            Method::POST,
            "/v3/snapshots",
            ALICE,
            Some("3.0"),
            Some(json!({"snapshot": {"volume_id": id, "force": true,
                                       "name": "snapshot for boot", "description": "",
                                       "metadata": {}}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    api.wait_snapshot(ALICE, &snap, "available").await;
    // Without force at 3.65: refused for an in-use volume.
    let r = api
        .call(
            Method::POST,
            "/v3/snapshots",
            ALICE,
            Some("3.65"),
            Some(json!({"snapshot": {"volume_id": id}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!(
            "Invalid volume: Volume {id} status must be available, but current status is: in-use."
        )
    );
    // From 3.66 force=false is refused in Cinder's words; force=true is ignored.
    let r = api
        .call(
            Method::POST,
            "/v3/snapshots",
            ALICE,
            Some("3.66"),
            Some(json!({"snapshot": {"volume_id": id, "force": false}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored."
    );
    let r = api
        .call(
            Method::POST,
            "/v3/snapshots",
            ALICE,
            Some("3.66"),
            Some(json!({"snapshot": {"volume_id": id, "force": true}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap2 = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    api.wait_snapshot(ALICE, &snap2, "available").await;
    // The server snapshot's volume (Nova's image of it, at 3.46+, is a volume from it)
    // keeps the image metadata.
    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"snapshot_id": snap}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let copy = r.body["volume"]["id"].as_str().unwrap().to_string();
    let d = api.wait_volume(ALICE, &copy, "available").await;
    assert_eq!(d["volume_image_metadata"]["hw_disk_bus"], "virtio", "{d}");

    // Detach: attachment delete at 3.44.
    api.unreserve(ALICE, &att).await;
    api.wait_volume(ALICE, &id, "available").await;
    delete_all(api, "snapshots", &[&snap, &snap2]).await;
    delete_all(api, "volumes", &[&copy, &id]).await;
    g.delete_eventually(&image).await;
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reimage_replaces_a_volumes_data_and_image_metadata_from_3_68() {
    let c = ceph().await;
    let g = Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    let api = &s.api;
    let (old_data, new_data) = (pattern(21, 2 * MIB), pattern(22, MIB));
    let old = g
        .upload(
            &cinder_tests::unique("old"),
            "raw",
            old_data.clone(),
            json!({"os_distro": "old"}),
        )
        .await;
    let new = g
        .upload(
            &cinder_tests::unique("new"),
            "raw",
            new_data.clone(),
            json!({"os_distro": "new"}),
        )
        .await;
    let id = create_from_image(&s, &old, 1).await;
    api.wait_volume(ALICE, &id, "available").await;
    let path = format!("/v3/volumes/{id}/action");
    let body = json!({"os-reimage": {"image_id": new}});
    let r = api
        .call(Method::POST, &path, ALICE, Some("3.67"), Some(body.clone()))
        .await;
    assert_eq!(r.status, 404, "before 3.68: {}", r.body);
    let r = api
        .call(
            Method::POST,
            &path,
            ALICE,
            Some("3.68"),
            Some(json!({"os-reimage": {"image_id": uuid::Uuid::new_v4().to_string()}})),
        )
        .await;
    assert_eq!(r.status, 404, "an unknown image: {}", r.body);
    let r = api
        .call(Method::POST, &path, ALICE, Some("3.68"), Some(body.clone()))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = api.wait_volume(ALICE, &id, "available").await;
    assert_eq!(v["volume_image_metadata"]["image_id"], new.as_str(), "{v}");
    assert_eq!(v["volume_image_metadata"]["os_distro"], "new");
    let got = volume_bytes(&s, &id, 2 * MIB).await;
    assert!(got[..MIB] == new_data[..], "the new image's data");
    assert!(
        got[MIB..].iter().all(|b| *b == 0),
        "nothing of the old image after it"
    );
    // A reserved volume needs reimage_reserved.
    let att = api.reserve(ALICE, &id).await;
    let r = api
        .call(Method::POST, &path, ALICE, Some("3.68"), Some(body.clone()))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Invalid volume: Volume {id} status must be available or error, but current status is reserved.")
    );
    let r = api
        .call(
            Method::POST,
            &path,
            ALICE,
            Some("3.68"),
            Some(json!({"os-reimage": {"image_id": old, "reimage_reserved": true}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = api.wait_volume(ALICE, &id, "reserved").await;
    assert_eq!(v["volume_image_metadata"]["image_id"], old.as_str(), "{v}");
    assert_eq!(volume_bytes(&s, &id, 2 * MIB).await, old_data);
    api.unreserve(ALICE, &att).await;
    api.wait_volume(ALICE, &id, "available").await;
    assert_eq!(
        api.delete(&format!("/v3/volumes/{id}"), ALICE).await.status,
        202
    );
    api.wait_gone(ALICE, &format!("/v3/volumes/{id}")).await;
    for i in [&old, &new] {
        g.delete_eventually(i).await;
    }
    s.down().await;
}

/// Against a Glance that checks Keystone tokens, every call made on the caller's behalf
/// carries the caller's token, as Cinder's context does: the API's lookup of the
/// `imageRef`, the volume service's download, the API's creation of the upload's image
/// and the volume service's upload of the data. Without it each would be a 401. Another
/// project's token cannot see the image (400, as for an unknown one), and the uploaded
/// image belongs to the caller's project.
#[tokio::test(flavor = "multi_thread")]
async fn a_keystone_protected_glance_is_called_with_the_callers_token() {
    use crate::api::{keystone_api_extra, Keystone};
    let c = ceph().await;
    let ks = Keystone::connect().await;
    let gurl = glance_keystone_url();
    let (alice, pa) = ks.member("img-alice", None, "member").await;
    let (bob, pb) = ks.member("img-bob", None, "member").await;
    // Tokens of the test Keystone live 30 s: a fresh one for each step.
    let tok_a = || async { ks.token(&alice, &pa).await.id };
    let extra = format!(
        "{}[glance]\napi_servers = \"{gurl}\"\n",
        keystone_api_extra(&ks, 0)
    );
    let s = Stack::build(c, &extra, &ks.admin().await, Some(&gurl)).await;

    // Alice's image (a qcow2, so the volume service downloads it), hers alone.
    let data = pattern(61, 8 * MIB);
    let g = Glance::at(&gurl).with_token(&tok_a().await);
    let image = g
        .upload(
            &cinder_tests::unique("ks-qcow"),
            "qcow2",
            qcow2_of(&data, 64 * MIB as u64),
            json!({}),
        )
        .await;
    let shown = g.get(&image).await;
    assert_eq!(shown["owner"], pa.as_str(), "{shown}");
    assert_ne!(shown["visibility"], "public", "{shown}");
    let anonymous = reqwest::Client::new()
        .get(format!("{gurl}/v2/images/{image}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(anonymous, 401, "this Glance wants a token");

    let create = |tok: String| {
        let (api, body) = (&s.api, json!({"volume": {"size": 1, "imageRef": image}}));
        async move {
            api.call(Method::POST, "/v3/volumes", &tok, None, Some(body))
                .await
        }
    };
    // Bob cannot see it: refused as an unknown image, before anything is reserved.
    let r = create(ks.token(&bob, &pb).await.id).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid image identifier or unable to access requested image."
    );

    // Alice's volume from it: looked up by the API, downloaded by the volume service.
    let tok = tok_a().await;
    let r = create(tok.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = s.api.wait_volume(&tok, &id, "available").await;
    assert_eq!(
        v["volume_image_metadata"]["image_id"],
        image.as_str(),
        "{v}"
    );
    assert!(parent_of(&s, &id).await.is_none(), "a download");
    assert!(
        volume_bytes(&s, &id, 8 * MIB).await == data,
        "the image's data"
    );

    // Uploaded back as qcow2: the API creates the image, the volume service sends the
    // data; the image is Alice's project's.
    let tok = tok_a().await;
    let r = s
        .api
        .call(
            Method::POST,
            &format!("/v3/volumes/{id}/action"),
            &tok,
            None,
            Some(json!({"os-volume_upload_image": {
                "image_name": cinder_tests::unique("ks-up"), "disk_format": "qcow2"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let up = r.body["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = wait_for("the uploaded image to be active", 120, || async {
        let i = Glance::at(&gurl).with_token(&tok_a().await).get(&up).await;
        match i["status"].as_str() {
            Some("active") => Ok(i),
            Some("killed") | Some("deleted") => panic!("the upload failed: {i}"),
            _ => Err(i.to_string()),
        }
    })
    .await;
    assert_eq!(shown["owner"], pa.as_str(), "{shown}");
    assert_eq!(shown["disk_format"], "qcow2", "{shown}");
    let tok = tok_a().await;
    s.api.wait_volume(&tok, &id, "available").await;
    let r = s.api.get_v("/v3/messages", &tok, "3.3").await;
    assert_eq!(r.body["messages"], json!([]), "no failure: {}", r.body);

    let r = s.api.delete(&format!("/v3/volumes/{id}"), &tok).await;
    assert_eq!(r.status, 202, "{}", r.body);
    s.api.wait_gone(&tok, &format!("/v3/volumes/{id}")).await;
    let g = Glance::at(&gurl).with_token(&tok_a().await);
    for i in [&image, &up] {
        assert_eq!(g.delete(i).await, 204);
    }
    s.down().await;
}
