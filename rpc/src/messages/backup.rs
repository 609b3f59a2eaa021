//! The backup topic: what the API asks of a backup service (`cinder-backup.<host>`).
//! Each message names rows; the service reads the rest (volume, snapshot, parent, the
//! chain) from the database, so a message is never stale about the chain.
//!
//! # Version history
//! - 1.0: create_backup, delete_backup, restore_backup.

use serde::{Deserialize, Serialize};

use super::{RpcVersion, Topic};

/// The backup topic.
#[derive(Debug, Clone, Copy)]
pub struct BackupTopic;

impl Topic for BackupTopic {
    type Request = BackupRequest;
    const NAME: &'static str = "backup";
    const VERSION: RpcVersion = RpcVersion { major: 1, minor: 0 };

    fn version_of(_: &BackupRequest) -> RpcVersion {
        Self::VERSION
    }
}

topic! {
    /// The backup topic's requests.
    BackupTopic => BackupRequest {
        /// Back up the volume (or snapshot) of a backup row in status `creating`: full,
        /// or incremental onto its parent's base image.
        cast "create_backup" CreateBackup,
        /// Delete a backup (status `deleting`): its restore point, and what no other
        /// backup needs.
        cast "delete_backup" DeleteBackup,
        /// Restore a backup (status `restoring`) onto a volume.
        cast "restore_backup" RestoreBackup,
    }
}

/// `create_backup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBackup {
    /// The backup.
    pub backup_id: String,
}

/// `delete_backup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBackup {
    /// The backup.
    pub backup_id: String,
}

/// `restore_backup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreBackup {
    /// The backup.
    pub backup_id: String,
    /// The volume restored onto.
    pub volume_id: String,
    /// The API created the volume for this restore: the service waits for it to be
    /// `available` before it begins.
    #[serde(default)]
    pub new_volume: bool,
}
