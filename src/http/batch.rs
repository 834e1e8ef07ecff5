//! Batched database work for concurrent requests. Every link request reads
//! one subscriber, and a first unsubscribe writes one; with the SQLite
//! driver each statement is a round trip to a connection's worker thread,
//! and at thousands of requests per second those thread hand-offs (and, for
//! writes, one transaction each) are the cost, not SQLite.
//!
//! So requests queue their subscriber id here and one task per kind runs
//! the queue as batches (`WHERE id IN (…)`), a bounded number at a time.
//! Batching is natural: an idle server runs each request at once; a busy
//! one groups whatever queued while the previous batches ran. No timer, no
//! added latency. Writes run one batch at a time (SQLite has one writer),
//! each batch one transaction: group commit.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::domain::UnsubscribeSource;
use crate::store::unsubscribe::LinkSubscriber;
use crate::store::{Store, StoreError, StoreResult};

/// Most ids in one statement.
pub const MAX_BATCH: usize = 128;
/// Read batches running at once (the pool has a few connections, and
/// writes need one too).
pub const READS_IN_FLIGHT: usize = 2;
/// Requests waiting beyond this make callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;

type Answer<V> = Result<V, Arc<StoreError>>;
type Queued<K, V> = (K, oneshot::Sender<Answer<V>>);

/// A queue in front of one batched statement: `get(key)` answers with that
/// key's share of the batch it ran in. Cheap to clone; the task ends when
/// the last handle is dropped.
pub struct Batcher<K, V> {
    queue: mpsc::Sender<Queued<K, V>>,
}

impl<K, V> Clone for Batcher<K, V> {
    fn clone(&self) -> Self {
        Batcher {
            queue: self.queue.clone(),
        }
    }
}

impl<K: Send + 'static, V: Send + 'static> Batcher<K, V> {
    /// Start the batching task on the current tokio runtime. `run` gets the
    /// keys of one batch (possibly repeated) and answers for each, in order.
    fn spawn<F, Fut>(in_flight: usize, run: F) -> Batcher<K, V>
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<Vec<V>>> + Send + 'static,
    {
        let (queue, requests) = mpsc::channel(QUEUE);
        tokio::spawn(drive(requests, in_flight, run));
        Batcher { queue }
    }

    /// Queue `key` and wait for its answer.
    pub async fn get(&self, key: K) -> anyhow::Result<V> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((key, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the batching task has stopped"))?;
        Ok(answer
            .await
            .context("the batching task dropped a request")??)
    }
}

async fn drive<K, V, F, Fut>(mut requests: mpsc::Receiver<Queued<K, V>>, in_flight: usize, run: F)
where
    V: Send + 'static,
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<V>>> + Send + 'static,
{
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if running.len() >= in_flight {
            running.join_next().await;
            continue;
        }
        let Some(first) = requests.recv().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (ids, replies): (Vec<K>, Vec<_>) = batch.into_iter().unzip();
        let work = run(ids);
        running.spawn(async move {
            match work.await {
                Ok(answers) => {
                    debug_assert_eq!(answers.len(), replies.len());
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for reply in replies {
                        let _ = reply.send(Err(Arc::clone(&e)));
                    }
                }
            }
        });
    }
    while running.join_next().await.is_some() {}
}

/// Reads: the subscriber a link names, or `None`.
pub type Lookups = Batcher<i64, Option<LinkSubscriber>>;

/// Writes: unsubscribe an active subscriber, recording how; the stamp when
/// this request made the change, `None` when there was nothing to change.
pub type Unsubscribes = Batcher<(i64, UnsubscribeSource), Option<String>>;

pub fn lookups(store: Store) -> Lookups {
    Batcher::spawn(READS_IN_FLIGHT, move |ids: Vec<i64>| {
        let store = store.clone();
        async move {
            let by_id: HashMap<i64, LinkSubscriber> = store
                .link_subscribers(&ids)
                .await?
                .into_iter()
                .map(|s| (s.id, s))
                .collect();
            Ok(ids.iter().map(|id| by_id.get(id).cloned()).collect())
        }
    })
}

pub fn unsubscribes(store: Store) -> Unsubscribes {
    Batcher::spawn(1, move |requests: Vec<(i64, UnsubscribeSource)>| {
        let store = store.clone();
        async move {
            let (stamp, changed) = store.unsubscribe_all_if_active(&requests).await?;
            let mut changed: HashSet<i64> = changed.into_iter().collect();
            // The same id twice in a batch: only the first made the change.
            Ok(requests
                .iter()
                .map(|(id, _)| changed.remove(id).then(|| stamp.clone()))
                .collect())
        }
    })
}
