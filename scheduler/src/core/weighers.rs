//! The weighers: each scores every candidate, the scores are normalised to 0..1
//! (all 0 when they are equal), multiplied by the weigher's multiplier and summed.
//!
//! - capacity (Cinder's `CapacityWeigher`, multiplier 1.0): virtual free space. A
//!   positive multiplier spreads volumes (the most room wins), a negative one stacks
//!   them; backends that report no figures weigh least either way.
//! - allocated capacity (`AllocatedCapacityWeigher`, multiplier -1.0 when enabled): the
//!   GiB placed on the backend; negative spreads (the emptiest wins), positive stacks.

use super::{filters, PoolState, Request};

/// Which weighers run, with their multipliers (`None`: off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighers {
    /// `capacity_weight_multiplier`; by default on at 1.0 (Cinder's default weigher).
    pub capacity: Option<f64>,
    /// `allocated_capacity_weight_multiplier`; by default off (Cinder's multiplier when
    /// it is enabled is -1.0).
    pub allocated_capacity: Option<f64>,
}

impl Default for Weighers {
    fn default() -> Self {
        Weighers {
            capacity: Some(1.0),
            allocated_capacity: None,
        }
    }
}

/// Cinder's `calculate_virtual_free_capacity` (`None`: no figures).
pub fn virtual_free_gib(pool: &PoolState, thin: bool) -> Option<f64> {
    filters::factors(pool, thin).map(|f| f.virtual_free)
}

/// Normalises `w` in place to 0..1 (all 0 when equal).
fn normalise(w: &mut [f64]) {
    let (min, max) = w
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let range = max - min;
    for x in w.iter_mut() {
        *x = if range > 0.0 && range.is_finite() {
            (*x - min) / range
        } else {
            0.0
        };
    }
}

impl Weighers {
    /// The weights of `candidates` (indices into `pools`), in their order.
    pub fn weigh(&self, pools: &[PoolState], candidates: &[usize], req: &Request) -> Vec<f64> {
        let thin = filters::thin(req);
        let mut total = vec![0.0; candidates.len()];
        if let Some(m) = self.capacity {
            // No figures: the lowest weight whichever way the multiplier points.
            let unknown = if m > 0.0 { -1.0 } else { f64::INFINITY };
            let mut w: Vec<f64> = candidates
                .iter()
                .map(|&i| virtual_free_gib(&pools[i], thin).unwrap_or(unknown))
                .collect();
            // Cinder: infinity becomes the largest figure plus a hundred times the
            // spread (plus 10000 when there is no spread), so it weighs most.
            let finite = w.iter().copied().filter(|x| x.is_finite());
            let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
            if hi.is_finite() {
                let offset = (hi - lo) * 100.0;
                let top = hi + if offset == 0.0 { 10000.0 } else { offset };
                for x in w.iter_mut() {
                    if x.is_infinite() {
                        *x = top;
                    }
                }
            }
            normalise(&mut w);
            for (t, x) in total.iter_mut().zip(w) {
                *t += m * x;
            }
        }
        if let Some(m) = self.allocated_capacity {
            let mut w: Vec<f64> = candidates
                .iter()
                .map(|&i| pools[i].caps.allocated_capacity_gb)
                .collect();
            normalise(&mut w);
            for (t, x) in total.iter_mut().zip(w) {
                *t += m * x;
            }
        }
        total
    }

    /// The best of `candidates` (non-empty): the highest weight, ties to the smallest
    /// pool name.
    pub fn best(&self, pools: &[PoolState], candidates: &[usize], req: &Request) -> usize {
        let weights = self.weigh(pools, candidates, req);
        let mut best = 0;
        for j in 1..candidates.len() {
            let (wj, wb) = (weights[j], weights[best]);
            if wj > wb || (wj == wb && pools[candidates[j]].name < pools[candidates[best]].name) {
                best = j;
            }
        }
        candidates[best]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pools::pool;
    use super::*;
    use serde_json::json;

    fn pick(w: Weighers, pools: &[PoolState]) -> String {
        let all: Vec<usize> = (0..pools.len()).collect();
        pools[w.best(pools, &all, &Request::default())].name.clone()
    }

    #[test]
    fn virtual_free_space_is_cinders() {
        let table = [
            // thin: (total - floor(total * reserved%)) * ratio - provisioned
            (json!({"provisioned_capacity_gb": 100.0}), Some(1900.0)),
            (
                json!({"provisioned_capacity_gb": 100.0, "reserved_percentage": 5}),
                Some(1800.0),
            ),
            (json!({"max_over_subscription_ratio": 1.5}), Some(150.0)),
            // Cinder's worked example: total 100, free 50, provisioned 60, 10 % reserved
            (
                json!({"free_capacity_gb": 50.0, "provisioned_capacity_gb": 60.0, "reserved_percentage": 10, "max_over_subscription_ratio": 2.0}),
                Some(120.0),
            ),
            (
                json!({"thin_provisioning_support": false, "free_capacity_gb": 50.0, "provisioned_capacity_gb": 60.0, "reserved_percentage": 10}),
                Some(30.0),
            ),
            // thick: min(free, total - reserve - provisioned)
            (
                json!({"thin_provisioning_support": false, "free_capacity_gb": 40.0, "reserved_percentage": 10}),
                Some(40.0),
            ),
            (json!({"free_capacity_gb": "unknown"}), None),
            (json!({"total_capacity_gb": "infinite"}), None),
        ];
        for (caps, want) in table {
            assert_eq!(
                virtual_free_gib(&pool("h@b", caps.clone()), true),
                want,
                "{caps}"
            );
        }
    }

    #[test]
    fn capacity_stacks_or_spreads_with_its_multiplier() {
        let pools = [
            pool("a@x", json!({"provisioned_capacity_gb": 500.0})),
            pool("b@x", json!({"provisioned_capacity_gb": 100.0})),
            pool("c@x", json!({"provisioned_capacity_gb": 300.0})),
        ];
        // Most virtual free space wins.
        assert_eq!(pick(Weighers::default(), &pools), "b@x#ceph");
        // Negative: the least.
        let spread = Weighers {
            capacity: Some(-1.0),
            allocated_capacity: None,
        };
        assert_eq!(pick(spread, &pools), "a@x#ceph");
    }

    #[test]
    fn backends_without_figures_weigh_least_both_ways() {
        let pools = [
            pool("a@x", json!({"free_capacity_gb": "unknown"})),
            pool("b@x", json!({"provisioned_capacity_gb": 100.0})),
            pool("c@x", json!({"provisioned_capacity_gb": 300.0})),
        ];
        assert_eq!(pick(Weighers::default(), &pools), "b@x#ceph");
        let negative = Weighers {
            capacity: Some(-1.0),
            allocated_capacity: None,
        };
        // Unknown counts as the most free: with a negative multiplier, the least liked.
        assert_eq!(pick(negative, &pools), "c@x#ceph");
        let w = negative.weigh(&pools, &[0, 1, 2], &Request::default());
        assert!(w[0] < w[1] && w[1] < w[2], "unknown weighs least: {w:?}");
    }

    #[test]
    fn allocated_capacity_prefers_the_emptiest_and_ties_go_to_the_smallest_name() {
        let pools = [
            pool("c@x", json!({"allocated_capacity_gb": 10.0})),
            pool("b@x", json!({"allocated_capacity_gb": 5.0})),
            pool("a@x", json!({"allocated_capacity_gb": 5.0})),
        ];
        let w = Weighers {
            capacity: None,
            allocated_capacity: Some(-1.0),
        };
        assert_eq!(pick(w, &pools), "a@x#ceph");
        // Equal everything: all weights 0, the smallest name wins.
        let same = [
            pool("z@x", json!({})),
            pool("m@x", json!({})),
            pool("q@x", json!({})),
        ];
        let none = Request::default();
        assert_eq!(
            Weighers::default().weigh(&same, &[0, 1, 2], &none),
            vec![0.0; 3]
        );
        assert_eq!(pick(Weighers::default(), &same), "m@x#ceph");
        // Both weighers sum.
        let both = Weighers {
            capacity: Some(1.0),
            allocated_capacity: Some(-1.0),
        };
        let pools = [
            pool(
                "a@x",
                json!({"provisioned_capacity_gb": 0.0, "allocated_capacity_gb": 100.0}),
            ),
            pool(
                "b@x",
                json!({"provisioned_capacity_gb": 10.0, "allocated_capacity_gb": 0.0}),
            ),
        ];
        assert_eq!(both.weigh(&pools, &[0, 1], &none), vec![0.0, 0.0]);
    }
}
