//! `herald abort ISSUE`: stop an issue's send for good (deliveries not yet
//! attempted become `cancelled`, the issue `aborted`). A running sender
//! notices through its watch in `delivery::dispatch`.

use std::path::Path;

use crate::bad_input;
use crate::delivery::dispatch::ABORT_WATCH_EVERY;
use crate::delivery::lease::send_lease_name;
use crate::domain::IssueState;
use crate::store::{now_text, Store};

pub async fn run(store: &Store, arg: &Path) -> anyhow::Result<u8> {
    let issue = super::status::find_issue(store, arg).await?;
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
    if done.was == IssueState::Aborted && done.cancelled == 0 {
        println!("`{}` was already aborted; nothing changed", issue.slug);
    } else {
        println!(
            "aborted `{}` (version {}, was {}): {} deliveries cancelled; nothing more of it will be sent",
            issue.slug, issue.version, done.was, done.cancelled
        );
    }
    println!("ledger: {}", counts.describe());
    if let Some((holder, until)) = store.lease_holder(&send_lease_name(issue.id)).await? {
        if until > now_text() {
            println!(
                "a sender is running ({holder}); it stops within {} s once its messages in flight are answered",
                ABORT_WATCH_EVERY.as_secs().max(1) * 2
            );
        }
    }
    println!(
        "neither `herald run-due` nor `herald send --live` resumes it; to send this issue again \
         to everyone: herald send FILE --live --force-new-version"
    );
    Ok(0)
}
