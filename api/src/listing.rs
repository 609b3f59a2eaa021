//! List requests as Cinder reads them (`cinder/api/common.py`): `limit` (capped at
//! `osapi_max_limit`), `marker`, `offset`, `sort=key:dir,...` or the older
//! `sort_key`/`sort_dir` (not both), `with_count` (3.45), `all_tenants` (admins); every
//! other key is a filter for the resource to check. Next links as Cinder emits them.

use std::collections::BTreeMap;

use cinder_db::SortDir;

use crate::error::ApiError;
use crate::microversion::Microversion;

/// A parsed list request.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Page size (capped).
    pub limit: u64,
    /// Whether the caller gave `limit`.
    pub limit_given: bool,
    /// Id of the last item of the previous page.
    pub marker: Option<String>,
    /// Rows to skip.
    pub offset: u64,
    /// Sort keys as given, with their directions.
    pub sort: Vec<(String, SortDir)>,
    /// `with_count` (3.45).
    pub with_count: bool,
    /// `all_tenants` (only honoured for admins).
    pub all_tenants: bool,
    /// The remaining keys.
    pub filters: BTreeMap<String, String>,
}

fn non_negative(key: &str, v: &str) -> Result<u64, ApiError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{key} param must be an integer")))?;
    if n < 0 {
        return Err(ApiError::bad_request(format!(
            "{key} param must be positive"
        )));
    }
    Ok(n as u64)
}

/// `asc` or `desc`, as Cinder spells them (`ASC` is a 400 there too).
fn direction(d: &str) -> Result<SortDir, ApiError> {
    match d.trim() {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        _ => Err(ApiError::bad_request(
            "Unknown sort direction, must be 'desc' or 'asc'",
        )),
    }
}

impl ListParams {
    /// Reads `query` (pairs in order; a repeated key keeps its last value).
    pub fn parse(
        query: &[(String, String)],
        v: Microversion,
        max_limit: u64,
    ) -> Result<ListParams, ApiError> {
        let mut q: BTreeMap<String, String> = query.iter().cloned().collect();
        let mut p = ListParams {
            limit: max_limit,
            ..Default::default()
        };
        if let Some(l) = q.remove("limit") {
            p.limit = non_negative("limit", &l)?.min(max_limit);
            p.limit_given = true;
        }
        p.marker = q.remove("marker").filter(|m| !m.is_empty());
        if let Some(o) = q.remove("offset") {
            p.offset = non_negative("offset", &o)?;
        }
        let sort = q.remove("sort");
        let (key, dir) = (q.remove("sort_key"), q.remove("sort_dir"));
        match (sort, key, dir) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ApiError::bad_request(
                    "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
                ))
            }
            (Some(s), None, None) => {
                for part in s.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, d) = match part.split_once(':') {
                        Some((k, d)) => (k.trim(), direction(d)?),
                        None => (part.trim(), SortDir::Desc),
                    };
                    p.sort.push((k.to_string(), d));
                }
            }
            (None, keys, dirs) => {
                let dirs: Vec<SortDir> = match dirs {
                    Some(d) => d.split(',').map(direction).collect::<Result<_, _>>()?,
                    None => vec![],
                };
                if let Some(keys) = keys {
                    for (i, k) in keys.split(',').enumerate() {
                        let d = dirs.get(i).or(dirs.last()).copied().unwrap_or(SortDir::Desc);
                        p.sort.push((k.trim().to_string(), d));
                    }
                }
            }
        }
        if let Some(c) = q.remove("with_count") {
            if v.at_least(45) {
                p.with_count = cinder_common::strutils::bool_from_string(&c).ok_or_else(|| {
                    ApiError::bad_request(format!("Invalid value '{c}' for with_count"))
                })?;
            }
        }
        if let Some(a) = q.remove("all_tenants") {
            // Cinder: `all_tenants=1`, `all_tenants=true`, or the key alone.
            p.all_tenants =
                a.is_empty() || cinder_common::strutils::bool_from_string(&a) == Some(true);
        }
        p.filters = q;
        Ok(p)
    }

    /// Maps the sort keys through `known` (400 for one it does not know).
    pub fn sort_keys<K: Copy>(
        &self,
        known: impl Fn(&str) -> Option<K>,
    ) -> Result<Vec<(K, SortDir)>, ApiError> {
        self.sort
            .iter()
            .map(|(k, d)| {
                known(k)
                    .map(|k| (k, *d))
                    .ok_or_else(|| ApiError::bad_request(format!("Invalid sort key {k}")))
            })
            .collect()
    }

    /// Whether the page of `len` items gets a next link.
    pub fn has_next(&self, len: usize, max_limit: u64) -> bool {
        len > 0 && ((self.limit_given && len as u64 == self.limit) || len as u64 == max_limit)
    }
}

/// The next page's URL: the request's own, with `marker` set to `last`.
pub fn next_link(base: &str, path: &str, query: &[(String, String)], last: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    pairs.push(("marker".into(), last.into()));
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{base}{path}?{}", q.join("&"))
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out += &format!("%{b:02X}"),
        }
    }
    out
}

/// Cinder's `metadata` filter: a Python dict literal (`{'k': 'v'}`, what cinderclient
/// sends) or JSON, of strings.
pub fn parse_metadata_filter(s: &str) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid metadata filter {s}"));
    let json: String = s.trim().replace('\'', "\"");
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|_| bad())?;
    let obj = v.as_object().ok_or_else(bad)?;
    obj.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Ok((k.clone(), n.to_string())),
            serde_json::Value::Bool(b) => Ok((k.clone(), if *b { "True" } else { "False" }.into())),
            _ => Err(bad()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn list_parameters_are_read_as_cinder_reads_them() {
        let p = ListParams::parse(
            &q(&[("limit", "5000"), ("sort", "size:asc,name")]),
            Microversion(45),
            1000,
        )
        .unwrap();
        assert_eq!(p.limit, 1000);
        assert_eq!(
            p.sort,
            vec![
                ("size".into(), SortDir::Asc),
                ("name".into(), SortDir::Desc)
            ]
        );
        let p = ListParams::parse(
            &q(&[("sort_key", "size,name"), ("sort_dir", "asc")]),
            Microversion(0),
            1000,
        )
        .unwrap();
        assert_eq!(
            p.sort,
            vec![("size".into(), SortDir::Asc), ("name".into(), SortDir::Asc)]
        );
        for bad in [
            q(&[("limit", "-1")]),
            q(&[("limit", "x")]),
            q(&[("offset", "-2")]),
            q(&[("sort", "size:up")]),
            q(&[("sort", "size:ASC")]),
            q(&[("sort_key", "size"), ("sort_dir", "Desc")]),
            q(&[("sort", "size"), ("sort_key", "name")]),
        ] {
            assert_eq!(
                ListParams::parse(&bad, Microversion(45), 1000)
                    .unwrap_err()
                    .status
                    .as_u16(),
                400,
                "{bad:?}"
            );
        }
        let p = ListParams::parse(
            &q(&[("with_count", "true"), ("status", "available")]),
            Microversion(44),
            1000,
        )
        .unwrap();
        assert!(!p.with_count, "with_count arrives with 3.45");
        assert_eq!(
            p.filters.get("status").map(String::as_str),
            Some("available")
        );
    }

    #[test]
    fn next_links_carry_the_query_with_the_new_marker() {
        let l = next_link(
            "http://h",
            "/v3/p/volumes/detail",
            &q(&[("limit", "2"), ("marker", "a"), ("name~", "x y")]),
            "b",
        );
        assert_eq!(
            l,
            "http://h/v3/p/volumes/detail?limit=2&name~=x%20y&marker=b"
        );
    }

    #[test]
    fn metadata_filters_read_python_dicts_and_json() {
        assert_eq!(
            parse_metadata_filter("{'k': 'v'}").unwrap(),
            vec![("k".into(), "v".into())]
        );
        assert_eq!(
            parse_metadata_filter(r#"{"a":"1","b":"2"}"#).unwrap().len(),
            2
        );
        assert!(parse_metadata_filter("k=v").is_err());
    }
}
