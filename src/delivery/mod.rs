//! The delivery engine: claim → rate-limit → send → record.
//!
//! A claimer moves batches of due ledger rows to `claimed` (durably) and
//! feeds them to N workers; each worker owns one transport connection,
//! waits on the shared rate limiter, sends, and hands the outcome to the
//! recorder, which commits outcomes in batches. A halt (operator stop or an
//! unreachable server) stops claiming; rows never handed to SMTP go back to
//! `pending`. A worker that dies halts the run: its row is resolved
//! (`pending` if it never reached SMTP, else `unknown`) and the run ends
//! with the cause.
//!
//! Every "now" and every pause of a run comes from the [`Clock`] in its
//! [`Plan`], so tests can run the engine on a manual clock.
//!
//! `dispatch` is the live send around the engine (register, start under
//! the send lease, run, outcome); `lease` the named leases it and
//! `run-due` hold; `live_guard` the settings a live SMTP send needs.

pub(crate) mod compose;
pub mod dispatch;
pub(crate) mod lease;
pub(crate) mod live_guard;
pub(crate) mod policy;
pub mod progress;
pub(crate) mod ratelimit;
pub(crate) mod recorder;
mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};

use crate::clock::Clock;
use crate::config::{SenderSettings, SmtpSettings};
use crate::mailer::transport::Connector;
use crate::store::deliveries::{ClaimedDelivery, Outcome};
use crate::store::issues::IssueRecord;
use crate::store::{parse_time, Store};
use compose::Composer;
use policy::RetryPolicy;
use ratelimit::SendLimiter;
use recorder::{Recorder, Tally};

/// Why a run stopped before the work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// Keep going.
    None,
    /// The operator asked to stop (Ctrl-C, SIGTERM).
    Interrupted,
    /// No worker could reach the server.
    Unreachable,
    /// The ledger could not be written.
    LedgerFailed,
    /// A delivery worker died (a bug): the run stops rather than limp on.
    WorkerDied,
    /// Another process took over the send's lease.
    LeaseLost,
}

/// A stop switch shared by the engine's tasks and the signal handler. The
/// first halt wins and keeps its cause.
#[derive(Clone)]
pub struct Stopper {
    tx: Arc<watch::Sender<Halt>>,
    cause: Arc<std::sync::Mutex<Option<String>>>,
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper {
            tx: Arc::new(watch::channel(Halt::None).0),
            cause: Arc::default(),
        }
    }
}

impl Stopper {
    pub fn halt(&self, why: Halt) {
        self.set(why, None);
    }

    /// Halt, saying why in words (shown to the operator).
    pub fn halt_because(&self, why: Halt, cause: String) {
        self.set(why, Some(cause));
    }

    fn set(&self, why: Halt, cause: Option<String>) {
        self.tx.send_if_modified(|h| {
            if *h == Halt::None {
                *h = why;
                *self.cause.lock().unwrap_or_else(|e| e.into_inner()) = cause;
                true
            } else {
                false
            }
        });
    }

    pub fn state(&self) -> Halt {
        *self.tx.borrow()
    }

    /// The cause given with the halt, if any.
    pub fn cause(&self) -> Option<String> {
        self.cause.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn subscribe(&self) -> watch::Receiver<Halt> {
        self.tx.subscribe()
    }

    /// Resolves once a halt is requested.
    pub async fn halted(&self) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|h| *h != Halt::None).await;
    }
}

/// Tunables of one run, from `[sender]` and `[smtp]`.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// How long a run waits for deferred rows to come due before leaving
    /// them to the next run.
    pub linger: Duration,
    /// Consecutive failed connection attempts after which a worker gives up.
    pub reconnect_attempts: u32,
    pub reconnect_backoff: Duration,
    /// Bound of each send stage; a stopped run waits this long for a
    /// message in flight.
    pub send_timeout: Duration,
    /// `sender.on_unknown = "resend"`: rows whose outcome was lost go back
    /// to `pending` when recovered.
    pub resend_unknown: bool,
}

impl EngineOptions {
    pub fn new(sender: &SenderSettings, smtp: &SmtpSettings) -> EngineOptions {
        EngineOptions {
            concurrency: sender.concurrency,
            retry: RetryPolicy {
                max_attempts: sender.max_attempts,
                base: Duration::from_millis(sender.retry_base_ms),
            },
            linger: Duration::from_secs(sender.linger_secs),
            reconnect_attempts: smtp.reconnect_attempts,
            reconnect_backoff: Duration::from_millis(smtp.reconnect_backoff_ms),
            send_timeout: Duration::from_secs(smtp.send_timeout_secs),
            resend_unknown: sender.on_unknown == crate::config::OnUnknown::Resend,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
    pub unknown: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub halt: Halt,
    /// Why the run halted, in words, when it says.
    pub cause: Option<String>,
}

/// Where the fault-injection hook makes a worker panic (for the tests of
/// worker death; set with `HERALD_FAULT_WORKER_PANIC=before-send:N` or
/// `after-send:N`, N counting messages handed over in this run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultPoint {
    BeforeSend,
    AfterSend,
}

fn fault_from_env() -> Option<(FaultPoint, u64)> {
    let value = std::env::var("HERALD_FAULT_WORKER_PANIC").ok()?;
    let (point, n) = value.split_once(':')?;
    let point = match point {
        "before-send" => FaultPoint::BeforeSend,
        "after-send" => FaultPoint::AfterSend,
        _ => return None,
    };
    Some((point, n.parse().ok()?))
}

/// Shared by the claimer and the workers.
struct Shared {
    store: Store,
    composer: Composer,
    connector: Connector,
    limiter: Arc<SendLimiter>,
    /// This process's sender name: the rows it claims carry it.
    holder: String,
    /// Whether the lease still allows handing messages to SMTP.
    liveness: lease::Liveness,
    recorder: Recorder,
    tally: Arc<Tally>,
    stop: Stopper,
    options: EngineOptions,
    clock: Clock,
    alive_workers: AtomicUsize,
    /// Each worker's current row.
    slots: Vec<std::sync::Mutex<worker::Slot>>,
    fault: Option<(FaultPoint, u64)>,
    /// Messages that reached each fault point (counted only with a fault
    /// configured).
    fault_count: [std::sync::atomic::AtomicU64; 2],
}

impl Shared {
    /// The fault-injection hook: panic at the configured point.
    fn fault(&self, at: FaultPoint) {
        let Some((point, n)) = self.fault else { return };
        if point != at {
            return;
        }
        let seen = self.fault_count[at as usize].fetch_add(1, Ordering::AcqRel) + 1;
        if seen == n {
            panic!("injected fault: worker panic {at:?} message {n}");
        }
    }
}

/// How often a sender with nothing left to claim looks again while other
/// senders still hold claimed rows.
const OTHERS_POLL: Duration = Duration::from_millis(500);

/// Claimed rows waiting for a worker, at most: enough to keep workers
/// busy, few enough that an unsubscribe arriving mid-send is seen soon.
fn claim_queue(concurrency: usize) -> usize {
    (concurrency * 8).clamp(32, 512)
}

/// How one run delivers: message builder, transport, pacing, tunables,
/// and the clock it runs on.
pub struct Plan {
    pub composer: Composer,
    pub connector: Connector,
    pub limiter: Arc<SendLimiter>,
    /// This process's name as a sender of the issue (its lease holder).
    pub holder: String,
    /// Checked right before each message goes to SMTP.
    pub liveness: lease::Liveness,
    pub options: EngineOptions,
    pub clock: Clock,
}

/// Deliver the issue's due rows. The caller holds the issue's lease, has
/// started the live send (audience snapshotted) and recovered the rows a
/// previous run left `claimed`.
pub async fn run(
    store: &Store,
    issue: &IssueRecord,
    plan: Plan,
    stop: Stopper,
    progress: &progress::Progress,
) -> anyhow::Result<RunReport> {
    let Plan {
        composer,
        connector,
        limiter,
        holder,
        liveness,
        options,
        clock,
    } = plan;
    let started = clock.instant();
    let tally = Arc::new(Tally::default());
    let (recorder, recorder_task) =
        Recorder::spawn(store.clone(), tally.clone(), clock.clone(), holder.clone());
    let concurrency = options.concurrency;
    let shared = Arc::new(Shared {
        store: store.clone(),
        composer,
        connector,
        limiter,
        holder,
        liveness,
        recorder,
        tally: tally.clone(),
        stop: stop.clone(),
        options,
        clock: clock.clone(),
        alive_workers: AtomicUsize::new(concurrency),
        slots: (0..concurrency).map(|_| Default::default()).collect(),
        fault: fault_from_env(),
        fault_count: Default::default(),
    });

    let (job_tx, job_rx) = mpsc::channel::<ClaimedDelivery>(claim_queue(concurrency));
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut supervisors = Vec::with_capacity(concurrency);
    for n in 0..concurrency {
        let handle = tokio::spawn(worker::run(n, shared.clone(), job_rx.clone()));
        supervisors.push(supervise(n, handle, shared.clone()));
    }

    let progress_task = progress.start(tally.clone(), store.delivery_counts(issue.id).await?);
    // The claimer runs on the runtime's workers, beside the delivery
    // workers it feeds, not on the caller's thread: waking that thread for
    // each claim (and each row the database thread streams back) cost a
    // context switch every time.
    let claimer = tokio::spawn({
        let shared = shared.clone();
        let issue_id = issue.id;
        async move { claim_loop(&shared, issue_id, job_tx).await }
    });
    let (claim_result, _) = tokio::join!(claimer, futures_util::future::join_all(supervisors));
    let claim_result = claim_result.map_err(|e| anyhow::anyhow!("the claimer crashed: {e}"))?;
    // Rows still queued when the last worker ended never reached SMTP.
    while let Ok(job) = job_rx.lock().await.try_recv() {
        if let Err(e) = shared
            .recorder
            .record(Outcome::Released { id: job.id })
            .await
        {
            stop.halt_because(Halt::LedgerFailed, format!("{e:#}"));
            break;
        }
    }
    drop(job_rx);
    let Shared { recorder, .. } = Arc::into_inner(shared).expect("workers have ended");
    drop(recorder);
    let recorded = recorder_task.await?;
    progress_task.finish().await;
    claim_result?;
    if let Err(e) = recorded {
        stop.halt_because(Halt::LedgerFailed, format!("{e:#}"));
        return Err(e);
    }
    store
        .finish_issue_if_done(issue.id, &clock.now_text())
        .await?;
    Ok(RunReport {
        sent: tally.sent.load(Ordering::Relaxed),
        deferred: tally.deferred.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        unknown: tally.unknown.load(Ordering::Relaxed),
        bytes: tally.bytes.load(Ordering::Relaxed),
        elapsed: clock.elapsed_since(started),
        halt: stop.state(),
        cause: stop.cause(),
    })
}

/// Wait for worker `n`; if it died, halt the run and resolve its row:
/// `pending` if the message never reached SMTP, else `unknown`.
async fn supervise(n: usize, handle: tokio::task::JoinHandle<()>, shared: Arc<Shared>) {
    let Err(err) = handle.await else { return };
    let why = if err.is_panic() {
        let payload = err.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    } else {
        err.to_string()
    };
    let cause = format!("a delivery worker crashed: {why}");
    tracing::error!(worker = n, "{cause}; stopping the run");
    shared.stop.halt_because(Halt::WorkerDied, cause);
    let slot = std::mem::take(&mut *shared.slots[n].lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(id) = slot.job {
        let outcome = if slot.handed {
            Outcome::Unknown {
                id,
                reply: "outcome lost: the delivery worker crashed while this message was in flight"
                    .into(),
            }
        } else {
            Outcome::Released { id }
        };
        if let Err(e) = shared.recorder.record(outcome).await {
            shared
                .stop
                .halt_because(Halt::LedgerFailed, format!("{e:#}"));
        }
    }
}

/// Claim due rows and feed them to the workers until nothing is due (and no
/// deferred row comes due within the linger time) or a halt.
async fn claim_loop(
    shared: &Shared,
    issue_id: i64,
    jobs: mpsc::Sender<ClaimedDelivery>,
) -> anyhow::Result<()> {
    // Half the queue per claim, claimed once that much room is free: the
    // claimer wakes once per batch, not once for every row a worker takes.
    let limit = claim_queue(shared.options.concurrency) / 2;
    let tally = &shared.tally;
    let clock = &shared.clock;
    loop {
        if shared.stop.state() != Halt::None {
            return Ok(());
        }
        let room = tokio::select! {
            room = jobs.reserve_many(limit) => room,
            _ = shared.stop.halted() => return Ok(()),
        };
        // Every worker has ended: nothing more can be sent.
        let Ok(room) = room else { return Ok(()) };
        let batch = shared
            .store
            .claim_due(issue_id, &clock.now_text(), limit as i64, &shared.holder)
            .await?;
        if batch.is_empty() {
            drop(room);
            // Rows still with workers may come back deferred: wait for them.
            // Registered before the count is read, so a batch recorded in
            // between still wakes this wait.
            let recorded = tally.recorded.notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            if tally.outstanding.load(Ordering::Acquire) > 0 {
                tokio::select! {
                    _ = recorded => {}
                    _ = shared.stop.halted() => {}
                }
                continue;
            }
            // Rows another sender holds (PostgreSQL): wait for them, and
            // resolve those of a sender whose registration lapsed, so a
            // sender that died leaves nothing behind.
            if shared
                .store
                .claimed_by_others(issue_id, &shared.holder)
                .await?
                > 0
            {
                let (lost, requeued) = shared
                    .store
                    .recover_claimed(
                        issue_id,
                        shared.options.resend_unknown,
                        &clock.now_text(),
                        &crate::store::now_text(),
                    )
                    .await?;
                if lost + requeued > 0 {
                    tracing::warn!(
                        unknown = lost,
                        requeued,
                        "took over the rows of a sender that stopped renewing its registration"
                    );
                }
                tokio::select! {
                    _ = clock.sleep(OTHERS_POLL) => {}
                    _ = shared.stop.halted() => {}
                }
                continue;
            }
            let Some(next) = shared.store.next_deferred_at(issue_id).await? else {
                return Ok(());
            };
            let now = clock.now();
            let next_at = parse_time(&next).unwrap_or(now);
            let wait = (next_at - now).to_std().unwrap_or(Duration::ZERO);
            if wait > shared.options.linger {
                tracing::info!(
                    "the next deferred retry is due at {} UTC, after sender.linger_secs; \
                     left to the next run (`herald run-due`, or `herald send --live` again)",
                    next_at.format("%Y-%m-%d %H:%M:%S")
                );
                return Ok(());
            }
            if wait >= Duration::from_secs(1) {
                let window =
                    now + chrono::Duration::from_std(shared.options.linger).unwrap_or_default();
                let (rows, reply) = shared
                    .store
                    .deferred_due_by(issue_id, &crate::store::format_time(window))
                    .await?;
                let reply = reply
                    .filter(|r| !r.trim().is_empty())
                    .map(|r| format!(" (last reply: {})", r.trim()))
                    .unwrap_or_default();
                tracing::info!(
                    "waiting until {} UTC for {rows} deferred {}{reply}; Ctrl-C leaves {} to the next run",
                    next_at.format("%H:%M:%S"),
                    if rows == 1 { "retry" } else { "retries" },
                    if rows == 1 { "it" } else { "them" },
                );
            }
            tokio::select! {
                _ = clock.sleep(wait + Duration::from_millis(5)) => {}
                _ = shared.stop.halted() => {}
            }
            continue;
        }
        tally
            .outstanding
            .fetch_add(batch.len() as u64, Ordering::AcqRel);
        for (permit, job) in room.zip(batch) {
            permit.send(job);
        }
    }
}
