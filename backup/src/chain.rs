//! The chain of a backup as the database keeps it (`backups.service_metadata`, JSON):
//! which base image holds its data, which snapshot of it is its restore point, which
//! snapshot of the source an incremental on top of it starts from, and the digest of
//! its content. Names are Cinder's: base images `volume-<volume>.backup.<full backup>`,
//! snapshots `backup.<backup>.snap.<unix time>`.

use rbd_driver::diff::ContentDigest;
use serde::{Deserialize, Serialize};

/// One backup's place in its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// The backup pool.
    pub pool: String,
    /// The backup cluster's fsid.
    pub fsid: String,
    /// The base image (shared by a full backup and its incrementals).
    pub base: String,
    /// The base image's snapshot that is this backup's restore point. Its name equals
    /// `source_snap`: an incremental's stream names the snapshot it starts from, and
    /// the importer finds it on the base image under the same name.
    pub snap: String,
    /// The snapshot of the source volume's image the data was read at.
    pub source_snap: String,
    /// Whether `source_snap` is the backup's own (`backup.<id>.snap.<ts>`, removed when
    /// no incremental needs it) or a user's snapshot (a backup of a snapshot).
    pub source_owned: bool,
    /// The content digest of the restore point (`xxh3s-4k:<size>:<hex>`).
    pub digest: String,
    /// The image's size at the restore point, bytes.
    pub size_bytes: u64,
    /// The stream's bytes (data and records) this backup moved.
    pub stream_bytes: u64,
    /// The source's image metadata (Cinder keeps it with the backup as
    /// `volume-glance-metadata`): a restore gives it to the volume, which becomes
    /// bootable. Absent: the source had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_metadata: Option<std::collections::BTreeMap<String, String>>,
}

impl ChainRecord {
    /// The record of a row, if it has one that reads.
    pub fn of(service_metadata: Option<&str>) -> Option<ChainRecord> {
        serde_json::from_str(service_metadata?).ok()
    }

    /// The digest.
    pub fn content_digest(&self) -> Option<ContentDigest> {
        ContentDigest::parse(&self.digest)
    }

    /// As stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a chain record serializes")
    }
}

/// The base image of a chain that starts with full backup `backup_id` of `volume_id`.
pub fn base_image(volume_id: &str, backup_id: &str) -> String {
    format!("volume-{volume_id}.backup.{backup_id}")
}

/// The snapshot of backup `backup_id` taken at unix time `secs`.
pub fn backup_snap(backup_id: &str, secs: f64) -> String {
    format!("backup.{backup_id}.snap.{secs:.3}")
}

/// The backup a `backup.<id>.snap.<ts>` snapshot belongs to.
pub fn snap_owner(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("backup.")?;
    let (id, ts) = rest.split_once(".snap.")?;
    (!id.is_empty() && !ts.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_name_their_backup() {
        let id = "6f1c1c4e-0000-4000-8000-000000000001";
        let s = backup_snap(id, 1_733_300_000.25);
        assert_eq!(s, format!("backup.{id}.snap.1733300000.250"));
        assert_eq!(snap_owner(&s), Some(id));
        assert_eq!(snap_owner("snapshot-x"), None);
        assert_eq!(snap_owner("backup..snap.1"), None);
    }

    #[test]
    fn a_record_round_trips_and_garbage_reads_as_none() {
        let r = ChainRecord {
            image_metadata: None,
            pool: "backups".into(),
            fsid: "f".into(),
            base: base_image("v", "b"),
            snap: "backup.b.snap.1.000".into(),
            source_snap: "backup.b.snap.1.000".into(),
            source_owned: true,
            digest: ContentDigest::default().to_string(),
            size_bytes: 1 << 30,
            stream_bytes: 42,
        };
        assert_eq!(ChainRecord::of(Some(&r.to_json())), Some(r.clone()));
        assert!(r.content_digest().is_some());
        assert_eq!(ChainRecord::of(Some("{")), None);
        assert_eq!(ChainRecord::of(None), None);
    }
}
