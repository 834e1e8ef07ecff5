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
    /// The process's one connection for write transactions (the claimer,
    /// the recorder, imports, unsubscribes). Writers queue for it in the
    /// process instead of meeting SQLite's lock and sleeping in its busy
    /// handler (a millisecond at least), and its page cache stays warm: a
    /// commit from another connection would make SQLite drop it. Other
    /// processes still meet the busy timeout.
    writer: SqlitePool,
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
        // A local file does not go stale the way a network connection does:
        // no `SELECT 1` round trip before every use.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening database {}", settings.url))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating database {}", settings.url))?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Store { pool, writer })
    }

    /// The connection pool: only the store's own modules reach the database.
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Start a write transaction on the writer connection (see
    /// [`Store::writer`]) that takes SQLite's write lock up front, so two writers never deadlock
    /// upgrading a read lock.
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
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
