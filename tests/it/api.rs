//! The v3 API against the real services: the API, a scheduler and a volume service on a
//! pool of its own of the dev cluster, RabbitMQ, SQLite; driven over HTTP as clients
//! drive it, checked in the answers, the database and the pool.

use std::collections::BTreeMap;
use std::time::Duration;

use cinder_db::{Db, VolumeListQuery};
use cinder_tests::{create_pool, delete_pool, rbd, unique};
use reqwest::Method;
use serde_json::{json, Value};

use crate::fixtures::{
    ceph, free_local_addr, launch_on, prepare, start_api_with, wait_for, Ceph, InProcess, Service,
};

/// An answer: status, headers, JSON body (`Null` when empty).
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Resp {
    pub(crate) fn header(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// An HTTP client of the API.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    /// Reserves volume `id` for a new server, as Nova does first (attachment create at
    /// 3.44 without a connector); returns the attachment id.
    pub(crate) async fn reserve(&self, token: &str, id: &str) -> String {
        let server = uuid::Uuid::new_v4().to_string();
        let r = self
            .call(
                Method::POST,
                "/v3/attachments",
                token,
                Some("3.44"),
                Some(json!({"attachment": {"volume_uuid": id, "instance_uuid": server}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["attachment"]["id"].as_str().unwrap().to_string()
    }

    /// Deletes attachment `att` (Nova's detach at 3.44).
    pub(crate) async fn unreserve(&self, token: &str, att: &str) {
        let r = self
            .call(
                Method::DELETE,
                &format!("/v3/attachments/{att}"),
                token,
                Some("3.44"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        version: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Auth-Token", token);
        if let Some(v) = version {
            rb = rb.header("OpenStack-API-Version", format!("volume {v}"));
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        self.send(rb).await
    }

    pub(crate) async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("the API answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, token, None, None).await
    }

    pub(crate) async fn get_v(&self, path: &str, token: &str, v: &str) -> Resp {
        self.call(Method::GET, path, token, Some(v), None).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, token, None, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, token, None, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, token, None, None).await
    }

    /// Polls volume `id` until its status is `want`; panics on `error` (unless wanted)
    /// or after 60 s.
    pub(crate) async fn wait_volume(&self, token: &str, id: &str, want: &str) -> Value {
        wait_for(&format!("volume {id} to be {want}"), 60, || async {
            let r = self.get(&format!("/v3/volumes/{id}"), token).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let s = r.body["volume"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if s == "error" && want != "error" {
                panic!("volume {id} went to error: {}", r.body);
            }
            if s == want {
                Ok(r.body["volume"].clone())
            } else {
                Err(s)
            }
        })
        .await
    }

    pub(crate) async fn wait_snapshot(&self, token: &str, id: &str, want: &str) -> Value {
        wait_for(&format!("snapshot {id} to be {want}"), 60, || async {
            let r = self.get(&format!("/v3/snapshots/{id}"), token).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let s = r.body["snapshot"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if s == want {
                Ok(r.body["snapshot"].clone())
            } else {
                Err(s)
            }
        })
        .await
    }

    /// Polls until `path` answers 404.
    pub(crate) async fn wait_gone(&self, token: &str, path: &str) {
        wait_for(&format!("{path} to go"), 60, || async {
            let r = self.get(path, token).await;
            if r.status == 404 {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.body))
            }
        })
        .await
    }
}

/// The API, a scheduler and a volume service on a pool of its own.
pub(crate) struct Stack {
    pub(crate) api: Api,
    /// The volume service's `host@backend`.
    pub(crate) backend: String,
    pub(crate) db: Db,
    pub(crate) pool: String,
    pub(crate) conf: String,
    pub(crate) svc: Service,
    pub(crate) sched: InProcess,
    pub(crate) api_task: InProcess,
    /// The database URL and scheduler topic, for a second API on the same services.
    pub(crate) db_url: String,
    pub(crate) topic: String,
}

pub(crate) const ADMIN: &str = "admin:adminproject";
pub(crate) const ALICE: &str = "alice:p1";
pub(crate) const BOB: &str = "bob:p2";

impl Stack {
    pub(crate) async fn up(c: &Ceph, api_extra: &str) -> Stack {
        Stack::up_as(c, api_extra, ADMIN).await
    }

    /// The stack, with `admin` the token of an admin of the API's auth strategy.
    pub(crate) async fn up_as(c: &Ceph, api_extra: &str, admin: &str) -> Stack {
        Stack::build(c, api_extra, admin, None).await
    }

    /// The stack with the test Glance (`GLANCE_URL`) as its image service.
    pub(crate) async fn up_with_glance(c: &Ceph, glance: &str) -> Stack {
        let extra = format!("[glance]\napi_servers = \"{glance}\"\n");
        Stack::build(c, &extra, ADMIN, Some(glance)).await
    }

    pub(crate) async fn build(
        c: &Ceph,
        api_extra: &str,
        admin: &str,
        glance: Option<&str>,
    ) -> Stack {
        let pool = unique("it-api");
        let (conf, p) = (c.conf.clone(), pool.clone());
        tokio::task::spawn_blocking(move || create_pool(&conf, &p))
            .await
            .unwrap();
        let mut p = prepare().await;
        let topic = unique("cinder-scheduler-api");
        p.amqp_extra = format!("scheduler_topic = \"{topic}\"");
        if let Some(g) = glance {
            p.glance = g.to_string();
        }
        let (db, url) = (p.db.clone(), p.url.clone());
        let backend = format!("{}@ceph", p.host);
        let svc = launch_on(c, p, &pool).await;
        let sched = InProcess::scheduler(&url, &topic, "").await;
        let (addr, api_task) = start_api_with(&url, &topic, api_extra).await;
        let api = Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        };
        // The scheduler places nothing before the backend's first report.
        wait_for("the scheduler to see the backend", 30, || async {
            let r = api.get("/v3/scheduler-stats/get_pools", admin).await;
            match r.body["pools"].as_array() {
                Some(p) if !p.is_empty() => Ok(()),
                _ => Err(r.body.to_string()),
            }
        })
        .await;
        Stack {
            api,
            backend,
            db,
            pool,
            conf: c.conf.clone(),
            svc,
            sched,
            api_task,
            db_url: url,
            topic,
        }
    }

    pub(crate) async fn down(self) {
        self.api_task.stop().await;
        self.sched.stop().await;
        self.svc.stop().await;
        let (conf, pool) = (self.conf, self.pool);
        tokio::task::spawn_blocking(move || delete_pool(&conf, &pool))
            .await
            .unwrap();
    }

    /// The images in the pool, sorted.
    pub(crate) async fn images(&self) -> Vec<String> {
        let (conf, pool) = (self.conf.clone(), self.pool.clone());
        tokio::task::spawn_blocking(move || {
            let out = rbd(&conf, &["ls", "-p", &pool]);
            let mut v: Vec<String> = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            v.sort();
            v
        })
        .await
        .unwrap()
    }

    /// The snapshots of image `image`.
    pub(crate) async fn snaps(&self, image: &str) -> Vec<String> {
        let (conf, spec) = (self.conf.clone(), format!("{}/{image}", self.pool));
        tokio::task::spawn_blocking(move || {
            let out = rbd(&conf, &["snap", "ls", "--format", "json", &spec]);
            let v: Value = serde_json::from_slice(&out).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect()
        })
        .await
        .unwrap()
    }

    /// The clone parent of image `image` (`pool/image@snap`), if any.
    pub(crate) async fn parent(&self, image: &str) -> Option<String> {
        let (conf, spec) = (self.conf.clone(), format!("{}/{image}", self.pool));
        tokio::task::spawn_blocking(move || {
            let out = rbd(&conf, &["info", "--format", "json", &spec]);
            let v: Value = serde_json::from_slice(&out).unwrap();
            v.get("parent").map(|p| {
                format!(
                    "{}/{}@{}",
                    p["pool"].as_str().unwrap_or(""),
                    p["image"].as_str().unwrap_or(""),
                    p["snapshot"].as_str().unwrap_or("")
                )
            })
        })
        .await
        .unwrap()
    }

    /// Every volume row of `project` (deleted ones too) and its quota usage: what a
    /// refused request must leave as it was.
    pub(crate) async fn state_of(&self, project: &str) -> (usize, BTreeMap<String, (i64, i64)>) {
        let rows = self
            .db
            .list_volumes(&VolumeListQuery {
                project_id: Some(project.into()),
                include_deleted: true,
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut usage = BTreeMap::new();
        for r in [
            "volumes",
            "gigabytes",
            "snapshots",
            "volumes___DEFAULT__",
            "gigabytes___DEFAULT__",
        ] {
            let u = self.db.usage(project, r).await.unwrap();
            usage.insert(r.to_string(), (u.in_use, u.reserved));
        }
        (rows.len(), usage)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volumes_and_snapshots_live_their_whole_life_through_the_api_as_real_rbd_images() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;

    // Create: 202, Cinder's shape, the request id and the version echoed.
    let r = api
        .post(
            "/v3/p1/volumes",
            ALICE,
            json!({"volume": {"size": 1, "name": "v1", "description": "first",
                              "metadata": {"a": "1"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.header("x-openstack-request-id").starts_with("req-"));
    assert_eq!(r.header("openstack-api-version"), "volume 3.0");
    let v = &r.body["volume"];
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "creating");
    assert_eq!(v["size"], 1);
    assert_eq!(v["name"], "v1");
    assert_eq!(v["description"], "first");
    assert_eq!(v["metadata"], json!({"a": "1"}));
    assert_eq!(v["volume_type"], "__DEFAULT__");
    assert_eq!(v["bootable"], "false");
    assert_eq!(v["availability_zone"], "nova");
    assert_eq!(v["attachments"], json!([]));
    assert_eq!(v["user_id"], "alice");
    assert!(
        v.get("os-vol-host-attr:host").is_none(),
        "admin-only field shown: {v}"
    );
    assert!(v.get("volume_type_id").is_none(), "3.63 field at 3.0: {v}");
    assert!(
        v["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v3/p1/volumes/{id}")),
        "{v}"
    );
    let v = api.wait_volume(ALICE, &id, "available").await;
    assert_eq!(v["size"], 1);
    let image = format!("volume-{id}");
    assert_eq!(s.images().await, vec![image.clone()]);

    // Show at 3.63+ carries the type id; admins see the host.
    let r = api.get_v(&format!("/v3/volumes/{id}"), ALICE, "3.65").await;
    assert_eq!(r.header("openstack-api-version"), "volume 3.65");
    assert!(r.body["volume"]["volume_type_id"].is_string(), "{}", r.body);
    assert_eq!(r.body["volume"]["consumes_quota"], true);
    let r = api.get(&format!("/v3/volumes/{id}"), ADMIN).await;
    assert!(
        r.body["volume"]["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .contains('@'),
        "{}",
        r.body
    );
    assert_eq!(r.body["volume"]["os-vol-tenant-attr:tenant_id"], "p1");

    // Update and metadata.
    let r = api
        .put(
            &format!("/v3/volumes/{id}"),
            ALICE,
            json!({"volume": {"name": "renamed"}}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["volume"]["name"]),
        (200, &json!("renamed"))
    );
    let r = api
        .post(
            &format!("/v3/volumes/{id}/metadata"),
            ALICE,
            json!({"metadata": {"b": "2"}}),
        )
        .await;
    assert_eq!(r.body, json!({"metadata": {"a": "1", "b": "2"}}));
    let r = api
        .put(
            &format!("/v3/volumes/{id}/metadata/b"),
            ALICE,
            json!({"meta": {"b": "3"}}),
        )
        .await;
    assert_eq!((r.status, r.body), (200, json!({"meta": {"b": "3"}})));
    let r = api
        .delete(&format!("/v3/volumes/{id}/metadata/a"), ALICE)
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .get(&format!("/v3/volumes/{id}/metadata/a"), ALICE)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api
        .put(
            &format!("/v3/volumes/{id}/metadata"),
            ALICE,
            json!({"metadata": {"c": "4"}}),
        )
        .await;
    assert_eq!(r.body, json!({"metadata": {"c": "4"}}));

    // A snapshot, a volume from it (a clone of that snapshot), a volume from the volume.
    let r = api
        .post(
            "/v3/snapshots",
            ALICE,
            json!({"snapshot": {"volume_id": id, "name": "s1", "metadata": {"k": "v"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["snapshot"]["status"], "creating");
    let sv = api.wait_snapshot(ALICE, &snap, "available").await;
    assert_eq!(
        (sv["size"].clone(), sv["metadata"].clone()),
        (json!(1), json!({"k": "v"}))
    );
    assert_eq!(s.snaps(&image).await, vec![format!("snapshot-{snap}")]);
    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"snapshot_id": snap, "size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let from_snap = r.body["volume"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["volume"]["snapshot_id"], snap.as_str());
    let v = api.wait_volume(ALICE, &from_snap, "available").await;
    assert_eq!(v["size"], 2);
    assert_eq!(
        s.parent(&format!("volume-{from_snap}")).await,
        Some(format!("{}/{image}@snapshot-{snap}", s.pool))
    );
    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"source_volid": id}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let from_vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["volume"]["size"], 1, "size taken from the source");
    api.wait_volume(ALICE, &from_vol, "available").await;

    // Lists see all three; quota counts them and the snapshot.
    let r = api.get("/v3/volumes/detail", ALICE).await;
    assert_eq!(r.body["volumes"].as_array().unwrap().len(), 3, "{}", r.body);
    let (_, usage) = s.state_of("p1").await;
    assert_eq!(usage["volumes"], (3, 0));
    assert_eq!(
        usage["gigabytes"],
        (1 + 2 + 1 + 1, 0),
        "volumes and the snapshot"
    );
    assert_eq!(usage["snapshots"], (1, 0));

    // A volume with a snapshot is not deleted without cascade; the clone goes first.
    let r = api.delete(&format!("/v3/volumes/{id}"), ALICE).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("snapshots"));
    for v in [&from_snap, &from_vol] {
        let r = api.delete(&format!("/v3/volumes/{v}"), ALICE).await;
        assert_eq!(r.status, 202, "{}", r.body);
        api.wait_gone(ALICE, &format!("/v3/volumes/{v}")).await;
    }
    let r = api
        .delete(&format!("/v3/volumes/{id}?cascade=true"), ALICE)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(ALICE, &format!("/v3/volumes/{id}")).await;
    api.wait_gone(ALICE, &format!("/v3/snapshots/{snap}")).await;
    wait_for("the pool to be empty", 30, || async {
        let left = s.images().await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    let (_, usage) = s.state_of("p1").await;
    for (r, u) in &usage {
        assert_eq!(*u, (0, 0), "{r} after every delete: {usage:?}");
    }
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_project_never_sees_another_projects_volumes_and_admins_see_all_with_all_tenants() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 1, "name": "mine"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &id, "available").await;

    let path = format!("/v3/volumes/{id}");
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"volume": {"name": "x"}}))),
        (Method::DELETE, None),
    ] {
        let r = api.call(method.clone(), &path, BOB, None, body).await;
        assert_eq!(r.status, 404, "{method} as another project: {}", r.body);
        assert!(r.body["itemNotFound"]["message"].is_string(), "{}", r.body);
    }
    let r = api
        .post("/v3/snapshots", BOB, json!({"snapshot": {"volume_id": id}}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api
        .post("/v3/volumes", BOB, json!({"volume": {"source_volid": id}}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api.get("/v3/volumes/detail", BOB).await;
    assert_eq!(r.body["volumes"], json!([]));
    // all_tenants is for admins only.
    let r = api.get("/v3/volumes/detail?all_tenants=1", BOB).await;
    assert_eq!(r.body["volumes"], json!([]));
    let r = api.get("/v3/volumes?all_tenants=1", ADMIN).await;
    let ids: Vec<&str> = r.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    let r = api.get("/v3/volumes", ADMIN).await;
    assert_eq!(
        r.body["volumes"],
        json!([]),
        "without all_tenants, its own project"
    );
    // Admin-only: force delete at 3.23.
    let r = api
        .call(
            Method::DELETE,
            &format!("{path}?force=true"),
            ALICE,
            Some("3.23"),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // No token: 401.
    let r = api
        .send(api.http.get(format!("{}/v3/volumes", api.base)))
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = api.delete(&path, ALICE).await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(ALICE, &path).await;
    s.down().await;
}

/// What is sent, and what must come back: (case, method, path, body, microversion,
/// status, a word the message must contain).
type BadRequest = (
    &'static str,
    Method,
    String,
    String,
    Option<&'static str>,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_refused_with_a_4xx_in_openstacks_format_and_change_nothing() {
    let c = ceph().await;
    let s = Stack::up(
        c,
        "osapi_max_request_body_size = 4096\n[quota]\nvolumes = 2\ngigabytes = 5\n",
    )
    .await;
    let api = &s.api;
    // One real volume, so that per-volume requests have a target.
    let r = api
        .post("/v3/volumes", ALICE, json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &id, "available").await;
    let before = (s.state_of("p1").await, s.images().await);

    let big = "x".repeat(5000);
    let cases: Vec<BadRequest> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/v3/volumes".into(),
            "{\"volume\": ".into(),
            None,
            400,
            "malformed",
        ),
        (
            "empty body",
            Method::POST,
            "/v3/volumes".into(),
            "".into(),
            None,
            400,
            "malformed",
        ),
        (
            "not an object",
            Method::POST,
            "/v3/volumes".into(),
            "[1]".into(),
            None,
            400,
            "malformed",
        ),
        (
            "size zero",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 0}}).to_string(),
            None,
            400,
            "size",
        ),
        (
            "size negative",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": -1}}).to_string(),
            None,
            400,
            "size",
        ),
        (
            "size fractional",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1.5}}).to_string(),
            None,
            400,
            "size",
        ),
        (
            "size text",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": "one"}}).to_string(),
            None,
            400,
            "size",
        ),
        (
            "no size",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {}}).to_string(),
            None,
            400,
            "size",
        ),
        (
            "name too long",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1, "name": "n".repeat(256)}}).to_string(),
            None,
            400,
            "name",
        ),
        (
            "metadata not text",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1, "metadata": {"k": 1}}}).to_string(),
            None,
            400,
            "k",
        ),
        (
            "unknown top-level key",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1}, "extra": 1}).to_string(),
            None,
            400,
            "extra",
        ),
        (
            "no volume",
            Method::POST,
            "/v3/volumes".into(),
            json!({"size": 1}).to_string(),
            None,
            400,
            "volume",
        ),
        (
            "unknown type",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1, "volume_type": "nope"}}).to_string(),
            None,
            404,
            "nope",
        ),
        (
            "unknown zone",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1, "availability_zone": "mars"}}).to_string(),
            None,
            400,
            "mars",
        ),
        (
            "unknown snapshot",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"snapshot_id": "00000000-0000-0000-0000-000000000000"}}).to_string(),
            None,
            404,
            "Snapshot",
        ),
        (
            "over the gigabytes quota",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 5}}).to_string(),
            None,
            413,
            "gigabytes",
        ),
        (
            "body over the limit",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1, "description": big}}).to_string(),
            None,
            413,
            "too large",
        ),
        (
            "bad microversion",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1}}).to_string(),
            Some("3.x"),
            400,
            "invalid format",
        ),
        (
            "microversion too new",
            Method::POST,
            "/v3/volumes".into(),
            json!({"volume": {"size": 1}}).to_string(),
            Some("3.99"),
            406,
            "not supported",
        ),
        (
            "update with an unknown key",
            Method::PUT,
            format!("/v3/volumes/{id}"),
            json!({"volume": {"size": 3}}).to_string(),
            None,
            400,
            "size",
        ),
        (
            "metadata key mismatch",
            Method::PUT,
            format!("/v3/volumes/{id}/metadata/a"),
            json!({"meta": {"b": "1"}}).to_string(),
            None,
            400,
            "mismatch",
        ),
        (
            "snapshot of an unknown volume",
            Method::POST,
            "/v3/snapshots".into(),
            json!({"snapshot": {"volume_id": "nope"}}).to_string(),
            None,
            404,
            "nope",
        ),
        (
            "snapshot with a bad force",
            Method::POST,
            "/v3/snapshots".into(),
            json!({"snapshot": {"volume_id": id, "force": "maybe"}}).to_string(),
            None,
            400,
            "force",
        ),
    ];
    for (what, method, path, body, version, want, mentions) in cases {
        let mut rb = api
            .http
            .request(method, format!("{}{path}", api.base))
            .header("X-Auth-Token", ALICE)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(v) = version {
            rb = rb.header("OpenStack-API-Version", format!("volume {v}"));
        }
        let r = api.send(rb).await;
        assert_eq!(r.status, want, "{what}: {}", r.body);
        let fault = r.body.as_object().and_then(|o| o.values().next()).cloned();
        let fault = fault.unwrap_or_else(|| panic!("{what}: no fault body: {}", r.body));
        assert_eq!(fault["code"], want, "{what}: {}", r.body);
        let msg = fault["message"].as_str().unwrap_or_default();
        assert!(
            msg.to_lowercase().contains(&mentions.to_lowercase()),
            "{what}: the message does not name {mentions:?}: {msg}"
        );
        assert!(
            r.header("x-openstack-request-id").starts_with("req-"),
            "{what}"
        );
        let now = (s.state_of("p1").await, s.images().await);
        assert_eq!(now, before, "{what} changed something");
    }
    // Lists: bad limits, sort keys, filters.
    for q in [
        "limit=-1",
        "limit=x",
        "offset=-1",
        "sort=bogus:asc",
        "sort=size:sideways",
        "sort=size&sort_key=name",
        "colour=red",
        "marker=00000000-0000-0000-0000-000000000000",
    ] {
        let r = api.get(&format!("/v3/volumes/detail?{q}"), ALICE).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(
            r.body["badRequest"]["message"].is_string(),
            "{q}: {}",
            r.body
        );
    }
    // The count quota: two volumes allowed, one exists, the second fits, a third not.
    let r = api
        .post("/v3/volumes", ALICE, json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let second = r.body["volume"]["id"].as_str().unwrap().to_string();
    let r = api
        .post("/v3/volumes", ALICE, json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.header("retry-after"), "0");
    assert!(r.body["overLimit"]["message"]
        .as_str()
        .unwrap()
        .contains("'volumes'"));
    api.wait_volume(ALICE, &second, "available").await;
    for v in [&id, &second] {
        assert_eq!(
            api.delete(&format!("/v3/volumes/{v}"), ALICE).await.status,
            202
        );
        api.wait_gone(ALICE, &format!("/v3/volumes/{v}")).await;
    }
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_page_by_marker_with_next_links_counts_sorts_and_filters() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    // Rows straight into the database (the listing never touches a backend).
    let mut ids = vec![];
    for i in 0..7 {
        let mut row = cinder_tests::volume_row("p1", "alice", 1 + i % 3);
        row.name = Some(format!("vol-{i}"));
        row.bootable = i % 2 == 0;
        let v = s.db.create_volume(&row).await.unwrap();
        if i < 2 {
            s.db.set_volume_metadata(
                &v.id,
                &[("tier".to_string(), "gold".to_string())].into(),
                false,
            )
            .await
            .unwrap();
        }
        ids.push(v.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Pages of 3 newest first, following the links to the end.
    let mut seen = vec![];
    let mut next = Some(format!("{}/v3/p1/volumes?limit=3", api.base));
    while let Some(url) = next {
        let r = api
            .send(api.http.get(&url).header("X-Auth-Token", ALICE))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        for v in r.body["volumes"].as_array().unwrap() {
            assert_eq!(
                v.as_object().unwrap().len(),
                3,
                "summary: id, name, links: {v}"
            );
            seen.push(v["id"].as_str().unwrap().to_string());
        }
        next = r.body["volumes_links"][0]["href"]
            .as_str()
            .map(str::to_string);
        if let Some(n) = &next {
            assert!(n.contains("/v3/p1/volumes?limit=3&marker="), "{n}");
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // with_count (3.45), sort, offset.
    let r = api
        .get_v(
            "/v3/volumes/detail?limit=2&with_count=true&sort=name:asc",
            ALICE,
            "3.45",
        )
        .await;
    assert_eq!(r.body["count"], 7, "{}", r.body);
    let names: Vec<&str> = r.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["vol-0", "vol-1"]);
    let r = api
        .get("/v3/volumes?sort_key=name&sort_dir=asc&offset=5", ALICE)
        .await;
    let names: Vec<&str> = r.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["vol-5", "vol-6"]);
    // Filters.
    let count = |body: &Value| body["volumes"].as_array().unwrap().len();
    let r = api.get("/v3/volumes?name=vol-3", ALICE).await;
    assert_eq!(count(&r.body), 1);
    let r = api.get_v("/v3/volumes?name~=vol-", ALICE, "3.34").await;
    assert_eq!(count(&r.body), 7);
    let r = api.get("/v3/volumes?bootable=true", ALICE).await;
    assert_eq!(count(&r.body), 4);
    let r = api
        .get("/v3/volumes?metadata=%7B%27tier%27%3A+%27gold%27%7D", ALICE)
        .await;
    assert_eq!(count(&r.body), 2, "{}", r.body);
    let r = api.get("/v3/volumes?status=creating", ALICE).await;
    assert_eq!(count(&r.body), 7);
    let r = api.get("/v3/volumes?status=nonsense", ALICE).await;
    assert_eq!(count(&r.body), 0);
    // The summary (3.12), with metadata from 3.36.
    let r = api.get_v("/v3/volumes/summary", ALICE, "3.36").await;
    assert_eq!(
        r.body["volume-summary"],
        json!({"total_size": 1 + 2 + 3 + 1 + 2 + 3 + 1, "total_count": 7,
               "metadata": {"tier": ["gold"]}})
    );
    let r = api.get("/v3/volumes/summary", ALICE).await;
    assert_eq!(r.status, 404, "summary arrives with 3.12: {}", r.body);
    // The project-scoped endpoint itself answers with the v3 document (discovery).
    let r = api.get("/v3/p1", ALICE).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["versions"][0]["id"], "v3.0", "{}", r.body);
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volume_types_are_managed_by_admins_and_private_types_only_reach_granted_projects() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let r = api
        .post("/v3/types", ALICE, json!({"volume_type": {"name": "gold"}}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api
        .post(
            "/v3/types",
            ADMIN,
            json!({"volume_type": {"name": "gold", "description": "fast",
                   "os-volume-type-access:is_public": false,
                   "extra_specs": {"volume_backend_name": "RBD", "multiattach": "<is> True"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["volume_type"]["is_public"], false);
    let r = api
        .post("/v3/types", ADMIN, json!({"volume_type": {"name": "gold"}}))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // Private: alice neither sees nor uses it until granted.
    let r = api.get(&format!("/v3/types/{t}"), ALICE).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 1, "volume_type": "gold"}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api
        .post(
            &format!("/v3/types/{t}/action"),
            ADMIN,
            json!({"addProjectAccess": {"project": "p1"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = api
        .get(&format!("/v3/types/{t}/os-volume-type-access"), ADMIN)
        .await;
    assert_eq!(r.body["volume_type_access"][0]["project_id"], "p1");
    let r = api.get(&format!("/v3/types/{t}"), ALICE).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["volume_type"]["extra_specs"],
        json!({"multiattach": "<is> True"}),
        "members see only the user-visible specs"
    );
    // A volume of the type: multiattach from the type, per-type quota counted.
    let r = api
        .post(
            "/v3/volumes",
            ALICE,
            json!({"volume": {"size": 1, "volume_type": "gold"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.body["volume"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["volume"]["multiattach"], true);
    assert_eq!(r.body["volume"]["volume_type"], "gold");
    assert_eq!(s.db.usage("p1", "gigabytes_gold").await.unwrap().in_use, 1);
    api.wait_volume(ALICE, &v, "available").await;
    // Extra specs and updates.
    let r = api
        .put(
            &format!("/v3/types/{t}/extra_specs/tier"),
            ADMIN,
            json!({"tier": "1"}),
        )
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"tier": "1"})));
    let r = api.get(&format!("/v3/types/{t}/extra_specs"), ADMIN).await;
    assert_eq!(r.body["extra_specs"]["tier"], "1");
    let r = api
        .delete(&format!("/v3/types/{t}/extra_specs/tier"), ADMIN)
        .await;
    assert_eq!(r.status, 202);
    let r = api
        .put(
            &format!("/v3/types/{t}"),
            ADMIN,
            json!({"volume_type": {"description": "faster"}}),
        )
        .await;
    assert_eq!(r.body["volume_type"]["description"], "faster");
    // In use: not deleted; then deleted.
    let r = api.delete(&format!("/v3/types/{t}"), ADMIN).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        api.delete(&format!("/v3/volumes/{v}"), ALICE).await.status,
        202
    );
    api.wait_gone(ALICE, &format!("/v3/volumes/{v}")).await;
    assert_eq!(s.db.usage("p1", "gigabytes_gold").await.unwrap().in_use, 0);
    let r = api.delete(&format!("/v3/types/{t}"), ADMIN).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = api.get("/v3/types/default", ALICE).await;
    assert_eq!(r.body["volume_type"]["name"], "__DEFAULT__");
    let r = api.get("/v3/types", ALICE).await;
    let names: Vec<&str> = r.body["volume_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["__DEFAULT__"]);

    // Per-project default types (3.62): admins set them, creates without a type and
    // types/default follow them, and a type that is some project's default stays.
    let r = api
        .post(
            "/v3/types",
            ADMIN,
            json!({"volume_type": {"name": "silver"}}),
        )
        .await;
    let silver = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    let set = json!({"default_type": {"volume_type": "silver"}});
    let put = |token: &'static str, v: &'static str, body: Value| {
        api.call(
            Method::PUT,
            "/v3/default-types/p1",
            token,
            Some(v),
            Some(body),
        )
    };
    assert_eq!(put(ADMIN, "3.61", set.clone()).await.status, 404);
    assert_eq!(put(ALICE, "3.62", set.clone()).await.status, 403);
    let r = put(
        ADMIN,
        "3.62",
        json!({"default_type": {"volume_type": "nope"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = put(ADMIN, "3.62", json!({"default_type": {}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A private type only becomes the default of a project that may use it.
    let r = api
        .post(
            "/v3/types",
            ADMIN,
            json!({"volume_type": {"name": "hidden", "os-volume-type-access:is_public": false}}),
        )
        .await;
    let hidden = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    let r = put(
        ADMIN,
        "3.62",
        json!({"default_type": {"volume_type": "hidden"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        api.delete(&format!("/v3/types/{hidden}"), ADMIN)
            .await
            .status,
        202
    );
    let r = put(ADMIN, "3.62", set.clone()).await;
    let want = json!({"default_type": {"project_id": "p1", "volume_type_id": silver}});
    assert_eq!((r.status, &r.body), (200, &want));
    let r = api.get_v("/v3/default-types/p1", ADMIN, "3.62").await;
    assert_eq!((r.status, &r.body), (200, &want));
    let r = api.get_v("/v3/default-types/p2", ADMIN, "3.62").await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Admin-only and 3.62 on every route.
    for (method, path) in [
        (Method::GET, "/v3/default-types/p1"),
        (Method::GET, "/v3/default-types"),
        (Method::DELETE, "/v3/default-types/p1"),
    ] {
        let r = api
            .call(method.clone(), path, ALICE, Some("3.62"), None)
            .await;
        assert_eq!(r.status, 403, "{method} {path} as a member: {}", r.body);
        let r = api
            .call(method.clone(), path, ADMIN, Some("3.61"), None)
            .await;
        assert_eq!(r.status, 404, "{method} {path} at 3.61: {}", r.body);
    }
    let r = api.get_v("/v3/default-types", ADMIN, "3.62").await;
    assert_eq!(
        r.body,
        json!({"default_types": [{"project_id": "p1", "volume_type_id": silver}]})
    );
    assert_eq!(
        api.get("/v3/types/default", ALICE).await.body["volume_type"]["name"],
        "silver"
    );
    assert_eq!(
        api.get("/v3/types/default", BOB).await.body["volume_type"]["name"],
        "__DEFAULT__"
    );
    let a = new_volume(api, ALICE, json!({"size": 1})).await;
    let b = new_volume(api, BOB, json!({"size": 1})).await;
    let r = api.get(&format!("/v3/volumes/{a}"), ALICE).await;
    assert_eq!(r.body["volume"]["volume_type"], "silver", "{}", r.body);
    let r = api.get(&format!("/v3/volumes/{b}"), BOB).await;
    assert_eq!(r.body["volume"]["volume_type"], "__DEFAULT__", "{}", r.body);
    for (v, who) in [(&a, ALICE), (&b, BOB)] {
        assert_eq!(
            api.delete(&format!("/v3/volumes/{v}"), who).await.status,
            202
        );
        api.wait_gone(who, &format!("/v3/volumes/{v}")).await;
    }
    let r = api.delete(&format!("/v3/types/{silver}"), ADMIN).await;
    assert_eq!(r.status, 400, "a project's default type stays: {}", r.body);
    assert!(r.body["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("default"));
    for _ in 0..2 {
        let r = api
            .call(
                Method::DELETE,
                "/v3/default-types/p1",
                ADMIN,
                Some("3.62"),
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    assert_eq!(
        api.get_v("/v3/default-types/p1", ADMIN, "3.62")
            .await
            .status,
        404
    );
    assert_eq!(
        api.get("/v3/types/default", ALICE).await.body["volume_type"]["name"],
        "__DEFAULT__"
    );
    let r = api.delete(&format!("/v3/types/{silver}"), ADMIN).await;
    assert_eq!(r.status, 202, "{}", r.body);
    s.down().await;
}

/// A volume's status and attach status, read through the API as an admin.
async fn statuses(api: &Api, id: &str) -> (String, String) {
    let r = api.get(&format!("/v3/volumes/{id}"), ADMIN).await;
    let v = &r.body["volume"];
    let attach = if v["attachments"].as_array().is_some_and(|a| !a.is_empty()) {
        "attached"
    } else {
        "detached"
    };
    (
        v["status"].as_str().unwrap_or("").to_string(),
        attach.to_string(),
    )
}

async fn new_volume(api: &Api, token: &str, body: Value) -> String {
    let r = api
        .post("/v3/volumes", token, json!({ "volume": body }))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(token, &id, "available").await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nova_attaches_and_detaches_through_attachments_and_the_legacy_actions() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let id = new_volume(api, ALICE, json!({"size": 1})).await;
    let server = "6f8a6c5e-6a1c-4b5e-9d56-2d3c1f0a9b11";
    let v = "3.44";

    // Before 3.27 the resource does not exist.
    let r = api
        .call(Method::GET, "/v3/attachments", ALICE, Some("3.26"), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Nova: create (reserve), update with the connector, complete.
    let r = api
        .call(
            Method::POST,
            "/v3/attachments",
            ALICE,
            Some(v),
            Some(json!({"attachment": {"volume_uuid": id, "instance_uuid": server}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["attachment"]["status"], "reserved");
    assert_eq!(r.body["attachment"]["connection_info"], json!({}));
    assert_eq!(statuses(api, &id).await.0, "reserved");
    // A second attachment of a volume that is not multiattach: refused.
    let r = api
        .call(
            Method::POST,
            "/v3/attachments",
            ALICE,
            Some(v),
            Some(json!({"attachment": {"volume_uuid": id, "instance_uuid": server}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let connector = json!({"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.x",
                           "platform": "x86_64", "os_type": "linux", "multipath": false,
                           "mountpoint": "/dev/vdb"});
    let r = api
        .call(
            Method::PUT,
            &format!("/v3/attachments/{att}"),
            ALICE,
            Some(v),
            Some(json!({"attachment": {"connector": connector}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ci = &r.body["attachment"]["connection_info"];
    assert_eq!(ci["driver_volume_type"], "rbd", "{ci}");
    assert_eq!(ci["name"], format!("{}/volume-{id}", s.pool));
    assert!(!ci["hosts"].as_array().unwrap().is_empty(), "{ci}");
    assert_eq!(ci["attachment_id"], att.as_str());
    assert_eq!(ci["access_mode"], "rw");
    assert_eq!(statuses(api, &id).await.0, "attaching");
    let r = api
        .call(
            Method::POST,
            &format!("/v3/attachments/{att}/action"),
            ALICE,
            Some(v),
            Some(json!({"os-complete": null})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        statuses(api, &id).await,
        ("in-use".into(), "attached".into())
    );
    let r = api.get(&format!("/v3/volumes/{id}"), ALICE).await;
    let a = &r.body["volume"]["attachments"][0];
    assert_eq!(
        (a["server_id"].as_str(), a["attachment_id"].as_str()),
        (Some(server), Some(att.as_str()))
    );
    // Attached: no delete; another project sees no attachment.
    assert_eq!(
        api.delete(&format!("/v3/volumes/{id}"), ALICE).await.status,
        400
    );
    let r = api
        .call(
            Method::GET,
            &format!("/v3/attachments/{att}"),
            BOB,
            Some(v),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api
        .call(Method::GET, "/v3/attachments/detail", ALICE, Some(v), None)
        .await;
    assert_eq!(r.body["attachments"][0]["status"], "attached", "{}", r.body);
    // Detach: delete the attachment; the volume is available again.
    let r = api
        .call(
            Method::DELETE,
            &format!("/v3/attachments/{att}"),
            ALICE,
            Some(v),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, json!({"attachments": []}))
    );
    assert_eq!(
        statuses(api, &id).await,
        ("available".into(), "detached".into())
    );

    // Legacy: reserve, initialize_connection, attach, begin/roll detaching, detach.
    let act = |body: Value| {
        let path = format!("/v3/volumes/{id}/action");
        async move { api.post(&path, ALICE, body).await }
    };
    assert_eq!(act(json!({"os-reserve": null})).await.status, 202);
    assert_eq!(statuses(api, &id).await.0, "attaching");
    let r = act(json!({"os-initialize_connection": {"connector": connector}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["connection_info"]["driver_volume_type"], "rbd");
    assert_eq!(
        r.body["connection_info"]["data"]["name"],
        format!("{}/volume-{id}", s.pool)
    );
    assert_eq!(r.body["connection_info"]["data"]["access_mode"], "rw");
    let r = act(json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        statuses(api, &id).await,
        ("in-use".into(), "attached".into())
    );
    assert_eq!(act(json!({"os-begin_detaching": null})).await.status, 202);
    assert_eq!(statuses(api, &id).await.0, "detaching");
    assert_eq!(act(json!({"os-roll_detaching": null})).await.status, 202);
    assert_eq!(statuses(api, &id).await.0, "in-use");
    assert_eq!(act(json!({"os-begin_detaching": null})).await.status, 202);
    let r = act(json!({"os-terminate_connection": {"connector": connector}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(act(json!({"os-detach": {}})).await.status, 202);
    assert_eq!(
        statuses(api, &id).await,
        ("available".into(), "detached".into())
    );

    // Multiattach: two servers; one leaves, the volume stays in use.
    let r = api
        .post(
            "/v3/types",
            ADMIN,
            json!({"volume_type": {"name": "shared", "extra_specs": {"multiattach": "<is> True"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = new_volume(api, ALICE, json!({"size": 1, "volume_type": "shared"})).await;
    let mut atts = vec![];
    for (i, server) in [
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
    ]
    .iter()
    .enumerate()
    {
        let mut c = connector.clone();
        c["host"] = json!(format!("compute-{i}"));
        let r = api
            .call(
                Method::POST,
                "/v3/attachments",
                ALICE,
                Some(v),
                Some(json!({"attachment": {"volume_uuid": m, "instance_uuid": server, "connector": c}})),
            )
            .await;
        assert_eq!(r.status, 200, "attachment {i}: {}", r.body);
        let a = r.body["attachment"]["id"].as_str().unwrap().to_string();
        if i == 1 {
            // The second server connects: the first one's attachment still shows.
            let r = api.get(&format!("/v3/volumes/{m}"), ALICE).await;
            assert_eq!(
                r.body["volume"]["attachments"].as_array().map(Vec::len),
                Some(1),
                "while another server attaches: {}",
                r.body
            );
        }
        let r = api
            .call(
                Method::POST,
                &format!("/v3/attachments/{a}/action"),
                ALICE,
                Some(v),
                Some(json!({"os-complete": null})),
            )
            .await;
        assert_eq!(r.status, 204);
        atts.push(a);
    }
    let r = api
        .call(
            Method::DELETE,
            &format!("/v3/attachments/{}", atts[0]),
            ALICE,
            Some(v),
            None,
        )
        .await;
    assert_eq!(
        r.body["attachments"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    assert_eq!(
        statuses(api, &m).await,
        ("in-use".into(), "attached".into())
    );
    api.call(
        Method::DELETE,
        &format!("/v3/attachments/{}", atts[1]),
        ALICE,
        Some(v),
        None,
    )
    .await;
    assert_eq!(
        statuses(api, &m).await,
        ("available".into(), "detached".into())
    );
    for v in [&id, &m] {
        assert_eq!(
            api.delete(&format!("/v3/volumes/{v}"), ALICE).await.status,
            202
        );
        api.wait_gone(ALICE, &format!("/v3/volumes/{v}")).await;
    }
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volume_actions_extend_revert_retype_flag_reset_and_force_delete_as_cinder_does() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let id = new_volume(api, ALICE, json!({"size": 1})).await;
    let path = format!("/v3/volumes/{id}/action");
    let act = |token: &'static str, version: Option<&'static str>, body: Value| {
        let path = path.clone();
        async move {
            api.call(Method::POST, &path, token, version, Some(body))
                .await
        }
    };
    // One action per body, and only known ones.
    let r = act(ALICE, None, json!({"os-frobnicate": {}})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("There is no such action"));
    let r = act(
        ALICE,
        None,
        json!({"os-reserve": null, "os-unreserve": null}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["badRequest"]["message"].as_str()),
        (400, Some("Malformed request body"))
    );

    // Extend: not to the same size; then to 2 GiB, the image too.
    let r = act(ALICE, None, json!({"os-extend": {"new_size": 1}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("greater than current size"));
    let r = act(ALICE, None, json!({"os-extend": {"new_size": 2}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for("the extend", 60, || async {
        let r = api.get(&format!("/v3/volumes/{id}"), ALICE).await;
        let v = &r.body["volume"];
        if v["status"] == "available" && v["size"] == 2 {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    let (conf, spec) = (s.conf.clone(), format!("{}/volume-{id}", s.pool));
    let info =
        tokio::task::spawn_blocking(move || rbd(&conf, &["info", "--format", "json", &spec]))
            .await
            .unwrap();
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["size"], 2u64 << 30);
    assert_eq!(s.db.usage("p1", "gigabytes").await.unwrap().in_use, 2);

    // Revert (3.40): only to the latest snapshot.
    let mut snaps = vec![];
    for _ in 0..2 {
        let r = api
            .post(
                "/v3/snapshots",
                ALICE,
                json!({"snapshot": {"volume_id": id}}),
            )
            .await;
        let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
        api.wait_snapshot(ALICE, &sid, "available").await;
        snaps.push(sid);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = act(
        ALICE,
        Some("3.39"),
        json!({"revert": {"snapshot_id": snaps[1]}}),
    )
    .await;
    assert_eq!(r.status, 400, "revert arrives with 3.40: {}", r.body);
    let r = act(
        ALICE,
        Some("3.40"),
        json!({"revert": {"snapshot_id": snaps[0]}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("not the latest"));
    let r = act(
        ALICE,
        Some("3.40"),
        json!({"revert": {"snapshot_id": snaps[1]}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_volume(ALICE, &id, "available").await;
    api.wait_snapshot(ALICE, &snaps[1], "available").await;

    // Flags.
    assert_eq!(
        act(
            ALICE,
            None,
            json!({"os-set_bootable": {"bootable": "true"}})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        api.get(&format!("/v3/volumes/{id}"), ALICE).await.body["volume"]["bootable"],
        "true"
    );
    assert_eq!(
        act(
            ALICE,
            None,
            json!({"os-update_readonly_flag": {"readonly": true}})
        )
        .await
        .status,
        202
    );
    let r = act(
        ALICE,
        None,
        json!({"os-initialize_connection": {"connector": {"host": "h"}}}),
    )
    .await;
    assert_eq!(
        r.body["connection_info"]["data"]["access_mode"], "ro",
        "{}",
        r.body
    );

    // Retype on the same backend: the type changes, its quota moves.
    for (name, specs) in [
        ("silver", json!({})),
        ("elsewhere", json!({"volume_backend_name": "other"})),
    ] {
        let r = api
            .post(
                "/v3/types",
                ADMIN,
                json!({"volume_type": {"name": name, "extra_specs": specs}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = act(ALICE, None, json!({"os-retype": {"new_type": "elsewhere"}})).await;
    assert_eq!(r.status, 400, "a retype that would move data: {}", r.body);
    let r = act(
        ALICE,
        None,
        json!({"os-retype": {"new_type": "silver", "migration_policy": "never"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for("the retype", 60, || async {
        let r = api.get(&format!("/v3/volumes/{id}"), ALICE).await;
        let v = &r.body["volume"];
        if v["status"] == "available" && v["volume_type"] == "silver" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(
        s.db.usage("p1", "gigabytes_silver").await.unwrap().in_use,
        2
    );
    assert_eq!(
        s.db.usage("p1", "gigabytes___DEFAULT__")
            .await
            .unwrap()
            .in_use,
        2 * 2,
        "the volume's share left the old type; its two snapshots keep theirs"
    );
    let r = act(ADMIN, None, json!({"os-migrate_volume": {"host": "x@y#z"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Admin actions.
    let r = act(ALICE, None, json!({"os-reset_status": {"status": "error"}})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = act(
        ADMIN,
        None,
        json!({"os-reset_status": {"status": "sideways"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = act(ADMIN, None, json!({"os-reset_status": {"status": "error"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(statuses(api, &id).await.0, "error");
    let snap_action = |sid: String, body: Value| async move {
        api.post(&format!("/v3/snapshots/{sid}/action"), ADMIN, body)
            .await
    };
    let r = snap_action(
        snaps[0].clone(),
        json!({"os-reset_status": {"status": "error"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    for sid in &snaps {
        let r = snap_action(sid.clone(), json!({"os-force_delete": {}})).await;
        assert_eq!(r.status, 202, "{}", r.body);
        api.wait_gone(ALICE, &format!("/v3/snapshots/{sid}")).await;
    }
    // A failed extend (the image removed behind the service's back) ends in
    // error_extending and gives the growth's gigabytes back.
    let r = act(
        ADMIN,
        None,
        json!({"os-reset_status": {"status": "available"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let size = api.get(&format!("/v3/volumes/{id}"), ALICE).await.body["volume"]["size"]
        .as_i64()
        .unwrap();
    let (_, before) = s.state_of("p1").await;
    let (conf, spec) = (s.conf.clone(), format!("{}/volume-{id}", s.pool));
    tokio::task::spawn_blocking(move || rbd(&conf, &["rm", "--no-progress", &spec]))
        .await
        .unwrap();
    let r = act(ALICE, None, json!({"os-extend": {"new_size": size + 3}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_volume(ALICE, &id, "error_extending").await;
    let (_, after) = s.state_of("p1").await;
    assert_eq!(
        after["gigabytes"], before["gigabytes"],
        "a failed extend keeps no quota for its growth"
    );
    assert_eq!(
        after["gigabytes___DEFAULT__"],
        before["gigabytes___DEFAULT__"]
    );
    let r = act(ADMIN, None, json!({"os-force_delete": {}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(ALICE, &format!("/v3/volumes/{id}")).await;
    assert!(s.images().await.is_empty());
    let (_, usage) = s.state_of("p1").await;
    assert_eq!(usage["gigabytes"], (0, 0), "{usage:?}");
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_image_is_managed_into_a_volume_and_unmanaged_out_of_it() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let (conf, pool) = (s.conf.clone(), s.pool.clone());
    tokio::task::spawn_blocking(move || {
        for (name, size) in [
            ("legacy-disk", "1G"),
            ("busy-disk", "3G"),
            ("old.deleted", "2G"),
        ] {
            rbd(
                &conf,
                &["create", "--size", size, &format!("{pool}/{name}")],
            );
        }
    })
    .await
    .unwrap();
    let managed = new_volume(api, ALICE, json!({"size": 1})).await;
    // Another client holds busy-disk open, as a hypervisor would.
    let mut watch = tokio::process::Command::new("rbd")
        .args(["-c", &s.conf, "watch", &format!("{}/busy-disk", s.pool)])
        .stdout(std::process::Stdio::null())
        // It watches until its stdin ends.
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rbd watch starts");
    let list = |q: String, token: &'static str, v: &'static str| async move {
        api.get_v(&format!("/v3/manageable_volumes{q}"), token, v)
            .await
    };
    let host = format!("?host={}", s.backend);
    assert_eq!(
        list(host.clone(), ADMIN, "3.7").await.status,
        404,
        "before 3.8"
    );
    assert_eq!(
        list(host.clone(), ALICE, "3.8").await.status,
        403,
        "admin only"
    );
    let r = list(String::new(), ADMIN, "3.8").await;
    assert_eq!(
        (r.status, r.body["badRequest"]["message"].clone()),
        (400, json!("Invalid input received: Host field is missing."))
    );
    let r = list("?host=nowhere@rbd".into(), ADMIN, "3.8").await;
    assert_eq!(r.status, 404, "{}", r.body);
    for bad in [
        "&sort_key=name",
        "&sort=size:up",
        "&marker=notjson",
        "&marker=%7B%22source-name%22%3A%22none%22%7D",
        "&limit=-1",
    ] {
        let r = list(format!("{host}{bad}"), ADMIN, "3.8").await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // The watch registers asynchronously: wait until the listing sees it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let detail = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "busy-disk never listed as in use (is `rbd watch` running?)"
        );
        let r = list(format!("/detail{host}"), ADMIN, "3.8").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let busy = r.body["manageable-volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["reason_not_safe"] == "volume in use");
        if busy {
            break r.body["manageable-volumes"].clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let managed_name = format!("volume-{managed}");
    assert_eq!(
        detail,
        json!([
            {"reference": {"source-name": managed_name}, "size": 1, "safe_to_manage": false,
             "reason_not_safe": "already managed", "cinder_id": managed, "extra_info": null},
            {"reference": {"source-name": "old.deleted"}, "size": 2, "safe_to_manage": false,
             "reason_not_safe": "volume marked as deleted", "cinder_id": null, "extra_info": null},
            {"reference": {"source-name": "legacy-disk"}, "size": 1, "safe_to_manage": true,
             "reason_not_safe": null, "cinder_id": null, "extra_info": null},
            {"reference": {"source-name": "busy-disk"}, "size": 3, "safe_to_manage": false,
             "reason_not_safe": "volume in use", "cinder_id": null, "extra_info": null},
        ]),
        "every image of the pool, by reference descending"
    );
    let r = list(format!("{host}&sort=size:asc,reference:asc"), ADMIN, "3.8").await;
    let names: Vec<&str> = r.body["manageable-volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m.as_object().unwrap().len(), 3, "summary: {m}");
            m["reference"]["source-name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "legacy-disk",
            managed_name.as_str(),
            "old.deleted",
            "busy-disk"
        ]
    );
    let marker = "%7B%22source-name%22%3A%22legacy-disk%22%7D";
    let r = list(
        format!("{host}&sort=size:asc,reference:asc&limit=2&offset=1&marker={marker}"),
        ADMIN,
        "3.8",
    )
    .await;
    assert_eq!(
        r.body["manageable-volumes"],
        json!([{"reference": {"source-name": "old.deleted"}, "size": 2, "safe_to_manage": false},
               {"reference": {"source-name": "busy-disk"}, "size": 3, "safe_to_manage": false}]),
        "after the marker, one skipped"
    );
    watch.kill().await.unwrap();
    let body = json!({"volume": {"host": s.backend, "ref": {"source-name": "legacy-disk"},
                                 "name": "adopted"}});
    let r = api.post("/v3/os-volume-manage", ALICE, body).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api
        .post(
            "/v3/os-volume-manage",
            ADMIN,
            json!({"volume": {"ref": {"source-name": "x"}}}),
        )
        .await;
    assert_eq!(r.status, 400, "no host: {}", r.body);
    // `cluster` names the backend from 3.16 (a cluster is named by its host here), as
    // in the listing; below 3.16 it is not read, and with `host` it is one too many.
    let by_cluster = json!({"volume": {"cluster": s.backend, "ref": {"source-name": "legacy-disk"},
                                       "name": "adopted"}});
    let r = api
        .post("/v3/os-volume-manage", ADMIN, by_cluster.clone())
        .await;
    assert_eq!(r.status, 400, "cluster below 3.16: {}", r.body);
    let both = json!({"volume": {"cluster": s.backend, "host": s.backend,
                                 "ref": {"source-name": "legacy-disk"}}});
    let r = api
        .call(
            Method::POST,
            "/v3/os-volume-manage",
            ADMIN,
            Some("3.16"),
            Some(both),
        )
        .await;
    assert_eq!(r.status, 400, "host and cluster: {}", r.body);
    let r = api
        .call(
            Method::POST,
            "/v3/os-volume-manage",
            ADMIN,
            Some("3.16"),
            Some(by_cluster),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["volume"]["status"], "creating");
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = api.wait_volume(ADMIN, &id, "available").await;
    assert_eq!(
        (v["size"].clone(), v["name"].clone()),
        (json!(1), json!("adopted"))
    );
    let (_, usage) = s.state_of("adminproject").await;
    assert_eq!((usage["volumes"], usage["gigabytes"]), ((1, 0), (1, 0)));
    let r = api
        .post(
            &format!("/v3/volumes/{id}/action"),
            ADMIN,
            json!({"os-unmanage": {}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(ADMIN, &format!("/v3/volumes/{id}")).await;
    assert!(
        s.images().await.contains(&format!("volume-{id}")),
        "the image stays"
    );
    let (_, usage) = s.state_of("adminproject").await;
    assert_eq!((usage["volumes"], usage["gigabytes"]), ((0, 0), (0, 0)));
    s.down().await;
}

/// The keys of a JSON object.
pub(crate) fn keys_of(v: &Value) -> std::collections::BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// One microversion boundary of a shape: at 3.`at` the object at `pointer` of
/// `GET path` gains `adds`, which it does not have at 3.`at - 1`.
struct ShapeBoundary {
    at: u16,
    path: String,
    token: &'static str,
    pointer: &'static str,
    adds: &'static [&'static str],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_microversion_boundary_that_changes_a_shape_changes_exactly_there() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let vol = new_volume(api, ALICE, json!({"size": 1})).await;
    let r = api
        .post(
            "/v3/snapshots",
            ALICE,
            json!({"snapshot": {"volume_id": vol, "name": "s"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    api.wait_snapshot(ALICE, &snap, "available").await;

    // The shapes at 3.0: nothing more, nothing less.
    let base_volume = [
        "id",
        "status",
        "size",
        "availability_zone",
        "created_at",
        "updated_at",
        "attachments",
        "name",
        "description",
        "volume_type",
        "snapshot_id",
        "source_volid",
        "metadata",
        "links",
        "user_id",
        "bootable",
        "encrypted",
        "replication_status",
        "consistencygroup_id",
        "multiattach",
    ];
    let admin_volume = [
        "os-vol-rbd-attr:parent",
        "os-vol-tenant-attr:tenant_id",
        "os-vol-host-attr:host",
        "os-vol-mig-status-attr:migstat",
        "os-vol-mig-status-attr:name_id",
    ];
    let set = |k: &[&str]| {
        k.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let r = api.get_v(&format!("/v3/volumes/{vol}"), ALICE, "3.0").await;
    assert_eq!(
        keys_of(&r.body["volume"]),
        set(&base_volume),
        "a member's volume at 3.0"
    );
    let r = api.get_v(&format!("/v3/volumes/{vol}"), ADMIN, "3.0").await;
    let mut admin_base = set(&base_volume);
    admin_base.extend(set(&admin_volume));
    assert_eq!(
        keys_of(&r.body["volume"]),
        admin_base,
        "an admin's volume at 3.0"
    );
    let r = api
        .get_v(&format!("/v3/snapshots/{snap}"), ALICE, "3.0")
        .await;
    assert_eq!(
        keys_of(&r.body["snapshot"]),
        set(&[
            "id",
            "created_at",
            "updated_at",
            "name",
            "description",
            "volume_id",
            "status",
            "size",
            "metadata",
            "os-extended-snapshot-attributes:progress",
            "os-extended-snapshot-attributes:project_id",
        ]),
        "a snapshot at 3.0"
    );
    // A member never sees the admin-only fields, at any version.
    let r = api
        .get_v(&format!("/v3/volumes/{vol}"), ALICE, "3.71")
        .await;
    for k in admin_volume.iter().chain(&["provider_id", "cluster_name"]) {
        assert!(
            r.body["volume"].get(k).is_none(),
            "a member sees {k} at 3.71"
        );
    }

    let volume = format!("/v3/volumes/{vol}");
    let list = "/v3/volumes/detail".to_string();
    let snapshot = format!("/v3/snapshots/{snap}");
    let b = |at, path: &String, token, pointer, adds| ShapeBoundary {
        at,
        path: path.clone(),
        token,
        pointer,
        adds,
    };
    let table = [
        b(13, &volume, ALICE, "/volume", &["group_id"]),
        b(21, &volume, ADMIN, "/volume", &["provider_id"]),
        b(
            48,
            &volume,
            ALICE,
            "/volume",
            &["service_uuid", "shared_targets"],
        ),
        b(61, &volume, ADMIN, "/volume", &["cluster_name"]),
        b(63, &volume, ALICE, "/volume", &["volume_type_id"]),
        b(64, &volume, ALICE, "/volume", &["encryption_key_id"]),
        b(65, &volume, ALICE, "/volume", &["consumes_quota"]),
        b(13, &list, ALICE, "/volumes/0", &["group_id"]),
        b(65, &list, ALICE, "/volumes/0", &["consumes_quota"]),
        b(14, &snapshot, ALICE, "/snapshot", &["group_snapshot_id"]),
        b(41, &snapshot, ALICE, "/snapshot", &["user_id"]),
        b(65, &snapshot, ALICE, "/snapshot", &["consumes_quota"]),
        b(
            36,
            &"/v3/volumes/summary".to_string(),
            ALICE,
            "/volume-summary",
            &["metadata"],
        ),
        b(
            45,
            &"/v3/volumes?with_count=true".to_string(),
            ALICE,
            "",
            &["count"],
        ),
        b(
            7,
            &"/v3/os-services?binary=cinder-volume".to_string(),
            ADMIN,
            "/services/0",
            &["cluster"],
        ),
        b(
            49,
            &"/v3/os-services?binary=cinder-volume".to_string(),
            ADMIN,
            "/services/0",
            &["backend_state"],
        ),
    ];
    for t in &table {
        let before = format!("3.{}", t.at - 1);
        let at = format!("3.{}", t.at);
        let r0 = api.get_v(&t.path, t.token, &before).await;
        let r1 = api.get_v(&t.path, t.token, &at).await;
        assert_eq!(
            (r0.status, r1.status),
            (200, 200),
            "{} at {before}/{at}",
            t.path
        );
        let (k0, k1) = (
            keys_of(r0.body.pointer(t.pointer).unwrap()),
            keys_of(r1.body.pointer(t.pointer).unwrap()),
        );
        let gained: Vec<&String> = k1.difference(&k0).collect();
        let lost: Vec<&String> = k0.difference(&k1).collect();
        assert_eq!(
            (gained, lost),
            (
                t.adds
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .iter()
                    .collect(),
                vec![]
            ),
            "GET {} as {}: {before} -> {at}",
            t.path,
            t.token
        );
    }

    // Routes that begin at a version: 404 one below, 200 at it.
    let routes: [(u16, String, &str); 5] = [
        (3, "/v3/messages".into(), ALICE),
        (
            8,
            format!("/v3/manageable_volumes?host={}", s.backend),
            ADMIN,
        ),
        (12, "/v3/volumes/summary".into(), ALICE),
        (27, "/v3/attachments".into(), ALICE),
        (62, "/v3/default-types".into(), ADMIN),
    ];
    for (at, path, token) in &routes {
        let r0 = api.get_v(path, token, &format!("3.{}", at - 1)).await;
        let r1 = api.get_v(path, token, &format!("3.{at}")).await;
        assert_eq!(
            (r0.status, r1.status),
            (404, 200),
            "GET {path} at 3.{}/3.{at}: {} / {}",
            at - 1,
            r0.body,
            r1.body
        );
        assert_eq!(r0.body["itemNotFound"]["code"], 404, "{path}: {}", r0.body);
    }
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_limits_services_zones_capabilities_and_user_messages_answer_as_cinder() {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;

    // Quota sets: own project or admin; admins write.
    let r = api.get("/v3/os-quota-sets/p1", ALICE).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let q = &r.body["quota_set"];
    assert_eq!(
        (
            q["id"].clone(),
            q["volumes"].clone(),
            q["gigabytes"].clone(),
            q["volumes___DEFAULT__"].clone()
        ),
        (json!("p1"), json!(10), json!(1000), json!(-1))
    );
    assert_eq!(api.get("/v3/os-quota-sets/p1", BOB).await.status, 403);
    let r = api
        .put(
            "/v3/os-quota-sets/p1",
            ALICE,
            json!({"quota_set": {"volumes": 1}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    for bad in [
        json!({"quota_set": {"bogus": 1}}),
        json!({"quota_set": {"volumes": -2}}),
        json!({"quota_set": {"volumes": "x"}}),
    ] {
        let r = api.put("/v3/os-quota-sets/p1", ADMIN, bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = api
        .put(
            "/v3/os-quota-sets/p1",
            ADMIN,
            json!({"quota_set": {"volumes": 1}}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["quota_set"]["volumes"].clone()),
        (200, json!(1))
    );
    let id = new_volume(api, ALICE, json!({"size": 1})).await;
    let r = api
        .post("/v3/volumes", ALICE, json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r = api.get("/v3/os-quota-sets/p1?usage=true", ALICE).await;
    assert_eq!(
        r.body["quota_set"]["volumes"],
        json!({"limit": 1, "in_use": 1, "reserved": 0, "allocated": 0})
    );
    let r = api.get("/v3/limits", ALICE).await;
    let a = &r.body["limits"]["absolute"];
    assert_eq!(
        (
            a["maxTotalVolumes"].clone(),
            a["totalVolumesUsed"].clone(),
            a["totalGigabytesUsed"].clone()
        ),
        (json!(1), json!(1), json!(1)),
        "{}",
        r.body
    );
    assert_eq!(r.body["limits"]["rate"], json!([]));
    assert_eq!(api.delete("/v3/os-quota-sets/p1", ADMIN).await.status, 200);
    assert_eq!(
        api.get("/v3/os-quota-sets/p1", ALICE).await.body["quota_set"]["volumes"],
        10
    );
    assert_eq!(
        api.get("/v3/os-quota-sets/p1/defaults", ALICE).await.body["quota_set"]["snapshots"],
        10
    );

    // Services: admins only; up from the heartbeat.
    assert_eq!(api.get("/v3/os-services", ALICE).await.status, 403);
    let r = api.get_v("/v3/os-services", ADMIN, "3.49").await;
    let svc = r.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["host"] == s.backend.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{} not listed: {}", s.backend, r.body));
    assert_eq!(
        (
            svc["binary"].clone(),
            svc["status"].clone(),
            svc["state"].clone(),
            svc["backend_state"].clone()
        ),
        (
            json!("cinder-volume"),
            json!("enabled"),
            json!("up"),
            json!("up")
        )
    );
    let r = api
        .put(
            "/v3/os-services/disable-log-reason",
            ADMIN,
            json!({"host": s.backend, "binary": "cinder-volume", "disabled_reason": "maintenance"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].clone()),
        (200, json!("disabled")),
        "{}",
        r.body
    );
    let r = api
        .get(&format!("/v3/os-services?host={}", s.backend), ADMIN)
        .await;
    assert_eq!(r.body["services"][0]["disabled_reason"], "maintenance");
    // A create with the only backend disabled ends in error with a user message.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = api
        .post("/v3/volumes", ALICE, json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let failed = r.body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &failed, "error").await;
    let r = api
        .get_v(
            &format!("/v3/messages?resource_uuid={failed}"),
            ALICE,
            "3.3",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let msgs = r.body["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{}", r.body);
    assert_eq!(msgs[0]["resource_type"], "VOLUME");
    assert!(
        msgs[0]["user_message"]
            .as_str()
            .unwrap()
            .contains("schedule"),
        "{}",
        msgs[0]
    );
    let mid = msgs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.get_v(&format!("/v3/messages/{mid}"), BOB, "3.3")
            .await
            .status,
        404
    );
    assert_eq!(
        api.get(&format!("/v3/messages/{mid}"), ALICE).await.status,
        404,
        "messages arrive with 3.3"
    );
    let r = api
        .call(
            Method::DELETE,
            &format!("/v3/messages/{mid}"),
            ALICE,
            Some("3.3"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        api.get_v(&format!("/v3/messages/{mid}"), ALICE, "3.3")
            .await
            .status,
        404
    );
    let r = api
        .put(
            "/v3/os-services/enable",
            ADMIN,
            json!({"host": s.backend, "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(r.body["status"], "enabled");
    let r = api
        .put(
            "/v3/os-services/enable",
            ADMIN,
            json!({"host": "nowhere", "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Zones and capabilities.
    let r = api.get("/v3/os-availability-zone", ALICE).await;
    assert_eq!(
        r.body,
        json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": true}}]})
    );
    let r = api
        .get(&format!("/v3/capabilities/{}", s.backend), ADMIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume_backend_name"], "RBD");
    assert_eq!(r.body["storage_protocol"], "ceph");
    assert_eq!(
        api.get(&format!("/v3/capabilities/{}", s.backend), ALICE)
            .await
            .status,
        403
    );

    for v in [&id, &failed] {
        assert_eq!(
            api.delete(&format!("/v3/volumes/{v}"), ALICE).await.status,
            202
        );
        api.wait_gone(ALICE, &format!("/v3/volumes/{v}")).await;
    }
    s.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_clients_on_sqlite_see_no_server_error_and_leak_no_reservation() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = Arc::new(Api {
        base: s.api.base.clone(),
        http: reqwest::Client::new(),
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut tasks = vec![];
    for client in 0..10 {
        let (api, in_flight, peak) = (api.clone(), in_flight.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = vec![];
            for round in 0..3 {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let r = api
                    .post(
                        "/v3/volumes",
                        ALICE,
                        json!({"volume": {"size": 1, "name": format!("c{client}-r{round}")}}),
                    )
                    .await;
                statuses.push(r.status);
                if r.status == 202 {
                    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
                    api.wait_volume(ALICE, &id, "available").await;
                    let d = api.delete(&format!("/v3/volumes/{id}"), ALICE).await;
                    statuses.push(d.status);
                    api.wait_gone(ALICE, &format!("/v3/volumes/{id}")).await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                // Lists run beside the writes.
                statuses.push(api.get("/v3/volumes/detail", ALICE).await.status);
            }
            statuses
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.expect("a client task"));
    }
    let elapsed = started.elapsed();
    let server_errors = all.iter().filter(|s| **s >= 500).count();
    let creates = all.iter().filter(|s| **s == 202).count();
    println!(
        "10 clients: {} requests, {creates} accepted (creates and deletes), {server_errors} 5xx, peak {} creates in flight, {:.1} s",
        all.len(),
        peak.load(Ordering::SeqCst),
        elapsed.as_secs_f64()
    );
    assert_eq!(server_errors, 0, "statuses: {all:?}");
    assert!(
        all.iter().all(|s| [200, 202].contains(s)),
        "statuses: {all:?}"
    );
    assert_eq!(creates, 60, "every create and delete accepted: {all:?}");
    assert!(
        peak.load(Ordering::SeqCst) >= 5,
        "the clients did not overlap: peak {}",
        peak.load(Ordering::SeqCst)
    );
    let (_, usage) = s.state_of("p1").await;
    for (r, u) in &usage {
        assert_eq!(*u, (0, 0), "{r} after all deletes: {usage:?}");
    }
    assert_eq!(
        s.db.live_reservations().await.unwrap(),
        0,
        "leaked reservations"
    );
    assert!(s.images().await.is_empty());
    s.down().await;
}

/// A real OpenStack client (`/usr/bin/openstack` or `/usr/bin/cinder`) under the
/// `noauth` plugin as `user:project`, at microversion 3.60; its stdout, or a panic with
/// its stderr.
pub(crate) async fn client(
    bin: &str,
    api: &Api,
    user: &str,
    project: &str,
    args: &[&str],
) -> String {
    let path = format!("/usr/bin/{bin}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: scripts/test.sh installs Debian's python3-openstackclient and python3-cinderclient"
    );
    let mut cmd = tokio::process::Command::new(&path);
    cmd.args([
        "--os-auth-type",
        "noauth",
        "--os-user-id",
        user,
        "--os-project-id",
        project,
        "--os-endpoint",
        &format!("{}/v3", api.base),
        "--os-volume-api-version",
        "3.60",
    ])
    .args(args);
    debian_python_output(cmd, &format!("{bin} {args:?}")).await
}

/// Runs `cmd` with Debian's own Python (not a virtualenv's) and returns its standard
/// output; panics with its standard error when it fails.
async fn debian_python_output(mut cmd: tokio::process::Command, what: &str) -> String {
    cmd.env("PATH", "/usr/bin:/bin").env_remove("PYTHONPATH");
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_openstack_and_cinder_clients_drive_volumes_snapshots_attachments_types_and_quotas(
) {
    let c = ceph().await;
    let s = Stack::up(c, "").await;
    let api = &s.api;
    let osc = |user: &'static str, project: &'static str, args: Vec<String>| async move {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        client("openstack", api, user, project, &a).await
    };
    let cinder = |args: Vec<String>| async move {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        client("cinder", api, "alice", "p1", &a).await
    };
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Create with cinderclient (OpenStackClient's create also builds an image client,
    // which needs an image service); wait, show, list, extend with OpenStackClient.
    let out = cinder(v(&["create", "--name", "cli-vol", "1"])).await;
    let id = out
        .lines()
        .find(|l| l.starts_with("| id "))
        .and_then(|l| l.split('|').nth(2))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no id in {out}"));
    api.wait_volume(ALICE, &id, "available").await;
    let show: Value = serde_json::from_str(
        &osc(
            "alice",
            "p1",
            v(&["volume", "show", "cli-vol", "-f", "json"]),
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        (show["id"].as_str(), show["size"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    let list: Value =
        serde_json::from_str(&osc("alice", "p1", v(&["volume", "list", "-f", "json"])).await)
            .unwrap();
    assert_eq!(list.as_array().map(|a| a.len()), Some(1), "{list}");
    osc(
        "alice",
        "p1",
        v(&["volume", "set", "--size", "2", "cli-vol"]),
    )
    .await;
    wait_for("the extend", 60, || async {
        let r = api.get(&format!("/v3/volumes/{id}"), ALICE).await;
        let vol = &r.body["volume"];
        if vol["size"] == 2 && vol["status"] == "available" {
            Ok(())
        } else {
            Err(vol.to_string())
        }
    })
    .await;

    // Snapshot with OpenStackClient, a clone of it with cinderclient.
    osc(
        "alice",
        "p1",
        v(&[
            "volume", "snapshot", "create", "--volume", "cli-vol", "cli-snap",
        ]),
    )
    .await;
    let snaps: Value = serde_json::from_str(
        &osc(
            "alice",
            "p1",
            v(&["volume", "snapshot", "list", "-f", "json"]),
        )
        .await,
    )
    .unwrap();
    let snap = snaps[0]["ID"].as_str().unwrap().to_string();
    api.wait_snapshot(ALICE, &snap, "available").await;
    cinder(v(&[
        "create",
        "--snapshot-id",
        &snap,
        "--name",
        "cli-clone",
        "2",
    ]))
    .await;
    let r = api.get("/v3/volumes?name=cli-clone", ALICE).await;
    let clone = r.body["volumes"][0]["id"].as_str().unwrap().to_string();
    api.wait_volume(ALICE, &clone, "available").await;
    assert_eq!(
        s.parent(&format!("volume-{clone}")).await,
        Some(format!("{}/volume-{id}@snapshot-{snap}", s.pool))
    );

    // Attach as Nova's flow does, through cinderclient's attachment commands.
    let out = cinder(v(&[
        "attachment-create",
        "--connect",
        "True",
        "--initiator",
        "iqn.x",
        "--ip",
        "127.0.0.1",
        "--host",
        "compute-1",
        "--platform",
        "x86_64",
        "--ostype",
        "linux",
        "--mountpoint",
        "/dev/vdb",
        &id,
        "6f8a6c5e-6a1c-4b5e-9d56-2d3c1f0a9b11",
    ]))
    .await;
    assert!(out.contains("| driver_volume_type | rbd"), "{out}");
    let r = api
        .call(
            Method::GET,
            &format!("/v3/attachments?volume_id={id}"),
            ALICE,
            Some("3.44"),
            None,
        )
        .await;
    let att = r.body["attachments"][0]["id"].as_str().unwrap().to_string();
    cinder(v(&["attachment-complete", &att])).await;
    assert_eq!(
        statuses(api, &id).await,
        ("in-use".into(), "attached".into())
    );
    cinder(v(&["attachment-delete", &att])).await;
    assert_eq!(
        statuses(api, &id).await,
        ("available".into(), "detached".into())
    );

    // Types and quotas (admin).
    osc(
        "admin",
        "admin",
        v(&[
            "volume",
            "type",
            "create",
            "gold",
            "--property",
            "volume_backend_name=RBD",
        ]),
    )
    .await;
    let types = osc(
        "alice",
        "p1",
        v(&["volume", "type", "list", "-f", "value", "-c", "Name"]),
    )
    .await;
    assert!(types.lines().any(|l| l.trim() == "gold"), "{types}");
    client(
        "cinder",
        api,
        "admin",
        "admin",
        &["quota-update", "--volumes", "7", "p1"],
    )
    .await;
    let q = cinder(v(&["quota-show", "p1"])).await;
    assert!(
        q.lines()
            .any(|l| l.contains("| volumes ") && l.contains("| 7 ")),
        "{q}"
    );

    // Delete: the clone, then the volume with its snapshot (--purge is cascade).
    osc("alice", "p1", v(&["volume", "delete", "cli-clone"])).await;
    api.wait_gone(ALICE, &format!("/v3/volumes/{clone}")).await;
    osc(
        "alice",
        "p1",
        v(&["volume", "delete", "--purge", "cli-vol"]),
    )
    .await;
    api.wait_gone(ALICE, &format!("/v3/volumes/{id}")).await;
    wait_for("the pool to be empty", 30, || async {
        let left = s.images().await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    s.down().await;
}

/// The test Keystone (`scripts/keystone-dev.sh up`, endpoint in `KEYSTONE_URL`), driven
/// through its REST API as its bootstrap admin.
pub(crate) struct Keystone {
    /// `.../v3`.
    url: String,
    http: reqwest::Client,
    admin_password: String,
}

/// A token and when it expires.
pub(crate) struct Token {
    pub(crate) id: String,
    expires: std::time::Instant,
}

impl Keystone {
    pub(crate) async fn connect() -> Keystone {
        let url = std::env::var("KEYSTONE_URL").unwrap_or_else(|_| {
            panic!(
                "KEYSTONE_URL is not set: start the test Keystone with \
                 `KEYSTONE_URL=$(scripts/keystone-dev.sh up)` (scripts/test.sh does)"
            )
        });
        let url = url.trim_end_matches('/').to_string();
        Keystone {
            url,
            http: reqwest::Client::new(),
            admin_password: std::env::var("KEYSTONE_DEV_ADMIN_PASSWORD").unwrap_or("admin".into()),
        }
    }

    /// A new token of the bootstrap admin (tokens of the test Keystone are short-lived).
    pub(crate) async fn admin(&self) -> String {
        self.scoped_token(
            "admin",
            &self.admin_password,
            json!({"name": "admin", "domain": {"id": "default"}}),
        )
        .await
        .id
    }

    async fn scoped_token(&self, user: &str, password: &str, project: Value) -> Token {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": project}}});
        let r = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Keystone at {} does not answer: {e}", self.url));
        assert_eq!(r.status().as_u16(), 201, "token of {user}");
        let id = r.headers()["x-subject-token"].to_str().unwrap().to_string();
        let v: Value = r.json().await.unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(v["token"]["expires_at"].as_str().unwrap())
            .unwrap();
        let left = (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        Token {
            id,
            expires: std::time::Instant::now() + left,
        }
    }

    /// A token of `user` on project `project_id`.
    pub(crate) async fn token(&self, user: &str, project_id: &str) -> Token {
        self.scoped_token(user, "secret", json!({"id": project_id}))
            .await
    }

    async fn create(&self, path: &str, body: Value) -> String {
        let admin = self.admin().await;
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("X-Auth-Token", &admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "POST {path}");
        let v: Value = r.json().await.unwrap();
        let (_, inner) = v
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| *k != "links")
            .unwrap();
        inner["id"].as_str().unwrap().to_string()
    }

    /// A new project and a user of it (password `secret`) holding `role`.
    pub(crate) async fn member(
        &self,
        name: &str,
        project: Option<&str>,
        role: &str,
    ) -> (String, String) {
        let project = match project {
            Some(p) => p.to_string(),
            None => {
                self.create(
                    "/projects",
                    json!({"project": {"name": unique(name), "domain_id": "default"}}),
                )
                .await
            }
        };
        let user = unique(name);
        let user_id = self
            .create(
                "/users",
                json!({"user": {"name": user, "password": "secret", "domain_id": "default"}}),
            )
            .await;
        let admin = self.admin().await;
        let role_id = self
            .http
            .get(format!("{}/roles?name={role}", self.url))
            .header("X-Auth-Token", &admin)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["roles"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("Keystone has no role {role}"))
            .to_string();
        let r = self
            .http
            .put(format!(
                "{}/projects/{project}/users/{user_id}/roles/{role_id}",
                self.url
            ))
            .header("X-Auth-Token", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204, "grant {role}");
        (user, project)
    }

    async fn revoke(&self, token: &str) {
        let admin = self.admin().await;
        let r = self
            .http
            .delete(format!("{}/auth/tokens", self.url))
            .header("X-Auth-Token", &admin)
            .header("X-Subject-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204, "revoke");
    }
}

/// The `[api]` lines of an API that validates tokens with the test Keystone's `cinder`
/// service user, reusing answers for `cache_secs`.
pub(crate) fn keystone_api_extra(ks: &Keystone, cache_secs: u64) -> String {
    let password = std::env::var("KEYSTONE_DEV_SERVICE_PASSWORD").unwrap_or("cinder".into());
    format!(
        "auth_strategy = \"keystone\"\n[keystone_authtoken]\nauth_url = \"{}\"\n\
         username = \"cinder\"\npassword = \"{password}\"\ntoken_cache_time = {cache_secs}\n",
        ks.url
    )
}

/// socat terminating TLS on a free port of loopback in front of `http_url`'s host and
/// port, with a self-signed certificate for 127.0.0.1 made by the openssl CLI.
struct TlsProxy {
    addr: String,
    cert: std::path::PathBuf,
    dir: std::path::PathBuf,
    child: tokio::process::Child,
}

impl TlsProxy {
    async fn start(http_url: &str) -> TlsProxy {
        let target = http_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let dir = std::env::temp_dir().join(unique("it-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl CLI runs (Debian's openssl package)");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = free_local_addr();
        let port = addr.rsplit(':').next().unwrap();
        let child = tokio::process::Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                cert.display(),
                key.display()
            ))
            .arg(format!("TCP:{target}"))
            .kill_on_drop(true)
            .spawn()
            .expect("socat runs (Debian's socat package; scripts/test.sh installs it)");
        wait_for("socat to listen", 10, || async {
            tokio::net::TcpStream::connect(&addr)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
        TlsProxy {
            addr,
            cert,
            dir,
            child,
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Seconds the API under the Keystone test reuses an answer about a token.
const TOKEN_CACHE_SECS: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keystone_tokens_isolate_projects_keep_readers_from_writing_and_refuse_expired_revoked_and_garbage(
) {
    let ks = Keystone::connect().await;
    let (alice, p1) = ks.member("it-alice", None, "member").await;
    let (rita, _) = ks.member("it-rita", Some(&p1), "reader").await;
    let (bob, p2) = ks.member("it-bob", None, "member").await;
    let c = ceph().await;
    let extra = keystone_api_extra(&ks, TOKEN_CACHE_SECS);
    let s = Stack::up_as(c, &extra, &ks.admin().await).await;
    let api = &s.api;

    // Expiry, beside the rest: a second API that reuses answers for 300 s caches a
    // fresh token as valid; it must still refuse it once the token expires (the test
    // Keystone issues 30-second tokens so that this happens within the test).
    let (addr2, api2_task) =
        start_api_with(&s.db_url, &s.topic, &keystone_api_extra(&ks, 300)).await;
    let long = Api {
        base: format!("http://{addr2}"),
        http: reqwest::Client::new(),
    };
    let early = ks.token(&alice, &p1).await;
    let left = early.expires - std::time::Instant::now();
    assert!(
        left <= Duration::from_secs(120),
        "the test Keystone issues tokens of {left:?}; the expiry case needs short ones \
         (scripts/test.sh starts its Keystone with KEYSTONE_DEV_TOKEN_EXPIRATION=30)"
    );
    let expiry = tokio::spawn(async move {
        let r = long.get("/v3/volumes", &early.id).await;
        assert_eq!(r.status, 200, "a fresh token: {}", r.body);
        let deadline = early.expires + Duration::from_secs(2);
        let refused_at = loop {
            let r = long.get("/v3/volumes", &early.id).await;
            if r.status == 401 {
                break std::time::Instant::now();
            }
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(
                std::time::Instant::now() < deadline,
                "a token past its expiry is still accepted (from the cache)"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(
            refused_at + Duration::from_secs(1) >= early.expires,
            "the token was refused {:?} before its expiry",
            early.expires - refused_at
        );
    });

    let a = ks.token(&alice, &p1).await.id;
    let r = api
        .post(
            "/v3/volumes",
            &a,
            json!({"volume": {"size": 1, "name": "ks"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = api.wait_volume(&a, &id, "available").await;
    assert!(v.get("os-vol-tenant-attr:tenant_id").is_none(), "{v}");
    assert!(v.get("os-vol-host-attr:host").is_none(), "{v}");
    let row = s.db.volume(&id).await.unwrap();
    assert_eq!(row.project_id, p1, "the row belongs to the token's project");
    let path = format!("/v3/volumes/{id}");

    // Another project: 404 for everything, an empty list.
    let b = ks.token(&bob, &p2).await.id;
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"volume": {"name": "x"}}))),
        (Method::DELETE, None),
    ] {
        let r = api.call(method.clone(), &path, &b, None, body).await;
        assert_eq!(r.status, 404, "{method} as another project: {}", r.body);
    }
    assert_eq!(
        api.get("/v3/volumes/detail", &b).await.body["volumes"],
        json!([])
    );

    // The reader of the volume's project reads and cannot write.
    let rt = ks.token(&rita, &p1).await.id;
    let r = api.get(&path, &rt).await;
    assert_eq!(r.status, 200, "a reader reads: {}", r.body);
    let r = api.get("/v3/volumes/detail", &rt).await;
    assert_eq!(
        r.body["volumes"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    for (method, p, body) in [
        (
            Method::POST,
            "/v3/volumes".to_string(),
            Some(json!({"volume": {"size": 1}})),
        ),
        (
            Method::PUT,
            path.clone(),
            Some(json!({"volume": {"name": "x"}})),
        ),
        (Method::DELETE, path.clone(), None),
        (
            Method::POST,
            format!("{path}/action"),
            Some(json!({"os-extend": {"new_size": 2}})),
        ),
        (
            Method::POST,
            "/v3/snapshots".to_string(),
            Some(json!({"snapshot": {"volume_id": id}})),
        ),
        (
            Method::POST,
            format!("{path}/metadata"),
            Some(json!({"metadata": {"k": "v"}})),
        ),
    ] {
        let r = api.call(method.clone(), &p, &rt, None, body).await;
        assert_eq!(r.status, 403, "{method} {p} as a reader: {}", r.body);
        assert!(r.body["forbidden"]["message"].is_string(), "{}", r.body);
    }
    let after = api.get(&path, &a).await.body["volume"].clone();
    assert_eq!(
        (
            after["name"].as_str(),
            after["size"].as_u64(),
            after["status"].as_str()
        ),
        (Some("ks"), Some(1), Some("available")),
        "the reader changed nothing"
    );
    assert_eq!(after["metadata"], json!({}));
    let (rows, _) = s.state_of(&p1).await;
    assert_eq!(rows, 1, "the reader created nothing");

    // The admin sees every project with all_tenants, and the admin-only fields.
    let r = api
        .get("/v3/volumes/detail?all_tenants=1", &ks.admin().await)
        .await;
    let mine: Vec<&Value> = r.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["id"] == json!(id))
        .collect();
    assert_eq!(mine.len(), 1, "{}", r.body);
    assert_eq!(mine[0]["os-vol-tenant-attr:tenant_id"], json!(p1));
    assert_eq!(
        mine[0]["os-vol-host-attr:host"]
            .as_str()
            .map(|h| h.starts_with(&s.backend)),
        Some(true)
    );
    let r = api.get("/v3/volumes/detail", &ks.admin().await).await;
    assert!(
        r.body["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["id"] != json!(id)),
        "without all_tenants an admin lists its own project"
    );

    // Garbage, and no token at all: 401.
    for garbage in ["garbage", "gAAAAABnotafernettoken", "alice:p1"] {
        let r = api.get("/v3/volumes", garbage).await;
        assert_eq!(r.status, 401, "{garbage}: {}", r.body);
        assert!(r.body["unauthorized"]["message"].is_string(), "{}", r.body);
    }
    let r = api
        .send(api.http.get(format!("{}/v3/volumes", api.base)))
        .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Revoked: refused once the answer about it is older than token_cache_time.
    let revoked = ks.token(&alice, &p1).await.id;
    assert_eq!(api.get(&path, &revoked).await.status, 200);
    ks.revoke(&revoked).await;
    tokio::time::sleep(Duration::from_millis(TOKEN_CACHE_SECS * 1000 + 500)).await;
    let r = api.get(&path, &revoked).await;
    assert_eq!(r.status, 401, "a revoked token: {}", r.body);
    let a = ks.token(&alice, &p1).await.id;
    assert_eq!(
        api.get(&path, &a).await.status,
        200,
        "other tokens still work"
    );

    expiry.await.expect("the expiry check");
    api2_task.stop().await;

    // Keystone over HTTPS (the same Keystone behind a TLS-terminating socat with a
    // certificate of the test's own): verified against `cafile`, refused (503) without
    // it, accepted with `insecure = true`.
    let tls = TlsProxy::start(&ks.url).await;
    let ks_host_path = ks.url.trim_start_matches("http://");
    let ks_path = &ks_host_path[ks_host_path.find('/').unwrap()..];
    let https_url = format!("https://{}{ks_path}", tls.addr);
    let a = ks.token(&alice, &p1).await.id;
    for (extra, want) in [
        (format!("cafile = \"{}\"\n", tls.cert.display()), 200),
        (String::new(), 503),
        ("insecure = true\n".to_string(), 200),
    ] {
        let conf =
            keystone_api_extra(&ks, TOKEN_CACHE_SECS).replacen(&ks.url, &https_url, 1) + &extra;
        let (addr, task) = start_api_with(&s.db_url, &s.topic, &conf).await;
        let api3 = Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        };
        let r = api3.get("/v3/volumes", &a).await;
        assert_eq!(
            r.status, want,
            "Keystone at {https_url} with {extra:?}: {}",
            r.body
        );
        task.stop().await;
    }
    drop(tls);

    let a = ks.token(&alice, &p1).await.id;
    let r = api.delete(&path, &a).await;
    assert_eq!(r.status, 202, "{}", r.body);
    api.wait_gone(&a, &path).await;
    s.down().await;
}

/// Runs `tests/it/sdk_flow.py MODE` with Debian's Python and openstacksdk.
async fn sdk_flow(mode: &str, env: &[(&str, String)]) -> String {
    assert!(
        std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import openstack"])
            .env("PATH", "/usr/bin:/bin")
            .status()
            .is_ok_and(|s| s.success()),
        "Debian's python3-openstacksdk is missing: scripts/test.sh installs it"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/it/sdk_flow.py");
    let mut cmd = tokio::process::Command::new("/usr/bin/python3");
    cmd.args([script, mode]).env_remove("OS_CLOUD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    debian_python_output(cmd, &format!("sdk_flow.py {mode}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openstacksdk_through_keystone_drives_volumes_snapshots_clones_attachments_types_and_quotas(
) {
    let ks = Keystone::connect().await;
    let (user, project) = ks.member("it-sdk", None, "member").await;
    let c = ceph().await;
    let s = Stack::up_as(c, &keystone_api_extra(&ks, 300), &ks.admin().await).await;
    let env = vec![
        ("OS_AUTH_URL", ks.url.clone()),
        ("SDK_USER", user.clone()),
        ("SDK_PASSWORD", "secret".to_string()),
        ("SDK_PROJECT_ID", project.clone()),
        ("SDK_ADMIN_PASSWORD", ks.admin_password.clone()),
        ("SDK_ENDPOINT", format!("{}/v3", s.api.base)),
    ];
    let out = sdk_flow("create", &env).await;
    let ids: Value = serde_json::from_str(out.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("sdk_flow.py create printed {out:?}: {e}"));
    let (v, snap, clone) = (
        ids["volume"].as_str().unwrap(),
        ids["snapshot"].as_str().unwrap(),
        ids["clone"].as_str().unwrap(),
    );
    // What the SDK made is real RBD: the volume (extended to 2 GiB) with the snapshot,
    // and the clone of that snapshot.
    assert_eq!(s.images().await, {
        let mut want = vec![format!("volume-{v}"), format!("volume-{clone}")];
        want.sort();
        want
    });
    assert_eq!(
        s.snaps(&format!("volume-{v}")).await,
        vec![format!("snapshot-{snap}")]
    );
    assert_eq!(
        s.parent(&format!("volume-{clone}")).await,
        Some(format!("{}/volume-{v}@snapshot-{snap}", s.pool))
    );
    let (conf, spec) = (s.conf.clone(), format!("{}/volume-{v}", s.pool));
    let info: Value = serde_json::from_slice(
        &tokio::task::spawn_blocking(move || rbd(&conf, &["info", "--format", "json", &spec]))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["size"].as_u64(), Some(2 << 30), "{info}");
    let row = s.db.volume(v).await.unwrap();
    assert_eq!(row.project_id, project);

    let mut env = env;
    env.push(("SDK_IDS", ids.to_string()));
    sdk_flow("delete", &env).await;
    assert_eq!(s.images().await, Vec::<String>::new());
    s.down().await;
}
