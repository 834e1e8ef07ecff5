//! The `deliveries` ledger: claim due rows, record outcomes in batches,
//! recover after a crash, count and list.

use sqlx::FromRow;

use super::{Store, StoreResult};
use crate::domain::{DeliveryState, LedgerCounts, SubscriberEmail};

/// A delivery handed to a worker.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub subscriber_id: i64,
    pub email: SubscriberEmail,
    pub name: Option<String>,
    /// The subscriber's attributes as they are when the row is claimed.
    pub attributes: crate::render::Attributes,
    pub message_id: String,
    pub attempts: i64,
}

/// The outcome of one delivery attempt, as the recorder writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        id: i64,
        code: u16,
        reply: String,
    },
    Deferred {
        id: i64,
        code: Option<u16>,
        reply: String,
        next_attempt_at: String,
    },
    /// Permanent failure; `bounce` marks the subscriber bounced (5.1.x).
    Failed {
        id: i64,
        code: Option<u16>,
        reply: String,
        bounce: Option<i64>,
    },
    /// The message may or may not have been accepted (reply lost after DATA).
    Unknown {
        id: i64,
        reply: String,
    },
    /// Never handed to SMTP (stop requested, server unreachable): back to
    /// pending without counting an attempt.
    Released {
        id: i64,
    },
    /// A worker took the claimed row and may hand it to SMTP: if the
    /// process dies now, its outcome is unknown. Not an outcome of the
    /// attempt; written before the message goes out.
    Handed {
        id: i64,
    },
}

/// A delivery row for reports.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct DeliveryReport {
    pub email: SubscriberEmail,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_code: Option<i64>,
    pub last_reply: Option<String>,
    pub next_attempt_at: Option<String>,
    pub message_id: String,
}

/// Timing facts about one issue's live send.
#[derive(Debug, Clone, Default, FromRow)]
pub struct SendTimes {
    pub first_sent_at: Option<String>,
    pub last_sent_at: Option<String>,
}

impl Store {
    /// Crash recovery: rows left `claimed` by a sender that is not live (no
    /// registration in `senders` that has not lapsed; on SQLite, where the
    /// send lease admits one sender, that is every row) become `unknown` if
    /// a worker had taken them, and go back to `pending` otherwise (never
    /// handed to SMTP); lapsed registrations go. With `resend`, `unknown`
    /// rows go back to `pending` too. Returns (claimed→unknown,
    /// unknown→pending). `now` stamps the rows (the engine's clock);
    /// `wall_now` is the real time registrations are renewed in.
    pub async fn recover_claimed(
        &self,
        issue_id: i64,
        resend: bool,
        now: &str,
        wall_now: &str,
    ) -> StoreResult<(u64, u64)> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            sqlx::query("DELETE FROM senders WHERE issue_id = $1 AND expires_at <= $2")
                .bind(issue_id)
                .bind(wall_now)
                .execute(&mut *tx)
                .await?;
            let lost = sqlx::query(
            "UPDATE deliveries SET state = 'unknown', updated_at = $2, \
             last_reply = 'outcome lost: the sending process stopped while this message was in flight' \
             WHERE issue_id = $1 AND state = 'claimed' AND handed_at IS NOT NULL AND NOT EXISTS \
               (SELECT 1 FROM senders s WHERE s.issue_id = $1 AND s.holder = deliveries.claimed_by AND s.expires_at > $3)",
        )
        .bind(issue_id)
        .bind(now)
        .bind(wall_now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
            sqlx::query(
            "UPDATE deliveries SET state = 'pending', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $2 \
             WHERE issue_id = $1 AND state = 'claimed' AND handed_at IS NULL AND NOT EXISTS \
               (SELECT 1 FROM senders s WHERE s.issue_id = $1 AND s.holder = deliveries.claimed_by AND s.expires_at > $3)",
        )
        .bind(issue_id)
        .bind(now)
        .bind(wall_now)
        .execute(&mut *tx)
        .await?;
            let requeued = if resend {
                sqlx::query("UPDATE deliveries SET state = 'pending', updated_at = $2 WHERE issue_id = $1 AND state = 'unknown'")
                .bind(issue_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                0
            };
            tx.commit().await?;
            Ok((lost, requeued))
        })
    }

    /// Durably claim up to `limit` due rows (pending, or deferred whose time
    /// has come) and return those whose subscriber is still active; rows of
    /// subscribers who left meanwhile become `skipped` in the same
    /// transaction.
    pub async fn claim_due(
        &self,
        issue_id: i64,
        now: &str,
        limit: i64,
        holder: &str,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            // On PostgreSQL several senders claim from one issue at once: each
            // skips the rows another is claiming instead of waiting for them.
            let claimed: Vec<(i64, i64, String, i64)> = sqlx::query_as(d.pick(
            "UPDATE deliveries SET state = 'claimed', claimed_at = $2, claimed_by = $4, handed_at = NULL, updated_at = $2, attempts = attempts + 1 \
             WHERE id IN ( \
                 SELECT id FROM deliveries WHERE issue_id = $1 AND state = 'pending' \
                 UNION ALL \
                 SELECT id FROM deliveries WHERE issue_id = $1 AND state = 'deferred' AND next_attempt_at <= $2 \
                 ORDER BY id LIMIT $3) \
             RETURNING id, subscriber_id, message_id, attempts",
            "UPDATE deliveries SET state = 'claimed', claimed_at = $2, claimed_by = $4, handed_at = NULL, updated_at = $2, attempts = attempts + 1 \
             WHERE id IN ( \
                 SELECT id FROM deliveries WHERE issue_id = $1 \
                   AND (state = 'pending' OR (state = 'deferred' AND next_attempt_at <= $2)) \
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, subscriber_id, message_id, attempts",
        ))
        .bind(issue_id)
        .bind(now)
        .bind(limit)
        .bind(holder)
        .fetch_all(&mut *tx)
        .await?;
            let ids: Vec<i64> = claimed.iter().map(|c| c.1).collect();
            let people: Vec<(i64, SubscriberEmail, Option<String>, String, String)> = sqlx::query_as(
            d.pick(
                "SELECT id, email, name, status, attributes FROM subscribers WHERE id IN (SELECT value FROM json_each($1))",
                "SELECT id, email, name, status, attributes::text FROM subscribers \
                 WHERE id IN (SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb))",
            ),
        )
        .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&mut *tx)
        .await?;
            let people: std::collections::HashMap<
                i64,
                (SubscriberEmail, Option<String>, String, String),
            > = people
                .into_iter()
                .map(|(id, e, n, s, a)| (id, (e, n, s, a)))
                .collect();
            let mut out = Vec::with_capacity(claimed.len());
            let mut skipped = Vec::new();
            for (id, subscriber_id, message_id, attempts) in claimed {
                match people.get(&subscriber_id) {
                    Some((email, name, status, attributes)) if status == "active" => {
                        out.push(ClaimedDelivery {
                            id,
                            subscriber_id,
                            email: email.clone(),
                            name: name.clone(),
                            // A CHECK keeps the column a JSON object.
                            attributes: serde_json::from_str(attributes).unwrap_or_default(),
                            message_id,
                            attempts,
                        })
                    }
                    _ => skipped.push(id),
                }
            }
            for id in skipped {
                sqlx::query(
                "UPDATE deliveries SET state = 'skipped', attempts = attempts - 1, updated_at = $2, \
                 last_reply = 'subscriber no longer active' WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            }
            tx.commit().await?;
            out.sort_by_key(|c| c.id);
            Ok(out)
        })
    }

    /// Write a batch of outcomes in one transaction (group commit): one
    /// set-based statement per kind of outcome, whatever the batch size.
    pub async fn record_outcomes(&self, outcomes: &[Outcome], now: &str) -> StoreResult<()> {
        super::with_db!(self, |pool, writer, d| {
            use serde_json::{json, Value};
            if outcomes.is_empty() {
                return Ok(());
            }
            let (mut sent, mut deferred, mut failed, mut unknown, mut released, mut bounced) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            let mut handed = vec![];
            for outcome in outcomes {
                match outcome {
                    Outcome::Sent { id, code, reply } => sent.push(json!([id, code, reply])),
                    Outcome::Deferred {
                        id,
                        code,
                        reply,
                        next_attempt_at,
                    } => deferred.push(json!([id, code, reply, next_attempt_at])),
                    Outcome::Failed {
                        id,
                        code,
                        reply,
                        bounce,
                    } => {
                        failed.push(json!([id, code, reply]));
                        bounced.extend(bounce.map(Value::from));
                    }
                    Outcome::Unknown { id, reply } => unknown.push(json!([id, Value::Null, reply])),
                    Outcome::Released { id } => released.push(Value::from(*id)),
                    Outcome::Handed { id } => handed.push(Value::from(*id)),
                }
            }
            // Rows of (id, code, reply[, next_attempt_at]) from a JSON array.
            let rows_sql = d.pick(
            "SELECT value ->> 0 AS id, value ->> 1 AS code, value ->> 2 AS reply, \
             value ->> 3 AS next_at FROM json_each($2)",
            "SELECT (value ->> 0)::bigint AS id, (value ->> 1)::bigint AS code, value ->> 2 AS reply, \
             value ->> 3 AS next_at FROM jsonb_array_elements($2::jsonb) AS value",
        );
            let statements: [(&Vec<Value>, String); 4] = [
            (
                &sent,
                format!(
                    "UPDATE deliveries SET state = 'sent', last_code = v.code, last_reply = v.reply, \
                     sent_at = $1, updated_at = $1, next_attempt_at = NULL FROM ({rows_sql}) AS v WHERE deliveries.id = v.id"
                ),
            ),
            (
                &deferred,
                format!(
                    "UPDATE deliveries SET state = 'deferred', last_code = v.code, last_reply = v.reply, \
                     next_attempt_at = v.next_at, updated_at = $1 FROM ({rows_sql}) AS v WHERE deliveries.id = v.id"
                ),
            ),
            (
                &failed,
                format!(
                    "UPDATE deliveries SET state = 'failed', last_code = v.code, last_reply = v.reply, \
                     next_attempt_at = NULL, updated_at = $1 FROM ({rows_sql}) AS v WHERE deliveries.id = v.id"
                ),
            ),
            (
                &unknown,
                format!(
                    "UPDATE deliveries SET state = 'unknown', last_reply = v.reply, updated_at = $1 \
                     FROM ({rows_sql}) AS v WHERE deliveries.id = v.id AND deliveries.state = 'claimed'"
                ),
            ),
        ];
            // On a dedicated connection: when a statement or the commit fails,
            // SQLite may already have rolled the transaction back, and the
            // connection's idea of its transaction depth is no longer to be
            // trusted. Such a connection is closed instead of going back to the
            // pool, so the next attempt starts clean.
            let mut conn = writer.acquire().await?;
            let result = async {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, d.begin()).await?;
            if !handed.is_empty() {
                sqlx::query(&format!(
                    "UPDATE deliveries SET handed_at = $1 WHERE state = 'claimed' AND id IN ({})",
                    d.ids(2)
                ))
                .bind(now)
                .bind(Value::from(handed).to_string())
                .execute(&mut *tx)
                .await?;
            }
            for (rows, sql) in statements.iter() {
                if !rows.is_empty() {
                    sqlx::query(sql)
                        .bind(now)
                        .bind(Value::from((*rows).clone()).to_string())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if !released.is_empty() {
                sqlx::query(&format!(
                    "UPDATE deliveries SET state = 'pending', \
                     attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $1 \
                     WHERE state = 'claimed' AND id IN ({})",
                    d.ids(2)
                ))
                .bind(now)
                .bind(Value::from(released).to_string())
                .execute(&mut *tx)
                .await?;
            }
            if !bounced.is_empty() {
                sqlx::query(&format!(
                    "UPDATE subscribers SET status = 'bounced', unsubscribe_source = 'bounce', updated_at = $1 \
                     WHERE status = 'active' AND id IN ({})",
                    d.ids(2)
                ))
                .bind(now)
                .bind(Value::from(bounced).to_string())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await;
            if result.is_err() {
                conn.close_on_drop();
            }
            Ok(result?)
        })
    }

    /// Rows per state for one issue (every state present).
    pub async fn delivery_counts(&self, issue_id: i64) -> StoreResult<LedgerCounts> {
        super::with_db!(self, |pool, writer, d| {
            let rows: Vec<(DeliveryState, i64)> = sqlx::query_as(
                "SELECT state, COUNT(*) FROM deliveries WHERE issue_id = $1 GROUP BY state",
            )
            .bind(issue_id)
            .fetch_all(pool)
            .await?;
            let mut counts = LedgerCounts::default();
            for (state, n) in rows {
                counts.add(state, n);
            }
            Ok(counts)
        })
    }

    /// Delivery rows per state for the `limit` most recently started issue
    /// versions: (slug, version, state, count), every state present.
    pub async fn recent_delivery_counts(
        &self,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64, DeliveryState, i64)>> {
        super::with_db!(self, |pool, writer, d| {
            let issues: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, slug, version FROM issues WHERE started_at IS NOT NULL ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?;
            let mut out = Vec::with_capacity(issues.len() * DeliveryState::ALL.len());
            for (id, slug, version) in issues {
                for (state, n) in self.delivery_counts(id).await?.iter() {
                    out.push((slug.clone(), version, state, n));
                }
            }
            Ok(out)
        })
    }

    /// When the earliest deferred row of an issue is due, if any.
    pub async fn next_deferred_at(&self, issue_id: i64) -> StoreResult<Option<String>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE issue_id = $1 AND state = 'deferred'",
        )
        .bind(issue_id)
        .fetch_one(pool)
        .await?)
        })
    }

    /// The deferred rows of an issue due by `until`: how many, and the
    /// last reply of the first one due (what the server said).
    pub async fn deferred_due_by(
        &self,
        issue_id: i64,
        until: &str,
    ) -> StoreResult<(i64, Option<String>)> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(
            "SELECT COUNT(*), (SELECT COALESCE(CAST(last_code AS TEXT) || ' ', '') || COALESCE(last_reply, '') \
               FROM deliveries WHERE issue_id = $1 AND state = 'deferred' \
               ORDER BY next_attempt_at LIMIT 1) \
             FROM deliveries WHERE issue_id = $1 AND state = 'deferred' AND next_attempt_at <= $2",
        )
        .bind(issue_id)
        .bind(until)
        .fetch_one(pool)
        .await?)
        })
    }

    /// Deliveries of an issue in the given states, with their last reply.
    pub async fn deliveries_in_states(
        &self,
        issue_id: i64,
        states: &[DeliveryState],
        limit: i64,
    ) -> StoreResult<Vec<DeliveryReport>> {
        super::with_db!(self, |pool, writer, d| {
            let states_json = serde_json::to_string(states).unwrap_or_else(|_| "[]".into());
            Ok(sqlx::query_as(&format!(
            "SELECT s.email, d.state, d.attempts, d.last_code, d.last_reply, d.next_attempt_at, d.message_id \
             FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE d.issue_id = $1 AND d.state IN ({}) ORDER BY d.id LIMIT $3",
            d.texts(2)
        ))
        .bind(issue_id)
        .bind(states_json)
        .bind(limit)
        .fetch_all(pool)
        .await?)
        })
    }

    /// First and last 250 of an issue's live send (for rate and elapsed).
    pub async fn send_times(&self, issue_id: i64) -> StoreResult<SendTimes> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(
            "SELECT MIN(sent_at) AS first_sent_at, MAX(sent_at) AS last_sent_at FROM deliveries WHERE issue_id = $1",
        )
        .bind(issue_id)
        .fetch_one(pool)
        .await?)
        })
    }

    /// Put `failed` or `unknown` rows back to `pending` for another try.
    pub async fn requeue(
        &self,
        issue_id: i64,
        from_state: DeliveryState,
        now: &str,
    ) -> StoreResult<u64> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            let n = sqlx::query(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = $3 \
             WHERE issue_id = $1 AND state = $2 AND subscriber_id IN (SELECT id FROM subscribers WHERE status = 'active')",
        )
        .bind(issue_id)
        .bind(from_state)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
            if n > 0 {
                sqlx::query(
                    "UPDATE issues SET state = 'sending', finished_at = NULL WHERE id = $1",
                )
                .bind(issue_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(n)
        })
    }
}
