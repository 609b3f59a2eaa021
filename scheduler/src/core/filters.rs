//! The filters, in the order they run. Each is a plain predicate over one pool and the
//! request; [`first_failing`] names the first that rejects a pool.

use super::extra_specs;
use super::{PoolState, Request};
use cinder_common::capabilities::Capacity;

/// The filters, in the order they run (the order is also the ranking used to name the
/// filter that left nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Filter {
    /// The backend's last report says it is down.
    BackendState,
    /// An earlier attempt of this request failed on the pool (Cinder's `RetryFilter`).
    Retry,
    /// A create from a snapshot or volume stays on the source's backend.
    SourceBackend,
    /// Cinder's `AvailabilityZoneFilter`.
    AvailabilityZone,
    /// Cinder's `CapacityFilter`.
    Capacity,
    /// Cinder's `CapabilitiesFilter`: the volume type's extra specs.
    Capabilities,
    /// The `same_host` hint (Cinder's `SameBackendFilter`).
    SameBackend,
    /// The `different_host` hint (Cinder's `DifferentBackendFilter`).
    DifferentBackend,
}

impl Filter {
    /// Cinder's name for the filter.
    pub fn name(self) -> &'static str {
        match self {
            Filter::BackendState => "BackendStateFilter",
            Filter::Retry => "RetryFilter",
            Filter::SourceBackend => "SourceBackendFilter",
            Filter::AvailabilityZone => "AvailabilityZoneFilter",
            Filter::Capacity => "CapacityFilter",
            Filter::Capabilities => "CapabilitiesFilter",
            Filter::SameBackend => "SameBackendFilter",
            Filter::DifferentBackend => "DifferentBackendFilter",
        }
    }

    /// Why nothing fits when this filter left nothing.
    pub fn reason(self, req: &Request) -> String {
        match self {
            Filter::BackendState => {
                "every volume backend that is up reports its storage down".into()
            }
            Filter::Retry => format!(
                "the create failed on every backend that could take it (tried: {})",
                req.tried.join(", ")
            ),
            Filter::SourceBackend => format!(
                "the backend holding the source ({}) is down or disabled",
                req.source_backend.as_deref().unwrap_or("?")
            ),
            Filter::AvailabilityZone => format!(
                "no volume backend is up in availability zone {}",
                req.availability_zone.as_deref().unwrap_or("?")
            ),
            Filter::Capacity => format!(
                "insufficient free space for a {} GiB volume on every backend",
                req.size_gib
            ),
            Filter::Capabilities => format!(
                "no backend has the capabilities the volume type asks for ({})",
                req.extra_specs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Filter::SameBackend => "no backend holds the volumes of the same_host hint".into(),
            Filter::DifferentBackend => {
                "every backend holds one of the volumes of the different_host hint".into()
            }
        }
    }
}

/// The extra specs the capabilities filter checks, read once per request: each spec's
/// capability path (scope `capabilities:` dropped, other scopes left out) and its
/// requirement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Specs(Vec<(Vec<String>, String)>);

impl Specs {
    /// Reads `extra_specs`.
    pub fn compile(extra_specs: &std::collections::BTreeMap<String, String>) -> Specs {
        let mut specs = Vec::new();
        for (key, want) in extra_specs {
            let mut scope: Vec<&str> = key.split(':').collect();
            if scope.len() > 1 {
                if scope[0] != "capabilities" {
                    continue;
                }
                scope.remove(0);
            }
            specs.push((
                scope.into_iter().map(str::to_string).collect(),
                want.clone(),
            ));
        }
        Specs(specs)
    }
}

/// The first filter that rejects `pool` for `req` (whose extra specs are `specs`), or
/// `None` when it passes them all.
pub fn first_failing(pool: &PoolState, req: &Request, specs: &Specs) -> Option<Filter> {
    if pool.caps.backend_state != "up" {
        return Some(Filter::BackendState);
    }
    if req.tried.iter().any(|t| same_pool(t, pool)) {
        return Some(Filter::Retry);
    }
    if let Some(src) = &req.source_backend {
        if backend_of(src) != pool.cluster.as_deref().unwrap_or(&pool.backend) {
            return Some(Filter::SourceBackend);
        }
    }
    if !availability_zone(pool, req) {
        return Some(Filter::AvailabilityZone);
    }
    if !capacity(pool, req) {
        return Some(Filter::Capacity);
    }
    if !matches_specs(pool, specs) {
        return Some(Filter::Capabilities);
    }
    if let Some(hosts) = &req.same_host {
        if !hosts.iter().any(|h| same_pool(h, pool)) {
            return Some(Filter::SameBackend);
        }
    }
    if let Some(hosts) = &req.different_host {
        if hosts.iter().any(|h| same_pool(h, pool)) {
            return Some(Filter::DifferentBackend);
        }
    }
    None
}

/// `host@backend` of `host@backend#pool`.
pub fn backend_of(host: &str) -> &str {
    host.split_once('#').map_or(host, |(b, _)| b)
}

/// Whether a volume's host names this pool: the same pool, or (a host written without
/// a pool) the same backend.
fn same_pool(host: &str, pool: &PoolState) -> bool {
    match host.split_once('#') {
        Some(_) => host == pool.name,
        None => host == pool.backend,
    }
}

/// Cinder's `AvailabilityZoneFilter`: the zone asked for, or any.
pub fn availability_zone(pool: &PoolState, req: &Request) -> bool {
    req.availability_zone
        .as_deref()
        .is_none_or(|az| az == pool.availability_zone)
}

/// Whether `req` is thin (the volume type does not say `provisioning:type` thick).
pub fn thin(req: &Request) -> bool {
    req.extra_specs
        .get("provisioning:type")
        .is_none_or(|t| t != "thick")
}

/// Cinder's capacity factors (2023.1's `calculate_capacity_factors`), from figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factors {
    /// Total less the reserve, times the over-subscription ratio for thin requests.
    pub total_available: f64,
    /// What a request may still take: `total_available - provisioned`, and for thick
    /// requests no more than the reported free space.
    pub virtual_free: f64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The factors of `pool` for a thin or thick request (`None`: no figures).
pub fn factors(pool: &PoolState, thin: bool) -> Option<Factors> {
    let caps = &pool.caps;
    let (Capacity::Gib(total), Capacity::Gib(free)) =
        (caps.total_capacity_gb, caps.free_capacity_gb)
    else {
        return None;
    };
    let reserved = (total * f64::from(caps.reserved_percentage) / 100.0).floor();
    let reserved_available = round2(total - reserved);
    let provisioned = pool.provisioned_gib();
    Some(if thin && caps.thin_provisioning_support {
        let total_available = round2(reserved_available * pool.max_over_subscription_ratio());
        Factors {
            total_available,
            virtual_free: round2(total_available - provisioned),
        }
    } else {
        Factors {
            total_available: reserved_available,
            virtual_free: round2(free.min(reserved_available - provisioned)),
        }
    })
}

/// Cinder's `CapacityFilter`.
pub fn capacity(pool: &PoolState, req: &Request) -> bool {
    let requested = req.size_gib as f64;
    // A manage request asks for no space.
    if req.size_gib == 0 {
        return true;
    }
    let caps = &pool.caps;
    match (caps.free_capacity_gb, caps.total_capacity_gb) {
        // A backend that cannot tell is assumed able (a failure reschedules).
        (Capacity::Infinite | Capacity::Unknown, _) => return true,
        // Without a total the reserve cannot be computed.
        (_, Capacity::Infinite | Capacity::Unknown) => return caps.reserved_percentage == 0,
        (_, Capacity::Gib(total)) if total <= 0.0 => return false,
        _ => {}
    }
    let thin = thin(req);
    let Some(f) = factors(pool, thin) else {
        return false;
    };
    if thin && caps.thin_provisioning_support {
        let ratio = pool.max_over_subscription_ratio();
        if ratio < 1.0 || f.total_available <= 0.0 {
            // An invalid ratio filters the backend out (Cinder logs it).
            return false;
        }
        if (pool.provisioned_gib() + requested) / f.total_available > ratio {
            return false;
        }
    }
    f.virtual_free >= requested
}

/// Cinder's `CapabilitiesFilter`: every extra spec that is not scoped, or is scoped
/// `capabilities:`, matches the reported capability it names (nested keys through
/// further `:`; a list matches when one element does). Other scopes are ignored
/// ([`Specs::compile`] leaves them out).
pub fn matches_specs(pool: &PoolState, specs: &Specs) -> bool {
    for (path, want) in &specs.0 {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        let mut cap = match pool.raw.get(first) {
            Some(c) => c,
            None => return false,
        };
        for k in rest {
            cap = match cap.get(k) {
                Some(c) => c,
                None => return false,
            };
        }
        let ok = match cap {
            serde_json::Value::Array(values) => {
                values.iter().any(|v| extra_specs::matches(v, want))
            }
            v => extra_specs::matches(v, want),
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::test_pools::pool;
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn req(size: u64) -> Request {
        Request {
            size_gib: size,
            ..Default::default()
        }
    }

    fn specs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn capacity_follows_cinder_for_thin_thick_reserved_and_non_figures() {
        // (capabilities over the thin default, size, extra specs, passes)
        type Row = (
            serde_json::Value,
            u64,
            &'static [(&'static str, &'static str)],
            bool,
        );
        let table: Vec<Row> = vec![
            (json!({}), 10, &[], true),
            // manage: size 0 always passes
            (json!({"free_capacity_gb": 0.0}), 0, &[], true),
            // unknown / infinite free: assumed able
            (json!({"free_capacity_gb": "unknown"}), 1000, &[], true),
            (json!({"free_capacity_gb": "infinite"}), 1000, &[], true),
            (json!({"free_capacity_gb": null}), 1000, &[], true),
            // unknown total: only without a reserve
            (json!({"total_capacity_gb": "unknown"}), 10, &[], true),
            (
                json!({"total_capacity_gb": "infinite", "reserved_percentage": 5}),
                10,
                &[],
                false,
            ),
            // no total
            (json!({"total_capacity_gb": 0.0}), 1, &[], false),
            // thin: virtual free = total * ratio - provisioned (the reported free is not used)
            (json!({"provisioned_capacity_gb": 1990.0}), 10, &[], true),
            (json!({"provisioned_capacity_gb": 1991.0}), 10, &[], false),
            (
                json!({"provisioned_capacity_gb": 1990.0, "free_capacity_gb": 0.0}),
                10,
                &[],
                true,
            ),
            (
                json!({"max_over_subscription_ratio": 2.0, "provisioned_capacity_gb": 150.0}),
                50,
                &[],
                true,
            ),
            (
                json!({"max_over_subscription_ratio": 2.0, "provisioned_capacity_gb": 150.0}),
                51,
                &[],
                false,
            ),
            // thin: the reserve (floor of total * %) comes off the total before the ratio
            (
                json!({"reserved_percentage": 10, "max_over_subscription_ratio": 2.0, "provisioned_capacity_gb": 170.0}),
                10,
                &[],
                true,
            ),
            (
                json!({"reserved_percentage": 10, "max_over_subscription_ratio": 2.0, "provisioned_capacity_gb": 170.0}),
                11,
                &[],
                false,
            ),
            // everything reserved: nothing available, filtered out
            (json!({"reserved_percentage": 100}), 1, &[], false),
            // an invalid ratio filters the backend out
            (json!({"max_over_subscription_ratio": 0.5}), 1, &[], false),
            // thick type: min(free, total - reserve - provisioned)
            (
                json!({"free_capacity_gb": 5.0}),
                5,
                &[("provisioning:type", "thick")],
                true,
            ),
            (
                json!({"free_capacity_gb": 5.0}),
                6,
                &[("provisioning:type", "thick")],
                false,
            ),
            (
                json!({"free_capacity_gb": 50.0, "provisioned_capacity_gb": 90.0}),
                10,
                &[("provisioning:type", "thick")],
                true,
            ),
            (
                json!({"free_capacity_gb": 50.0, "provisioned_capacity_gb": 90.0}),
                11,
                &[("provisioning:type", "thick")],
                false,
            ),
            (
                json!({"free_capacity_gb": 5.0}),
                5,
                &[("provisioning:type", "thin")],
                true,
            ),
            // no thin support: as thick
            (
                json!({"thin_provisioning_support": false, "free_capacity_gb": 5.0}),
                5,
                &[],
                true,
            ),
            (
                json!({"thin_provisioning_support": false, "free_capacity_gb": 5.0}),
                6,
                &[],
                false,
            ),
            (
                json!({"thin_provisioning_support": false, "free_capacity_gb": 5.0, "reserved_percentage": 96}),
                5,
                &[],
                false,
            ),
            // auto ratio: 20 while nothing is provisioned
            (
                json!({"max_over_subscription_ratio": "auto"}),
                2000,
                &[],
                true,
            ),
            (
                json!({"max_over_subscription_ratio": "auto"}),
                2001,
                &[],
                false,
            ),
            // auto ratio: 1 + provisioned / (used + 1) = 1 + 50 / 11
            (
                json!({"max_over_subscription_ratio": "auto", "provisioned_capacity_gb": 50.0, "free_capacity_gb": 90.0}),
                504,
                &[],
                true,
            ),
            (
                json!({"max_over_subscription_ratio": "auto", "provisioned_capacity_gb": 50.0, "free_capacity_gb": 90.0}),
                505,
                &[],
                false,
            ),
        ];
        for (caps, size, extra, want) in table {
            let p = pool("h@b", caps.clone());
            let r = Request {
                extra_specs: specs(extra),
                ..req(size)
            };
            assert_eq!(capacity(&p, &r), want, "{caps} size {size} {extra:?}");
        }
    }

    #[test]
    fn capabilities_match_scoped_nested_and_listed_values() {
        let p = pool(
            "h@b",
            json!({"volume_backend_name": "fast", "multiattach": true,
                   "tiers": ["gold", "silver"], "qos": {"iops": 500}}),
        );
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[("volume_backend_name", "fast")], true),
            (&[("volume_backend_name", "slow")], false),
            (&[("capabilities:volume_backend_name", "fast")], true),
            (
                &[("capabilities:volume_backend_name", "<or> slow <or> fast")],
                true,
            ),
            (&[("multiattach", "<is> True")], true),
            (&[("multiattach", "<is> False")], false),
            // other scopes are someone else's
            (
                &[("hw:cpu_policy", "dedicated"), ("vendor:thing", "x")],
                true,
            ),
            (&[("provisioning:type", "thick")], true),
            // a capability the backend does not report fails
            (&[("replication_enabled", "<is> True")], false),
            (&[("capabilities:qos:iops", ">= 100")], true),
            (&[("capabilities:qos:iops", ">= 1000")], false),
            (&[("capabilities:qos:latency", ">= 1")], false),
            // a list matches when one element does
            (&[("tiers", "silver")], true),
            (&[("tiers", "bronze")], false),
            // every spec must match
            (
                &[
                    ("volume_backend_name", "fast"),
                    ("multiattach", "<is> False"),
                ],
                false,
            ),
        ];
        for (extra, want) in table {
            let compiled = Specs::compile(&specs(extra));
            assert_eq!(matches_specs(&p, &compiled), *want, "{extra:?}");
        }
    }

    #[test]
    fn zones_hints_retries_and_the_source_backend_narrow_the_pools() {
        let p = pool("h@b", json!({}));
        let down = pool("h@b", json!({"backend_state": "down"}));
        let table: Vec<(&PoolState, Request, Option<Filter>)> = vec![
            (&p, req(1), None),
            (&down, req(1), Some(Filter::BackendState)),
            (
                &p,
                Request {
                    availability_zone: Some("nova".into()),
                    ..req(1)
                },
                None,
            ),
            (
                &p,
                Request {
                    availability_zone: Some("az2".into()),
                    ..req(1)
                },
                Some(Filter::AvailabilityZone),
            ),
            (
                &p,
                Request {
                    tried: vec!["h@b#ceph".into()],
                    ..req(1)
                },
                Some(Filter::Retry),
            ),
            (
                &p,
                Request {
                    tried: vec!["h@b".into()],
                    ..req(1)
                },
                Some(Filter::Retry),
            ),
            (
                &p,
                Request {
                    tried: vec!["h@c#ceph".into()],
                    ..req(1)
                },
                None,
            ),
            (
                &p,
                Request {
                    source_backend: Some("h@b#ceph".into()),
                    ..req(1)
                },
                None,
            ),
            (
                &p,
                Request {
                    source_backend: Some("h@b".into()),
                    ..req(1)
                },
                None,
            ),
            (
                &p,
                Request {
                    source_backend: Some("h@c#ceph".into()),
                    ..req(1)
                },
                Some(Filter::SourceBackend),
            ),
            (
                &p,
                Request {
                    same_host: Some(vec!["h@b#ceph".into()]),
                    ..req(1)
                },
                None,
            ),
            (
                &p,
                Request {
                    same_host: Some(vec!["h@c#ceph".into()]),
                    ..req(1)
                },
                Some(Filter::SameBackend),
            ),
            (
                &p,
                Request {
                    same_host: Some(vec![]),
                    ..req(1)
                },
                Some(Filter::SameBackend),
            ),
            (
                &p,
                Request {
                    different_host: Some(vec!["h@b#ceph".into()]),
                    ..req(1)
                },
                Some(Filter::DifferentBackend),
            ),
            (
                &p,
                Request {
                    different_host: Some(vec!["h@c#ceph".into(), "x@y".into()]),
                    ..req(1)
                },
                None,
            ),
            // the first failing filter is named
            (
                &down,
                Request {
                    availability_zone: Some("az2".into()),
                    ..req(1)
                },
                Some(Filter::BackendState),
            ),
        ];
        for (pool, r, want) in table {
            let specs = Specs::compile(&r.extra_specs);
            assert_eq!(first_failing(pool, &r, &specs), want, "{r:?}");
        }
    }
}
