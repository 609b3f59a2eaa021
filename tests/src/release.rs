//! The release binaries as their own processes, for the benchmarks that measure the
//! whole service: where they are, starting them on a config file, and a small client
//! for their API (noauth tokens).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The release binary `name` beside the running benchmark, or a panic naming the
/// `scripts/bench.sh` target that builds it.
pub fn bin(name: &str, bench: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let b = dir.join(name);
    assert!(
        b.exists(),
        "{} is missing: run `scripts/bench.sh {bench}`, which builds the release binaries",
        b.display()
    );
    b
}

/// Child processes, killed when dropped.
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Migrates the database of `config` (`cinder-manage db sync`), then starts `services`
/// on it, logging at `BENCH_SERVICE_LOG` (default `warn`).
pub fn start(config: &Path, services: &[&str], bench: &str) -> Procs {
    let st = Command::new(bin("cinder-manage", bench))
        .args(["--config", config.to_str().unwrap(), "db", "sync"])
        .status()
        .unwrap();
    assert!(st.success(), "cinder-manage db sync failed");
    let mut procs = Procs(vec![]);
    for name in services {
        procs.0.push(
            Command::new(bin(name, bench))
                .args(["--config", config.to_str().unwrap()])
                .env(
                    "RUST_LOG",
                    std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .spawn()
                .unwrap(),
        );
    }
    procs
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client of the API at `base` with a noauth token (`user:project`).
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: impl Into<String>, token: &str) -> Self {
        Api {
            base: base.into(),
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    /// One request at microversion `mv` (the base version without); status and JSON body
    /// (`Null` when there is none; status 0 when nothing answers).
    pub async fn call_v(
        &self,
        method: reqwest::Method,
        path: &str,
        mv: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Auth-Token", &self.token);
        if let Some(v) = mv {
            rb = rb.header("OpenStack-API-Version", format!("volume {v}"));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        // Nothing listening yet (a service starting): status 0.
        let Ok(r) = rb.send().await else {
            return (0, Value::Null);
        };
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One request at the base version.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_v(method, path, None, body).await
    }

    /// Polls `path` every 20 ms until `key.status` is `want`; panics on an error status
    /// and after 300 s. When it got there.
    pub async fn until(&self, path: &str, key: &str, want: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut silent = 0;
        loop {
            let (status, v) = self.call(reqwest::Method::GET, path, None).await;
            silent = if status == 0 { silent + 1 } else { 0 };
            assert!(
                silent < 50,
                "the API stopped answering while {path} was polled"
            );
            let s = v[key]["status"].as_str().unwrap_or("").to_string();
            if s == want {
                return Instant::now();
            }
            assert!(
                !s.starts_with("error"),
                "{path} went to {s}: {}",
                v[key]["fail_reason"]
            );
            assert!(
                Instant::now() < deadline,
                "{path} never became {want} ({s})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deletes `path` and waits (up to 60 s) until it answers 404.
    pub async fn delete_gone(&self, path: &str) {
        let (s, v) = self.call(reqwest::Method::DELETE, path, None).await;
        assert!(s == 202 || s == 204, "DELETE {path}: {s} {v}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.call(reqwest::Method::GET, path, None).await.0 {
                404 => break,
                0 => panic!("the API stopped answering while {path} was deleted"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "{path} was not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `script` in bash with `pipefail`; its wall time in seconds. Panics when it fails.
pub fn timed_shell(script: &str) -> f64 {
    let t = Instant::now();
    let st = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .status()
        .unwrap();
    assert!(st.success(), "{script} failed");
    t.elapsed().as_secs_f64()
}
