//! The operations and the statuses they move their resource through: the one table of
//! state changes. Each operation names, once, the statuses it may begin from, the busy
//! status it holds while it runs, and where it ends when it succeeds or fails.
//!
//! The database's `begin` (from one of [`Operation::from`] to [`Operation::busy`]) and
//! `finish` (from `busy` to [`Operation::done`] or [`Operation::failed`], with the
//! claim released in the same transaction) read this table; the API, the services and
//! their recovery after a crash all go through those two. Admin `os-reset_status` is the
//! one path that bypasses it.
//!
//! The operation's [`Operation::name`] is also the name of its claim in the `workers`
//! table and of its RPC method, so recovery finds the operation of a claim here.
//!
//! Pure data: no I/O, cannot fail.

use std::fmt;
use std::str::FromStr;

use crate::status::{BackupStatus, SnapshotStatus, VolumeStatus};

/// The kinds of resource an operation works on (the `workers.resource_type` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// A volume.
    Volume,
    /// A snapshot.
    Snapshot,
    /// A backup.
    Backup,
}

impl ResourceKind {
    /// The spelling in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Volume => "volume",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::Backup => "backup",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "volume" => Ok(ResourceKind::Volume),
            "snapshot" => Ok(ResourceKind::Snapshot),
            "backup" => Ok(ResourceKind::Backup),
            other => Err(format!("unknown resource kind {other:?}")),
        }
    }
}

/// A status an operation can move: one per resource kind.
pub trait Status: Copy + Eq + fmt::Debug + fmt::Display + FromStr + Send + Sync + 'static {
    /// The resource kind whose status this is.
    const KIND: ResourceKind;
    /// Every status of the kind.
    const ALL: &'static [Self];
    /// The OpenStack spelling.
    fn spelling(self) -> &'static str;
}

macro_rules! status_of {
    ($status:ty, $kind:ident) => {
        impl Status for $status {
            const KIND: ResourceKind = ResourceKind::$kind;
            const ALL: &'static [Self] = <$status>::ALL;
            fn spelling(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

status_of!(VolumeStatus, Volume);
status_of!(SnapshotStatus, Snapshot);
status_of!(BackupStatus, Backup);

/// Where an operation leaves its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final<S> {
    /// This status.
    To(S),
    /// Back to the status it had when the operation began (recorded by `begin` in the
    /// row's `previous_status`), or `otherwise` when none was recorded. Volumes only.
    Previous {
        /// When the row records no previous status.
        otherwise: S,
    },
    /// Soft-deleted (`deleted`).
    Deleted,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it was asked.
    Done,
    /// It failed; the resource takes the operation's failure status.
    Failed,
}

/// One operation on one kind of resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Operation<S: 'static> {
    /// The claim's and the RPC method's name (`create_volume`, ...).
    pub name: &'static str,
    /// Statuses it may begin from; empty when the resource is created in `busy`.
    pub from: &'static [S],
    /// The status while it runs.
    pub busy: S,
    /// Other statuses it may hold while it runs, moving there from `busy` and back
    /// (a create's `downloading`); it finishes from any of them.
    pub passes: &'static [S],
    /// Where success leaves the resource.
    pub done: Final<S>,
    /// Where failure leaves the resource.
    pub failed: Final<S>,
}

impl<S: Status> Operation<S> {
    /// Where `outcome` leaves the resource.
    pub fn end(&self, outcome: Outcome) -> Final<S> {
        match outcome {
            Outcome::Done => self.done,
            Outcome::Failed => self.failed,
        }
    }

    /// Every status it holds while it runs: `busy`, then those it `passes`.
    pub fn running(&self) -> Vec<S> {
        std::iter::once(self.busy)
            .chain(self.passes.iter().copied())
            .collect()
    }

    /// Whether the operation may begin from `status`.
    pub fn begins_from(&self, status: S) -> bool {
        self.from.contains(&status)
    }

    /// The key of this operation's claim on resource `id`.
    pub fn claim(&'static self, id: impl Into<String>) -> ClaimKey {
        ClaimKey {
            resource: S::KIND,
            id: id.into(),
            operation: self.name,
        }
    }
}

/// Volume operations.
pub mod volume {
    use super::{Final, Operation};
    use crate::status::VolumeStatus::{self, *};

    /// Create (blank or from a source): the API inserts the row `creating`.
    pub const CREATE: Operation<VolumeStatus> = Operation {
        name: "create_volume",
        from: &[],
        busy: Creating,
        passes: &[Downloading],
        done: Final::To(Available),
        failed: Final::To(Error),
    };
    /// Delete: its storage goes, the row is soft-deleted.
    pub const DELETE: Operation<VolumeStatus> = Operation {
        name: "delete_volume",
        from: &[
            Available,
            Error,
            ErrorDeleting,
            ErrorBackingUp,
            ErrorRestoring,
            ErrorExtending,
            ErrorManaging,
        ],
        busy: Deleting,
        passes: &[],
        done: Final::Deleted,
        failed: Final::To(ErrorDeleting),
    };
    /// Extend (in use from microversion 3.42): back to where it was.
    pub const EXTEND: Operation<VolumeStatus> = Operation {
        name: "extend_volume",
        from: &[Available, InUse],
        busy: Extending,
        passes: &[],
        done: Final::Previous {
            otherwise: Available,
        },
        failed: Final::To(ErrorExtending),
    };
    /// Revert to the latest snapshot: the content is unknown after a failure.
    pub const REVERT: Operation<VolumeStatus> = Operation {
        name: "revert_to_snapshot",
        from: &[Available],
        busy: Reverting,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(Error),
    };
    /// Retype on the same backend: only the row changes; back to where it was either way.
    pub const RETYPE: Operation<VolumeStatus> = Operation {
        name: "retype",
        from: &[Available, InUse],
        busy: Retyping,
        passes: &[],
        done: Final::Previous {
            otherwise: Available,
        },
        failed: Final::Previous {
            otherwise: Available,
        },
    };
    /// Manage an existing image: the API inserts the row `managing`.
    pub const MANAGE: Operation<VolumeStatus> = Operation {
        name: "manage_existing",
        from: &[],
        busy: Managing,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(ErrorManaging),
    };
    /// Unmanage: the row goes, the image stays.
    pub const UNMANAGE: Operation<VolumeStatus> = Operation {
        name: "unmanage_volume",
        from: &[Available, Error, ErrorManaging],
        busy: Unmanaging,
        passes: &[],
        done: Final::Deleted,
        failed: Final::Previous {
            otherwise: Available,
        },
    };
    /// Back up (the backup service reads a snapshot of it): back to where it was.
    pub const BACKUP: Operation<VolumeStatus> = Operation {
        name: "backup_volume",
        from: &[Available, InUse],
        busy: BackingUp,
        passes: &[],
        done: Final::Previous {
            otherwise: Available,
        },
        failed: Final::Previous {
            otherwise: Available,
        },
    };
    /// Restore a backup onto it.
    pub const RESTORE: Operation<VolumeStatus> = Operation {
        name: "restore_backup",
        from: &[Available],
        busy: RestoringBackup,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(ErrorRestoring),
    };
    /// Upload to an image: back to where it was either way.
    pub const UPLOAD: Operation<VolumeStatus> = Operation {
        name: "copy_volume_to_image",
        from: &[Available, InUse],
        busy: Uploading,
        passes: &[],
        done: Final::Previous {
            otherwise: Available,
        },
        failed: Final::Previous {
            otherwise: Available,
        },
    };
    /// Attach (`os-attach`, or an attachment's completion).
    pub const ATTACH: Operation<VolumeStatus> = Operation {
        name: "attach_volume",
        from: &[Available, Reserved, InUse],
        busy: Attaching,
        passes: &[],
        done: Final::To(InUse),
        failed: Final::Previous {
            otherwise: Available,
        },
    };

    /// Re-image (`os-reimage`, 3.68): the volume's data replaced by an image's, while
    /// it reads `downloading` (Cinder's); back to where it was, or `error`.
    pub const REIMAGE: Operation<VolumeStatus> = Operation {
        name: "reimage",
        from: &[Available, Error, Reserved],
        busy: Downloading,
        passes: &[],
        done: Final::Previous {
            otherwise: Available,
        },
        failed: Final::To(Error),
    };

    /// Every volume operation.
    pub const ALL: &[&Operation<VolumeStatus>] = &[
        &CREATE, &DELETE, &EXTEND, &REVERT, &RETYPE, &MANAGE, &UNMANAGE, &BACKUP, &RESTORE,
        &UPLOAD, &ATTACH, &REIMAGE,
    ];
}

/// Snapshot operations.
pub mod snapshot {
    use super::{Final, Operation};
    use crate::status::SnapshotStatus::{self, *};

    /// Create: the API inserts the row `creating`.
    pub const CREATE: Operation<SnapshotStatus> = Operation {
        name: "create_snapshot",
        from: &[],
        busy: Creating,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(Error),
    };
    /// Delete.
    pub const DELETE: Operation<SnapshotStatus> = Operation {
        name: "delete_snapshot",
        from: &[Available, Error, ErrorDeleting],
        busy: Deleting,
        passes: &[],
        done: Final::Deleted,
        failed: Final::To(ErrorDeleting),
    };
    /// The snapshot a volume reverts to: untouched either way (it is the one restoring).
    pub const RESTORE: Operation<SnapshotStatus> = Operation {
        name: "revert_to_snapshot",
        from: &[Available],
        busy: Restoring,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(Available),
    };

    /// A backup of the snapshot (`snapshot_id`): back to available either way.
    pub const BACKUP: Operation<SnapshotStatus> = Operation {
        name: "backup_snapshot",
        from: &[Available],
        busy: BackingUp,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(Available),
    };

    /// Every snapshot operation.
    pub const ALL: &[&Operation<SnapshotStatus>] = &[&CREATE, &DELETE, &RESTORE, &BACKUP];
}

/// Backup operations.
pub mod backup {
    use super::{Final, Operation};
    use crate::status::BackupStatus::{self, *};

    /// Create (full or incremental): the API inserts the row `creating`.
    pub const CREATE: Operation<BackupStatus> = Operation {
        name: "create_backup",
        from: &[],
        busy: Creating,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(Error),
    };
    /// Delete.
    pub const DELETE: Operation<BackupStatus> = Operation {
        name: "delete_backup",
        from: &[Available, Error, ErrorDeleting],
        busy: Deleting,
        passes: &[],
        done: Final::Deleted,
        failed: Final::To(ErrorDeleting),
    };
    /// Restore from it: the backup itself is untouched either way.
    pub const RESTORE: Operation<BackupStatus> = Operation {
        name: "restore_backup",
        from: &[Available],
        busy: Restoring,
        passes: &[],
        done: Final::To(Available),
        failed: Final::To(Available),
    };

    /// Every backup operation.
    pub const ALL: &[&Operation<BackupStatus>] = &[&CREATE, &DELETE, &RESTORE];
}

/// The key of a claim in the `workers` table: one claim per resource, naming the
/// operation that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey {
    /// The resource's kind.
    pub resource: ResourceKind,
    /// The resource's id.
    pub id: String,
    /// The operation's name (one of the table's).
    pub operation: &'static str,
}

impl ClaimKey {
    /// The key of a stored claim, if its kind and operation are in the table.
    pub fn parse(resource: &str, id: &str, operation: &str) -> Option<ClaimKey> {
        let resource: ResourceKind = resource.parse().ok()?;
        let name = operation_name(resource, operation)?;
        Some(ClaimKey {
            resource,
            id: id.to_string(),
            operation: name,
        })
    }
}

impl fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} of {}", self.operation, self.resource, self.id)
    }
}

/// The table's own spelling of `name`, if `resource` has such an operation.
fn operation_name(resource: ResourceKind, name: &str) -> Option<&'static str> {
    fn find<S: 'static>(all: &[&'static Operation<S>], name: &str) -> Option<&'static str> {
        all.iter().map(|o| o.name).find(|n| *n == name)
    }
    match resource {
        ResourceKind::Volume => find(volume::ALL, name),
        ResourceKind::Snapshot => find(snapshot::ALL, name),
        ResourceKind::Backup => find(backup::ALL, name),
    }
}

#[cfg(test)]
mod tests;
