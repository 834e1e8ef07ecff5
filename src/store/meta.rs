//! `app_meta`: installation-wide values generated once.

use super::{Store, StoreResult};

impl Store {
    pub async fn meta_get(&self, key: &str) -> StoreResult<Option<String>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(
                sqlx::query_scalar("SELECT value FROM app_meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Store `value` under `key` unless a value is already there; return the
    /// stored value either way (so concurrent first runs agree).
    pub async fn meta_get_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        super::with_db!(self, |pool, writer, d| {
            sqlx::query(
                "INSERT INTO app_meta (key, value) VALUES ($1, $2) ON CONFLICT(key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM app_meta WHERE key = $1")
                    .bind(key)
                    .fetch_one(pool)
                    .await?,
            )
        })
    }
}
