//! Batched subscriber lookups. Every unsubscribe request reads one
//! subscriber; with sqlx's SQLite driver each query is a round trip to a
//! connection's worker thread, and at thousands of requests per second
//! those thread hand-offs, not SQLite, are the cost. So lookups queue here
//! and a single task runs them as `WHERE id IN (…)` batches, at most
//! [`MAX_IN_FLIGHT`] at a time. Batching is natural: an idle server runs
//! each lookup at once, a busy one groups whatever queued while the
//! previous batches ran. No timer, no added latency.
//!
//! Only reads are batched; every write goes straight to the store.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::store::unsubscribe::LinkSubscriber;
use crate::store::Store;

/// Most ids in one query.
pub const MAX_BATCH: usize = 128;
/// Most batch queries running at once (the pool has a few connections, and
/// writes need one too).
pub const MAX_IN_FLIGHT: usize = 2;
/// Lookups waiting beyond this make callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;

type Answer = Result<Option<LinkSubscriber>, Arc<sqlx::Error>>;

/// A handle on the lookup task; cheap to clone. The task ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Lookups {
    queue: mpsc::Sender<(i64, oneshot::Sender<Answer>)>,
}

impl Lookups {
    /// Start the lookup task on the current tokio runtime.
    pub fn spawn(store: Store) -> Lookups {
        let (queue, requests) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, requests));
        Lookups { queue }
    }

    /// The subscriber with this id, read from the database now.
    pub async fn get(&self, id: i64) -> anyhow::Result<Option<LinkSubscriber>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((id, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the lookup task has stopped"))?;
        answer
            .await
            .context("the lookup task dropped a lookup")?
            .context("reading the subscriber")
    }
}

async fn run(store: Store, mut requests: mpsc::Receiver<(i64, oneshot::Sender<Answer>)>) {
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= MAX_IN_FLIGHT {
            in_flight.join_next().await;
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
        in_flight.spawn(answer_batch(store.clone(), batch));
    }
    while in_flight.join_next().await.is_some() {}
}

async fn answer_batch(store: Store, batch: Vec<(i64, oneshot::Sender<Answer>)>) {
    let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
    match store.link_subscribers(&ids).await {
        Ok(found) => {
            let by_id: HashMap<i64, LinkSubscriber> =
                found.into_iter().map(|s| (s.id, s)).collect();
            for (id, reply) in batch {
                // The same id twice in a batch: each gets a copy.
                let sub = by_id.get(&id).cloned();
                let _ = reply.send(Ok(sub));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for (_, reply) in batch {
                let _ = reply.send(Err(Arc::clone(&e)));
            }
        }
    }
}
