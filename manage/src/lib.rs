//! `cinder-manage`: operator commands. `db sync` and `db version` arrive with the
//! persistence issue.
#![warn(missing_docs)]

use cinder_common::settings::{DatabaseSettings, LoggingSettings};
use serde::Deserialize;

/// This binary's configuration.
#[derive(Debug, Deserialize)]
pub struct Settings {
    /// `[database]`
    #[serde(default = "DatabaseSettings::defaults")]
    pub database: DatabaseSettings,
    /// `[logging]`
    #[serde(default = "LoggingSettings::defaults")]
    pub logging: LoggingSettings,
}

/// Runs a command line such as `db sync`; returns the process exit code.
pub fn run(_settings: &Settings, command: &[String]) -> anyhow::Result<i32> {
    match command
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["db", "sync"] | ["db", "version"] => {
            eprintln!("cinder-manage: database migrations arrive with the persistence issue");
            Ok(2)
        }
        _ => {
            eprintln!("usage: cinder-manage [--config PATH] db sync|version");
            Ok(2)
        }
    }
}
