//! The connection and the schema check.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

use crate::error::{Error, Result};
use crate::SCHEMA_VERSION;

/// The embedded default: a SQLite file.
pub const DEFAULT_SQLITE_URL: &str = "sqlite:///var/lib/cinder-rs/cinder.sqlite?mode=rwc";

/// A pooled connection to the database.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) conn: DatabaseConnection,
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
        Ok(Db { conn })
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
