//! Layered settings: the embedded `config/default.toml`, then
//! `config/local.toml` in the installation directory (if present; see
//! `crate::home`, which relative paths resolve against), then a `--config` file, then
//! `HERALD__SECTION__KEY` environment variables. Unknown keys and bad values
//! are errors naming the key and where it came from. Secrets are
//! [`SecretString`]s and never print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::domain::SubscriberEmail;
use crate::error::BadInput;
use crate::home::Home;

/// The defaults, compiled in so the binary runs anywhere.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");
/// Optional operator overrides, relative to the installation directory.
pub const LOCAL_PATH: &str = "config/local.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub newsletter: NewsletterSettings,
    pub sender: SenderSettings,
    pub transport: TransportSettings,
    pub smtp: SmtpSettings,
    pub http: HttpSettings,
    pub unsubscribe: UnsubscribeSettings,
    pub schedule: ScheduleSettings,
    /// DKIM signing; off unless a `[dkim]` table or `[[dkim]]` list is
    /// present. Every message carries one signature per key.
    #[serde(default)]
    pub dkim: DkimKeys,
    /// Bounce and complaint handling (VERP, webhooks).
    #[serde(default)]
    pub bounce: BounceSettings,
    /// The installation directory every relative path above was resolved
    /// against (see `crate::home`).
    #[serde(skip)]
    pub home: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BounceSettings {
    /// With an address set, live messages go out with the envelope sender
    /// `LOCAL+TOKEN@DOMAIN` (VERP), TOKEN naming issue and subscriber.
    #[serde(default, deserialize_with = "optional_email_address")]
    pub address: Option<SubscriberEmail>,
    /// Soft bounces on this many distinct issues mark a subscriber bounced.
    #[serde(default = "default_soft_limit")]
    pub soft_limit: u32,
    /// Mailgun's webhook signing key: enables `POST /webhooks/mailgun`.
    #[serde(default)]
    pub mailgun_signing_key: Option<SecretString>,
    /// Bearer token for the generic `POST /webhooks/bounce` endpoint.
    #[serde(default)]
    pub webhook_token: Option<SecretString>,
    /// The SNS topic SES publishes bounces and complaints to: enables
    /// `POST /webhooks/ses` for messages of this topic only.
    #[serde(default)]
    pub ses_topic_arn: Option<String>,
    /// Testing only: a `host:port` whose HTTPS certificate URLs are accepted
    /// besides `sns.<region>.amazonaws.com`.
    #[serde(default)]
    pub ses_test_cert_host: Option<String>,
    /// Testing only: a PEM CA trusted for those HTTPS requests.
    #[serde(default)]
    pub ses_test_ca_file: Option<PathBuf>,
}

impl Default for BounceSettings {
    fn default() -> Self {
        BounceSettings {
            address: None,
            soft_limit: default_soft_limit(),
            mailgun_signing_key: None,
            webhook_token: None,
            ses_topic_arn: None,
            ses_test_cert_host: None,
            ses_test_ca_file: None,
        }
    }
}

fn default_soft_limit() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE` (the default) or `postgres://USER@HOST:PORT/DB`.
    pub url: String,
    /// SQLite: how long a writer waits for another process's lock.
    /// PostgreSQL: how long a statement waits for a free pool connection.
    pub busy_timeout_ms: u64,
    /// PostgreSQL only: connections this process keeps at most (SQLite
    /// uses four readers and one writer).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

/// Does a `database.url` name a PostgreSQL database?
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn default_max_connections() -> u32 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsletterSettings {
    pub name: String,
    pub list_id: String,
    pub postal_address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnknown {
    /// Resend messages whose outcome was lost (at-least-once).
    Resend,
    /// Leave them `unknown` for the operator (`herald resend --unknown`).
    Hold,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderSettings {
    #[serde(deserialize_with = "email_address")]
    pub from_address: SubscriberEmail,
    pub from_name: String,
    #[serde(default, deserialize_with = "optional_email_address")]
    pub reply_to: Option<SubscriberEmail>,
    #[serde(default)]
    pub feedback_id: Option<String>,
    pub rate_per_second: f64,
    pub burst: u32,
    pub concurrency: usize,
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    pub retry_base_ms: u64,
    /// How long a run waits for deferred messages to come due before
    /// leaving them to the next run.
    pub linger_secs: u64,
    pub on_unknown: OnUnknown,
    #[serde(default)]
    pub domain_rates: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Outbox,
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSettings {
    pub kind: TransportKind,
    pub outbox_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    pub connect_timeout_secs: u64,
    pub send_timeout_secs: u64,
    /// Consecutive failed connection attempts before a worker gives up.
    pub reconnect_attempts: u32,
    /// First pause after a failed connection; doubles per failure.
    pub reconnect_backoff_ms: u64,
    /// PEM certificates trusted as roots in addition to the built-in ones
    /// (a relay with its own CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Send credentials over an unencrypted connection (loopback hosts only).
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// Use PIPELINING (RFC 2920) when the server offers it.
    #[serde(default = "pipelining_on")]
    pub pipelining: bool,
}

fn pipelining_on() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
    pub public_base_url: String,
    /// The public archive: `GET /issues` and `/issues/feed.xml`, and a link
    /// to it on each web version. The web versions stay either way.
    #[serde(default = "archive_on")]
    pub archive: bool,
}

fn archive_on() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeSettings {
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub previous_secret: Option<SecretString>,
    /// When set, List-Unsubscribe also offers
    /// `<mailto:unsubscribe+TOKEN@DOMAIN>` after the https link; the mail
    /// server pipes such mail to `herald subscribers unsubscribe-token`.
    #[serde(default)]
    pub mailto_domain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    /// The signing domain (d=).
    pub domain: String,
    /// The DNS selector (s=).
    pub selector: String,
    /// RSA: a PKCS#1 PEM file. Ed25519: a file holding the base64 32-byte seed.
    pub private_key_path: PathBuf,
    #[serde(default = "default_dkim_algorithm")]
    pub algorithm: DkimAlgorithm,
}

/// The DKIM keys: a single `[dkim]` table, or a `[[dkim]]` list (dual
/// signing with RSA and Ed25519 keys).
#[derive(Debug, Clone, Default)]
pub struct DkimKeys(pub Vec<DkimSettings>);

impl DkimKeys {
    pub fn keys(&self) -> &[DkimSettings] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for DkimKeys {
    /// A table is one key, an array of tables a list; either way serde's
    /// own errors (unknown or missing keys) come through unchanged.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = DkimKeys;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [dkim] table or a [[dkim]] list")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<DkimKeys, A::Error> {
                Ok(DkimKeys(vec![DkimSettings::deserialize(
                    MapAccessDeserializer::new(map),
                )?]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<DkimKeys, A::Error> {
                Ok(DkimKeys(Vec::deserialize(SeqAccessDeserializer::new(seq))?))
            }
        }
        d.deserialize_any(Keys)
    }
}

/// `unsubscribe.mailto_domain`: a DNS name (the mailto address's domain).
fn check_mailto_domain(u: &UnsubscribeSettings) -> Result<(), BadInput> {
    match &u.mailto_domain {
        Some(d) => dns_name("unsubscribe.mailto_domain", d),
        None => Ok(()),
    }
}

/// At most four keys, no (domain, selector) twice.
fn check_dkim_keys(keys: &DkimKeys) -> Result<(), BadInput> {
    if keys.keys().len() > 4 {
        return Err(BadInput::new(
            "invalid configuration: dkim: at most 4 keys (one RSA and one Ed25519 is the usual pair)",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for k in keys.keys() {
        if !seen.insert((
            k.domain.to_ascii_lowercase(),
            k.selector.to_ascii_lowercase(),
        )) {
            return Err(BadInput::new(format!(
                "invalid configuration: dkim: selector {} of {} is listed twice",
                k.selector, k.domain
            )));
        }
    }
    Ok(())
}

fn default_dkim_algorithm() -> DkimAlgorithm {
    DkimAlgorithm::Rsa
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub max_lateness_secs: u64,
    pub lease_secs: u64,
}

/// Keys whose values are secrets: never printed, and read from environment
/// variables as raw strings (a password `987654321` is not a number).
pub const SECRET_KEYS: [&str; 5] = [
    "smtp.password",
    "unsubscribe.secret",
    "unsubscribe.previous_secret",
    "bounce.mailgun_signing_key",
    "bounce.webhook_token",
];

/// Keys read from environment variables as raw strings, whatever they look
/// like: the secrets and the SMTP user name.
const RAW_STRING_KEYS: [&str; 6] = [
    "smtp.password",
    "smtp.username",
    "unsubscribe.secret",
    "unsubscribe.previous_secret",
    "bounce.mailgun_signing_key",
    "bounce.webhook_token",
];

/// An unsubscribe signing key needs at least this many bytes.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;
/// How to make a key, for messages and docs.
pub const KEYGEN_HINT: &str = "generate one with `openssl rand -hex 32`";

impl Settings {
    /// Load the layered settings for the installation directory resolved
    /// from `HERALD_HOME`, the `--config` file or the current directory.
    /// `extra` is the `--config` file, which must exist when given.
    pub fn load(extra: Option<&Path>) -> Result<Settings, BadInput> {
        Settings::load_from(&Home::resolve(None, extra)?, extra)
    }

    /// Load the layered settings of the installation at `home`:
    /// `config/local.toml` is looked for there, and relative paths in the
    /// settings (database, outbox, templates, DKIM key) resolve against it.
    pub fn load_from(home: &Home, extra: Option<&Path>) -> Result<Settings, BadInput> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        let local = home.join(Path::new(LOCAL_PATH));
        if local.is_file() {
            figment = figment.merge(Toml::file(checked_toml(&local)?));
        }
        if let Some(path) = extra {
            if !path.is_file() {
                return Err(BadInput::new(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(checked_toml(path)?));
        }
        let env = Env::prefixed("HERALD__").split("__");
        figment = figment.merge(env.clone().ignore(&RAW_STRING_KEYS));
        for (key, value) in env.only(&RAW_STRING_KEYS).iter() {
            figment = figment.merge(figment::providers::Serialized::default(key.as_str(), value));
        }
        warn_single_underscore_env(std::env::vars().map(|(k, _)| k));
        let mut settings: Settings = figment.extract().map_err(|e| {
            BadInput::new(format!(
                "invalid configuration: {}",
                describe(name_env_variables(e))
            ))
        })?;
        // Paths first, so the checks read the files the run will use.
        settings.resolve_paths(home);
        settings.check()?;
        Ok(settings)
    }

    /// Make every relative path absolute against the installation directory.
    fn resolve_paths(&mut self, home: &Home) {
        self.home = home.dir().to_path_buf();
        self.database.url = home.resolve_sqlite_url(&self.database.url);
        self.transport.outbox_dir = home.join(&self.transport.outbox_dir);
        for dkim in &mut self.dkim.0 {
            dkim.private_key_path = home.join(&dkim.private_key_path);
        }
        if let Some(ca) = &mut self.smtp.ca_file {
            *ca = home.join(ca);
        }
        if let Some(ca) = &mut self.bounce.ses_test_ca_file {
            *ca = home.join(ca);
        }
    }

    /// Value checks serde cannot express: ranges of every number, and the
    /// shape of every string that reaches a header, a link or a page.
    fn check(&self) -> Result<(), BadInput> {
        let bad = |key: &str, why: &str| {
            Err(BadInput::new(format!(
                "invalid configuration: {key}: {why}"
            )))
        };
        let s = &self.sender;
        positive_rate("sender.rate_per_second", s.rate_per_second)?;
        in_range("sender.burst", s.burst, 1, 10_000)?;
        in_range("sender.concurrency", s.concurrency, 1, 256)?;
        in_range("sender.max_attempts", s.max_attempts, 1, 100)?;
        in_range("sender.retry_base_ms", s.retry_base_ms, 1, 86_400_000)?;
        in_range("sender.linger_secs", s.linger_secs, 0, 86_400)?;
        for (domain, rate) in &s.domain_rates {
            positive_rate(&format!("sender.domain_rates.\"{domain}\""), *rate)?;
        }
        in_range(
            "database.busy_timeout_ms",
            self.database.busy_timeout_ms,
            0,
            600_000,
        )?;
        let smtp = &self.smtp;
        in_range("smtp.port", smtp.port, 1, 65_535)?;
        in_range(
            "smtp.connect_timeout_secs",
            smtp.connect_timeout_secs,
            1,
            600,
        )?;
        in_range("smtp.send_timeout_secs", smtp.send_timeout_secs, 1, 3_600)?;
        in_range("smtp.reconnect_attempts", smtp.reconnect_attempts, 1, 1_000)?;
        in_range(
            "smtp.reconnect_backoff_ms",
            smtp.reconnect_backoff_ms,
            1,
            600_000,
        )?;
        single_line("smtp.host", &smtp.host, 253)?;
        if smtp.host.contains(char::is_whitespace) {
            return bad("smtp.host", "must not contain spaces");
        }
        let sch = &self.schedule;
        in_range(
            "schedule.max_lateness_secs",
            sch.max_lateness_secs,
            0,
            31 * 86_400,
        )?;
        in_range("schedule.lease_secs", sch.lease_secs, 5, 86_400)?;

        let n = &self.newsletter;
        single_line("newsletter.name", &n.name, 200)?;
        single_line("newsletter.postal_address", &n.postal_address, 500)?;
        list_id(&n.list_id)?;
        single_line("sender.from_name", &s.from_name, 200)?;
        if let Some(feedback_id) = &s.feedback_id {
            token_text("sender.feedback_id", feedback_id, 200)?;
        }
        for dkim in self.dkim.keys() {
            dns_name("dkim.domain", &dkim.domain)?;
            dns_name("dkim.selector", &dkim.selector)?;
        }
        base_url("http.public_base_url", &self.http.public_base_url)?;
        self.bounce.check()?;
        let url = &self.database.url;
        if is_postgres_url(url) {
            if let Err(e) = url::Url::parse(url) {
                return bad("database.url", &format!("not a valid postgres:// URL: {e}"));
            }
            if !(1..=1000).contains(&self.database.max_connections) {
                return bad("database.max_connections", "must be between 1 and 1000");
            }
        } else if !url.starts_with("sqlite:") {
            return bad(
                "database.url",
                "must be a sqlite: URL or a postgres:// (postgresql://) URL",
            );
        }
        self.unsubscribe.check()?;
        self.check_smtp()?;
        check_dkim_keys(&self.dkim)?;
        check_mailto_domain(&self.unsubscribe)
    }

    /// Checks of the `[smtp]` timeouts, trust and authentication keys.
    fn check_smtp(&self) -> Result<(), BadInput> {
        let bad = |key: &str, why: String| {
            Err(BadInput::new(format!(
                "invalid configuration: smtp.{key}: {why}"
            )))
        };
        let smtp = &self.smtp;
        if smtp.connect_timeout_secs == 0 {
            return bad("connect_timeout_secs", "must be at least 1".into());
        }
        if smtp.send_timeout_secs == 0 {
            return bad("send_timeout_secs", "must be at least 1".into());
        }
        if let Some(path) = &smtp.ca_file {
            match std::fs::read(path) {
                Err(e) => return bad("ca_file", format!("cannot read {}: {e}", path.display())),
                Ok(pem) if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                    return bad(
                        "ca_file",
                        format!("{} holds no PEM certificate", path.display()),
                    )
                }
                Ok(_) => {}
            }
        }
        if smtp.allow_plaintext_auth && !is_loopback(&smtp.host) {
            return bad(
                "allow_plaintext_auth",
                format!(
                    "is only accepted for a loopback relay, and smtp.host is `{}`",
                    smtp.host
                ),
            );
        }
        Ok(())
    }

    /// The sending domain (right of the @ in `sender.from_address`), used for
    /// Message-IDs.
    pub fn sending_domain(&self) -> &str {
        self.sender.from_address.domain()
    }
}

/// Is `host` this machine (a loopback address or `localhost`)?
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The sections of the settings, for spotting misspelt variables.
const SECTIONS: [&str; 10] = [
    "bounce",
    "database",
    "newsletter",
    "sender",
    "transport",
    "smtp",
    "http",
    "unsubscribe",
    "schedule",
    "dkim",
];

/// Variables such as `HERALD_SMTP_PORT` (one underscore) look like settings
/// but are ignored; say so instead of silently using the default.
fn warn_single_underscore_env(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut found = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix("HERALD_") else {
            continue;
        };
        if rest.starts_with('_') {
            continue;
        }
        let section = rest.split('_').next().unwrap_or("").to_ascii_lowercase();
        if SECTIONS.contains(&section.as_str()) {
            let meant = format!("HERALD__{}", rest.replacen('_', "__", 1));
            tracing::warn!("environment variable {name} is ignored: settings variables use two underscores, e.g. {meant}");
            found.push(name);
        }
    }
    found
}

/// Make the source of an error from the environment the variable itself
/// (`HERALD__SMTP__PORT`) instead of "`HERALD__` environment variable(s)".
fn name_env_variables(err: figment::Error) -> figment::Error {
    let errors: Vec<figment::Error> = err
        .into_iter()
        .map(|mut e| {
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.source.is_none() && m.name.contains("environment variable"));
            if from_env {
                let var = format!(
                    "HERALD__{}",
                    e.path
                        .iter()
                        .map(|k| k.to_ascii_uppercase())
                        .collect::<Vec<_>>()
                        .join("__")
                );
                if let Some(md) = &mut e.metadata {
                    md.source = Some(figment::Source::Custom(var));
                }
            }
            e
        })
        .collect();
    // Iterating yields the latest first; chain them back in order.
    errors
        .into_iter()
        .rev()
        .reduce(|chain, e| chain.chain(e))
        .expect("a figment error holds at least one error")
}

/// One line per figment error, each naming the key path and its source (an
/// environment variable by name). A secret's value is never shown.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let secret = SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k));
            let mut line = if secret {
                "must be a string (the value is not shown)".to_string()
            } else {
                e.kind.to_string()
            };
            if !e.path.is_empty() {
                line = format!("{key}: {line}");
            }
            if let Some(md) = &e.metadata {
                let source = md
                    .source
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| md.name.to_string());
                line = format!("{line} (from {source})");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A TOML file that parses, or an error naming file, line and column. The
/// message never quotes the offending line (it may hold a secret).
fn checked_toml(path: &Path) -> Result<&Path, BadInput> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput::new(format!("config file {shown}: cannot read: {e}")))?;
    match toml::from_str::<toml::Table>(&text) {
        Ok(_) => Ok(path),
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let line = text[..at].matches('\n').count() + 1;
            let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
            Err(BadInput::new(format!(
                "invalid configuration: {shown}:{line}:{column}: {}",
                e.message().trim()
            )))
        }
    }
}

fn config_error(key: &str, why: impl std::fmt::Display) -> BadInput {
    BadInput::new(format!("invalid configuration: {key}: {why}"))
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), BadInput> {
    if value < min || value > max {
        Err(config_error(
            key,
            format!("must be between {min} and {max}"),
        ))
    } else {
        Ok(())
    }
}

fn positive_rate(key: &str, value: f64) -> Result<(), BadInput> {
    if value.is_finite() && value > 0.0 && value <= 100_000.0 {
        Ok(())
    } else {
        Err(config_error(
            key,
            "must be a number above 0 and at most 100000",
        ))
    }
}

/// A character that must never reach a header, a link or a page from
/// configuration: C0/C1 controls, DEL, and the Unicode line separators.
fn is_line_breaking(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// One line of visible text: not empty, no control characters.
fn single_line(key: &str, value: &str, max_chars: usize) -> Result<(), BadInput> {
    if value.trim().is_empty() {
        return Err(config_error(key, "must not be empty"));
    }
    if value.chars().any(is_line_breaking) {
        return Err(config_error(
            key,
            "must be one line of text (no line breaks or control characters)",
        ));
    }
    if value.chars().count() > max_chars {
        return Err(config_error(
            key,
            format!("is longer than {max_chars} characters"),
        ));
    }
    Ok(())
}

/// Printable ASCII without spaces (a header token such as Feedback-ID).
fn token_text(key: &str, value: &str, max: usize) -> Result<(), BadInput> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(config_error(
            key,
            format!("must be 1 to {max} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

/// A usable address, written in ASCII (an internationalised domain in its
/// A-label form), as it goes into the envelope and headers.
/// An address setting, parsed once at load: a usable mailbox address in
/// ASCII (an internationalised domain written in its IDNA form). The error
/// is reported under the setting's key.
fn parse_email_setting(value: &str) -> Result<SubscriberEmail, String> {
    let parsed = SubscriberEmail::parse(value)
        .map_err(|e| format!("is not a usable email address ({e})"))?;
    if !value.is_ascii() {
        return Err(format!(
            "must be ASCII; write the domain in its IDNA form: {parsed}"
        ));
    }
    Ok(parsed)
}

fn email_address<'de, D: Deserializer<'de>>(d: D) -> Result<SubscriberEmail, D::Error> {
    let value = String::deserialize(d)?;
    parse_email_setting(&value).map_err(serde::de::Error::custom)
}

fn optional_email_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SubscriberEmail>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|value| parse_email_setting(&value).map_err(serde::de::Error::custom))
        .transpose()
}

/// A DNS name or label: ASCII letters, digits, `-`, `_` and dots.
pub(crate) fn dns_name(key: &str, value: &str) -> Result<(), BadInput> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(config_error(
            key,
            "must be an ASCII DNS name (letters, digits, `-`, `_`, dots)",
        ))
    }
}

/// RFC 2919: a list identifier in domain form, e.g. `news.example.org`.
fn list_id(value: &str) -> Result<(), BadInput> {
    dns_name("newsletter.list_id", value)?;
    if !value.contains('.') {
        return Err(config_error(
            "newsletter.list_id",
            "must be in domain form with at least one dot, e.g. news.example.org",
        ));
    }
    Ok(())
}

/// An absolute http(s) URL with a host and nothing that could end a
/// `<...>` header item or start another (no spaces, `<`, `>`, `,`, quotes,
/// backslashes), and no user info, query or fragment.
pub fn base_url(key: &str, value: &str) -> Result<(), BadInput> {
    let why = if value
        .chars()
        .any(|c| is_line_breaking(c) || c.is_whitespace())
    {
        Some("must not contain spaces or control characters")
    } else if value.contains(['<', '>', ',', '"', '\\', '\'', '`']) {
        Some("must not contain < > , \" ' ` or \\")
    } else {
        match url::Url::parse(value) {
            Err(_) => Some("is not an absolute URL"),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                Some("must start with http:// or https://")
            }
            Ok(u) if u.host_str().unwrap_or("").is_empty() => Some("has no host"),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                Some("must not carry a user name or password")
            }
            Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                Some("must not have a query or fragment")
            }
            Ok(_) => None,
        }
    };
    match why {
        Some(why) => Err(config_error(key, why)),
        None => Ok(()),
    }
}

impl BounceSettings {
    fn check(&self) -> Result<(), BadInput> {
        in_range("bounce.soft_limit", self.soft_limit, 1, 100)?;
        if let Some(arn) = &self.ses_topic_arn {
            if !arn.starts_with("arn:") || arn.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(config_error(
                    "bounce.ses_topic_arn",
                    "must be an SNS topic ARN (arn:aws:sns:…)",
                ));
            }
        }
        if let Some(address) = &self.address {
            if address.as_ref().contains('+') {
                return Err(config_error(
                    "bounce.address",
                    "must not contain `+` (herald adds `+TOKEN` to its local part)",
                ));
            }
        }
        for (key, value) in [
            ("bounce.mailgun_signing_key", &self.mailgun_signing_key),
            ("bounce.webhook_token", &self.webhook_token),
        ] {
            if value.as_ref().is_some_and(|v| v.expose_secret().len() < 16) {
                return Err(config_error(key, "must be at least 16 characters"));
            }
        }
        Ok(())
    }
}

impl UnsubscribeSettings {
    /// Both signing keys meet the same strength rule and differ.
    fn check(&self) -> Result<(), BadInput> {
        for (key, value) in [
            ("unsubscribe.secret", &self.secret),
            ("unsubscribe.previous_secret", &self.previous_secret),
        ] {
            if let Some(v) = value {
                check_signing_key(key, v.expose_secret())?;
            }
        }
        if let (Some(current), Some(previous)) = (&self.secret, &self.previous_secret) {
            if current.expose_secret() == previous.expose_secret() {
                return Err(config_error(
                    "unsubscribe.previous_secret",
                    "must differ from unsubscribe.secret",
                ));
            }
        }
        Ok(())
    }
}

/// The strength rule for an unsubscribe signing key: at least
/// [`MIN_SIGNING_KEY_BYTES`] bytes, not one character repeated. The message
/// names the key, never its value.
pub fn check_signing_key(key: &str, value: &str) -> Result<(), BadInput> {
    if value.is_empty() {
        return Err(config_error(
            key,
            format!("is set but empty; remove it, or set a key of at least {MIN_SIGNING_KEY_BYTES} bytes ({KEYGEN_HINT})"),
        ));
    }
    if value.len() < MIN_SIGNING_KEY_BYTES {
        return Err(config_error(
            key,
            format!("is too short: a signing key needs at least {MIN_SIGNING_KEY_BYTES} bytes ({KEYGEN_HINT})"),
        ));
    }
    let distinct: std::collections::BTreeSet<u8> = value.bytes().collect();
    if distinct.len() < 8 {
        return Err(config_error(
            key,
            format!("is not random enough to be a signing key ({KEYGEN_HINT})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_underscore_variables_next_to_known_sections_are_flagged() {
        let names = [
            "HERALD_SMTP_PORT",
            "HERALD_HOME",
            "HERALD_LOG",
            "HERALD_LOG_FORMAT",
            "HERALD__SMTP__PORT",
            "HERALD_DATABASE_URL",
            "PATH",
        ];
        assert_eq!(
            warn_single_underscore_env(names.iter().map(|s| s.to_string())),
            ["HERALD_SMTP_PORT", "HERALD_DATABASE_URL"]
        );
    }
}
