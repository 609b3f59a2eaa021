//! Configuration sections shared by several binaries. Option names follow Cinder's
//! (`report_interval`, `service_down_time`, `[database] connection`, `transport_url`)
//! so operators' configuration knowledge carries over; units are in the docs.

use serde::Deserialize;

/// A string that never shows in `Debug` output (URLs with passwords, tokens). It
/// serializes as itself: only where it must travel (a token in an RPC context).
#[derive(Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[service]`: identity and liveness of a service process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Host name services register under (`host@backend` for volume services).
    /// Default: the machine's host name.
    #[serde(default = "default_host")]
    pub host: String,
    /// Seconds between heartbeats to the database. Default 10.
    #[serde(default = "default_report_interval")]
    pub report_interval: u64,
    /// Seconds without a heartbeat after which a service counts as down. Default 60.
    /// Read it through [`ServiceSettings::down_time`]: as in Cinder, a value not above
    /// `report_interval` is replaced by 2.5 × `report_interval`.
    #[serde(default = "default_service_down_time")]
    pub service_down_time: u64,
    /// Availability zone of this service. Default `nova`.
    #[serde(default = "default_az")]
    pub storage_availability_zone: String,
}

impl ServiceSettings {
    /// The `service_down_time` in force: the configured one, unless it is not above
    /// `report_interval` (every service would flap to down between heartbeats), in which
    /// case Cinder's override of 2.5 × `report_interval`, truncated to whole seconds.
    pub fn down_time(&self) -> u64 {
        if self.service_down_time <= self.report_interval {
            self.report_interval * 5 / 2
        } else {
            self.service_down_time
        }
    }

    /// The section with every field at its default.
    pub fn defaults() -> Self {
        ServiceSettings {
            host: default_host(),
            report_interval: default_report_interval(),
            service_down_time: default_service_down_time(),
            storage_availability_zone: default_az(),
        }
    }
}

fn default_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
fn default_report_interval() -> u64 {
    10
}
fn default_service_down_time() -> u64 {
    60
}
fn default_az() -> String {
    "nova".into()
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Database URL: `sqlite://PATH?mode=rwc`, `postgres://...`, `mysql://...`.
    /// Default `sqlite:///var/lib/cinder-rs/cinder.sqlite?mode=rwc`.
    #[serde(default = "default_db")]
    pub connection: Secret,
}

impl DatabaseSettings {
    /// The section with every field at its default.
    pub fn defaults() -> Self {
        DatabaseSettings {
            connection: default_db(),
        }
    }
}

fn default_db() -> Secret {
    Secret::new("sqlite:///var/lib/cinder-rs/cinder.sqlite?mode=rwc")
}

/// `[amqp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// Broker URL. Default `amqp://guest:guest@127.0.0.1:5672/%2f`.
    #[serde(default = "default_amqp")]
    pub transport_url: Secret,
    /// The scheduler's queue (Cinder's `scheduler_topic`): schedulers consume it, the
    /// API and volume services cast creates to it. Default `cinder-scheduler`.
    #[serde(default = "default_scheduler_topic")]
    pub scheduler_topic: String,
}

impl AmqpSettings {
    /// The section with every field at its default.
    pub fn defaults() -> Self {
        AmqpSettings {
            transport_url: default_amqp(),
            scheduler_topic: default_scheduler_topic(),
        }
    }
}

fn default_scheduler_topic() -> String {
    "cinder-scheduler".into()
}

fn default_amqp() -> Secret {
    Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSettings {
    /// Level filter when `RUST_LOG` is unset (`error`..`trace`, or a filter). Default `info`.
    #[serde(default = "default_level")]
    pub level: String,
    /// `pretty` or `json`. Default `pretty`.
    #[serde(default = "default_format")]
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LoggingSettings {
    /// The section with every field at its default.
    pub fn defaults() -> Self {
        LoggingSettings {
            level: default_level(),
            format: default_format(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}
fn default_format() -> LogFormat {
    LogFormat::Pretty
}

/// `[glance]`: where the image service is (Cinder's `glance_api_servers`,
/// `glance_request_timeout`, `glance_num_retries`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlanceSettings {
    /// Comma-separated Glance endpoints (`http://host:9292`), tried in turn. Default
    /// empty: no image service, and requests that need one are refused.
    #[serde(default)]
    pub api_servers: String,
    /// Seconds a request to Glance may take before it fails, data transfers excepted
    /// (they fail when no byte moves for that long). Default 60.
    #[serde(default = "default_glance_timeout")]
    pub request_timeout: u64,
    /// Further attempts of a request that found no server or a 5xx answer, each on the
    /// next server. Default 3.
    #[serde(default = "default_glance_retries")]
    pub num_retries: u32,
    /// Glance's RBD pool (its `rbd_store_pool`). A volume uploaded as a raw image goes
    /// there as a flattened copy with a protected `snap`, registered by location, when
    /// Glance accepts that location (its store is this pool of the volume's cluster);
    /// otherwise its bytes are uploaded. Default `images`.
    #[serde(default = "default_glance_pool")]
    pub rbd_store_pool: String,
}

impl GlanceSettings {
    /// The section with every field at its default.
    pub fn defaults() -> Self {
        GlanceSettings {
            api_servers: String::new(),
            request_timeout: default_glance_timeout(),
            num_retries: default_glance_retries(),
            rbd_store_pool: default_glance_pool(),
        }
    }

    /// The endpoints, trimmed, without a trailing `/`.
    pub fn servers(&self) -> Vec<String> {
        self.api_servers
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl Default for GlanceSettings {
    fn default() -> Self {
        Self::defaults()
    }
}

fn default_glance_timeout() -> u64 {
    60
}
fn default_glance_pool() -> String {
    "images".into()
}
fn default_glance_retries() -> u32 {
    3
}
