//! `herald subscribers …`: add, import, list, unsubscribe, unsubscribe-token,
//! export.

use std::io::Write;

use anyhow::Context;

use crate::bad_input;
use crate::cli::{ListFormat, SubscribersCommand};
use crate::config::Settings;
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus, UnsubscribeSource};
use crate::safe_text::{for_terminal, to_spreadsheet};
use crate::store::subscribers::{AddOutcome, Subscriber};
use crate::store::Store;
use crate::{import, secrets};

pub async fn run(
    store: &Store,
    settings: &Settings,
    cmd: SubscribersCommand,
) -> anyhow::Result<u8> {
    match cmd {
        SubscribersCommand::Add {
            email,
            name,
            reactivate,
        } => add(store, &email, name.as_deref(), reactivate).await,
        SubscribersCommand::Import { file, delimiter } => {
            let report = import::import_csv_with(store, &file, delimiter, |r| {
                eprintln!("{}:{r}", file.display());
            })
            .await?;
            println!("{report}");
            Ok(0)
        }
        SubscribersCommand::List { status, format } => list(store, status, format).await,
        SubscribersCommand::Unsubscribe { email } => {
            let email = parse_email(&email)?;
            match store.unsubscribe_email(&email).await? {
                None => {
                    // A suppression entry: the address can be loaded
                    // before the audience and stays out of it.
                    if store.suppress_email(&email).await? {
                        println!(
                            "{email} is not a subscriber; recorded as unsubscribed, so no import \
                             or add makes it active"
                        );
                    } else {
                        println!("{email} was added meanwhile; run the command again");
                    }
                    Ok(0)
                }
                Some(SubscriberStatus::Active) => {
                    println!("unsubscribed {email}");
                    Ok(0)
                }
                Some(previous) => {
                    println!("{email} was already {previous}; unchanged");
                    Ok(0)
                }
            }
        }
        SubscribersCommand::Export { status } => list(store, status, ListFormat::Csv).await,
        SubscribersCommand::UnsubscribeToken { token } => {
            unsubscribe_token(store, settings, &token).await
        }
    }
}

/// The mailto fallback: unsubscribe whoever a genuine token names. Only an
/// active subscriber changes; the token itself is never printed.
async fn unsubscribe_token(store: &Store, settings: &Settings, input: &str) -> anyhow::Result<u8> {
    // `unsubscribe+TOKEN@domain` → `TOKEN`; base64url has no `+` or `@`.
    let local = input
        .trim()
        .rsplit_once('@')
        .map_or(input.trim(), |(l, _)| l);
    let token = local.split_once('+').map_or(local, |(_, t)| t);
    let keys = secrets::signing_keys(store, &settings.unsubscribe).await?;
    let claims = keys
        .verify(token)
        .ok_or_else(|| bad_input!("not a genuine unsubscribe token"))?;
    let Some(sub) = store.link_subscriber(claims.subscriber_id).await? else {
        return Err(bad_input!("the token names no subscriber"));
    };
    if sub.status == SubscriberStatus::Active
        && store
            .unsubscribe_if_active(sub.id, UnsubscribeSource::Mailto)
            .await?
            .is_some()
    {
        println!("unsubscribed {} (id {})", sub.email, sub.id);
    } else {
        println!(
            "{} (id {}) was already {}; unchanged",
            sub.email, sub.id, sub.status
        );
    }
    Ok(0)
}

fn parse_email(input: &str) -> anyhow::Result<SubscriberEmail> {
    SubscriberEmail::parse(input).map_err(|e| bad_input!("EMAIL: {e}"))
}

async fn add(
    store: &Store,
    email: &str,
    name: Option<&str>,
    reactivate: bool,
) -> anyhow::Result<u8> {
    let email = parse_email(email)?;
    let name = match name {
        Some(n) => SubscriberName::parse_optional(n).map_err(|e| bad_input!("--name: {e}"))?,
        None => None,
    };
    match store
        .add_subscriber(&email, name.as_ref(), reactivate)
        .await?
    {
        AddOutcome::Added(id) => println!("added {email} (id {id})"),
        AddOutcome::AlreadyActive(id) => println!("{email} is already subscribed (id {id})"),
        AddOutcome::Reactivated(id) => println!("re-activated {email} (id {id})"),
        AddOutcome::NotActive(_, status) => {
            return Err(bad_input!(
                "{email} is {status}; not re-activated (use --reactivate only with their consent)"
            ))
        }
    }
    Ok(0)
}

const PAGE: i64 = 5000;

/// Page through the subscribers and write them in `format` to stdout.
async fn list(
    store: &Store,
    status: Option<SubscriberStatus>,
    format: ListFormat,
) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut sink = match Sink::new(format, std::io::BufWriter::new(stdout.lock())) {
        Ok(sink) => sink,
        Err(e) => return broken_pipe_ok(e),
    };
    let mut after = 0;
    loop {
        let page = store.subscribers_page(status, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for sub in &page {
            if let Err(e) = sink.write(sub) {
                return broken_pipe_ok(e);
            }
        }
    }
    if let Err(e) = sink.finish() {
        return broken_pipe_ok(e);
    }
    Ok(0)
}

/// A closed stdout (e.g. `| head`) is not an error.
fn broken_pipe_ok(e: anyhow::Error) -> anyhow::Result<u8> {
    let broken_io = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
    let broken = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(broken_io)
            || c.downcast_ref::<csv::Error>()
                .is_some_and(|c| matches!(c.kind(), csv::ErrorKind::Io(io) if broken_io(io)))
    });
    if broken {
        Ok(0)
    } else {
        Err(e.context("writing the listing"))
    }
}

/// Export columns; `import` reads the same header back.
const CSV_HEADER: [&str; 7] = [
    "email",
    "name",
    "status",
    "created_at",
    "updated_at",
    "unsubscribed_at",
    "attributes",
];

/// Writes subscribers one at a time in the chosen format.
enum Sink<W: Write> {
    Table { out: W, rows: u64 },
    Csv(Box<csv::Writer<W>>),
    Json { out: W, rows: u64 },
}

impl<W: Write> Sink<W> {
    fn new(format: ListFormat, out: W) -> anyhow::Result<Sink<W>> {
        Ok(match format {
            ListFormat::Table => Sink::Table { out, rows: 0 },
            ListFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_HEADER)?;
                Sink::Csv(Box::new(w))
            }
            ListFormat::Json => Sink::Json { out, rows: 0 },
        })
    }

    fn write(&mut self, sub: &Subscriber) -> anyhow::Result<()> {
        match self {
            Sink::Table { out, rows } => {
                if *rows == 0 {
                    writeln!(
                        out,
                        "{:>7}  {:<40}  {:<24}  {:<12}  CREATED",
                        "ID", "EMAIL", "NAME", "STATUS"
                    )?;
                }
                *rows += 1;
                writeln!(
                    out,
                    "{:>7}  {:<40}  {:<24}  {:<12}  {}",
                    sub.id,
                    for_terminal(sub.email.as_ref()),
                    for_terminal(sub.name.as_deref().unwrap_or("-")),
                    sub.status.as_str(),
                    sub.created_at
                )?;
            }
            Sink::Csv(w) => {
                let attributes = if sub.attributes.is_empty() {
                    String::new()
                } else {
                    serde_json::Value::Object(sub.attributes.clone()).to_string()
                };
                // Every cell through the formula guard: a spreadsheet opening
                // the export must not run `=HYPERLINK(…)` from a name.
                w.write_record(
                    [
                        sub.email.as_ref(),
                        sub.name.as_deref().unwrap_or(""),
                        sub.status.as_str(),
                        sub.created_at.as_str(),
                        sub.updated_at.as_str(),
                        sub.unsubscribed_at.as_deref().unwrap_or(""),
                        attributes.as_str(),
                    ]
                    .map(to_spreadsheet)
                    .iter()
                    .map(|c| c.as_bytes()),
                )?;
            }
            Sink::Json { out, rows } => {
                out.write_all(if *rows == 0 { b"[\n  " } else { b",\n  " })?;
                *rows += 1;
                serde_json::to_writer(&mut *out, sub).context("encoding JSON")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Table { mut out, rows } => {
                if rows == 0 {
                    writeln!(out, "no subscribers")?;
                }
                out.flush()?;
            }
            Sink::Csv(mut w) => w.flush()?,
            Sink::Json { mut out, rows } => {
                out.write_all(if rows == 0 { b"[]\n" } else { b"\n]\n" })?;
                out.flush()?;
            }
        }
        Ok(())
    }
}
