//! What each CLI command does: glue between settings, store and engines.
//! Output meant for the operator goes to stdout; diagnostics to stderr.

mod demo;
mod dkim;
mod init;
mod issue;
mod schedule;
pub mod send;
mod serve;
mod subscribers;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::store::Store;

/// Run one parsed command; returns the process exit code on success paths
/// that still want a non-zero code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Init => init::run(&settings).await,
        Command::Issue(cmd) => issue::run(&settings, cmd).await,
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Serve { bind } => serve::run(&settings, bind.as_deref()).await,
        Command::Dkim(cmd) => dkim::run(&settings, cmd),
        command => {
            let store = open_store(&settings).await?;
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
        Command::Status(args) => send::status(store, args).await,
        Command::Resend(args) => send::resend(store, args).await,
        Command::Schedule(args) => schedule::run(settings, store, args).await,
        Command::RunDue(args) => schedule::run_due(settings, store, args).await,
        Command::Init
        | Command::Demo(_)
        | Command::Issue(_)
        | Command::Serve { .. }
        | Command::Dkim(_) => {
            unreachable!("handled before opening the store")
        }
    }
}

/// Open and migrate the configured database.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    Store::open(&settings.database).await
}
