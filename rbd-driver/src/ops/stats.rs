//! Cluster facts from the one connection: mon addresses (cached), pool usage and quota.

use std::time::{Duration, Instant};

use tracing::instrument;

use super::RbdDriver;
use crate::error::{Error, Result};
use crate::rbd::CommandTarget;
use crate::types::{MonAddr, PoolUsage};

fn json(out: &[u8], what: &str) -> Result<serde_json::Value> {
    serde_json::from_slice(out).map_err(|e| Error::Unexpected(format!("{what}: {e}")))
}

/// Parses `mon dump` JSON: each mon's legacy (v1) address, as Nova/libvirt take them.
pub(crate) fn parse_mon_dump(v: &serde_json::Value) -> Result<Vec<MonAddr>> {
    let mons = v
        .get("mons")
        .and_then(|m| m.as_array())
        .ok_or_else(|| Error::Unexpected("mon dump without mons".into()))?;
    let mut out = Vec::new();
    for m in mons {
        // Prefer the v1 entry of public_addrs; fall back to the legacy `addr` field.
        let v1 = m
            .pointer("/public_addrs/addrvec")
            .and_then(|a| a.as_array())
            .and_then(|a| {
                a.iter()
                    .find(|e| e.get("type").and_then(|t| t.as_str()) == Some("v1"))
            })
            .and_then(|e| e.get("addr"))
            .and_then(|a| a.as_str());
        let addr = v1
            .or_else(|| m.get("addr").and_then(|a| a.as_str()))
            .ok_or_else(|| Error::Unexpected(format!("mon without address: {m}")))?;
        let addr = addr.split('/').next().unwrap_or(addr);
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| Error::Unexpected(format!("bad mon address {addr}")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = port
            .parse()
            .map_err(|_| Error::Unexpected(format!("bad mon port in {addr}")))?;
        out.push(MonAddr { host, port });
    }
    Ok(out)
}

impl RbdDriver {
    /// Monitor addresses from `mon dump`, cached for `mon_addrs_cache_secs`.
    #[instrument(skip_all)]
    pub async fn mon_addrs(&self) -> Result<Vec<MonAddr>> {
        let ttl = Duration::from_secs(self.inner.config.mon_addrs_cache_secs);
        if let Ok(cache) = self.inner.mon_cache.lock() {
            if let Some((at, addrs)) = cache.as_ref() {
                if at.elapsed() < ttl {
                    return Ok(addrs.clone());
                }
            }
        }
        let out = self
            .short(|inner| {
                inner.cluster.command(
                    CommandTarget::Mon,
                    &serde_json::json!({"prefix": "mon dump", "format": "json"}),
                )
            })
            .await?;
        let addrs = parse_mon_dump(&json(&out, "mon dump")?)?;
        if let Ok(mut cache) = self.inner.mon_cache.lock() {
            *cache = Some((Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }

    /// Stored and available bytes of a pool from one `df`, and its quota from
    /// `osd pool get-quota`: two mon commands, never a scan of the images.
    #[instrument(skip_all, fields(pool))]
    pub async fn pool_usage(&self, pool: &str) -> Result<PoolUsage> {
        let pool = pool.to_string();
        let asked = pool.clone();
        let (df, quota) = self
            .short(move |inner| {
                let df = inner.cluster.command(CommandTarget::Mon, &serde_json::json!({"prefix": "df", "format": "json"}))?;
                let quota = inner
                    .cluster
                    .command(CommandTarget::Mon, &serde_json::json!({"prefix": "osd pool get-quota", "pool": asked, "format": "json"}))?;
                Ok((df, quota))
            })
            .await?;
        let df = json(&df, "df")?;
        let quota = json(&quota, "osd pool get-quota")?;
        let stats = df
            .get("pools")
            .and_then(|p| p.as_array())
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(pool.as_str()))
            })
            .and_then(|p| p.get("stats"))
            .ok_or_else(|| Error::Unexpected(format!("df has no pool {pool}")))?;
        let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        Ok(PoolUsage {
            stored_bytes: num(stats, "stored"),
            max_avail_bytes: num(stats, "max_avail"),
            used_bytes: num(stats, "bytes_used"),
            objects: num(stats, "objects"),
            quota_max_bytes: num(&quota, "quota_max_bytes"),
            quota_max_objects: num(&quota, "quota_max_objects"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_dump_yields_v1_addresses() {
        let v = serde_json::json!({"mons": [
            {"name": "a", "public_addrs": {"addrvec": [
                {"type": "v2", "addr": "10.0.0.1:3300", "nonce": 0},
                {"type": "v1", "addr": "10.0.0.1:6789", "nonce": 0}]},
             "addr": "10.0.0.1:6789/0"},
            {"name": "b", "addr": "[::1]:6790/0"}
        ]});
        let addrs = parse_mon_dump(&v).unwrap();
        assert_eq!(
            addrs,
            vec![
                MonAddr {
                    host: "10.0.0.1".into(),
                    port: 6789
                },
                MonAddr {
                    host: "::1".into(),
                    port: 6790
                },
            ]
        );
    }
}
