//! The JSON shapes of volumes and snapshots, per microversion and caller, as Cinder's
//! views draw them (`cinder/api/v3/views/volumes.py`, `.../snapshots.py`).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use cinder_common::status::AttachStatus;
use cinder_db::entity::{snapshots, volume_attachment, volumes};
use cinder_db::Metadata;
use serde_json::{json, Map, Value};

use crate::request::Req;

/// Cinder's timestamp (`2026-12-03T16:06:44.123456`, UTC, no zone).
pub fn ts(t: &NaiveDateTime) -> Value {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    // By hand: chrono's `format` parses its pattern on every call, and a list of 100
    // volumes formats 200 of these (a few percent of a list's time).
    let mut out = String::with_capacity(26);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() % 1_000_000_000 / 1000
    );
    Value::String(out)
}

fn ts_opt(t: &Option<NaiveDateTime>) -> Value {
    t.as_ref().map(ts).unwrap_or(Value::Null)
}

/// What a volume view needs besides the row.
#[derive(Default)]
pub struct VolumeExtras {
    /// Metadata by volume id.
    pub metadata: HashMap<String, Metadata>,
    /// Live attachments by volume id.
    pub attachments: HashMap<String, Vec<volume_attachment::Model>>,
    /// Type names by id.
    pub type_names: HashMap<String, String>,
}

/// The summary of a volume (`GET /volumes`).
pub fn volume_summary(r: &Req, v: &volumes::Model) -> Value {
    json!({"id": v.id, "name": v.display_name, "links": r.links("volumes", &v.id)})
}

/// The detail of a volume (`GET /volumes/{id}`, `/volumes/detail`, create, update).
pub fn volume_detail(r: &Req, v: &volumes::Model, x: &VolumeExtras) -> Value {
    let attachments: Vec<Value> = x
        .attachments
        .get(&v.id)
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|a| a.attach_status == AttachStatus::Attached)
        .map(|a| {
            json!({
                "server_id": a.instance_uuid,
                "attachment_id": a.id,
                "attached_at": ts_opt(&a.attach_time),
                "host_name": a.attached_host,
                "volume_id": v.id,
                "device": a.mountpoint,
                "id": v.id,
            })
        })
        .collect();
    let type_name = v
        .volume_type_id
        .as_ref()
        .and_then(|t| x.type_names.get(t).cloned());
    let mut d = Map::new();
    d.insert("id".into(), json!(v.id));
    d.insert("status".into(), json!(v.status.as_str()));
    d.insert("size".into(), json!(v.size));
    d.insert("availability_zone".into(), json!(v.availability_zone));
    d.insert("created_at".into(), ts(&v.created_at));
    d.insert("updated_at".into(), ts_opt(&v.updated_at));
    d.insert("attachments".into(), Value::Array(attachments));
    d.insert("name".into(), json!(v.display_name));
    d.insert("description".into(), json!(v.display_description));
    d.insert("volume_type".into(), json!(type_name));
    d.insert("snapshot_id".into(), json!(v.snapshot_id));
    d.insert("source_volid".into(), json!(v.source_volid));
    d.insert(
        "metadata".into(),
        json!(x.metadata.get(&v.id).cloned().unwrap_or_default()),
    );
    d.insert("links".into(), r.links("volumes", &v.id));
    d.insert("user_id".into(), json!(v.user_id));
    d.insert(
        "bootable".into(),
        json!(if v.bootable { "true" } else { "false" }),
    );
    d.insert("encrypted".into(), json!(v.encryption_key_id.is_some()));
    d.insert(
        "replication_status".into(),
        json!(v.replication_status.as_deref().unwrap_or("disabled")),
    );
    d.insert("consistencygroup_id".into(), Value::Null);
    d.insert("multiattach".into(), json!(v.multiattach));
    if r.ctx.is_admin {
        d.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
        d.insert("os-vol-host-attr:host".into(), json!(v.host));
        d.insert(
            "os-vol-mig-status-attr:migstat".into(),
            json!(v.migration_status),
        );
        d.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    }
    if r.v.at_least(13) {
        d.insert("group_id".into(), json!(v.group_id));
    }
    if r.v.at_least(21) && r.ctx.is_admin {
        d.insert("provider_id".into(), json!(v.provider_id));
    }
    if r.v.at_least(48) {
        d.insert("service_uuid".into(), json!(v.service_uuid));
        d.insert("shared_targets".into(), json!(v.shared_targets));
    }
    if r.v.at_least(61) && r.ctx.is_admin {
        d.insert("cluster_name".into(), json!(v.cluster_name));
    }
    if r.v.at_least(63) {
        d.insert("volume_type_id".into(), json!(v.volume_type_id));
    }
    if r.v.at_least(64) {
        d.insert("encryption_key_id".into(), json!(v.encryption_key_id));
    }
    if r.v.at_least(65) {
        d.insert("consumes_quota".into(), json!(v.use_quota));
    }
    Value::Object(d)
}

/// A snapshot (every snapshot route shows the same fields).
pub fn snapshot(r: &Req, s: &snapshots::Model, metadata: &Metadata) -> Value {
    let mut d = Map::new();
    d.insert("id".into(), json!(s.id));
    d.insert("created_at".into(), ts(&s.created_at));
    d.insert("updated_at".into(), ts_opt(&s.updated_at));
    d.insert("name".into(), json!(s.display_name));
    d.insert("description".into(), json!(s.display_description));
    d.insert("volume_id".into(), json!(s.volume_id));
    d.insert("status".into(), json!(s.status.as_str()));
    d.insert("size".into(), json!(s.volume_size));
    d.insert("metadata".into(), json!(metadata));
    d.insert(
        "os-extended-snapshot-attributes:progress".into(),
        json!(s.progress.as_deref().unwrap_or(match s.status.as_str() {
            "available" => "100%",
            _ => "0%",
        })),
    );
    d.insert(
        "os-extended-snapshot-attributes:project_id".into(),
        json!(s.project_id),
    );
    if r.v.at_least(14) {
        d.insert("group_snapshot_id".into(), json!(s.group_snapshot_id));
    }
    if r.v.at_least(41) {
        d.insert("user_id".into(), json!(s.user_id));
    }
    if r.v.at_least(65) {
        d.insert("consumes_quota".into(), json!(s.use_quota));
    }
    Value::Object(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_cinders_with_microseconds() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 60)
            .unwrap();
        assert_eq!(ts(&t), Value::String("2026-01-02T03:04:05.000060".into()));
        assert_eq!(
            ts(&t),
            Value::String(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        );
    }
}
