//! `herald send`: picks the test send, the dry run or the live send. For a
//! live send this is the operator's side of `delivery::dispatch`: the
//! confirmation (asked before anything is written), the Ctrl-C handling,
//! what is printed about the run, and its outcome as an exit code.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crate::bad_input;
use crate::cli::SendArgs;
use crate::config::Settings;
use crate::delivery::dispatch::{
    describe_audience, Dispatch, Finished, IssueFile, PromptFacts, SendOutcome, Started,
};
use crate::delivery::progress::Progress;
use crate::delivery::{Halt, Stopper};
use crate::domain::Audience;
use crate::render;
use crate::safe_text::for_terminal;
use crate::store::Store;

pub async fn run(settings: &Settings, store: &Store, args: SendArgs) -> anyhow::Result<u8> {
    let audience = Audience::from_args(&args.audience).map_err(|e| bad_input!("{e}"))?;
    if !args.test.is_empty() {
        if audience.is_some() {
            return Err(bad_input!(
                "--audience selects subscribers for a live send or dry run, not for --test"
            ));
        }
        super::test_send::run(settings, store, &args.issue, &args.test, args.merge_tags).await
    } else if args.dry_run {
        super::dry_run::run(
            settings,
            store,
            &args.issue,
            audience.as_ref(),
            args.merge_tags,
        )
        .await
    } else {
        let opts = LiveOptions {
            yes: args.yes,
            force_new_version: args.force_new_version,
            allow_unsafe_links: args.allow_unsafe_links,
            merge_tags: args.merge_tags,
        };
        live(settings, store, &args.issue, &opts, audience.as_ref()).await
    }
}

/// Options of a live send that are not settings.
pub struct LiveOptions {
    pub yes: bool,
    pub force_new_version: bool,
    /// Lift the live-send guard's rule on http.public_base_url.
    pub allow_unsafe_links: bool,
    /// How an MJML design's foreign merge tags map (`--merge-tags`).
    pub merge_tags: Option<render::MergeTags>,
}

/// The progress shown while a live send runs.
pub(crate) fn live_progress() -> Progress {
    Progress::Auto {
        every: Duration::from_secs(10),
    }
}

/// The live send of an issue file: confirm (unless `--yes`), register the
/// version, start or resume it, deliver, report. Returns the exit code.
pub async fn live(
    settings: &Settings,
    store: &Store,
    path: &Path,
    opts: &LiveOptions,
    audience: Option<&Audience>,
) -> anyhow::Result<u8> {
    let dispatch = Dispatch {
        store,
        settings,
        allow_unsafe_links: opts.allow_unsafe_links,
        progress: live_progress(),
        clock: crate::clock::Clock::system(),
    };
    dispatch.check_guard()?;
    let file = IssueFile::load(settings, path, opts.merge_tags)?;
    if !opts.yes {
        // Asked before anything is written: a refusal leaves no trace.
        confirm(&dispatch.prompt_facts(&file, audience).await?)?;
    }
    let registered = dispatch
        .register(&file, opts.force_new_version, audience)
        .await?;
    let send = match dispatch.start(registered).await? {
        Started::Ready(send) => send,
        Started::Busy {
            slug,
            holder,
            until,
        } => anyhow::bail!(
            "another herald process is sending `{slug}` right now ({holder}, lease until \
             {until}); not starting a second one"
        ),
    };
    print_started(&send);
    let interrupt = Stopper::default();
    let signals = tokio::spawn(watch_signals(interrupt.clone()));
    let finished = dispatch.run(send, &interrupt).await;
    signals.abort();
    let finished = finished?;
    print_finished(&finished);
    Ok(super::exit_code(finished.outcome.severity()))
}

/// The audience line of a first start with a filter.
pub(crate) fn print_started(send: &crate::delivery::dispatch::StartedSend) {
    if let (true, Some(filter)) = (send.first_start, &send.audience) {
        println!(
            "{}: audience {}: {} subscribers",
            send.record().slug,
            describe_audience(Some(filter)),
            send.added
        );
    }
}

/// What a run did and how it ended: the summary and ledger on stdout,
/// problems on stderr.
pub(crate) fn print_finished(finished: &Finished) {
    let Finished {
        slug,
        report,
        ledger,
        outcome,
    } = finished;
    println!(
        "{slug}: this run sent {}, failed {}, deferred {}, unknown {} in {:.1?} ({} bytes)",
        report.sent, report.failed, report.deferred, report.unknown, report.elapsed, report.bytes
    );
    println!("ledger: {}", ledger.describe());
    let because = |cause: &Option<String>| {
        cause
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default()
    };
    match outcome {
        SendOutcome::Aborted { cancelled } => println!(
            "{slug}: the send was aborted (`herald abort`); stopped, {cancelled} more deliveries cancelled"
        ),
        SendOutcome::Unreachable {
            server,
            left,
            cause,
        } => eprintln!(
            "herald: error: could not reach {server}{}; {left} deliveries are left for the next run (see `herald status`)",
            because(cause)
        ),
        SendOutcome::Interrupted { left } => eprintln!(
            "herald: stopped by request; {left} deliveries left; run the same command to \
             resume. Note: the next `herald run-due` (cron) resumes it too; to stop it for \
             good instead: herald abort {slug}"
        ),
        SendOutcome::LedgerFailed { left, cause } => eprintln!(
            "herald: error: the run stopped{}; {left} deliveries left; run the same command to resume once the database is writable",
            because(cause)
        ),
        SendOutcome::WorkerDied { left, cause } => eprintln!(
            "herald: error: the run stopped{}; {left} deliveries left; run the same command to resume",
            because(cause)
        ),
        SendOutcome::LeaseLost { left } => eprintln!(
            "herald: error: the run stopped: another herald process took over the send of \
             `{slug}`; {left} deliveries left to it"
        ),
        SendOutcome::Completed { left, held } => {
            if left - held > 0 {
                println!("{} deliveries wait for a later attempt; `herald send --live` again or `herald run-due` resumes them", left - held);
            }
            if *held > 0 {
                println!(
                    "{held} deliveries have an unknown outcome and are held (sender.on_unknown = \"hold\"); \
                     no run resends them until `herald resend --unknown {slug}`"
                );
            }
        }
    }
}

fn confirm(facts: &PromptFacts) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(bad_input!(
            "a live send needs confirmation: pass --yes (stdin is not a terminal)"
        ));
    }
    let what = if facts.first_start {
        "Send"
    } else {
        "Resume sending"
    };
    let filter = facts
        .audience
        .as_ref()
        .map(|f| format!(" (audience: {f})"))
        .unwrap_or_default();
    eprint!(
        "{what} \"{}\" to {} subscribers{}? [y/N] ",
        for_terminal(&facts.subject),
        facts.recipients,
        for_terminal(&filter)
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(bad_input!("live send not confirmed; nothing was sent"))
    }
}

/// First Ctrl-C/SIGTERM: stop claiming and finish in-flight messages.
/// Second: exit at once (the ledger stays consistent: rows in flight are
/// resolved as `unknown` on the next run).
pub(crate) async fn watch_signals(stop: Stopper) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    for n in 0.. {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if n == 0 {
            eprintln!("herald: stopping: finishing messages in flight (press Ctrl-C again to exit at once)");
            stop.halt(Halt::Interrupted);
        } else {
            eprintln!("herald: exiting now");
            std::process::exit(i32::from(super::INTERRUPTED));
        }
    }
}
