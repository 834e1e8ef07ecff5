//! The `subscribers` table: add, batch upsert for imports, status changes,
//! listing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{now_text, Store, StoreResult};
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus, UnsubscribeSource};

/// A stored subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct Subscriber {
    pub id: i64,
    pub email: SubscriberEmail,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
    pub unsubscribed_at: Option<String>,
}

/// The columns a [`SubscriberRow`] reads, in each dialect (PostgreSQL keeps
/// attributes as jsonb and hands them over as text).
pub(crate) fn subscriber_columns(d: super::Dialect) -> &'static str {
    d.pick(
        "id, email, name, status, attributes, created_at, updated_at, unsubscribed_at",
        "id, email, name, status, attributes::text AS attributes, created_at, updated_at, unsubscribed_at",
    )
}

/// A `subscribers` row as stored, before its status and attributes parse.
#[derive(sqlx::FromRow)]
pub(crate) struct SubscriberRow {
    id: i64,
    email: SubscriberEmail,
    name: Option<String>,
    status: String,
    attributes: String,
    created_at: String,
    updated_at: String,
    unsubscribed_at: Option<String>,
}

impl SubscriberRow {
    pub(crate) fn parse(self) -> sqlx::Result<Subscriber> {
        Ok(Subscriber {
            id: self.id,
            email: self.email,
            name: self.name,
            status: self
                .status
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            attributes: serde_json::from_str(&self.attributes)
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            unsubscribed_at: self.unsubscribed_at,
        })
    }
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    Added(i64),
    /// Already present and active; the name was updated if one was given.
    AlreadyActive(i64),
    /// Present but not active; left as it is.
    NotActive(i64, SubscriberStatus),
    /// Was not active and has been re-activated on request.
    Reactivated(i64),
}

/// One validated row of an import.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub email: SubscriberEmail,
    pub name: Option<SubscriberName>,
    /// `Active` for new rows; a non-active status is applied to existing
    /// active rows too (an import can record an unsubscribe, never undo one).
    pub status: SubscriberStatus,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Counts for one import batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows whose address appeared earlier in the same import.
    pub merged: u64,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: UpsertCounts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.merged += o.merged;
    }
}

/// One import row as the batch JSON carries it: email, name, status,
/// attributes.
type ImportJsonRow<'a> = (
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a serde_json::Map<String, serde_json::Value>,
);

/// Rows per INSERT statement in an import.
pub const IMPORT_BATCH_ROWS: usize = 1000;

impl Store {
    pub async fn add_subscriber(
        &self,
        email: &SubscriberEmail,
        name: Option<&SubscriberName>,
        reactivate: bool,
    ) -> StoreResult<AddOutcome> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            let existing: Option<(i64, String)> = sqlx::query_as(&format!(
                "SELECT id, status FROM subscribers WHERE email = {}",
                d.email_param(1)
            ))
            .bind(email.as_ref())
            .fetch_optional(&mut *tx)
            .await?;
            let now = now_text();
            let outcome = match existing {
                None => {
                    let id: i64 = sqlx::query_scalar(
                    "INSERT INTO subscribers (email, name, created_at, updated_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(email.as_ref())
                .bind(name.map(AsRef::as_ref))
                .bind(&now)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?;
                    AddOutcome::Added(id)
                }
                Some((id, status)) => {
                    let status: SubscriberStatus = status
                        .parse()
                        .map_err(|e: String| sqlx::Error::Decode(e.into()))?;
                    if status != SubscriberStatus::Active && !reactivate {
                        AddOutcome::NotActive(id, status)
                    } else {
                        sqlx::query(
                        "UPDATE subscribers SET name = COALESCE($1, name), status = 'active', \
                         unsubscribed_at = NULL, unsubscribe_source = NULL, updated_at = $2 WHERE id = $3",
                    )
                    .bind(name.map(AsRef::as_ref))
                    .bind(&now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                        if status == SubscriberStatus::Active {
                            AddOutcome::AlreadyActive(id)
                        } else {
                            AddOutcome::Reactivated(id)
                        }
                    }
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    pub async fn find_subscriber(
        &self,
        email: &SubscriberEmail,
    ) -> StoreResult<Option<Subscriber>> {
        super::with_db!(self, |pool, writer, d| {
            let sql = format!(
                "SELECT {} FROM subscribers WHERE email = {}",
                subscriber_columns(d),
                d.email_param(1)
            );
            let row: Option<SubscriberRow> = sqlx::query_as(&sql)
                .bind(email.as_ref())
                .fetch_optional(pool)
                .await?;
            Ok(row.map(SubscriberRow::parse).transpose()?)
        })
    }

    /// Set a subscriber's status by id, recording what made the change
    /// (`source`; cleared when moving back to `active`). Moving to
    /// `unsubscribed` stamps `unsubscribed_at` (once). Returns whether the
    /// subscriber exists.
    pub async fn set_subscriber_status(
        &self,
        id: i64,
        status: SubscriberStatus,
        source: UnsubscribeSource,
    ) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let now = now_text();
            let done = sqlx::query(
                "UPDATE subscribers SET \
               unsubscribed_at = CASE WHEN $1 = 'unsubscribed' THEN COALESCE(unsubscribed_at, $2) \
                                      WHEN $1 = 'active' THEN NULL ELSE unsubscribed_at END, \
               unsubscribe_source = CASE WHEN $1 = 'active' THEN NULL \
                                         WHEN status = $1 THEN unsubscribe_source ELSE $4 END, \
               updated_at = CASE WHEN status = $1 THEN updated_at ELSE $2 END, \
               status = $1 \
             WHERE id = $3",
            )
            .bind(status.as_str())
            .bind(&now)
            .bind(id)
            .bind(source.as_str())
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Unsubscribe by address. `None` if there is no such subscriber,
    /// otherwise the status it had before.
    pub async fn unsubscribe_email(
        &self,
        email: &SubscriberEmail,
    ) -> StoreResult<Option<SubscriberStatus>> {
        let Some(sub) = self.find_subscriber(email).await? else {
            return Ok(None);
        };
        if sub.status == SubscriberStatus::Active {
            self.set_subscriber_status(
                sub.id,
                SubscriberStatus::Unsubscribed,
                UnsubscribeSource::Operator,
            )
            .await?;
        }
        Ok(Some(sub.status))
    }

    /// Record an address that is not a subscriber as `unsubscribed` (a
    /// suppression entry, e.g. loaded before the audience), so no import
    /// or `add` without `--reactivate` makes it active. False when the
    /// address exists meanwhile (nothing changed).
    pub async fn suppress_email(&self, email: &SubscriberEmail) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let now = now_text();
            let done = sqlx::query(
                "INSERT INTO subscribers (email, status, created_at, updated_at, unsubscribed_at) \
             VALUES ($1, 'unsubscribed', $2, $2, $2) ON CONFLICT (email) DO NOTHING",
            )
            .bind(email.as_ref())
            .bind(&now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// One page of subscribers with id above `after`, in id order,
    /// optionally of one status. Callers page through so memory stays flat
    /// and no read stays open across the whole listing.
    pub async fn subscribers_page(
        &self,
        status: Option<SubscriberStatus>,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<Subscriber>> {
        super::with_db!(self, |pool, writer, d| {
            let sql = format!(
                "SELECT {} FROM subscribers \
             WHERE id > $1 AND ($2 IS NULL OR status = $2) ORDER BY id LIMIT $3",
                subscriber_columns(d)
            );
            sqlx::query_as(&sql)
                .bind(after)
                .bind(status.map(SubscriberStatus::as_str))
                .bind(limit)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row: SubscriberRow| Ok(row.parse()?))
                .collect()
        })
    }

    /// Number of subscribers per status (every status present, zero or not).
    pub async fn subscriber_counts(&self) -> StoreResult<BTreeMap<&'static str, i64>> {
        super::with_db!(self, |pool, writer, d| {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT status, COUNT(*) FROM subscribers GROUP BY status")
                    .fetch_all(pool)
                    .await?;
            let mut counts: BTreeMap<&'static str, i64> = SubscriberStatus::ALL
                .iter()
                .map(|s| (s.as_str(), 0))
                .collect();
            for (status, n) in rows {
                if let Ok(st) = status.parse::<SubscriberStatus>() {
                    counts.insert(st.as_str(), n);
                }
            }
            Ok(counts)
        })
    }

    /// Highest subscriber id now (0 when empty): an import's watermark.
    pub async fn max_subscriber_id(&self) -> StoreResult<i64> {
        super::with_db!(self, |pool, writer, d| {
            Ok(
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM subscribers")
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    /// Upsert one batch of import rows (addresses unique within `rows`) in
    /// one transaction. `import_start` is the watermark from before the
    /// import began: an existing row above it was inserted earlier in this
    /// same import, so meeting it again is a merged duplicate. Never
    /// re-activates anyone.
    pub async fn upsert_import_batch(
        &self,
        rows: &[ImportRow],
        import_start: i64,
    ) -> StoreResult<UpsertCounts> {
        super::with_db!(self, |pool, writer, d| {
            if rows.is_empty() {
                return Ok(UpsertCounts::default());
            }
            let now = now_text();
            // The whole batch travels as one JSON parameter and the database
            // unpacks it: binding 7,000 parameters per statement through sqlx
            // cost more than the inserts. (`WHERE true` keeps SQLite from
            // reading ON CONFLICT as a join constraint.) SQLite's json_patch and
            // the schema's herald_merge_patch are the same RFC 7396 merge.
            let (source, merge) = match d {
                super::Dialect::Sqlite => ("json_each($2)", "json_patch"),
                super::Dialect::Postgres => (
                    "jsonb_array_elements($2::jsonb) AS r(value)",
                    "herald_merge_patch",
                ),
            };
            let sql = format!(
                "INSERT INTO subscribers (email, name, status, attributes, unsubscribed_at, created_at, updated_at) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value -> 3, \
                        CASE WHEN value ->> 2 = 'unsubscribed' THEN $1 END, $1, $1 \
                 FROM {source} WHERE true \
                 ON CONFLICT(email) DO UPDATE SET \
                   name = COALESCE(excluded.name, subscribers.name), \
                   attributes = {merge}(subscribers.attributes, excluded.attributes), \
                   unsubscribed_at = CASE WHEN subscribers.status = 'active' AND excluded.status <> 'active' \
                                          THEN excluded.unsubscribed_at ELSE subscribers.unsubscribed_at END, \
                   status = CASE WHEN subscribers.status = 'active' AND excluded.status <> 'active' \
                                 THEN excluded.status ELSE subscribers.status END, \
                   updated_at = excluded.updated_at \
                 WHERE subscribers.id > {import_start} \
                    OR (excluded.name IS NOT NULL AND excluded.name IS DISTINCT FROM subscribers.name) \
                    OR {merge}(subscribers.attributes, excluded.attributes) IS DISTINCT FROM subscribers.attributes \
                    OR (subscribers.status = 'active' AND excluded.status <> 'active') \
                 RETURNING id"
            );
            let batch: Vec<ImportJsonRow<'_>> = rows
                .iter()
                .map(|r| {
                    (
                        r.email.as_ref(),
                        r.name.as_ref().map(AsRef::as_ref),
                        r.status.as_str(),
                        &r.attributes,
                    )
                })
                .collect();
            let batch = serde_json::to_string(&batch).map_err(|e| sqlx::Error::Encode(e.into()))?;
            let mut tx = writer.begin_with(d.begin()).await?;
            // 16 MiB of page cache on the importing connection (SQLite's default
            // is 2 MiB): a 1M-row import re-reads far fewer index pages. Only
            // here, so a send's memory stays small.
            if d == super::Dialect::Sqlite {
                sqlx::query("PRAGMA cache_size = -16384")
                    .execute(&mut *tx)
                    .await?;
            }
            // The CHECKs (status values, attributes are valid JSON) hold by
            // construction here: statuses come from `SubscriberStatus`, attributes
            // from serde_json, merges from `json_patch`. Checking them again cost
            // about a third of the insert time, so they are off for this
            // statement only.
            if d == super::Dialect::Sqlite {
                sqlx::query("PRAGMA ignore_check_constraints = ON")
                    .execute(&mut *tx)
                    .await?;
            }
            let batch_start: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM subscribers")
                    .fetch_one(&mut *tx)
                    .await?;
            let query = sqlx::query_scalar::<_, i64>(&sql).bind(&now).bind(&batch);
            let ids = query.fetch_all(&mut *tx).await;
            if d == super::Dialect::Sqlite {
                sqlx::query("PRAGMA ignore_check_constraints = OFF")
                    .execute(&mut *tx)
                    .await?;
            }
            let ids = ids?;
            // Record that this import moved rows out of `active` (rare rows, so
            // one statement for them instead of a column per row above): only
            // where nothing else is recorded as the cause yet.
            let inactive: Vec<&str> = rows
                .iter()
                .filter(|r| r.status != SubscriberStatus::Active)
                .map(|r| r.email.as_ref())
                .collect();
            if !inactive.is_empty() {
                let inactive =
                    serde_json::to_string(&inactive).map_err(|e| sqlx::Error::Encode(e.into()))?;
                sqlx::query(&format!(
                    "UPDATE subscribers SET unsubscribe_source = 'import' \
                 WHERE email IN ({}) AND status <> 'active' AND unsubscribe_source IS NULL",
                    d.pick(
                        "SELECT value FROM json_each($1)",
                        "SELECT value::citext FROM jsonb_array_elements_text($1::jsonb)"
                    )
                ))
                .bind(inactive)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            let mut counts = UpsertCounts::default();
            for id in &ids {
                if *id > batch_start {
                    counts.inserted += 1;
                } else if *id > import_start {
                    counts.merged += 1;
                } else {
                    counts.updated += 1;
                }
            }
            counts.unchanged = rows.len() as u64 - ids.len() as u64;
            Ok(counts)
        })
    }
}
