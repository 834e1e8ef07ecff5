//! What a store call can fail with, in the terms callers branch on (busy,
//! a rule refused the write, full, anything else), whatever database is
//! behind the store. The database's own error stays inside as the message
//! and source, so what an operator reads is unchanged.

/// A failed store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer held the database past the busy timeout, or no
    /// connection came free in time: retrying later may succeed.
    #[error(transparent)]
    Busy(DatabaseError),
    /// A uniqueness, foreign-key, NOT NULL or CHECK rule refused the write.
    #[error(transparent)]
    Conflict(DatabaseError),
    /// No room to write: the disk, or a size cap on the database.
    #[error(transparent)]
    Full(DatabaseError),
    /// Anything else (I/O, a stored value that does not decode, a closed
    /// pool, ...).
    #[error(transparent)]
    Other(DatabaseError),
}

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The database driver's error, opaque outside the store: its message and
/// source chain are the driver's own.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DatabaseError(sqlx::Error);

// SQLite's primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_FULL: i64 = 13;
const SQLITE_CONSTRAINT: i64 = 19;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        let kind = match &e {
            sqlx::Error::Database(db) => db.code().and_then(|code| classify(&code)),
            sqlx::Error::PoolTimedOut => Some(Kind::Busy),
            _ => None,
        };
        let wrapped = DatabaseError(e);
        match kind {
            Some(Kind::Busy) => StoreError::Busy(wrapped),
            Some(Kind::Full) => StoreError::Full(wrapped),
            Some(Kind::Conflict) => StoreError::Conflict(wrapped),
            None => StoreError::Other(wrapped),
        }
    }
}

enum Kind {
    Busy,
    Full,
    Conflict,
}

/// A driver's error code: SQLite's numeric (extended) result code, or
/// PostgreSQL's five-character SQLSTATE.
fn classify(code: &str) -> Option<Kind> {
    if let Ok(n) = code.parse::<i64>() {
        return match n & 0xff {
            SQLITE_BUSY | SQLITE_LOCKED => Some(Kind::Busy),
            SQLITE_FULL => Some(Kind::Full),
            SQLITE_CONSTRAINT => Some(Kind::Conflict),
            _ => None,
        };
    }
    match code {
        // serialization_failure, deadlock_detected, lock_not_available,
        // too_many_connections, cannot_connect_now
        "40001" | "40P01" | "55P03" | "53300" | "57P03" => Some(Kind::Busy),
        // disk_full, insufficient_resources, out_of_memory
        "53100" | "53000" | "53200" => Some(Kind::Full),
        // integrity_constraint_violation and its subclasses
        c if c.starts_with("23") => Some(Kind::Conflict),
        _ => None,
    }
}
