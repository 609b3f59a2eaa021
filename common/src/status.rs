//! Resource statuses with OpenStack's spellings (note the mixed `in-use`,
//! `error_deleting`, `backing-up`), and the volume status machine as a pure table.
//!
//! A status changes only through the database's conditional update (`db`), which names
//! the statuses it expects; [`VolumeStatus::can_transition`] is the table those
//! expectations come from. Admin `os-reset_status` is the one path that bypasses it.

use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every status.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The OpenStack spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(UnknownStatus { kind: stringify!($name), value: other.to_string() }),
                }
            }
        }
    };
}

/// A status string that is not one of the kind's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownStatus {
    /// Which status kind.
    pub kind: &'static str,
    /// The string.
    pub value: String,
}

status_enum! {
    /// `volumes.status`.
    VolumeStatus {
        /// Being created.
        Creating = "creating",
        /// Ready, not attached.
        Available = "available",
        /// Reserved for an attachment (attachments API).
        Reserved = "reserved",
        /// Being attached.
        Attaching = "attaching",
        /// Being detached.
        Detaching = "detaching",
        /// Attached.
        InUse = "in-use",
        /// Under admin maintenance.
        Maintenance = "maintenance",
        /// Being deleted.
        Deleting = "deleting",
        /// Offered for transfer.
        AwaitingTransfer = "awaiting-transfer",
        /// Failed.
        Error = "error",
        /// Deletion failed.
        ErrorDeleting = "error_deleting",
        /// Being backed up.
        BackingUp = "backing-up",
        /// Being restored from a backup.
        RestoringBackup = "restoring-backup",
        /// A backup failed.
        ErrorBackingUp = "error_backing-up",
        /// A restore failed.
        ErrorRestoring = "error_restoring",
        /// An extend failed.
        ErrorExtending = "error_extending",
        /// Image being written into it.
        Downloading = "downloading",
        /// Being uploaded to an image.
        Uploading = "uploading",
        /// Changing type.
        Retyping = "retyping",
        /// Growing.
        Extending = "extending",
        /// Being reverted to a snapshot.
        Reverting = "reverting",
        /// An existing image being brought under management.
        Managing = "managing",
        /// Bringing an existing image under management failed.
        ErrorManaging = "error_managing",
        /// Being released from management (the image stays).
        Unmanaging = "unmanaging",
        /// Soft-deleted.
        Deleted = "deleted",
    }
}

status_enum! {
    /// `volumes.attach_status` and `volume_attachment.attach_status`.
    AttachStatus {
        /// Attached.
        Attached = "attached",
        /// Being attached.
        Attaching = "attaching",
        /// Not attached.
        Detached = "detached",
        /// Reserved.
        Reserved = "reserved",
        /// Being detached.
        Detaching = "detaching",
        /// Attaching failed.
        ErrorAttaching = "error_attaching",
        /// Detaching failed.
        ErrorDetaching = "error_detaching",
        /// Soft-deleted attachment.
        Deleted = "deleted",
    }
}

status_enum! {
    /// `snapshots.status`.
    SnapshotStatus {
        /// Being created.
        Creating = "creating",
        /// Ready.
        Available = "available",
        /// Being deleted.
        Deleting = "deleting",
        /// Failed.
        Error = "error",
        /// Deletion failed.
        ErrorDeleting = "error_deleting",
        /// Being unmanaged.
        Unmanaging = "unmanaging",
        /// Being backed up.
        BackingUp = "backing-up",
        /// Being restored.
        Restoring = "restoring",
        /// Soft-deleted.
        Deleted = "deleted",
    }
}

status_enum! {
    /// `backups.status`.
    BackupStatus {
        /// Being created.
        Creating = "creating",
        /// Ready.
        Available = "available",
        /// Being deleted.
        Deleting = "deleting",
        /// Failed.
        Error = "error",
        /// Deletion failed.
        ErrorDeleting = "error_deleting",
        /// Being restored.
        Restoring = "restoring",
        /// Soft-deleted.
        Deleted = "deleted",
    }
}

impl VolumeStatus {
    /// Whether a volume may go from `self` to `to` through a normal operation (the table
    /// conditional updates draw their expected statuses from).
    pub fn can_transition(self, to: VolumeStatus) -> bool {
        use VolumeStatus::*;
        matches!(
            (self, to),
            (Creating, Available | Error | Downloading)
                | (Downloading, Available | Error)
                | (
                    Available,
                    Deleting
                        | Reserved
                        | Attaching
                        | BackingUp
                        | Extending
                        | Uploading
                        | Retyping
                        | Maintenance
                        | AwaitingTransfer
                        | Downloading
                        | RestoringBackup
                        | Reverting
                        | Unmanaging
                )
                | (Reserved, Attaching | InUse | Available)
                | (Attaching, InUse | Available | Error)
                | (
                    InUse,
                    Detaching | BackingUp | Extending | Uploading | Retyping | Reserved | Attaching
                )
                | (Detaching, Available | InUse)
                | (Deleting, Deleted | ErrorDeleting)
                | (Error, Deleting)
                | (ErrorDeleting, Deleting)
                | (BackingUp, Available | InUse | ErrorBackingUp)
                | (RestoringBackup, Available | ErrorRestoring)
                | (Extending, Available | InUse | ErrorExtending)
                | (Uploading, Available | InUse)
                | (Retyping, Available | InUse | Error)
                | (Maintenance, Available | Error)
                | (AwaitingTransfer, Available)
                | (ErrorBackingUp | ErrorRestoring | ErrorExtending, Deleting)
                | (Reverting, Available | Error)
                | (Managing, Available | ErrorManaging)
                | (ErrorManaging, Deleting | Unmanaging)
                | (Error, Unmanaging)
                | (Unmanaging, Deleted | Available)
        )
    }

    /// The statuses a volume may move to `to` from.
    pub fn sources_of(to: VolumeStatus) -> Vec<VolumeStatus> {
        VolumeStatus::ALL
            .iter()
            .copied()
            .filter(|s| s.can_transition(to))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_openstack_spellings() {
        for s in VolumeStatus::ALL {
            assert_eq!(s.as_str().parse::<VolumeStatus>().unwrap(), *s);
        }
        assert_eq!(VolumeStatus::InUse.as_str(), "in-use");
        assert_eq!(VolumeStatus::ErrorDeleting.as_str(), "error_deleting");
        assert_eq!(VolumeStatus::ErrorBackingUp.as_str(), "error_backing-up");
        assert_eq!(VolumeStatus::BackingUp.as_str(), "backing-up");
        assert!("in_use".parse::<VolumeStatus>().is_err());
        for s in SnapshotStatus::ALL {
            assert_eq!(s.as_str().parse::<SnapshotStatus>().unwrap(), *s);
        }
        for s in BackupStatus::ALL {
            assert_eq!(s.as_str().parse::<BackupStatus>().unwrap(), *s);
        }
        for s in AttachStatus::ALL {
            assert_eq!(s.as_str().parse::<AttachStatus>().unwrap(), *s);
        }
    }

    #[test]
    fn the_volume_status_table() {
        use VolumeStatus::*;
        let allowed = [
            (Creating, Available),
            (Creating, Error),
            (Available, Deleting),
            (Available, Attaching),
            (Attaching, InUse),
            (InUse, Detaching),
            (Detaching, Available),
            (Error, Deleting),
            (ErrorDeleting, Deleting),
            (Deleting, ErrorDeleting),
            (Available, Extending),
            (InUse, Extending),
            (Extending, ErrorExtending),
            (Available, Reverting),
            (Reverting, Available),
            (Managing, ErrorManaging),
            (Available, Unmanaging),
        ];
        for (a, b) in allowed {
            assert!(a.can_transition(b), "{a} -> {b}");
        }
        let refused = [
            (Creating, Deleting),
            (InUse, Deleting),
            (Deleting, Available),
            (Available, InUse),
            (Deleted, Available),
            (Available, Available),
        ];
        for (a, b) in refused {
            assert!(!a.can_transition(b), "{a} -> {b}");
        }
        assert_eq!(
            VolumeStatus::sources_of(Deleting),
            vec![
                Available,
                Error,
                ErrorDeleting,
                ErrorBackingUp,
                ErrorRestoring,
                ErrorExtending,
                ErrorManaging
            ]
        );
    }
}
