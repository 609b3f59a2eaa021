//! The connection and the schema check.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

use crate::error::{Error, Result};
use crate::SCHEMA_VERSION;

/// The embedded default: a SQLite file.
pub const DEFAULT_SQLITE_URL: &str = "sqlite:///var/lib/cinder-rs/cinder.sqlite?mode=rwc";

/// Switches SQLite's memory statistics off, once, before its first connection.
///
/// With them on (the bundled build's default), every allocation SQLite makes takes one
/// process-wide mutex, and concurrent listings on the pool's connections queue on it:
/// under 10 concurrent lists a sixth of the API's CPU went to waking its waiters.
/// SQLite's own documentation recommends them off for speed; nothing here reads them
/// (`sqlite3_memory_used`, a soft heap limit).
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is safe to call before sqlite3_initialize and from one
        // thread at a time (the Once); once SQLite is initialized it returns
        // SQLITE_MISUSE and changes nothing, which we only log.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialized: memory statistics stay on"
            );
        }
    });
}

/// A pooled connection to the database.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) conn: DatabaseConnection,
    /// Whether listings on SQLite are read as one folded row (`json_rows`).
    pub(crate) fold: bool,
    pub(crate) folds: std::sync::Arc<crate::json_rows::FoldCounters>,
}

impl Db {
    /// Connects to `url` (`sqlite://PATH?mode=rwc`, `postgres://...`, `mysql://...`).
    /// Creates the parent directory of a SQLite file.
    pub async fn connect(url: &str) -> Result<Db> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() && path != ":memory:" {
                    let _ = std::fs::create_dir_all(dir);
                }
            }
        }
        if url.starts_with("sqlite:") {
            sqlite_without_memory_statistics();
        }
        let mut opts = ConnectOptions::new(url.to_string());
        opts.max_connections(16)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30))
            .sqlx_logging(false);
        let conn = Database::connect(opts).await?;
        if conn.get_database_backend() == DbBackend::Sqlite {
            // Concurrent writers wait for each other instead of failing at once.
            conn.execute_unprepared("PRAGMA busy_timeout = 10000")
                .await?;
            // Write-ahead logging (kept in the file): readers no longer block the
            // writer nor the writer the readers. sqlx leaves SQLite's rollback journal,
            // under which every status poll stalls every claim and status update.
            conn.execute_unprepared("PRAGMA journal_mode = WAL").await?;
        }
        Ok(Db {
            conn,
            fold: true,
            folds: Default::default(),
        })
    }

    /// This database, reading listings row by row on SQLite too, as PostgreSQL and
    /// MySQL do: the tests compare it with the folded reads on the same data.
    pub fn reading_row_by_row(&self) -> Db {
        Db {
            conn: self.conn.clone(),
            fold: false,
            folds: Default::default(),
        }
    }

    /// How many listings were read as one folded SQLite row, and how many of those fell
    /// back to reading row by row because the folded text did not decode.
    pub fn folded_reads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.folds.reads.load(Relaxed),
            self.folds.fallbacks.load(Relaxed),
        )
    }

    /// Connects and refuses a database with pending migrations: how services start.
    pub async fn connect_checked(url: &str) -> Result<Db> {
        let db = Db::connect(url).await?;
        db.check_schema().await?;
        Ok(db)
    }

    /// The underlying connection (for migrations and tests).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The newest applied migration, or `None` on an empty database.
    pub async fn schema_version(&self) -> Result<Option<String>> {
        let backend = self.conn.get_database_backend();
        let sql = "SELECT version FROM seaql_migrations ORDER BY version DESC";
        match self
            .conn
            .query_one_raw(Statement::from_string(backend, sql))
            .await
        {
            Ok(Some(row)) => Ok(Some(row.try_get::<String>("", "version")?)),
            Ok(None) => Ok(None),
            // No migration table: nothing applied yet.
            Err(_) => Ok(None),
        }
    }

    /// Refuses a database that is not at [`SCHEMA_VERSION`]: services call this at start.
    pub async fn check_schema(&self) -> Result<()> {
        match self.schema_version().await? {
            Some(v) if v == SCHEMA_VERSION => Ok(()),
            Some(v) => Err(Error::SchemaNotReady {
                expected: SCHEMA_VERSION,
                found: v,
            }),
            None => Err(Error::SchemaNotReady {
                expected: SCHEMA_VERSION,
                found: "an empty database".into(),
            }),
        }
    }
}

/// Evaluates `$e` (an awaited `Result`) again, a few times, while it fails with a
/// transient conflict (SQLite busy, deadlock, serialization failure).
macro_rules! retry_transient {
    ($e:expr) => {{
        let mut attempt = 0u64;
        loop {
            match $e {
                Err(e) if e.is_retryable() && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
                }
                r => break r,
            }
        }
    }};
}
pub(crate) use retry_transient;
