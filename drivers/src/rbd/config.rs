//! One `[backends.<name>]` section with `volume_driver = "rbd"`: the Cinder policy of the
//! backend ([`CinderOptions`]: clone depth, flattening, connection info, the capacity
//! policy the scheduler reads) and the driver's own options (`rbd_driver::RbdConfig`:
//! pool, user, lanes, budgets). Both keep Cinder's option names; one flat section holds
//! them, and a key neither knows is an error.

use cinder_common::capabilities::OverSubscription;
use rbd_driver::RbdConfig;
use serde::Deserialize;

/// How the volume service uses an RBD backend (Cinder's `RBD_OPTS` and per-backend
/// options that are policy, not librbd).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CinderOptions {
    /// Cluster name shown in connection info. Default `ceph`.
    #[serde(default = "default_cluster_name")]
    pub rbd_cluster_name: String,
    /// libvirt secret uuid for attachments; unset means the cluster fsid.
    #[serde(default)]
    pub rbd_secret_uuid: Option<String>,
    /// Maximum clone chain depth before a clone is flattened; 0 means always copy. Default 5.
    #[serde(default = "default_max_clone_depth")]
    pub rbd_max_clone_depth: u32,
    /// Flatten volumes created from snapshots. Default false.
    #[serde(default)]
    pub rbd_flatten_volume_from_snapshot: bool,
    /// Percent of the backend's capacity kept free (Cinder's `reserved_percentage`).
    /// Default 0.
    #[serde(default)]
    pub reserved_percentage: u32,
    /// How far provisioned capacity may exceed the total (Cinder's
    /// `max_over_subscription_ratio`): a number of at least 1.0, or `"auto"`. Default 20.0.
    #[serde(default)]
    pub max_over_subscription_ratio: OverSubscription,
    /// The name volume types pin with the `volume_backend_name` extra spec; also the
    /// backend's pool name in `host@backend#pool`. Unset: `RBD`, as Cinder's driver.
    #[serde(default)]
    pub volume_backend_name: Option<String>,
}

/// The keys of [`CinderOptions`]: everything else in the section is the driver's.
const CINDER_KEYS: &[&str] = &[
    "rbd_cluster_name",
    "rbd_secret_uuid",
    "rbd_max_clone_depth",
    "rbd_flatten_volume_from_snapshot",
    "reserved_percentage",
    "max_over_subscription_ratio",
    "volume_backend_name",
];

fn default_cluster_name() -> String {
    "ceph".into()
}
fn default_max_clone_depth() -> u32 {
    5
}

/// An RBD backend's whole section.
#[derive(Debug, Clone)]
pub struct RbdBackendConfig {
    /// The volume service's policy.
    pub cinder: CinderOptions,
    /// The driver's own options.
    pub rbd: RbdConfig,
}

impl RbdBackendConfig {
    /// Reads `[backends.<name>]` of `backends` (the file's backend sections; a missing
    /// section is every default). `volume_driver` may only say `rbd`.
    pub fn from_backends(
        backends: &std::collections::BTreeMap<String, serde_json::Value>,
        name: &str,
    ) -> Result<Self, String> {
        let mut section = backends
            .get(name)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let obj = section
            .as_object_mut()
            .ok_or_else(|| format!("[backends.{name}] must be a table"))?;
        match obj.remove("volume_driver") {
            None => {}
            Some(serde_json::Value::String(d)) if d == "rbd" => {}
            Some(other) => {
                return Err(format!(
                    "[backends.{name}] volume_driver = {other}: only \"rbd\" is supported"
                ))
            }
        }
        Self::from_section(section).map_err(|e| format!("in [backends.{name}]: {e}"))
    }

    /// Reads a section (without `volume_driver`), checking both halves.
    pub fn from_section(section: serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(mut all) = section else {
            return Err("must be a table".into());
        };
        let mut cinder = serde_json::Map::new();
        for key in CINDER_KEYS {
            if let Some(v) = all.remove(*key) {
                cinder.insert((*key).to_string(), v);
            }
        }
        let cinder: CinderOptions =
            serde_json::from_value(cinder.into()).map_err(|e| e.to_string())?;
        let rbd: RbdConfig = serde_json::from_value(all.into()).map_err(|e| e.to_string())?;
        rbd.validate()?;
        if let OverSubscription::Ratio(ratio) = cinder.max_over_subscription_ratio {
            if ratio.is_nan() || ratio < 1.0 {
                return Err(format!(
                    "max_over_subscription_ratio must be at least 1.0, not {ratio}"
                ));
            }
        }
        if cinder.reserved_percentage > 100 {
            return Err(format!(
                "reserved_percentage must be from 0 to 100, not {}",
                cinder.reserved_percentage
            ));
        }
        Ok(RbdBackendConfig { cinder, rbd })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flat_section_splits_into_policy_and_driver_options() {
        let c = RbdBackendConfig::from_section(serde_json::json!({
            "rbd_pool": "volumes",
            "rbd_max_clone_depth": 3,
            "reserved_percentage": 10,
        }))
        .unwrap();
        assert_eq!(c.rbd.rbd_pool, "volumes");
        assert_eq!(
            (c.cinder.rbd_max_clone_depth, c.cinder.reserved_percentage),
            (3, 10)
        );
        assert_eq!(
            c.cinder.max_over_subscription_ratio,
            OverSubscription::Ratio(20.0)
        );
        assert!(!c.cinder.rbd_flatten_volume_from_snapshot);
    }

    #[test]
    fn unknown_keys_and_bad_policy_are_errors() {
        let e = RbdBackendConfig::from_section(serde_json::json!({"rbd_pol": "x"})).unwrap_err();
        assert!(e.contains("rbd_pol"), "{e}");
        let e = RbdBackendConfig::from_section(serde_json::json!({"reserved_percentage": 101}))
            .unwrap_err();
        assert!(e.contains("reserved_percentage"), "{e}");
    }
}
