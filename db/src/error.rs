//! The database layer's error.

use sea_orm::DbErr;

/// What can go wrong in the data layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed (connection, SQL, constraint).
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// No such (non-deleted) row.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Table or resource kind.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A conditional update lost: the row was not in an expected status.
    #[error("{kind} {id} is {found}, expected one of {expected:?}")]
    Conflict {
        /// Resource kind.
        kind: &'static str,
        /// Its id.
        id: String,
        /// Statuses the update required.
        expected: Vec<String>,
        /// Status it had.
        found: String,
    },
    /// Finishing work whose claim its service no longer holds (a cluster peer adopted
    /// it): the peer finishes it.
    #[error("the claim on {claim} is no longer held by service {holder}")]
    ClaimNotHeld {
        /// The claim (`operation resource of id`).
        claim: String,
        /// The service that thought it held it.
        holder: i32,
    },
    /// A reservation would exceed a quota.
    #[error("quota exceeded for {resource}: requested {requested}, limit {limit}, in use {in_use}, reserved {reserved}")]
    OverQuota {
        /// Quota resource (`volumes`, `gigabytes`, `volumes_<type>`, ...).
        resource: String,
        /// Asked for.
        requested: i64,
        /// Hard limit.
        limit: i64,
        /// In use.
        in_use: i64,
        /// Reserved by others.
        reserved: i64,
    },
    /// The schema is not at the version this code needs.
    #[error(
        "database schema is at {found}, this build needs {expected}: run `cinder-manage db sync`"
    )]
    SchemaNotReady {
        /// [`crate::SCHEMA_VERSION`].
        expected: &'static str,
        /// The newest applied migration, or a description of what is there.
        found: String,
    },
    /// A stored value this code cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl Error {
    /// The database could not be reached (refused, connection lost, no connection from
    /// the pool in time, the server shutting down): an outage, worth waiting out, not an
    /// answer about the data.
    pub fn is_unavailable(&self) -> bool {
        let Error::Db(e) = self else { return false };
        if matches!(e, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
            return true;
        }
        let s = e.to_string();
        [
            "error communicating with database",
            "pool timed out",
            "Connection refused",
            "connection closed",
            "Broken pipe",
            "Connection reset",
            "terminating connection",
            "the database system is shutting down",
            "the database system is starting up",
            "57P01",
            "Lost connection",
            "server has gone away",
        ]
        .iter()
        .any(|m| s.contains(m))
    }

    /// Transient conflicts worth retrying: SQLite busy, deadlocks, serialization failures.
    pub(crate) fn is_retryable(&self) -> bool {
        let Error::Db(e) = self else { return false };
        let s = e.to_string();
        s.contains("database is locked")
            || s.contains("Deadlock found")
            || s.contains("deadlock detected")
            || s.contains("could not serialize access")
            || s.contains("40001")
            || s.contains("1213")
    }
}

/// The data layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long work that is done waits out a database outage to record its end before it
/// gives up (and goes to recovery): long enough for a database restart or fail-over.
pub const OUTAGE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(180);

/// Runs `f` again while the database is unavailable ([`Error::is_unavailable`]), backing
/// off from 200 ms to 5 s, for at most [`OUTAGE_PATIENCE`]; any other result returns.
pub async fn through_outage<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        match f().await {
            Err(e) if e.is_unavailable() && started.elapsed() < OUTAGE_PATIENCE => {
                tracing::warn!(what, error = %e, retry_in = ?pause, "the database is unavailable; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            r => return r,
        }
    }
}
