//! The `senders` table: the processes working on one issue's live send at
//! once (PostgreSQL), each renewing its registration while it works. A
//! registration that expired marks a sender presumed dead; the rows it
//! had claimed are then resolved by whoever recovers them.

use super::{Store, StoreResult};

/// What renewing a registration found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// The registration had lapsed (or was removed) before this renewal:
    /// others may have resolved this sender's claimed rows meanwhile.
    pub lapsed: bool,
    /// Live registrations on the issue now, this one included.
    pub live: i64,
}

impl Store {
    /// Register `holder` as a sender of `issue_id` for `lease`, or renew
    /// its registration (`first` false), and count the live senders. Times
    /// come from `now` on SQLite (one host) and from the database's clock on
    /// PostgreSQL, so hosts whose clocks differ still agree on who is live.
    pub async fn sender_beat(
        &self,
        issue_id: i64,
        holder: &str,
        now: chrono::DateTime<chrono::Utc>,
        lease: std::time::Duration,
        first: bool,
    ) -> StoreResult<Beat> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            let (now, expires_at) = match d {
                super::Dialect::Sqlite => (
                    super::format_time(now),
                    super::format_time(now + chrono::Duration::from_std(lease).unwrap_or_default()),
                ),
                super::Dialect::Postgres => {
                    sqlx::query_as(
                        "SELECT herald_now(), to_char((now() + make_interval(secs => $1)) AT TIME ZONE 'UTC', \
                         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                    )
                    .bind(lease.as_secs_f64())
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            let (now, expires_at) = (now.as_str(), expires_at.as_str());
            let previous: Option<String> = sqlx::query_scalar(
                "SELECT expires_at FROM senders WHERE issue_id = $1 AND holder = $2",
            )
            .bind(issue_id)
            .bind(holder)
            .fetch_optional(&mut *tx)
            .await?;
            let lapsed = !first && previous.as_deref().map_or(true, |p| p <= now);
            sqlx::query(
                "INSERT INTO senders (issue_id, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (issue_id, holder) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(issue_id)
            .bind(holder)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            let live: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM senders WHERE issue_id = $1 AND expires_at > $2",
            )
            .bind(issue_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Beat { lapsed, live })
        })
    }

    /// Remove a sender's registration (it stopped, or it is known dead).
    pub async fn remove_sender(&self, issue_id: i64, holder: &str) -> StoreResult<()> {
        super::with_db!(self, |pool, writer, d| {
            sqlx::query("DELETE FROM senders WHERE issue_id = $1 AND holder = $2")
                .bind(issue_id)
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The holders registered on an issue's send, lapsed or not.
    pub async fn senders(&self, issue_id: i64) -> StoreResult<Vec<String>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(
                sqlx::query_scalar(
                    "SELECT holder FROM senders WHERE issue_id = $1 ORDER BY holder",
                )
                .bind(issue_id)
                .fetch_all(pool)
                .await?,
            )
        })
    }

    /// Rows of the issue that another sender has claimed and not yet
    /// resolved.
    pub async fn claimed_by_others(&self, issue_id: i64, holder: &str) -> StoreResult<i64> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM deliveries WHERE issue_id = $1 AND state = 'claimed' \
                 AND claimed_by IS DISTINCT FROM $2",
            )
            .bind(issue_id)
            .bind(holder)
            .fetch_one(pool)
            .await?)
        })
    }
}
