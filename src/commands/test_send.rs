//! `herald send ISSUE --test ADDR...`: the issue to a few addresses, subject
//! "[TEST] …", recorded apart from the live ledger.

use std::path::Path;

use anyhow::Context;

use crate::bad_input;
use crate::config::Settings;
use crate::delivery::compose::Addressee;
use crate::delivery::dispatch::{composer_for, register_file, IssueFile};
use crate::domain::SubscriberEmail;
use crate::mailer::transport::{Connector, SendResult};
use crate::render;
use crate::secrets;
use crate::store::issues::Registered;
use crate::store::Store;

pub async fn run(
    settings: &Settings,
    store: &Store,
    path: &Path,
    addresses: &[String],
    merge_tags: Option<render::MergeTags>,
) -> anyhow::Result<u8> {
    let recipients = addresses
        .iter()
        .map(|a| SubscriberEmail::parse(a).map_err(|e| bad_input!("--test {a}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let file = IssueFile::load(settings, path, merge_tags)?;
    let (issue, compiled) = (file.issue(), file.compiled());
    // Registered (as a draft until a live send starts), so the copy's
    // "view in browser" link can open this version with a signed preview.
    let issue_id = match register_file(store, issue, compiled, path, false).await? {
        Registered::Ready(r) => Some(r.id),
        Registered::ChangedAfterStart(_) => None,
    };
    let mut composer =
        composer_for(settings, store, compiled, issue.slug(), issue_id, "[TEST] ").await?;
    if let Some(id) = issue_id {
        let keys = secrets::signing_keys(store, settings).await?;
        let view = render::view_url(settings, issue.slug());
        composer = composer.with_view_url(crate::test_copy::preview_url(&view, &keys, id));
    }
    let connector = Connector::from_settings(settings);
    let mut conn = connector
        .connect()
        .await
        .with_context(|| format!("test send through {}", connector.describe()))?;
    let stamp = chrono::Utc::now().timestamp_millis();
    let mut failures = 0;
    for (n, to) in recipients.iter().enumerate() {
        let subscriber = store.find_subscriber(to).await?;
        let message_id = format!(
            "{}.test-{stamp}-{n}@{}",
            issue.slug(),
            settings.sending_domain()
        );
        let message = composer.compose(&Addressee {
            // Never a real subscriber's link: a tester's click on a test
            // copy's unsubscribe link changes nothing.
            subscriber_id: crate::test_copy::TEST_COPY_SUBSCRIBER,
            email: to.as_ref(),
            name: subscriber.as_ref().and_then(|s| s.name.as_deref()),
            attributes: subscriber.as_ref().map(|s| &s.attributes),
            message_id: &message_id,
        })?;
        let result = conn.send(&message, &message_id).await;
        let (outcome, reply) = match &result {
            SendResult::Accepted { reply, .. } => ("accepted", reply.clone()),
            SendResult::Rejected { code, reply, .. } => ("rejected", format!("{code} {reply}")),
            SendResult::Lost { detail, .. } | SendResult::Stale { detail } => {
                ("lost", detail.clone())
            }
        };
        store
            .record_test_send(issue.slug(), to.as_ref(), &message_id, outcome, &reply)
            .await?;
        println!(
            "test message to {to}: {outcome} ({})",
            crate::safe_text::for_terminal(&reply)
        );
        if outcome != "accepted" {
            failures += 1;
        }
        if !result.connection_usable() {
            conn = connector.connect().await?;
        }
    }
    conn.close().await;
    Ok(if failures > 0 { 1 } else { 0 })
}
