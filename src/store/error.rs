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
        let primary = match &e {
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff),
            _ => None,
        };
        let wrapped = DatabaseError(e);
        match primary {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => StoreError::Busy(wrapped),
            Some(SQLITE_FULL) => StoreError::Full(wrapped),
            Some(SQLITE_CONSTRAINT) => StoreError::Conflict(wrapped),
            _ if matches!(wrapped.0, sqlx::Error::PoolTimedOut) => StoreError::Busy(wrapped),
            _ => StoreError::Other(wrapped),
        }
    }
}
