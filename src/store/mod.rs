//! The only place with SQL. Owns the connection pool, the migrations and one
//! submodule per aggregate (subscribers, issues, the delivery ledger, leases,
//! test sends, bounces, ...). Callers see plain Rust and domain types and
//! [`StoreError`]; no database driver type leaves this module.

pub(crate) mod attributes;
pub(crate) mod bounces;
pub mod copy;
pub(crate) mod deliveries;
mod error;
pub mod issues;
mod leases;
pub(crate) mod meta;
pub(crate) mod schedule;
pub mod senders;
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::config::DatabaseSettings;

pub use error::{DatabaseError, StoreError, StoreResult};

/// SQLite migrations, embedded at compile time from `migrations/`.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
/// PostgreSQL migrations, from `migrations-postgres/`: the same schema.
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-postgres");

/// A handle on herald's database: a SQLite file, or a PostgreSQL database
/// shared by several processes and hosts.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite {
        /// Readers.
        pool: SqlitePool,
        /// The process's one connection for write transactions (the
        /// claimer, the recorder, imports, unsubscribes). Writers queue for
        /// it in the process instead of meeting SQLite's lock and sleeping
        /// in its busy handler (a millisecond at least), and its page cache
        /// stays warm: a commit from another connection would make SQLite
        /// drop it. Other processes still meet the busy timeout.
        writer: SqlitePool,
    },
    Postgres {
        /// Readers and writers alike: PostgreSQL locks rows, not the file.
        pool: PgPool,
    },
}

/// Which SQL dialect a statement is written for, where the two differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Pick the statement (or fragment) written for this dialect.
    pub(crate) fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }

    /// The statement that begins a write transaction: on SQLite it takes
    /// the write lock up front, so two writers never deadlock upgrading a
    /// read lock; on PostgreSQL an ordinary READ COMMITTED transaction
    /// whose statements lock the rows they change.
    pub(crate) fn begin(self) -> &'static str {
        self.pick("BEGIN IMMEDIATE", "BEGIN")
    }

    /// `COL` is one of the integers in the JSON array bound as parameter
    /// `$n` (a whole list travels as one parameter). On PostgreSQL the list
    /// becomes an array first, so the planner looks each id up in the index
    /// whatever it estimates for the list.
    pub(crate) fn in_ids(self, col: &str, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("{col} IN (SELECT value FROM json_each(${n}))"),
            Dialect::Postgres => format!(
                "{col} = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text(${n}::jsonb)))"
            ),
        }
    }

    /// `COL` is one of the strings in the JSON array bound as `$n`.
    pub(crate) fn in_texts(self, col: &str, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("{col} IN (SELECT value FROM json_each(${n}))"),
            Dialect::Postgres => format!(
                "{col} = ANY(ARRAY(SELECT value FROM jsonb_array_elements_text(${n}::jsonb)))"
            ),
        }
    }

    /// A text parameter compared with `subscribers.email` (case-insensitive
    /// on both: NOCASE there, citext here).
    pub(crate) fn email_param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("${n}"),
            Dialect::Postgres => format!("${n}::citext"),
        }
    }
}

/// Run `$body` with `$pool` bound to the store's pool for reads, `$writer`
/// to the pool write transactions begin on (`$writer.begin_with(d.begin())`)
/// and `$d` to the [`Dialect`]. The body is compiled once per backend, so
/// one statement text serves both where the SQL is the same.
macro_rules! with_db {
    ($store:expr, |$pool:ident, $writer:ident, $d:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite {
                pool: $pool,
                writer: $writer,
            } => {
                #[allow(unused_variables)]
                let ($pool, $writer, $d) = ($pool, $writer, $crate::store::Dialect::Sqlite);
                $body
            }
            $crate::store::Backend::Postgres { pool: $pool } => {
                #[allow(unused_variables)]
                let ($pool, $writer, $d) = ($pool, $pool, $crate::store::Dialect::Postgres);
                $body
            }
        }
    };
}

pub(crate) use with_db;

pub use crate::config::is_postgres_url;

impl Store {
    /// Open (creating if needed) and migrate the database. Idempotent. A
    /// new database file is created owner-only (0600), and SQLite gives its
    /// -wal and -shm files the same mode. A PostgreSQL database must exist;
    /// `herald init` creates herald's tables in it.
    pub async fn open(settings: &DatabaseSettings) -> anyhow::Result<Store> {
        if is_postgres_url(&settings.url) {
            let store = Store::open_postgres(settings, true).await?;
            return Ok(store.expect("created when missing"));
        }
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
        SQLITE_MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating database {}", settings.url))?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Store {
            backend: Backend::Sqlite { pool, writer },
        })
    }

    /// Open and migrate a database that herald has initialised: `None` for
    /// a PostgreSQL database without herald's tables (nothing is created
    /// there). A SQLite file's existence is the caller's check.
    pub async fn open_existing(settings: &DatabaseSettings) -> anyhow::Result<Option<Store>> {
        if is_postgres_url(&settings.url) {
            Store::open_postgres(settings, false).await
        } else {
            Store::open(settings).await.map(Some)
        }
    }

    /// `None` when `create` is false and the database has no herald tables.
    async fn open_postgres(
        settings: &DatabaseSettings,
        create: bool,
    ) -> anyhow::Result<Option<Store>> {
        let shown = redact_url(&settings.url);
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|e| crate::bad_input!("database.url `{shown}`: {e}"))?
            .application_name("herald");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_millis(settings.busy_timeout_ms.max(1000)))
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to database {shown}"))?;
        if !create {
            let found: bool = sqlx::query_scalar("SELECT to_regclass('subscribers') IS NOT NULL")
                .fetch_one(&pool)
                .await
                .with_context(|| format!("reading database {shown}"))?;
            if !found {
                pool.close().await;
                return Ok(None);
            }
        }
        // Concurrent first runs on several hosts: the migrator takes an
        // advisory lock, so one applies the migrations and the others wait.
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating database {shown}"))?;
        Ok(Some(Store {
            backend: Backend::Postgres { pool },
        }))
    }

    /// The SQLite reader and writer pools (unit tests of SQLite's own
    /// failure modes).
    #[cfg(test)]
    fn sqlite_pools(&self) -> (&SqlitePool, &SqlitePool) {
        match &self.backend {
            Backend::Sqlite { pool, writer } => (pool, writer),
            Backend::Postgres { .. } => panic!("not a SQLite store"),
        }
    }

    /// Can several processes work on one live send at once? (PostgreSQL:
    /// rows are claimed with SKIP LOCKED and senders register; SQLite: one
    /// sender per send, under an exclusive lease.)
    pub fn shares_sends(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// Which backend this store is on, for messages and `/healthz`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> bool {
        with_db!(self, |pool, _writer, _d| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { pool, writer } => {
                pool.close().await;
                writer.close().await;
            }
            Backend::Postgres { pool } => pool.close().await,
        }
    }
}

/// A database URL with any password replaced (in the user part or as a
/// `password=` parameter), for messages and logs. A URL that does not parse
/// is not shown at all.
pub fn redact_url(url: &str) -> String {
    if !is_postgres_url(url) {
        // A SQLite URL names a file; it holds no credentials.
        return url.to_string();
    }
    let Ok(mut u) = url::Url::parse(url) else {
        return "(a database URL that does not parse)".into();
    };
    if u.password().is_none() && !u.query_pairs().any(|(k, _)| k == "password") {
        return url.to_string();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
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
