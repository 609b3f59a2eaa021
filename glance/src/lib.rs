//! A Glance v2 client: what the API (resolve and check an image) and the volume service
//! (download, upload, register an RBD location) ask of the image service. Plain HTTP
//! with the caller's token when there is one (`X-Auth-Token`); the servers of
//! `[glance] api_servers` are tried in turn, a GET or DELETE that finds none, or a 5xx,
//! is tried again on the next (not a POST, PATCH or upload: they are not repeatable).
//!
//! Knows nothing of Ceph, the database or the services' own API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cinder_common::settings::GlanceSettings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// What went wrong talking to Glance.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image service is configured (`[glance] api_servers` is empty).
    #[error("no image service is configured ([glance] api_servers)")]
    NotConfigured,
    /// 404 (or an image the caller may not see).
    #[error("image {0} could not be found")]
    NotFound(String),
    /// 409: the image is in use (clones) or in the wrong state.
    #[error("glance refused: {0}")]
    Conflict(String),
    /// 400 or 403: the request was refused as given.
    #[error("glance refused the request ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Glance's explanation.
        message: String,
    },
    /// No server answered, or every one answered 5xx.
    #[error("the image service is unavailable: {0}")]
    Unavailable(String),
    /// An answer that is not what the API promises.
    #[error("unexpected answer from glance: {0}")]
    Protocol(String),
}

/// The result type.
pub type Result<T> = std::result::Result<T, Error>;

/// The fields of Glance's image schema; every other key of an image is a property.
pub const CORE_FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "disk_format",
    "container_format",
    "created_at",
    "updated_at",
    "tags",
    "direct_url",
    "locations",
    "self",
    "file",
    "schema",
    "stores",
];

/// An image as `GET /v2/images/{id}` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image(pub Value);

impl Image {
    fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(Value::as_str)
    }
    fn num(&self, k: &str) -> Option<u64> {
        self.0.get(k).and_then(Value::as_u64)
    }

    /// Its id.
    pub fn id(&self) -> &str {
        self.str("id").unwrap_or_default()
    }
    /// Its name.
    pub fn name(&self) -> Option<&str> {
        self.str("name")
    }
    /// `queued`, `saving`, `active`, `deactivated`, ...
    pub fn status(&self) -> &str {
        self.str("status").unwrap_or_default()
    }
    /// `raw`, `qcow2`, ... (none before data or a location arrived).
    pub fn disk_format(&self) -> Option<&str> {
        self.str("disk_format")
    }
    /// `bare`, ...
    pub fn container_format(&self) -> Option<&str> {
        self.str("container_format")
    }
    /// Bytes stored.
    pub fn size(&self) -> Option<u64> {
        self.num("size")
    }
    /// Bytes of the disk the image holds (Glance computes it for some formats).
    pub fn virtual_size(&self) -> Option<u64> {
        self.num("virtual_size")
    }
    /// Smallest disk it boots from, GiB.
    pub fn min_disk(&self) -> u64 {
        self.num("min_disk").unwrap_or(0)
    }
    /// MD5 of the data (null for images registered by location).
    pub fn checksum(&self) -> Option<&str> {
        self.str("checksum")
    }

    /// Where the data lives, in Glance's order (`locations`, then `direct_url` when
    /// it is not among them): the candidates for a copy-on-write clone.
    pub fn locations(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .get("locations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("url").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        if let Some(d) = self.str("direct_url") {
            if !out.iter().any(|u| u == d) {
                out.push(d.to_string());
            }
        }
        out
    }

    /// The image's own properties (every key outside Glance's schema), as strings.
    pub fn properties(&self) -> BTreeMap<String, String> {
        self.0
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !CORE_FIELDS.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((k.clone(), v))
            })
            .collect()
    }
}

/// An image's data, read as it arrives.
pub struct Download {
    resp: reqwest::Response,
    /// Bytes Glance says it sends, if it says.
    pub length: Option<u64>,
}

impl Download {
    /// The next piece; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        match self.resp.chunk().await {
            Ok(c) => Ok(c.map(|b| b.to_vec())),
            Err(e) => Err(Error::Unavailable(format!("the download broke off: {e}"))),
        }
    }
}

/// The client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Glance {
    http: reqwest::Client,
    servers: std::sync::Arc<Vec<String>>,
    next: std::sync::Arc<AtomicUsize>,
    retries: u32,
    timeout: Duration,
}

impl std::fmt::Debug for Glance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Glance")
            .field("servers", &self.servers)
            .finish()
    }
}

/// A request body.
enum Body {
    None,
    Json(Value),
    Patch(Value),
    Stream(reqwest::Body),
}

impl Glance {
    /// A client for the servers of `settings`; [`Error::NotConfigured`] without any.
    pub fn new(settings: &GlanceSettings) -> Result<Glance> {
        let servers = settings.servers();
        if servers.is_empty() {
            return Err(Error::NotConfigured);
        }
        let timeout = Duration::from_secs(settings.request_timeout.max(1));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| Error::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Glance {
            http,
            servers: std::sync::Arc::new(servers),
            next: std::sync::Arc::new(AtomicUsize::new(0)),
            retries: settings.num_retries,
            timeout,
        })
    }

    /// A client when `settings` name any server, `None` when they name none (images
    /// are then refused with a message saying so).
    pub fn from_settings(settings: &GlanceSettings) -> Result<Option<Glance>> {
        match Glance::new(settings) {
            Ok(g) => {
                tracing::info!(servers = ?g.servers(), "images from glance");
                Ok(Some(g))
            }
            Err(Error::NotConfigured) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The servers, in the order they are tried.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    async fn send(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Body,
        whole: bool,
    ) -> Result<reqwest::Response> {
        // Only what may be repeated is: a lost answer to a POST or PATCH that Glance
        // did carry out must not be carried out again.
        let attempts = match (&method, &body) {
            (_, Body::Stream(_)) => 1,
            (&Method::GET | &Method::DELETE, _) => self.retries + 1,
            _ => 1,
        };
        let (body, mut stream) = match body {
            Body::Stream(s) => (Body::None, Some(s)),
            other => (other, None),
        };
        let mut last = String::new();
        for attempt in 0..attempts {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let server = &self.servers[n % self.servers.len()];
            let mut rb = self.http.request(method.clone(), format!("{server}{path}"));
            if whole {
                rb = rb.timeout(self.timeout);
            }
            if let Some(t) = token {
                rb = rb.header("X-Auth-Token", t);
            }
            rb = match &body {
                Body::None | Body::Stream(_) => rb,
                Body::Json(v) => rb.json(v),
                Body::Patch(v) => rb
                    .header(
                        "Content-Type",
                        "application/openstack-images-v2.1-json-patch",
                    )
                    .body(v.to_string()),
            };
            if let Some(s) = stream.take() {
                rb = rb
                    .header("Content-Type", "application/octet-stream")
                    .body(s);
            }
            match rb.send().await {
                Ok(r) if r.status().is_server_error() => {
                    last = format!("{server}: {} {}", r.status(), message_of(r).await);
                }
                Ok(r) => return Ok(r),
                Err(e) => last = format!("{server}: {e}"),
            }
            tracing::warn!(attempt, error = %last, "glance request failed");
            if attempt + 1 < attempts {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Err(Error::Unavailable(last))
    }

    /// Checks the status of an answer about image `id`.
    async fn check(id: &str, r: reqwest::Response) -> Result<reqwest::Response> {
        let status = r.status();
        if status.is_success() {
            return Ok(r);
        }
        let message = message_of(r).await;
        Err(match status {
            StatusCode::NOT_FOUND => Error::NotFound(id.to_string()),
            StatusCode::CONFLICT => Error::Conflict(message),
            s if s.is_client_error() => Error::Refused {
                status: s.as_u16(),
                message,
            },
            s => Error::Protocol(format!("{s}: {message}")),
        })
    }

    async fn image_of(id: &str, r: reqwest::Response) -> Result<Image> {
        let r = Self::check(id, r).await?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| Error::Protocol(format!("image {id}: {e}")))?;
        if !v.is_object() {
            return Err(Error::Protocol(format!("image {id}: not an object")));
        }
        Ok(Image(v))
    }

    /// `GET /v2/images/{id}`.
    pub async fn image(&self, token: Option<&str>, id: &str) -> Result<Image> {
        let r = self
            .send(
                token,
                Method::GET,
                &format!("/v2/images/{id}"),
                Body::None,
                true,
            )
            .await?;
        Self::image_of(id, r).await
    }

    /// The images named exactly `name` (at most 2: enough to tell unique from
    /// ambiguous).
    pub async fn images_named(&self, token: Option<&str>, name: &str) -> Result<Vec<Image>> {
        let q: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect();
        let r = self
            .send(
                token,
                Method::GET,
                &format!("/v2/images?name={q}&limit=2"),
                Body::None,
                true,
            )
            .await?;
        let r = Self::check(name, r).await?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| Error::Protocol(format!("image list: {e}")))?;
        Ok(v.get("images")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .cloned()
            .map(Image)
            .collect())
    }

    /// `GET /v2/images/{id}/file`: the data, read as it arrives.
    pub async fn download(&self, token: Option<&str>, id: &str) -> Result<Download> {
        let r = self
            .send(
                token,
                Method::GET,
                &format!("/v2/images/{id}/file"),
                Body::None,
                false,
            )
            .await?;
        let r = Self::check(id, r).await?;
        if r.status() == StatusCode::NO_CONTENT {
            return Err(Error::Conflict(format!("image {id} has no data")));
        }
        let length = r.content_length();
        Ok(Download { resp: r, length })
    }

    /// `POST /v2/images` with `body` (name, formats, visibility, properties): the
    /// image, `queued`.
    pub async fn create(&self, token: Option<&str>, body: &Value) -> Result<Image> {
        let r = self
            .send(
                token,
                Method::POST,
                "/v2/images",
                Body::Json(body.clone()),
                true,
            )
            .await?;
        Self::image_of("(new)", r).await
    }

    /// `PUT /v2/images/{id}/file` with the pieces arriving on `rx`, until it closes.
    /// Fewer than `length` bytes by then (the sender failed): the request breaks off,
    /// and Glance keeps no image data.
    pub async fn upload_chunks(
        &self,
        token: Option<&str>,
        id: &str,
        rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
        length: u64,
    ) -> Result<()> {
        let body = Chunks {
            rx,
            want: length,
            sent: 0,
        };
        self.upload(token, id, reqwest::Body::wrap_stream(body))
            .await
    }

    /// `PUT /v2/images/{id}/file` with the content of `file`.
    pub async fn upload_file(
        &self,
        token: Option<&str>,
        id: &str,
        file: tokio::fs::File,
    ) -> Result<()> {
        self.upload(token, id, reqwest::Body::wrap_stream(FileChunks(file)))
            .await
    }

    /// `PUT /v2/images/{id}/file`: the data, streamed from `body`.
    async fn upload(&self, token: Option<&str>, id: &str, body: reqwest::Body) -> Result<()> {
        let r = self
            .send(
                token,
                Method::PUT,
                &format!("/v2/images/{id}/file"),
                Body::Stream(body),
                false,
            )
            .await?;
        Self::check(id, r).await.map(|_| ())
    }

    /// `DELETE /v2/images/{id}`; a missing image is no error.
    pub async fn delete(&self, token: Option<&str>, id: &str) -> Result<()> {
        let r = self
            .send(
                token,
                Method::DELETE,
                &format!("/v2/images/{id}"),
                Body::None,
                true,
            )
            .await?;
        match Self::check(id, r).await {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Adds location `url` to image `id` (a queued image becomes `active`).
    pub async fn add_location(&self, token: Option<&str>, id: &str, url: &str) -> Result<()> {
        let patch = json!([{
            "op": "add",
            "path": "/locations/-",
            "value": {"url": url, "metadata": {}},
        }]);
        let r = self
            .send(
                token,
                Method::PATCH,
                &format!("/v2/images/{id}"),
                Body::Patch(patch),
                true,
            )
            .await?;
        Self::check(id, r).await.map(|_| ())
    }

    /// `POST /v2/images/{id}/actions/deactivate`.
    pub async fn deactivate(&self, token: Option<&str>, id: &str) -> Result<()> {
        let r = self
            .send(
                token,
                Method::POST,
                &format!("/v2/images/{id}/actions/deactivate"),
                Body::None,
                true,
            )
            .await?;
        Self::check(id, r).await.map(|_| ())
    }
}

/// Pieces arriving on a channel, as an HTTP body that fails when it ends short.
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    want: u64,
    sent: u64,
}

impl futures_core::Stream for Chunks {
    type Item = std::result::Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(piece)) => {
                self.sent += piece.len() as u64;
                Poll::Ready(Some(Ok(piece)))
            }
            Poll::Ready(None) if self.sent != self.want => {
                let e = std::io::Error::other(format!(
                    "the data ended after {} of {} bytes",
                    self.sent, self.want
                ));
                self.sent = self.want;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A file read in 1 MiB pieces, as an HTTP body.
struct FileChunks(tokio::fs::File);

impl futures_core::Stream for FileChunks {
    type Item = std::result::Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let mut buf = vec![0u8; 1 << 20];
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut self.0), cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    Poll::Ready(None)
                } else {
                    buf.truncate(n);
                    Poll::Ready(Some(Ok(buf)))
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Glance's explanation in an error answer (its fault bodies are HTML or JSON).
async fn message_of(r: reqwest::Response) -> String {
    let text = r.text().await.unwrap_or_default();
    let plain: String = strip_tags(&text);
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut inside = false;
    for c in s.chars() {
        match c {
            '<' => inside = true,
            '>' => {
                inside = false;
                out.push(' ');
            }
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_come_in_glance_order_with_direct_url_last_once() {
        let i = Image(json!({
            "id": "x",
            "locations": [{"url": "rbd://a/images/x/snap", "metadata": {}},
                          {"url": "file:///var/x", "metadata": {}}],
            "direct_url": "rbd://a/images/x/snap",
        }));
        assert_eq!(i.locations(), ["rbd://a/images/x/snap", "file:///var/x"]);
        let i = Image(json!({"id": "x", "direct_url": "rbd://b/p/x/snap"}));
        assert_eq!(i.locations(), ["rbd://b/p/x/snap"]);
    }

    #[test]
    fn properties_are_the_keys_outside_glances_schema() {
        let i = Image(json!({
            "id": "x", "name": "n", "size": 5, "os_distro": "debian",
            "hw_disk_bus": "scsi", "min_disk": 1, "kernel_id": null, "n": 3,
        }));
        let p = i.properties();
        assert_eq!(p.get("os_distro").map(String::as_str), Some("debian"));
        assert_eq!(p.get("n").map(String::as_str), Some("3"));
        assert!(!p.contains_key("size") && !p.contains_key("kernel_id"));
    }

    #[test]
    fn error_pages_read_as_one_line_of_text() {
        assert_eq!(
            strip_tags("<html><h1>409 Conflict</h1>\nImage in use</html>")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            "409 Conflict Image in use"
        );
    }
}
