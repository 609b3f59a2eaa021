//! The placement core: plain functions over plain data, no I/O. The service feeds it
//! the pools it sees ([`PoolState`]) and one request ([`Request`]); it answers with
//! the chosen pool or why none fits ([`NoValidBackend`]), and [`PoolState::consume`]
//! deducts a placement at once, so a burst between two reports never over-commits.
//!
//! Filters run in Cinder's order, each on what the previous ones let through; the one
//! that leaves nothing is the reason given ([`Filter`]). Weighers score what is left
//! ([`weighers`]); the highest weight wins, ties going to the smallest pool name.

pub mod extra_specs;
pub mod filters;
pub mod weighers;

use std::collections::BTreeMap;

use cinder_common::capabilities::{Capabilities, Capacity, OverSubscription};

pub use filters::Filter;
pub use weighers::Weighers;

/// One pool as the scheduler sees it: the backend's last report, less what was placed
/// on it since.
#[derive(Debug, Clone)]
pub struct PoolState {
    /// `host@backend#pool`, or `cluster@backend#pool` for a backend served
    /// active-active (Cinder's backend id).
    pub name: String,
    /// `host@backend`: the volume service's host (of the first member that is up, in a
    /// cluster).
    pub backend: String,
    /// The pool's name.
    pub pool: String,
    /// The service's cluster (`cluster@backend`), if active-active.
    pub cluster: Option<String>,
    /// The service's availability zone.
    pub availability_zone: String,
    /// The report, typed (capacity fields move with placements).
    pub caps: Capabilities,
    /// The report as sent, for extra specs that name any key.
    pub raw: serde_json::Map<String, serde_json::Value>,
    /// Whether the report has `provisioned_capacity_gb` (otherwise allocated stands
    /// in for it).
    pub reports_provisioned: bool,
}

impl PoolState {
    /// A pool from a service's host, zone, cluster and reported capabilities.
    pub fn from_report(
        backend: &str,
        availability_zone: &str,
        cluster: Option<&str>,
        raw: serde_json::Map<String, serde_json::Value>,
    ) -> PoolState {
        let caps: Capabilities =
            serde_json::from_value(serde_json::Value::Object(raw.clone())).unwrap_or_default();
        // Cinder: a backend that reports no pools is one pool named after its
        // `volume_backend_name` (`_pool0` when it has none).
        let pool = if caps.volume_backend_name.is_empty() {
            "_pool0".to_string()
        } else {
            caps.volume_backend_name.clone()
        };
        PoolState {
            reports_provisioned: raw.contains_key("provisioned_capacity_gb"),
            name: format!("{}#{pool}", cluster.unwrap_or(backend)),
            backend: backend.to_string(),
            pool,
            cluster: cluster.map(str::to_string),
            availability_zone: availability_zone.to_string(),
            caps,
            raw,
        }
    }

    /// Provisioned capacity, or allocated when the backend reports none.
    pub fn provisioned_gib(&self) -> f64 {
        if self.reports_provisioned {
            self.caps.provisioned_capacity_gb
        } else {
            self.caps.allocated_capacity_gb
        }
    }

    /// The effective over-subscription ratio (Cinder's
    /// `calculate_max_over_subscription_ratio`): 1.0 without thin provisioning or
    /// without figures; `auto` is `1 + provisioned / (used + 1)`, or 20.0 while nothing
    /// is provisioned.
    pub fn max_over_subscription_ratio(&self) -> f64 {
        if !self.caps.thin_provisioning_support {
            return 1.0;
        }
        let (Some(total), Some(free)) = (
            self.caps.total_capacity_gb.gib(),
            self.caps.free_capacity_gb.gib(),
        ) else {
            return 1.0;
        };
        match self.caps.max_over_subscription_ratio {
            OverSubscription::Ratio(r) => r,
            OverSubscription::Auto => {
                let provisioned = self.provisioned_gib();
                if provisioned == 0.0 {
                    20.0
                } else {
                    1.0 + provisioned / (total - free + 1.0)
                }
            }
        }
    }

    /// Deducts a new volume of `size_gib` (Cinder's `consume_from_volume`): allocated
    /// and provisioned grow, free shrinks unless it is not a figure.
    pub fn consume(&mut self, size_gib: u64) {
        self.shift(size_gib as f64);
    }

    /// Gives back a placement that did not happen (its cast failed).
    pub fn unconsume(&mut self, size_gib: u64) {
        self.shift(-(size_gib as f64));
    }

    fn shift(&mut self, gib: f64) {
        self.caps.allocated_capacity_gb += gib;
        if self.reports_provisioned {
            self.caps.provisioned_capacity_gb += gib;
        }
        if let Capacity::Gib(free) = self.caps.free_capacity_gb {
            self.caps.free_capacity_gb = Capacity::Gib(free - gib);
        }
        self.sync_raw();
    }

    /// Keeps the reported map in step with the typed figures (extra specs and
    /// `get_pools` read it).
    fn sync_raw(&mut self) {
        let figures = [
            (
                "allocated_capacity_gb",
                gib_json(self.caps.allocated_capacity_gb),
            ),
            (
                "free_capacity_gb",
                serde_json::to_value(self.caps.free_capacity_gb).unwrap_or_default(),
            ),
        ];
        for (k, v) in figures {
            self.raw.insert(k.to_string(), v);
        }
        if self.reports_provisioned {
            self.raw.insert(
                "provisioned_capacity_gb".into(),
                gib_json(self.caps.provisioned_capacity_gb),
            );
        }
    }
}

/// GiB as the backends write them: whole numbers as integers.
fn gib_json(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        serde_json::json!(v as i64)
    } else {
        serde_json::json!(v)
    }
}

/// What one create asks of a backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// Size in GiB.
    pub size_gib: u64,
    /// The availability zone asked for (`None`: any).
    pub availability_zone: Option<String>,
    /// The volume type's extra specs.
    pub extra_specs: BTreeMap<String, String>,
    /// `same_host` hint, resolved: hosts (`host@backend#pool`) of the named volumes.
    pub same_host: Option<Vec<String>>,
    /// `different_host` hint, resolved likewise.
    pub different_host: Option<Vec<String>>,
    /// Backends (`host@backend#pool`) earlier attempts failed on.
    pub tried: Vec<String>,
    /// Stay-put: the backend (`host@backend`) that holds the source.
    pub source_backend: Option<String>,
    /// The Ceph clusters (fsids) holding the image the volume is made from: pools of
    /// these clusters are preferred (a clone instead of a download).
    pub image_clusters: Vec<String>,
}

/// Why no backend fits, naming the filter that eliminated the last candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct NoValidBackend {
    /// The filter that left nothing (`None`: there were no backends at all).
    pub filter: Option<Filter>,
    /// For people: the reason, with the figures of the request.
    pub reason: String,
}

impl std::fmt::Display for NoValidBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Picks the pool for `req` among `pools`: filters, then weighers. Returns the index.
pub fn schedule(
    pools: &[PoolState],
    req: &Request,
    weighers: &Weighers,
) -> Result<usize, NoValidBackend> {
    if pools.is_empty() {
        return Err(NoValidBackend {
            filter: None,
            reason: "no volume backend is up".into(),
        });
    }
    let specs = filters::Specs::compile(&req.extra_specs);
    let mut passed: Vec<usize> = Vec::with_capacity(pools.len());
    // The furthest filter that rejected a pool: when nothing passes, the one that
    // left nothing (pools it rejected got through every filter before it).
    let mut last: Option<Filter> = None;
    for (i, pool) in pools.iter().enumerate() {
        match filters::first_failing(pool, req, &specs) {
            None => passed.push(i),
            Some(f) => {
                if last.is_none_or(|l| f > l) {
                    last = Some(f);
                }
            }
        }
    }
    if passed.is_empty() {
        let filter = last.unwrap_or(Filter::BackendState);
        return Err(NoValidBackend {
            filter: Some(filter),
            reason: filter.reason(req),
        });
    }
    // A create from an image stays in a cluster that holds the image when one passed
    // the filters (a copy-on-write clone); elsewhere it is a download.
    if !req.image_clusters.is_empty() {
        let near: Vec<usize> = passed
            .iter()
            .copied()
            .filter(|&i| {
                cluster_of(&pools[i].caps.location_info)
                    .is_some_and(|f| req.image_clusters.iter().any(|c| c == f))
            })
            .collect();
        if !near.is_empty() {
            passed = near;
        }
    }
    Ok(weighers.best(pools, &passed, req))
}

/// The fsid in a pool's `location_info` (`cluster:conf:fsid:user:pool`).
fn cluster_of(location_info: &str) -> Option<&str> {
    location_info.split(':').nth(2).filter(|f| !f.is_empty())
}

#[cfg(test)]
pub(crate) mod test_pools {
    use super::PoolState;
    use serde_json::json;

    /// A pool of `backend` reporting `caps` over a healthy thin-provisioned default.
    pub fn pool(backend: &str, caps: serde_json::Value) -> PoolState {
        let mut raw = json!({
            "volume_backend_name": "ceph",
            "total_capacity_gb": 100.0,
            "free_capacity_gb": 100.0,
            "provisioned_capacity_gb": 0.0,
            "allocated_capacity_gb": 0.0,
            "reserved_percentage": 0,
            "thin_provisioning_support": true,
            "max_over_subscription_ratio": "20.0",
            "multiattach": true,
            "backend_state": "up",
            "storage_protocol": "ceph",
        });
        for (k, v) in caps.as_object().unwrap() {
            if v.is_null() {
                raw.as_object_mut().unwrap().remove(k);
            } else {
                raw[k] = v.clone();
            }
        }
        PoolState::from_report(backend, "nova", None, raw.as_object().unwrap().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::test_pools::pool;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_backend_without_a_name_is_one_pool_called_pool0() {
        let p = pool("h@b", json!({"volume_backend_name": null}));
        assert_eq!(p.name, "h@b#_pool0");
        assert_eq!(pool("h@b", json!({})).name, "h@b#ceph");
    }

    #[test]
    fn the_auto_ratio_follows_cinder() {
        let table = [
            // (provisioned, total, free, thin, ratio setting) -> effective ratio
            (0.0, 100.0, 100.0, true, json!("auto"), 20.0),
            (50.0, 100.0, 90.0, true, json!("auto"), 1.0 + 50.0 / 11.0),
            (50.0, 100.0, 100.0, true, json!("auto"), 51.0),
            (50.0, 100.0, 90.0, true, json!("1.5"), 1.5),
            (50.0, 100.0, 90.0, true, json!(3), 3.0),
            (50.0, 100.0, 90.0, false, json!("20.0"), 1.0),
        ];
        for (prov, total, free, thin, setting, want) in table {
            let p = pool(
                "h@b",
                json!({"provisioned_capacity_gb": prov, "total_capacity_gb": total,
                       "free_capacity_gb": free, "thin_provisioning_support": thin,
                       "max_over_subscription_ratio": setting}),
            );
            assert!(
                (p.max_over_subscription_ratio() - want).abs() < 1e-9,
                "{prov} {total} {free} {thin} {setting}: {}",
                p.max_over_subscription_ratio()
            );
        }
        let unknown = pool(
            "h@b",
            json!({"free_capacity_gb": "unknown", "max_over_subscription_ratio": "auto"}),
        );
        assert_eq!(unknown.max_over_subscription_ratio(), 1.0);
    }

    #[test]
    fn consuming_moves_the_figures_and_unconsuming_puts_them_back() {
        let mut p = pool("h@b", json!({"provisioned_capacity_gb": 10.0}));
        p.consume(5);
        assert_eq!(p.caps.allocated_capacity_gb, 5.0);
        assert_eq!(p.caps.provisioned_capacity_gb, 15.0);
        assert_eq!(p.caps.free_capacity_gb, Capacity::Gib(95.0));
        assert_eq!(p.raw["free_capacity_gb"], json!(95.0));
        p.unconsume(5);
        assert_eq!(p.caps.provisioned_capacity_gb, 10.0);
        assert_eq!(p.caps.free_capacity_gb, Capacity::Gib(100.0));

        // Without a provisioned figure the allocated one stands in, and grows.
        let mut q = pool(
            "h@b",
            json!({"provisioned_capacity_gb": null, "free_capacity_gb": "infinite"}),
        );
        q.consume(5);
        assert_eq!(q.provisioned_gib(), 5.0);
        assert_eq!(q.caps.free_capacity_gb, Capacity::Infinite);
    }

    #[test]
    fn no_backends_and_no_fit_say_why() {
        let req = Request {
            size_gib: 1,
            ..Default::default()
        };
        let e = schedule(&[], &req, &Weighers::default()).unwrap_err();
        assert_eq!(e.filter, None);
        // AZ rejects one pool, capacity the other: capacity ran last.
        let pools = [
            PoolState::from_report("a@b", "other", None, pool("a@b", json!({})).raw),
            pool(
                "c@d",
                json!({"free_capacity_gb": 0.0, "total_capacity_gb": 100.0,
                               "thin_provisioning_support": false}),
            ),
        ];
        let req = Request {
            size_gib: 1,
            availability_zone: Some("nova".into()),
            ..Default::default()
        };
        let e = schedule(&pools, &req, &Weighers::default()).unwrap_err();
        assert_eq!(e.filter, Some(Filter::Capacity));
    }

    #[test]
    fn a_create_from_an_image_stays_in_the_images_cluster_when_it_can() {
        let at = |fsid: &str, provisioned: f64| {
            json!({"location_info": format!("ceph:/etc/ceph/ceph.conf:{fsid}:cinder:volumes"),
                   "provisioned_capacity_gb": provisioned})
        };
        // The emptier pool is in another cluster: capacity alone would pick it.
        let pools = [
            pool("a@rbd", at("fsid-a", 90.0)),
            pool("b@rbd", at("fsid-b", 10.0)),
        ];
        let plain = Request {
            size_gib: 1,
            ..Default::default()
        };
        let w = Weighers::default();
        assert_eq!(schedule(&pools, &plain, &w).unwrap(), 1);
        let image_in_a = Request {
            image_clusters: vec!["fsid-a".into()],
            ..plain.clone()
        };
        assert_eq!(schedule(&pools, &image_in_a, &w).unwrap(), 0);
        // No pool in the image's cluster: any pool (the image is downloaded).
        let elsewhere = Request {
            image_clusters: vec!["fsid-c".into()],
            ..plain
        };
        assert_eq!(schedule(&pools, &elsewhere, &w).unwrap(), 1);
    }
}
