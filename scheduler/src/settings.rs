//! `cinder-scheduler`'s configuration: the shared sections and `[scheduler]`.

use cinder_common::service::{CommonSettings, ServiceConfig};
use serde::Deserialize;

use crate::core::Weighers;

/// `[scheduler]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Attempts per create, the first included (Cinder's `scheduler_max_attempts`):
    /// a create a backend fails goes to another until this many failed. Default 3.
    #[serde(default = "default_attempts")]
    pub scheduler_max_attempts: u32,
    /// Weighers (Cinder's `scheduler_default_weighers`): `CapacityWeigher`,
    /// `AllocatedCapacityWeigher`. Default `["CapacityWeigher"]`.
    #[serde(default = "default_weighers")]
    pub scheduler_default_weighers: Vec<String>,
    /// Positive spreads volumes by virtual free space, negative stacks. Default 1.0.
    #[serde(default = "one")]
    pub capacity_weight_multiplier: f64,
    /// Negative spreads volumes by allocated capacity, positive stacks. Default -1.0.
    #[serde(default = "minus_one")]
    pub allocated_capacity_weight_multiplier: f64,
    /// Milliseconds between reads of the volume services' rows (liveness and reports).
    /// Default 1000.
    #[serde(default = "default_refresh")]
    pub refresh_interval_ms: u64,
    /// Requests taken in at once (the RPC prefetch). Default 64.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
}

fn default_attempts() -> u32 {
    3
}
fn default_weighers() -> Vec<String> {
    vec!["CapacityWeigher".into()]
}
fn one() -> f64 {
    1.0
}
fn minus_one() -> f64 {
    -1.0
}
fn default_refresh() -> u64 {
    1000
}
fn default_concurrency() -> usize {
    64
}

impl SchedulerSettings {
    fn defaults() -> Self {
        SchedulerSettings {
            scheduler_max_attempts: default_attempts(),
            scheduler_default_weighers: default_weighers(),
            capacity_weight_multiplier: one(),
            allocated_capacity_weight_multiplier: minus_one(),
            refresh_interval_ms: default_refresh(),
            max_concurrent_requests: default_concurrency(),
        }
    }

    /// The weighers in force; an unknown name is an error.
    pub fn weighers(&self) -> anyhow::Result<Weighers> {
        let mut w = Weighers {
            capacity: None,
            allocated_capacity: None,
        };
        for name in &self.scheduler_default_weighers {
            match name.as_str() {
                "CapacityWeigher" => w.capacity = Some(self.capacity_weight_multiplier),
                "AllocatedCapacityWeigher" => {
                    w.allocated_capacity = Some(self.allocated_capacity_weight_multiplier)
                }
                other => anyhow::bail!(
                    "[scheduler] scheduler_default_weighers: unknown weigher {other:?} \
                     (known: CapacityWeigher, AllocatedCapacityWeigher)"
                ),
            }
        }
        if self.scheduler_max_attempts < 1 {
            anyhow::bail!("[scheduler] scheduler_max_attempts must be at least 1");
        }
        Ok(w)
    }
}

/// This binary's configuration.
#[derive(Debug, Deserialize)]
pub struct Settings {
    /// `[service]`, `[database]`, `[amqp]`, `[logging]`.
    #[serde(flatten)]
    pub common: CommonSettings,
    /// `[scheduler]`.
    #[serde(default = "SchedulerSettings::defaults")]
    pub scheduler: SchedulerSettings,
}

impl ServiceConfig for Settings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }
}
