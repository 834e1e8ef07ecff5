//! The recorder: the one task that writes delivery outcomes, in batched
//! transactions (group commit). A worker waits for its outcome to be durable
//! before it hands another message to SMTP, so a crash can leave at most one
//! accepted-but-unrecorded message per worker. A failed write is retried
//! a few times; when it keeps failing, the recorder stops and every waiting
//! worker (and the run's report) gets the database's own words. Recording
//! times and the pause between tries come from the engine's clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::clock::Clock;
use crate::store::deliveries::Outcome;
use crate::store::Store;

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 512;

/// Live counters, read by the progress display and the final report.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: AtomicU64,
    pub deferred: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
    pub released: AtomicU64,
    pub bytes: AtomicU64,
    /// Claimed rows whose outcome is not yet recorded.
    pub outstanding: AtomicU64,
    /// Signalled after every recorded batch.
    pub recorded: Notify,
    /// Recipients whose latest outcome in this run is `deferred`: `deferred`
    /// counts recipients, not deferral events.
    deferred_ids: std::sync::Mutex<std::collections::HashSet<i64>>,
}

impl Tally {
    fn count(&self, o: &Outcome) {
        let id = match o {
            // A hand-off mark, not an outcome.
            Outcome::Handed { .. } => return,
            Outcome::Sent { id, .. }
            | Outcome::Deferred { id, .. }
            | Outcome::Failed { id, .. }
            | Outcome::Unknown { id, .. }
            | Outcome::Released { id } => *id,
        };
        {
            let mut deferred = self.deferred_ids.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(o, Outcome::Deferred { .. }) {
                deferred.insert(id);
            } else {
                deferred.remove(&id);
            }
            self.deferred
                .store(deferred.len() as u64, Ordering::Relaxed);
        }
        let counter = match o {
            Outcome::Sent { .. } => &self.sent,
            Outcome::Deferred { .. } => return,
            Outcome::Failed { .. } => &self.failed,
            Outcome::Unknown { .. } => &self.unknown,
            Outcome::Released { .. } => &self.released,
            Outcome::Handed { .. } => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Outcomes that go into the same transaction, and who waits for them.
struct Entry {
    outcomes: Vec<Outcome>,
    done: oneshot::Sender<()>,
}

/// Why the recorder stopped, once it has.
type Failure = Arc<std::sync::Mutex<Option<String>>>;

fn stopped(failure: &Failure) -> anyhow::Error {
    match failure.lock().unwrap_or_else(|e| e.into_inner()).as_deref() {
        Some(cause) => anyhow::anyhow!("the delivery ledger cannot be written: {cause}"),
        None => anyhow::anyhow!("the recorder has stopped"),
    }
}

/// Handle workers use to record outcomes.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Entry>,
    failure: Failure,
}

impl Recorder {
    /// Spawn the recorder task. It ends when every handle is dropped, after
    /// writing what it was given; it returns an error if it could not write.
    /// `holder` is this sender's name: on PostgreSQL, marks and releases
    /// touch only the rows it still holds.
    pub fn spawn(
        store: Store,
        tally: Arc<Tally>,
        clock: Clock,
        holder: String,
    ) -> (Recorder, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let (tx, rx) = mpsc::channel(4096);
        let failure = Failure::default();
        let handle = tokio::spawn(run(store, tally, clock, holder, rx, failure.clone()));
        (Recorder { tx, failure }, handle)
    }

    /// Record one outcome and wait until it is durable.
    pub async fn record(&self, outcome: Outcome) -> anyhow::Result<()> {
        self.submit_together(vec![outcome]).await?.wait().await
    }

    /// Queue outcomes to be committed in one transaction (a worker's
    /// outcome and its next hand-off mark: one commit per message where two
    /// would each wake the database's thread); the returned [`Durable`]
    /// resolves once they are. Lets a worker prepare its next message
    /// meanwhile.
    pub async fn submit_together(&self, outcomes: Vec<Outcome>) -> anyhow::Result<Durable> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Entry { outcomes, done })
            .await
            .map_err(|_| stopped(&self.failure))?;
        Ok(Durable(wait, self.failure.clone()))
    }
}

/// An outcome on its way to the ledger.
pub struct Durable(oneshot::Receiver<()>, Failure);

impl Durable {
    /// Wait until the outcome is committed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.0.await.map_err(|_| stopped(&self.1))
    }
}

async fn run(
    store: Store,
    tally: Arc<Tally>,
    clock: Clock,
    holder: String,
    mut rx: mpsc::Receiver<Entry>,
    failure: Failure,
) -> anyhow::Result<()> {
    let mut batch: Vec<Entry> = Vec::with_capacity(MAX_BATCH);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        outcomes.clear();
        outcomes.extend(batch.iter().flat_map(|e| e.outcomes.iter().cloned()));
        let mut tries = 0;
        loop {
            match store
                .record_outcomes(&outcomes, &clock.now_text(), &holder)
                .await
            {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, attempt = tries, "recording outcomes failed; retrying");
                    clock.sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(e) => {
                    // Dropping the entries tells the waiting workers; their
                    // rows stay `claimed` and are resolved on the next run.
                    tracing::error!(error = %e, "recording outcomes failed for good; stopping the run");
                    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    return Err(
                        anyhow::Error::new(e).context("the delivery ledger cannot be written")
                    );
                }
            }
        }
        for entry in batch.drain(..) {
            for outcome in &entry.outcomes {
                if !matches!(outcome, Outcome::Handed { .. }) {
                    tally.count(outcome);
                    tally.outstanding.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let _ = entry.done.send(());
        }
        tally.recorded.notify_waiters();
    }
    Ok(())
}
