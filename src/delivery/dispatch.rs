//! The live send as a use case, for `herald send --live` and `run-due`
//! alike: [`Dispatch::register`] an issue file's version, [`Dispatch::start`]
//! it (the send lease, the audience snapshot on the first start, crash
//! recovery of a previous run's rows), then [`Dispatch::run`] the delivery
//! engine until the work is done or the run halts, and say how it ended as
//! a [`SendOutcome`]. Nothing here prints or knows exit codes: the caller
//! asks for confirmation before registering, shows the outcome and maps its
//! [`Severity`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::Digest;

use super::compose::Composer;
use super::lease::{Lease, LeaseGuard, Taken};
use super::progress::Progress;
use super::ratelimit::SendLimiter;
use super::{EngineOptions, Halt, Plan, RunReport, Stopper};
use crate::bad_input;
use crate::clock::Clock;
use crate::config::{OnUnknown, Settings};
use crate::domain::{Audience, IssueState, LedgerCounts};
use crate::mailer::dkim::Signer;
use crate::mailer::transport::Connector;
use crate::render::{self, CompiledIssue};
use crate::secrets;
use crate::store::issues::{IssueRecord, NewIssue, Registered as Registration};
use crate::store::Store;

/// How often a running send looks whether its issue was aborted.
pub const ABORT_WATCH_EVERY: Duration = Duration::from_secs(1);

/// How bad an outcome is for the operator, worst last. The command line
/// turns the worst one into its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Done, or nothing to do.
    Ok,
    /// The work failed or is left for a later run.
    Failed,
    /// Input or configuration must change first.
    BadInput,
    /// The operator stopped it.
    Interrupted,
}

/// An issue file loaded and compiled (nothing written yet).
pub struct IssueFile {
    path: PathBuf,
    issue: render::Issue,
    compiled: CompiledIssue,
}

impl IssueFile {
    /// Load and compile an issue file (errors name the file).
    pub fn load(
        settings: &Settings,
        path: &Path,
        merge_tags: Option<render::MergeTags>,
    ) -> anyhow::Result<IssueFile> {
        let issue = render::load_issue_with(path, merge_tags)?;
        let compiled = render::compile(&issue, settings)?;
        Ok(IssueFile {
            path: path.to_path_buf(),
            issue,
            compiled,
        })
    }

    pub fn issue(&self) -> &render::Issue {
        &self.issue
    }

    pub fn compiled(&self) -> &CompiledIssue {
        &self.compiled
    }

    /// The SHA-256 of the file's content (what tells versions apart).
    fn content_hash(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.issue.source_bytes()))
    }
}

/// An issue version ready to start (or resume).
pub struct Registered {
    record: IssueRecord,
}

impl From<IssueRecord> for Registered {
    /// A version already in the store (a scheduled or interrupted send).
    fn from(record: IssueRecord) -> Registered {
        Registered { record }
    }
}

/// What starting a send found.
pub enum Started {
    /// This process holds the send and may run it.
    Ready(Box<StartedSend>),
    /// Another live process is sending this version.
    Busy {
        slug: String,
        holder: String,
        until: String,
    },
}

/// A started send: its lease held (released when this is dropped), the
/// audience snapshotted, a previous run's claimed rows recovered.
pub struct StartedSend {
    record: IssueRecord,
    compiled: CompiledIssue,
    lease: LeaseGuard,
    /// The first start of this version (not a resume).
    pub first_start: bool,
    /// Rows the audience snapshot added (0 on a resume).
    pub added: u64,
    /// The audience filter the version was started with.
    pub audience: Option<Audience>,
}

impl StartedSend {
    pub fn record(&self) -> &IssueRecord {
        &self.record
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Nothing left that this run could do: `left` deliveries wait for a
    /// later attempt, `held` of them unknown and held (`on_unknown = hold`).
    Completed { left: i64, held: i64 },
    /// The operator stopped it (Ctrl-C, SIGTERM).
    Interrupted { left: i64 },
    /// `herald abort` stopped it for good; `cancelled` more rows now.
    Aborted { cancelled: u64 },
    /// No worker could reach the server (`server` describes it).
    Unreachable {
        server: String,
        left: i64,
        cause: Option<String>,
    },
    /// The ledger could not be written.
    LedgerFailed { left: i64, cause: Option<String> },
    /// A delivery worker died.
    WorkerDied { left: i64, cause: Option<String> },
    /// Another process took the send's lease: this run stopped.
    LeaseLost { left: i64 },
}

impl SendOutcome {
    pub fn severity(&self) -> Severity {
        match self {
            SendOutcome::Completed { .. } | SendOutcome::Aborted { .. } => Severity::Ok,
            SendOutcome::Interrupted { .. } => Severity::Interrupted,
            SendOutcome::Unreachable { .. }
            | SendOutcome::LedgerFailed { .. }
            | SendOutcome::WorkerDied { .. }
            | SendOutcome::LeaseLost { .. } => Severity::Failed,
        }
    }
}

/// A finished run: what it did, the ledger after it, how it ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub slug: String,
    pub report: RunReport,
    pub ledger: LedgerCounts,
    pub outcome: SendOutcome,
}

/// The facts a confirmation prompt shows, read without writing.
pub struct PromptFacts {
    pub subject: String,
    /// The file's version would start (not resume).
    pub first_start: bool,
    /// Recipients: the audience now, or the deliveries left on a resume.
    pub recipients: i64,
    pub audience: Option<Audience>,
}

/// The live-send use case over one store with one installation's settings.
pub struct Dispatch<'a> {
    pub store: &'a Store,
    pub settings: &'a Settings,
    /// Lift the live-send guard's rule on `http.public_base_url`.
    pub allow_unsafe_links: bool,
    pub progress: Progress,
    /// The time the send runs on (the engine's and the ledger's stamps).
    pub clock: Clock,
}

impl Dispatch<'_> {
    /// Refuse a live send the settings do not allow (bad input).
    pub fn check_guard(&self) -> anyhow::Result<()> {
        Ok(super::live_guard::check(
            self.settings,
            self.allow_unsafe_links,
        )?)
    }

    /// What a start of `file` would show for confirmation; reads only.
    pub async fn prompt_facts(
        &self,
        file: &IssueFile,
        audience: Option<&Audience>,
    ) -> anyhow::Result<PromptFacts> {
        let subject = file.issue.display_subject();
        if let Some(latest) = self.store.latest_issue(file.issue.slug()).await? {
            if latest.content_hash == file.content_hash() && latest.started_at.is_some() {
                return Ok(PromptFacts {
                    subject,
                    first_start: false,
                    recipients: self.store.delivery_counts(latest.id).await?.open(),
                    audience: stored_audience(&latest)?,
                });
            }
        }
        let audience = audience.or(file.issue.audience()).cloned();
        Ok(PromptFacts {
            subject,
            first_start: true,
            recipients: self.store.count_audience(audience.as_ref()).await?,
            audience,
        })
    }

    /// Register the file's version (a changed file after the start is
    /// refused unless `new_version`) and fix its audience: `audience`
    /// (from the command line) over the file's own.
    pub async fn register(
        &self,
        file: &IssueFile,
        new_version: bool,
        audience: Option<&Audience>,
    ) -> anyhow::Result<Registered> {
        self.check_guard()?;
        let path = &file.path;
        let registered =
            register_file(self.store, &file.issue, &file.compiled, path, new_version).await?;
        let record = match registered {
            Registration::Ready(r) if r.state == IssueState::Aborted => {
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
            Registration::Ready(r) => r,
            Registration::ChangedAfterStart(r) => {
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
        let record = apply_audience(self.store, record, audience, file.issue.audience()).await?;
        Ok(Registered { record })
    }

    /// Take the version's send lease, snapshot the audience on the first
    /// start, and recover the rows a previous run left `claimed`.
    pub async fn start(&self, registered: Registered) -> anyhow::Result<Started> {
        let record = registered.record;
        self.check_guard()?;
        if record.state == IssueState::Aborted {
            return Err(bad_input!(
                "the send of `{}` (version {}) was aborted; it is not resumed",
                record.slug,
                record.version
            ));
        }
        // The stored compiled content, so a resumed send is byte-identical.
        let compiled: CompiledIssue =
            serde_json::from_str(&record.compiled).context("reading the stored compiled issue")?;
        let length = Duration::from_secs(self.settings.schedule.lease_secs);
        let shared = self.store.shares_sends();
        let lease = match Lease::for_send(record.id, length, shared)
            .take(self.store)
            .await?
        {
            Taken::Held(guard) => guard,
            Taken::Busy { holder, until } => {
                return Ok(Started::Busy {
                    slug: record.slug,
                    holder,
                    until,
                })
            }
        };
        let first_start = record.started_at.is_none();
        match self.snapshot(&record, first_start).await {
            Ok((added, audience)) => Ok(Started::Ready(Box::new(StartedSend {
                record,
                compiled,
                lease,
                first_start,
                added,
                audience,
            }))),
            Err(e) => {
                lease.release().await;
                Err(e)
            }
        }
    }

    /// Under the send lease: snapshot the audience on the first start
    /// (returns the rows added and the stored filter), then recover the
    /// rows a previous run left `claimed`.
    async fn snapshot(
        &self,
        record: &IssueRecord,
        first_start: bool,
    ) -> anyhow::Result<(u64, Option<Audience>)> {
        let audience = stored_audience(record).context("reading the stored audience")?;
        let prefix = if record.version == 1 {
            record.slug.clone()
        } else {
            format!("{}-v{}", record.slug, record.version)
        };
        let added = self
            .store
            .start_live_send(
                record.id,
                &prefix,
                self.settings.sending_domain(),
                &self.clock.now_text(),
            )
            .await?;
        if first_start {
            tracing::info!(issue = %record.slug, recipients = added, "live send started");
        } else {
            tracing::info!(issue = %record.slug, "resuming live send");
        }
        let resend_unknown = self.settings.sender.on_unknown == OnUnknown::Resend;
        let (lost, _) = self
            .store
            .recover_claimed(
                record.id,
                resend_unknown,
                &self.clock.now_text(),
                &crate::store::now_text(),
            )
            .await?;
        if lost > 0 {
            tracing::warn!(
                issue = %record.slug,
                rows = lost,
                "messages in flight when a previous run stopped are now `unknown`"
            );
        }
        Ok((added, audience))
    }

    /// Deliver a started send until nothing is left that this run can do
    /// or it halts: `interrupt` is the operator's stop (Ctrl-C); an abort
    /// from another process and a lost lease halt it too. The lease is
    /// released at the end.
    pub async fn run(
        &self,
        send: Box<StartedSend>,
        interrupt: &Stopper,
    ) -> anyhow::Result<Finished> {
        let StartedSend {
            record,
            compiled,
            lease,
            ..
        } = *send;
        let composer = match composer_for(
            self.settings,
            self.store,
            &compiled,
            &record.slug,
            Some(record.id),
            "",
        )
        .await
        {
            Ok(composer) => composer,
            Err(e) => {
                lease.release().await;
                return Err(e);
            }
        };
        let stop = Stopper::default();
        let limiter = Arc::new(SendLimiter::new(&self.settings.sender));
        let watchers = [
            // Senders sharing the send: each paces at its share.
            tokio::spawn({
                let (mut share, limiter) = (lease.share(), limiter.clone());
                async move {
                    loop {
                        let senders = *share.borrow_and_update();
                        limiter.set_share(u32::try_from(senders).unwrap_or(u32::MAX));
                        if share.changed().await.is_err() {
                            return;
                        }
                    }
                }
            }),
            tokio::spawn({
                let (interrupt, stop) = (interrupt.clone(), stop.clone());
                async move {
                    interrupt.halted().await;
                    stop.halt(Halt::Interrupted);
                }
            }),
            tokio::spawn(watch_abort(self.store.clone(), record.id, stop.clone())),
            tokio::spawn({
                let (lost, stop) = (lease.lost(), stop.clone());
                async move {
                    lost.await;
                    stop.halt_because(
                        Halt::LeaseLost,
                        "another process took over the send's lease".into(),
                    );
                }
            }),
        ];
        let connector = Connector::from_settings(self.settings);
        let server = connector.describe();
        let plan = Plan {
            composer,
            connector,
            limiter,
            holder: lease.holder().to_string(),
            liveness: lease.liveness(),
            options: EngineOptions::new(&self.settings.sender, &self.settings.smtp),
            clock: self.clock.clone(),
        };
        let report = super::run(self.store, &record, plan, stop, &self.progress).await;
        for watcher in &watchers {
            watcher.abort();
        }
        let finished = match report {
            Ok(report) => self.finish(&record, report, server).await,
            Err(e) => Err(e),
        };
        lease.release().await;
        finished
    }

    /// The outcome of a run that returned.
    async fn finish(
        &self,
        record: &IssueRecord,
        report: RunReport,
        server: String,
    ) -> anyhow::Result<Finished> {
        let cancelled = self
            .store
            .cancel_rest_if_aborted(record.id, &self.clock.now_text())
            .await?;
        let aborted =
            cancelled > 0 || self.store.issue_state(record.id).await? == Some(IssueState::Aborted);
        let ledger = self.store.delivery_counts(record.id).await?;
        let left = ledger.open();
        let cause = report.cause.clone();
        let outcome = if aborted {
            SendOutcome::Aborted { cancelled }
        } else {
            match report.halt {
                Halt::None => {
                    let held = match self.settings.sender.on_unknown {
                        OnUnknown::Hold => ledger.unknown,
                        OnUnknown::Resend => 0,
                    };
                    SendOutcome::Completed { left, held }
                }
                Halt::Interrupted => SendOutcome::Interrupted { left },
                Halt::Unreachable => SendOutcome::Unreachable {
                    server,
                    left,
                    cause,
                },
                Halt::LedgerFailed => SendOutcome::LedgerFailed { left, cause },
                Halt::WorkerDied => SendOutcome::WorkerDied { left, cause },
                Halt::LeaseLost => SendOutcome::LeaseLost { left },
            }
        };
        Ok(Finished {
            slug: record.slug.clone(),
            report,
            ledger,
            outcome,
        })
    }
}

/// The audience filter stored with a version.
fn stored_audience(record: &IssueRecord) -> anyhow::Result<Option<Audience>> {
    Ok(record
        .audience
        .as_deref()
        .map(Audience::from_json)
        .transpose()?)
}

/// Poll the issue's state while a send runs; on `aborted`, halt the engine
/// (it stops claiming, lets messages in flight finish and gives back the
/// rest). Runs until aborted by the caller.
async fn watch_abort(store: Store, issue_id: i64, stop: Stopper) {
    let mut tick = tokio::time::interval(ABORT_WATCH_EVERY);
    loop {
        tick.tick().await;
        match store.issue_state(issue_id).await {
            Ok(Some(IssueState::Aborted)) => {
                tracing::warn!(issue_id, "the send was aborted by `herald abort`; stopping");
                stop.halt(Halt::Interrupted);
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "could not read the issue state"),
        }
    }
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
    let keys = secrets::signing_keys(store, &settings.unsubscribe).await?;
    let signer = Signer::load_all(settings.dkim.keys())?.map(Arc::new);
    Composer::new(
        settings,
        compiled.prepare(),
        slug,
        issue_id,
        keys,
        signer,
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
) -> anyhow::Result<Registration> {
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
        let stored = stored_audience(&record)?;
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
        // Another sender started it meanwhile (PostgreSQL): join it if it
        // went out to the same audience.
        if let Some(now) = store.issue_by_id(record.id).await? {
            if now.started_at.is_some() && stored_audience(&now)?.as_ref() == audience {
                return Ok(now);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_outranks_bad_input_which_outranks_a_failure() {
        assert!(Severity::Ok < Severity::Failed);
        assert!(Severity::Failed < Severity::BadInput);
        assert!(Severity::BadInput < Severity::Interrupted);
        assert_eq!(
            SendOutcome::LeaseLost { left: 3 }.severity(),
            Severity::Failed
        );
        assert_eq!(
            SendOutcome::Aborted { cancelled: 2 }.severity(),
            Severity::Ok
        );
    }
}
