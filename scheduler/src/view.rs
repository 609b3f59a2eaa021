//! What the scheduler sees: the pools of the volume services that are enabled and up,
//! read from their `services` rows every `refresh_interval_ms`, less what this
//! scheduler placed on them since their last report.
//!
//! A placement is deducted at once ([`View::choose`]). A report replaces the deducted
//! figures only when it was taken after the last placement on the pool (its
//! `timestamp` is taken before the volume service reads the database, and the host is
//! written before the cast), so a burst of creates between two reports never
//! over-commits a backend.

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

struct Meta {
    /// When the report was taken.
    reported: Option<DateTime<Utc>>,
    /// When the last placement on the pool was written.
    consumed: Option<DateTime<Utc>>,
    /// Placements chosen but not yet written (or given back): no report can count
    /// them yet.
    pending: u32,
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
            let (pool, m) = match self.index.get(&fresh.name).map(|&i| (i, &self.meta[i])) {
                Some((i, old))
                    if old.pending > 0
                        || old
                            .consumed
                            .is_some_and(|c| reported.is_none_or(|r| r <= c)) =>
                {
                    // The report predates a placement of ours: keep our figures.
                    (
                        self.pools[i].clone(),
                        Meta {
                            reported: old.reported,
                            consumed: old.consumed,
                            pending: old.pending,
                        },
                    )
                }
                _ => (
                    fresh,
                    Meta {
                        reported,
                        consumed: None,
                        pending: 0,
                    },
                ),
            };
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

    /// Picks a pool for `req` and deducts it there at once. The placement is pending
    /// until [`View::written`] or [`View::give_back`]: until then no report replaces the
    /// pool's figures.
    pub fn choose(&mut self, req: &Request, weighers: &Weighers) -> Result<Chosen, NoValidBackend> {
        let i = core::schedule(&self.pools, req, weighers)?;
        let pool = &mut self.pools[i];
        pool.consume(req.size_gib);
        self.meta[i].pending += 1;
        Ok(Chosen {
            pool: pool.name.clone(),
            host: format!("{}#{}", pool.backend, pool.pool),
            cluster_name: pool.cluster.clone(),
            availability_zone: pool.availability_zone.clone(),
        })
    }

    /// A chosen placement on pool `name` is in the database: reports taken from now on
    /// count it.
    pub fn written(&mut self, name: &str) {
        if let Some(&i) = self.index.get(name) {
            let m = &mut self.meta[i];
            m.pending = m.pending.saturating_sub(1);
            m.consumed = Some(Utc::now());
        }
    }

    /// Gives back `size_gib` on pool `name`: a chosen placement that was not written
    /// (`pending`), or a create that failed there.
    pub fn give_back(&mut self, name: &str, size_gib: u64, pending: bool) {
        if let Some(&i) = self.index.get(name) {
            self.pools[i].unconsume(size_gib);
            if pending {
                let m = &mut self.meta[i];
                m.pending = m.pending.saturating_sub(1);
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
    fn placements_hold_until_a_younger_report_replaces_them() {
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
        let a = v.choose(&req, &w).unwrap();
        v.written(&a.pool);
        // Chosen but not written yet: even a younger report does not replace it.
        v.choose(&req, &w).unwrap();
        let after = Utc::now() + chrono::Duration::seconds(1);
        v.refresh(&[row(1, "a@x", caps(10.0, after), 0, false)], now, down);
        assert_eq!(v.pools()[0].caps.free_capacity_gb.gib(), Some(2.0));
        v.written(&a.pool);
        // 2 GiB left: a third does not fit, however often the old report is re-read.
        v.refresh(&rows, now, down);
        assert!(v.choose(&req, &w).is_err());
        // A report taken after the placements were written replaces the figures.
        let after = Utc::now() + chrono::Duration::seconds(1);
        v.refresh(&[row(1, "a@x", caps(10.0, after), 0, false)], now, down);
        assert_eq!(v.pools()[0].caps.free_capacity_gb.gib(), Some(10.0));
        // Giving back restores room.
        v.choose(&req, &w).unwrap();
        v.choose(&req, &w).unwrap();
        v.give_back("a@x#ceph", 4, true);
        v.choose(&req, &w).unwrap();
    }
}
