//! Status changes made through unsubscribe links (the HTTP endpoint and the
//! mailto fallback): a light read for the pages and conditional writes, so
//! repeating an unsubscribe costs a read, never a write.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{now_text, Store};
use crate::domain::SubscriberStatus;

/// What an unsubscribe page needs to know about the link's subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSubscriber {
    pub id: i64,
    pub email: String,
    pub status: SubscriberStatus,
    pub unsubscribed_at: Option<String>,
}

fn link_from_row(row: sqlx::sqlite::SqliteRow) -> sqlx::Result<LinkSubscriber> {
    let status: String = row.try_get("status")?;
    Ok(LinkSubscriber {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        status: status
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        unsubscribed_at: row.try_get("unsubscribed_at")?,
    })
}

impl Store {
    /// The subscriber a link points at, without names or attributes.
    pub async fn link_subscriber(&self, id: i64) -> sqlx::Result<Option<LinkSubscriber>> {
        sqlx::query("SELECT id, email, status, unsubscribed_at FROM subscribers WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .map(link_from_row)
            .transpose()
    }

    /// The subscribers with these ids (those that exist, in no particular
    /// order), in one query: the HTTP side batches concurrent lookups. The
    /// rows come back aggregated into one JSON value, because sqlx's SQLite
    /// driver hands each result row across threads separately.
    pub async fn link_subscribers(&self, ids: &[i64]) -> sqlx::Result<Vec<LinkSubscriber>> {
        let ids = serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, email, status, unsubscribed_at)) \
             FROM subscribers WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .fetch_one(self.pool())
        .await?;
        let rows: Vec<(i64, String, String, Option<String>)> =
            serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(e.into()))?;
        rows.into_iter()
            .map(|(id, email, status, unsubscribed_at)| {
                Ok(LinkSubscriber {
                    id,
                    email,
                    status: status
                        .parse()
                        .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                    unsubscribed_at,
                })
            })
            .collect()
    }

    /// Move an `active` subscriber to `unsubscribed`, stamping
    /// `unsubscribed_at`. Anyone in another state is left alone (a bounced
    /// or complained address stays so). Returns the stamp when this call
    /// made the change.
    pub async fn unsubscribe_if_active(&self, id: i64) -> sqlx::Result<Option<String>> {
        let now = now_text();
        let done = sqlx::query(
            "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = ?1, updated_at = ?1 \
             WHERE id = ?2 AND status = 'active'",
        )
        .bind(&now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok((done.rows_affected() == 1).then_some(now))
    }

    /// [`Store::unsubscribe_if_active`] for many subscribers in one
    /// statement (one transaction). Returns the stamp and the ids it
    /// changed.
    pub async fn unsubscribe_all_if_active(&self, ids: &[i64]) -> sqlx::Result<(String, Vec<i64>)> {
        let now = now_text();
        let ids = serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let changed: Vec<i64> = sqlx::query_scalar(
            "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = ?1, updated_at = ?1 \
             WHERE id IN (SELECT value FROM json_each(?2)) AND status = 'active' \
             RETURNING id",
        )
        .bind(&now)
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        Ok((now, changed))
    }

    /// Re-activate a subscriber who is `unsubscribed` and did so at or after
    /// `unsubscribed_since`. Never touches a bounced or complained address.
    /// Returns whether it changed.
    pub async fn resubscribe_if_recent(
        &self,
        id: i64,
        unsubscribed_since: DateTime<Utc>,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE subscribers SET status = 'active', unsubscribed_at = NULL, updated_at = ?1 \
             WHERE id = ?2 AND status = 'unsubscribed' AND unsubscribed_at >= ?3",
        )
        .bind(now_text())
        .bind(id)
        .bind(stamp(unsubscribed_since))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A time in the stored stamp format (the one [`now_text`] writes), so text
/// comparison in SQL orders like time.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
