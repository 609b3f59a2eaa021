//! Logging initialisation: `RUST_LOG` wins, else the configured level.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LoggingSettings};

/// Installs the global subscriber. Call once, from `main`.
pub fn init(settings: &LoggingSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
