//! Scheduled sends in the `issues` table: which issues are due, which
//! interrupted live sends can resume, and the schedule's state changes
//! (schedule, cancel, missed, start). Every change is conditional on the
//! state it was read in, so a concurrent cancel, reschedule or run never
//! acts on a stale row.
//!
//! A scheduled send moves `scheduled → sending` here, just before the
//! delivery engine snapshots the audience (which sets `started_at`). An
//! issue in `sending` without `started_at` is therefore one whose run-due
//! stopped in between; it is still treated as scheduled.

use sqlx::FromRow;

use super::issues::IssueRecord;
use super::{Store, StoreResult};

/// An issue that has a scheduled time, for `herald schedule list`.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct ScheduledIssue {
    pub slug: String,
    pub version: i64,
    pub subject: String,
    pub state: crate::domain::IssueState,
    /// `None` for a live send started by hand (listed with `--all`).
    pub scheduled_at: Option<String>,
    pub source_path: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// The states `schedule list` shows without `--all`: what will still be
/// sent automatically, and what needs the operator.
const PENDING_STATES: &str = "('scheduled', 'missed')";

/// "The send of this issue has not started" (no audience snapshot yet).
const NOT_STARTED: &str = "started_at IS NULL AND state IN ('scheduled', 'sending')";

impl Store {
    /// Schedule (or reschedule) an issue version whose send never started.
    /// `at` is a stored time (`format_time`). False when its send has
    /// started, or a run-due is starting it, meanwhile.
    pub async fn set_schedule(&self, issue_id: i64, at: &str) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(
                "UPDATE issues SET state = 'scheduled', scheduled_at = $2 \
             WHERE id = $1 AND started_at IS NULL AND state NOT IN ('sending', 'aborted')",
            )
            .bind(issue_id)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Cancel a scheduled (or missed) send that has not started. False when
    /// the issue is in any other state.
    pub async fn cancel_schedule(&self, issue_id: i64) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(
                "UPDATE issues SET state = 'cancelled' \
             WHERE id = $1 AND started_at IS NULL AND state IN ('scheduled', 'missed')",
            )
            .bind(issue_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Issues with a scheduled time, earliest first: only those still to be
    /// sent automatically or missed, or (`all`) every one ever scheduled
    /// and every live send started by hand (by its start time).
    pub async fn scheduled_issues(&self, all: bool) -> StoreResult<Vec<ScheduledIssue>> {
        super::with_db!(self, |pool, writer, d| {
            let filter = if all {
                "(scheduled_at IS NOT NULL OR started_at IS NOT NULL)".to_string()
            } else {
                format!(
                    "scheduled_at IS NOT NULL AND (state IN {PENDING_STATES} OR ({NOT_STARTED}))"
                )
            };
            Ok(sqlx::query_as(&format!(
            "SELECT slug, version, subject, state, scheduled_at, source_path, started_at, finished_at \
             FROM issues WHERE {filter} ORDER BY COALESCE(scheduled_at, started_at), id"
        ))
        .fetch_all(pool)
        .await?)
        })
    }

    /// Scheduled issues whose time (`scheduled_at <= now`) has come and
    /// whose send has not started, earliest first.
    pub async fn due_issues(&self, now: &str) -> StoreResult<Vec<IssueRecord>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(&format!(
                "SELECT * FROM issues WHERE {NOT_STARTED} AND scheduled_at IS NOT NULL \
             AND scheduled_at <= $1 ORDER BY scheduled_at, id"
            ))
            .bind(now)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Mark a due issue `missed` (too late to send automatically), if it is
    /// still the same not-started schedule that was judged.
    pub async fn mark_missed(&self, issue_id: i64, scheduled_at: &str) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(&format!(
            "UPDATE issues SET state = 'missed' WHERE id = $1 AND scheduled_at = $2 AND {NOT_STARTED}"
        ))
        .bind(issue_id)
        .bind(scheduled_at)
        .execute(pool)
        .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Move a due issue to `sending` (so a cancel can no longer win), if it
    /// is still the same not-started schedule that was judged. Returns the
    /// current record, or `None` when it was cancelled, rescheduled or
    /// started meanwhile.
    pub async fn begin_scheduled_send(
        &self,
        issue_id: i64,
        scheduled_at: &str,
    ) -> StoreResult<Option<IssueRecord>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(&format!(
            "UPDATE issues SET state = 'sending' WHERE id = $1 AND scheduled_at = $2 AND {NOT_STARTED} \
             RETURNING *"
        ))
        .bind(issue_id)
        .bind(scheduled_at)
        .fetch_optional(pool)
        .await?)
        })
    }

    /// Undo [`Store::begin_scheduled_send`] when the send did not start
    /// (for example a configuration error), so the issue stays scheduled and
    /// under the lateness guard.
    pub async fn undo_scheduled_send(&self, issue_id: i64) -> StoreResult<bool> {
        super::with_db!(self, |pool, writer, d| {
            let done = sqlx::query(
            "UPDATE issues SET state = 'scheduled' \
             WHERE id = $1 AND state = 'sending' AND started_at IS NULL AND scheduled_at IS NOT NULL",
        )
        .bind(issue_id)
        .execute(pool)
        .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Started live sends (scheduled or manual) that have work a run can do
    /// now: rows pending, left `claimed` by a process that died, deferred
    /// with their next attempt at or before `now`, or `unknown` when
    /// `resend_unknown` (the resend policy). Also those with no open row
    /// left, whose run stopped before marking them sent.
    pub async fn resumable_sends(
        &self,
        now: &str,
        resend_unknown: bool,
    ) -> StoreResult<Vec<IssueRecord>> {
        super::with_db!(self, |pool, writer, d| {
            Ok(sqlx::query_as(
            "SELECT * FROM issues i WHERE i.state = 'sending' AND i.started_at IS NOT NULL AND ( \
               EXISTS (SELECT 1 FROM deliveries d WHERE d.issue_id = i.id AND ( \
                 d.state IN ('pending', 'claimed') \
                 OR (d.state = 'deferred' AND d.next_attempt_at <= $1) \
                 OR ($2 AND d.state = 'unknown'))) \
               OR NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.issue_id = i.id \
                 AND d.state IN ('pending', 'claimed', 'deferred', 'unknown'))) \
             ORDER BY i.started_at, i.id",
        )
        .bind(now)
        .bind(resend_unknown)
        .fetch_all(pool)
        .await?)
        })
    }
}
