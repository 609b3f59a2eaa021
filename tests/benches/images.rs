//! Benchmark of the image flows (no timing assertions; the figures are printed beside
//! Cinder's own pipeline, measured the same way in the same run). The real release
//! binaries run as their own processes on SQLite, noauth, RabbitMQ and the dev cluster,
//! with a real Glance (`GLANCE_URL`, images in the cluster's `images` pool).
//!
//! Two backends in one volume service, pinned by volume types:
//! - `clone`: a pool of the run's own, as client.admin, which may read Glance's pool:
//!   volumes from raw images are copy-on-write clones;
//! - `download`: another pool, as a cephx user whose rights end at that pool (an
//!   operator who keeps Cinder out of Glance's pool): volumes from images are downloads.
//!
//! Each figure is the time from `POST /v3/volumes` (or the upload action) to the final
//! status through the API, polled every 20 ms, median of 3:
//! 1. **clone**, for raw images of 1, 4 and 16 GiB (sparse, registered by location as
//!    Nova's direct snapshot leaves them), volume size = image size. The clone is checked
//!    (the volume's parent is the image's `snap`). It must stay flat as the image grows.
//! 2. **download** of a 1 GiB raw image holding 1 GiB of data (no parent, the data
//!    checked at its start and its end).
//! 3. **upload** (`os-volume_upload_image`, raw) of a 1 GiB volume full of data: from the
//!    `clone` backend (the direct path: a flattened copy in Glance's pool, registered by
//!    location) and from the `download` backend (the data path: its bytes streamed to
//!    Glance), to the image being `active` and the volume `available` again.
//!
//! Cinder's figures, measured the same way: its RBD driver's own steps, run with the
//! `rbd` CLI (one connection per step, as Cinder's driver connects per call) and `curl`,
//! without Cinder's API, scheduler and RPC around them, so a lower bound for Cinder:
//! - clone (`clone_image`): open the image's snapshot (`rbd info`), `rbd clone`,
//!   `rbd resize` (librbd's resize to the same size does nothing; the CLI's refuses it
//!   after opening the image, which costs what Cinder's call costs);
//! - download (`_copy_image_to_volume`): `GET /v2/images/{id}/file` to a local file in
//!   the conversion directory, then `rbd import` of that file;
//! - upload (`copy_volume_to_image`, raw): create the image, then the volume's bytes
//!   streamed to `PUT /v2/images/{id}/file` (`rbd export - | curl -T -`).
//!
//! And the floors both sides share: Glance's `GET /file` to nobody, Glance's `PUT /file`
//! from a local file.
//!
//! Run with `scripts/bench.sh images` (which builds the release binaries and starts the
//! bench's Glance).

use std::time::{Duration, Instant};

use cinder_tests::glance::{glance_url, Glance};
use cinder_tests::release::{free_port, median, start, timed_shell, Api};
use cinder_tests::{amqp_url, ceph, ceph_conf, create_pool, delete_pool, unique, Rng};
use rbd_driver::{CreateOptions, ImageSpec, RbdDriver};
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN: &str = "admin:admin";
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const ROUNDS: usize = 3;
/// Glance's pool (scripts/glance-dev.sh).
const IMAGES: &str = "images";

/// A Glance image of `size_gib` GiB registered by location, as Nova's direct snapshot
/// leaves one: `images/<name>` with 4 MiB of data and a protected `snap`.
async fn image_by_location(g: &Glance, d: &RbdDriver, size_gib: u64) -> String {
    let name = unique("bench-clone");
    let id = g
        .create(json!({"name": name, "disk_format": "raw", "container_format": "bare"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let spec = ImageSpec::new(IMAGES, &id);
    let opts = CreateOptions {
        size: size_gib * GIB,
        ..Default::default()
    };
    d.create_image(&spec, &opts).await.unwrap();
    d.write(&spec, 0, Rng(size_gib).bytes(4 * MIB as usize))
        .await
        .unwrap();
    d.create_snapshot(&spec.snap("snap")).await.unwrap();
    d.protect_snapshot(&spec.snap("snap")).await.unwrap();
    g.add_location(&id, &format!("rbd://{}/{IMAGES}/{id}/snap", d.fsid()))
        .await;
    assert_eq!(g.get(&id).await["status"], "active");
    id
}

/// Waits until Glance image `id` is `active` (panics on `killed` or after 300 s).
async fn image_active(g: &Glance, id: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let i = g.get(id).await;
        match i["status"].as_str() {
            Some("active") => return Instant::now(),
            Some("killed") | Some("deleted") => panic!("image {id} went to {}", i["status"]),
            _ => {}
        }
        assert!(Instant::now() < deadline, "image {id} never became active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The clone parent of `pool/volume-<id>` as `pool/image@snap` (`None` without one).
fn parent(conf: &str, pool: &str, id: &str) -> Option<String> {
    let out = cinder_tests::rbd(
        conf,
        &["info", "--format", "json", &format!("{pool}/volume-{id}")],
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    let p = &v["parent"];
    p["image"].as_str().map(|i| {
        format!(
            "{}/{i}@{}",
            p["pool"].as_str().unwrap(),
            p["snapshot"].as_str().unwrap()
        )
    })
}

struct Stack {
    api: Api,
    glance: Glance,
    conf: String,
}

impl Stack {
    /// `POST /v3/volumes` of `size` GiB from `image` on `vtype`: the volume id and the
    /// seconds to `available`.
    async fn volume_from(&self, image: &str, size: u64, vtype: &str) -> (String, f64) {
        let t = Instant::now();
        let (s, v) = self
            .api
            .call(
                Method::POST,
                "/v3/volumes",
                Some(json!({"volume": {"size": size, "imageRef": image, "volume_type": vtype}})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let id = v["volume"]["id"].as_str().unwrap().to_string();
        let end = self
            .api
            .until(&format!("/v3/volumes/{id}"), "volume", "available")
            .await;
        (id, (end - t).as_secs_f64())
    }

    async fn delete_volume(&self, id: &str) {
        self.api.delete_gone(&format!("/v3/volumes/{id}")).await;
    }

    /// `os-volume_upload_image` (raw) of volume `id`: the image and the seconds until it
    /// is `active` and the volume `available`.
    async fn upload(&self, id: &str) -> (String, f64) {
        let t = Instant::now();
        let (s, v) = self
            .api
            .call(
                Method::POST,
                &format!("/v3/volumes/{id}/action"),
                Some(json!({"os-volume_upload_image": {
                    "image_name": unique("bench-upload"),
                    "disk_format": "raw", "container_format": "bare"}})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let image = v["os-volume_upload_image"]["image_id"]
            .as_str()
            .unwrap()
            .to_string();
        let a = image_active(&self.glance, &image).await;
        let b = self
            .api
            .until(&format!("/v3/volumes/{id}"), "volume", "available")
            .await;
        (image, (a.max(b) - t).as_secs_f64())
    }
}

#[tokio::main]
async fn main() {
    let conf = ceph_conf();
    let glance = Glance::at(&glance_url());
    let (p_clone, p_dl) = (unique("bench-img-clone"), unique("bench-img-dl"));
    create_pool(&conf, &p_clone);
    create_pool(&conf, &p_dl);
    let dir = std::env::temp_dir().join(unique("cinder-bench-images"));
    std::fs::create_dir_all(&dir).unwrap();

    // The download backend's user: rights on its own pool only (with the mgr's, which
    // purges deleted volumes from the trash).
    let user = unique("bench-dl");
    let keyring = dir.join("keyring");
    ceph(
        &conf,
        &[
            "auth",
            "get-or-create",
            &format!("client.{user}"),
            "mon",
            "profile rbd",
            "osd",
            &format!("profile rbd pool={p_dl}"),
            "mgr",
            &format!("profile rbd pool={p_dl}"),
            "-o",
            keyring.to_str().unwrap(),
        ],
    );
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    let conf_dl = dir.join("ceph-dl.conf");
    std::fs::write(
        &conf_dl,
        conf_text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("keyring") && !l.contains("mon") {
                    format!("keyring = {}", keyring.display())
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect::<String>(),
    )
    .unwrap();

    let db_url = format!("sqlite://{}?mode=rwc", dir.join("cinder.sqlite").display());
    let port = free_port();
    let config = format!(
        "[service]\nhost = \"{host}\"\nreport_interval = 1\n[database]\nconnection = \"{db_url}\"\n\
         [amqp]\ntransport_url = \"{amqp}\"\nscheduler_topic = \"{topic}\"\n\
         [api]\nlisten = \"127.0.0.1:{port}\"\n\
         [quota]\nvolumes = -1\ngigabytes = -1\n\
         [glance]\napi_servers = \"{gurl}\"\nrbd_store_pool = \"{IMAGES}\"\n\
         [volume]\nenabled_backends = [\"clone\", \"download\"]\nimage_conversion_dir = \"{conv}\"\n\
         [backends.clone]\nrbd_ceph_conf = \"{conf}\"\nrbd_pool = \"{p_clone}\"\nvolume_backend_name = \"clone\"\n\
         [backends.download]\nrbd_ceph_conf = \"{conf_dl}\"\nrbd_user = \"{user}\"\nrbd_pool = \"{p_dl}\"\nvolume_backend_name = \"download\"\n",
        host = unique("bench"),
        amqp = amqp_url(),
        topic = unique("cinder-scheduler-bench"),
        gurl = glance.url,
        conv = dir.join("conversion").display(),
        conf_dl = conf_dl.display(),
    );
    let cfg = dir.join("cinder.toml");
    std::fs::write(&cfg, config).unwrap();
    let procs = start(
        &cfg,
        &["cinder-volume", "cinder-scheduler", "cinder-api"],
        "images",
    );
    let api = Api::new(format!("http://127.0.0.1:{port}"), TOKEN);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = api
            .call(Method::GET, "/v3/scheduler-stats/get_pools", None)
            .await;
        if s == 200 && v["pools"].as_array().is_some_and(|p| p.len() == 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the services did not come up with both pools: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in ["clone", "download"] {
        let (s, v) = api
            .call(
                Method::POST,
                "/v3/types",
                Some(
                    json!({"volume_type": {"name": t, "extra_specs": {"volume_backend_name": t}}}),
                ),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let s = Stack {
        api,
        glance,
        conf: conf.clone(),
    };
    let d = RbdDriver::connect(cinder_tests::driver_config(&conf, IMAGES))
        .await
        .unwrap();
    let c = &conf;
    let gurl = &s.glance.url;

    // The images: sparse ones by location for the clone path, and 1 GiB of data uploaded
    // for the download path.
    let mut by_size = vec![];
    for g in [1u64, 4, 16] {
        by_size.push((g, image_by_location(&s.glance, &d, g).await));
    }
    let data_file = dir.join("image.raw");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&data_file).unwrap();
        let mut rng = Rng(0x1a6e_0001);
        for _ in 0..(GIB / (4 * MIB)) {
            f.write_all(&rng.bytes(4 * MIB as usize)).unwrap();
        }
    }
    let full = s
        .glance
        .create(
            json!({"name": unique("bench-data"), "disk_format": "raw", "container_format": "bare"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    timed_shell(&format!(
        "curl -sf --noproxy '*' -X PUT -H 'Content-Type: application/octet-stream' -T {} {gurl}/v2/images/{full}/file",
        data_file.display()
    ));
    image_active(&s.glance, &full).await;
    let head = {
        let b = std::fs::read(&data_file).unwrap();
        (
            b[..MIB as usize].to_vec(),
            b[(GIB - MIB) as usize..].to_vec(),
        )
    };

    // 1. Clones, ours and Cinder's steps, for each size.
    let mut clone_rows = vec![];
    for (g, image) in &by_size {
        let (mut ours, mut cinder) = (vec![], vec![]);
        for round in 0..ROUNDS {
            let (id, t) = s.volume_from(image, *g, "clone").await;
            assert_eq!(
                parent(&s.conf, &p_clone, &id).as_deref(),
                Some(format!("{IMAGES}/{image}@snap").as_str()),
                "the volume is a clone of the image"
            );
            ours.push(t);
            s.delete_volume(&id).await;
            let r = format!("{p_clone}/cinder-clone-{round}");
            cinder.push(timed_shell(&format!(
                "rbd -c {c} info {IMAGES}/{image}@snap >/dev/null && rbd -c {c} clone {IMAGES}/{image}@snap {r} \
                 && {{ rbd -c {c} resize --no-progress --size {g}G {r} 2>/dev/null || true; }}"
            )));
            timed_shell(&format!("rbd -c {c} rm --no-progress {r}"));
        }
        clone_rows.push((*g, ours, cinder));
    }

    // 2. Downloads of 1 GiB of data.
    let (mut dl_ours, mut dl_cinder, mut dl_floor) = (vec![], vec![], vec![]);
    let mut kept = None;
    for round in 0..ROUNDS {
        let (id, t) = s.volume_from(&full, 1, "download").await;
        dl_ours.push(t);
        assert_eq!(parent(&s.conf, &p_dl, &id), None, "a download, not a clone");
        let spec = ImageSpec::new(&p_dl, format!("volume-{id}"));
        let len = MIB as usize;
        assert!(
            d.read(&spec, None, 0, len).await.unwrap() == head.0,
            "the data's start"
        );
        assert!(
            d.read(&spec, None, GIB - MIB, len).await.unwrap() == head.1,
            "the data's end"
        );
        if round + 1 == ROUNDS {
            kept = Some(id);
        } else {
            s.delete_volume(&id).await;
        }
        let tmp = dir.join("cinder-download");
        let r = format!("{p_dl}/cinder-download-{round}");
        dl_cinder.push(timed_shell(&format!(
            "curl -sf --noproxy '*' -o {f} {gurl}/v2/images/{full}/file \
             && rbd -c {c} import --no-progress --image-format 2 {f} {r}",
            f = tmp.display()
        )));
        std::fs::remove_file(&tmp).unwrap();
        timed_shell(&format!("rbd -c {c} rm --no-progress {r}"));
        // The floor: Glance sending the image to nobody.
        dl_floor.push(timed_shell(&format!(
            "curl -sf --noproxy '*' -o /dev/null {gurl}/v2/images/{full}/file"
        )));
    }
    let dl_volume = kept.unwrap();

    // 3. Uploads of a 1 GiB volume full of data: the direct path (a clone of the data
    // image on the clone backend) and the data path (the downloaded volume).
    let (cl_volume, _) = s.volume_from(&full, 1, "clone").await;
    let (mut up_direct, mut up_data, mut up_cinder, mut up_floor) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let (image, t) = s.upload(&cl_volume).await;
        let i = s.glance.get(&image).await;
        assert_eq!(
            i["direct_url"],
            format!("rbd://{}/{IMAGES}/{image}/snap", d.fsid()),
            "the direct path ran: {i}"
        );
        assert_eq!(i["size"], GIB, "{i}");
        up_direct.push(t);
        s.glance.delete_eventually(&image).await;

        let (image, t) = s.upload(&dl_volume).await;
        let i = s.glance.get(&image).await;
        assert!(i["checksum"].is_string(), "the data path ran: {i}");
        assert_eq!(i["size"], GIB, "{i}");
        up_data.push(t);
        s.glance.delete_eventually(&image).await;

        let t = Instant::now();
        let image = s
            .glance
            .create(json!({"name": unique("bench-cinder-upload"), "disk_format": "raw", "container_format": "bare"}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        timed_shell(&format!(
            "rbd -c {c} export --no-progress {p_dl}/volume-{dl_volume} - \
             | curl -sf --noproxy '*' -X PUT -H 'Content-Type: application/octet-stream' -T - {gurl}/v2/images/{image}/file"
        ));
        image_active(&s.glance, &image).await;
        up_cinder.push(t.elapsed().as_secs_f64());
        assert_eq!(s.glance.get(&image).await["size"], GIB);
        s.glance.delete_eventually(&image).await;

        // The floor: Glance taking the same bytes from a local file.
        let t = Instant::now();
        let image = s
            .glance
            .create(json!({"name": unique("bench-floor-upload"), "disk_format": "raw", "container_format": "bare"}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        timed_shell(&format!(
            "curl -sf --noproxy '*' -X PUT -H 'Content-Type: application/octet-stream' -T {} {gurl}/v2/images/{image}/file",
            data_file.display()
        ));
        image_active(&s.glance, &image).await;
        up_floor.push(t.elapsed().as_secs_f64());
        s.glance.delete_eventually(&image).await;
    }

    println!("image flows through our API (release binaries, real Glance, dev cluster); medians of {ROUNDS}, seconds:");
    println!("  create from an image by clone (volume size = image size), ours vs Cinder's driver steps (rbd info, clone, resize):");
    for (g, ours, cinder) in &clone_rows {
        let (o, ci) = (median(ours.clone()), median(cinder.clone()));
        println!(
            "    {g:>2} GiB image: {o:6.3} s   Cinder's steps {ci:6.3} s ({:.2}x)   every round {ours:.3?}",
            ci / o
        );
    }
    let first = median(clone_rows[0].1.clone());
    let last = median(clone_rows[clone_rows.len() - 1].1.clone());
    println!(
        "    16 GiB against 1 GiB: {:.2}x (flat means about 1)",
        last / first
    );
    let (o, ci) = (median(dl_ours.clone()), median(dl_cinder.clone()));
    println!(
        "  create from a 1 GiB raw image by download: {o:6.2} s   Cinder's GET to a file + rbd import {ci:6.2} s ({:.2}x)   every round {dl_ours:.2?}",
        ci / o
    );
    println!(
        "    floor: Glance's GET alone {:6.2} s",
        median(dl_floor.clone())
    );
    let ci = median(up_cinder.clone());
    let (dr, da) = (median(up_direct.clone()), median(up_data.clone()));
    println!(
        "  upload of a 1 GiB volume full of data (raw): direct path {dr:6.2} s ({:.2}x), data path {da:6.2} s ({:.2}x)   Cinder's rbd export | PUT {ci:6.2} s",
        ci / dr,
        ci / da
    );
    println!("    every round: direct {up_direct:.2?} data {up_data:.2?} Cinder {up_cinder:.2?}");
    println!(
        "    floor of the data path: Glance taking the bytes from a local file {:6.2} s (the first data round also pays the refused direct copy)",
        median(up_floor.clone())
    );

    for id in [&cl_volume, &dl_volume] {
        s.delete_volume(id).await;
    }
    // The images while the services still run (a deleted clone may wait in the trash
    // for the purge the volume service asked the mgr for). The location belongs to
    // Glance: deleting the image removes the RBD image.
    for (_, image) in &by_size {
        s.glance.delete_eventually(image).await;
    }
    s.glance.delete_eventually(&full).await;
    drop(procs);
    drop(d);
    ceph(&conf, &["auth", "del", &format!("client.{user}")]);
    delete_pool(&conf, &p_clone);
    delete_pool(&conf, &p_dl);
    let _ = std::fs::remove_dir_all(&dir);
}
