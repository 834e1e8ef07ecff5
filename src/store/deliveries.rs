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

impl Outcome {
    /// The delivery row it is about.
    pub fn id(&self) -> i64 {
        match self {
            Outcome::Sent { id, .. }
            | Outcome::Deferred { id, .. }
            | Outcome::Failed { id, .. }
            | Outcome::Unknown { id, .. }
            | Outcome::Released { id }
            | Outcome::Handed { id } => *id,
        }
    }
}

/// The entries of a batch that a single statement must apply: the last one
/// for each row, as applying them in order would leave it (a worker's
/// hand-off mark and the release of the same row, say, can share a batch,
/// and one statement cannot change a row twice).
fn last_per_row(outcomes: &[Outcome]) -> Vec<&Outcome> {
    let mut last = std::collections::HashMap::with_capacity(outcomes.len());
    for (i, o) in outcomes.iter().enumerate() {
        last.insert(o.id(), i);
    }
    outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| last.get(&o.id()) == Some(i))
        .map(|(_, o)| o)
        .collect()
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

/// [`Store::record_outcomes`] on PostgreSQL: one statement whose
/// data-modifying CTEs write every kind of outcome ($1 now; $2 handed ids;
/// $3 sent, $5 failed, $6 unknown as [id, code, reply]; $4 deferred as [id,
/// code, reply, next attempt]; $7 released ids; $8 subscriber ids to mark
/// bounced; $9 this sender). The batch is reduced to the last entry per row
/// first ([`last_per_row`]), so no row is written twice. Marks, releases and
/// lost outcomes touch only rows this sender still holds: a sender paused
/// past its registration never resets rows another sender took over.
const PG_RECORD_OUTCOMES: &str = "\
WITH rows AS ( \
    SELECT k, (value ->> 0)::bigint AS id, (value ->> 1)::bigint AS code, value ->> 2 AS reply, \
           value ->> 3 AS next_at \
    FROM (SELECT 'sent' AS k, $3::jsonb AS a UNION ALL SELECT 'deferred', $4::jsonb \
          UNION ALL SELECT 'failed', $5::jsonb UNION ALL SELECT 'unknown', $6::jsonb) AS lists, \
         jsonb_array_elements(a) AS value), \
handed AS ( \
    UPDATE deliveries SET handed_at = $1 WHERE state = 'claimed' AND claimed_by = $9 \
    AND id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($2::jsonb))) RETURNING 1), \
outcomes AS ( \
    UPDATE deliveries SET \
        state = CASE WHEN v.k = 'unknown' AND NOT mine THEN deliveries.state ELSE v.k END, \
        last_code = CASE WHEN v.k = 'unknown' THEN deliveries.last_code ELSE v.code END, \
        last_reply = CASE WHEN v.k = 'unknown' AND NOT mine THEN deliveries.last_reply ELSE v.reply END, \
        sent_at = CASE WHEN v.k = 'sent' THEN $1 ELSE deliveries.sent_at END, \
        next_attempt_at = CASE WHEN v.k = 'deferred' THEN v.next_at \
                               WHEN v.k = 'unknown' THEN deliveries.next_attempt_at ELSE NULL END, \
        updated_at = CASE WHEN v.k = 'unknown' AND NOT mine THEN deliveries.updated_at ELSE $1 END \
    FROM (SELECT rows.*, d.state = 'claimed' AND d.claimed_by IS NOT DISTINCT FROM $9 AS mine \
          FROM rows JOIN deliveries d ON d.id = rows.id) AS v \
    WHERE deliveries.id = v.id RETURNING 1), \
released AS ( \
    UPDATE deliveries SET state = 'pending', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
        updated_at = $1 WHERE state = 'claimed' AND claimed_by = $9 \
    AND id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($7::jsonb))) RETURNING 1), \
bounced AS ( \
    UPDATE subscribers SET status = 'bounced', unsubscribe_source = 'bounce', updated_at = $1 \
    WHERE status = 'active' \
    AND id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($8::jsonb))) RETURNING 1) \
SELECT (SELECT COUNT(*) FROM handed), (SELECT COUNT(*) FROM outcomes), \
       (SELECT COUNT(*) FROM released), (SELECT COUNT(*) FROM bounced)";

impl Store {
    /// Crash recovery: rows left `claimed` by a sender that is not live (no
    /// registration in `senders` that has not lapsed; on SQLite, where the
    /// send lease admits one sender, that is every row) become `unknown` if
    /// a worker had taken them, and go back to `pending` otherwise (never
    /// handed to SMTP); lapsed registrations go. With `resend`, `unknown`
    /// rows go back to `pending` too. Returns (claimed→unknown,
    /// unknown→pending). `now` stamps the rows (the engine's clock);
    /// `wall_now` is the real time registrations are renewed in (on
    /// PostgreSQL the database's clock is used instead, as for renewals).
    pub async fn recover_claimed(
        &self,
        issue_id: i64,
        resend: bool,
        now: &str,
        wall_now: &str,
    ) -> StoreResult<(u64, u64)> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            let db_now: Option<String> = match d {
                super::Dialect::Sqlite => None,
                super::Dialect::Postgres => Some(
                    sqlx::query_scalar("SELECT herald_now()")
                        .fetch_one(&mut *tx)
                        .await?,
                ),
            };
            let wall_now = db_now.as_deref().unwrap_or(wall_now);
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
            "WITH pending AS ( \
                 SELECT id FROM deliveries WHERE issue_id = $1 AND state = 'pending' \
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED), \
             due AS ( \
                 SELECT id FROM deliveries WHERE issue_id = $1 AND state = 'deferred' AND next_attempt_at <= $2 \
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE deliveries SET state = 'claimed', claimed_at = $2, claimed_by = $4, handed_at = NULL, updated_at = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM pending UNION ALL SELECT id FROM due ORDER BY id LIMIT $3) \
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
                 WHERE id = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb)))",
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
    pub async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: &str,
        holder: &str,
    ) -> StoreResult<()> {
        super::with_db!(self, |pool, writer, d| {
            use serde_json::{json, Value};
            if outcomes.is_empty() {
                return Ok(());
            }
            let (mut sent, mut deferred, mut failed, mut unknown, mut released, mut bounced) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            let mut handed = vec![];
            let entries: Vec<&Outcome> = match d {
                super::Dialect::Postgres => last_per_row(outcomes),
                super::Dialect::Sqlite => outcomes.iter().collect(),
            };
            for outcome in entries {
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
            if d == super::Dialect::Postgres {
                // One statement (its own transaction): every kind of
                // outcome in one round trip, where a transaction of one
                // statement per kind costs a round trip each and the
                // recorder, which writes one batch at a time, waits for
                // every one of them.
                let list = |v: Vec<Value>| Value::from(v).to_string();
                sqlx::query(PG_RECORD_OUTCOMES)
                    .bind(now)
                    .bind(list(handed))
                    .bind(list(sent))
                    .bind(list(deferred))
                    .bind(list(failed))
                    .bind(list(unknown))
                    .bind(list(released))
                    .bind(list(bounced))
                    .bind(holder)
                    .execute(writer)
                    .await?;
                return Ok(());
            }
            // SQLite: the whole transaction (BEGIN IMMEDIATE, one statement
            // per kind present, COMMIT) goes to the connection's thread as
            // one multi-statement query: one hand-over to that thread per
            // batch, where a statement at a time cost one each (and two
            // thread wake-ups), which was most of a send's system time.
            // Each list is its own parameter ($2..$8, $1 is the time; all
            // are bound, SQLite ignores those a batch does not use). Rows of
            // (id, code, reply[, next_attempt_at]) come from a JSON array.
            let rows = |n: usize| {
                format!(
                    "(SELECT value ->> 0 AS id, value ->> 1 AS code, value ->> 2 AS reply, \
                     value ->> 3 AS next_at FROM json_each(${n})) AS v"
                )
            };
            let mut sql = String::from("BEGIN IMMEDIATE;\n");
            let lists = [
                &handed, &sent, &deferred, &failed, &unknown, &released, &bounced,
            ];
            for (i, list) in lists.iter().enumerate() {
                if list.is_empty() {
                    continue;
                }
                let n = i + 2;
                sql.push_str(&match i {
                    0 => format!(
                        "UPDATE deliveries SET handed_at = $1 WHERE state = 'claimed' AND {}",
                        d.in_ids("id", n)
                    ),
                    1 => format!(
                        "UPDATE deliveries SET state = 'sent', last_code = v.code, last_reply = v.reply, \
                         sent_at = $1, updated_at = $1, next_attempt_at = NULL FROM {} WHERE deliveries.id = v.id",
                        rows(n)
                    ),
                    2 => format!(
                        "UPDATE deliveries SET state = 'deferred', last_code = v.code, last_reply = v.reply, \
                         next_attempt_at = v.next_at, updated_at = $1 FROM {} WHERE deliveries.id = v.id",
                        rows(n)
                    ),
                    3 => format!(
                        "UPDATE deliveries SET state = 'failed', last_code = v.code, last_reply = v.reply, \
                         next_attempt_at = NULL, updated_at = $1 FROM {} WHERE deliveries.id = v.id",
                        rows(n)
                    ),
                    4 => format!(
                        "UPDATE deliveries SET state = 'unknown', last_reply = v.reply, updated_at = $1 \
                         FROM {} WHERE deliveries.id = v.id AND deliveries.state = 'claimed'",
                        rows(n)
                    ),
                    5 => format!(
                        "UPDATE deliveries SET state = 'pending', \
                         attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $1 \
                         WHERE state = 'claimed' AND {}",
                        d.in_ids("id", n)
                    ),
                    _ => format!(
                        "UPDATE subscribers SET status = 'bounced', unsubscribe_source = 'bounce', updated_at = $1 \
                         WHERE status = 'active' AND {}",
                        d.in_ids("id", n)
                    ),
                });
                sql.push_str(";\n");
            }
            sql.push_str("COMMIT");
            let mut query = sqlx::query(&sql).bind(now);
            for list in lists {
                query = query.bind(Value::from(list.clone()).to_string());
            }
            // On a dedicated connection: when a statement fails, the
            // transaction it began is still open (or SQLite rolled it back
            // on its own). Such a connection is closed instead of going back
            // to the pool, which rolls back whatever is left, and the next
            // attempt starts clean.
            let mut conn = writer.acquire().await?;
            let result = query.execute(&mut *conn).await.map(|_| ());
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
             WHERE d.issue_id = $1 AND {} ORDER BY d.id LIMIT $3",
            d.in_texts("d.state", 2)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_the_last_entry_of_each_row_in_order() {
        let batch = [
            Outcome::Handed { id: 1 },
            Outcome::Sent {
                id: 2,
                code: 250,
                reply: "ok".into(),
            },
            Outcome::Released { id: 1 },
            Outcome::Handed { id: 3 },
        ];
        let kept: Vec<&Outcome> = last_per_row(&batch);
        assert_eq!(kept, vec![&batch[1], &batch[2], &batch[3]]);
    }
}
