//! `herald status ISSUE` (the ledger of one issue version) and `herald
//! resend` (failed or unknown deliveries back to pending).

use std::path::Path;

use crate::bad_input;
use crate::cli::{ResendArgs, StatusFormat};
use crate::delivery::dispatch::describe_audience;
use crate::domain::{Audience, DeliveryState, IssueState};
use crate::render;
use crate::safe_text::for_terminal;
use crate::store::issues::IssueRecord;
use crate::store::{now_text, Store};

/// The issue a status/resend argument names: a file's slug, or a bare slug.
pub(crate) async fn find_issue(store: &Store, arg: &Path) -> anyhow::Result<IssueRecord> {
    let slug = if arg.is_file() {
        render::load_issue(arg)?.slug().to_string()
    } else {
        arg.to_string_lossy().into_owned()
    };
    store.latest_issue(&slug).await?.ok_or_else(|| {
        bad_input!(
            "{}: no issue `{slug}` has been sent or scheduled",
            arg.display()
        )
    })
}

pub async fn run(
    store: &Store,
    arg: std::path::PathBuf,
    format: StatusFormat,
    failed: bool,
) -> anyhow::Result<u8> {
    let issue = find_issue(store, &arg).await?;
    let counts = store.delivery_counts(issue.id).await?;
    let times = store.send_times(issue.id).await?;
    let total = counts.total();
    let rate = match (
        times
            .first_sent_at
            .as_deref()
            .and_then(crate::store::parse_time),
        times
            .last_sent_at
            .as_deref()
            .and_then(crate::store::parse_time),
    ) {
        (Some(a), Some(b)) if b > a => Some(counts.sent as f64 / (b - a).as_seconds_f64()),
        _ => None,
    };
    let elapsed = issue
        .started_at
        .as_deref()
        .and_then(crate::store::parse_time)
        .map(|start| {
            let end = issue
                .finished_at
                .as_deref()
                .and_then(crate::store::parse_time)
                .unwrap_or_else(chrono::Utc::now);
            (end - start).as_seconds_f64()
        });
    let limit = if failed { i64::MAX } else { 20 };
    let problems = store
        .deliveries_in_states(
            issue.id,
            &[
                DeliveryState::Failed,
                DeliveryState::Deferred,
                DeliveryState::Unknown,
            ],
            limit,
        )
        .await?;
    let bounce_counts = store.bounce_counts(Some(issue.id)).await?;
    let bounces = serde_json::json!({
        "hard": bounce_counts.get("hard").copied().unwrap_or(0),
        "soft": bounce_counts.get("soft").copied().unwrap_or(0),
        "complaint": bounce_counts.get("complaint").copied().unwrap_or(0),
        "auto_reply": bounce_counts.get("auto-reply").copied().unwrap_or(0),
    });
    match format {
        StatusFormat::Json => {
            let value = serde_json::json!({
                "issue": issue.slug,
                "version": issue.version,
                "subject": issue.subject,
                "state": issue.state,
                "scheduled_at": issue.scheduled_at,
                "started_at": issue.started_at,
                "finished_at": issue.finished_at,
                "audience": issue.audience.as_deref().map(serde_json::from_str::<serde_json::Value>).transpose()?,
                "total": total,
                "counts": counts,
                "rate_per_second": rate,
                "elapsed_seconds": elapsed,
                "problems": problems,
                "bounces": bounces,
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        StatusFormat::Table => {
            println!(
                "issue:    {} (version {}) — {}",
                issue.slug, issue.version, issue.subject
            );
            println!("state:    {}", issue.state);
            if let Some(at) = &issue.scheduled_at {
                println!("scheduled {at}");
            }
            println!(
                "started:  {}   finished: {}",
                issue.started_at.as_deref().unwrap_or("-"),
                issue.finished_at.as_deref().unwrap_or("-")
            );
            let audience = issue
                .audience
                .as_deref()
                .map(Audience::from_json)
                .transpose()?;
            println!(
                "audience: {}",
                for_terminal(&describe_audience(audience.as_ref()))
            );
            println!("total:    {total}");
            println!("ledger:   {}", counts.describe());
            println!(
                "bounces:  hard {}, soft {}, complaint {}, auto-reply {}",
                bounces["hard"], bounces["soft"], bounces["complaint"], bounces["auto_reply"]
            );
            if let Some(rate) = rate {
                println!("rate:     {rate:.1} msg/s");
            }
            if let Some(elapsed) = elapsed {
                println!("elapsed:  {elapsed:.1} s");
            }
            if !problems.is_empty() {
                println!(
                    "\n{:<9} {:<40} {:>8}  LAST REPLY",
                    "STATE", "EMAIL", "ATTEMPTS"
                );
                for p in &problems {
                    let reply = match (p.last_code, &p.last_reply) {
                        (Some(c), Some(r)) => format!("{c} {r}"),
                        (None, Some(r)) => r.clone(),
                        _ => "-".into(),
                    };
                    let when = p
                        .next_attempt_at
                        .as_deref()
                        .map(|t| format!(" (next attempt {t})"))
                        .unwrap_or_default();
                    // The reply is the remote server's text: escaped, as
                    // it may carry terminal control sequences.
                    println!(
                        "{:<9} {:<40} {:>8}  {}{when}",
                        p.state,
                        for_terminal(&p.email),
                        p.attempts,
                        for_terminal(&reply)
                    );
                }
                if !failed && problems.len() as i64 == limit {
                    println!("… (first {limit}; --failed lists all)");
                }
            }
        }
    }
    Ok(0)
}

pub async fn resend(store: &Store, args: ResendArgs) -> anyhow::Result<u8> {
    let issue = find_issue(store, &args.issue).await?;
    if issue.state == IssueState::Aborted {
        return Err(bad_input!(
            "{}: the send of `{}` was aborted; nothing is resent (a new version: herald send FILE --live --force-new-version)",
            args.issue.display(),
            issue.slug
        ));
    }
    let from = if args.failed {
        DeliveryState::Failed
    } else {
        DeliveryState::Unknown
    };
    let n = store.requeue(issue.id, from, &now_text()).await?;
    // A command that works whatever the argument was: the issue file when
    // it is still where it was sent from, else run-due (which resumes any
    // live send with pending rows).
    let how = match issue
        .source_path
        .as_deref()
        .filter(|p| Path::new(p).is_file())
    {
        Some(file) => format!("`herald send {file} --live` (or `herald run-due`)"),
        None => "`herald run-due`".to_string(),
    };
    println!(
        "{n} {from} deliveries of {} are pending again; {how} delivers them",
        issue.slug
    );
    Ok(0)
}
