//! Layered settings: the embedded `config/default.toml`, then
//! `config/local.toml` (if present), then a `--config` file, then
//! `HERALD__SECTION__KEY` environment variables. Unknown keys and bad values
//! are errors naming the key and where it came from. Secrets are
//! [`SecretString`]s and never print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::BadInput;

/// The defaults, compiled in so the binary runs anywhere.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");
/// Optional operator overrides, relative to the working directory.
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
    /// DKIM signing; off unless the section is present.
    #[serde(default)]
    pub dkim: Option<DkimSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub busy_timeout_ms: u64,
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
    pub from_address: String,
    pub from_name: String,
    #[serde(default)]
    pub reply_to: Option<String>,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
    pub public_base_url: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeSettings {
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub previous_secret: Option<SecretString>,
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

fn default_dkim_algorithm() -> DkimAlgorithm {
    DkimAlgorithm::Rsa
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub max_lateness_secs: u64,
    pub lease_secs: u64,
}

impl Settings {
    /// Load the layered settings. `extra` is the `--config` file, which must
    /// exist when given.
    pub fn load(extra: Option<&Path>) -> Result<Settings, BadInput> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if Path::new(LOCAL_PATH).is_file() {
            figment = figment.merge(Toml::file(LOCAL_PATH));
        }
        if let Some(path) = extra {
            if !path.is_file() {
                return Err(BadInput::new(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("HERALD__").split("__"));
        let settings: Settings = figment
            .extract()
            .map_err(|e| BadInput::new(format!("invalid configuration: {}", describe(e))))?;
        settings.check()?;
        Ok(settings)
    }

    /// Value checks serde cannot express.
    fn check(&self) -> Result<(), BadInput> {
        let bad = |key: &str, why: &str| {
            Err(BadInput::new(format!(
                "invalid configuration: {key}: {why}"
            )))
        };
        if !(self.sender.rate_per_second > 0.0 && self.sender.rate_per_second.is_finite()) {
            return bad("sender.rate_per_second", "must be a positive number");
        }
        if self.sender.burst == 0 {
            return bad("sender.burst", "must be at least 1");
        }
        if self.sender.concurrency == 0 || self.sender.concurrency > 256 {
            return bad("sender.concurrency", "must be between 1 and 256");
        }
        if self.sender.max_attempts == 0 {
            return bad("sender.max_attempts", "must be at least 1");
        }
        for (domain, rate) in &self.sender.domain_rates {
            if !(*rate > 0.0 && rate.is_finite()) {
                return bad(
                    &format!("sender.domain_rates.\"{domain}\""),
                    "must be a positive number",
                );
            }
        }
        if crate::domain::SubscriberEmail::parse(&self.sender.from_address).is_err() {
            return bad("sender.from_address", "is not a valid email address");
        }
        if let Some(reply_to) = &self.sender.reply_to {
            if crate::domain::SubscriberEmail::parse(reply_to).is_err() {
                return bad("sender.reply_to", "is not a valid email address");
            }
        }
        let base = &self.http.public_base_url;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return bad(
                "http.public_base_url",
                "must start with http:// or https://",
            );
        }
        if !self.database.url.starts_with("sqlite:") {
            return bad("database.url", "must be a sqlite: URL");
        }
        self.check_smtp()
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
        self.sender
            .from_address
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("localhost")
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

/// One line per figment error, each naming the key path and its source.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let mut line = e.kind.to_string();
            if !e.path.is_empty() {
                line = format!("{}: {line}", e.path.join("."));
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
