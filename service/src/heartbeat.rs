//! The heartbeat: every `report_interval` it bumps the service row's `report_count` and
//! `updated_at` (with the latest capabilities when they changed). The scheduler and the
//! API read liveness from that row, so the heartbeat must never wait on librbd: it runs
//! on the async runtime, and every librbd call runs on the driver's own threads.
//!
//! It measures itself: the gap between consecutive successful writes, the largest gap,
//! and the age of the last write, for metrics and for the test that proves the bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cinder_common::shutdown::CancellationToken;
use cinder_db::Db;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// What the heartbeat has done so far.
#[derive(Debug, Default)]
pub struct HeartbeatStats {
    writes: AtomicU64,
    failures: AtomicU64,
    max_gap_micros: AtomicU64,
    last_write: Mutex<Option<Instant>>,
}

impl HeartbeatStats {
    /// Successful writes.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Failed or timed-out writes.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The largest gap between two consecutive successful writes.
    pub fn max_gap(&self) -> Duration {
        Duration::from_micros(self.max_gap_micros.load(Ordering::Relaxed))
    }

    /// Time since the last successful write.
    pub fn age(&self) -> Option<Duration> {
        self.last_write
            .lock()
            .ok()
            .and_then(|l| l.map(|t| t.elapsed()))
    }

    fn record_write(&self) {
        let now = Instant::now();
        if let Ok(mut last) = self.last_write.lock() {
            if let Some(prev) = *last {
                let gap = (now - prev).as_micros() as u64;
                self.max_gap_micros.fetch_max(gap, Ordering::Relaxed);
            }
            *last = Some(now);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// The heartbeat of one service row.
pub struct Heartbeat {
    db: Db,
    service_id: i32,
    interval: Duration,
    capabilities: watch::Receiver<Option<serde_json::Value>>,
    stats: Arc<HeartbeatStats>,
}

impl Heartbeat {
    /// A heartbeat for `service_id` every `interval`, sending `capabilities` whenever
    /// they change.
    pub fn new(
        db: Db,
        service_id: i32,
        interval: Duration,
        capabilities: watch::Receiver<Option<serde_json::Value>>,
    ) -> Heartbeat {
        Heartbeat {
            db,
            service_id,
            interval,
            capabilities,
            stats: Arc::default(),
        }
    }

    /// Its statistics (shared; read them while it runs).
    pub fn stats(&self) -> Arc<HeartbeatStats> {
        self.stats.clone()
    }

    /// Beats until `shutdown`. A write that fails or takes longer than the interval is
    /// logged and retried at the next tick; the loop itself never stops on errors.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let caps = if self.capabilities.has_changed().unwrap_or(false) {
                self.capabilities.borrow_and_update().clone()
            } else {
                None
            };
            match tokio::time::timeout(
                self.interval,
                self.db.heartbeat(self.service_id, caps.as_ref()),
            )
            .await
            {
                Ok(Ok(())) => self.stats.record_write(),
                Ok(Err(e)) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(service_id = self.service_id, error = %e, "heartbeat write failed");
                }
                Err(_) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(service_id = self.service_id, interval = ?self.interval, "heartbeat write timed out");
                }
            }
        }
    }
}
