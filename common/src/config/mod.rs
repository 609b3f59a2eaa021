//! The one configuration loader: compiled defaults (serde per-field defaults), then the
//! TOML file (`--config PATH`, else `/etc/cinder-rs/cinder.toml` when present), then
//! environment variables `CINDER__<SECTION>__<KEY>`.
//!
//! All binaries read one file; each deserializes only its own sections, and the loader
//! rejects sections nobody knows, so a typo fails at start-up (each section struct
//! denies unknown keys itself).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;

/// The default configuration file, read when present and no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/cinder-rs/cinder.toml";

/// Top-level sections of the configuration file.
pub const KNOWN_SECTIONS: &[&str] = &[
    "service",
    "database",
    "amqp",
    "logging",
    "api",
    "scheduler",
    "volume",
    "backup",
    "backends",
    "quota",
    "keystone_authtoken",
    "glance",
];

/// Loads `T` from the layers above. `path` is `--config`; a given path must exist.
pub fn load<T: DeserializeOwned>(path: Option<&Path>) -> anyhow::Result<T> {
    load_with_env(path, std::env::vars())
}

/// [`load`] with an explicit environment (for tests).
pub fn load_with_env<T: DeserializeOwned>(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<T> {
    let file: Option<PathBuf> = match path {
        Some(p) if !p.exists() => bail!("configuration file {} does not exist", p.display()),
        Some(p) => Some(p.to_path_buf()),
        None if Path::new(DEFAULT_PATH).exists() => Some(DEFAULT_PATH.into()),
        None => None,
    };
    let mut builder = config::Config::builder();
    if let Some(f) = &file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        check_sections(&text).with_context(|| format!("in {}", f.display()))?;
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("CINDER__"))
        .collect();
    for key in env.keys() {
        let section = key["CINDER__".len()..]
            .split("__")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !KNOWN_SECTIONS.contains(&section.as_str()) {
            bail!(
                "environment variable {key} names no known section ({})",
                KNOWN_SECTIONS.join(", ")
            );
        }
    }
    builder = builder.add_source(
        config::Environment::with_prefix("CINDER")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("volume.enabled_backends")
            .source(Some(env)),
    );
    let cfg = builder.build().context("building the configuration")?;
    let where_ = file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "defaults and environment".into());
    cfg.try_deserialize()
        .with_context(|| format!("invalid configuration ({where_})"))
}

/// Rejects top-level tables and keys that no binary reads.
pub fn check_sections(toml_text: &str) -> anyhow::Result<()> {
    let table: toml::Table = toml_text.parse().context("not valid TOML")?;
    for key in table.keys() {
        if !KNOWN_SECTIONS.contains(&key.as_str()) {
            bail!(
                "unknown section [{key}] (known: {})",
                KNOWN_SECTIONS.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
