//! What the scheduler sees: the pools of the volume services that are enabled and up,
//! read from their `services` rows every `refresh_interval_ms`, less what this
//! scheduler placed on them since their last report.
//!
//! A placement is deducted at once ([`View::choose`]) and logged per pool. Every report
//! is taken in, and the placements it cannot count yet are deducted again from its
//! figures: those still pending (host not yet written) and those written after the
//! report's `timestamp` (taken before the volume service reads the database; the host
//! is written before the cast). So a burst of creates between two reports never
//! over-commits a backend, and every report (space freed by deletes, a backend
//! reporting its storage down) counts at once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use cinder_db::entity::services;

use crate::core::{self, NoValidBackend, PoolState, Request, Weighers};

/// Where one placement went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// `host@backend#pool` (or `cluster@backend#pool`): the pool's name.
    pub pool: String,
    /// `host@backend#pool` of the service placed on: the volume's host.
    pub host: String,
    /// `cluster@backend`, when active-active.
    pub cluster_name: Option<String>,
    /// The service's zone.
    pub availability_zone: String,
}

/// One placement of this scheduler that the pool's report may not count yet.
struct Placed {
    volume_id: String,
    size_gib: u64,
    /// When its host was written (`None`: still pending).
    written: Option<DateTime<Utc>>,
}

/// A pool's report time and its placements not yet known to count in it.
#[derive(Default)]
struct Meta {
    reported: Option<DateTime<Utc>>,
    log: Vec<Placed>,
}

/// Parsed reports, waiting to be merged into the view.
pub struct Reports(Vec<(PoolState, Option<DateTime<Utc>>)>);

/// The pools this scheduler can place on.
#[derive(Default)]
pub struct View {
    pools: Vec<PoolState>,
    meta: Vec<Meta>,
    index: HashMap<String, usize>,
}

fn report_time(raw: &serde_json::Map<String, serde_json::Value>) -> Option<DateTime<Utc>> {
    raw.get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl View {
    /// Rebuilds the view from the volume services' rows at `now`: services disabled,
    /// down (no heartbeat within `down_time`) or without a report are left out; one
    /// service stands for each cluster. Deductions younger than a pool's report stay.
    pub fn refresh(&mut self, rows: &[services::Model], now: NaiveDateTime, down_time: Duration) {
        let reports = View::read(rows, now, down_time);
        self.merge(reports);
    }

    /// The pools the rows report (the parsing half of [`View::refresh`], done outside
    /// the view's lock).
    pub fn read(rows: &[services::Model], now: NaiveDateTime, down_time: Duration) -> Reports {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if row.disabled || !cinder_db::service_is_up(row, down_time, now) {
                continue;
            }
            let Some(raw) = row
                .capabilities
                .as_deref()
                .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
                .and_then(|v| match v {
                    serde_json::Value::Object(m) => Some(m),
                    _ => None,
                })
            else {
                continue;
            };
            let reported = report_time(&raw);
            let fresh = PoolState::from_report(
                &row.host,
                &row.availability_zone,
                row.cluster_name.as_deref(),
                raw,
            );
            out.push((fresh, reported));
        }
        Reports(out)
    }

    /// Takes in fresh reports: deductions younger than a pool's report stay.
    pub fn merge(&mut self, reports: Reports) {
        let n = reports.0.len();
        let mut pools = Vec::with_capacity(n);
        let mut meta = Vec::with_capacity(n);
        let mut index = HashMap::with_capacity(n);
        for (fresh, reported) in reports.0 {
            if index.contains_key(&fresh.name) {
                // Another member of the same cluster already stands for it.
                continue;
            }
            let mut pool = fresh;
            // A report without a time counts as taken now.
            let taken = reported.unwrap_or_else(Utc::now);
            let mut m = Meta {
                reported: Some(taken),
                log: Vec::new(),
            };
            if let Some(&i) = self.index.get(&pool.name) {
                if self.meta[i].reported.is_some_and(|r| taken < r) {
                    // Older than the report already taken in (clocks): keep that.
                    pool = self.pools[i].clone();
                    m = std::mem::take(&mut self.meta[i]);
                } else {
                    for p in std::mem::take(&mut self.meta[i].log) {
                        if p.written.is_none_or(|w| w > taken) {
                            pool.consume(p.size_gib);
                            m.log.push(p);
                        }
                    }
                }
            }
            index.insert(pool.name.clone(), pools.len());
            pools.push(pool);
            meta.push(m);
        }
        self.pools = pools;
        self.meta = meta;
        self.index = index;
    }

    /// The pools, in the order of their services' rows.
    pub fn pools(&self) -> &[PoolState] {
        &self.pools
    }

    /// Picks a pool for `req` (volume `volume_id`) and deducts it there at once. The
    /// placement is pending until [`View::written`] or [`View::give_back`]: no report
    /// counts it before.
    pub fn choose(
        &mut self,
        volume_id: &str,
        req: &Request,
        weighers: &Weighers,
    ) -> Result<Chosen, NoValidBackend> {
        let i = core::schedule(&self.pools, req, weighers)?;
        let pool = &mut self.pools[i];
        pool.consume(req.size_gib);
        self.meta[i].log.push(Placed {
            volume_id: volume_id.to_string(),
            size_gib: req.size_gib,
            written: None,
        });
        Ok(Chosen {
            pool: pool.name.clone(),
            host: format!("{}#{}", pool.backend, pool.pool),
            cluster_name: pool.cluster.clone(),
            availability_zone: pool.availability_zone.clone(),
        })
    }

    /// The placement of `volume_id` on pool `name` is in the database: reports taken
    /// from now on count it.
    pub fn written(&mut self, name: &str, volume_id: &str) {
        if let Some(&i) = self.index.get(name) {
            // Newest first: the placement was just chosen.
            let log = &mut self.meta[i].log;
            if let Some(p) = log.iter_mut().rev().find(|p| p.volume_id == volume_id) {
                p.written = Some(Utc::now());
            }
        }
    }

    /// Takes back the placement of `volume_id` on pool `name` (it was not written, its
    /// cast failed, or its create failed there), if the pool's report does not count it
    /// yet; once it does, the next report leaves it out. Idempotent.
    pub fn give_back(&mut self, name: &str, volume_id: &str) {
        if let Some(&i) = self.index.get(name) {
            let log = &mut self.meta[i].log;
            if let Some(at) = log.iter().rposition(|p| p.volume_id == volume_id) {
                let p = log.remove(at);
                self.pools[i].unconsume(p.size_gib);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(
        id: i32,
        host: &str,
        caps: serde_json::Value,
        age_s: i64,
        disabled: bool,
    ) -> services::Model {
        let now = Utc::now().naive_utc();
        services::Model {
            id,
            uuid: format!("u{id}"),
            host: host.into(),
            binary: "cinder-volume".into(),
            topic: "cinder-volume".into(),
            availability_zone: "nova".into(),
            disabled,
            disabled_reason: None,
            report_count: 1,
            capabilities: Some(caps.to_string()),
            cluster_name: None,
            rpc_current_version: None,
            object_current_version: None,
            replication_status: None,
            active_backend_id: None,
            frozen: false,
            created_at: now,
            updated_at: Some(now - chrono::Duration::seconds(age_s)),
            deleted_at: None,
            deleted: false,
        }
    }

    fn caps(free: f64, at: DateTime<Utc>) -> serde_json::Value {
        json!({"volume_backend_name": "ceph", "total_capacity_gb": 100.0,
               "free_capacity_gb": free, "provisioned_capacity_gb": 0.0,
               "thin_provisioning_support": false, "backend_state": "up",
               "timestamp": at.to_rfc3339()})
    }

    #[test]
    fn down_disabled_and_silent_services_are_not_in_view() {
        let t = Utc::now();
        let rows = [
            row(1, "a@x", caps(10.0, t), 0, false),
            row(2, "b@x", caps(10.0, t), 120, false),
            row(3, "c@x", caps(10.0, t), 0, true),
            services::Model {
                capabilities: None,
                ..row(4, "d@x", caps(1.0, t), 0, false)
            },
        ];
        let mut v = View::default();
        v.refresh(&rows, Utc::now().naive_utc(), Duration::from_secs(60));
        let names: Vec<_> = v.pools().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a@x#ceph"]);
    }

    #[test]
    fn placements_count_until_a_report_counts_them_and_every_report_is_taken_in() {
        let before = Utc::now() - chrono::Duration::seconds(5);
        let rows = [row(1, "a@x", caps(10.0, before), 0, false)];
        let mut v = View::default();
        let now = Utc::now().naive_utc();
        let down = Duration::from_secs(60);
        v.refresh(&rows, now, down);
        let req = Request {
            size_gib: 4,
            ..Default::default()
        };
        let w = Weighers::default();
        let free = |v: &View| v.pools()[0].caps.free_capacity_gb.gib().unwrap();
        let a = v.choose("v1", &req, &w).unwrap();
        v.written(&a.pool, "v1");
        // Pending: even a younger report does not count it.
        v.choose("v2", &req, &w).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let after = Utc::now();
        std::thread::sleep(Duration::from_millis(5));
        v.refresh(&[row(1, "a@x", caps(10.0, after), 0, false)], now, down);
        assert_eq!(free(&v), 6.0, "v1 is in the report, v2 is not yet");
        v.written(&a.pool, "v2");
        // An older report read again (clocks) changes nothing.
        v.refresh(&rows, now, down);
        assert_eq!(free(&v), 6.0);
        // Re-reading the same report keeps what it cannot count: 2 GiB left after
        // v3, so v4 does not fit.
        let same = [row(1, "a@x", caps(10.0, after), 0, false)];
        let c = v.choose("v3", &req, &w).unwrap();
        v.written(&c.pool, "v3");
        v.refresh(&same, now, down);
        assert_eq!(free(&v), 2.0);
        assert!(v.choose("v4", &req, &w).is_err());
        // A report taken after both were written counts them: its figures stand, and
        // a report showing space freed (deletes) is taken in at once.
        let later = Utc::now() + chrono::Duration::seconds(2);
        v.refresh(&[row(1, "a@x", caps(10.0, later), 0, false)], now, down);
        assert_eq!(free(&v), 10.0);
        // Giving back restores room, once only.
        v.choose("v5", &req, &w).unwrap();
        v.choose("v5b", &req, &w).unwrap();
        v.give_back("a@x#ceph", "v5b");
        v.give_back("a@x#ceph", "v5b");
        assert_eq!(free(&v), 6.0);
        // A placement the report already counts is not given back twice.
        v.give_back("a@x#ceph", "v1");
        assert_eq!(free(&v), 6.0);
        // A report saying the storage is down counts at once, placements or not.
        let mut down_caps = caps(10.0, later);
        down_caps["backend_state"] = json!("down");
        v.refresh(&[row(1, "a@x", down_caps, 0, false)], now, down);
        assert!(v.choose("v6", &req, &w).is_err());
    }
}
