//! The `issues` table: registered issue versions with their compiled content.

use sqlx::FromRow;

use super::{Store, StoreResult};
use crate::domain::{IssueState, LedgerCounts};

/// A registered issue version.
#[derive(Debug, Clone, FromRow)]
pub struct IssueRecord {
    pub id: i64,
    pub slug: String,
    pub version: i64,
    pub subject: String,
    pub content_hash: String,
    pub compiled: String,
    pub source_path: Option<String>,
    pub state: IssueState,
    pub scheduled_at: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The audience filter (JSON of `domain::Audience`); None: everyone.
    pub audience: Option<String>,
}

/// An issue in the public archive.
#[derive(Debug, Clone, FromRow)]
pub struct ArchivedIssue {
    pub slug: String,
    pub subject: String,
    pub started_at: String,
}

/// What registering an issue file found.
#[derive(Debug, Clone)]
pub enum Registered {
    /// New, or the same content as the stored version, or an edit of a
    /// version that never started sending.
    Ready(IssueRecord),
    /// The file differs from a version whose live send already started.
    ChangedAfterStart(IssueRecord),
}

const ISSUE_COLUMNS: &str =
    "id, slug, version, subject, content_hash, compiled, source_path, state, \
     scheduled_at, created_at, started_at, finished_at, audience";

pub struct NewIssue<'a> {
    pub slug: &'a str,
    pub subject: &'a str,
    pub content_hash: &'a str,
    pub compiled_json: &'a str,
    pub source_path: Option<&'a str>,
}

impl Store {
    /// The latest version of `slug`.
    pub async fn latest_issue(&self, slug: &str) -> StoreResult<Option<IssueRecord>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(&format!(
                "SELECT {ISSUE_COLUMNS} FROM issues WHERE slug = $1 ORDER BY version DESC LIMIT 1"
            ))
            .bind(slug)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn issue_by_id(&self, id: i64) -> StoreResult<Option<IssueRecord>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(
                sqlx::query_as(&format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Register an issue file's content. A version that has not started
    /// sending is updated in place; one that has is never changed: a new
    /// version is added only when `new_version` is set.
    pub async fn register_issue(
        &self,
        new: &NewIssue<'_>,
        new_version: bool,
    ) -> StoreResult<Registered> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            if d == super::Dialect::Postgres {
                // Senders starting together register the same file once.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('herald.issue:' || $1))")
                    .bind(new.slug)
                    .execute(&mut *tx)
                    .await?;
            }
            let latest: Option<IssueRecord> = sqlx::query_as(&format!(
                "SELECT {ISSUE_COLUMNS} FROM issues WHERE slug = $1 ORDER BY version DESC LIMIT 1"
            ))
            .bind(new.slug)
            .fetch_optional(&mut *tx)
            .await?;
            let id = match latest {
                // An aborted send is never resumed: with `new_version`, the same
                // content becomes a new version (below).
                Some(l)
                    if l.content_hash == new.content_hash
                        && !(new_version && l.state == IssueState::Aborted) =>
                {
                    tx.commit().await?;
                    return Ok(Registered::Ready(l));
                }
                Some(l) if l.started_at.is_some() && !new_version => {
                    tx.commit().await?;
                    return Ok(Registered::ChangedAfterStart(l));
                }
                // An aborted version is never changed: the caller refuses it
                // unless a new version is asked for.
                Some(l) if l.state == IssueState::Aborted && !new_version => {
                    tx.commit().await?;
                    return Ok(Registered::Ready(l));
                }
                Some(l) if l.started_at.is_none() && l.state != IssueState::Aborted => {
                    sqlx::query(
                    "UPDATE issues SET subject = $1, content_hash = $2, compiled = $3, source_path = $4 WHERE id = $5",
                )
                .bind(new.subject)
                .bind(new.content_hash)
                .bind(new.compiled_json)
                .bind(new.source_path)
                .bind(l.id)
                .execute(&mut *tx)
                .await?;
                    l.id
                }
                latest => {
                    let version = latest.map_or(1, |l| l.version + 1);
                    sqlx::query_scalar(
                    "INSERT INTO issues (slug, version, subject, content_hash, compiled, source_path) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(new.slug)
                .bind(version)
                .bind(new.subject)
                .bind(new.content_hash)
                .bind(new.compiled_json)
                .bind(new.source_path)
                .fetch_one(&mut *tx)
                .await?
                }
            };
            let record =
                sqlx::query_as(&format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(Registered::Ready(record))
        })
    }

    /// Start (or resume) the live send of an issue: the first time, snapshot
    /// the active audience into `deliveries` in one INSERT…SELECT. Returns
    /// the number of rows the snapshot added (0 on resume).
    pub async fn start_live_send(
        &self,
        issue_id: i64,
        message_id_prefix: &str,
        domain: &str,
        now: &str,
    ) -> StoreResult<u64> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            let (started, state): (Option<String>, IssueState) =
                // Locked on PostgreSQL, so senders starting together snapshot once.
            sqlx::query_as(d.pick(
                "SELECT started_at, state FROM issues WHERE id = $1",
                "SELECT started_at, state FROM issues WHERE id = $1 FOR UPDATE",
            ))
                    .bind(issue_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if state == IssueState::Aborted {
                // Aborted meanwhile: start nothing.
                tx.commit().await?;
                return Ok(0);
            }
            let mut added = 0;
            if started.is_none() {
                // The audience filter stored with the issue, read in the same
                // transaction that snapshots it.
                let audience: Option<String> =
                    sqlx::query_scalar("SELECT audience FROM issues WHERE id = $1")
                        .bind(issue_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let audience = audience
                    .map(|a| crate::domain::Audience::from_json(&a))
                    .transpose()
                    .map_err(|e| sqlx::Error::Decode(e.into()))?;
                let (filter, binds) = super::attributes::audience_sql(d, audience.as_ref(), 5);
                let sql = format!(
                    "INSERT INTO deliveries (issue_id, subscriber_id, message_id, updated_at) \
                 SELECT $1, id, $2 || '.' || id || '@' || $3, $4 FROM subscribers \
                 WHERE status = 'active'{filter} \
                 ON CONFLICT (issue_id, subscriber_id) DO NOTHING"
                );
                let mut query = sqlx::query(&sql)
                    .bind(issue_id)
                    .bind(message_id_prefix)
                    .bind(domain)
                    .bind(now);
                for b in binds {
                    query = query.bind(b);
                }
                added = query.execute(&mut *tx).await?.rows_affected();
            }
            sqlx::query(
            "UPDATE issues SET state = 'sending', started_at = COALESCE(started_at, $2), finished_at = NULL WHERE id = $1",
        )
        .bind(issue_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
            tx.commit().await?;
            if d == super::Dialect::Postgres && added > 0 {
                // The snapshot may have added millions of rows: fresh
                // statistics keep the claimer's and recorder's statements
                // on the indexes from the first batch on.
                sqlx::query("ANALYZE deliveries").execute(pool).await?;
            }
            Ok(added)
        })
    }

    /// Set the audience of an issue version that has not started sending
    /// (None: everyone). Returns false when its send already started (the
    /// audience is then fixed).
    pub async fn set_issue_audience(
        &self,
        issue_id: i64,
        audience: Option<&crate::domain::Audience>,
    ) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done =
                sqlx::query("UPDATE issues SET audience = $2 WHERE id = $1 AND started_at IS NULL")
                    .bind(issue_id)
                    .bind(audience.map(|a| a.to_json()))
                    .execute(pool)
                    .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The archive: for each slug whose latest version's live send has
    /// started, that version, newest start first (at most `limit`).
    pub async fn archived_issues(&self, limit: i64) -> StoreResult<Vec<ArchivedIssue>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(
                "SELECT slug, subject, started_at FROM issues i WHERE started_at IS NOT NULL \
             AND version = (SELECT MAX(version) FROM issues WHERE slug = i.slug) \
             ORDER BY started_at DESC, id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Mark an issue `sent` once no delivery row is left to work on.
    pub async fn finish_issue_if_done(&self, issue_id: i64, now: &str) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(
            "UPDATE issues SET state = 'sent', finished_at = $2 WHERE id = $1 AND state = 'sending' AND NOT EXISTS \
             (SELECT 1 FROM deliveries WHERE issue_id = $1 AND state IN ('pending', 'claimed', 'deferred', 'unknown'))",
        )
        .bind(issue_id)
        .bind(now)
        .execute(pool)
        .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

/// What [`Store::abort_issue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aborted {
    /// The issue's state before (`aborted` when it already was).
    pub was: IssueState,
    /// Deliveries moved to `cancelled` by this call.
    pub cancelled: u64,
}

/// Issue states `herald abort` can stop.
const ABORTABLE: &str = "('draft', 'scheduled', 'sending', 'missed', 'aborted')";

impl Store {
    /// Stop an issue version's send for good, in one write transaction: the
    /// issue becomes `aborted` and every delivery still `pending`,
    /// `deferred` or `unknown` becomes `cancelled`. Rows `claimed` by a
    /// running sender are left to it (it stops within seconds and cancels
    /// what it did not send). `None` when the issue is finished (`sent`,
    /// `cancelled`) and there is nothing to abort. Idempotent.
    pub async fn abort_issue(&self, issue_id: i64, now: &str) -> StoreResult<Option<Aborted>> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            let was: Option<IssueState> = sqlx::query_scalar(&format!(
                "SELECT state FROM issues WHERE id = $1 AND state IN {ABORTABLE}"
            ))
            .bind(issue_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(was) = was else {
                tx.commit().await?;
                return Ok(None);
            };
            sqlx::query(
            "UPDATE issues SET state = 'aborted', finished_at = COALESCE(finished_at, $2) WHERE id = $1",
        )
        .bind(issue_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
            let cancelled = sqlx::query(CANCEL_OPEN)
                .bind(issue_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(Some(Aborted { was, cancelled }))
        })
    }

    /// After a sender of an aborted issue stopped: cancel the rows it gave
    /// back (claimed but never handed to SMTP) or that came back deferred.
    /// Does nothing unless the issue is `aborted`.
    pub async fn cancel_rest_if_aborted(&self, issue_id: i64, now: &str) -> StoreResult<u64> {
        super::with_db!(self, |pool, writer, d| {
            let mut tx = writer.begin_with(d.begin()).await?;
            let aborted: bool =
                sqlx::query_scalar("SELECT state = 'aborted' FROM issues WHERE id = $1")
                    .bind(issue_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(false);
            let n = if aborted {
                sqlx::query(CANCEL_OPEN)
                    .bind(issue_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            } else {
                0
            };
            tx.commit().await?;
            Ok(n)
        })
    }

    /// The current state of an issue version (`None` if it does not exist).
    pub async fn issue_state(&self, issue_id: i64) -> StoreResult<Option<IssueState>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_scalar("SELECT state FROM issues WHERE id = $1")
                .bind(issue_id)
                .fetch_optional(pool)
                .await?)
        })
    }
}

/// Cancel an issue's deliveries still open to a sender ($1 issue, $2 now).
const CANCEL_OPEN: &str =
    "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, updated_at = $2 \
     WHERE issue_id = $1 AND state IN ('pending', 'deferred', 'unknown')";

/// One issue version for `herald status` without an issue: its state,
/// times and ledger counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssueOverview {
    pub slug: String,
    pub version: i64,
    pub subject: String,
    pub state: IssueState,
    pub scheduled_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The latest of: created, started, finished, any delivery row change.
    pub last_activity: String,
    /// Delivery rows per ledger state (every state present).
    pub counts: LedgerCounts,
}

impl Store {
    /// Every issue version, in order of its scheduled (or start, or
    /// creation) time, with its ledger counts.
    pub async fn issues_overview(&self) -> StoreResult<Vec<IssueOverview>> {
        super::with_db!(self, |pool, writer, d| {
            type Row = (
                i64,
                String,
                i64,
                String,
                IssueState,
                Option<String>,
                Option<String>,
                Option<String>,
                String,
            );
            let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT i.id, i.slug, i.version, i.subject, i.state, i.scheduled_at, i.started_at, \
               i.finished_at, {}(i.created_at, COALESCE(i.started_at, ''), COALESCE(i.finished_at, ''), \
               COALESCE((SELECT MAX(d.updated_at) FROM deliveries d WHERE d.issue_id = i.id), '')) \
             FROM issues i ORDER BY COALESCE(i.scheduled_at, i.started_at, i.created_at), i.id",
            d.pick("MAX", "GREATEST")
        ))
        .fetch_all(pool)
        .await?;
            let counts: Vec<(i64, crate::domain::DeliveryState, i64)> = sqlx::query_as(
                "SELECT issue_id, state, COUNT(*) FROM deliveries GROUP BY issue_id, state",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(
                        id,
                        slug,
                        version,
                        subject,
                        state,
                        scheduled_at,
                        started_at,
                        finished_at,
                        last,
                    )| {
                        let mut per_state = LedgerCounts::default();
                        for (_, st, n) in counts.iter().filter(|(i, _, _)| *i == id) {
                            per_state.add(*st, *n);
                        }
                        IssueOverview {
                            slug,
                            version,
                            subject,
                            state,
                            scheduled_at,
                            started_at,
                            finished_at,
                            last_activity: last,
                            counts: per_state,
                        }
                    },
                )
                .collect())
        })
    }
}
