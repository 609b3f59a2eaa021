//! `cinder-manage`: operator commands.
//!
//! - `db sync`: applies pending migrations (the only place migrations run).
//! - `db version`: prints the newest applied migration and what is pending.
//!
//! The database URL comes from `--database-url URL`, else `[database] connection`.
#![warn(missing_docs)]

use anyhow::{bail, Context};
use cinder_common::settings::{DatabaseSettings, LoggingSettings};
use cinder_migrations::{Migrator, MigratorTrait};
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

/// The usage line.
pub const USAGE: &str = "[--database-url URL] db sync|version";

/// Runs a command line such as `db sync`, printing its report to stdout.
pub async fn run(settings: &Settings, args: &[String]) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let done = run_to(settings, args, &mut out).await;
    print!("{}", String::from_utf8_lossy(&out));
    done
}

/// Runs a command line such as `db sync`, writing its report to `out`.
pub async fn run_to(
    settings: &Settings,
    args: &[String],
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let mut url = settings.database.connection.expose().to_string();
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--database-url" => url = it.next().context("--database-url needs a URL")?.clone(),
            s if s.starts_with("--database-url=") => url = s["--database-url=".len()..].to_string(),
            _ => words.push(a.as_str()),
        }
    }
    let db = cinder_db::Db::connect(&url)
        .await
        .with_context(|| format!("connecting to {}", redact(&url)))?;
    match words.as_slice() {
        ["db", "sync"] => {
            Migrator::up(db.connection(), None)
                .await
                .context("applying migrations")?;
            writeln!(
                out,
                "schema at {}",
                db.schema_version().await?.unwrap_or_default()
            )?;
        }
        ["db", "version"] => {
            let current = db.schema_version().await?;
            let pending = Migrator::get_pending_migrations(db.connection())
                .await
                .unwrap_or_default();
            writeln!(out, "current: {}", current.as_deref().unwrap_or("none"))?;
            writeln!(out, "pending: {}", pending.len())?;
            for m in pending {
                writeln!(out, "  {}", m.name())?;
            }
        }
        _ => bail!("usage: cinder-manage {USAGE}"),
    }
    Ok(())
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_do_not_reach_messages() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
