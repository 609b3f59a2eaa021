//! Backups through the API against the real services: the API, a scheduler, a volume
//! service and a backup service, the volumes on a pool of their own, the base images on
//! a backup pool of their own (this cluster, or the second dev cluster), driven over
//! HTTP and with the real `openstack` client, checked byte for byte on the images.

use cinder_tests::{create_pool, delete_pool, unique, Rng};
use rbd_driver::{ImageSpec, RbdDriver};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::{client, Api, Stack, ADMIN, ALICE, BOB};
use crate::fixtures::{ceph, wait_for, InProcess};

const GIB: u64 = 1 << 30;
const MIB: usize = 1 << 20;

/// Writes `count` random chunks of up to `max_len` bytes at random offsets below
/// `limit`; returns the bytes written.
async fn scribble(
    d: &RbdDriver,
    spec: &ImageSpec,
    rng: &mut Rng,
    count: usize,
    max_len: usize,
    from: u64,
    limit: u64,
) -> u64 {
    let mut total = 0;
    for _ in 0..count {
        let len = 1 + (rng.next_u64() as usize % max_len);
        let off = from + rng.next_u64() % (limit - from - len as u64);
        d.write(spec, off, rng.bytes(len)).await.unwrap();
        total += len as u64;
    }
    total
}

/// SHA-256 of the first `size` bytes of `spec` (at `snap`), read in 4 MiB pieces.
async fn sha(d: &RbdDriver, spec: &ImageSpec, snap: Option<&str>, size: u64) -> String {
    let mut h = Sha256::new();
    let mut off = 0;
    while off < size {
        let n = (size - off).min(4 * MIB as u64) as usize;
        let buf = d.read(spec, snap, off, n).await.unwrap();
        assert_eq!(buf.len(), n, "short read of {spec} at {off}");
        h.update(&buf);
        off += n as u64;
    }
    format!("{:x}", h.finalize())
}

/// Polls backup `id` until `want`; on `error` (unwanted) panics with its reason.
async fn wait_backup(api: &Api, token: &str, id: &str, want: &str) -> Value {
    wait_for(&format!("backup {id} to be {want}"), 120, || async {
        let r = api.get_v(&format!("/v3/backups/{id}"), token, "3.64").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let b = &r.body["backup"];
        let s = b["status"].as_str().unwrap_or("").to_string();
        if s == "error" && want != "error" {
            panic!("backup {id} went to error: {}", b["fail_reason"]);
        }
        if s == want {
            Ok(b.clone())
        } else {
            Err(format!("{s} {}", b["progress"]))
        }
    })
    .await
}

/// The `backup.*` snapshots of `spec`.
async fn backup_snaps(d: &RbdDriver, spec: &ImageSpec) -> Vec<String> {
    d.list_snapshots(spec)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .filter(|n| n.starts_with("backup."))
        .collect()
}

/// Waits until `spec` holds one `backup.*` snapshot (the trim runs after a backup is
/// available).
async fn trimmed_to_one(d: &RbdDriver, spec: &ImageSpec) {
    wait_for("the source snapshots to be trimmed", 30, || async {
        let left = backup_snaps(d, spec).await;
        if left.len() == 1 {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
}

/// A backup pool of the test's own, and a backup service in-process on it.
struct BackupSide {
    conf: String,
    pool: String,
    svc: InProcess,
    driver: RbdDriver,
}

impl BackupSide {
    async fn up(s: &Stack, conf: &str) -> BackupSide {
        let pool = unique("it-bk");
        let (c, p) = (conf.to_string(), pool.clone());
        tokio::task::spawn_blocking(move || create_pool(&c, &p))
            .await
            .unwrap();
        let (svc, host) = InProcess::backup(&s.db_url, conf, &pool, &s.conf, &s.pool).await;
        wait_backup_service(&s.api, &host).await;
        let cfg: rbd_driver::RbdConfig = serde_json::from_value(json!({
            "rbd_ceph_conf": conf, "rbd_user": "admin", "rbd_pool": pool,
        }))
        .unwrap();
        let driver = RbdDriver::connect(cfg).await.unwrap();
        BackupSide {
            conf: conf.to_string(),
            pool,
            svc,
            driver,
        }
    }

    async fn images(&self) -> Vec<String> {
        self.driver
            .list_images(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect()
    }

    async fn down(self) {
        self.svc.stop().await;
        drop(self.driver);
        let (c, p) = (self.conf, self.pool);
        tokio::task::spawn_blocking(move || delete_pool(&c, &p))
            .await
            .unwrap();
    }
}

/// Creates a backup through the API (`POST /backups`); returns its id.
async fn backup_via_api(api: &Api, token: &str, body: Value) -> String {
    let r = api
        .call(
            reqwest::Method::POST,
            "/v3/backups",
            token,
            Some("3.64"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let b = &r.body["backup"];
    assert_eq!(
        crate::api::keys_of(b),
        ["id", "links", "name"].map(String::from).into(),
        "a create answers the summary"
    );
    b["id"].as_str().unwrap().to_string()
}

/// The value of `key` in a client's `| key | value |` table.
fn table_value(out: &str, key: &str) -> String {
    out.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() >= 3 && cells[1] == key).then(|| cells[2].to_string())
        })
        .next()
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

/// Restores `backup` to a new volume; returns the volume's id once available.
async fn restore_new(api: &Api, token: &str, backup: &str) -> String {
    let r = api
        .post(
            &format!("/v3/backups/{backup}/restore"),
            token,
            json!({"restore": {}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.body["restore"]["volume_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["restore"]["backup_id"], json!(backup));
    assert_eq!(
        r.body["restore"]["volume_name"],
        json!(format!("restore_backup_{backup}"))
    );
    wait_for(&format!("the restore of {backup}"), 120, || async {
        let r = api.get(&format!("/v3/volumes/{v}"), token).await;
        match r.body["volume"]["status"].as_str() {
            Some("available") => Ok(()),
            Some(s @ ("error" | "error_restoring")) => {
                let b = api.get(&format!("/v3/backups/{backup}"), token).await;
                panic!("restore of {backup} ended {s}: {}", b.body)
            }
            s => Err(format!("{s:?}")),
        }
    })
    .await;
    wait_backup(api, token, backup, "available").await;
    v
}

/// The chain proof: a full backup and three incrementals with random writes between
/// them (one after the volume grew from 1 to 2 GiB), the full and the first incremental
/// through the real `openstack` client; every point restored to a new volume of that
/// point's size, byte-identical (SHA-256 of the whole volume) to the source at the time
/// of its backup; an older point restored onto a larger existing volume; incremental
/// streams sized by the change; one `backup.*` snapshot left on the source at a time;
/// a parent refused deletion while it has children; everything gone after the deletes
/// (no base image, no source snapshot, quota back to zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_and_three_incrementals_restore_every_point_byte_identical_through_the_api_and_the_openstack_client(
) {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let side = BackupSide::up(&s, &c.conf).await;
    let api = &s.api;
    let d = &c.driver;
    let mut rng = Rng(0x5eed_b0c4_0001);

    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 1, "name": "src"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &vol, "available").await;
    let spec = ImageSpec::new(&s.pool, format!("volume-{vol}"));

    // Point 0: 64 MiB in 16 random pieces, and a full backup with the openstack client.
    scribble(d, &spec, &mut rng, 16, 4 * MIB, 0, GIB).await;
    let mut points: Vec<(String, String, u64)> = Vec::new(); // (backup, sha, size)
    let sha0 = sha(d, &spec, None, GIB).await;
    let out = client(
        "openstack",
        api,
        "alice",
        "p1",
        &[
            "volume", "backup", "create", "--name", "full", "-f", "value", "-c", "id", &vol,
        ],
    )
    .await;
    let full = out.trim().to_string();
    let b = wait_backup(api, ALICE, &full, "available").await;
    assert_eq!(
        (
            &b["is_incremental"],
            &b["size"],
            &b["progress"],
            &b["name"],
            &b["has_dependent_backups"]
        ),
        (
            &json!(false),
            &json!(1),
            &json!("100%"),
            &json!("full"),
            &json!(false)
        ),
        "{b}"
    );
    points.push((full.clone(), sha0, GIB));
    api.wait_volume(ALICE, &vol, "available").await;

    // Point 1: small random writes, an incremental with the openstack client.
    let written1 = scribble(d, &spec, &mut rng, 24, 64 * 1024, 0, GIB).await;
    let sha1 = sha(d, &spec, None, GIB).await;
    let out = client(
        "openstack",
        api,
        "alice",
        "p1",
        &[
            "volume",
            "backup",
            "create",
            "--incremental",
            "--name",
            "inc1",
            "-f",
            "value",
            "-c",
            "id",
            &vol,
        ],
    )
    .await;
    let inc1 = out.trim().to_string();
    let b = wait_backup(api, ALICE, &inc1, "available").await;
    assert_eq!(b["is_incremental"], json!(true), "{b}");
    points.push((inc1.clone(), sha1, GIB));
    api.wait_volume(ALICE, &vol, "available").await;
    let full_doc = wait_backup(api, ALICE, &full, "available").await;
    assert_eq!(full_doc["has_dependent_backups"], json!(true));
    // The incremental moved about what changed, not the volume.
    let row = s.db.backup(&inc1).await.unwrap();
    let rec: Value = serde_json::from_str(row.service_metadata.as_deref().unwrap()).unwrap();
    let moved = rec["stream_bytes"].as_u64().unwrap();
    assert!(
        moved <= written1 + written1 / 20 + 64 * 1024 && moved >= 64 * 1024,
        "incremental stream of {moved} bytes for {written1} bytes written"
    );

    // Point 2: the volume grows to 2 GiB and is written on both sides of the old end.
    let r = api
        .post(
            &format!("/v3/volumes/{vol}/action"),
            ALICE,
            json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for("the extend", 60, || async {
        let v = api.get(&format!("/v3/volumes/{vol}"), ALICE).await;
        if v.body["volume"]["size"] == json!(2) && v.body["volume"]["status"] == "available" {
            Ok(())
        } else {
            Err(v.body["volume"]["status"].to_string())
        }
    })
    .await;
    scribble(
        d,
        &spec,
        &mut rng,
        8,
        256 * 1024,
        GIB - 8 * MIB as u64,
        GIB + 64 * MIB as u64,
    )
    .await;
    let sha2 = sha(d, &spec, None, 2 * GIB).await;
    let inc2 = backup_via_api(
        api,
        ALICE,
        json!({"backup": {"volume_id": vol, "incremental": true, "name": "inc2", "metadata": {"k": "v"}}}),
    )
    .await;
    let b = wait_backup(api, ALICE, &inc2, "available").await;
    assert_eq!(
        (&b["size"], &b["metadata"]),
        (&json!(2), &json!({"k": "v"})),
        "{b}"
    );
    points.push((inc2.clone(), sha2, 2 * GIB));
    api.wait_volume(ALICE, &vol, "available").await;

    // Point 3: overwrites and a discard of a written range.
    scribble(d, &spec, &mut rng, 16, 128 * 1024, 0, 2 * GIB).await;
    d.write(&spec, 0, vec![0u8; 4 * MIB]).await.unwrap();
    let sha3 = sha(d, &spec, None, 2 * GIB).await;
    let inc3 = backup_via_api(
        api,
        ALICE,
        json!({"backup": {"volume_id": vol, "incremental": true, "name": "inc3"}}),
    )
    .await;
    wait_backup(api, ALICE, &inc3, "available").await;
    points.push((inc3.clone(), sha3, 2 * GIB));
    api.wait_volume(ALICE, &vol, "available").await;

    // Only the snapshot the next incremental needs stays on the source.
    trimmed_to_one(d, &spec).await;
    let left = backup_snaps(d, &spec).await;
    assert!(
        left[0].starts_with(&format!("backup.{inc3}.snap.")),
        "{left:?}"
    );

    // Every point, restored to a new volume, is the source as it was.
    for (i, (backup, want, size)) in points.iter().enumerate() {
        let v = if i == 0 {
            // The cinder client (Debian's openstack 6.0 sends the same request but
            // cannot print its answer): a new volume named by the restore.
            let out = client(
                "cinder",
                api,
                "alice",
                "p1",
                &["backup-restore", "--name", "osc-restored", backup],
            )
            .await;
            let v = table_value(&out, "volume_id");
            api.wait_volume(ALICE, &v, "available").await;
            wait_backup(api, ALICE, backup, "available").await;
            let doc = api.get(&format!("/v3/volumes/{v}"), ALICE).await;
            assert_eq!(doc.body["volume"]["name"], json!("osc-restored"));
            v
        } else {
            restore_new(api, ALICE, backup).await
        };
        let doc = api.get(&format!("/v3/volumes/{v}"), ALICE).await;
        assert_eq!(
            doc.body["volume"]["size"],
            json!(size / GIB),
            "point {i} restores at its size"
        );
        let rs = ImageSpec::new(&s.pool, format!("volume-{v}"));
        assert_eq!(
            &sha(d, &rs, None, *size).await,
            want,
            "point {i} ({backup})"
        );
        assert!(
            d.list_snapshots(&rs).await.unwrap().is_empty(),
            "a restore leaves no snapshot on its volume"
        );
        if i == 3 {
            // An older, smaller point onto this larger existing volume: its data, then
            // zeroes.
            // The cinder client again, onto an existing volume.
            let out = client(
                "cinder",
                api,
                "alice",
                "p1",
                &["backup-restore", "--volume", &v, &points[1].0],
            )
            .await;
            assert_eq!(table_value(&out, "volume_id"), v);
            api.wait_volume(ALICE, &v, "available").await;
            assert_eq!(
                sha(d, &rs, None, GIB).await,
                points[1].1,
                "point 1 onto a 2 GiB volume"
            );
            let tail = d.read(&rs, None, GIB, 4 * MIB).await.unwrap();
            assert!(
                tail.iter().all(|b| *b == 0),
                "past the restored size it is zeroes"
            );
            let doc = api.get(&format!("/v3/volumes/{v}"), ALICE).await;
            assert_eq!(
                doc.body["volume"]["size"],
                json!(2),
                "the volume keeps its size"
            );
        }
        let r = api.delete(&format!("/v3/volumes/{v}"), ALICE).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }

    // Another project sees none of it; bad requests change nothing.
    let r = api.get(&format!("/v3/backups/{full}"), BOB).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        json!(format!("Backup {full} could not be found."))
    );
    let r = api.get("/v3/backups/detail", BOB).await;
    assert_eq!(r.body["backups"], json!([]), "{}", r.body);
    let r = api.get("/v3/backups", ALICE).await;
    assert_eq!(r.body["backups"].as_array().unwrap().len(), 4, "{}", r.body);
    let before = (
        s.db.usage("p1", "backups").await.unwrap().in_use,
        s.db.backups_of_volume(&vol).await.unwrap().len(),
    );
    for (body, code, text) in [
        (
            json!({"backup": {"volume_id": vol, "bogus": 1}}),
            400,
            "bogus",
        ),
        (
            json!({"backup": {"volume_id": vol, "metadata": {"k": "v"}}}),
            400,
            "metadata",
        ),
        (
            json!({"backup": {"volume_id": "no-such-volume"}}),
            404,
            "could not be found",
        ),
        (
            json!({"backup": {"volume_id": vol, "incremental": "maybe"}}),
            400,
            "maybe",
        ),
    ] {
        let r = api.post("/v3/backups", ALICE, body.clone()).await;
        assert_eq!(r.status, code, "{body}: {}", r.body);
        assert!(r.body.to_string().contains(text), "{body}: {}", r.body);
    }
    let r = api
        .post("/v3/backups", BOB, json!({"backup": {"volume_id": vol}}))
        .await;
    assert_eq!(r.status, 404, "another project's volume: {}", r.body);
    let r = api
        .post(
            &format!("/v3/backups/{full}/restore"),
            ALICE,
            json!({"restore": {"size": 1}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        (
            s.db.usage("p1", "backups").await.unwrap().in_use,
            s.db.backups_of_volume(&vol).await.unwrap().len()
        ),
        before,
        "refused requests change nothing"
    );

    // Export and import of a record (admins only).
    let r = api
        .get(&format!("/v3/backups/{full}/export_record"), ALICE)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api
        .get(&format!("/v3/backups/{full}/export_record"), ADMIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let record = r.body["backup-record"].clone();
    assert!(
        record["backup_url"].as_str().is_some_and(|u| !u.is_empty()),
        "{record}"
    );
    let r = api
        .post(
            "/v3/backups/import_record",
            ADMIN,
            json!({"backup-record": record}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["badRequest"]["message"]),
        (
            400,
            &json!("Invalid backup: Backup already exists in database.")
        ),
        "{}",
        r.body
    );
    let r = api
        .post(
            "/v3/backups/import_record",
            ADMIN,
            json!({"backup-record": {"backup_service": "x", "backup_url": "%%%"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // A parent is not deleted while it has children.
    let r = api.delete(&format!("/v3/backups/{full}"), ALICE).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        json!("Invalid backup: Incremental backups exist for this backup.")
    );
    let u = s.db.usage("p1", "backups").await.unwrap();
    assert_eq!(u.in_use, 4);
    for id in [&inc3, &inc2, &inc1, &full] {
        let r = api.delete(&format!("/v3/backups/{id}"), ALICE).await;
        assert_eq!(r.status, 202, "{}", r.body);
        api.wait_gone(ALICE, &format!("/v3/backups/{id}")).await;
    }
    assert!(
        backup_snaps(d, &spec).await.is_empty(),
        "no backup snapshot left on the source"
    );
    let base = format!("volume-{vol}.backup.{full}");
    assert!(
        !side.images().await.contains(&base),
        "the base image went with its last restore point"
    );
    let (u, g) = (
        s.db.usage("p1", "backups").await.unwrap(),
        s.db.usage("p1", "backup_gigabytes").await.unwrap(),
    );
    assert_eq!((u.in_use, g.in_use), (0, 0), "quota given back");
    side.down().await;
    s.down().await;
}

/// Bytes of `spec` held in objects (whole-object allocation, as `rbd du` counts it).
async fn allocated(d: &RbdDriver, spec: &ImageSpec) -> u64 {
    d.diff_extents(spec, None, None, true, &rbd_driver::OpCtl::new())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.exists)
        .map(|e| e.length)
        .sum()
}

/// Polls volume `id` until it leaves `busy`; returns its status.
async fn settled_volume(api: &Api, token: &str, id: &str, busy: &[&str]) -> String {
    wait_for(&format!("volume {id} to settle"), 120, || async {
        let r = api.get(&format!("/v3/volumes/{id}"), token).await;
        let s = r.body["volume"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if busy.contains(&s.as_str()) {
            Err(s)
        } else {
            Ok(s)
        }
    })
    .await
}

/// Backups on the second cluster (its own conf and pool): a sparse 4 GiB volume with
/// 20 MiB written restores byte-identical and stays sparse on both clusters; a backup of
/// a snapshot (incremental on the full) restores the snapshot's data, not the volume's
/// later writes; an in-use volume needs `force` and goes back to in-use; a source
/// snapshot or a base restore point removed out of band makes the next incremental fail
/// with a reason naming it (nothing left behind); a base image overwritten behind our
/// back makes the restore fail (`error_restoring`, the reason names the checksum), not
/// succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_on_the_second_cluster_stay_sparse_cover_snapshots_and_in_use_volumes_and_fail_with_a_reason_when_damaged(
) {
    let conf_b = std::env::var("CEPH_CONF_B").unwrap_or_else(|_| {
        panic!("CEPH_CONF_B is not set: run scripts/test.sh, or `export CEPH_CONF_B=$(scripts/ceph-dev.sh up /tmp/cinder-rs-ceph-b 6790)`")
    });
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let side = BackupSide::up(&s, &conf_b).await;
    let api = &s.api;
    let d = &c.driver;
    let mut rng = Rng(0x5eed_b0c4_0002);
    assert_ne!(
        side.driver.fsid(),
        d.fsid(),
        "the backups go to another cluster"
    );

    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 4, "name": "sparse"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &vol, "available").await;
    let spec = ImageSpec::new(&s.pool, format!("volume-{vol}"));
    for off in [
        0,
        GIB + 12345,
        2 * GIB - 4 * MIB as u64,
        3 * GIB + 7,
        4 * GIB - 4 * MIB as u64,
    ] {
        d.write(&spec, off, rng.bytes(4 * MIB)).await.unwrap();
    }
    let sha_full = sha(d, &spec, None, 4 * GIB).await;
    let full = backup_via_api(
        api,
        ALICE,
        json!({"backup": {"volume_id": vol, "name": "full"}}),
    )
    .await;
    wait_backup(api, ALICE, &full, "available").await;
    api.wait_volume(ALICE, &vol, "available").await;
    let base = ImageSpec::new(&side.pool, format!("volume-{vol}.backup.{full}"));
    let on_b = allocated(&side.driver, &base).await;
    assert!(
        on_b <= 40 * MIB as u64,
        "the base image on the second cluster holds {on_b} bytes"
    );
    let restored = restore_new(api, ALICE, &full).await;
    let rs = ImageSpec::new(&s.pool, format!("volume-{restored}"));
    assert_eq!(
        sha(d, &rs, None, 4 * GIB).await,
        sha_full,
        "the sparse volume restores byte-identical"
    );
    let held = allocated(d, &rs).await;
    assert!(
        held <= 40 * MIB as u64,
        "the restored volume stays sparse: {held} bytes held"
    );
    assert_eq!(
        api.delete(&format!("/v3/volumes/{restored}"), ALICE)
            .await
            .status,
        202
    );

    // A backup of a snapshot: the snapshot's data, incremental on the full.
    let r = api
        .post(
            "/v3/snapshots",
            ALICE,
            json!({"snapshot": {"volume_id": vol, "name": "s1"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    api.wait_snapshot(ALICE, &snap, "available").await;
    d.write(&spec, 5 * MIB as u64, rng.bytes(MIB))
        .await
        .unwrap();
    let sha_snap = sha(d, &spec, Some(&format!("snapshot-{snap}")), 4 * GIB).await;
    let of_snap = backup_via_api(
        api,
        ALICE,
        json!({"backup": {"volume_id": vol, "snapshot_id": snap, "incremental": true}}),
    )
    .await;
    let b = wait_backup(api, ALICE, &of_snap, "available").await;
    assert_eq!(
        (&b["snapshot_id"], &b["is_incremental"]),
        (&json!(snap), &json!(true)),
        "{b}"
    );
    api.wait_snapshot(ALICE, &snap, "available").await;
    let restored = restore_new(api, ALICE, &of_snap).await;
    let rs = ImageSpec::new(&s.pool, format!("volume-{restored}"));
    assert_eq!(
        sha(d, &rs, None, 4 * GIB).await,
        sha_snap,
        "the snapshot's data"
    );
    assert_eq!(
        api.delete(&format!("/v3/volumes/{restored}"), ALICE)
            .await
            .status,
        202
    );

    // In use (attached as Nova attaches): refused without force, done with it, back
    // to in-use.
    let server = uuid::Uuid::new_v4().to_string();
    let r = api
        .call(
            reqwest::Method::POST,
            "/v3/attachments",
            ALICE,
            Some("3.44"),
            Some(
                json!({"attachment": {"volume_uuid": vol, "instance_uuid": server,
                "connector": {"host": "compute-1", "ip": "127.0.0.1", "platform": "x86_64",
                              "os_type": "linux", "multipath": false}}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            reqwest::Method::POST,
            &format!("/v3/attachments/{att}/action"),
            ALICE,
            Some("3.44"),
            Some(json!({"os-complete": null})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    api.wait_volume(ALICE, &vol, "in-use").await;
    let r = api
        .post("/v3/backups", ALICE, json!({"backup": {"volume_id": vol}}))
        .await;
    assert_eq!(
        (r.status, &r.body["badRequest"]["message"]),
        (
            400,
            &json!("Invalid volume: Backing up an in-use volume must use the force flag.")
        ),
        "{}",
        r.body
    );
    let forced = backup_via_api(
        api,
        ALICE,
        json!({"backup": {"volume_id": vol, "force": true, "incremental": true}}),
    )
    .await;
    wait_backup(api, ALICE, &forced, "available").await;
    api.wait_volume(ALICE, &vol, "in-use").await;
    api.unreserve(ALICE, &att).await;
    api.wait_volume(ALICE, &vol, "available").await;

    // The source snapshot the next incremental needs, removed out of band.
    trimmed_to_one(d, &spec).await;
    let needed = backup_snaps(d, &spec).await;
    assert!(
        needed[0].starts_with(&format!("backup.{forced}.")),
        "{needed:?}"
    );
    d.remove_snapshot(&spec.snap(&needed[0]), &rbd_driver::OpCtl::new())
        .await
        .unwrap();
    let broken = backup_via_api(
        api,
        ALICE,
        json!({"backup": {"volume_id": vol, "incremental": true}}),
    )
    .await;
    let b = wait_backup(api, ALICE, &broken, "error").await;
    let reason = b["fail_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains(&needed[0]) && reason.contains("take a full backup"),
        "{reason}"
    );
    assert_eq!(
        settled_volume(api, ALICE, &vol, &["backing-up"]).await,
        "available"
    );
    assert!(
        backup_snaps(d, &spec).await.is_empty(),
        "a refused incremental leaves no snapshot"
    );
    assert_eq!(
        api.delete(&format!("/v3/backups/{broken}"), ALICE)
            .await
            .status,
        202
    );
    api.wait_gone(ALICE, &format!("/v3/backups/{broken}")).await;

    // A new full backup; its restore point removed out of band on the backup cluster.
    let full2 = backup_via_api(api, ALICE, json!({"backup": {"volume_id": vol}})).await;
    wait_backup(api, ALICE, &full2, "available").await;
    api.wait_volume(ALICE, &vol, "available").await;
    let base2 = ImageSpec::new(&side.pool, format!("volume-{vol}.backup.{full2}"));
    let points = side.driver.list_snapshots(&base2).await.unwrap();
    assert_eq!(points.len(), 1);
    side.driver
        .remove_snapshot(&base2.snap(&points[0].name), &rbd_driver::OpCtl::new())
        .await
        .unwrap();
    let broken = backup_via_api(
        api,
        ALICE,
        json!({"backup": {"volume_id": vol, "incremental": true}}),
    )
    .await;
    let b = wait_backup(api, ALICE, &broken, "error").await;
    let reason = b["fail_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("restore point") && reason.contains(&points[0].name),
        "{reason}"
    );
    assert_eq!(
        settled_volume(api, ALICE, &vol, &["backing-up"]).await,
        "available"
    );

    // A new chain's base image overwritten behind our back (object 0, without a
    // snapshot context: the restore point reads the damage): its restore fails.
    let full3 = backup_via_api(api, ALICE, json!({"backup": {"volume_id": vol}})).await;
    wait_backup(api, ALICE, &full3, "available").await;
    api.wait_volume(ALICE, &vol, "available").await;
    let base3 = ImageSpec::new(&side.pool, format!("volume-{vol}.backup.{full3}"));
    let id_out = cinder_tests::rbd(&conf_b, &["info", "--format", "json", &base3.to_string()]);
    let id: Value = serde_json::from_slice(&id_out).unwrap();
    let object = format!("rbd_data.{}.{:016x}", id["id"].as_str().unwrap(), 0);
    let garbage = std::env::temp_dir().join(unique("garbage"));
    let junk = rng.bytes(4096);
    std::fs::write(&garbage, &junk).unwrap();
    cinder_tests::rados(
        &conf_b,
        &["-p", &side.pool, "put", &object, garbage.to_str().unwrap()],
    );
    std::fs::remove_file(&garbage).unwrap();
    let point = side.driver.list_snapshots(&base3).await.unwrap()[0]
        .name
        .clone();
    let seen = side
        .driver
        .read(&base3, Some(&point), 0, 4096)
        .await
        .unwrap();
    assert!(
        seen == junk,
        "the damage shows at the restore point {point}"
    );
    let r = api
        .post(
            &format!("/v3/backups/{full3}/restore"),
            ALICE,
            json!({"restore": {}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let target = r.body["restore"]["volume_id"].as_str().unwrap().to_string();
    // The backup is `restoring` from the answer on, until the restore ended.
    let b = wait_backup(api, ALICE, &full3, "available").await;
    let reason = b["fail_reason"].as_str().unwrap_or("");
    assert!(reason.contains("checksum"), "{reason}");
    let st = settled_volume(api, ALICE, &target, &["creating", "restoring-backup"]).await;
    assert_eq!(st, "error_restoring", "a damaged backup does not restore");

    // A backed-up volume is deleted with the snapshot its backups kept on it.
    trimmed_to_one(d, &spec).await;
    let r = api
        .delete(&format!("/v3/volumes/{vol}?cascade=true"), ALICE)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(ALICE, &format!("/v3/volumes/{vol}")).await;

    side.down().await;
    s.down().await;
}

/// The `cinder-backup` binary next to this test's executable (`target/<profile>/`).
fn backup_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("cinder-backup");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test --workspace` builds it (cinder-backup has an integration test); \
         alone, run `cargo build -p cinder-backup` first",
        bin.display()
    );
    bin
}

/// The service process; killed if the test ends early.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_backup(config: &std::path::Path, log: &std::path::Path) -> Proc {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        std::process::Command::new(backup_binary())
            .arg("--config")
            .arg(config)
            .env_remove("RUST_BACKTRACE")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}

async fn wait_backup_service(api: &Api, host: &str) {
    wait_for("the backup service to be up", 30, || async {
        let r = api.get("/v3/os-services?binary=cinder-backup", ADMIN).await;
        let up = r.body["services"].as_array().is_some_and(|l| {
            l.iter()
                .any(|x| x["host"] == json!(host) && x["state"] == "up")
        });
        if up {
            Ok(())
        } else {
            Err(r.body.to_string())
        }
    })
    .await;
}

/// `kill -9` of the real `cinder-backup` process while a full backup of 1 GiB streams
/// (seen under way: `creating`, progress past 0 %, the source snapshot and the base
/// image made), then a restart on the same host: the backup is `error` with a reason,
/// no snapshot is left on the source, no base image in the backup pool, the volume is
/// back to `available`, no claim is left, and the restarted service takes a new backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_backup_service_mid_stream_leaves_an_error_and_nothing_half_made_after_restart(
) {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let d = &c.driver;
    let pool = unique("it-bk");
    let (conf, p) = (c.conf.clone(), pool.clone());
    tokio::task::spawn_blocking(move || create_pool(&conf, &p))
        .await
        .unwrap();
    let host = unique("it-backup-proc");
    let config = std::env::temp_dir().join(format!("{}.toml", unique("cinder-backup")));
    std::fs::write(
        &config,
        crate::fixtures::backup_config(&host, &s.db_url, &c.conf, &pool, &s.conf, &s.pool),
    )
    .unwrap();
    let log = std::env::temp_dir().join(format!("{}.log", unique("cinder-backup")));
    let mut proc = spawn_backup(&config, &log);
    wait_backup_service(api, &host).await;

    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 1, "name": "big"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &vol, "available").await;
    let spec = ImageSpec::new(&s.pool, format!("volume-{vol}"));
    let mut rng = Rng(0x5eed_b0c4_0003);
    for i in 0..(GIB / (4 * MIB as u64)) {
        d.write(&spec, i * 4 * MIB as u64, rng.bytes(4 * MIB))
            .await
            .unwrap();
    }
    let id = backup_via_api(api, ALICE, json!({"backup": {"volume_id": vol}})).await;
    let progress = wait_for("the stream to be under way", 60, || async {
        let b = s.db.backup(&id).await.unwrap();
        match (b.status.as_str(), b.progress.as_deref()) {
            ("creating", Some(p)) if p != "0%" => Ok(p.to_string()),
            ("creating", p) => Err(format!("{p:?}")),
            (st, p) => panic!(
                "the backup ended ({st}, {p:?}) before the kill: the stream was too short to interrupt"
            ),
        }
    })
    .await;
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    // What the kill interrupted really was a stream: its snapshot and base image exist.
    let b = s.db.backup(&id).await.unwrap();
    assert_eq!(b.status.as_str(), "creating", "killed at {progress}");
    assert_eq!(
        backup_snaps(d, &spec).await.len(),
        1,
        "the source snapshot was made"
    );
    let base = format!("volume-{vol}.backup.{id}");
    let images = |d: RbdDriver, pool: String| async move {
        d.list_images(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect::<Vec<_>>()
    };
    assert!(
        images(d.clone(), pool.clone()).await.contains(&base),
        "the base image was made"
    );

    let _proc = spawn_backup(&config, &log);
    let b = wait_backup(api, ALICE, &id, "error").await;
    let reason = b["fail_reason"].as_str().unwrap_or("");
    assert!(reason.contains("interrupted"), "{reason}");
    assert!(
        backup_snaps(d, &spec).await.is_empty(),
        "no snapshot left on the source"
    );
    assert!(
        !images(d.clone(), pool.clone()).await.contains(&base),
        "no half-made base image"
    );
    api.wait_volume(ALICE, &vol, "available").await;
    let svc =
        s.db.find_service(&host, "cinder-backup")
            .await
            .unwrap()
            .unwrap();
    assert!(
        s.db.claims_of_service(svc.id).await.unwrap().is_empty(),
        "no claim left"
    );
    let again = backup_via_api(api, ALICE, json!({"backup": {"volume_id": vol}})).await;
    wait_backup(api, ALICE, &again, "available").await;
    api.wait_volume(ALICE, &vol, "available").await;

    // A forced delete of a backup whose stream runs cancels the stream: the backup goes,
    // nothing of it is left, the volume is available again.
    let third = backup_via_api(api, ALICE, json!({"backup": {"volume_id": vol}})).await;
    wait_for("the third stream to be under way", 60, || async {
        let b = s.db.backup(&third).await.unwrap();
        match (b.status.as_str(), b.progress.as_deref()) {
            ("creating", Some(p)) if p != "0%" => Ok(()),
            ("creating", p) => Err(format!("{p:?}")),
            (st, p) => panic!("the backup ended ({st}, {p:?}) before the forced delete"),
        }
    })
    .await;
    let r = api
        .post(
            &format!("/v3/backups/{third}/action"),
            ADMIN,
            json!({"os-force_delete": {}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(ALICE, &format!("/v3/backups/{third}")).await;
    assert!(
        !backup_snaps(d, &spec)
            .await
            .iter()
            .any(|n| n.starts_with(&format!("backup.{third}."))),
        "no snapshot of the cancelled backup"
    );
    assert!(
        !images(d.clone(), pool.clone())
            .await
            .contains(&format!("volume-{vol}.backup.{third}")),
        "no base image of the cancelled backup"
    );
    api.wait_volume(ALICE, &vol, "available").await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&third) && l.contains("ancel")),
        "the stream was cancelled, not finished: {}",
        text.lines()
            .filter(|l| l.contains(&third))
            .collect::<Vec<_>>()
            .join("\n")
    );

    drop(_proc);
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&log);
    let (conf, p) = (c.conf.clone(), pool.clone());
    tokio::task::spawn_blocking(move || delete_pool(&conf, &p))
        .await
        .unwrap();
    s.down().await;
}

/// A volume made from a Glance image, backed up and restored to a new volume and onto
/// a blank one: both become bootable with the image metadata the backup kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_gives_the_volume_the_image_metadata_its_backup_kept() {
    let c = ceph().await;
    let g = crate::fixtures::Glance::new();
    let s = Stack::up_with_glance(c, &g.url).await;
    let side = BackupSide::up(&s, &c.conf).await;
    let api = &s.api;
    let image = g
        .upload(
            &unique("bk-img"),
            "raw",
            Rng(3).bytes(MIB),
            json!({"os_distro": "debian"}),
        )
        .await;
    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 1, "imageRef": image}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let src = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &src, "available").await;
    let backup = backup_via_api(api, ALICE, json!({"backup": {"volume_id": src}})).await;
    wait_backup(api, ALICE, &backup, "available").await;
    let restored = restore_new(api, ALICE, &backup).await;
    let r = api
        .post("/v3/volumes", ALICE, json!({"volume": {"size": 1}}))
        .await;
    let blank = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = api.wait_volume(ALICE, &blank, "available").await;
    assert_eq!(v["bootable"], "false");
    assert!(v.get("volume_image_metadata").is_none(), "{v}");
    let r = api
        .post(
            &format!("/v3/backups/{backup}/restore"),
            ALICE,
            json!({"restore": {"volume_id": blank}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_backup(api, ALICE, &backup, "available").await;
    for v in [&restored, &blank] {
        let d = api.wait_volume(ALICE, v, "available").await;
        assert_eq!(d["bootable"], "true", "{d}");
        assert_eq!(
            d["volume_image_metadata"]["image_id"],
            image.as_str(),
            "{d}"
        );
        assert_eq!(d["volume_image_metadata"]["os_distro"], "debian", "{d}");
    }
    let r = api.delete(&format!("/v3/backups/{backup}"), ALICE).await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(ALICE, &format!("/v3/backups/{backup}")).await;
    for v in [&restored, &blank, &src] {
        assert_eq!(
            api.delete(&format!("/v3/volumes/{v}"), ALICE).await.status,
            202
        );
        api.wait_gone(ALICE, &format!("/v3/volumes/{v}")).await;
    }
    g.delete_eventually(&image).await;
    side.down().await;
    s.down().await;
}
