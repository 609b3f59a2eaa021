//! The JSON shapes of volumes and snapshots, per microversion and caller, as Cinder's
//! views draw them (`cinder/api/v3/views/volumes.py`, `.../snapshots.py`).

use chrono::NaiveDateTime;
use cinder_common::status::AttachStatus;
use cinder_db::entity::{snapshots, volume_attachment, volumes};
use cinder_db::Metadata;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::request::Req;

/// Cinder's timestamp (`2026-12-03T16:06:44.123456`, UTC, no zone), written straight
/// into the serializer's output.
#[derive(Clone, Copy)]
pub struct Ts<'a>(pub &'a NaiveDateTime);

impl std::fmt::Display for Ts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike, Timelike};
        // By hand: chrono's `format` parses its pattern on every call, and a list of 100
        // volumes formats 200 of these.
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() % 1_000_000_000 / 1000
        )
    }
}

impl Serialize for Ts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Cinder's timestamp as a JSON value.
pub fn ts(t: &NaiveDateTime) -> Value {
    Value::String(Ts(t).to_string())
}

fn ts_opt(t: &Option<NaiveDateTime>) -> Value {
    t.as_ref().map(ts).unwrap_or(Value::Null)
}

/// What a volume's detail view shows besides its row (read with the page).
pub type VolumeExtras = cinder_db::VolumeDetails;

/// The detail of a volume (`GET /volumes/{id}`, `/volumes/detail`, create, update).
pub fn volume_detail(r: &Req, v: &volumes::Model, x: &VolumeExtras) -> Value {
    serde_json::to_value(VolumeDetail { r, v, x }).unwrap_or(Value::Null)
}

/// The `self` and `bookmark` links of `collection/id` (what [`Req::links`] returns as a
/// value).
pub struct Links<'a> {
    /// The request (base URL, project).
    pub r: &'a Req,
    /// `volumes`, `snapshots`, ...
    pub collection: &'a str,
    /// The resource's id.
    pub id: &'a str,
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Link<'a>(std::fmt::Arguments<'a>, &'static str);
        impl Serialize for Link<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("href", &self.0)?;
                m.serialize_entry("rel", self.1)?;
                m.end()
            }
        }
        let (base, p, c, id) = (
            &self.r.base,
            self.r.link_project(),
            self.collection,
            self.id,
        );
        let mut l = s.serialize_seq(Some(2))?;
        l.serialize_element(&Link(format_args!("{base}/v3/{p}/{c}/{id}"), "self"))?;
        l.serialize_element(&Link(format_args!("{base}/{p}/{c}/{id}"), "bookmark"))?;
        l.end()
    }
}

/// A volume's attachment as the volume view lists it.
struct AttachmentView<'a> {
    a: &'a volume_attachment::Model,
}

impl Serialize for AttachmentView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.a;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("server_id", &a.instance_uuid)?;
        m.serialize_entry("attachment_id", &a.id)?;
        m.serialize_entry("attached_at", &a.attach_time.as_ref().map(Ts))?;
        m.serialize_entry("host_name", &a.attached_host)?;
        m.serialize_entry("volume_id", &a.volume_id)?;
        m.serialize_entry("device", &a.mountpoint)?;
        m.serialize_entry("id", &a.volume_id)?;
        m.end()
    }
}

/// A volume's detail, serialized without an intermediate tree (lists write a hundred
/// of these per request).
pub struct VolumeDetail<'a> {
    /// The request (version, caller, links).
    pub r: &'a Req,
    /// The row.
    pub v: &'a volumes::Model,
    /// Its metadata, attachments and type name.
    pub x: &'a VolumeExtras,
}

impl Serialize for VolumeDetail<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, v, x) = (self.r, self.v, self.x);
        let attachments = x
            .attachments
            .get(&v.id)
            .map(|a| a.as_slice())
            .unwrap_or_default();
        let type_name = v.volume_type_id.as_ref().and_then(|t| x.type_names.get(t));
        let empty = Metadata::new();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &v.id)?;
        m.serialize_entry("status", v.status.as_str())?;
        m.serialize_entry("size", &v.size)?;
        m.serialize_entry("availability_zone", &v.availability_zone)?;
        m.serialize_entry("created_at", &Ts(&v.created_at))?;
        m.serialize_entry("updated_at", &v.updated_at.as_ref().map(Ts))?;
        m.serialize_entry(
            "attachments",
            &Seq(attachments
                .iter()
                .filter(|a| a.attach_status == AttachStatus::Attached)
                .map(|a| AttachmentView { a })),
        )?;
        m.serialize_entry("name", &v.display_name)?;
        m.serialize_entry("description", &v.display_description)?;
        m.serialize_entry("volume_type", &type_name)?;
        m.serialize_entry("snapshot_id", &v.snapshot_id)?;
        m.serialize_entry("source_volid", &v.source_volid)?;
        m.serialize_entry("metadata", x.metadata.get(&v.id).unwrap_or(&empty))?;
        // Cinder's volume_image_metadata extension: present only for volumes that have
        // image metadata.
        if let Some(im) = x.image_metadata.get(&v.id) {
            m.serialize_entry("volume_image_metadata", im)?;
        }
        m.serialize_entry(
            "links",
            &Links {
                r,
                collection: "volumes",
                id: &v.id,
            },
        )?;
        m.serialize_entry("user_id", &v.user_id)?;
        m.serialize_entry("bootable", if v.bootable { "true" } else { "false" })?;
        m.serialize_entry("encrypted", &v.encryption_key_id.is_some())?;
        m.serialize_entry(
            "replication_status",
            v.replication_status.as_deref().unwrap_or("disabled"),
        )?;
        m.serialize_entry("consistencygroup_id", &None::<()>)?;
        m.serialize_entry("multiattach", &v.multiattach)?;
        if r.ctx.is_admin {
            // Ours, for operators: the RBD clone parent (`pool/image@snap`), such as the
            // Glance image a volume was cloned from and keeps from being deleted.
            m.serialize_entry("os-vol-rbd-attr:parent", &v.rbd_parent)?;
            m.serialize_entry("os-vol-tenant-attr:tenant_id", &v.project_id)?;
            m.serialize_entry("os-vol-host-attr:host", &v.host)?;
            m.serialize_entry("os-vol-mig-status-attr:migstat", &v.migration_status)?;
            m.serialize_entry("os-vol-mig-status-attr:name_id", &None::<()>)?;
        }
        if r.v.at_least(13) {
            m.serialize_entry("group_id", &v.group_id)?;
        }
        if r.v.at_least(21) && r.ctx.is_admin {
            m.serialize_entry("provider_id", &v.provider_id)?;
        }
        if r.v.at_least(48) {
            m.serialize_entry("service_uuid", &v.service_uuid)?;
            m.serialize_entry("shared_targets", &v.shared_targets)?;
        }
        if r.v.at_least(61) && r.ctx.is_admin {
            m.serialize_entry("cluster_name", &v.cluster_name)?;
        }
        if r.v.at_least(63) {
            m.serialize_entry("volume_type_id", &v.volume_type_id)?;
        }
        if r.v.at_least(64) {
            m.serialize_entry("encryption_key_id", &v.encryption_key_id)?;
        }
        if r.v.at_least(65) {
            m.serialize_entry("consumes_quota", &v.use_quota)?;
        }
        m.end()
    }
}

/// The summary of a volume (`GET /volumes`).
pub struct VolumeSummary<'a> {
    /// The request (links).
    pub r: &'a Req,
    /// The row.
    pub v: &'a volumes::Model,
}

impl Serialize for VolumeSummary<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", &self.v.id)?;
        m.serialize_entry("name", &self.v.display_name)?;
        m.serialize_entry(
            "links",
            &Links {
                r: self.r,
                collection: "volumes",
                id: &self.v.id,
            },
        )?;
        m.end()
    }
}

/// Serializes an iterator as a sequence (a clone of it, as `serialize` takes `&self`).
pub struct Seq<I>(pub I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
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
