//! What each CLI command does: glue between settings, store and engines.
//! Output meant for the operator goes to stdout; diagnostics to stderr.

mod demo;
mod init;
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
        Command::Subscribers(cmd) => {
            let store = open_store(&settings).await?;
            let code = subscribers::run(&store, &settings, cmd).await;
            store.close().await;
            code
        }
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Serve { bind } => serve::run(&settings, bind.as_deref()).await,
    }
}

/// Open and migrate the configured database.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    Store::open(&settings.database).await
}
