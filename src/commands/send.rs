//! `herald send`: test sends, dry runs, and live sends through the delivery
//! engine; `herald status` and `herald resend` read and steer the ledger.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::Digest;

use crate::bad_input;
use crate::cli::{ResendArgs, SendArgs, StatusFormat};
use crate::config::Settings;
use crate::delivery::compose::{Addressee, Composer};
use crate::delivery::progress::Progress;
use crate::delivery::ratelimit::SendLimiter;
use crate::delivery::{self, EngineOptions, Halt, Plan, RunReport, Stopper};
use crate::domain::{Audience, SubscriberEmail};
use crate::mailer::dkim::Signer;
use crate::mailer::transport::{Connector, SendResult};
use crate::render::{self, CompiledIssue};
use crate::safe_text::for_terminal;
use crate::secrets;
use crate::store::issues::{IssueRecord, NewIssue, Registered};
use crate::store::{now_text, Store};

/// Exit code after an operator interrupt.
const INTERRUPTED: u8 = 130;

pub async fn run(settings: &Settings, store: &Store, args: SendArgs) -> anyhow::Result<u8> {
    let audience = Audience::from_args(&args.audience).map_err(|e| bad_input!("{e}"))?;
    if !args.test.is_empty() {
        if audience.is_some() {
            return Err(bad_input!(
                "--audience selects subscribers for a live send or dry run, not for --test"
            ));
        }
        test_send(settings, store, &args.issue, &args.test, args.merge_tags).await
    } else if args.dry_run {
        dry_run(
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
            progress: Progress::Auto {
                every: Duration::from_secs(10),
            },
        };
        let (code, _) =
            live_send_to(settings, store, &args.issue, &opts, audience.as_ref()).await?;
        Ok(code)
    }
}

/// Load and compile an issue file (errors name the file).
fn compile_file(
    settings: &Settings,
    path: &Path,
    merge_tags: Option<render::MergeTags>,
) -> anyhow::Result<(render::Issue, CompiledIssue)> {
    let issue = render::load_issue_with(path, merge_tags)?;
    let compiled = render::compile(&issue, settings)?;
    Ok((issue, compiled))
}

fn dkim_signer(settings: &Settings) -> anyhow::Result<Option<Arc<Signer>>> {
    Ok(Signer::load_all(settings.dkim.keys())?.map(Arc::new))
}

/// A composer for `compiled` with this installation's unsubscribe key and
/// DKIM signer.
pub async fn composer_for(
    settings: &Settings,
    store: &Store,
    compiled: &CompiledIssue,
    slug: &str,
    issue_id: Option<i64>,
    subject_prefix: &str,
) -> anyhow::Result<Composer> {
    let keys = secrets::signing_keys(store, settings).await?;
    Composer::new(
        settings,
        compiled.prepare(),
        slug,
        issue_id,
        keys,
        dkim_signer(settings)?,
        subject_prefix,
    )
}

/// Register an issue file's compiled content under the SHA-256 of the file
/// and its absolute path (so hints printed later work from anywhere).
pub async fn register_file(
    store: &Store,
    issue: &render::Issue,
    compiled: &CompiledIssue,
    path: &Path,
    new_version: bool,
) -> anyhow::Result<Registered> {
    let hash = hex::encode(sha2::Sha256::digest(issue.source_bytes()));
    let compiled_json = serde_json::to_string(compiled)?;
    let source = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(store
        .register_issue(
            &NewIssue {
                slug: issue.slug(),
                subject: &issue.display_subject(),
                content_hash: &hash,
                compiled_json: &compiled_json,
                source_path: source.to_str(),
            },
            new_version,
        )
        .await?)
}

async fn test_send(
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
    let (issue, compiled) = compile_file(settings, path, merge_tags)?;
    // Registered (as a draft until a live send starts), so the copy's
    // "view in browser" link can open this version with a signed preview.
    let issue_id = match register_file(store, &issue, &compiled, path, false).await? {
        Registered::Ready(r) => Some(r.id),
        Registered::ChangedAfterStart(_) => None,
    };
    let mut composer = composer_for(
        settings,
        store,
        &compiled,
        issue.slug(),
        issue_id,
        "[TEST] ",
    )
    .await?;
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

async fn dry_run(
    settings: &Settings,
    store: &Store,
    path: &Path,
    audience: Option<&Audience>,
    merge_tags: Option<render::MergeTags>,
) -> anyhow::Result<u8> {
    let (issue, compiled) = compile_file(settings, path, merge_tags)?;
    let audience = audience.or(issue.audience());
    let composer = composer_for(settings, store, &compiled, issue.slug(), None, "").await?;
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

/// Options of a live send that are not settings.
pub struct LiveOptions {
    pub yes: bool,
    pub force_new_version: bool,
    /// Lift the live-send guard's rule on http.public_base_url.
    pub allow_unsafe_links: bool,
    /// How an MJML design's foreign merge tags map (`--merge-tags`).
    pub merge_tags: Option<render::MergeTags>,
    pub progress: Progress,
}

/// How an audience is shown to the operator.
pub fn describe_audience(audience: Option<&Audience>) -> String {
    match audience {
        None => "every active subscriber".to_string(),
        Some(a) => format!("active subscribers with {a}"),
    }
}

/// Fix the audience of a registered version: `given` (from --audience)
/// wins over the issue file's `[audience]`. Once the send has started the
/// audience cannot change: a different --audience is refused.
pub async fn apply_audience(
    store: &Store,
    record: IssueRecord,
    given: Option<&Audience>,
    file: Option<&Audience>,
) -> anyhow::Result<IssueRecord> {
    if record.started_at.is_some() {
        let stored = record
            .audience
            .as_deref()
            .map(Audience::from_json)
            .transpose()?;
        if let Some(given) = given {
            if stored.as_ref() != Some(given) {
                return Err(bad_input!(
                    "the live send of `{}` started with audience: {}; --audience cannot change it",
                    record.slug,
                    describe_audience(stored.as_ref())
                ));
            }
        }
        return Ok(record);
    }
    let audience = given.or(file);
    if !store.set_issue_audience(record.id, audience).await? {
        return Err(bad_input!(
            "the send of `{}` is starting right now; its audience cannot change",
            record.slug
        ));
    }
    store
        .issue_by_id(record.id)
        .await?
        .context("the issue just registered")
}

/// Register the issue file, snapshot the audience on first start, and
/// deliver (resuming if it was interrupted). Returns the exit code and the
/// run report.
pub async fn live_send(
    settings: &Settings,
    store: &Store,
    path: &Path,
    opts: &LiveOptions,
) -> anyhow::Result<(u8, Option<RunReport>)> {
    live_send_to(settings, store, path, opts, None).await
}

/// [`live_send`] with an audience given on the command line.
pub async fn live_send_to(
    settings: &Settings,
    store: &Store,
    path: &Path,
    opts: &LiveOptions,
    audience: Option<&Audience>,
) -> anyhow::Result<(u8, Option<RunReport>)> {
    super::live_guard::check(settings, opts.allow_unsafe_links)?;
    let (issue, compiled) = compile_file(settings, path, opts.merge_tags)?;
    let registered = register_file(store, &issue, &compiled, path, opts.force_new_version).await?;
    let record = match registered {
        Registered::Ready(r) if r.state == "aborted" => {
            return Err(bad_input!(
                "{}: the send of `{}` (version {}) was aborted at {}; it is not resumed. To send \
                 this issue to the whole audience as version {}: pass --force-new-version",
                path.display(),
                r.slug,
                r.version,
                r.finished_at.as_deref().unwrap_or("?"),
                r.version + 1
            ))
        }
        Registered::Ready(r) => r,
        Registered::ChangedAfterStart(r) => {
            return Err(bad_input!(
                "{}: the file changed after the live send of `{}` (version {}) started at {}; \
                 resuming would mix two contents. Restore the file, or pass --force-new-version \
                 to send the edited issue to the whole audience as version {}",
                path.display(),
                r.slug,
                r.version,
                r.started_at.as_deref().unwrap_or("?"),
                r.version + 1
            ))
        }
    };
    let record = apply_audience(store, record, audience, issue.audience()).await?;
    deliver_record(settings, store, &record, opts).await
}

/// Deliver a registered issue version (live send or scheduled run).
pub async fn deliver_record(
    settings: &Settings,
    store: &Store,
    record: &IssueRecord,
    opts: &LiveOptions,
) -> anyhow::Result<(u8, Option<RunReport>)> {
    // The stored compiled content, so a resumed send is byte-identical.
    super::live_guard::check(settings, opts.allow_unsafe_links)?;
    if record.state == "aborted" {
        return Err(bad_input!(
            "the send of `{}` (version {}) was aborted; it is not resumed",
            record.slug,
            record.version
        ));
    }
    let compiled: CompiledIssue =
        serde_json::from_str(&record.compiled).context("reading the stored compiled issue")?;
    let lease = Lease::new(settings, format!("send:{}", record.id));
    if !lease.take(store).await? {
        let who = store.lease_holder(&lease.name).await?;
        anyhow::bail!(
            "another herald process is sending `{}` right now ({}); not starting a second one",
            record.slug,
            who.map(|(h, until)| format!("{h}, lease until {until}"))
                .unwrap_or_default()
        );
    }
    let renewer = tokio::spawn(lease.clone().renew_forever(store.clone()));
    let result = deliver_with_lease(settings, store, record, compiled, opts).await;
    renewer.abort();
    let _ = store.release_lease(&lease.name, &lease.holder).await;
    result
}

async fn deliver_with_lease(
    settings: &Settings,
    store: &Store,
    record: &IssueRecord,
    compiled: CompiledIssue,
    opts: &LiveOptions,
) -> anyhow::Result<(u8, Option<RunReport>)> {
    let first_start = record.started_at.is_none();
    let filter = record
        .audience
        .as_deref()
        .map(Audience::from_json)
        .transpose()
        .context("reading the stored audience")?;
    let audience = if first_start {
        store.count_audience(filter.as_ref()).await?
    } else {
        let c = store.delivery_counts(record.id).await?;
        c["pending"] + c["claimed"] + c["deferred"] + c["unknown"]
    };
    if !opts.yes {
        confirm(&record.subject, audience, filter.as_ref(), first_start)?;
    }
    let prefix = if record.version == 1 {
        record.slug.clone()
    } else {
        format!("{}-v{}", record.slug, record.version)
    };
    let added = store
        .start_live_send(record.id, &prefix, settings.sending_domain(), &now_text())
        .await?;
    if first_start {
        if let Some(filter) = &filter {
            println!(
                "{}: audience {}: {added} subscribers",
                record.slug,
                describe_audience(Some(filter))
            );
        }
        tracing::info!(issue = %record.slug, recipients = added, "live send started");
    } else {
        tracing::info!(issue = %record.slug, "resuming live send");
    }
    let composer = composer_for(
        settings,
        store,
        &compiled,
        &record.slug,
        Some(record.id),
        "",
    )
    .await?;
    let stop = Stopper::default();
    let signals = tokio::spawn(watch_signals(stop.clone()));
    let abort_watch = tokio::spawn(super::abort::watch(store.clone(), record.id, stop.clone()));
    let plan = Plan {
        composer,
        connector: Connector::from_settings(settings),
        limiter: SendLimiter::new(&settings.sender),
        options: EngineOptions::from_settings(settings),
    };
    let report = delivery::run(store, record, plan, stop, &opts.progress).await;
    signals.abort();
    abort_watch.abort();
    let report = report?;
    let aborted = store.cancel_rest_if_aborted(record.id, &now_text()).await?;
    let aborted = (aborted > 0
        || store.issue_state(record.id).await?.as_deref() == Some("aborted"))
    .then_some(aborted);
    let counts = store.delivery_counts(record.id).await?;
    println!(
        "{}: this run sent {}, failed {}, deferred {}, unknown {} in {:.1?} ({} bytes)",
        record.slug,
        report.sent,
        report.failed,
        report.deferred,
        report.unknown,
        report.elapsed,
        report.bytes
    );
    println!("ledger: {}", format_states(&counts));
    let left = counts["pending"] + counts["deferred"] + counts["unknown"] + counts["claimed"];
    if let Some(cancelled) = aborted {
        println!(
            "{}: the send was aborted (`herald abort`); stopped, {cancelled} more deliveries cancelled",
            record.slug
        );
        return Ok((0, Some(report)));
    }
    let because = report
        .cause
        .as_deref()
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    let code = match report.halt {
        Halt::Unreachable => {
            eprintln!(
                "herald: error: could not reach {}{because}; {left} deliveries are left for the next run (see `herald status`)",
                Connector::from_settings(settings).describe()
            );
            1
        }
        Halt::Interrupted => {
            eprintln!(
                "herald: stopped by request; {left} deliveries left; run the same command to \
                 resume. Note: the next `herald run-due` (cron) resumes it too; to stop it for \
                 good instead: herald abort {}",
                record.slug
            );
            INTERRUPTED
        }
        Halt::LedgerFailed => {
            eprintln!("herald: error: the run stopped{because}; {left} deliveries left; run the same command to resume once the database is writable");
            1
        }
        Halt::WorkerDied => {
            eprintln!("herald: error: the run stopped{because}; {left} deliveries left; run the same command to resume");
            1
        }
        Halt::None => {
            let held = if settings.sender.on_unknown == crate::config::OnUnknown::Hold {
                counts["unknown"]
            } else {
                0
            };
            if left - held > 0 {
                println!("{} deliveries wait for a later attempt; `herald send --live` again or `herald run-due` resumes them", left - held);
            }
            if held > 0 {
                println!(
                    "{held} deliveries have an unknown outcome and are held (sender.on_unknown = \"hold\"); \
                     no run resends them until `herald resend --unknown {}`",
                    record.slug
                );
            }
            0
        }
    };
    Ok((code, Some(report)))
}

fn confirm(
    subject: &str,
    audience: i64,
    filter: Option<&Audience>,
    first_start: bool,
) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(bad_input!(
            "a live send needs confirmation: pass --yes (stdin is not a terminal)"
        ));
    }
    let what = if first_start {
        "Send"
    } else {
        "Resume sending"
    };
    let filter = filter
        .map(|f| format!(" (audience: {f})"))
        .unwrap_or_default();
    eprint!(
        "{what} \"{}\" to {audience} subscribers{}? [y/N] ",
        for_terminal(subject),
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
async fn watch_signals(stop: Stopper) {
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
            std::process::exit(i32::from(INTERRUPTED));
        }
    }
}

/// This process's lease holder name (see [`crate::holder`]).
pub fn lease_holder() -> String {
    crate::holder::current()
}

/// Is `holder` a process on this machine that no longer exists?
fn holder_is_dead(holder: &str) -> bool {
    crate::holder::is_dead(holder)
}

/// A named lease held by this process while it works.
#[derive(Debug, Clone)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub length: Duration,
}

impl Lease {
    pub fn new(settings: &Settings, name: String) -> Lease {
        Lease {
            name,
            holder: lease_holder(),
            length: Duration::from_secs(settings.schedule.lease_secs.max(5)),
        }
    }

    /// Take or renew the lease. One whose holder died on this machine
    /// (a killed process) is taken over at once instead of waiting for it
    /// to expire.
    pub async fn take(&self, store: &Store) -> anyhow::Result<bool> {
        let now = chrono::Utc::now();
        let until = crate::store::format_time(
            now + chrono::Duration::from_std(self.length).unwrap_or_default(),
        );
        if store
            .acquire_lease(
                &self.name,
                &self.holder,
                &crate::store::format_time(now),
                &until,
            )
            .await?
        {
            return Ok(true);
        }
        match store.lease_holder(&self.name).await? {
            Some((old, _)) if holder_is_dead(&old) => {
                tracing::warn!(lease = %self.name, previous = %old, "the previous holder is gone; taking over");
                Ok(store
                    .replace_lease(&self.name, &old, &self.holder, &until)
                    .await?)
            }
            _ => Ok(false),
        }
    }

    /// Renew every third of the lease length until aborted.
    pub async fn renew_forever(self, store: Store) {
        let mut tick = tokio::time::interval(self.length / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.take(&store).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(lease = %self.name, "lost the lease to another process")
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not renew the lease")
                }
            }
        }
    }
}

pub fn format_states(counts: &std::collections::BTreeMap<&'static str, i64>) -> String {
    crate::store::deliveries::STATES
        .iter()
        .map(|s| format!("{s} {}", counts.get(s).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

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

pub async fn status(
    store: &Store,
    arg: std::path::PathBuf,
    format: StatusFormat,
    failed: bool,
) -> anyhow::Result<u8> {
    let issue = find_issue(store, &arg).await?;
    let counts = store.delivery_counts(issue.id).await?;
    let times = store.send_times(issue.id).await?;
    let total: i64 = counts.values().sum();
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
        (Some(a), Some(b)) if b > a => Some(counts["sent"] as f64 / (b - a).as_seconds_f64()),
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
        .deliveries_in_states(issue.id, &["failed", "deferred", "unknown"], limit)
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
            println!("ledger:   {}", format_states(&counts));
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
    if issue.state == "aborted" {
        return Err(bad_input!(
            "{}: the send of `{}` was aborted; nothing is resent (a new version: herald send FILE --live --force-new-version)",
            args.issue.display(),
            issue.slug
        ));
    }
    let from = if args.failed { "failed" } else { "unknown" };
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
