//! `herald bounces ingest|list|show`: feed bounce mail in from an MTA pipe,
//! a Maildir or an mbox, and review what was recorded.

use std::io::Read;
use std::path::Path;

use crate::bounce::report::Format;
use crate::bounce::{mailbox, Line, Matcher};
use crate::cli::{BouncesCommand, StatusFormat};
use crate::config::Settings;
use crate::safe_text::for_terminal;
use crate::store::Store;
use crate::{bad_input, secrets};

/// sysexits.h EX_TEMPFAIL: the MTA keeps the message and retries.
pub const TEMPFAIL: u8 = 75;

/// Run a bounces command. `ingest` opens the database itself, so that an
/// unavailable database is a temporary failure (75), not an error.
pub async fn run(settings: &Settings, cmd: BouncesCommand) -> anyhow::Result<u8> {
    let store = match super::open_existing_store(settings).await {
        Ok(store) => store,
        Err(e) if matches!(cmd, BouncesCommand::Ingest { .. }) => {
            eprintln!("herald: database unavailable, try again later: {e:#}");
            return Ok(TEMPFAIL);
        }
        Err(e) => return Err(e),
    };
    let result = match cmd {
        BouncesCommand::Ingest {
            maildir,
            mbox,
            recipient,
        } => {
            ingest(
                settings,
                &store,
                maildir.as_deref(),
                mbox.as_deref(),
                recipient.as_deref(),
            )
            .await
        }
        BouncesCommand::List {
            issue,
            kind,
            format,
            limit,
        } => {
            let issue_id = match &issue {
                Some(arg) => Some(super::status::find_issue(&store, arg).await?.id),
                None => None,
            };
            list(&store, issue_id, kind.map(|k| k.as_str()), format, limit).await
        }
        BouncesCommand::Show { id } => show(&store, id).await,
    };
    store.close().await;
    result
}

async fn ingest(
    settings: &Settings,
    store: &Store,
    maildir: Option<&Path>,
    mbox: Option<&Path>,
    recipient: Option<&str>,
) -> anyhow::Result<u8> {
    let keys = secrets::signing_keys(store, settings).await?;
    let matcher = Matcher {
        store,
        keys: &keys,
        list_id: &settings.newsletter.list_id,
        soft_limit: settings.bounce.soft_limit,
    };
    let mut tally = Tally::default();
    let outcome = async {
        if let Some(dir) = maildir {
            let files = mailbox::maildir_new(dir).map_err(|e| bad_input!("--maildir: {e}"))?;
            for file in files {
                let raw = std::fs::read(&file)?;
                let (format, lines) = matcher.ingest_message(&raw, recipient).await?;
                tally.add(format, &lines);
                if format != Format::Other {
                    mailbox::maildir_mark_seen(dir, &file)?;
                }
            }
        } else if let Some(path) = mbox {
            let bytes =
                std::fs::read(path).map_err(|e| bad_input!("--mbox {}: {e}", path.display()))?;
            for raw in mailbox::mbox_messages(&bytes) {
                let (format, lines) = matcher.ingest_message(&raw, recipient).await?;
                tally.add(format, &lines);
            }
        } else {
            let mut raw = Vec::new();
            std::io::stdin().read_to_end(&mut raw)?;
            let (format, lines) = matcher.ingest_message(&raw, recipient).await?;
            tally.add(format, &lines);
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = outcome {
        if crate::error::exit_code(&e) == crate::error::exit::BAD_INPUT {
            return Err(e);
        }
        // The database went away mid-way (locked, full, unreachable):
        // what was recorded stays; the MTA retries the rest.
        eprintln!("herald: could not record the report, try again later: {e:#}");
        return Ok(TEMPFAIL);
    }
    println!("{tally}");
    Ok(0)
}

/// Counts for the closing line of `ingest`.
#[derive(Default)]
struct Tally {
    messages: u64,
    other: u64,
    kinds: std::collections::BTreeMap<&'static str, u64>,
    marked: u64,
    repeated: u64,
}

impl Tally {
    fn add(&mut self, format: Format, lines: &[Line]) {
        self.messages += 1;
        if format == Format::Other {
            self.other += 1;
        }
        for line in lines {
            if !line.recorded.new {
                self.repeated += 1;
                continue;
            }
            *self.kinds.entry(line.kind).or_default() += 1;
            if line.recorded.marked.is_some() {
                self.marked += 1;
            }
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "messages {}", self.messages)?;
        for (kind, n) in &self.kinds {
            write!(f, ", {kind} {n}")?;
        }
        write!(
            f,
            ", not a report {}, already recorded {}; subscribers marked {}",
            self.other, self.repeated, self.marked
        )
    }
}

async fn list(
    store: &Store,
    issue_id: Option<i64>,
    kind: Option<&str>,
    format: StatusFormat,
    limit: i64,
) -> anyhow::Result<u8> {
    let rows = store.list_bounces(issue_id, kind, limit).await?;
    match format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        StatusFormat::Table if rows.is_empty() => println!("no bounces"),
        StatusFormat::Table => {
            println!(
                "{:>6}  {:<24}  {:<10}  {:<32}  {:<20}  {:<7}  DIAGNOSTIC",
                "ID", "RECEIVED", "KIND", "EMAIL", "ISSUE", "STATUS"
            );
            for b in rows {
                println!(
                    "{:>6}  {:<24}  {:<10}  {:<32}  {:<20}  {:<7}  {}",
                    b.id,
                    b.received_at,
                    b.kind,
                    for_terminal(b.email.as_deref().unwrap_or("-")),
                    b.issue.as_deref().unwrap_or("-"),
                    for_terminal(b.status_code.as_deref().unwrap_or("-")),
                    for_terminal(b.diagnostic.as_deref().unwrap_or("-")),
                );
            }
        }
    }
    Ok(0)
}

async fn show(store: &Store, id: i64) -> anyhow::Result<u8> {
    let Some((b, raw)) = store.bounce_raw(id).await? else {
        return Err(bad_input!("no bounce with id {id}"));
    };
    println!("id:         {}", b.id);
    println!("received:   {}", b.received_at);
    println!("kind:       {}", b.kind);
    println!("source:     {}", b.source);
    println!("matched by: {}", b.matched_by.as_deref().unwrap_or("-"));
    println!("issue:      {}", b.issue.as_deref().unwrap_or("-"));
    println!(
        "email:      {}",
        for_terminal(b.email.as_deref().unwrap_or("-"))
    );
    println!(
        "status:     {}",
        for_terminal(b.status_code.as_deref().unwrap_or("-"))
    );
    println!(
        "diagnostic: {}",
        for_terminal(b.diagnostic.as_deref().unwrap_or("-"))
    );
    if let Some(raw) = raw {
        println!("\n{}", for_terminal_lines(&raw));
    }
    Ok(0)
}

/// A report printed line by line with control characters escaped (line
/// breaks kept).
fn for_terminal_lines(text: &str) -> String {
    text.lines()
        .map(|l| for_terminal(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
