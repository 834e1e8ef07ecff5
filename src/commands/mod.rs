//! What each CLI command does: glue between settings, store and engines.
//! Output meant for the operator goes to stdout; diagnostics to stderr.

mod abort;
mod bounces;
mod db;
mod demo;
mod dkim;
mod dry_run;
mod init;
mod issue;
mod overview;
mod run_due_preview;
mod schedule;
mod send;
mod serve;
mod status;
mod subscribers;
mod test_send;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::delivery::dispatch::Severity;
use crate::error::exit;
use crate::home::{self, Home};
use crate::store::Store;

/// Run one parsed command; returns the process exit code on success paths
/// that still want a non-zero code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let home = Home::resolve(cli.dir.as_deref(), cli.config.as_deref())?;
    let settings = Settings::load_from(&home, cli.config.as_deref())?;
    match cli.command {
        Command::Init => init::run(&settings).await,
        Command::Issue(cmd) => issue::run(&settings, cmd).await,
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Serve { bind } => serve::run(&settings, bind.as_deref()).await,
        Command::Bounces(cmd) => bounces::run(&settings, cmd).await,
        Command::Dkim(cmd) => dkim::run(&settings, cmd),
        Command::Db(cmd) => db::run(&settings, cmd).await,
        command => {
            let store = open_existing_store(&settings).await?;
            let result = dispatch(&settings, &store, command).await;
            store.close().await;
            result
        }
    }
}

/// Commands that work on an open database.
async fn dispatch(settings: &Settings, store: &Store, command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Subscribers(cmd) => subscribers::run(store, settings, cmd).await,
        Command::Send(args) => send::run(settings, store, args).await,
        Command::Status(args) => match args.issue {
            Some(issue) => status::run(store, issue, args.format, args.failed).await,
            None => overview::run(store, args.format).await,
        },
        Command::Resend(args) => status::resend(store, args).await,
        Command::Abort { issue } => abort::run(store, &issue).await,
        Command::Schedule(args) => schedule::run(settings, store, args).await,
        Command::RunDue(args) => schedule::run_due(settings, store, args).await,
        Command::Init
        | Command::Demo(_)
        | Command::Issue(_)
        | Command::Serve { .. }
        | Command::Bounces(_)
        | Command::Dkim(_)
        | Command::Db(_) => {
            unreachable!("handled before opening the store")
        }
    }
}

/// Exit code after an operator interrupt.
const INTERRUPTED: u8 = 130;

/// The exit code of an outcome's severity: 0 ok, 1 failed, 2 bad input or
/// configuration, 130 interrupted.
pub(crate) fn exit_code(severity: Severity) -> u8 {
    match severity {
        Severity::Ok => exit::OK,
        Severity::Failed => exit::FAILURE,
        Severity::BadInput => exit::BAD_INPUT,
        Severity::Interrupted => INTERRUPTED,
    }
}

/// Open and migrate the configured database, creating it (and its
/// directory) if missing: only `init` and `demo` do that.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    home::prepare_database_dir(&settings.database.url)?;
    Store::open(&settings.database).await
}

/// Open and migrate the configured database, which must exist (exit 2
/// naming the path otherwise).
pub async fn open_existing_store(settings: &Settings) -> anyhow::Result<Store> {
    home::require_database(&settings.database.url)?;
    Store::open_existing(&settings.database)
        .await?
        .ok_or_else(|| {
            crate::bad_input!(
                "the PostgreSQL database {} has no herald tables (run `herald init` first)",
                crate::store::redact_url(&settings.database.url)
            )
        })
}
