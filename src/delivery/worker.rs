//! One delivery worker: owns one transport connection, reconnecting with
//! backoff; waits on the shared rate limiter; sends; records the outcome and
//! waits for it to be durable before taking the next message. It keeps its
//! current row in a slot the engine reads if the worker dies. Its pauses
//! and retry times are on the engine's clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use super::{FaultPoint, Halt, Shared};
use crate::delivery::compose::Addressee;
use crate::delivery::recorder::Durable;
use crate::mailer::transport::{Connection, SendResult};
use crate::store::deliveries::{ClaimedDelivery, Outcome};

const MAX_PAUSE: Duration = Duration::from_secs(30);

fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_PAUSE)
}

/// Build the message for a claimed row. A signed message is built on the
/// blocking pool: signing is the one step that takes real CPU, and there it
/// runs in parallel on every core while the delivery runtime's one worker
/// thread keeps serving the connections.
async fn compose(
    shared: &Arc<Shared>,
    job: &ClaimedDelivery,
) -> anyhow::Result<crate::mailer::OutgoingMessage> {
    fn build(
        shared: &Shared,
        job: &ClaimedDelivery,
    ) -> anyhow::Result<crate::mailer::OutgoingMessage> {
        shared.composer.compose(&Addressee {
            subscriber_id: job.subscriber_id,
            email: job.email.as_ref(),
            name: job.name.as_deref(),
            attributes: Some(&job.attributes),
            message_id: &job.message_id,
        })
    }
    if !shared.composer.signs() {
        return build(shared, job);
    }
    let (shared, job) = (shared.clone(), job.clone());
    match tokio::task::spawn_blocking(move || build(&shared, &job)).await {
        Ok(message) => message,
        // A panic stays a panic of this worker (its supervisor reports it).
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(anyhow::anyhow!("composing the message: {e}")),
    }
}

/// The row a worker holds, for the engine to resolve if the worker dies.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Slot {
    pub job: Option<i64>,
    /// The message went (or was going) to SMTP: its fate is unknown.
    pub handed: bool,
}

/// Whether the worker holds a usable connection.
enum Connected {
    Yes,
    /// A halt was requested while connecting.
    Halted,
    /// This worker cannot reach the server; the message is why.
    GaveUp(String),
}

struct Worker {
    n: usize,
    shared: Arc<Shared>,
    conn: Option<Connection>,
    /// Consecutive connection troubles (failed connects, lost
    /// connections, 421); reset by any complete exchange.
    failures: u32,
    /// The previous message's outcome, still being committed. It must be
    /// durable before the next message goes to SMTP: that bounds what a
    /// crash can duplicate to one message per worker.
    in_commit: Option<Durable>,
}

pub(super) async fn run(
    n: usize,
    shared: Arc<Shared>,
    jobs: Arc<Mutex<mpsc::Receiver<ClaimedDelivery>>>,
) {
    let mut w = Worker {
        n,
        shared,
        conn: None,
        failures: 0,
        in_commit: None,
    };
    let mut gave_up = false;
    // The next job, taken (and marked) right after a clean exchange.
    let mut next: Option<ClaimedDelivery> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => {
                let job = { jobs.lock().await.recv().await };
                let Some(job) = job else { break };
                w.take(job.id).await;
                job
            }
        };
        if gave_up || w.shared.stop.state() != Halt::None {
            w.release(job.id).await;
            continue;
        }
        match w.deliver(&job, &jobs).await {
            Ok(prefetched) => next = prefetched,
            Err(why) => {
                gave_up = true;
                if w.shared.alive_workers.fetch_sub(1, Ordering::AcqRel) > 1 {
                    // Others still reach the server: leave the work to them.
                    tracing::warn!(worker = n, "{why}; this worker stops");
                    break;
                }
                // The last worker: halt the run, then keep draining the
                // queue (releasing each row) until the claimer closes it.
                tracing::error!(server = %w.shared.connector.describe(), "no worker can reach the server; stopping: {why}");
                w.shared.stop.halt_because(Halt::Unreachable, why);
            }
        }
    }
    w.finish().await;
}

impl Worker {
    fn slot(&self, update: impl FnOnce(&mut Slot)) {
        let mut slot = self.shared.slots[self.n]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        update(&mut slot);
    }

    /// Take a row: hold it in the slot and mark it taken in the ledger
    /// (durable before its message goes out): a crash from now on leaves it
    /// `unknown`, and only this one row of this worker.
    async fn take(&mut self, id: i64) {
        self.hold(id);
        self.submit(vec![Outcome::Handed { id }]).await;
    }

    /// Hold `id` in the slot (not yet handed to SMTP).
    fn hold(&self, id: i64) {
        self.slot(|s| {
            *s = Slot {
                job: Some(id),
                handed: false,
            }
        });
    }

    /// The row leaves this worker (its outcome is about to be recorded).
    fn let_go(&self) {
        self.slot(|s| *s = Slot::default());
    }

    /// Put a row never handed to SMTP back to `pending`.
    async fn release(&self, id: i64) {
        self.let_go();
        if let Err(e) = self.shared.recorder.record(Outcome::Released { id }).await {
            self.shared
                .stop
                .halt_because(Halt::LedgerFailed, format!("{e:#}"));
        }
    }

    /// Send one message and hand its outcome to the recorder. `Ok` may
    /// carry the next job, already taken, so that its mark and this
    /// outcome share one group commit. `Err` means this worker cannot reach
    /// the server any more (the row is resolved).
    async fn deliver(
        &mut self,
        job: &ClaimedDelivery,
        jobs: &Mutex<mpsc::Receiver<ClaimedDelivery>>,
    ) -> Result<Option<ClaimedDelivery>, String> {
        let shared = self.shared.clone();
        let message = match compose(&shared, job).await {
            Ok(m) => m,
            Err(e) => {
                let reply = format!("could not build the message: {e:#}");
                self.let_go();
                let _ = shared
                    .recorder
                    .record(Outcome::Failed {
                        id: job.id,
                        code: None,
                        reply,
                        bounce: None,
                    })
                    .await;
                return Ok(None);
            }
        };
        let domain = job.email.domain();
        let mut replaced_stale = false;
        let mut paced = false;
        let result = loop {
            match self.connect().await {
                Connected::Yes => {}
                Connected::Halted => {
                    self.release(job.id).await;
                    return Ok(None);
                }
                Connected::GaveUp(why) => {
                    self.release(job.id).await;
                    return Err(why);
                }
            }
            if let Some(previous) = self.in_commit.take() {
                if let Err(e) = previous.wait().await {
                    shared
                        .stop
                        .halt_because(Halt::LedgerFailed, format!("{e:#}"));
                    self.release(job.id).await;
                    return Ok(None);
                }
            }
            // The rate limit applies at the moment of sending: after every
            // other wait (connection, previous commit), right before the
            // handoff. A message sent again on a fresh connection after a
            // stale one keeps its place.
            if !paced {
                tokio::select! {
                    _ = shared.limiter.until_ready(domain, &shared.clock) => {}
                    _ = shared.stop.halted() => {
                        self.release(job.id).await;
                        return Ok(None);
                    }
                }
                paced = true;
            }
            // A sender whose registration is about to lapse (PostgreSQL:
            // renewals failing or delayed) hands nothing more out: others
            // may soon resolve its rows.
            if !shared.liveness.ok() {
                shared.stop.halt_because(
                    Halt::LeaseLost,
                    "this sender could not renew its registration in time; others take over its rows"
                        .into(),
                );
                self.release(job.id).await;
                return Ok(None);
            }
            shared.fault(FaultPoint::BeforeSend);
            self.slot(|s| s.handed = true);
            let body_started = AtomicBool::new(false);
            let conn = self.conn.as_mut().expect("connected above");
            let send_timeout = shared.options.send_timeout;
            let stop = shared.stop.clone();
            let clock = shared.clock.clone();
            let result = tokio::select! {
                r = conn.send_tracked(&message, &job.message_id, &body_started) => Some(r),
                // Stopped: a message in flight gets at most one more send
                // timeout to finish.
                _ = async {
                    stop.halted().await;
                    clock.sleep(send_timeout).await;
                } => None,
            };
            let Some(result) = result else {
                self.conn = None;
                if body_started.load(Ordering::Acquire) {
                    self.let_go();
                    self.submit(vec![Outcome::Unknown {
                        id: job.id,
                        reply:
                            "outcome lost: the run stopped while this message was being transmitted"
                                .into(),
                    }])
                    .await;
                } else {
                    self.release(job.id).await;
                }
                return Ok(None);
            };
            if let SendResult::Stale { detail } = &result {
                if !replaced_stale {
                    tracing::info!(worker = self.n, %detail, "the server closed an idle connection; reconnecting");
                    self.conn = None;
                    replaced_stale = true;
                    self.slot(|s| s.handed = false);
                    continue;
                }
            }
            break result;
        };
        shared.fault(FaultPoint::AfterSend);
        if let SendResult::Accepted { .. } = result {
            shared
                .tally
                .bytes
                .fetch_add(message.formatted_len() as u64, Ordering::Relaxed);
        }
        let outcome = shared
            .options
            .retry
            .outcome(job, &result, shared.clock.now());
        let trouble = match &result {
            SendResult::Rejected {
                code: 421, reply, ..
            } => Some(format!("421 {reply}")),
            SendResult::Lost { detail, .. } | SendResult::Stale { detail } => Some(detail.clone()),
            SendResult::Accepted { .. } | SendResult::Rejected { .. } => None,
        };
        if !result.connection_usable() {
            if let Some(old) = self.conn.take() {
                if matches!(result, SendResult::Rejected { .. }) {
                    old.close().await;
                }
            }
        }
        self.let_go();
        // After a clean exchange, take the next job now if one is queued.
        let next = match (&trouble, jobs.try_lock()) {
            (None, Ok(mut rx)) => rx.try_recv().ok(),
            _ => None,
        };
        let Some(trouble) = trouble else {
            self.failures = 0;
            // This outcome and the next row's hand-off mark: one commit.
            let mut outcomes = vec![outcome];
            if let Some(next) = &next {
                self.hold(next.id);
                outcomes.push(Outcome::Handed { id: next.id });
            }
            self.submit(outcomes).await;
            return Ok(next);
        };
        self.submit(vec![outcome]).await;
        self.failures += 1;
        if self.failures >= shared.options.reconnect_attempts {
            return Err(format!(
                "{} connection troubles in a row, the last: {trouble}",
                self.failures
            ));
        }
        let pause = backoff(shared.options.reconnect_backoff, self.failures);
        tracing::info!(
            worker = self.n,
            pause_ms = pause.as_millis() as u64,
            "server trouble; pausing this worker"
        );
        tokio::select! {
            _ = shared.clock.sleep(pause) => {}
            _ = shared.stop.halted() => {}
        }
        Ok(None)
    }

    /// Queue outcomes (one transaction); the next message waits for them
    /// to be durable.
    async fn submit(&mut self, outcomes: Vec<Outcome>) {
        match self.shared.recorder.submit_together(outcomes).await {
            Ok(durable) => self.in_commit = Some(durable),
            Err(e) => self
                .shared
                .stop
                .halt_because(Halt::LedgerFailed, format!("{e:#}")),
        }
    }

    /// Make sure we hold a connection, pausing between failed attempts.
    async fn connect(&mut self) -> Connected {
        let shared = self.shared.clone();
        while self.conn.is_none() {
            let attempt = tokio::select! {
                r = shared.connector.connect() => Some(r),
                _ = shared.stop.halted() => None,
            };
            match attempt {
                None => return Connected::Halted,
                Some(Ok(c)) => self.conn = Some(c),
                Some(Err(e)) => {
                    self.failures += 1;
                    tracing::warn!(worker = self.n, failures = self.failures, error = %e, "cannot connect");
                    if e.permanent {
                        // Every worker would meet the same refusal.
                        shared
                            .stop
                            .halt_because(Halt::Unreachable, e.message.clone());
                        return Connected::GaveUp(e.message);
                    }
                    if self.failures >= shared.options.reconnect_attempts {
                        return Connected::GaveUp(e.message);
                    }
                    let pause = backoff(shared.options.reconnect_backoff, self.failures);
                    tokio::select! {
                        _ = shared.clock.sleep(pause) => {}
                        _ = shared.stop.halted() => return Connected::Halted,
                    }
                }
            }
        }
        Connected::Yes
    }

    async fn finish(mut self) {
        if let Some(previous) = self.in_commit.take() {
            if let Err(e) = previous.wait().await {
                self.shared
                    .stop
                    .halt_because(Halt::LedgerFailed, format!("{e:#}"));
            }
        }
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
    }
}
