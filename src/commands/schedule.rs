//! `herald schedule` (schedule, list, cancel) and `herald run-due`: the
//! command-line side of scheduled sends. The rules (what is due, the
//! lateness guard, the run-due lease) live in `crate::schedule`.

use std::path::Path;
use std::time::Duration;

use chrono::Timelike;

use crate::bad_input;
use crate::cli::{RunDueArgs, ScheduleArgs, ScheduleCommand, ScheduleWhen, StatusFormat};
use crate::config::Settings;
use crate::delivery::compose::Addressee;
use crate::delivery::dispatch::{
    apply_audience, composer_for, describe_audience, register_file, Dispatch, Finished, StartedSend,
};
use crate::delivery::Stopper;
use crate::domain::IssueState;
use crate::error::{exit, exit_code};
use crate::render::{self, CompiledIssue, Issue};
use crate::schedule::{self, human, judge, Clock, RunDue, SendObserver, Verdict};
use crate::store::issues::{IssueRecord, Registered};
use crate::store::{parse_time, Store};

pub async fn run(settings: &Settings, store: &Store, args: ScheduleArgs) -> anyhow::Result<u8> {
    match args.command {
        Some(ScheduleCommand::List { format, all }) => list(store, format, all).await,
        Some(ScheduleCommand::Cancel { issue }) => cancel(store, &issue).await,
        None => {
            let issue = args
                .issue
                .ok_or_else(|| bad_input!("usage: herald schedule ISSUE --at RFC3339"))?;
            let audience = crate::domain::Audience::from_args(&args.audience)
                .map_err(|e| bad_input!("{e}"))?;
            let options = AddOptions {
                allow_unsafe_links: args.allow_unsafe_links,
                audience: audience.as_ref(),
                merge_tags: args.merge_tags,
            };
            add(
                settings,
                store,
                &issue,
                &args.when,
                Clock::from_flag(args.now),
                options,
            )
            .await
        }
    }
}

pub async fn run_due(settings: &Settings, store: &Store, args: RunDueArgs) -> anyhow::Result<u8> {
    let clock = Clock::from_flag(args.now);
    if args.dry_run {
        return super::run_due_preview::run(settings, store, clock, args.allow_unsafe_links).await;
    }
    let dispatch = Dispatch {
        store,
        settings,
        allow_unsafe_links: args.allow_unsafe_links,
        progress: super::send::live_progress(),
        clock: clock.engine(),
    };
    let interrupt = Stopper::default();
    let signals = tokio::spawn(super::send::watch_signals(interrupt.clone()));
    let report = schedule::run_due(&dispatch, clock, &interrupt, &mut Printer).await;
    signals.abort();
    let report = report?;
    if let RunDue::LeaseHeld { holder, until } = &report {
        println!("another run-due holds the lease ({holder}, until {until}); nothing to do");
    }
    Ok(super::exit_code(report.severity()))
}

/// Prints each send of a `run-due` pass as `herald send --live` would.
struct Printer;

impl SendObserver for Printer {
    fn started(&mut self, send: &StartedSend) {
        super::send::print_started(send);
    }

    fn finished(&mut self, finished: &Finished) {
        super::send::print_finished(finished);
    }
}

/// An error from checking the issue: bad input either way (the operator
/// fixes the issue or the configuration), naming the file.
fn refuse(path: &Path, err: anyhow::Error) -> anyhow::Error {
    if exit_code(&err) == exit::BAD_INPUT {
        err
    } else {
        bad_input!("{}: {err:#}", path.display())
    }
}

/// What `herald schedule ISSUE` was asked besides the time.
struct AddOptions<'a> {
    allow_unsafe_links: bool,
    audience: Option<&'a crate::domain::Audience>,
    merge_tags: Option<render::MergeTags>,
}

async fn add(
    settings: &Settings,
    store: &Store,
    path: &Path,
    when: &ScheduleWhen,
    clock: Clock,
    options: AddOptions<'_>,
) -> anyhow::Result<u8> {
    let AddOptions {
        allow_unsafe_links,
        audience,
        merge_tags,
    } = options;
    let now = clock.now();
    let at = match (when.at, when.after) {
        (Some(at), _) => at,
        (None, Some(delay)) => delay
            .after(now.with_nanosecond(0).unwrap_or(now))
            .map_err(|e| bad_input!("--in: {e}"))?,
        (None, None) => {
            return Err(bad_input!(
                "give the send time: --at RFC3339 or --in DURATION"
            ))
        }
    };
    let max_lateness = settings.schedule.max_lateness_secs;
    if let Verdict::Missed { late } =
        judge(at.as_datetime(), now, Duration::from_secs(max_lateness))
    {
        return Err(bad_input!(
            "{at} is {} in the past, beyond schedule.max_lateness_secs ({max_lateness}); \
             run-due would not send it. To send it now: herald send {} --live",
            human(late),
            path.display()
        ));
    }

    // Everything a send needs, checked now rather than at send time.
    crate::delivery::live_guard::check(settings, allow_unsafe_links)?;
    let issue = render::load_issue_with(path, merge_tags).map_err(|e| refuse(path, e))?;
    let compiled = render::compile(&issue, settings).map_err(|e| refuse(path, e))?;
    check_composes(settings, store, &issue, &compiled)
        .await
        .map_err(|e| refuse(path, e))?;

    let registered = register_file(store, &issue, &compiled, path, false).await?;
    let record = match registered {
        Registered::ChangedAfterStart(r) => {
            return Err(bad_input!(
                "{}: the live send of `{}` (version {}) already started at {}; a schedule cannot \
                 change it. To send the edited file to the whole audience as version {}: \
                 herald send {} --live --force-new-version",
                path.display(),
                r.slug,
                r.version,
                r.started_at.as_deref().unwrap_or("?"),
                r.version + 1,
                path.display()
            ))
        }
        Registered::Ready(r) if r.state == IssueState::Aborted => {
            return Err(bad_input!(
                "{}: the send of `{}` (version {}) was aborted; it is not scheduled again. To send \
                 it to the whole audience as a new version: herald send {} --live --force-new-version",
                path.display(),
                r.slug,
                r.version,
                path.display()
            ))
        }
        Registered::Ready(r) if r.started_at.is_some() => return Err(already_started(path, &r)),
        Registered::Ready(r) => r,
    };
    let record = apply_audience(store, record, audience, issue.audience()).await?;
    if !store.set_schedule(record.id, &at.stored()).await? {
        return Err(bad_input!(
            "{}: the send of `{}` is starting right now; it cannot be rescheduled (see herald status {})",
            path.display(),
            record.slug,
            path.display()
        ));
    }
    let moved = match (record.state, record.scheduled_at.as_deref()) {
        (IssueState::Scheduled, Some(before)) if parse_time(before) != Some(at.as_datetime()) => {
            format!(" (moved from {before})")
        }
        _ => String::new(),
    };
    let when = match (at.as_datetime() - now).to_std() {
        Ok(ahead) => format!("in {}", human(ahead)),
        Err(_) => "already due: the next run-due sends it".into(),
    };
    println!(
        "scheduled `{}` (version {}, \"{}\") for {at}{moved}; {when}",
        record.slug, record.version, record.subject
    );
    let filter = record
        .audience
        .as_deref()
        .map(crate::domain::Audience::from_json)
        .transpose()?;
    println!(
        "audience: {}: {} subscribers now",
        describe_audience(filter.as_ref()),
        store.count_audience(filter.as_ref()).await?
    );
    Ok(0)
}

fn already_started(path: &Path, r: &IssueRecord) -> anyhow::Error {
    bad_input!(
        "{}: the live send of `{}` (version {}) already started at {} (state {}); \
         it cannot be scheduled again. See herald status {}",
        path.display(),
        r.slug,
        r.version,
        r.started_at.as_deref().unwrap_or("?"),
        r.state,
        path.display()
    )
}

/// Build one complete message (personalised, signed) for a stand-in
/// recipient, so configuration and content problems surface now.
async fn check_composes(
    settings: &Settings,
    store: &Store,
    issue: &Issue,
    compiled: &CompiledIssue,
) -> anyhow::Result<()> {
    let composer = composer_for(settings, store, compiled, issue.slug(), None, "").await?;
    let message_id = format!(
        "{}.schedule-check@{}",
        issue.slug(),
        settings.sending_domain()
    );
    composer.compose(&Addressee {
        subscriber_id: 0,
        email: settings.sender.from_address.as_ref(),
        name: None,
        attributes: None,
        message_id: &message_id,
    })?;
    Ok(())
}

async fn list(store: &Store, format: StatusFormat, all: bool) -> anyhow::Result<u8> {
    let issues = store.scheduled_issues(all).await?;
    match format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&issues)?),
        StatusFormat::Table if issues.is_empty() => println!("nothing scheduled"),
        StatusFormat::Table => {
            println!(
                "{:<25} {:<10} {:<24} SUBJECT",
                "SCHEDULED AT", "STATE", "ISSUE"
            );
            for i in &issues {
                let name = if i.version == 1 {
                    i.slug.clone()
                } else {
                    format!("{} (v{})", i.slug, i.version)
                };
                let when = match (&i.scheduled_at, &i.started_at) {
                    (Some(at), _) => at.clone(),
                    (None, Some(started)) => format!("{started} (by hand)"),
                    (None, None) => "-".into(),
                };
                println!("{when:<25} {:<10} {name:<24} {}", i.state, i.subject);
            }
        }
    }
    Ok(0)
}

async fn cancel(store: &Store, arg: &Path) -> anyhow::Result<u8> {
    let slug = if arg.is_file() {
        render::load_issue(arg)?.slug().to_string()
    } else {
        arg.to_string_lossy().into_owned()
    };
    let record = store
        .latest_issue(&slug)
        .await?
        .ok_or_else(|| bad_input!("{}: no issue `{slug}` is scheduled", arg.display()))?;
    if store.cancel_schedule(record.id).await? {
        println!(
            "cancelled the scheduled send of `{slug}` (was due at {}); nothing was sent",
            record.scheduled_at.as_deref().unwrap_or("?")
        );
        return Ok(0);
    }
    // Why not: look again, the state may have moved since it was read.
    let record = store.issue_by_id(record.id).await?.unwrap_or(record);
    match record.state {
        IssueState::Cancelled | IssueState::Aborted => {
            println!(
                "the scheduled send of `{slug}` was already {}",
                record.state
            );
            Ok(0)
        }
        IssueState::Sent => Err(bad_input!(
            "{}: `{slug}` was already sent (finished at {}); nothing to cancel",
            arg.display(),
            record.finished_at.as_deref().unwrap_or("?")
        )),
        _ if record.started_at.is_some() => Err(bad_input!(
            "{}: the live send of `{slug}` already started at {} (state {}); cancelling a \
             schedule does not stop a send. To stop it for good: herald abort {}",
            arg.display(),
            record.started_at.as_deref().unwrap_or("?"),
            record.state,
            arg.display()
        )),
        IssueState::Sending => Err(bad_input!(
            "{}: a run-due is starting the send of `{slug}` right now; too late to cancel",
            arg.display()
        )),
        state @ (IssueState::Draft | IssueState::Scheduled | IssueState::Missed) => {
            Err(bad_input!(
                "{}: `{slug}` is not scheduled (state {state})",
                arg.display()
            ))
        }
    }
}
