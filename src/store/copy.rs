//! `herald db copy`: an installation's SQLite database, copied whole into an
//! empty PostgreSQL database (subscribers, issues, the delivery ledger,
//! schedule, keys, test sends, bounces), in one read snapshot of the source
//! and one transaction on the target, so the target gets all of it or
//! nothing. Rows travel in pages as JSON and land through
//! `jsonb_populate_recordset`, which maps each key to its column's type.

use sqlx::Acquire;

use super::{Backend, StoreError};
use crate::store::Store;

/// Tables in the order their references need, with the column each is
/// paged by (`None`: small, copied at once) and rows per page.
const TABLES: [(&str, Option<&str>, i64); 6] = [
    ("app_meta", None, 0),
    ("subscribers", Some("id"), 5000),
    ("issues", Some("id"), 100),
    ("deliveries", Some("id"), 5000),
    ("test_sends", Some("id"), 2000),
    ("bounces", Some("id"), 200),
];

/// Tables whose ids come from an identity sequence on PostgreSQL.
const WITH_IDENTITY: [&str; 5] = [
    "subscribers",
    "issues",
    "deliveries",
    "test_sends",
    "bounces",
];

/// Rows per table, in the source and in the target after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub source: i64,
    pub target: i64,
}

/// Why a copy could not start.
#[derive(Debug, thiserror::Error)]
pub enum CopyRefused {
    #[error("the source database must be SQLite and the target PostgreSQL")]
    Backends,
    #[error("the target database is not empty: table `{table}` holds {rows} row(s)")]
    TargetNotEmpty { table: &'static str, rows: i64 },
    #[error("a live send is running on the source (lease `{name}` held by {holder} until {until}); stop it first")]
    SendRunning {
        name: String,
        holder: String,
        until: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copy `source` (SQLite) into `target` (PostgreSQL, migrated and empty).
/// `progress` is told each table's name and the rows copied so far.
pub async fn copy_sqlite_to_postgres(
    source: &Store,
    target: &Store,
    now: &str,
    mut progress: impl FnMut(&str, i64),
) -> Result<Vec<Copied>, CopyRefused> {
    let (Backend::Sqlite { pool: src, .. }, Backend::Postgres { pool: dst }) =
        (&source.backend, &target.backend)
    else {
        return Err(CopyRefused::Backends);
    };
    // One read transaction: every table as of the same moment.
    let mut read = src.acquire().await.map_err(StoreError::from)?;
    let mut snapshot = read.begin().await.map_err(StoreError::from)?;
    let running: Option<(String, String, String)> = sqlx::query_as(
        "SELECT name, holder, expires_at FROM leases WHERE name LIKE 'send:%' AND expires_at > $1",
    )
    .bind(now)
    .fetch_optional(&mut *snapshot)
    .await
    .map_err(StoreError::from)?;
    if let Some((name, holder, until)) = running {
        return Err(CopyRefused::SendRunning {
            name,
            holder,
            until,
        });
    }
    for (table, _, _) in TABLES {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(dst)
            .await
            .map_err(StoreError::from)?;
        if rows > 0 {
            return Err(CopyRefused::TargetNotEmpty { table, rows });
        }
    }
    let mut write = dst.begin().await.map_err(StoreError::from)?;
    for (table, key, page) in TABLES {
        let columns: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .fetch_all(&mut *snapshot)
        .await
        .map_err(StoreError::from)?;
        // JSON columns travel as JSON, not as strings holding JSON.
        let object = columns
            .iter()
            .map(|c| match (table, c.as_str()) {
                ("subscribers", "attributes") => format!("'{c}', json({c})"),
                // PostgreSQL's text cannot hold NUL (a bounce stored before
                // it was kept out may).
                ("bounces", "raw" | "diagnostic") => {
                    format!("'{c}', replace({c}, char(0), char(65533))")
                }
                _ => format!("'{c}', {c}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let list = columns.join(", ");
        let insert = format!(
            "INSERT INTO {table} ({list}) SELECT {list} FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb)"
        );
        let mut copied = 0i64;
        let mut after = i64::MIN;
        let select = match key {
            Some(key) => format!(
                "SELECT json_group_array(json_object({object})), MAX({key}) FROM \
                 (SELECT * FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT $2)"
            ),
            None => format!("SELECT json_group_array(json_object({object})), NULL FROM {table}"),
        };
        loop {
            let query = sqlx::query_as(&select);
            let query = match key {
                Some(_) => query.bind(after).bind(page),
                None => query,
            };
            let (rows, last): (String, Option<i64>) = query
                .fetch_one(&mut *snapshot)
                .await
                .map_err(StoreError::from)?;
            let inserted = sqlx::query(&insert)
                .bind(&rows)
                .execute(&mut *write)
                .await
                .map_err(StoreError::from)?
                .rows_affected() as i64;
            copied += inserted;
            progress(table, copied);
            match last {
                Some(last) if inserted > 0 => after = last,
                _ => break,
            }
        }
    }
    for table in WITH_IDENTITY {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
        ))
        .execute(&mut *write)
        .await
        .map_err(StoreError::from)?;
    }
    // Verify inside the transaction: a mismatch rolls the whole copy back.
    let mut out = Vec::with_capacity(TABLES.len());
    for (table, _, _) in TABLES {
        let source_rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *snapshot)
            .await
            .map_err(StoreError::from)?;
        let target_rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *write)
            .await
            .map_err(StoreError::from)?;
        out.push(Copied {
            table,
            source: source_rows,
            target: target_rows,
        });
    }
    if out.iter().any(|c| c.source != c.target) {
        write.rollback().await.map_err(StoreError::from)?;
        return Ok(out);
    }
    write.commit().await.map_err(StoreError::from)?;
    snapshot.rollback().await.map_err(StoreError::from)?;
    Ok(out)
}
