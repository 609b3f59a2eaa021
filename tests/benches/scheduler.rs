//! Benchmark of the scheduler (no timing assertions; the figures are printed with the
//! targets the scheduler issue names):
//!
//! 1. placements per second through the real queue: 1,000 volume service rows in the
//!    database (SQLite, as the quickstart; and PostgreSQL, as production, when
//!    `CINDER_TEST_POSTGRES_URL` names its admin URL), 5,000 creates cast to the scheduler's queue
//!    while no scheduler consumes it, then one scheduler started; the rate is taken
//!    from the placements' own `scheduled_at` (first to last), so neither start-up nor
//!    the casting client counts. Every create is checked placed. Target: at least
//!    1,000 placements/s (never the bottleneck of the API's create rate).
//! 2. decisions per second in process: the filter and weigher core over the same 1,000
//!    pools, each decision deducted from the view as the service does. Target: at
//!    least 5,000 decisions/s.
//!
//! The backends' queues exist (declared by the bench) but nobody consumes them; they
//! are deleted at the end. Run with `scripts/bench.sh scheduler`.

use std::time::{Duration, Instant};

use cinder_common::shutdown::CancellationToken;
use cinder_db::{Db, ServiceRegistration};
use cinder_migrations::{Migrator, MigratorTrait};
use cinder_rpc::messages::{GetPools, ScheduleCreateVolume, SchedulerTopic, VolumeTypeSpec};
use cinder_rpc::{RequestContext, RpcClient};
use cinder_scheduler::core::{Request, Weighers};
use cinder_scheduler::view::View;
use cinder_tests::{amqp_url, unique};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

const BACKENDS: usize = 1000;
const CREATES: usize = 5000;
const DECISIONS: usize = 50_000;

fn ctx() -> RequestContext {
    RequestContext {
        project_id: Some("bench".into()),
        user_id: Some("bench".into()),
        is_admin: false,
        ..Default::default()
    }
}

fn caps(i: usize) -> serde_json::Value {
    // Backends differ a little, so weighing has work to do.
    serde_json::json!({
        "volume_backend_name": "ceph", "vendor_name": "Open Source",
        "storage_protocol": "ceph", "total_capacity_gb": 1000.0 + i as f64,
        "free_capacity_gb": 900.0 + i as f64, "provisioned_capacity_gb": (i % 97) as f64,
        "allocated_capacity_gb": (i % 97) as f64, "reserved_percentage": 0,
        "thin_provisioning_support": true, "max_over_subscription_ratio": "20.0",
        "multiattach": true, "backend_state": "up",
        "timestamp": chrono::Utc::now().to_rfc3339(),
    })
}

/// 1,000 volume service rows, up, each with its report; returns their hosts.
async fn register_backends(db: &Db) -> Vec<String> {
    let run = unique("b");
    let mut hosts = Vec::with_capacity(BACKENDS);
    for i in 0..BACKENDS {
        let host = format!("{run}-{i:04}@ceph");
        let row = db
            .register_service(&ServiceRegistration {
                host: host.clone(),
                binary: "cinder-volume".into(),
                topic: "cinder-volume".into(),
                availability_zone: "nova".into(),
                cluster_name: None,
            })
            .await
            .unwrap();
        db.heartbeat(row.id, Some(&caps(i))).await.unwrap();
        hosts.push(host);
    }
    hosts
}

fn pinned_type() -> VolumeTypeSpec {
    VolumeTypeSpec {
        id: uuid::Uuid::new_v4().to_string(),
        name: "ceph".into(),
        extra_specs: [("volume_backend_name".to_string(), "ceph".to_string())]
            .into_iter()
            .collect(),
    }
}

fn scheduler_toml(db_url: &str, topic: &str) -> String {
    format!(
        "[service]\nhost = \"{host}\"\n[database]\nconnection = \"{db_url}\"\n\
         [amqp]\ntransport_url = \"{amqp}\"\nscheduler_topic = \"{topic}\"\n\
         [logging]\nlevel = \"warn\"\n",
        host = unique("bench-sched"),
        amqp = amqp_url(),
    )
}

async fn start_scheduler(
    db_url: &str,
    topic: &str,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("bench-sched")));
    std::fs::write(&path, scheduler_toml(db_url, topic)).unwrap();
    let settings: cinder_scheduler::Settings =
        cinder_common::config::load_with_env(Some(&path), []).unwrap();
    std::fs::remove_file(&path).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(cinder_scheduler::run(settings, stop.clone()));
    (stop, task)
}

async fn serving(client: &RpcClient, topic: &str) {
    for _ in 0..300 {
        if client
            .call(topic, ctx(), GetPools::default(), Duration::from_secs(2))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scheduler never served {topic}");
}

/// A fresh database for the bench: a SQLite file, or `bench_<id>` on the PostgreSQL
/// of `admin` (dropped by the caller through the returned name).
async fn fresh_database(admin: Option<&str>) -> (String, Option<String>) {
    match admin {
        None => {
            let f = std::env::temp_dir().join(format!("{}.sqlite", unique("bench-sched")));
            (format!("sqlite://{}?mode=rwc", f.display()), None)
        }
        Some(admin) => {
            use sea_orm::ConnectionTrait;
            let name = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            let conn = sea_orm::Database::connect(admin).await.unwrap();
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            (format!("{base}/{name}"), Some(name))
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (url, _) = fresh_database(None).await;
        let sqlite = queue_path(&url, "SQLite").await;
        let pg_admin = std::env::var("CINDER_TEST_POSTGRES_URL").ok();
        let pg = match &pg_admin {
            Some(admin) => {
                let (url, name) = fresh_database(Some(admin)).await;
                let line = queue_path(&url, "PostgreSQL").await;
                use sea_orm::ConnectionTrait;
                let conn = sea_orm::Database::connect(admin.as_str()).await.unwrap();
                let _ = conn
                    .execute_unprepared(&format!("DROP DATABASE {} WITH (FORCE)", name.unwrap()))
                    .await;
                line
            }
            None => "queue path on PostgreSQL: not run (CINDER_TEST_POSTGRES_URL unset)".into(),
        };
        let (line, rate) = in_process().await;
        println!("{sqlite}");
        println!("{pg}");
        println!("{line}");
        println!("scheduler: {rate:.0} decisions/s over {BACKENDS} backends");
    });
}

/// The queue path on the database at `url`; returns its figure line.
async fn queue_path(url: &str, label: &str) -> String {
    let amqp = amqp_url();
    let db = Db::connect(url).await.unwrap();
    Migrator::up(db.connection(), None).await.unwrap();

    // 1,000 volume services that are up, each with its queue.
    let conn = lapin::Connection::connect(&amqp, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        cinder_rpc::topology::EXCHANGE.into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut queues = Vec::new();

    for host in register_backends(&db).await {
        let q = cinder_rpc::topology::backend_queue(&host);
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.as_str().into(),
            cinder_rpc::topology::EXCHANGE.into(),
            q.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        queues.push(q);
    }
    let rows = db.volume_services().await.unwrap();

    // The queue is made by a first scheduler, which stops; the creates wait in it.
    let topic = unique("bench-sched");
    let client = RpcClient::connect(&amqp).await.unwrap();
    let (stop, task) = start_scheduler(url, &topic).await;
    serving(&client, &topic).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let pinned = pinned_type();
    let mut ids = Vec::with_capacity(CREATES);
    for i in 0..CREATES {
        let row = cinder_tests::volume_row("bench", "bench", 1);
        db.create_volume(&row).await.unwrap();
        let id = row.id;
        let msg = ScheduleCreateVolume {
            volume_id: id.clone(),
            size_gib: 1,
            volume_type: (i % 2 == 0).then(|| pinned.clone()),
            availability_zone: Some("nova".into()),
            snapshot_id: None,
            source_volid: None,
            image_location: None,
            image: None,
            scheduler_hints: Default::default(),
            retry: Default::default(),
        };
        client
            .cast_request::<SchedulerTopic>(&topic, ctx(), msg.into())
            .await
            .unwrap();
        ids.push(id);
    }
    // Every backend's report is fresh when the scheduler starts.
    for (i, row) in rows.iter().enumerate() {
        db.heartbeat(row.id, Some(&caps(i))).await.unwrap();
    }
    let (stop, task) = start_scheduler(url, &topic).await;
    let t0 = Instant::now();
    use cinder_db::entity::volumes;
    loop {
        let unplaced = volumes::Entity::find()
            .filter(volumes::Column::Host.is_null())
            .filter(volumes::Column::Deleted.eq(false))
            .count(db.connection())
            .await
            .unwrap();
        if unplaced == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "{unplaced} creates still unplaced after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let times: Vec<chrono::NaiveDateTime> = volumes::Entity::find()
        .select_only()
        .column(volumes::Column::ScheduledAt)
        .filter(volumes::Column::Deleted.eq(false))
        .into_tuple::<Option<chrono::NaiveDateTime>>()
        .all(db.connection())
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(times.len(), CREATES, "every create placed once");
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    let span = (*last - *first).to_std().unwrap().as_secs_f64();
    let hosts: std::collections::BTreeSet<String> = volumes::Entity::find()
        .select_only()
        .column(volumes::Column::Host)
        .into_tuple::<Option<String>>()
        .all(db.connection())
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    stop.cancel();
    task.await.unwrap().unwrap();
    let placements = CREATES as f64 / span;
    for q in &queues {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
    let _ = ch
        .queue_delete(topic.as_str().into(), Default::default())
        .await;
    if let Some(f) = url.strip_prefix("sqlite://") {
        let _ = std::fs::remove_file(f.split('?').next().unwrap());
    }
    format!(
            "queue path on {label}: {CREATES} creates placed in {span:.2} s over {BACKENDS} backend rows \
             ({} backends used): {placements:.0} placements/s (target >= 1000: {:.2}x)",
            hosts.len(),
            placements / 1000.0
        )
}

/// The core over 1,000 pools as the rows report them; returns its figure line.
async fn in_process() -> (String, f64) {
    let (url, _) = fresh_database(None).await;
    let db = Db::connect(&url).await.unwrap();
    Migrator::up(db.connection(), None).await.unwrap();
    register_backends(&db).await;
    let pinned = pinned_type();
    // In process: the core over the same rows.
    let mut view = View::default();
    view.refresh(
        &db.volume_services().await.unwrap(),
        chrono::Utc::now().naive_utc(),
        Duration::from_secs(600),
    );
    assert_eq!(view.pools().len(), BACKENDS);
    let typed = Request {
        size_gib: 1,
        availability_zone: Some("nova".into()),
        extra_specs: pinned.extra_specs.clone(),
        ..Default::default()
    };
    let untyped = Request {
        size_gib: 1,
        ..Default::default()
    };
    let weighers = Weighers {
        capacity: Some(1.0),
        allocated_capacity: Some(-1.0),
    };
    let t = Instant::now();
    for i in 0..DECISIONS {
        let req = if i % 2 == 0 { &typed } else { &untyped };
        let id = format!("v{i}");
        let chosen = view.choose(&id, req, &weighers).unwrap();
        view.written(&chosen.pool, &id);
    }
    let secs = t.elapsed().as_secs_f64();
    let decisions = DECISIONS as f64 / secs;

    if let Some(f) = url.strip_prefix("sqlite://") {
        let _ = std::fs::remove_file(f.split('?').next().unwrap());
    }
    let line = format!(
        "in process: {DECISIONS} decisions in {secs:.2} s (target >= 5000/s: {:.2}x)",
        decisions / 5000.0
    );
    (line, decisions)
}
