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
use secrecy::SecretString;
use serde::Deserialize;

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
    /// DKIM signing; off unless the section is present.
    #[serde(default)]
    pub dkim: Option<DkimSettings>,
    /// The installation directory every relative path above was resolved
    /// against (see `crate::home`).
    #[serde(skip)]
    pub home: PathBuf,
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
            figment = figment.merge(Toml::file(local));
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
        warn_single_underscore_env(std::env::vars().map(|(k, _)| k));
        figment = figment.merge(Env::prefixed("HERALD__").split("__"));
        let mut settings: Settings = figment.extract().map_err(|e| {
            BadInput::new(format!(
                "invalid configuration: {}",
                describe(name_env_variables(e))
            ))
        })?;
        settings.check()?;
        settings.resolve_paths(home);
        Ok(settings)
    }

    /// Make every relative path absolute against the installation directory.
    fn resolve_paths(&mut self, home: &Home) {
        self.home = home.dir().to_path_buf();
        self.database.url = home.resolve_sqlite_url(&self.database.url);
        self.transport.outbox_dir = home.join(&self.transport.outbox_dir);
        if let Some(dkim) = &mut self.dkim {
            dkim.private_key_path = home.join(&dkim.private_key_path);
        }
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

/// The sections of the settings, for spotting misspelt variables.
const SECTIONS: [&str; 9] = [
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
