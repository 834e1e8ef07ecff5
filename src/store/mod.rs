//! The only place with SQL. Owns the connection pool, the migrations and one
//! submodule per aggregate (subscribers, issues, the delivery ledger, leases,
//! test sends, bounces, ...). Callers see plain Rust and domain types and
//! [`StoreError`]; no database driver type leaves this module.

pub(crate) mod attributes;
pub(crate) mod bounces;
pub(crate) mod deliveries;
mod error;
pub mod issues;
mod leases;
pub(crate) mod meta;
pub(crate) mod schedule;
mod states;
pub mod subscribers;
mod test_sends;
pub(crate) mod unsubscribe;
mod values;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::config::DatabaseSettings;

pub use error::{DatabaseError, StoreError, StoreResult};

/// Migrations embedded at compile time from `migrations/`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on herald's SQLite database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Write transactions of this process take turns here first. SQLite
    /// lets one writer in at a time anyway, but a writer it turns away
    /// sleeps in its busy handler (a millisecond at least) while the
    /// engine's claimer and recorder need the lock thousands of times a
    /// second; queued here, the next one starts the moment the lock is
    /// free. Other processes still meet the busy timeout.
    writes: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction holding this process's turn to write (see
/// [`Store::writes`]); reads and writes through it like the transaction.
struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }

    async fn rollback(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl Store {
    /// Open (creating if needed) and migrate the database. Idempotent. A
    /// new database file is created owner-only (0600), and SQLite gives its
    /// -wal and -shm files the same mode.
    pub async fn open(settings: &DatabaseSettings) -> anyhow::Result<Store> {
        let options = SqliteConnectOptions::from_str(&settings.url)
            .map_err(|e| crate::bad_input!("database.url `{}`: {e}", settings.url))?;
        let file = options.get_filename();
        if file != std::path::Path::new(":memory:") {
            crate::private_fs::create_file_if_missing(file)
                .with_context(|| format!("creating database {}", file.display()))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(settings.busy_timeout_ms));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file does not go stale the way a network connection
            // does: no `SELECT 1` round trip before every use.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("opening database {}", settings.url))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating database {}", settings.url))?;
        Ok(Store {
            pool,
            writes: Arc::default(),
        })
    }

    /// The connection pool: only the store's own modules reach the database.
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Start a write transaction, after this process's turn to write, that
    /// takes SQLite's write lock up front, so two writers never deadlock
    /// upgrading a read lock.
    async fn begin_write(&self) -> sqlx::Result<WriteTx> {
        let turn = self.writes.clone().lock_owned().await;
        Ok(WriteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _turn: turn,
        })
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Current UTC time in the format the schema stores (`…T…Z`, milliseconds).
pub fn now_text() -> String {
    format_time(chrono::Utc::now())
}

/// A UTC time in the stored text form; text order is time order.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parse a stored time.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}
