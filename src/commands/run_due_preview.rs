//! `herald run-due --dry-run`: what a run would do now (scheduled issues it
//! would send, live sends it would resume, issues the lateness guard would
//! mark missed, a live-send guard that would refuse), read from the
//! database without writing anything or sending.

use std::time::Duration;

use crate::config::{OnUnknown, Settings};
use crate::schedule::{human, judge, Clock, Verdict, RUN_DUE_LEASE};
use crate::store::{format_time, now_text, parse_time, Store};

pub async fn run(
    settings: &Settings,
    store: &Store,
    clock: Clock,
    allow_unsafe_links: bool,
) -> anyhow::Result<u8> {
    let now = clock.now();
    let now_text_at = format_time(now);
    let resend_unknown = settings.sender.on_unknown == OnUnknown::Resend;
    let due = store.due_issues(&now_text_at).await?;
    let resumable = store.resumable_sends(&now_text_at, resend_unknown).await?;
    let max_lateness = Duration::from_secs(settings.schedule.max_lateness_secs);
    println!(
        "dry run of run-due at {}; nothing is sent or changed",
        now.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let mut sends = 0;
    for issue in &due {
        let at_text = issue.scheduled_at.as_deref().unwrap_or("?");
        let Some(at) = parse_time(at_text) else {
            println!(
                "skip     {}: unreadable scheduled time `{at_text}`",
                issue.slug
            );
            continue;
        };
        match judge(at, now, max_lateness) {
            Verdict::NotDue => {}
            Verdict::Due => {
                sends += 1;
                let audience = store.subscriber_counts().await?["active"];
                println!(
                    "send     {} (version {}, \"{}\"): scheduled at {at_text}; {audience} active subscribers",
                    issue.slug, issue.version, issue.subject
                );
            }
            Verdict::Missed { late } => println!(
                "missed   {} (version {}): scheduled at {at_text}, {} late, beyond \
                 schedule.max_lateness_secs ({}); would be marked missed and NOT sent (exit 1)",
                issue.slug,
                issue.version,
                human(late),
                settings.schedule.max_lateness_secs
            ),
        }
    }
    for issue in &resumable {
        sends += 1;
        let c = store.delivery_counts(issue.id).await?;
        let unknown = if resend_unknown {
            format!(", {} unknown to resend", c.unknown)
        } else {
            String::new()
        };
        println!(
            "resume   {} (version {}, started {}): {} pending, {} claimed by a run that stopped, {} deferred{unknown}",
            issue.slug,
            issue.version,
            issue.started_at.as_deref().unwrap_or("?"),
            c.pending,
            c.claimed,
            c.deferred,
        );
    }
    if due.is_empty() && resumable.is_empty() {
        println!("nothing is due");
    }
    if sends > 0 {
        if let Err(refusal) = crate::delivery::live_guard::check(settings, allow_unsafe_links) {
            println!("refused  the sends above would be refused (exit 2): {refusal}");
        }
    }
    if let Some((holder, until)) = store.lease_holder(RUN_DUE_LEASE).await? {
        if until > now_text() {
            println!("note     another run-due holds the lease ({holder}, until {until}); a run now would do nothing");
        }
    }
    Ok(0)
}
