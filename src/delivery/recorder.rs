//! The recorder: the one task that writes delivery outcomes, in batched
//! transactions (group commit). A worker waits for its outcome to be durable
//! before it hands another message to SMTP, so a crash can leave at most one
//! accepted-but-unrecorded message per worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::store::deliveries::Outcome;
use crate::store::{now_text, Store};

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
}

impl Tally {
    fn count(&self, o: &Outcome) {
        let counter = match o {
            Outcome::Sent { .. } => &self.sent,
            Outcome::Deferred { .. } => &self.deferred,
            Outcome::Failed { .. } => &self.failed,
            Outcome::Unknown { .. } => &self.unknown,
            Outcome::Released { .. } => &self.released,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Entry {
    outcome: Outcome,
    done: oneshot::Sender<()>,
}

/// Handle workers use to record outcomes.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Entry>,
}

impl Recorder {
    /// Spawn the recorder task. It ends when every handle is dropped, after
    /// writing what it was given; it returns an error if it could not write.
    pub fn spawn(
        store: Store,
        tally: Arc<Tally>,
    ) -> (Recorder, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let (tx, rx) = mpsc::channel(4096);
        let handle = tokio::spawn(run(store, tally, rx));
        (Recorder { tx }, handle)
    }

    /// Record one outcome and wait until it is durable.
    pub async fn record(&self, outcome: Outcome) -> anyhow::Result<()> {
        self.submit(outcome).await?.wait().await
    }

    /// Queue one outcome; the returned [`Durable`] resolves once it is
    /// committed. Lets a worker prepare its next message meanwhile.
    pub async fn submit(&self, outcome: Outcome) -> anyhow::Result<Durable> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Entry { outcome, done })
            .await
            .map_err(|_| anyhow::anyhow!("the recorder has stopped"))?;
        Ok(Durable(wait))
    }
}

/// An outcome on its way to the ledger.
pub struct Durable(oneshot::Receiver<()>);

impl Durable {
    /// Wait until the outcome is committed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.0
            .await
            .map_err(|_| anyhow::anyhow!("the recorder could not write an outcome"))
    }
}

async fn run(store: Store, tally: Arc<Tally>, mut rx: mpsc::Receiver<Entry>) -> anyhow::Result<()> {
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
        outcomes.extend(batch.iter().map(|e| e.outcome.clone()));
        let mut tries = 0;
        loop {
            match store.record_outcomes(&outcomes, &now_text()).await {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, attempt = tries, "recording outcomes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(e) => {
                    // Dropping the entries tells the waiting workers; their
                    // rows stay `claimed` and are resolved on the next run.
                    return Err(anyhow::Error::new(e).context("recording delivery outcomes"));
                }
            }
        }
        for entry in batch.drain(..) {
            tally.count(&entry.outcome);
            tally.outstanding.fetch_sub(1, Ordering::AcqRel);
            let _ = entry.done.send(());
        }
        tally.recorded.notify_waiters();
    }
    Ok(())
}
