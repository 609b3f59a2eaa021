//! What a volume backend reports to the scheduler: its capacity and capabilities, with
//! Cinder's field names and value forms (`"infinite"`, `"unknown"`, `"auto"`), as the
//! heartbeat writes them into the `services` row and `get_pools` shows them.
//!
//! Drivers fill [`Capabilities`]; the scheduler reads it back from the row. Every field
//! has a default, so a partial report (a backend that failed its report says only
//! `backend_state: down`) still reads.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A capacity figure in GiB, or one of Cinder's two non-figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Capacity {
    /// So many GiB.
    Gib(f64),
    /// The backend has no practical limit.
    Infinite,
    /// The backend cannot tell (also: not reported).
    #[default]
    Unknown,
}

impl Capacity {
    /// The figure, when there is one.
    pub fn gib(self) -> Option<f64> {
        match self {
            Capacity::Gib(g) => Some(g),
            _ => None,
        }
    }
}

impl Serialize for Capacity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Capacity::Gib(g) => s.serialize_f64(*g),
            Capacity::Infinite => s.serialize_str("infinite"),
            Capacity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Capacity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json_like::Scalar::deserialize(d)? {
            serde_json_like::Scalar::Number(n) => Capacity::Gib(n),
            serde_json_like::Scalar::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "infinite" => Capacity::Infinite,
                "unknown" | "" => Capacity::Unknown,
                other => match other.parse::<f64>() {
                    Ok(n) if n.is_finite() => Capacity::Gib(n),
                    _ => Capacity::Unknown,
                },
            },
            serde_json_like::Scalar::Other => Capacity::Unknown,
        })
    }
}

/// `max_over_subscription_ratio`: a figure, or `auto` (computed by the scheduler from
/// what the backend has provisioned against what it uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverSubscription {
    /// At most this many times the total capacity may be provisioned.
    Ratio(f64),
    /// Cinder's `auto`.
    Auto,
}

impl Default for OverSubscription {
    /// Cinder's default, 20.0.
    fn default() -> Self {
        OverSubscription::Ratio(20.0)
    }
}

impl std::str::FromStr for OverSubscription {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(OverSubscription::Auto);
        }
        match t.parse::<f64>() {
            Ok(r) if r.is_finite() => Ok(OverSubscription::Ratio(r)),
            _ => Err(format!(
                "max_over_subscription_ratio must be a number or \"auto\", not {s:?}"
            )),
        }
    }
}

impl std::fmt::Display for OverSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Cinder's option is a string: "20.0".
            OverSubscription::Ratio(r) if r.fract() == 0.0 => write!(f, "{r:.1}"),
            OverSubscription::Ratio(r) => write!(f, "{r}"),
            OverSubscription::Auto => f.write_str("auto"),
        }
    }
}

impl Serialize for OverSubscription {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OverSubscription {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json_like::Scalar::deserialize(d)? {
            serde_json_like::Scalar::Number(n) => Ok(OverSubscription::Ratio(n)),
            serde_json_like::Scalar::Text(t) => t.parse().map_err(serde::de::Error::custom),
            serde_json_like::Scalar::Other => Err(serde::de::Error::custom(
                "max_over_subscription_ratio must be a number or \"auto\"",
            )),
        }
    }
}

/// A backend's capacity and capabilities (Cinder's stats keys). The backend is one
/// pool, named by `volume_backend_name`, as Cinder's RBD driver reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// The name volume types pin with `volume_backend_name`; also the pool's name.
    pub volume_backend_name: String,
    /// Vendor.
    pub vendor_name: String,
    /// Driver version.
    pub driver_version: String,
    /// `ceph`.
    pub storage_protocol: String,
    /// GiB in all (two decimals).
    pub total_capacity_gb: Capacity,
    /// GiB free (two decimals).
    pub free_capacity_gb: Capacity,
    /// GiB of volumes the backend holds, from the database (what thin provisioning has
    /// promised). Whole numbers are written as integers, as Cinder's.
    #[serde(serialize_with = "whole_as_integer")]
    pub provisioned_capacity_gb: f64,
    /// GiB of volumes placed on the backend by this service (Cinder's manager adds it).
    #[serde(serialize_with = "whole_as_integer")]
    pub allocated_capacity_gb: f64,
    /// Percent of capacity kept free.
    pub reserved_percentage: u32,
    /// Volumes may attach to several hosts at once.
    pub multiattach: bool,
    /// Thin provisioning.
    pub thin_provisioning_support: bool,
    /// Thick provisioning.
    pub thick_provisioning_support: bool,
    /// How far provisioned capacity may exceed the total.
    pub max_over_subscription_ratio: OverSubscription,
    /// `cluster:conf:fsid:user:pool`: tells backends of the same cluster apart.
    pub location_info: String,
    /// `up` (a failed report says `down`).
    pub backend_state: String,
    /// QoS support.
    #[serde(rename = "QoS_support")]
    pub qos_support: bool,
    /// When the figures were taken (RFC 3339, UTC), before the database was read: a
    /// report younger than a placement includes that placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            volume_backend_name: String::new(),
            vendor_name: String::new(),
            driver_version: String::new(),
            storage_protocol: String::new(),
            total_capacity_gb: Capacity::Unknown,
            free_capacity_gb: Capacity::Unknown,
            provisioned_capacity_gb: 0.0,
            allocated_capacity_gb: 0.0,
            reserved_percentage: 0,
            multiattach: false,
            thin_provisioning_support: false,
            thick_provisioning_support: false,
            max_over_subscription_ratio: OverSubscription::default(),
            location_info: String::new(),
            backend_state: "down".into(),
            qos_support: false,
            timestamp: None,
        }
    }
}

fn whole_as_integer<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Lenient scalars: a number, a string, or anything else.
mod serde_json_like {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    pub(super) enum Scalar {
        Number(f64),
        Text(String),
        Other,
    }

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Scalar;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a number or a string")
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar::Number(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar::Number(v as f64))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar::Number(v as f64))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar::Text(v.to_string()))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                    Ok(Scalar::Other)
                }
                fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar::Other)
                }
                fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                    Ok(Scalar::Other)
                }
            }
            d.deserialize_any(V)
        }
    }
}
