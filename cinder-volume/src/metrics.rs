//! Prometheus metrics of the volume service, served as text on `GET /metrics`:
//! operations by method and outcome with latency histograms, operations in flight,
//! the driver pool's lanes (running, waiting), heartbeat age, backend capacity, the
//! backend's health (broker connected, heartbeat recent), and the progress of each image
//! download in flight.
//!
//! Plain atomics and one small HTTP responder on the async runtime; no framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cinder_drivers::Lanes;
use cinder_service::HeartbeatStats;

/// Latency histogram bounds, seconds.
const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What a backend exposes besides its operations.
pub struct BackendProbe {
    /// The heartbeat's statistics.
    pub heartbeat: Arc<HeartbeatStats>,
    /// The driver's lanes right now.
    pub lanes: Box<dyn Fn() -> Option<Lanes> + Send + Sync>,
    /// The latest capacity report.
    pub capabilities: tokio::sync::watch::Receiver<Option<serde_json::Value>>,
    /// Whether every consumer has its broker connection right now.
    pub broker: Box<dyn Fn() -> bool + Send + Sync>,
    /// The heartbeat's interval (`report_interval`).
    pub report_interval: Duration,
}

/// The process's metrics (all backends).
#[derive(Default)]
pub struct Metrics {
    ops: Mutex<BTreeMap<(String, String, &'static str), Histogram>>,
    in_flight: AtomicI64,
    backends: Mutex<BTreeMap<String, BackendProbe>>,
    scrapes: AtomicU64,
    downloads: Mutex<BTreeMap<String, Arc<DownloadProgress>>>,
    unknown_images: Mutex<BTreeMap<String, Vec<String>>>,
}

/// Unknown images named one by one on the metrics, at most (the count says the rest).
const UNKNOWN_NAMED: usize = 100;

/// The bytes an image download into a volume has written so far, and how many it
/// will (when Glance said).
#[derive(Debug, Default)]
pub struct DownloadProgress {
    /// Bytes received so far.
    pub done: AtomicU64,
    /// The image's size (0: unknown).
    pub total: AtomicU64,
}

/// Shows a download on the metrics until dropped.
pub struct Downloading<'a> {
    metrics: &'a Metrics,
    volume_id: String,
    /// Its progress, to update.
    pub progress: Arc<DownloadProgress>,
}

impl Drop for Downloading<'_> {
    fn drop(&mut self) {
        if let Ok(mut d) = self.metrics.downloads.lock() {
            d.remove(&self.volume_id);
        }
    }
}

/// Counts an operation in flight until dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Registers a backend's probes under `backend` (`host@backend`).
    pub fn add_backend(&self, backend: &str, probe: BackendProbe) {
        if let Ok(mut b) = self.backends.lock() {
            b.insert(backend.to_string(), probe);
        }
    }

    /// Marks an operation in flight.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Shows the download of an image into `volume_id` until the guard is dropped.
    pub fn downloading(&self, volume_id: &str, total: Option<u64>) -> Downloading<'_> {
        let progress = Arc::new(DownloadProgress::default());
        progress
            .total
            .store(total.unwrap_or_default(), Ordering::Relaxed);
        if let Ok(mut d) = self.downloads.lock() {
            d.insert(volume_id.to_string(), progress.clone());
        }
        Downloading {
            metrics: self,
            volume_id: volume_id.to_string(),
            progress,
        }
    }

    /// The images start-up reconciliation found in `backend`'s pool that no volume row
    /// knows (left alone, for an operator to look at).
    pub fn set_unknown_images(&self, backend: &str, names: &[String]) {
        if let Ok(mut u) = self.unknown_images.lock() {
            u.insert(backend.to_string(), names.to_vec());
        }
    }

    /// Records a finished operation.
    pub fn record(&self, backend: &str, method: &str, ok: bool, took: Duration) {
        let Ok(mut ops) = self.ops.lock() else { return };
        let h = ops
            .entry((
                backend.to_string(),
                method.to_string(),
                if ok { "ok" } else { "error" },
            ))
            .or_default();
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP cinder_volume_operations_seconds Volume service operations by method and outcome.\n");
        out.push_str("# TYPE cinder_volume_operations_seconds histogram\n");
        if let Ok(ops) = self.ops.lock() {
            for ((backend, method, outcome), h) in ops.iter() {
                let labels =
                    format!("backend=\"{backend}\",method=\"{method}\",outcome=\"{outcome}\"");
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "cinder_volume_operations_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "cinder_volume_operations_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "cinder_volume_operations_seconds_sum{{{labels}}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "cinder_volume_operations_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        out.push_str("# HELP cinder_volume_operations_in_flight Operations being handled now.\n# TYPE cinder_volume_operations_in_flight gauge\n");
        let _ = writeln!(
            out,
            "cinder_volume_operations_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str("# HELP cinder_volume_driver_pool_threads librbd pool lanes: running and waiting calls.\n# TYPE cinder_volume_driver_pool_threads gauge\n");
        // Per backend, one block per family (Prometheus wants a family's lines together).
        let mut fam: [(&str, &str, String); 5] = [
            ("cinder_volume_heartbeat_age_seconds", "Time since the last heartbeat write (-1: none yet).", String::new()),
            ("cinder_volume_heartbeat_max_gap_seconds", "Largest gap between two heartbeat writes.", String::new()),
            ("cinder_volume_capacity_gb", "Backend capacity from the last report.", String::new()),
            ("cinder_volume_broker_connected", "1 while every consumer of the backend has its broker connection; 0 while cut off (reconnecting).", String::new()),
            ("cinder_volume_healthy", "1 when the backend consumes its queues and its last heartbeat write is within two report intervals; 0 otherwise.", String::new()),
        ];
        if let Ok(backends) = self.backends.lock() {
            for (backend, p) in backends.iter() {
                let l = (p.lanes)().unwrap_or_default();
                for (lane, running, waiting) in [
                    ("short", l.short_running, l.short_waiting),
                    ("long", l.long_running, l.long_waiting),
                ] {
                    let _ = writeln!(out, "cinder_volume_driver_pool_threads{{backend=\"{backend}\",lane=\"{lane}\",state=\"running\"}} {running}");
                    let _ = writeln!(out, "cinder_volume_driver_pool_threads{{backend=\"{backend}\",lane=\"{lane}\",state=\"waiting\"}} {waiting}");
                }
                let age = p.heartbeat.age().map(|a| a.as_secs_f64()).unwrap_or(-1.0);
                let _ = writeln!(fam[0].2, "{}{{backend=\"{backend}\"}} {age}", fam[0].0);
                let gap = p.heartbeat.max_gap().as_secs_f64();
                let _ = writeln!(fam[1].2, "{}{{backend=\"{backend}\"}} {gap}", fam[1].0);
                if let Some(caps) = p.capabilities.borrow().as_ref() {
                    for key in [
                        "total_capacity_gb",
                        "free_capacity_gb",
                        "provisioned_capacity_gb",
                    ] {
                        if let Some(v) = caps.get(key).and_then(|v| v.as_f64()) {
                            let kind = key.trim_end_matches("_capacity_gb");
                            let _ = writeln!(
                                fam[2].2,
                                "{}{{backend=\"{backend}\",kind=\"{kind}\"}} {v}",
                                fam[2].0
                            );
                        }
                    }
                }
                let broker = (p.broker)();
                let beating = p
                    .heartbeat
                    .age()
                    .is_some_and(|a| a <= p.report_interval * 2);
                let _ = writeln!(
                    fam[3].2,
                    "{}{{backend=\"{backend}\"}} {}",
                    fam[3].0, broker as u8
                );
                let _ = writeln!(
                    fam[4].2,
                    "{}{{backend=\"{backend}\"}} {}",
                    fam[4].0,
                    (broker && beating) as u8
                );
            }
        }
        for (name, help, lines) in &fam {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{lines}");
        }
        // Each family in one block; names are label values, escaped.
        if let Ok(u) = self.unknown_images.lock() {
            out.push_str("# HELP cinder_volume_unknown_images Images in the pool that no volume row knows, found at start (left alone).\n# TYPE cinder_volume_unknown_images gauge\n");
            for (backend, names) in u.iter() {
                let _ = writeln!(
                    out,
                    "cinder_volume_unknown_images{{backend=\"{}\"}} {}",
                    label(backend),
                    names.len()
                );
            }
            out.push_str("# HELP cinder_volume_unknown_image One such image by name (the first 100).\n# TYPE cinder_volume_unknown_image gauge\n");
            for (backend, names) in u.iter() {
                for name in names.iter().take(UNKNOWN_NAMED) {
                    let _ = writeln!(
                        out,
                        "cinder_volume_unknown_image{{backend=\"{}\",image=\"{}\"}} 1",
                        label(backend),
                        label(name)
                    );
                }
            }
        }
        out.push_str("# HELP cinder_volume_image_download_bytes Image downloads in flight: bytes received and the image's size (0: unknown).\n# TYPE cinder_volume_image_download_bytes gauge\n");
        if let Ok(d) = self.downloads.lock() {
            for (volume, p) in d.iter() {
                for (kind, v) in [("done", &p.done), ("total", &p.total)] {
                    let _ = writeln!(
                        out,
                        "cinder_volume_image_download_bytes{{volume_id=\"{volume}\",kind=\"{kind}\"}} {}",
                        v.load(Ordering::Relaxed)
                    );
                }
            }
        }
        out
    }
}

/// A label value as the text format wants it: backslash, double quote and newline
/// escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let (mut sock, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            // Read the request head (bounded), then answer and close.
            while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf[len..])).await
                {
                    Ok(Ok(n)) if n > 0 => len += n,
                    _ => return,
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let (status, body) = if head.starts_with("GET /metrics ") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_shows_its_progress_until_it_ends() {
        let m = Metrics::default();
        let d = m.downloading("v-1", Some(4096));
        d.progress.done.store(1024, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains(
                "cinder_volume_image_download_bytes{volume_id=\"v-1\",kind=\"done\"} 1024"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "cinder_volume_image_download_bytes{volume_id=\"v-1\",kind=\"total\"} 4096"
            ),
            "{text}"
        );
        drop(d);
        assert!(!m.render().contains("volume_id=\"v-1\""));
    }

    #[test]
    fn unknown_images_are_named_with_their_label_values_escaped() {
        let m = Metrics::default();
        m.set_unknown_images("h@b", &["volume-x".into(), "odd\"name\\".into()]);
        let text = m.render();
        assert!(
            text.contains("cinder_volume_unknown_images{backend=\"h@b\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("cinder_volume_unknown_image{backend=\"h@b\",image=\"volume-x\"} 1"),
            "{text}"
        );
        assert!(text.contains("image=\"odd\\\"name\\\\\"} 1"), "{text}");
    }
}
