//! Command-line definitions (clap derive) and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::SubscriberStatus;

/// herald: self-hosted email newsletter dispatch.
///
/// Compiles an issue through an MJML template into HTML and a plain-text
/// twin, and delivers one personalised copy per subscriber from a SQLite
/// audience, recording every recipient's outcome.
///
/// Exit codes: 0 ok, 1 runtime failure, 2 bad input or configuration.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Extra configuration file, merged over config/default.toml and
    /// config/local.toml (environment variables HERALD__SECTION__KEY still win).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log line format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "HERALD_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or migrate the database and generate the unsubscribe signing
    /// key if none is configured. Safe to run again.
    Init,

    /// Manage the audience.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),

    /// Run the whole job on the embedded defaults: initialise the database
    /// and import the bundled sample subscribers.
    Demo(DemoArgs),

    /// Serve the unsubscribe links (page and RFC 8058 one-click POST),
    /// /healthz and /metrics until SIGINT or SIGTERM. Never sends mail.
    Serve {
        /// Address to listen on, IP:PORT (default: http.bind). Port 0 picks
        /// a free port; the address in use is printed on stdout.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Add one subscriber (active). An existing active subscriber gets the
    /// new name; one who unsubscribed or bounced is left alone unless
    /// --reactivate is given.
    Add {
        /// Email address.
        email: String,
        /// Display name, used in greetings and the To header.
        #[arg(long)]
        name: Option<String>,
        /// Re-activate an address that unsubscribed or bounced. Only with
        /// the person's own, recorded consent.
        #[arg(long)]
        reactivate: bool,
    },

    /// Import subscribers from a CSV file with a header row. `email` is
    /// required; `name` and `status` are understood; other columns become
    /// attributes for personalisation. Re-importing updates names and
    /// attributes but never re-activates anyone who unsubscribed or bounced.
    /// Bad rows are reported with their line number and skipped.
    Import {
        /// CSV file (UTF-8, comma-separated, header row).
        file: PathBuf,
    },

    /// List subscribers.
    List {
        /// Only subscribers with this status.
        #[arg(long, value_enum)]
        status: Option<SubscriberStatus>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },

    /// Unsubscribe one address (idempotent).
    Unsubscribe {
        /// Email address.
        email: String,
    },

    /// Unsubscribe the subscriber an unsubscribe token names (idempotent):
    /// the mailto fallback, for a mail server that pipes
    /// `unsubscribe+TOKEN@domain` here. Accepts the bare token or that
    /// address. Exit 2 if the token is not genuine.
    UnsubscribeToken {
        /// The token, or an address `local+TOKEN@domain`.
        token: String,
    },

    /// Write every subscriber as CSV to stdout (the same columns `import`
    /// reads back).
    Export {
        /// Only subscribers with this status.
        #[arg(long, value_enum)]
        status: Option<SubscriberStatus>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// CSV of subscribers to import (default: the bundled sample).
    #[arg(long, value_name = "FILE.csv")]
    pub subscribers: Option<PathBuf>,
}
