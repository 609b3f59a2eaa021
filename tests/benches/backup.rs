//! Benchmark of backups (no timing assertions; the figures are printed beside the
//! references and targets the backup issue names). The real release binaries run as
//! their own processes on SQLite, noauth, RabbitMQ and the dev cluster (a volume pool
//! and a backup pool of the run's own).
//!
//! On a 1 GiB volume with 256 MiB written (64 random 4 MiB pieces), then 64 MiB of it
//! changed: the full backup, the incremental and the restore to a new volume, each timed
//! through the API from the request to the final status (polled every 20 ms), medians of
//! 3, with the bytes each stream moved; beside them, the same three as Cinder runs them,
//! `rbd export-diff | rbd import-diff` between the same pools, timed in the same run.
//!
//! Reference: OpenStack Cinder Zed through its API on a memstore dev cluster on this
//! kind of machine: full 2.6 s, incremental 2.2 s, restore 3.0 s. Targets: full and
//! restore at most a third of those, the incremental at most a fifth, incremental bytes
//! within 5 % of the change, no slower than the CLI pipe.
//!
//! Run with `scripts/bench.sh backup` (which builds the release binaries first).

use std::time::{Duration, Instant};

use cinder_tests::release::{free_port, median, start, timed_shell, Api};
use cinder_tests::{amqp_url, ceph_conf, create_pool, delete_pool, unique, Rng};
use rbd_driver::{ImageSpec, RbdDriver};
use serde_json::{json, Value};

// An admin: the readiness checks read the pools and the services.
const TOKEN: &str = "admin:admin";
const MIB: u64 = 1 << 20;

#[tokio::main]
async fn main() {
    let conf = ceph_conf();
    let pool = unique("bench-bk-vol");
    let bpool = unique("bench-bk");
    create_pool(&conf, &pool);
    create_pool(&conf, &bpool);
    std::thread::sleep(Duration::from_secs(2));
    let dir = std::env::temp_dir().join(unique("cinder-bench-backup"));
    std::fs::create_dir_all(&dir).unwrap();
    let dbfile = dir.join("cinder.sqlite");
    let db_url = format!("sqlite://{}?mode=rwc", dbfile.display());
    let port = free_port();
    let topic = unique("cinder-scheduler-bench");
    let config = format!(
        "[service]\nhost = \"{host}\"\nreport_interval = 1\n[database]\nconnection = \"{db_url}\"\n\
         [amqp]\ntransport_url = \"{amqp}\"\nscheduler_topic = \"{topic}\"\n\
         [api]\nlisten = \"127.0.0.1:{port}\"\n\
         [quota]\nvolumes = -1\ngigabytes = -1\nbackups = -1\nbackup_gigabytes = -1\n\
         [volume]\nenabled_backends = [\"ceph\"]\n\
         [backends.ceph]\nrbd_ceph_conf = \"{conf}\"\nrbd_pool = \"{pool}\"\n\
         [backup]\nbackup_ceph_conf = \"{conf}\"\nbackup_ceph_user = \"admin\"\nbackup_ceph_pool = \"{bpool}\"\n",
        host = unique("bench"),
        amqp = amqp_url(),
    );
    let cfg = dir.join("cinder.toml");
    std::fs::write(&cfg, config).unwrap();
    let procs = start(
        &cfg,
        &[
            "cinder-volume",
            "cinder-scheduler",
            "cinder-api",
            "cinder-backup",
        ],
        "backup",
    );
    let api = Api::new(format!("http://127.0.0.1:{port}"), TOKEN);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = api
            .call(reqwest::Method::GET, "/v3/scheduler-stats/get_pools", None)
            .await;
        let (_, svc) = api
            .call(
                reqwest::Method::GET,
                "/v3/os-services?binary=cinder-backup",
                None,
            )
            .await;
        let backup_up = svc["services"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["state"] == "up"));
        if s == 200 && v["pools"].as_array().is_some_and(|p| !p.is_empty()) && backup_up {
            break;
        }
        assert!(Instant::now() < deadline, "the services did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let db = cinder_db::Db::connect(&db_url).await.unwrap();
    let cfg_rbd: rbd_driver::RbdConfig =
        serde_json::from_value(json!({"rbd_ceph_conf": conf, "rbd_pool": pool})).unwrap();
    let d = RbdDriver::connect(cfg_rbd).await.unwrap();
    let mut rng = Rng(0xbe4c_0001);

    let (mut full_t, mut inc_t, mut restore_t) = (vec![], vec![], vec![]);
    let (mut full_b, mut inc_b) = (vec![], vec![]);
    let (mut cli_full, mut cli_inc, mut cli_restore) = (vec![], vec![], vec![]);
    for round in 0..3 {
        let (s, v) = api
            .call(
                reqwest::Method::POST,
                "/v3/volumes",
                Some(json!({"volume": {"size": 1}})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let vol = v["volume"]["id"].as_str().unwrap().to_string();
        api.until(&format!("/v3/volumes/{vol}"), "volume", "available")
            .await;
        let spec = ImageSpec::new(&pool, format!("volume-{vol}"));
        let slots = rng.distinct(64, 256);
        for &i in &slots {
            d.write(&spec, i * 4 * MIB, rng.bytes(4 * MIB as usize))
                .await
                .unwrap();
        }

        // Ours, through the API.
        let t = Instant::now();
        let (s, v) = api
            .call(
                reqwest::Method::POST,
                "/v3/backups",
                Some(json!({"backup": {"volume_id": vol}})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let full = v["backup"]["id"].as_str().unwrap().to_string();
        let end = api
            .until(&format!("/v3/backups/{full}"), "backup", "available")
            .await;
        full_t.push((end - t).as_secs_f64());
        api.until(&format!("/v3/volumes/{vol}"), "volume", "available")
            .await;
        let bytes = |id: String| {
            let db = db.clone();
            async move {
                let b = db.backup(&id).await.unwrap();
                let rec: Value =
                    serde_json::from_str(b.service_metadata.as_deref().unwrap()).unwrap();
                rec["stream_bytes"].as_u64().unwrap()
            }
        };
        full_b.push(bytes(full.clone()).await);

        // 64 MiB of it changed.
        for &i in &slots[..16] {
            d.write(&spec, i * 4 * MIB, rng.bytes(4 * MIB as usize))
                .await
                .unwrap();
        }
        let t = Instant::now();
        let (s, v) = api
            .call(
                reqwest::Method::POST,
                "/v3/backups",
                Some(json!({"backup": {"volume_id": vol, "incremental": true}})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let inc = v["backup"]["id"].as_str().unwrap().to_string();
        let end = api
            .until(&format!("/v3/backups/{inc}"), "backup", "available")
            .await;
        inc_t.push((end - t).as_secs_f64());
        inc_b.push(bytes(inc.clone()).await);
        api.until(&format!("/v3/volumes/{vol}"), "volume", "available")
            .await;

        let t = Instant::now();
        let (s, v) = api
            .call(
                reqwest::Method::POST,
                &format!("/v3/backups/{inc}/restore"),
                Some(json!({"restore": {}})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let target = v["restore"]["volume_id"].as_str().unwrap().to_string();
        api.until(&format!("/v3/backups/{inc}"), "backup", "available")
            .await;
        let end = api
            .until(&format!("/v3/volumes/{target}"), "volume", "available")
            .await;
        restore_t.push((end - t).as_secs_f64());

        // The CLI pipe Cinder runs, between the same pools.
        let c = &conf;
        let src = format!("{pool}/volume-{vol}");
        let base = format!("{bpool}/cli-{round}");
        let back = format!("{pool}/cli-restore-{round}");
        timed_shell(&format!(
            "rbd -c {c} snap create {src}@cli0 && rbd -c {c} create --size 1M {base}"
        ));
        cli_full.push(timed_shell(&format!(
            "rbd -c {c} export-diff --no-progress {src}@cli0 - | rbd -c {c} import-diff --no-progress - {base}"
        )));
        for &i in &slots[16..32] {
            d.write(&spec, i * 4 * MIB, rng.bytes(4 * MIB as usize))
                .await
                .unwrap();
        }
        timed_shell(&format!("rbd -c {c} snap create {src}@cli1"));
        cli_inc.push(timed_shell(&format!(
            "rbd -c {c} export-diff --no-progress --from-snap cli0 {src}@cli1 - | rbd -c {c} import-diff --no-progress - {base}"
        )));
        timed_shell(&format!("rbd -c {c} create --size 1G {back}"));
        cli_restore.push(timed_shell(&format!(
            "rbd -c {c} export-diff --no-progress {base}@cli1 - | rbd -c {c} import-diff --no-progress - {back}"
        )));
        timed_shell(&format!(
            "rbd -c {c} snap purge {src} && rbd -c {c} snap purge {base} && rbd -c {c} rm --no-progress {base} && rbd -c {c} snap purge {back} && rbd -c {c} rm --no-progress {back}"
        ));
        for id in [&inc, &full] {
            api.delete_gone(&format!("/v3/backups/{id}")).await;
        }
        for v in [&vol, &target] {
            api.call(reqwest::Method::DELETE, &format!("/v3/volumes/{v}"), None)
                .await;
        }
    }

    let changed = 64 * MIB;
    println!("backups of a 1 GiB volume with 256 MiB written, then 64 MiB changed; medians of 3:");
    let line = |what: &str, ours: f64, cinder: f64, target: f64, cli: f64| {
        println!(
            "  {what:<12} {ours:6.2} s through our API  (Cinder Zed {cinder:.1} s: {:.1}x faster, target >= {target:.0}x)   CLI pipe {cli:6.2} s ({:.2}x the pipe's speed)",
            cinder / ours,
            cli / ours
        );
    };
    line("full", median(full_t.clone()), 2.6, 3.0, median(cli_full));
    line(
        "incremental",
        median(inc_t.clone()),
        2.2,
        5.0,
        median(cli_inc),
    );
    line(
        "restore",
        median(restore_t.clone()),
        3.0,
        3.0,
        median(cli_restore),
    );
    let inc_bytes = median(inc_b.iter().map(|b| *b as f64).collect());
    println!(
        "  bytes moved: full {:.1} MiB, incremental {:.1} MiB for {:.0} MiB changed ({:+.2} %, target within 5 %)",
        median(full_b.iter().map(|b| *b as f64).collect()) / MIB as f64,
        inc_bytes / MIB as f64,
        changed as f64 / MIB as f64,
        (inc_bytes / changed as f64 - 1.0) * 100.0
    );
    println!("  every round: full {full_t:.2?} incremental {inc_t:.2?} restore {restore_t:.2?}");

    drop(procs);
    drop(d);
    delete_pool(&conf, &pool);
    delete_pool(&conf, &bpool);
    let _ = std::fs::remove_dir_all(&dir);
}
