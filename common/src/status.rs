//! Resource statuses with OpenStack's spellings (note the mixed `in-use`,
//! `error_deleting`, `backing-up`). Which status follows which is the operations table
//! in [`crate::ops`]; with the `db` feature the enums are column types of their own, so
//! rows carry them typed.

use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "db", derive(sea_orm::DeriveValueType))]
        #[cfg_attr(feature = "db", sea_orm(value_type = "String"))]
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
}
