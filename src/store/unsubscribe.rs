//! Status changes made through unsubscribe links (the HTTP endpoint and the
//! mailto fallback): a light read for the pages and conditional writes, so
//! repeating an unsubscribe costs a read, never a write.

use chrono::{DateTime, Utc};

use super::{now_text, Store, StoreResult};
use crate::domain::{SubscriberEmail, SubscriberStatus, UnsubscribeSource};

/// What an unsubscribe page needs to know about the link's subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSubscriber {
    pub id: i64,
    pub email: SubscriberEmail,
    pub status: SubscriberStatus,
    pub unsubscribed_at: Option<String>,
    /// What moved the subscriber out of `active` (None while active, or for
    /// changes older than the record of sources).
    pub source: Option<UnsubscribeSource>,
}

fn decode<T: std::str::FromStr<Err = String>>(s: &str) -> sqlx::Result<T> {
    s.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))
}

/// Build a [`LinkSubscriber`] from its stored columns.
fn link(
    (id, email, status, unsubscribed_at, source): (
        i64,
        SubscriberEmail,
        String,
        Option<String>,
        Option<String>,
    ),
) -> sqlx::Result<LinkSubscriber> {
    Ok(LinkSubscriber {
        id,
        email,
        status: decode(&status)?,
        unsubscribed_at,
        source: source.as_deref().map(decode).transpose()?,
    })
}

impl Store {
    /// The subscriber a link points at, without names or attributes.
    pub async fn link_subscriber(&self, id: i64) -> StoreResult<Option<LinkSubscriber>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(
            "SELECT id, email, status, unsubscribed_at, unsubscribe_source FROM subscribers WHERE id = $1",
        )
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(link)
            .transpose()?)
        })
    }

    /// The subscribers with these ids (those that exist, in no particular
    /// order), in one query: the HTTP side batches concurrent lookups. The
    /// rows come back aggregated into one JSON value, because sqlx's SQLite
    /// driver hands each result row across threads separately.
    pub async fn link_subscribers(&self, ids: &[i64]) -> StoreResult<Vec<LinkSubscriber>> {
        super::with_db!(self, |pool, writer, d| {
            let ids = serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(e.into()))?;
            let json: String = sqlx::query_scalar(&format!(
            "SELECT {} FROM subscribers WHERE {}",
            d.pick(
                "json_group_array(json_array(id, email, status, unsubscribed_at, unsubscribe_source))",
                "COALESCE(json_agg(json_build_array(id, email, status, unsubscribed_at, unsubscribe_source)), '[]')::text"
            ),
            d.in_ids("id", 1)
        ))
        .bind(ids)
        .fetch_one(pool)
        .await?;
            type Row = (i64, String, String, Option<String>, Option<String>);
            let rows: Vec<Row> =
                serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(e.into()))?;
            rows.into_iter()
                .map(|(id, email, status, unsubscribed_at, source)| {
                    Ok(LinkSubscriber {
                        id,
                        email: SubscriberEmail::parse(&email)
                            .map_err(|e| sqlx::Error::Decode(e.into()))?,
                        status: decode(&status)?,
                        unsubscribed_at,
                        source: source.as_deref().map(decode).transpose()?,
                    })
                })
                .collect()
        })
    }

    /// Move an `active` subscriber to `unsubscribed`, stamping
    /// `unsubscribed_at` and where it came from. Anyone in another state is
    /// left alone (a bounced or complained address stays so). Returns the
    /// stamp when this call made the change.
    pub async fn unsubscribe_if_active(
        &self,
        id: i64,
        source: UnsubscribeSource,
    ) -> StoreResult<Option<String>> {
        let (stamp, changed) = self.unsubscribe_all_if_active(&[(id, source)]).await?;
        Ok((!changed.is_empty()).then_some(stamp))
    }

    /// [`Store::unsubscribe_if_active`] for many subscribers in one
    /// transaction (one statement per source). Returns the stamp and the
    /// ids it changed.
    pub async fn unsubscribe_all_if_active(
        &self,
        requests: &[(i64, UnsubscribeSource)],
    ) -> StoreResult<(String, Vec<i64>)> {
        super::with_db!(self, |pool, writer, d| {
            let now = now_text();
            let mut changed = Vec::new();
            let mut tx = writer.begin_with(d.begin()).await?;
            for source in UnsubscribeSource::ALL {
                let ids: Vec<i64> = requests
                    .iter()
                    .filter(|(_, s)| *s == source)
                    .map(|(id, _)| *id)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let ids = serde_json::to_string(&ids).map_err(|e| sqlx::Error::Encode(e.into()))?;
                changed.extend(
                    sqlx::query_scalar::<_, i64>(&format!(
                        "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = $1, \
                     updated_at = $1, unsubscribe_source = $3 \
                     WHERE {} AND status = 'active' \
                     RETURNING id",
                        d.in_ids("id", 2)
                    ))
                    .bind(&now)
                    .bind(ids)
                    .bind(source.as_str())
                    .fetch_all(&mut *tx)
                    .await?,
                );
            }
            tx.commit().await?;
            Ok((now, changed))
        })
    }

    /// Re-activate a subscriber who is `unsubscribed` through a link (one
    /// click, the page, the mailto fallback) at or after
    /// `unsubscribed_since`. Never touches an unsubscribe the operator or an
    /// import made, nor a bounced or complained address. Returns whether it
    /// changed.
    pub async fn resubscribe_if_recent(
        &self,
        id: i64,
        unsubscribed_since: DateTime<Utc>,
    ) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(&format!(
                "UPDATE subscribers SET status = 'active', unsubscribed_at = NULL, \
             unsubscribe_source = NULL, updated_at = $1 \
             WHERE id = $2 AND status = 'unsubscribed' AND unsubscribed_at >= $3 \
               AND {}",
                d.in_texts("unsubscribe_source", 4)
            ))
            .bind(now_text())
            .bind(id)
            .bind(stamp(unsubscribed_since))
            .bind(UnsubscribeSource::link_sources_json())
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

/// A time in the stored stamp format (the one [`now_text`] writes), so text
/// comparison in SQL orders like time.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
