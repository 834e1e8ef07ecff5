//! One delivery worker: owns one transport connection, reconnecting with
//! backoff; waits on the shared rate limiter; sends; records the outcome and
//! waits for it to be durable before taking the next message.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use super::{Halt, Shared};
use crate::delivery::compose::Addressee;
use crate::delivery::recorder::Durable;
use crate::mailer::transport::{Connection, SendResult};
use crate::store::deliveries::{ClaimedDelivery, Outcome};

const MAX_PAUSE: Duration = Duration::from_secs(30);

fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_PAUSE)
}

pub(super) async fn run(
    n: usize,
    shared: Arc<Shared>,
    jobs: Arc<Mutex<mpsc::Receiver<ClaimedDelivery>>>,
) {
    let mut conn: Option<Connection> = None;
    let mut failures: u32 = 0;
    let mut gave_up = false;
    // The previous message's outcome, still being committed. It must be
    // durable before the next message goes to SMTP: that bounds what a
    // crash can duplicate to one message per worker.
    let mut in_commit: Option<Durable> = None;
    loop {
        let job = { jobs.lock().await.recv().await };
        let Some(job) = job else { break };
        if gave_up || shared.stop.state() != Halt::None {
            release(&shared, job.id).await;
            continue;
        }
        let message = match shared.composer.compose(&Addressee {
            subscriber_id: job.subscriber_id,
            email: &job.email,
            name: job.name.as_deref(),
            attributes: Some(&job.attributes),
            message_id: &job.message_id,
        }) {
            Ok(m) => m,
            Err(e) => {
                let reply = format!("could not build the message: {e:#}");
                let _ = shared
                    .recorder
                    .record(Outcome::Failed {
                        id: job.id,
                        code: None,
                        reply,
                        bounce: None,
                    })
                    .await;
                continue;
            }
        };
        let domain = job
            .email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        // Make sure we hold a connection, pausing between failed attempts.
        while conn.is_none() {
            match shared.connector.connect().await {
                Ok(c) => {
                    conn = Some(c);
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(worker = n, failures, error = %format!("{e:#}"), "cannot connect");
                    if failures >= shared.options.reconnect_attempts {
                        gave_up = true;
                        break;
                    }
                    let pause = backoff(shared.options.reconnect_backoff, failures);
                    let halted = tokio::select! {
                        _ = tokio::time::sleep(pause) => false,
                        _ = shared.stop.halted() => true,
                    };
                    if halted {
                        break;
                    }
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            release(&shared, job.id).await;
            if gave_up {
                if shared.alive_workers.fetch_sub(1, Ordering::AcqRel) > 1 {
                    // Others still reach the server: leave the work to them.
                    return;
                }
                // The last worker: halt the run, then keep draining the
                // queue (releasing each row) until the claimer closes it.
                tracing::error!(server = %shared.connector.describe(), "no worker can reach the server; stopping");
                shared.stop.halt(Halt::Unreachable);
            }
            continue;
        };
        if let Some(previous) = in_commit.take() {
            if previous.wait().await.is_err() {
                shared.stop.halt(Halt::LedgerFailed);
                release(&shared, job.id).await;
                continue;
            }
        }
        // The rate limit applies at the moment of sending: after every other
        // wait (connection, previous commit), right before the handoff.
        tokio::select! {
            _ = shared.limiter.until_ready(&domain) => {}
            _ = shared.stop.halted() => {
                release(&shared, job.id).await;
                continue;
            }
        }
        let result = c.send(&message, &job.message_id).await;
        if let SendResult::Accepted { .. } = result {
            shared
                .tally
                .bytes
                .fetch_add(message.formatted_len() as u64, Ordering::Relaxed);
        }
        let outcome = shared
            .options
            .retry
            .outcome(&job, &result, chrono::Utc::now());
        let pause = match &result {
            SendResult::Accepted { .. } => None,
            SendResult::Rejected { code: 421, .. } | SendResult::Lost { .. } => {
                failures += 1;
                Some(backoff(shared.options.reconnect_backoff, failures))
            }
            SendResult::Rejected { .. } => None,
        };
        if !result.connection_usable() {
            if let Some(old) = conn.take() {
                if matches!(result, SendResult::Rejected { .. }) {
                    old.close().await;
                }
            }
        }
        match shared.recorder.submit(outcome).await {
            Ok(durable) => in_commit = Some(durable),
            Err(_) => shared.stop.halt(Halt::LedgerFailed),
        }
        if let Some(pause) = pause {
            tracing::info!(
                worker = n,
                pause_ms = pause.as_millis() as u64,
                "server trouble; pausing this worker"
            );
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shared.stop.halted() => {}
            }
        }
    }
    if let Some(previous) = in_commit.take() {
        if previous.wait().await.is_err() {
            shared.stop.halt(Halt::LedgerFailed);
        }
    }
    if let Some(c) = conn {
        c.close().await;
    }
}

async fn release(shared: &Shared, id: i64) {
    if shared
        .recorder
        .record(Outcome::Released { id })
        .await
        .is_err()
    {
        shared.stop.halt(Halt::LedgerFailed);
    }
}
