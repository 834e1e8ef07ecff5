//! The `test_sends` table: a record of each test copy sent (never part of
//! the live ledger).

use super::{Store, StoreResult};

impl Store {
    /// Record one test send (never part of the live ledger).
    pub async fn record_test_send(
        &self,
        slug: &str,
        address: &str,
        message_id: &str,
        outcome: &str,
        reply: &str,
    ) -> StoreResult<()> {
        super::with_db!(self, |pool, writer, d| {
            sqlx::query("INSERT INTO test_sends (issue_slug, address, message_id, outcome, reply) VALUES ($1, $2, $3, $4, $5)")
            .bind(slug)
            .bind(address)
            .bind(message_id)
            .bind(outcome)
            .bind(reply)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}
