//! Command-line definitions (clap derive) and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::SubscriberStatus;
use crate::schedule::{Delay, Timestamp};

/// herald: self-hosted email newsletter dispatch.
///
/// Compiles an issue through an MJML template into HTML and a plain-text
/// twin, and delivers one personalised copy per subscriber from a SQLite
/// audience, recording every recipient's outcome.
///
/// Exit codes: 0 ok, 1 runtime failure, 2 bad input or configuration, 130
/// stopped by Ctrl-C or SIGTERM.
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

    /// The installation directory: where config/local.toml and the database
    /// are, and what relative paths in the settings are relative to.
    /// Default: $HERALD_HOME, else the directory of --config, else the
    /// current directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

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

    /// Author issues: validate, compile and preview them.
    #[command(subcommand)]
    Issue(IssueCommand),

    /// Send an issue: to test addresses, as a dry run, or live to every
    /// active subscriber. A live send records each recipient's outcome and
    /// resumes where it stopped when run again. Exit 130 after Ctrl-C or
    /// SIGTERM (run-due resumes the send; `herald abort` stops it for good).
    Send(SendArgs),

    /// Show an issue's delivery ledger: counts per state, rate, elapsed,
    /// and the recipients that failed or are waiting for a retry. Without
    /// an issue: an overview of every issue.
    Status(StatusArgs),

    /// Put failed or unknown deliveries back to pending; the next
    /// `send --live` (or `run-due`) delivers them.
    Resend(ResendArgs),

    /// Stop an issue's send for good: every delivery not yet attempted
    /// (pending, deferred, unknown) becomes cancelled and the issue aborted.
    /// A sender running in another process stops within seconds; neither
    /// run-due nor `send --live` resumes it (a live send of the same issue
    /// then needs --force-new-version). Also stops a scheduled send.
    Abort {
        /// Issue file (or its slug).
        issue: PathBuf,
    },

    /// Schedule an issue for `herald run-due` to send at a given time; list
    /// or cancel scheduled issues. The issue is checked and compiled now, so
    /// errors show up when scheduling, and the compiled content is what
    /// goes out.
    Schedule(ScheduleArgs),

    /// For cron or a systemd timer, every minute: send every scheduled issue
    /// whose time has come and resume interrupted live sends. Safe to
    /// overlap (a second run exits 0 at once). An issue found later than
    /// schedule.max_lateness_secs is not sent but marked missed (exit 1).
    /// Exit codes: 0 ok or nothing to do, 1 a send failed or an issue was
    /// missed, 2 bad configuration, 130 stopped by SIGTERM (the next run
    /// resumes).
    RunDue(RunDueArgs),

    /// Run the whole job on the embedded defaults: initialise the database,
    /// import the bundled sample subscribers and live-send the bundled issue
    /// to the local outbox.
    Demo(DemoArgs),

    /// Serve the unsubscribe links (page and RFC 8058 one-click POST),
    /// /healthz and /metrics until SIGINT or SIGTERM. Never sends mail.
    Serve {
        /// Address to listen on, HOST:PORT (default: http.bind), e.g.
        /// 127.0.0.1:8080 or localhost:8090 (a name is resolved; the first
        /// address is used). Port 0 picks a free port; the address in use
        /// is printed on stdout.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },

    /// Bounces and complaints that come back after a relay accepted a
    /// message: read them from an MTA pipe, a Maildir or an mbox, and
    /// review what was recorded.
    #[command(subcommand)]
    Bounces(BouncesCommand),

    /// DKIM set-up: generate a signing key and print the DNS record to
    /// publish, or print the record of the configured keys again.
    #[command(subcommand)]
    Dkim(DkimCommand),

    /// The database itself: move an installation from SQLite to PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy this installation's SQLite database (subscribers, issues, the
    /// delivery ledger, schedule, keys, bounces) into an empty PostgreSQL
    /// database, verify the row counts, and print the setting to change.
    /// A half-finished send resumes there. Refuses a target that holds
    /// any herald data, and a source with a live send running (exit 2).
    Copy {
        /// The target: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (the
        /// database must exist; its herald tables are created).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read bounce mail: one message on stdin (for an MTA pipe), or every
    /// new message of a Maildir, or an mbox file. DSNs, ARF complaints and
    /// plain-text bounces are matched to their delivery and acted on;
    /// auto-replies are recorded, never counted as bounces; unrelated mail
    /// is left alone. Exit 0 for every message read, whatever it was; 75
    /// (EX_TEMPFAIL) when the database is unavailable, so the MTA retries.
    Ingest {
        /// Process the new messages of this Maildir (moved to cur/ with the
        /// Seen flag once handled; unrelated mail stays in new/).
        #[arg(long, value_name = "DIR", conflicts_with = "mbox")]
        maildir: Option<PathBuf>,
        /// Process every message of this mbox file.
        #[arg(long, value_name = "FILE")]
        mbox: Option<PathBuf>,
        /// The address the MTA delivered the message to (Postfix:
        /// ${recipient}), where the VERP token is.
        #[arg(long, value_name = "ADDRESS")]
        recipient: Option<String>,
    },
    /// Recorded bounces, newest first.
    List {
        /// Only this issue (file or slug).
        #[arg(long)]
        issue: Option<PathBuf>,
        /// Only this kind.
        #[arg(long, value_enum)]
        kind: Option<BounceKind>,
        #[arg(long, value_enum, default_value = "table")]
        format: StatusFormat,
        /// At most this many rows.
        #[arg(long, default_value = "200")]
        limit: i64,
    },
    /// One recorded bounce with the report it came from.
    Show {
        /// The bounce's id (from `bounces list`).
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BounceKind {
    Hard,
    Soft,
    Complaint,
    AutoReply,
    Delayed,
    Unmatched,
}

impl BounceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::Hard => "hard",
            BounceKind::Soft => "soft",
            BounceKind::Complaint => "complaint",
            BounceKind::AutoReply => "auto-reply",
            BounceKind::Delayed => "delayed",
            BounceKind::Unmatched => "unmatched",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Generate a private key (mode 0600) and print the DNS TXT record and
    /// the configuration lines for it. Existing files are never replaced.
    Keygen {
        /// The signing domain (d=), usually the sender address's domain.
        #[arg(long)]
        domain: String,
        /// The selector (s=): the DNS name part before ._domainkey.
        #[arg(long)]
        selector: String,
        /// Key type: rsa (2048 bits, verified everywhere) or ed25519 (RFC
        /// 8463; pair it with an RSA key).
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: DkimKeyType,
        /// Directory for the key file, relative to the installation
        /// directory.
        #[arg(long, value_name = "DIR", default_value = "dkim")]
        key_dir: PathBuf,
    },
    /// Print the DNS TXT record of every configured key.
    Show,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DkimKeyType {
    Rsa,
    Ed25519,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["test", "dry_run", "live"])))]
pub struct SendArgs {
    /// Issue file.
    pub issue: PathBuf,
    /// Send only to these addresses (subscribers or not), subject prefixed
    /// "[TEST]"; recorded apart from the live ledger.
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    pub test: Vec<String>,
    /// Build every recipient's full message and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The real send to every active subscriber.
    #[arg(long)]
    pub live: bool,
    /// Only subscribers whose attribute matches (repeatable; all must
    /// hold): KEY=VALUE (give a key again for one of several values),
    /// KEY=* (has it), KEY= (lacks it). Replaces the issue file's
    /// [audience]. Applies to --live and --dry-run.
    #[arg(long, value_name = "KEY=VALUE")]
    pub audience: Vec<String>,
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(long, requires = "live")]
    pub yes: bool,
    /// The file changed after its live send started: send the edited file
    /// as a new version to the whole audience.
    #[arg(long, requires = "live")]
    pub force_new_version: bool,
    /// Send through SMTP even though http.public_base_url is not https or
    /// points at a loopback or private address (an intranet list).
    #[arg(long, requires = "live")]
    pub allow_unsafe_links: bool,
    /// Map an MJML design's foreign merge tags (`*|FNAME|*`,
    /// `{{ first_name }}`...) onto herald's.
    #[arg(long, value_name = "mailchimp|generic", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<crate::render::MergeTags>()))]
    pub merge_tags: Option<crate::render::MergeTags>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Issue file (or its slug). Without it: every issue, with its state,
    /// scheduled or start time, ledger counts and last activity.
    pub issue: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: StatusFormat,
    /// List every failed recipient with the server's last reply.
    #[arg(long, requires = "issue")]
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["failed", "unknown"])))]
pub struct ResendArgs {
    /// Issue file (or its slug).
    pub issue: PathBuf,
    /// Retry deliveries that failed (for example after fixing a relay).
    #[arg(long)]
    pub failed: bool,
    /// Resend deliveries whose outcome was lost in a crash.
    #[arg(long)]
    pub unknown: bool,
}

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    subcommand_value_name = "ACTION",
    subcommand_help_heading = "Other actions"
)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: Option<ScheduleCommand>,
    /// Issue file to schedule (rescheduling an issue that has not started
    /// sending just moves it).
    #[arg(required = true)]
    pub issue: Option<PathBuf>,
    #[command(flatten)]
    pub when: ScheduleWhen,
    /// Only subscribers whose attribute matches (as for `send`); replaces
    /// the issue file's [audience].
    #[arg(long, value_name = "KEY=VALUE")]
    pub audience: Vec<String>,
    /// Take this as the current time (test and operations aid).
    #[arg(long, hide = true, value_name = "RFC3339")]
    pub now: Option<Timestamp>,
    /// Accept an http.public_base_url that is not https or points at a
    /// loopback or private address (an intranet list; run-due needs the
    /// flag too).
    #[arg(long)]
    pub allow_unsafe_links: bool,
    /// Map an MJML design's foreign merge tags (`*|FNAME|*`,
    /// `{{ first_name }}`...) onto herald's.
    #[arg(long, value_name = "mailchimp|generic", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<crate::render::MergeTags>()))]
    pub merge_tags: Option<crate::render::MergeTags>,
}

/// When a scheduled issue goes out.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScheduleWhen {
    /// Send time, RFC 3339 with an offset (e.g. 2030-01-06T07:00:00Z or
    /// 2030-01-06T08:00:00+01:00).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<Timestamp>,
    /// Send this long from now (e.g. 30m, 2h, 1d, "1h 30m").
    #[arg(long = "in", value_name = "DURATION")]
    pub after: Option<Delay>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List scheduled and missed issues, earliest first.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: StatusFormat,
        /// Include issues whose scheduled send was cancelled, started or
        /// finished.
        #[arg(long)]
        all: bool,
    },
    /// Cancel an issue's scheduled send (before it starts).
    Cancel {
        /// Issue file (or its slug).
        issue: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunDueArgs {
    /// Take this as the current time when deciding what is due or late
    /// (test and operations aid).
    #[arg(long, hide = true, value_name = "RFC3339")]
    pub now: Option<Timestamp>,
    /// Print what a run would do now (issues due, sends to resume, issues
    /// the lateness guard would mark missed) and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send through SMTP even though http.public_base_url is not https or
    /// points at a loopback or private address (an intranet list).
    #[arg(long)]
    pub allow_unsafe_links: bool,
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
        /// Field delimiter, one ASCII character, e.g. ';' or '\t' (tab).
        #[arg(long, default_value = ",", value_parser = parse_delimiter)]
        delimiter: u8,
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

    /// Unsubscribe one address (idempotent). An address that is not a
    /// subscriber is recorded as unsubscribed (a suppression entry), so a
    /// later import or add leaves it out.
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

/// ISSUE is a path to an issue file (TOML) or an MJML design (`.mjml`).
/// Templates come from `templates/` in the working directory when present,
/// else the built-in ones (an MJML design is its own layout).
#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// Compile an issue and write index.html, index.txt and sample.eml (a
    /// complete message for a sample recipient) into DIR.
    Render {
        /// Issue file.
        issue: PathBuf,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Render for this subscriber (name and attributes from the
        /// database) instead of the sample recipient.
        #[arg(long, value_name = "EMAIL")]
        sample: Option<String>,
        /// Map an MJML design's foreign merge tags (`*|FNAME|*`,
        /// `{{ first_name }}`...) onto herald's.
        #[arg(long, value_name = "mailchimp|generic", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<crate::render::MergeTags>()))]
        merge_tags: Option<crate::render::MergeTags>,
    },

    /// Validate an issue file and compile it, writing nothing; then list
    /// deliverability findings (what filters and mailbox providers will
    /// hold against it).
    Check {
        /// Issue file.
        issue: PathBuf,
        /// Exit 1 when there is any deliverability finding (for CI).
        #[arg(long)]
        strict: bool,
        /// Map an MJML design's foreign merge tags (`*|FNAME|*`,
        /// `{{ first_name }}`...) onto herald's.
        #[arg(long, value_name = "mailchimp|generic", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<crate::render::MergeTags>()))]
        merge_tags: Option<crate::render::MergeTags>,
    },

    /// Print a sample recipient's copy to stdout (the text twin, or --html).
    Preview {
        /// Issue file.
        issue: PathBuf,
        /// Print the HTML instead of the text.
        #[arg(long)]
        html: bool,
        /// Preview this subscriber's copy (name and attributes from the
        /// database) instead of the sample recipient's.
        #[arg(long, value_name = "EMAIL")]
        sample: Option<String>,
        /// Map an MJML design's foreign merge tags (`*|FNAME|*`,
        /// `{{ first_name }}`...) onto herald's.
        #[arg(long, value_name = "mailchimp|generic", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<crate::render::MergeTags>()))]
        merge_tags: Option<crate::render::MergeTags>,
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
    /// Issue to send (default: the bundled example issue).
    #[arg(long, value_name = "ISSUE")]
    pub issue: Option<PathBuf>,
}

/// One ASCII character (`\t` for a tab), as a CSV field delimiter.
fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "\\t" | "\t" | "tab" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() && s != "\"" && s != "\n" && s != "\r" => {
            Ok(s.as_bytes()[0])
        }
        _ => Err(format!(
            "`{s}`: expected one ASCII character such as ';' or '\\t'"
        )),
    }
}
