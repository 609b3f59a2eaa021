//! The drivers' error: a kind the services act on (retry, status, wire kind) and the
//! text that says what happened.

/// Classes of driver failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverErrorKind {
    /// No such volume, snapshot or image.
    NotFound,
    /// Exists already, differently.
    AlreadyExists,
    /// Another client has it open (watchers): worth trying again later.
    Busy,
    /// Snapshots or clones depend on it.
    HasDependents,
    /// Bad arguments for this volume (a shrink, a bad image name, a foreign location).
    InvalidInput,
    /// The backend is unreachable or timed out.
    Unavailable,
    /// Cancelled (shutdown).
    Cancelled,
    /// No location of an image can be cloned here (another cluster, a location that
    /// is not RBD, a parent our user cannot open): copy the data instead.
    NotCloneable,
    /// Our cephx user's caps do not reach this (a pool of someone else's).
    PermissionDenied,
    /// Anything else.
    Other,
}

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    /// The class of failure.
    pub kind: DriverErrorKind,
    /// What happened (names the call and target).
    pub message: String,
}

impl DriverError {
    /// A failure of `kind`.
    pub fn new(kind: DriverErrorKind, message: impl Into<String>) -> Self {
        DriverError {
            kind,
            message: message.into(),
        }
    }

    /// Bad arguments for this volume.
    pub fn invalid(message: impl Into<String>) -> Self {
        DriverError::new(DriverErrorKind::InvalidInput, message)
    }

    /// Whether another client (such as a killed predecessor's dead watch) still has
    /// the image open: worth trying again later.
    pub fn is_busy(&self) -> bool {
        self.kind == DriverErrorKind::Busy
    }
}

impl From<rbd_driver::Error> for DriverError {
    fn from(e: rbd_driver::Error) -> Self {
        use rbd_driver::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => DriverErrorKind::NotFound,
            K::AlreadyExists => DriverErrorKind::AlreadyExists,
            K::Busy => DriverErrorKind::Busy,
            K::HasDependents => DriverErrorKind::HasDependents,
            K::InvalidInput => DriverErrorKind::InvalidInput,
            K::Unavailable | K::TimedOut => DriverErrorKind::Unavailable,
            K::Cancelled => DriverErrorKind::Cancelled,
            K::PermissionDenied => DriverErrorKind::PermissionDenied,
            K::Other => DriverErrorKind::Other,
        };
        DriverError::new(kind, e.to_string())
    }
}
