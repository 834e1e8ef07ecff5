//! Scheduled sends: when an issue is due, how late is too late, and the
//! `run-due` pass that cron (or a systemd timer) starts every minute.
//!
//! "Now" is a value, [`Clock`]: production uses the system clock; the
//! hidden `--now RFC3339` flag of `herald schedule` and `herald run-due`
//! fixes it, so tests (and an operator replaying a situation) decide which
//! issues are due and which are late; the sends of such a run go by a
//! clock that starts at that time and runs on (`Clock::engine`), so their
//! stamps and retry times are in the same frame. Lease expiry always uses
//! the real clock: it coordinates running processes, not the calendar.
//!
//! Overlap safety needs no flock: a run holds the lease `run-due`, a row in
//! the same database the sends write (holder `host:pid:random`, expiry,
//! renewed while working). A second run finds it held and exits 0 at once;
//! a lease whose holder died is taken over (at once on the same host, after
//! expiry elsewhere). Underneath, every issue has its own send lease and
//! every recipient's row is durably claimed before its message leaves, so
//! even overlapping runs could not send one recipient twice.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::OnUnknown;
use crate::delivery::dispatch::{Dispatch, Finished, SendOutcome, Severity, Started, StartedSend};
use crate::delivery::lease::{Lease, Taken};
use crate::delivery::Stopper;
use crate::store::issues::IssueRecord;
use crate::store::{format_time, parse_time};

/// The lease a `run-due` pass holds.
pub const RUN_DUE_LEASE: &str = "run-due";

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock (production).
    System,
    /// A fixed instant (`--now`, tests).
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The system clock unless `--now` was given.
    pub fn from_flag(now: Option<Timestamp>) -> Clock {
        now.map_or(Clock::System, |t| Clock::Fixed(t.0))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
        }
    }

    /// The clock the sends of this run go by: the system clock, or under
    /// `--now` one that starts at that time and runs on.
    pub fn engine(&self) -> crate::clock::Clock {
        match self {
            Clock::System => crate::clock::Clock::system(),
            Clock::Fixed(t) => crate::clock::Clock::starting_at(*t),
        }
    }
}

/// Why a time or a duration on the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error(
        "`{0}` is not an RFC 3339 time (e.g. 2030-01-06T07:00:00Z or 2030-01-06T08:00:00+01:00)"
    )]
    Time(String),
    #[error("`{0}` is not a duration (e.g. 30m, 2h, 1d, 1h 30m)")]
    Duration(String),
    #[error("{0} from now is out of range")]
    OutOfRange(String),
}

/// A point in time given as RFC 3339 (any offset), held in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn new(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t)
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The stored text form (text order is time order).
    pub fn stored(&self) -> String {
        format_time(self.0)
    }
}

impl FromStr for Timestamp {
    type Err = WhenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(|_| WhenError::Time(s.to_string()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    }
}

/// A delay such as `30m`, `2h`, `1d` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay(Duration);

impl Delay {
    pub fn as_duration(&self) -> Duration {
        self.0
    }

    /// `now` plus this delay.
    pub fn after(&self, now: DateTime<Utc>) -> Result<Timestamp, WhenError> {
        chrono::Duration::from_std(self.0)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .map(Timestamp)
            .ok_or_else(|| WhenError::OutOfRange(human(self.0)))
    }
}

impl FromStr for Delay {
    type Err = WhenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(Delay)
            .map_err(|_| WhenError::Duration(s.to_string()))
    }
}

/// What the lateness guard says about a scheduled time at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its time has not come.
    NotDue,
    /// Send it (late by at most the allowed lateness).
    Due,
    /// More than `max_lateness` late: not sent automatically.
    Missed { late: Duration },
}

/// Judge a scheduled time: due from `at` on, missed once more than
/// `max_lateness` has passed since.
pub fn judge(at: DateTime<Utc>, now: DateTime<Utc>, max_lateness: Duration) -> Verdict {
    match (now - at).to_std() {
        Err(_) => Verdict::NotDue,
        Ok(late) if late > max_lateness => Verdict::Missed { late },
        Ok(_) => Verdict::Due,
    }
}

/// A duration for people: whole seconds, e.g. "7h 2m 5s" or
/// "3 years 1 month 2 days" (spelled-out units get a space).
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
        .to_string()
        .split(' ')
        .map(|part| {
            let unit_at = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            let (n, unit) = part.split_at(unit_at);
            if unit.len() > 2 {
                format!("{n} {unit}")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one `run-due` pass did.
#[derive(Debug)]
pub enum RunDue {
    /// Another process holds the `run-due` lease; nothing was done.
    LeaseHeld { holder: String, until: String },
    /// This pass held the lease; one entry per issue it looked at.
    Ran(Vec<IssueOutcome>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Handed to the delivery engine; how its run ended.
    Delivered(SendOutcome),
    /// Too late: marked `missed`, not sent.
    Missed,
    /// Another process is sending it; left to that process.
    Busy,
    /// Cancelled, rescheduled or started by someone else meanwhile.
    Changed,
    /// The send could not run; `bad_input` when the cause is configuration.
    Failed { bad_input: bool },
}

impl IssueOutcome {
    pub fn severity(&self) -> Severity {
        match self {
            IssueOutcome::Delivered(outcome) => outcome.severity(),
            IssueOutcome::Missed | IssueOutcome::Failed { bad_input: false } => Severity::Failed,
            IssueOutcome::Failed { bad_input: true } => Severity::BadInput,
            IssueOutcome::Busy | IssueOutcome::Changed => Severity::Ok,
        }
    }
}

impl RunDue {
    /// The worst outcome: ok when nothing was to do (or another run holds
    /// the lease); failed when a send failed or an issue was missed.
    pub fn severity(&self) -> Severity {
        let RunDue::Ran(runs) = self else {
            return Severity::Ok;
        };
        runs.iter()
            .map(IssueOutcome::severity)
            .max()
            .unwrap_or(Severity::Ok)
    }
}

/// Told about each send a `run-due` pass starts and finishes (the command
/// line prints them).
pub trait SendObserver: Send {
    fn started(&mut self, send: &StartedSend);
    fn finished(&mut self, finished: &Finished);
}

/// One pass: take the `run-due` lease, send every scheduled issue whose
/// time has come (marking those past the lateness guard `missed`), then
/// resume interrupted live sends. Per-issue problems are logged here and
/// reported in the result; only database errors outside an issue's send
/// are returned as errors. `interrupt` is the operator's stop: the send
/// running then halts and the pass ends.
pub async fn run_due(
    dispatch: &Dispatch<'_>,
    clock: Clock,
    interrupt: &Stopper,
    observer: &mut dyn SendObserver,
) -> anyhow::Result<RunDue> {
    // On PostgreSQL passes on several hosts run at once: every change of
    // state they make is conditional, and their sends share each issue.
    let lease = if dispatch.store.shares_sends() {
        None
    } else {
        let length = Duration::from_secs(dispatch.settings.schedule.lease_secs);
        match Lease::new(RUN_DUE_LEASE, length)
            .take(dispatch.store)
            .await?
        {
            Taken::Held(guard) => Some(guard),
            Taken::Busy { holder, until } => return Ok(RunDue::LeaseHeld { holder, until }),
        }
    };
    let result = Pass {
        dispatch,
        interrupt,
        observer,
    }
    .run(clock)
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result.map(RunDue::Ran)
}

/// One `run-due` pass under its lease.
struct Pass<'a, 'b> {
    dispatch: &'a Dispatch<'b>,
    interrupt: &'a Stopper,
    observer: &'a mut dyn SendObserver,
}

impl Pass<'_, '_> {
    async fn run(&mut self, clock: Clock) -> anyhow::Result<Vec<IssueOutcome>> {
        let store = self.dispatch.store;
        let settings = self.dispatch.settings;
        let now = clock.now();
        let now_text = format_time(now);
        let due = store.due_issues(&now_text).await?;
        let resumable = store
            .resumable_sends(&now_text, settings.sender.on_unknown == OnUnknown::Resend)
            .await?;
        if due.is_empty() && resumable.is_empty() {
            tracing::debug!("run-due: nothing is due");
            return Ok(Vec::new());
        }
        tracing::info!(
            "run-due: {} scheduled issue(s) due, {} live send(s) to resume",
            due.len(),
            resumable.len()
        );
        let max_lateness = Duration::from_secs(settings.schedule.max_lateness_secs);
        let mut runs = Vec::new();
        for issue in due {
            let outcome = self.scheduled(&issue, now, max_lateness).await?;
            let stop = outcome.severity() == Severity::Interrupted;
            runs.push(outcome);
            if stop {
                return Ok(runs);
            }
        }
        for issue in resumable {
            tracing::info!(issue = %issue.slug, "resuming an interrupted live send");
            let outcome = self.deliver(issue).await;
            let stop = outcome.severity() == Severity::Interrupted;
            runs.push(outcome);
            if stop {
                break;
            }
        }
        Ok(runs)
    }

    /// A due scheduled issue: guard against lateness, then send.
    async fn scheduled(
        &mut self,
        issue: &IssueRecord,
        now: DateTime<Utc>,
        max_lateness: Duration,
    ) -> anyhow::Result<IssueOutcome> {
        let store = self.dispatch.store;
        let Some(at_text) = issue.scheduled_at.as_deref() else {
            return Ok(IssueOutcome::Changed);
        };
        let Some(at) = parse_time(at_text) else {
            anyhow::bail!(
                "issue `{}`: unreadable scheduled time `{at_text}`",
                issue.slug
            );
        };
        match judge(at, now, max_lateness) {
            Verdict::NotDue => Ok(IssueOutcome::Changed),
            Verdict::Missed { late } => {
                if !store.mark_missed(issue.id, at_text).await? {
                    return Ok(IssueOutcome::Changed);
                }
                let file = issue.source_path.as_deref().unwrap_or(&issue.slug);
                tracing::warn!(
                    issue = %issue.slug,
                    "missed: `{}` was due at {at_text} and is {} late, beyond schedule.max_lateness_secs ({}); \
                     NOT sent. To send it anyway: herald send {file} --live",
                    issue.slug,
                    human(late),
                    self.dispatch.settings.schedule.max_lateness_secs,
                );
                Ok(IssueOutcome::Missed)
            }
            Verdict::Due => {
                let Some(record) = store.begin_scheduled_send(issue.id, at_text).await? else {
                    tracing::info!(issue = %issue.slug, "changed meanwhile (cancelled, rescheduled or started); skipped");
                    return Ok(IssueOutcome::Changed);
                };
                tracing::info!(issue = %record.slug, scheduled_at = %at_text, "sending scheduled issue");
                let id = record.id;
                let outcome = self.deliver(record).await;
                if matches!(outcome, IssueOutcome::Failed { .. } | IssueOutcome::Busy) {
                    // Not started: keep it scheduled (and under the guard).
                    store.undo_scheduled_send(id).await?;
                }
                Ok(outcome)
            }
        }
    }

    /// Start and run one issue's send, non-interactively.
    async fn deliver(&mut self, record: IssueRecord) -> IssueOutcome {
        let slug = record.slug.clone();
        match self.try_deliver(record).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::error!(issue = %slug, "send failed: {err:#}");
                IssueOutcome::Failed {
                    bad_input: crate::error::is_bad_input(&err),
                }
            }
        }
    }

    async fn try_deliver(&mut self, record: IssueRecord) -> anyhow::Result<IssueOutcome> {
        match self.dispatch.start(record.into()).await? {
            Started::Busy { slug, holder, .. } => {
                tracing::info!(issue = %slug, %holder, "another process is sending this issue; left to it");
                Ok(IssueOutcome::Busy)
            }
            Started::Ready(send) => {
                self.observer.started(&send);
                let finished = self.dispatch.run(send, self.interrupt).await?;
                self.observer.finished(&finished);
                Ok(IssueOutcome::Delivered(finished.outcome))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse::<Timestamp>().unwrap().as_datetime()
    }

    const SIX_HOURS: Duration = Duration::from_secs(6 * 3600);

    #[test]
    fn an_issue_is_due_from_its_time_until_the_lateness_guard() {
        let at = t("2030-01-06T07:00:00Z");
        assert_eq!(
            judge(at, t("2030-01-06T06:59:59Z"), SIX_HOURS),
            Verdict::NotDue
        );
        assert_eq!(judge(at, at, SIX_HOURS), Verdict::Due);
        assert_eq!(
            judge(at, t("2030-01-06T13:00:00Z"), SIX_HOURS),
            Verdict::Due
        );
        assert_eq!(
            judge(at, t("2030-01-06T13:00:01Z"), SIX_HOURS),
            Verdict::Missed {
                late: Duration::from_secs(6 * 3600 + 1)
            }
        );
    }

    #[test]
    fn timestamps_take_any_offset_and_are_held_in_utc() {
        let a: Timestamp = "2030-01-06T08:00:00+01:00".parse().unwrap();
        let b: Timestamp = "2030-01-06T07:00:00Z".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.stored(), "2030-01-06T07:00:00.000Z");
        assert_eq!(a.to_string(), "2030-01-06T07:00:00Z");
        for bad in [
            "",
            "tomorrow",
            "2030-01-06",
            "2030-01-06 07:00",
            "2030-13-01T00:00:00Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn delays_read_like_people_write_them() {
        let now = t("2030-01-06T07:00:00Z");
        for (text, then) in [
            ("30m", "2030-01-06T07:30:00Z"),
            ("2h", "2030-01-06T09:00:00Z"),
            ("1d", "2030-01-07T07:00:00Z"),
            ("1h 30m", "2030-01-06T08:30:00Z"),
        ] {
            let d: Delay = text.parse().unwrap();
            assert_eq!(d.after(now).unwrap().as_datetime(), t(then), "{text}");
        }
        let forever: Delay = "100000000y".parse().unwrap();
        assert!(forever.after(now).is_err());
        for bad in ["", "soon", "2 parsecs", "-1h"] {
            assert!(bad.parse::<Delay>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_like_words() {
        assert_eq!(human(Duration::from_secs(7 * 3600 + 125)), "7h 2m 5s");
        let day = 86_400;
        assert_eq!(human(Duration::from_secs(2 * day)), "2 days");
        assert_eq!(human(Duration::from_secs(day + 3600)), "1 day 1h");
        let three_years_a_month = 3 * 31_557_600 + 2_630_016;
        assert_eq!(
            human(Duration::from_secs(three_years_a_month)),
            "3 years 1 month"
        );
    }

    #[test]
    fn the_severity_is_the_worst_outcome() {
        let ran = |outcomes: &[IssueOutcome]| RunDue::Ran(outcomes.to_vec());
        use IssueOutcome::*;
        let done = Delivered(SendOutcome::Completed { left: 0, held: 0 });
        let unreachable = Delivered(SendOutcome::Unreachable {
            server: "s".into(),
            left: 1,
            cause: None,
        });
        let interrupted = Delivered(SendOutcome::Interrupted { left: 1 });
        assert_eq!(ran(&[]).severity(), Severity::Ok);
        assert_eq!(
            RunDue::LeaseHeld {
                holder: "h".into(),
                until: "u".into()
            }
            .severity(),
            Severity::Ok
        );
        assert_eq!(ran(&[done.clone(), Busy, Changed]).severity(), Severity::Ok);
        assert_eq!(ran(&[done.clone(), Missed]).severity(), Severity::Failed);
        assert_eq!(ran(&[unreachable, done]).severity(), Severity::Failed);
        assert_eq!(
            ran(&[Missed, Failed { bad_input: true }]).severity(),
            Severity::BadInput
        );
        assert_eq!(
            ran(&[Failed { bad_input: false }, interrupted]).severity(),
            Severity::Interrupted
        );
    }
}
