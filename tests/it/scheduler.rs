//! The scheduler against the real services: two volume services on two pools of the dev
//! cluster, volume types pinned by `volume_backend_name`, capacity, down backends,
//! stay-put clones, rescheduling after a real failure, a burst against the
//! over-subscription limit, and two schedulers sharing one queue.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cinder_common::status::VolumeStatus;
use cinder_db::Db;
use cinder_rpc::messages::{
    GetPools, Pool, ScheduleCreateVolume, SchedulerHints, SchedulerTopic, VolumeRequest,
    VolumeTopic, VolumeTypeSpec,
};
use cinder_rpc::{RpcClient, RpcServer};
use cinder_tests::{amqp_url, ceph as ceph_cli, create_pool, unique};
use rbd_driver::ImageSpec;

use crate::fixtures::{
    ceph, ctx, http_get, launch_on, prepare, prepare_peer, register_volume_service, start_api,
    volume_row, wait_for, Ceph, InProcess, Prepared, Service,
};

const GIB: u64 = 1 << 30;

/// A first-attempt create of volume `id`: untyped, no source, no hints.
fn request(id: &str, size: u64) -> ScheduleCreateVolume {
    ScheduleCreateVolume {
        volume_id: id.to_string(),
        size_gib: size,
        volume_type: None,
        availability_zone: None,
        snapshot_id: None,
        source_volid: None,
        image_location: None,
        image: None,
        scheduler_hints: SchedulerHints::default(),
        retry: Default::default(),
    }
}

/// A test's scheduler queue, its client and database.
struct Bed {
    topic: String,
    client: RpcClient,
    db: Db,
}

impl Bed {
    async fn new(db: &Db) -> Bed {
        Bed {
            topic: unique("it-sched"),
            client: RpcClient::connect(&amqp_url()).await.unwrap(),
            db: db.clone(),
        }
    }

    /// A new volume row of `size` GiB, and its create cast to the scheduler.
    async fn create(&self, size: u64, ty: Option<&VolumeTypeSpec>, source: Option<&str>) -> String {
        let id = self
            .db
            .create_volume(&volume_row(size as i32))
            .await
            .unwrap()
            .id;
        self.cast(&id, size, ty, source).await;
        id
    }

    /// A new volume row of `size` GiB, and its create cast with `hints`.
    async fn create_hinted(&self, size: u64, hints: SchedulerHints) -> String {
        let id = self
            .db
            .create_volume(&volume_row(size as i32))
            .await
            .unwrap()
            .id;
        self.send(ScheduleCreateVolume {
            scheduler_hints: hints,
            ..request(&id, size)
        })
        .await;
        id
    }

    async fn cast(&self, id: &str, size: u64, ty: Option<&VolumeTypeSpec>, source: Option<&str>) {
        self.send(ScheduleCreateVolume {
            volume_type: ty.cloned(),
            source_volid: source.map(str::to_string),
            ..request(id, size)
        })
        .await
    }

    async fn send(&self, msg: ScheduleCreateVolume) {
        self.client
            .cast_request::<SchedulerTopic>(&self.topic, ctx(), msg.into())
            .await
            .unwrap();
    }

    async fn pools(&self) -> Vec<Pool> {
        let get = GetPools {
            detail: true,
            ..Default::default()
        };
        self.client
            .call(&self.topic, ctx(), get, Duration::from_secs(10))
            .await
            .unwrap()
    }

    /// Waits until the scheduler sees exactly `names`.
    async fn wait_pools(&self, names: &[&str]) {
        let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
        wait_for(&format!("the scheduler to see {want:?}"), 30, || async {
            let seen: BTreeSet<String> = match tokio::time::timeout(Duration::from_secs(2), async {
                self.client
                    .call(
                        &self.topic,
                        ctx(),
                        GetPools::default(),
                        Duration::from_secs(2),
                    )
                    .await
            })
            .await
            {
                Ok(Ok(pools)) => pools.into_iter().map(|p: Pool| p.name).collect(),
                other => return Err(format!("{other:?}")),
            };
            if seen == want {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        })
        .await
    }

    /// Waits until volume `id` is final (available or error); returns its row.
    async fn settled(&self, id: &str) -> cinder_db::entity::volumes::Model {
        wait_for(&format!("volume {id} to settle"), 60, || async {
            match self.db.volume(id).await {
                Ok(v) if matches!(v.status, VolumeStatus::Available | VolumeStatus::Error) => Ok(v),
                other => Err(format!("{:?}", other.map(|v| (v.status, v.host)))),
            }
        })
        .await
    }

    /// The detail ids of the user messages about `id`.
    async fn details(&self, id: &str) -> Vec<(String, String)> {
        self.db
            .messages_about(id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| {
                (
                    m.action_id.unwrap_or_default(),
                    m.detail_id.unwrap_or_default(),
                )
            })
            .collect()
    }
}

fn pinned(backend_name: &str) -> VolumeTypeSpec {
    VolumeTypeSpec {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("type-{backend_name}"),
        extra_specs: [("volume_backend_name".to_string(), backend_name.to_string())]
            .into_iter()
            .collect(),
    }
}

/// A pool of the dev cluster with a quota of `quota_gib` GiB (its total capacity).
async fn quota_pool(c: &Ceph, quota_gib: u64) -> String {
    let (conf, pool) = (c.conf.clone(), unique("it"));
    let p = pool.clone();
    tokio::task::spawn_blocking(move || {
        create_pool(&conf, &p);
        let bytes = (quota_gib * GIB).to_string();
        ceph_cli(
            &conf,
            &["osd", "pool", "set-quota", &p, "max_bytes", &bytes],
        );
    })
    .await
    .unwrap();
    pool
}

/// A volume service's preparation on the shared database: backend `name`,
/// over-subscription 2.0, the test's scheduler queue.
fn backend(p: &Prepared, name: &str, topic: &str) -> Prepared {
    let mut p = prepare_peer(p);
    p.service_extra = "service_down_time = 3".into();
    p.amqp_extra = format!("scheduler_topic = \"{topic}\"");
    p.backend_extra =
        format!("volume_backend_name = \"{name}\"\nmax_over_subscription_ratio = 2.0");
    p
}

/// Two volume services on the shared database and their scheduler: A (`fast`) on a
/// pool of 10 GiB (20 GiB thin at 2.0), reporting every `a_stats` s; B (`slow`) on
/// 1000 GiB. The scheduler stacks (multiplier -1): A, the fuller, is its choice
/// whenever A can take the volume.
struct Pair {
    base: Prepared,
    bed: Bed,
    a: Service,
    b: Service,
    sched: InProcess,
    host_a: String,
    host_b: String,
    pool_a: String,
    pool_b: String,
}

impl Pair {
    async fn start(c: &Ceph, a_stats: u64) -> Pair {
        let (pool_a, pool_b) = (quota_pool(c, 10).await, quota_pool(c, 1000).await);
        let base = prepare().await;
        let bed = Bed::new(&base.db).await;
        let mut pa = backend(&base, "fast", &bed.topic);
        pa.stats_interval = a_stats;
        let pb = backend(&base, "slow", &bed.topic);
        let host_a = format!("{}@ceph#fast", pa.host);
        let host_b = format!("{}@ceph#slow", pb.host);
        let a = launch_on(c, pa, &pool_a).await;
        let b = launch_on(c, pb, &pool_b).await;
        let sched =
            InProcess::scheduler(&base.url, &bed.topic, "capacity_weight_multiplier = -1.0").await;
        bed.wait_pools(&[&host_a, &host_b]).await;
        Pair {
            base,
            bed,
            a,
            b,
            sched,
            host_a,
            host_b,
            pool_a,
            pool_b,
        }
    }
}

fn backend_of(row: &cinder_db::entity::volumes::Model) -> String {
    row.host.as_deref().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_land_on_their_backends_room_decides_clones_stay_put_and_a_down_backend_gets_nothing()
{
    let c = ceph().await;
    let Pair {
        base,
        bed,
        a,
        b,
        sched,
        host_a,
        host_b,
        pool_a,
        pool_b,
    } = Pair::start(c, 1).await;

    // Each type lands on its backend, its image in that backend's pool.
    let fast = bed.create(1, Some(&pinned("fast")), None).await;
    let slow = bed.create(1, Some(&pinned("slow")), None).await;
    let (rf, rs) = (bed.settled(&fast).await, bed.settled(&slow).await);
    assert_eq!(
        (rf.status, backend_of(&rf)),
        (VolumeStatus::Available, host_a.clone())
    );
    assert_eq!(
        (rs.status, backend_of(&rs)),
        (VolumeStatus::Available, host_b.clone())
    );
    for (pool, id) in [(&pool_a, &fast), (&pool_b, &slow)] {
        let img = ImageSpec::new(pool, format!("volume-{id}"));
        assert!(c.driver.exists(&img).await.unwrap(), "{img} exists");
    }

    // The pools view through the API: names; capabilities with `detail`; filtered by a
    // volume type (3.35); unknown filters refused (3.31).
    let (api, api_task) = start_api(&base.url, &bed.topic).await;
    let names = |body: &serde_json::Value| -> BTreeSet<String> {
        body["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let admin = Some("admin:p");
    let r = http_get(&api, "/v3/p/scheduler-stats/get_pools", admin, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r.body), [host_a.clone(), host_b.clone()].into());
    assert!(
        r.body["pools"][0].get("capabilities").is_none(),
        "{}",
        r.body
    );
    assert!(
        r.headers["x-openstack-request-id"].starts_with("req-"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.headers["openstack-api-version"], "volume 3.0");
    // Admins only.
    let member = http_get(
        &api,
        "/v3/p/scheduler-stats/get_pools",
        Some("alice:p"),
        None,
    )
    .await;
    assert_eq!(
        (member.status, member.body["forbidden"]["code"].as_u64()),
        (403, Some(403))
    );
    let fast_type = base
        .db
        .create_volume_type(&unique("fast"), &pinned("fast").extra_specs)
        .await
        .unwrap();
    let path = format!(
        "/v3/scheduler-stats/get_pools?detail=true&volume_type={}",
        fast_type.name
    );
    let r = http_get(&api, &path, admin, Some("3.67")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["openstack-api-version"], "volume 3.67");
    assert_eq!(names(&r.body), [host_a.clone()].into());
    let caps = &r.body["pools"][0]["capabilities"];
    assert_eq!(caps["volume_backend_name"], "fast", "{caps}");
    assert_eq!(
        caps["total_capacity_gb"], 10.0,
        "the pool quota is the total: {caps}"
    );
    assert!(
        caps["timestamp"].is_string() && caps["allocated_capacity_gb"].is_number(),
        "{caps}"
    );
    // Before 3.35 the type filter is dropped; from 3.31 an unknown filter is refused.
    let r = http_get(&api, &path, admin, Some("3.34")).await;
    assert_eq!(names(&r.body).len(), 2);
    let r = http_get(
        &api,
        "/v3/p/scheduler-stats/get_pools?foo=bar",
        admin,
        Some("3.31"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["badRequest"]["code"].as_u64()),
        (400, Some(400)),
        "{}",
        r.body
    );
    let r = http_get(&api, "/v3/p/scheduler-stats/get_pools", admin, Some("3.72")).await;
    assert_eq!(r.status, 406);
    // The versions documents, without a token.
    let root = http_get(&api, "/", None, None).await;
    assert_eq!(root.status, 300);
    let v3 = http_get(&api, "/v3/", None, None).await;
    assert_eq!(v3.status, 200);
    assert_eq!(v3.body, root.body);
    assert_eq!(v3.body["versions"][0]["version"], "3.71");
    assert_eq!(
        v3.body["versions"][0]["links"][1]["href"],
        format!("http://{api}/v3/")
    );
    api_task.stop().await;

    // Untyped: the preferred backend while it has room, the roomy one once it has not.
    let small = bed.settled(&bed.create(1, None, None).await).await;
    assert_eq!(
        backend_of(&small),
        host_a,
        "stacking prefers the fuller backend"
    );
    let big = bed.settled(&bed.create(25, None, None).await).await;
    assert_eq!(
        (big.status, backend_of(&big)),
        (VolumeStatus::Available, host_b.clone()),
        "25 GiB does not fit A's 20 GiB of thin capacity"
    );

    // A clone stays with its source, even where the weigher would not go.
    let clone = bed.settled(&bed.create(1, None, Some(&slow)).await).await;
    assert_eq!(
        (clone.status, backend_of(&clone)),
        (VolumeStatus::Available, host_b.clone())
    );

    // A type no backend matches: error, a message saying why, nothing deducted.
    let allocated = |pools: Vec<Pool>| -> BTreeMap<String, serde_json::Value> {
        pools
            .into_iter()
            .map(|p| {
                (
                    p.name,
                    p.capabilities.unwrap()["allocated_capacity_gb"].clone(),
                )
            })
            .collect()
    };
    let before = allocated(bed.pools().await);
    let none = bed.create(1, Some(&pinned("nowhere")), None).await;
    let row = bed.settled(&none).await;
    assert_eq!((row.status, row.host), (VolumeStatus::Error, None));
    assert_eq!(
        bed.details(&none).await,
        [("001".to_string(), "103".to_string())]
    );
    assert_eq!(
        allocated(bed.pools().await),
        before,
        "a failed placement deducts nothing"
    );

    // A's heartbeat stops: once it is down it gets nothing, though it is preferred.
    a.stop().await;
    bed.wait_pools(&[&host_b]).await;
    for _ in 0..3 {
        let id = bed.create(1, None, None).await;
        let r = bed.settled(&id).await;
        assert_eq!(
            (r.status, backend_of(&r)),
            (VolumeStatus::Available, host_b.clone()),
            "user messages about {id}: {:?}",
            bed.db.messages_about(&id).await.unwrap()
        );
    }
    // A clone of a volume on A cannot stay put: it fails, saying so.
    let orphan = bed.create(1, None, Some(&fast)).await;
    let settled = bed.settled(&orphan).await;
    assert_eq!(
        bed.details(&orphan).await,
        [("001".to_string(), "104".to_string())],
        "{settled:?}: {:?}",
        bed.db.messages_about(&orphan).await.unwrap()
    );
    assert_eq!(settled.status, VolumeStatus::Error);

    sched.stop().await;
    b.stop().await;
    delete_queues(std::slice::from_ref(&bed.topic)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_between_two_reports_never_exceeds_the_over_subscription_limit() {
    let c = ceph().await;
    // 10 GiB at 2.0: 20 GiB may be provisioned. Reports come every 60 s, so the whole
    // burst sees one report: only the scheduler's own deductions hold the limit.
    let pool = quota_pool(c, 10).await;
    let base = prepare().await;
    let bed = Bed::new(&base.db).await;
    let mut pa = backend(&base, "fast", &bed.topic);
    pa.stats_interval = 60;
    let host = format!("{}@ceph#fast", pa.host);
    let a = launch_on(c, pa, &pool).await;
    let sched = InProcess::scheduler(&base.url, &bed.topic, "").await;
    bed.wait_pools(&[&host]).await;

    let mut ids = Vec::new();
    for _ in 0..50 {
        let id = base.db.create_volume(&volume_row(1)).await.unwrap().id;
        ids.push(id);
    }
    for id in &ids {
        bed.cast(id, 1, None, None).await;
    }
    let (mut placed, mut refused) = (0, 0);
    for id in &ids {
        let row = bed.settled(id).await;
        match row.status {
            VolumeStatus::Available => {
                assert_eq!(backend_of(&row), host);
                placed += 1;
            }
            _ => {
                assert_eq!(row.host, None);
                assert_eq!(
                    bed.details(id).await,
                    [("001".to_string(), "102".to_string())]
                );
                refused += 1;
            }
        }
    }
    println!("burst of 50 x 1 GiB on a 20 GiB thin limit: {placed} placed, {refused} refused");
    assert_eq!(placed, 20, "exactly the limit is placed");
    assert_eq!(refused, 30);
    assert_eq!(base.db.provisioned_gib(&host).await.unwrap(), 20);

    sched.stop().await;
    a.stop().await;
    delete_queues(std::slice::from_ref(&bed.topic)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_chosen_backend_fails_is_rescheduled_to_another_and_ends_available() {
    let c = ceph().await;
    // A's report stays "up" after its pool goes: the scheduler keeps choosing it.
    let Pair {
        bed,
        a,
        b,
        sched,
        host_a,
        host_b,
        pool_a,
        pool_b,
        ..
    } = Pair::start(c, 60).await;
    let first = bed.settled(&bed.create(1, None, None).await).await;
    assert_eq!(backend_of(&first), host_a, "A is the scheduler's choice");

    // A's pool is removed: its creates fail for real.
    let (conf, p) = (c.conf.clone(), pool_a.clone());
    tokio::task::spawn_blocking(move || cinder_tests::delete_pool(&conf, &p))
        .await
        .unwrap();
    let id = bed.create(1, None, None).await;
    let row = bed.settled(&id).await;
    assert_eq!(
        (row.status, backend_of(&row)),
        (VolumeStatus::Available, host_b.clone()),
        "rescheduled to B"
    );
    // A tried and failed (Cinder's message for a driver's failed create).
    assert_eq!(
        bed.details(&id).await,
        [("008".to_string(), "012".to_string())]
    );
    assert!(c
        .driver
        .exists(&ImageSpec::new(&pool_b, format!("volume-{id}")))
        .await
        .unwrap());

    sched.stop().await;
    a.stop().await;
    b.stop().await;
    delete_queues(std::slice::from_ref(&bed.topic)).await;
}

/// Volume services that are rows and queues only, up and reporting `totals` GiB each
/// (thin, nothing provisioned); the test reads what reaches their queues.
async fn fake_backends(db: &Db, totals: &[f64]) -> (Vec<String>, Vec<RpcServer<VolumeTopic>>) {
    let mut hosts = Vec::new();
    let mut servers = Vec::new();
    for &total in totals {
        let h = unique("it") + "@ceph";
        let row = register_volume_service(db, &h, None).await;
        let (db, id) = (db.clone(), row.id);
        tokio::spawn(async move {
            loop {
                let caps = serde_json::json!({
                    "volume_backend_name": "ceph", "total_capacity_gb": total,
                    "free_capacity_gb": total, "provisioned_capacity_gb": 0.0,
                    "thin_provisioning_support": true, "backend_state": "up",
                    "max_over_subscription_ratio": "20.0",
                    "timestamp": chrono::Utc::now().to_rfc3339(),
                });
                if db.heartbeat(id, Some(&caps)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let queue = cinder_rpc::topology::backend_queue(&h);
        servers.push(
            RpcServer::<VolumeTopic>::bind(&amqp_url(), &queue, 100)
                .await
                .unwrap(),
        );
        hosts.push(h);
    }
    (hosts, servers)
}

/// The backend (of `hosts`) the create of `id` reached.
async fn arrival(servers: &mut [RpcServer<VolumeTopic>], hosts: &[String], id: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        for (s, host) in servers.iter_mut().zip(hosts) {
            if let Ok(Some(Ok(req))) =
                tokio::time::timeout(Duration::from_millis(50), s.next()).await
            {
                req.ack().await.unwrap();
                match &req.envelope.body {
                    VolumeRequest::CreateVolume(c) if c.volume_id == id => return host.clone(),
                    other => panic!("unexpected request {other:?}"),
                }
            }
        }
    }
    panic!("the create of {id} reached no backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_hints_place_a_volume_with_or_away_from_the_named_volumes() {
    let base = prepare().await;
    let bed = Bed::new(&base.db).await;
    // The second backend has the more room: the weigher's choice without hints.
    let (hosts, mut servers) = fake_backends(&base.db, &[1000.0, 2000.0]).await;
    let sched = InProcess::scheduler(&base.url, &bed.topic, "").await;
    let names: Vec<String> = hosts.iter().map(|h| format!("{h}#ceph")).collect();
    bed.wait_pools(&[&names[0], &names[1]]).await;
    let hinted = |same: Option<&str>, different: Option<&str>| SchedulerHints {
        same_host: same.map(|v| vec![v.to_string()]),
        different_host: different.map(|v| vec![v.to_string()]),
    };

    let x = bed.create_hinted(1, SchedulerHints::default()).await;
    assert_eq!(arrival(&mut servers, &hosts, &x).await, hosts[1]);
    // Away from x: the other backend, against the weigher.
    let z = bed.create_hinted(1, hinted(None, Some(&x))).await;
    assert_eq!(arrival(&mut servers, &hosts, &z).await, hosts[0]);
    // With z: z's backend, against the weigher.
    for _ in 0..3 {
        let v = bed.create_hinted(1, hinted(Some(&z), None)).await;
        assert_eq!(arrival(&mut servers, &hosts, &v).await, hosts[0]);
    }
    // With x and away from x: nothing fits; the message says the hints.
    let none = bed.create_hinted(1, hinted(Some(&x), Some(&x))).await;
    assert_eq!(bed.settled(&none).await.status, VolumeStatus::Error);
    assert_eq!(
        bed.details(&none).await,
        [("001".to_string(), "106".to_string())]
    );

    sched.stop().await;
    let mut queues: Vec<String> = hosts
        .iter()
        .map(|h| cinder_rpc::topology::backend_queue(h))
        .collect();
    queues.push(bed.topic.clone());
    delete_queues(&queues).await;
}

/// Two schedulers consume one queue: each create is cast twice and one scheduler stops
/// halfway; every volume still reaches a backend's queue exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_share_the_queue_and_place_each_volume_exactly_once() {
    let base = prepare().await;
    let bed = Bed::new(&base.db).await;
    // Two backends that are rows and queues only: the test reads what reaches them.
    let (hosts, mut servers) = fake_backends(&base.db, &[1000.0, 1000.0]).await;
    let s1 = InProcess::scheduler(&base.url, &bed.topic, "").await;
    let s2 = InProcess::scheduler(&base.url, &bed.topic, "").await;
    let names: Vec<String> = hosts.iter().map(|h| format!("{h}#ceph")).collect();
    bed.wait_pools(&[&names[0], &names[1]]).await;

    let n = 40;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(base.db.create_volume(&volume_row(1)).await.unwrap().id);
    }
    for (i, id) in ids.iter().enumerate() {
        bed.cast(id, 1, None, None).await;
        bed.cast(id, 1, None, None).await;
        if i == n / 2 {
            s1.stop.cancel();
        }
    }
    // Read both backends' queues until every volume arrived, then a little longer for
    // any second copy.
    let mut arrived: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if now > deadline || quiet_until.is_some_and(|q| now > q) {
            break;
        }
        for (s, host) in servers.iter_mut().zip(&hosts) {
            if let Ok(Some(Ok(req))) =
                tokio::time::timeout(Duration::from_millis(50), s.next()).await
            {
                if let VolumeRequest::CreateVolume(c) = &req.envelope.body {
                    arrived
                        .entry(c.volume_id.clone())
                        .or_default()
                        .push(host.clone());
                }
                req.ack().await.unwrap();
            }
        }
        if quiet_until.is_none() && arrived.len() == n {
            quiet_until = Some(tokio::time::Instant::now() + Duration::from_secs(3));
        }
    }
    assert_eq!(arrived.len(), n, "every volume reached a backend");
    for (id, at) in &arrived {
        assert_eq!(
            at.len(),
            1,
            "volume {id} was cast {} times: {at:?}",
            at.len()
        );
        let row = base.db.volume(id).await.unwrap();
        assert_eq!(
            row.host,
            Some(format!("{}#ceph", at[0])),
            "the row names where it went"
        );
    }
    let per_backend: BTreeMap<&String, usize> =
        arrived.values().fold(BTreeMap::new(), |mut m, at| {
            *m.entry(&at[0]).or_default() += 1;
            m
        });
    println!("placements per backend: {per_backend:?}");

    tokio::time::timeout(Duration::from_secs(20), s1.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    s2.stop().await;
    let mut queues: Vec<String> = hosts
        .iter()
        .map(|h| cinder_rpc::topology::backend_queue(h))
        .collect();
    queues.push(bed.topic.clone());
    delete_queues(&queues).await;
}

async fn delete_queues(queues: &[String]) {
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in queues {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
}
