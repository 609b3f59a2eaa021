//! Benchmark of the v3 API (no timing assertions; the figures are printed beside the
//! reference and the targets the API issue names). The real release binaries run as
//! their own processes on the quickstart's defaults: SQLite, noauth, the dev cluster
//! (a pool of the run's own), RabbitMQ.
//!
//! 1. Idle RSS of `cinder-api`, `cinder-scheduler` and `cinder-volume` (from
//!    `/proc/<pid>/status`) after they settled. Target: at most 30 MB each (Cinder Zed:
//!    150-190 MB).
//! 2. `POST /volumes` (1 GiB): sequential, then 10 concurrent clients; requests/s,
//!    p50/p99 of the POST, and volumes/s reaching `available`. Target: at least 10x
//!    Cinder's 8-10 req/s and 7-8 volumes/s.
//! 3. `GET /volumes/detail` with 100 volumes, then a page of 45 (the size Cinder's
//!    figures were taken at): sequential, then 10 concurrent clients; requests/s and
//!    p50/p99. Target: at least 30x Cinder's 13.5 req/s sequential and 38-55 req/s
//!    concurrent.
//!
//! Every answer is counted: any error fails the run. Run with `scripts/bench.sh api`
//! (which builds the release binaries first).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cinder_tests::{amqp_url, ceph_conf, create_pool, delete_pool, unique};
use serde_json::{json, Value};

const TOKEN: &str = "bench:bench";

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let b = dir.join(name);
    assert!(
        b.exists(),
        "{} is missing: run `scripts/bench.sh api`, which builds the release binaries",
        b.display()
    );
    b
}

/// Child processes, killed at the end.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `field` of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `RssFile`), in MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Client {
    base: String,
    http: reqwest::Client,
}

/// A list answer, read as a typed client reads it (the items are checked to be JSON
/// and counted, without building a tree of them: the client shares the machine's two
/// cores with the services it measures).
#[derive(serde::Deserialize)]
struct VolumeList {
    volumes: Vec<serde::de::IgnoredAny>,
}

impl Client {
    /// `GET path`: status and the number of volumes listed.
    async fn list(&self, path: &str) -> (u16, usize) {
        let r = self.send_get(path).await;
        let s = r.status().as_u16();
        let bytes = r.bytes().await.unwrap_or_default();
        let n = serde_json::from_slice::<VolumeList>(&bytes)
            .map(|l| l.volumes.len())
            .unwrap_or(usize::MAX);
        (s, n)
    }

    async fn send_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("X-Auth-Token", TOKEN)
            .send()
            .await
            .expect("the API answers")
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.send_get(path).await;
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}/v3/volumes", self.base))
            .header("X-Auth-Token", TOKEN)
            .json(&json!({"volume": {"size": 1}}))
            .send()
            .await
            .expect("the API answers");
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        (
            s,
            v["volume"]["id"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// Waits until every volume in `ids` is `available`; returns when the last became so.
async fn wait_available(c: &Client, ids: &[String]) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (s, body) = c.get("/v3/volumes/detail?limit=1000").await;
        assert_eq!(s, 200);
        let vols = body["volumes"].as_array().cloned().unwrap_or_default();
        let pending = ids
            .iter()
            .filter(|id| {
                !vols
                    .iter()
                    .any(|v| v["id"] == id.as_str() && v["status"] == "available")
            })
            .count();
        assert!(
            !vols.iter().any(|v| v["status"] == "error"),
            "a volume went to error"
        );
        if pending == 0 {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{pending} volumes never became available"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` creates from `clients` concurrent clients: (req/s, p50 ms, p99 ms, volumes/s to
/// available, ids).
async fn creates(c: &Arc<Client>, n: usize, clients: usize) -> (f64, f64, f64, f64, Vec<String>) {
    let start = Instant::now();
    let mut tasks = vec![];
    for k in 0..clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = vec![];
            for _ in (k..n).step_by(clients) {
                let t = Instant::now();
                let (s, id) = c.create().await;
                assert_eq!(s, 202, "a create was refused");
                out.push((t.elapsed(), id));
            }
            out
        }));
    }
    let mut lat = vec![];
    let mut ids = vec![];
    for t in tasks {
        for (d, id) in t.await.unwrap() {
            lat.push(d);
            ids.push(id);
        }
    }
    let posted = start.elapsed();
    let done = wait_available(c, &ids).await;
    lat.sort();
    (
        n as f64 / posted.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        n as f64 / (done - start).as_secs_f64(),
        ids,
    )
}

/// `n` list requests from `clients` concurrent clients: (req/s, p50 ms, p99 ms).
async fn lists(
    c: &Arc<Client>,
    path: &'static str,
    n: usize,
    clients: usize,
    want: usize,
) -> (f64, f64, f64) {
    let start = Instant::now();
    let mut tasks = vec![];
    for k in 0..clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = vec![];
            for _ in (k..n).step_by(clients) {
                let t = Instant::now();
                let (s, n) = c.list(path).await;
                assert_eq!(s, 200, "a list failed");
                assert_eq!(n, want, "a list with the wrong number of volumes");
                out.push(t.elapsed());
            }
            out
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    (
        n as f64 / secs,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let conf = ceph_conf();
    let pool = unique("bench-api");
    create_pool(&conf, &pool);
    std::thread::sleep(Duration::from_secs(2));
    let dir = std::env::temp_dir().join(unique("cinder-bench-api"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.join("cinder.sqlite").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let topic = unique("cinder-scheduler-bench");
    let config = format!(
        "[service]\nhost = \"{host}\"\n[database]\nconnection = \"{db}\"\n\
         [amqp]\ntransport_url = \"{amqp}\"\nscheduler_topic = \"{topic}\"\n\
         [api]\nlisten = \"127.0.0.1:{port}\"\n\
         [quota]\nvolumes = -1\ngigabytes = -1\n\
         [volume]\nenabled_backends = [\"ceph\"]\n\
         [backends.ceph]\nrbd_ceph_conf = \"{conf}\"\nrbd_pool = \"{pool}\"\n",
        host = unique("bench"),
        amqp = amqp_url(),
    );
    let cfg = dir.join("cinder.toml");
    std::fs::write(&cfg, config).unwrap();
    let st = Command::new(bin("cinder-manage"))
        .args(["--config", cfg.to_str().unwrap(), "db", "sync"])
        .status()
        .unwrap();
    assert!(st.success(), "cinder-manage db sync failed");
    let mut procs = Procs(vec![]);
    for name in ["cinder-volume", "cinder-scheduler", "cinder-api"] {
        let child = Command::new(bin(name))
            .args(["--config", cfg.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        procs.0.push((name.to_string(), child));
    }
    let c = Arc::new(Client {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    });
    // Ready: the API answers and the scheduler sees the backend.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = c
            .http
            .get(format!("{}/v3/scheduler-stats/get_pools", c.base))
            .header("X-Auth-Token", "admin:admin")
            .send()
            .await
            .ok()
            .and_then(|r| r.status().is_success().then_some(r));
        if let Some(r) = ok {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if v["pools"].as_array().is_some_and(|p| !p.is_empty()) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the services did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("idle RSS (target <= 30 MB each; Cinder Zed 150-190 MB):");
    for (name, child) in &procs.0 {
        let pid = child.id();
        println!(
            "  {name:<17} {:6.1} MB  (private {:5.1} MB, file-backed code and data {:5.1} MB)",
            status_mb(pid, "VmRSS"),
            status_mb(pid, "RssAnon"),
            status_mb(pid, "RssFile")
        );
    }

    println!("POST /volumes (1 GiB) on SQLite; Cinder Zed: 8-10 req/s (p50 100-120 ms), 7-8 volumes/s available; target >= 10x");
    let (rps, p50, p99, avail, mut ids) = creates(&c, 50, 1).await;
    println!(
        "  sequential:    {rps:7.1} req/s  p50 {p50:6.1} ms  p99 {p99:6.1} ms  {avail:6.1} volumes/s available  ({:.1}x Cinder's 9 req/s)",
        rps / 9.0
    );
    let (rps, p50, p99, avail, more) = creates(&c, 50, 10).await;
    ids.extend(more);
    println!(
        "  10 concurrent: {rps:7.1} req/s  p50 {p50:6.1} ms  p99 {p99:6.1} ms  {avail:6.1} volumes/s available  ({:.1}x Cinder's 7.5 volumes/s)",
        avail / 7.5
    );
    assert_eq!(ids.len(), 100);

    // API_BENCH_LISTS: more concurrent lists, to profile the API under them.
    let n = std::env::var("API_BENCH_LISTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    // 100 volumes as the issue asks; 45 as Cinder's figures were measured.
    for (path, want) in [
        ("/v3/volumes/detail", 100),
        ("/v3/volumes/detail?limit=45", 45),
    ] {
        println!("GET {path}, {want} volumes listed; Cinder Zed (45 volumes): 13.5 req/s sequential (p50 72 ms), 38-55 req/s at 10; target >= 30x");
        let (rps, p50, p99) = lists(&c, path, 300, 1, want).await;
        println!(
            "  sequential:    {rps:7.1} req/s  p50 {p50:6.1} ms  p99 {p99:6.1} ms  ({:.1}x Cinder's 13.5)",
            rps / 13.5
        );
        let (rps, p50, p99) = lists(&c, path, n, 10, want).await;
        println!(
            "  10 concurrent: {rps:7.1} req/s  p50 {p50:6.1} ms  p99 {p99:6.1} ms  ({:.1}x Cinder's 55, {:.1}x its 38)",
            rps / 55.0,
            rps / 38.0
        );
    }

    // Clean up: every volume deleted through the API, then the pool.
    for id in &ids {
        let r = c
            .http
            .delete(format!("{}/v3/volumes/{id}", c.base))
            .header("X-Auth-Token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = c.get("/v3/volumes").await;
        if body["volumes"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the deletes did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(procs);
    delete_pool(&conf, &pool);
    let _ = std::fs::remove_dir_all(&dir);
}
