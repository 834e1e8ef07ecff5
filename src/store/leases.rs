//! The `leases` table: named leases with a holder and an expiry, which keep
//! two processes from running the same send (or `run-due`) at once.

use super::{Store, StoreResult};

impl Store {
    /// Take or renew the lease `name` for `holder` until `expires_at`.
    /// Succeeds when the lease is free, expired, or already ours.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: &str,
        expires_at: &str,
    ) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $4 \
             WHERE leases.holder = $2 OR leases.expires_at <= $3",
            )
            .bind(name)
            .bind(holder)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Take over a lease from `old_holder` (known to be dead), only if it
    /// still holds it.
    pub async fn replace_lease(
        &self,
        name: &str,
        old_holder: &str,
        holder: &str,
        expires_at: &str,
    ) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(
                "UPDATE leases SET holder = $3, expires_at = $4 WHERE name = $1 AND holder = $2",
            )
            .bind(name)
            .bind(old_holder)
            .bind(holder)
            .bind(expires_at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Give a lease up (only if we still hold it).
    pub async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        super::with_db!(self, |pool, writer, d| {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Who holds a lease now, if anyone (expired or not).
    pub async fn lease_holder(&self, name: &str) -> StoreResult<Option<(String, String)>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(
                sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
                    .bind(name)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }
}
