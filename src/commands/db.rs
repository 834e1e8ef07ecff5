//! `herald db copy --to postgres://...`: move an installation from its
//! SQLite file to a PostgreSQL database, then say what to change.

use crate::cli::DbCommand;
use crate::config::{DatabaseSettings, Settings};
use crate::error::exit;
use crate::store::copy::{copy_sqlite_to_postgres, CopyRefused};
use crate::store::{is_postgres_url, redact_url, Store};
use crate::{bad_input, home};

pub async fn run(settings: &Settings, cmd: DbCommand) -> anyhow::Result<u8> {
    match cmd {
        DbCommand::Copy { to } => copy(settings, &to).await,
    }
}

async fn copy(settings: &Settings, to: &str) -> anyhow::Result<u8> {
    if is_postgres_url(&settings.database.url) {
        return Err(bad_input!(
            "db copy: this installation's database is already PostgreSQL ({}); the source must be its SQLite file",
            redact_url(&settings.database.url)
        ));
    }
    if !is_postgres_url(to) {
        return Err(bad_input!(
            "db copy: --to must be a postgres:// (postgresql://) URL, not `{}`",
            redact_url(to)
        ));
    }
    home::require_database(&settings.database.url)?;
    let source = Store::open(&settings.database).await?;
    let target_settings = DatabaseSettings {
        url: to.to_string(),
        ..settings.database.clone()
    };
    let target = match Store::open(&target_settings).await {
        Ok(target) => target,
        Err(e) => {
            source.close().await;
            return Err(e);
        }
    };
    let shown = redact_url(to);
    eprintln!(
        "copying {} into {shown}",
        redact_url(&settings.database.url)
    );
    let result =
        copy_sqlite_to_postgres(&source, &target, &crate::store::now_text(), |table, n| {
            tracing::debug!(table, rows = n, "copied");
        })
        .await;
    source.close().await;
    target.close().await;
    let copied = match result {
        Ok(copied) => copied,
        Err(CopyRefused::Store(e)) => return Err(anyhow::Error::new(e).context("db copy")),
        Err(refused) => return Err(bad_input!("db copy: {refused} (target {shown})")),
    };
    println!("{:<12} {:>10} {:>10}", "table", "sqlite", "postgres");
    for c in &copied {
        println!("{:<12} {:>10} {:>10}", c.table, c.source, c.target);
    }
    if copied.iter().any(|c| c.source != c.target) {
        eprintln!("herald: error: the row counts differ; nothing was kept in {shown}");
        return Ok(exit::FAILURE);
    }
    println!("copied and verified: every table has the same number of rows in {shown}");
    println!("to use it, set in config/local.toml (or HERALD__DATABASE__URL):");
    println!("  [database]");
    println!("  url = \"{shown}\"");
    if shown != to {
        println!("(with the password in place of ***)");
    }
    println!(
        "the SQLite file stays as it was; run no sender against it once the installation uses PostgreSQL"
    );
    Ok(exit::OK)
}
