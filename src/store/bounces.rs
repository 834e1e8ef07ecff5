//! Bounce and complaint records: one row per recipient a report names,
//! written with its consequences (subscriber status, the delivery's
//! asynchronous outcome) in one transaction, idempotent by fingerprint.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{now_text, Store, StoreResult};

/// A classified, matched report line, ready to record.
#[derive(Debug, Clone)]
pub struct NewBounce<'a> {
    /// hard | soft | complaint | auto-reply | delayed | unmatched
    pub kind: &'a str,
    /// verp | message-id | recipient (None: unmatched)
    pub matched_by: Option<&'a str>,
    pub issue_id: Option<i64>,
    pub subscriber_id: Option<i64>,
    pub email: Option<&'a str>,
    pub status_code: Option<&'a str>,
    pub diagnostic: Option<&'a str>,
    /// mail | webhook:mailgun | webhook:generic
    pub source: &'a str,
    /// Same report and recipient ⇒ same fingerprint ⇒ recorded once.
    pub fingerprint: &'a str,
    pub raw: Option<&'a str>,
}

/// What recording a bounce did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    /// False when this report was recorded before (nothing changed).
    pub new: bool,
    /// The subscriber's new status, when this bounce changed it.
    pub marked: Option<&'static str>,
}

/// One stored bounce, for `herald bounces list/show`.
#[derive(Debug, Clone, Serialize)]
pub struct BounceRow {
    pub id: i64,
    pub received_at: String,
    pub kind: String,
    pub matched_by: Option<String>,
    pub issue: Option<String>,
    pub email: Option<String>,
    pub status_code: Option<String>,
    pub diagnostic: Option<String>,
    pub source: String,
}

/// The largest report kept for review.
pub const MAX_RAW_BYTES: usize = 64 * 1024;

impl Store {
    /// The delivery a Message-ID belongs to: (issue id, subscriber id).
    /// herald's Message-IDs are `SLUG[-vN].SUBSCRIBER@DOMAIN`, so the
    /// candidates come from the ID itself and each is looked up by the
    /// ledger's (issue, subscriber) key; no index on the ID is needed (one
    /// would slow every audience snapshot).
    pub async fn delivery_by_message_id(
        &self,
        message_id: &str,
    ) -> StoreResult<Option<(i64, i64)>> {
        super::with_db!(self, |pool, writer, d| {
            let Some((local, _)) = message_id.rsplit_once('@') else {
                return Ok(None);
            };
            let Some((prefix, subscriber)) = local.rsplit_once('.') else {
                return Ok(None);
            };
            let Ok(subscriber_id) = subscriber.parse::<i64>() else {
                return Ok(None);
            };
            let mut candidates = vec![(prefix, 1i64)];
            if let Some((slug, v)) = prefix.rsplit_once("-v") {
                if let Ok(version) = v.parse::<i64>() {
                    candidates.push((slug, version));
                }
            }
            for (slug, version) in candidates {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT d.issue_id FROM issues i \
                 JOIN deliveries d ON d.issue_id = i.id AND d.subscriber_id = $3 \
                 WHERE i.slug = $1 AND i.version = $2 AND d.message_id = $4",
                )
                .bind(slug)
                .bind(version)
                .bind(subscriber_id)
                .bind(message_id)
                .fetch_optional(pool)
                .await?;
                if let Some(issue_id) = found {
                    return Ok(Some((issue_id, subscriber_id)));
                }
            }
            Ok(None)
        })
    }

    /// Does this delivery exist?
    pub async fn delivery_exists(&self, issue_id: i64, subscriber_id: i64) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND subscriber_id = $2",
            )
            .bind(issue_id)
            .bind(subscriber_id)
            .fetch_one(pool)
            .await?;
            Ok(n > 0)
        })
    }

    /// A subscriber by address and the issue of their latest delivery.
    pub async fn subscriber_and_latest_issue(
        &self,
        email: &str,
    ) -> StoreResult<Option<(i64, Option<i64>)>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(&format!(
                "SELECT s.id, (SELECT d.issue_id FROM deliveries d WHERE d.subscriber_id = s.id \
                           ORDER BY d.issue_id DESC LIMIT 1) \
             FROM subscribers s WHERE s.email = {}",
                d.email_param(1)
            ))
            .bind(email)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Record one bounce and act on it, in one transaction: a hard bounce
    /// marks the subscriber `bounced`, a complaint `complained`, and soft
    /// bounces on `soft_limit` distinct issues `bounced` (only an active or
    /// unsubscribed subscriber changes; never reversed here). The matched
    /// delivery keeps the outcome beside its SMTP result.
    pub async fn record_bounce(&self, b: &NewBounce<'_>, soft_limit: u32) -> StoreResult<Recorded> {
        super::with_db!(self, |pool, writer, d| {
            let now = now_text();
            let mut tx = writer.begin_with(d.begin()).await?;
            let inserted = sqlx::query(
                "INSERT INTO bounces (received_at, kind, matched_by, issue_id, subscriber_id, \
             email, status_code, diagnostic, source, fingerprint, raw) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
            )
            .bind(&now)
            .bind(b.kind)
            .bind(b.matched_by)
            .bind(b.issue_id)
            .bind(b.subscriber_id)
            .bind(b.email)
            .bind(b.status_code)
            .bind(b.diagnostic.map(without_nul))
            .bind(b.source)
            .bind(b.fingerprint)
            .bind(b.raw.map(without_nul))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                tx.rollback().await?;
                return Ok(Recorded::default());
            }
            let acts = matches!(b.kind, "hard" | "soft" | "complaint");
            if let (true, Some(issue_id), Some(subscriber_id)) = (acts, b.issue_id, b.subscriber_id)
            {
                sqlx::query(
                    "UPDATE deliveries SET bounced_at = $1, bounce_kind = $2, bounce_status = $3, \
                 bounce_diagnostic = $4 WHERE issue_id = $5 AND subscriber_id = $6",
                )
                .bind(&now)
                .bind(b.kind)
                .bind(b.status_code)
                .bind(b.diagnostic.map(without_nul))
                .bind(issue_id)
                .bind(subscriber_id)
                .execute(&mut *tx)
                .await?;
            }
            let mut marked = None;
            if let (true, Some(subscriber_id)) = (acts, b.subscriber_id) {
                let new_status = match b.kind {
                    "hard" => Some(("bounced", "bounce")),
                    "complaint" => Some(("complained", "complaint")),
                    _ => {
                        let issues: i64 = sqlx::query_scalar(
                            "SELECT count(DISTINCT coalesce(issue_id, -id)) FROM bounces \
                         WHERE subscriber_id = $1 AND kind = 'soft'",
                        )
                        .bind(subscriber_id)
                        .fetch_one(&mut *tx)
                        .await?;
                        (issues >= i64::from(soft_limit)).then_some(("bounced", "bounce"))
                    }
                };
                if let Some((status, source)) = new_status {
                    let changed = sqlx::query(
                    "UPDATE subscribers SET status = $1, unsubscribe_source = $2, updated_at = $3 \
                     WHERE id = $4 AND status IN ('active', 'unsubscribed')",
                )
                .bind(status)
                .bind(source)
                .bind(&now)
                .bind(subscriber_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                    if changed == 1 {
                        marked = Some(if status == "bounced" {
                            "bounced"
                        } else {
                            "complained"
                        });
                    }
                }
            }
            tx.commit().await?;
            Ok(Recorded { new: true, marked })
        })
    }

    /// Stored bounces, newest first, optionally of one issue and kind.
    pub async fn list_bounces(
        &self,
        issue_id: Option<i64>,
        kind: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<BounceRow>> {
        self.query_bounces(None, issue_id, kind, limit).await
    }

    async fn query_bounces(
        &self,
        id: Option<i64>,
        issue_id: Option<i64>,
        kind: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<BounceRow>> {
        super::with_db!(self, |pool, writer, d| {
            let rows = sqlx::query(
            "SELECT b.id, b.received_at, b.kind, b.matched_by, i.slug, b.email, b.status_code, \
                    b.diagnostic, b.source \
             FROM bounces b LEFT JOIN issues i ON i.id = b.issue_id \
             WHERE ($1 IS NULL OR b.issue_id = $1) AND ($2 IS NULL OR b.kind = $2) \
               AND ($4 IS NULL OR b.id = $4) \
             ORDER BY b.id DESC LIMIT $3",
        )
        .bind(issue_id)
        .bind(kind)
        .bind(limit)
        .bind(id)
        .fetch_all(pool)
        .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(BounceRow {
                        id: r.try_get(0)?,
                        received_at: r.try_get(1)?,
                        kind: r.try_get(2)?,
                        matched_by: r.try_get(3)?,
                        issue: r.try_get(4)?,
                        email: r.try_get(5)?,
                        status_code: r.try_get(6)?,
                        diagnostic: r.try_get(7)?,
                        source: r.try_get(8)?,
                    })
                })
                .collect()
        })
    }

    /// One bounce and the report it came from.
    pub async fn bounce_raw(&self, id: i64) -> StoreResult<Option<(BounceRow, Option<String>)>> {
        super::with_db!(self, |pool, writer, d| {
            let Some(raw): Option<Option<String>> =
                sqlx::query_scalar("SELECT raw FROM bounces WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            else {
                return Ok(None);
            };
            let row = self
                .query_bounces(Some(id), None, None, 1)
                .await?
                .into_iter()
                .next();
            Ok(row.map(|r| (r, raw)))
        })
    }

    /// Bounces by kind, for one issue or (None) all.
    pub async fn bounce_counts(&self, issue_id: Option<i64>) -> StoreResult<BTreeMap<String, i64>> {
        super::with_db!(self, |pool, writer, d| {
            let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, count(*) FROM bounces WHERE $1 IS NULL OR issue_id = $1 GROUP BY kind",
        )
        .bind(issue_id)
        .fetch_all(pool)
        .await?;
            Ok(rows.into_iter().collect())
        })
    }
}

/// Report text as both backends store it: PostgreSQL's text cannot hold
/// NUL, which a mangled bounce may carry.
fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}
