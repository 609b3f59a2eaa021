//! Service-level wiring that already exists: sample configuration, a second cluster,
//! and the volume service's start-up against Ceph.

use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use rbd_driver::{CreateOptions, OpCtl, RbdDriver, RemoveMode};

use crate::fixtures::ceph;

fn sample() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/cinder.sample.toml")
}

#[test]
fn the_sample_configuration_parses_for_every_binary() {
    let p = sample();
    cinder_common::config::load_with_env::<cinder_api::Settings>(Some(&p), []).unwrap();
    cinder_common::config::load_with_env::<cinder_scheduler::Settings>(Some(&p), []).unwrap();
    cinder_common::config::load_with_env::<cinder_backup::Settings>(Some(&p), []).unwrap();
    cinder_common::config::load_with_env::<cinder_manage::Settings>(Some(&p), []).unwrap();
    let v: cinder_volume::Settings = cinder_common::config::load_with_env(Some(&p), []).unwrap();
    v.validate().unwrap();
    let b = v.backend(&v.volume.enabled_backends[0]).unwrap();
    assert_eq!(
        (
            b.rbd.rbd_pool.as_str(),
            b.cinder.rbd_max_clone_depth,
            b.cinder.rbd_flatten_volume_from_snapshot
        ),
        ("rbd", 5, false)
    );
    assert_eq!(v.common.service.report_interval, 10);
    assert_eq!(v.common.service.service_down_time, 60);
}

#[test]
fn the_sample_ceph_conf_has_the_client_timeouts() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/ceph.conf.sample"),
    )
    .unwrap();
    for key in [
        "rados mon op timeout",
        "rados osd op timeout",
        "client mount timeout",
    ] {
        assert!(text.contains(key), "{key} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_independent_cluster_serves_its_own_driver() {
    let a = ceph().await;
    let conf_b = std::env::var("CEPH_CONF_B").unwrap_or_else(|_| {
        panic!("CEPH_CONF_B is not set: run scripts/test.sh, or `export CEPH_CONF_B=$(scripts/ceph-dev.sh up /tmp/cinder-rs-ceph-b 6790)`")
    });
    let b = RbdDriver::connect(cinder_tests::driver_config(&conf_b, "rbd"))
        .await
        .unwrap();
    assert_ne!(a.driver.fsid(), b.fsid(), "two clusters, two fsids");
    let img = rbd_driver::ImageSpec::new("rbd", cinder_tests::unique("second"));
    b.create_image(
        &img,
        &CreateOptions {
            size: 1 << 20,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(b.exists(&img).await.unwrap());
    assert!(!a
        .driver
        .exists(&rbd_driver::ImageSpec::new(&a.pool, &img.name))
        .await
        .unwrap());
    b.remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
        .await
        .unwrap();
}

/// Settings for one backend on `pool`, with a SQLite database (migrated when asked).
async fn volume_settings_with_db(
    conf: &str,
    pool: &str,
    migrated: bool,
) -> cinder_volume::Settings {
    let dbfile =
        std::env::temp_dir().join(format!("{}.sqlite", cinder_tests::unique("cinder-it-svc")));
    let url = format!("sqlite://{}?mode=rwc", dbfile.display());
    if migrated {
        let db = cinder_db::Db::connect(&url).await.unwrap();
        <cinder_migrations::Migrator as cinder_migrations::MigratorTrait>::up(
            db.connection(),
            None,
        )
        .await
        .unwrap();
    }
    let path = std::env::temp_dir().join(format!("cinder-it-{}.toml", cinder_tests::unique("cfg")));
    let host = cinder_tests::unique("it");
    let amqp = cinder_tests::amqp_url();
    std::fs::write(&path, format!("[service]\nhost = \"{host}\"\n[amqp]\ntransport_url = \"{amqp}\"\n[database]\nconnection = \"{url}\"\n[volume]\nenabled_backends = [\"ceph\"]\n[backends.ceph]\nvolume_driver = \"rbd\"\nrbd_ceph_conf = \"{conf}\"\nrbd_pool = \"{pool}\"\n")).unwrap();
    let s = cinder_common::config::load_with_env(Some(&path), []).unwrap();
    std::fs::remove_file(&path).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volume_service_connects_its_backend_and_stops_on_shutdown() {
    let c = ceph().await;
    let stop = CancellationToken::new();
    let run = tokio::spawn(cinder_volume::run(
        volume_settings_with_db(&c.conf, &c.pool, true).await,
        vec![],
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!run.is_finished(), "the service keeps running");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volume_service_refuses_to_start_on_a_wrong_pool() {
    let c = ceph().await;
    let r = cinder_volume::run(
        volume_settings_with_db(&c.conf, "no-such-pool", true).await,
        vec![],
        CancellationToken::new(),
    )
    .await;
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains("no-such-pool"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volume_service_refuses_to_start_while_migrations_are_pending() {
    let c = ceph().await;
    let r = cinder_volume::run(
        volume_settings_with_db(&c.conf, &c.pool, false).await,
        vec![],
        CancellationToken::new(),
    )
    .await;
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains("cinder-manage db sync"), "{e}");
}

/// `cinder-backup`'s settings: the backup cluster `conf` as client.admin, `pool`, a
/// migrated SQLite database, a one-second heartbeat. Returns them and the database URL.
async fn backup_settings(conf: &str, pool: &str) -> (cinder_backup::Settings, String) {
    let dbfile =
        std::env::temp_dir().join(format!("{}.sqlite", cinder_tests::unique("cinder-it-bk")));
    let url = format!("sqlite://{}?mode=rwc", dbfile.display());
    let db = cinder_db::Db::connect(&url).await.unwrap();
    <cinder_migrations::Migrator as cinder_migrations::MigratorTrait>::up(db.connection(), None)
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!("cinder-it-{}.toml", cinder_tests::unique("cfg")));
    let host = cinder_tests::unique("it-backup");
    let amqp = cinder_tests::amqp_url();
    std::fs::write(&path, format!("[service]\nhost = \"{host}\"\nreport_interval = 1\n[amqp]\ntransport_url = \"{amqp}\"\n[database]\nconnection = \"{url}\"\n[backup]\nbackup_ceph_conf = \"{conf}\"\nbackup_ceph_user = \"admin\"\nbackup_ceph_pool = \"{pool}\"\n")).unwrap();
    let s = cinder_common::config::load_with_env(Some(&path), []).unwrap();
    std::fs::remove_file(&path).unwrap();
    (s, url)
}

/// The backup service connects to its backup pool (here on the second cluster), registers
/// its `cinder-backup` row and heartbeats like the other services (os-services lists it
/// from that row), and stops on shutdown; a pool it cannot use stops it at start, named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_service_registers_heartbeats_and_refuses_a_pool_it_cannot_use() {
    let conf_b = std::env::var("CEPH_CONF_B").unwrap_or_else(|_| {
        panic!("CEPH_CONF_B is not set: run scripts/test.sh, or `export CEPH_CONF_B=$(scripts/ceph-dev.sh up /tmp/cinder-rs-ceph-b 6790)`")
    });
    let (settings, url) = backup_settings(&conf_b, "rbd").await;
    let host = settings.common.service.host.clone();
    let stop = CancellationToken::new();
    let run = tokio::spawn(cinder_backup::run(settings, stop.clone()));
    let db = cinder_db::Db::connect(&url).await.unwrap();
    let row = |db: cinder_db::Db, host: String| async move {
        db.find_service(&host, "cinder-backup").await.unwrap()
    };
    let mut first = None;
    for _ in 0..100 {
        if let Some(r) = row(db.clone(), host.clone()).await {
            first = Some(r);
            break;
        }
        assert!(!run.is_finished(), "the service stopped: {:?}", run.await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = first.expect("the backup service registered within 10 s");
    assert_eq!(
        (first.topic.as_str(), first.disabled),
        ("cinder-backup", false)
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = row(db.clone(), host.clone()).await.unwrap();
    assert!(
        later.report_count >= first.report_count + 2,
        "the heartbeat runs: {} then {}",
        first.report_count,
        later.report_count
    );
    assert!(cinder_db::service_is_up(
        &later,
        Duration::from_secs(60),
        chrono::Utc::now().naive_utc()
    ));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let (settings, _) = backup_settings(&conf_b, "no-such-backup-pool").await;
    let e = cinder_backup::run(settings, CancellationToken::new())
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("no-such-backup-pool") && e.contains("client.admin"),
        "{e}"
    );
}
