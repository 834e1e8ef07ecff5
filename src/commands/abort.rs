//! `herald abort ISSUE`: stop an issue's send for good (deliveries not yet
//! attempted become `cancelled`, the issue `aborted`), and the watch a
//! running sender keeps so it notices an abort made from another process.

use std::path::Path;
use std::time::Duration;

use crate::bad_input;
use crate::delivery::{Halt, Stopper};
use crate::store::{now_text, Store};

/// How often a running send looks whether its issue was aborted.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

pub async fn run(store: &Store, arg: &Path) -> anyhow::Result<u8> {
    let issue = super::send::find_issue(store, arg).await?;
    let Some(done) = store.abort_issue(issue.id, &now_text()).await? else {
        return Err(bad_input!(
            "{}: `{}` (version {}) is {}; there is no send to abort",
            arg.display(),
            issue.slug,
            issue.version,
            issue.state
        ));
    };
    let counts = store.delivery_counts(issue.id).await?;
    if done.was == "aborted" && done.cancelled == 0 {
        println!("`{}` was already aborted; nothing changed", issue.slug);
    } else {
        println!(
            "aborted `{}` (version {}, was {}): {} deliveries cancelled; nothing more of it will be sent",
            issue.slug, issue.version, done.was, done.cancelled
        );
    }
    println!("ledger: {}", super::send::format_states(&counts));
    let lease = format!("send:{}", issue.id);
    if let Some((holder, until)) = store.lease_holder(&lease).await? {
        if until > now_text() {
            println!(
                "a sender is running ({holder}); it stops within {} s once its messages in flight are answered",
                WATCH_EVERY.as_secs().max(1) * 2
            );
        }
    }
    println!(
        "neither `herald run-due` nor `herald send --live` resumes it; to send this issue again \
         to everyone: herald send FILE --live --force-new-version"
    );
    Ok(0)
}

/// Poll the issue's state while a send runs; on `aborted`, halt the engine
/// (it stops claiming, lets messages in flight finish and gives back the
/// rest). Runs until aborted by the caller.
pub async fn watch(store: Store, issue_id: i64, stop: Stopper) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tick.tick().await;
        match store.issue_state(issue_id).await {
            Ok(Some(state)) if state == "aborted" => {
                tracing::warn!(issue_id, "the send was aborted by `herald abort`; stopping");
                stop.halt(Halt::Interrupted);
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "could not read the issue state"),
        }
    }
}
