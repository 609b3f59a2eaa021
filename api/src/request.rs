//! What every v3 handler starts from: the project-less path (3.67), the microversion
//! in force (echoed on every answer), the caller, and the URLs to link back with.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::context::Context;
use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::AppState;

/// First path segments after `/v3/` that name a collection, not a project.
const COLLECTIONS: &[&str] = &[
    "volumes",
    "snapshots",
    "backups",
    "types",
    "attachments",
    "os-quota-sets",
    "os-quota-class-sets",
    "limits",
    "os-services",
    "os-availability-zone",
    "scheduler-stats",
    "capabilities",
    "messages",
    "manageable_volumes",
    "manageable_snapshots",
    "os-volume-manage",
    "os-snapshot-manage",
    "clusters",
    "groups",
    "group_types",
    "group_snapshots",
    "workers",
    "default-types",
    "extensions",
    "qos-specs",
    "os-volume-transfer",
    "volume-transfers",
    "os-hosts",
    "resource_filters",
    "consistencygroups",
    "cgsnapshots",
];

/// The path as the client sent it (for next links) and the project it named, if any.
#[derive(Debug, Clone)]
pub struct Requested {
    /// The client's path.
    pub path: String,
    /// The project id in the URL (`/v3/{project_id}/...`), if there was one.
    pub url_project: Option<String>,
}

/// Rewrites `/v3/{project_id}/rest` to `/v3/rest` (and `/v3/{project_id}` to `/v3/`)
/// before routing, so each route is declared once; the client's path is kept in
/// [`Requested`].
pub async fn strip_project(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut url_project = None;
    if let Some(rest) = path.strip_prefix("/v3/") {
        // `/v3/{project_id}` alone: the v3 document (keystoneauth discovers there when a
        // catalog names the project-scoped endpoint).
        if !rest.is_empty() && !rest.contains('/') && !COLLECTIONS.contains(&rest) {
            url_project = Some(rest.to_string());
            if let Ok(uri) = "/v3/".parse::<Uri>() {
                *req.uri_mut() = uri;
            }
        } else if let Some((first, tail)) = rest.split_once('/') {
            if !first.is_empty() && !COLLECTIONS.contains(&first) {
                url_project = Some(first.to_string());
                let new = match req.uri().query() {
                    Some(q) => format!("/v3/{tail}?{q}"),
                    None => format!("/v3/{tail}"),
                };
                if let Ok(uri) = new.parse::<Uri>() {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    req.extensions_mut().insert(Requested { path, url_project });
    next.run(req).await
}

/// Reads the microversion of every v3 request (400/406 before the handler runs) and
/// echoes it on the answer, errors included.
pub async fn microversion(mut req: Request, next: Next) -> Response {
    match Microversion::from_headers(req.headers()) {
        Err(e) => e.into_response(),
        Ok(v) => {
            req.extensions_mut().insert(v);
            let mut resp = next.run(req).await;
            for (k, val) in v.headers() {
                resp.headers_mut().insert(k, val);
            }
            resp
        }
    }
}

/// A v3 request: caller, version, links.
#[derive(Debug, Clone)]
pub struct Req {
    /// The caller.
    pub ctx: Context,
    /// The microversion in force.
    pub v: Microversion,
    /// `http://host:port` (or `[api] public_endpoint`), no trailing slash.
    pub base: String,
    /// The client's path.
    pub path: String,
    /// The query pairs, in order.
    pub query: Vec<(String, String)>,
}

impl Req {
    /// 404 below 3.`minor`: the route does not exist at the version in force, as
    /// Cinder answers for methods newer than the request.
    pub fn since(&self, minor: u16) -> Result<(), ApiError> {
        if self.v.at_least(minor) {
            Ok(())
        } else {
            Err(ApiError::not_found("The resource could not be found."))
        }
    }

    /// The project the caller's links name.
    pub fn link_project(&self) -> &str {
        &self.ctx.project_id
    }

    /// `self` and `bookmark` links of `collection/id`.
    pub fn links(&self, collection: &str, id: &str) -> serde_json::Value {
        serde_json::to_value(crate::views::Links {
            r: self,
            collection,
            id,
        })
        .unwrap_or_default()
    }

    /// The value of query key `k` (the last one given).
    pub fn query_value(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequestParts<AppState> for Req {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ctx = Context::from_request_parts(parts, state).await?;
        let v = match parts.extensions.get::<Microversion>() {
            Some(v) => *v,
            None => Microversion::from_headers(&parts.headers)?,
        };
        let base = match &state.public_endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => {
                let host = parts
                    .headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or(&state.listen);
                format!("http://{host}")
            }
        };
        let path = parts
            .extensions
            .get::<Requested>()
            .map(|r| r.path.clone())
            .unwrap_or_else(|| parts.uri.path().to_string());
        let query = parse_query(parts.uri.query().unwrap_or(""));
        Ok(Req {
            ctx,
            v,
            base,
            path,
            query,
        })
    }
}

/// `a=1&b=x%20y` into pairs (`+` is a space, as forms encode it).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_percent_and_plus() {
        assert_eq!(
            parse_query("name%7E=a+b&metadata=%7B%27k%27%3A+%27v%27%7D&x"),
            vec![
                ("name~".to_string(), "a b".to_string()),
                ("metadata".to_string(), "{'k': 'v'}".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(
            parse_query("a=%zz&b=%4"),
            vec![("a".into(), "%zz".into()), ("b".into(), "%4".into())]
        );
    }
}
