//! `herald send ISSUE --dry-run`: every recipient's message built, nothing
//! sent or written.

use std::path::Path;

use crate::config::Settings;
use crate::delivery::compose::Addressee;
use crate::delivery::dispatch::{composer_for, describe_audience, IssueFile};
use crate::domain::Audience;
use crate::render;
use crate::store::Store;

pub async fn run(
    settings: &Settings,
    store: &Store,
    path: &Path,
    audience: Option<&Audience>,
    merge_tags: Option<render::MergeTags>,
) -> anyhow::Result<u8> {
    let file = IssueFile::load(settings, path, merge_tags)?;
    let (issue, compiled) = (file.issue(), file.compiled());
    let audience = audience.or(issue.audience());
    let composer = composer_for(settings, store, compiled, issue.slug(), None, "").await?;
    let count = store.count_audience(audience).await?;
    println!(
        "audience: {}: {count} subscribers",
        describe_audience(audience)
    );
    let started = std::time::Instant::now();
    let (mut messages, mut bytes, mut after) = (0u64, 0u64, 0i64);
    loop {
        let page = store.audience_page(audience, after, 2000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for sub in &page {
            let message_id = format!("{}.{}@{}", issue.slug(), sub.id, settings.sending_domain());
            let message = composer.compose(&Addressee {
                subscriber_id: sub.id,
                email: &sub.email,
                name: sub.name.as_deref(),
                attributes: Some(&sub.attributes),
                message_id: &message_id,
            })?;
            messages += 1;
            bytes += message.formatted_len() as u64;
        }
    }
    println!(
        "dry run of {}: built {messages} messages, {bytes} bytes in total ({} bytes each on average) in {:.2?}; nothing was sent",
        issue.slug(),
        bytes.checked_div(messages).unwrap_or(0),
        started.elapsed()
    );
    Ok(0)
}
