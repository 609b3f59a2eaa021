//! One error type for the whole driver, classified by [`ErrorKind`] so callers can tell
//! "not found" from "busy" from "cancelled" without string matching.

use crate::diff::DiffError;

/// What went wrong, coarsely: the part callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The image, snapshot or pool does not exist (ENOENT).
    NotFound,
    /// The object exists already, and not in the shape asked for (EEXIST).
    AlreadyExists,
    /// The image is open elsewhere: it has watchers (EBUSY).
    Busy,
    /// The image has snapshots, or the snapshot has clones (ENOTEMPTY).
    HasDependents,
    /// The caller cancelled the operation (ECANCELED).
    Cancelled,
    /// Ceph did not answer in time (ETIMEDOUT).
    TimedOut,
    /// The cluster or the driver's pool cannot be reached (ENOTCONN, ESHUTDOWN, closed pool).
    Unavailable,
    /// The request or a diff stream is malformed (EINVAL, bad names, stream format errors).
    InvalidInput,
    /// Our cephx user may not do this there (EPERM, EACCES): its caps end short of it.
    PermissionDenied,
    /// Anything else.
    Other,
}

/// The driver's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A librbd or librados call returned a negative errno.
    #[error("{op} on {target} failed: {} (errno {errno})", strerror(*errno))]
    Rbd {
        /// The C function that failed.
        op: &'static str,
        /// What it was called on (`pool/image@snap`).
        target: String,
        /// The positive errno.
        errno: i32,
    },
    /// Connecting to the cluster failed.
    #[error("connecting to the Ceph cluster failed: {message}")]
    Connect {
        /// What librados or the ceph crate said.
        message: String,
        /// The errno, when librados gave one.
        errno: Option<i32>,
    },
    /// A mon or mgr command returned an error.
    #[error("ceph command `{prefix}` failed: {status} (errno {errno})")]
    Command {
        /// The command's `prefix`.
        prefix: String,
        /// The positive errno.
        errno: i32,
        /// The status string Ceph returned.
        status: String,
    },
    /// The image has watchers other than this process: it is in use.
    #[error("image {target} is in use by {watchers:?}")]
    Watched {
        /// `pool/image`.
        target: String,
        /// The watchers' addresses.
        watchers: Vec<String>,
    },
    /// The image has snapshots (or the snapshot clones) and the call does not remove them.
    #[error("{target} has dependents: {what}")]
    HasDependents {
        /// `pool/image[@snap]`.
        target: String,
        /// What depends on it.
        what: String,
    },
    /// The object exists already in another shape than asked for.
    #[error("{target} already exists: {detail}")]
    AlreadyExists {
        /// `pool/image[@snap]`.
        target: String,
        /// How it differs.
        detail: String,
    },
    /// A malformed diff stream.
    #[error("invalid rbd diff stream: {0}")]
    Diff(#[from] DiffError),
    /// Reading or writing a stream failed on our side.
    #[error("stream I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// An argument the driver cannot pass to Ceph (an interior NUL, an empty name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The caller cancelled the operation.
    #[error("operation cancelled")]
    Cancelled,
    /// The blocking pool was shut down.
    #[error("the driver's blocking pool is closed")]
    PoolClosed,
    /// Code on the blocking pool panicked.
    #[error("driver operation panicked: {0}")]
    Panicked(String),
    /// Ceph answered with something we could not parse.
    #[error("unexpected answer from Ceph: {0}")]
    Unexpected(String),
    /// The data read does not have the content digest recorded for it.
    #[error("{target} does not hold the data recorded for it: content digest {actual}, recorded {expected}")]
    DigestMismatch {
        /// `pool/image@snap`.
        target: String,
        /// The recorded digest.
        expected: String,
        /// The digest of what was read.
        actual: String,
    },
}

impl Error {
    pub(crate) fn rbd(op: &'static str, target: impl Into<String>, errno: i32) -> Self {
        if errno == libc::ECANCELED {
            return Error::Cancelled;
        }
        Error::Rbd {
            op,
            target: target.into(),
            errno,
        }
    }

    /// The errno behind this error, where there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Rbd { errno, .. } | Error::Command { errno, .. } => Some(*errno),
            Error::Connect { errno, .. } => *errno,
            _ => None,
        }
    }

    /// The coarse classification callers branch on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Rbd { errno, .. } | Error::Command { errno, .. } => kind_of_errno(*errno),
            Error::Connect { errno, .. } => match errno.map(kind_of_errno) {
                Some(ErrorKind::TimedOut) => ErrorKind::TimedOut,
                Some(ErrorKind::NotFound) => ErrorKind::NotFound,
                _ => ErrorKind::Unavailable,
            },
            Error::Watched { .. } => ErrorKind::Busy,
            Error::HasDependents { .. } => ErrorKind::HasDependents,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Diff(DiffError::FromSnapMissing(_)) => ErrorKind::NotFound,
            Error::Diff(DiffError::ToSnapExists(_)) => ErrorKind::AlreadyExists,
            Error::Diff(_) | Error::InvalidArgument(_) => ErrorKind::InvalidInput,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::PoolClosed => ErrorKind::Unavailable,
            Error::Io(_)
            | Error::Panicked(_)
            | Error::Unexpected(_)
            | Error::DigestMismatch { .. } => ErrorKind::Other,
        }
    }
}

/// Maps an errno (positive) to its [`ErrorKind`].
pub fn kind_of_errno(errno: i32) -> ErrorKind {
    match errno {
        libc::ENOENT => ErrorKind::NotFound,
        libc::EEXIST => ErrorKind::AlreadyExists,
        libc::EBUSY => ErrorKind::Busy,
        libc::ENOTEMPTY => ErrorKind::HasDependents,
        libc::ECANCELED => ErrorKind::Cancelled,
        libc::ETIMEDOUT => ErrorKind::TimedOut,
        libc::ENOTCONN | libc::ESHUTDOWN | libc::ECONNREFUSED | libc::EHOSTUNREACH => {
            ErrorKind::Unavailable
        }
        libc::EINVAL | libc::ERANGE | libc::ENAMETOOLONG => ErrorKind::InvalidInput,
        libc::EPERM | libc::EACCES => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    }
}

fn strerror(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// The driver's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
