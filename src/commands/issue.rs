//! `herald issue …`: check, render and preview an issue file. Nothing here
//! writes to the database or sends mail; `render` writes files for a sample
//! recipient only. The database is read (when it exists) for `check`'s
//! attribute coverage and for `--sample EMAIL`.

use std::path::Path;

use anyhow::Context;

use crate::cli::IssueCommand;
use crate::config::Settings;
use crate::delivery::compose::{Addressee, Composer};
use crate::domain::SubscriberEmail;
use crate::render::{self, Attributes, Compiled, CompiledIssue, Issue, Recipient, Templates};
use crate::store::Store;
use crate::token::{SigningKeys, TokenClaims};

/// The sample recipient of `render` and `preview`.
pub const SAMPLE_NAME: &str = "Ana Example";
pub const SAMPLE_EMAIL: &str = "ana@example.org";
/// Signs the sample's unsubscribe link only; it is not a secret and the
/// link it makes is refused by a server with a real key.
const SAMPLE_KEY: &str = "herald-sample-key-not-a-secret";
const SAMPLE_SUBSCRIBER: i64 = 1;

pub async fn run(settings: &Settings, cmd: IssueCommand) -> anyhow::Result<u8> {
    match cmd {
        IssueCommand::Check {
            issue,
            strict,
            merge_tags,
        } => {
            let (issue, compiled, templates) = compile(settings, &issue, merge_tags)?;
            let what = if issue.is_design() {
                "MJML design".to_string()
            } else {
                format!("{} blocks", issue.blocks().len())
            };
            println!(
                "{}: ok: slug {}, {what}, HTML {} bytes, text {} bytes",
                issue.file(),
                issue.slug(),
                compiled.compiled.html.len(),
                compiled.compiled.text.len(),
            );
            if issue.is_design() {
                println!("layout: the MJML design itself");
            } else {
                println!(
                    "templates: {}, {}",
                    templates.mjml_origin(),
                    templates.text_origin()
                );
            }
            attribute_coverage(settings, &compiled.compiled).await?;
            let findings = render::deliverability(&issue, &compiled.compiled, settings);
            for f in &findings {
                match f.line {
                    Some(l) => println!("{}:{l}: {}: {}", issue.file(), f.code, f.message),
                    None => println!("{}: {}: {}", issue.file(), f.code, f.message),
                }
            }
            println!("deliverability: {} finding(s)", findings.len());
            Ok(if strict && !findings.is_empty() { 1 } else { 0 })
        }
        IssueCommand::Render {
            issue,
            out,
            sample,
            merge_tags,
        } => {
            let (issue, compiled, sample, (html, text)) =
                sample_copy(settings, &issue, sample.as_deref(), merge_tags).await?;
            let eml = sample.message(settings, &issue, &compiled.compiled)?;
            let who = format!(
                "{} <{}>",
                sample.name.as_deref().unwrap_or("(no name)"),
                sample.email
            );
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (name, bytes) in [
                ("index.html", html.as_bytes()),
                ("index.txt", text.as_bytes()),
                ("sample.eml", eml.as_slice()),
            ] {
                write(&out.join(name), bytes)?;
            }
            println!(
                "{}: wrote index.html, index.txt and sample.eml to {} (sample recipient {})",
                issue.file(),
                out.display(),
                crate::safe_text::for_terminal(&who)
            );
            Ok(0)
        }
        IssueCommand::Preview {
            issue,
            html,
            sample,
            merge_tags,
        } => {
            let (_, _, _, (h, t)) =
                sample_copy(settings, &issue, sample.as_deref(), merge_tags).await?;
            print!("{}", if html { h } else { t });
            Ok(0)
        }
    }
}

/// Compile an issue and personalise it for the sample recipient (or the
/// subscriber `--sample` names): the issue, its compiled form, the sample
/// and its (HTML, text) copy.
async fn sample_copy(
    settings: &Settings,
    path: &Path,
    sample: Option<&str>,
    merge_tags: Option<render::MergeTags>,
) -> anyhow::Result<(Issue, Compiled, Sample, (String, String))> {
    let (issue, compiled, _) = compile(settings, path, merge_tags)?;
    let sample = Sample::new(settings, &issue, &compiled.compiled, sample).await?;
    let copy = compiled.compiled.prepare().personalise(&sample.recipient());
    Ok((issue, compiled, sample, copy))
}

/// Load, validate and compile; mrml warnings go to stderr.
fn compile(
    settings: &Settings,
    path: &Path,
    merge_tags: Option<render::MergeTags>,
) -> anyhow::Result<(Issue, Compiled, Templates)> {
    let issue = render::load_issue_with(path, merge_tags)?;
    let templates = Templates::discover(&settings.home)?;
    let compiled = render::compile_with(&issue, settings, &templates)?;
    for w in &compiled.warnings {
        eprintln!("herald: warning: {w}");
    }
    Ok((issue, compiled, templates))
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The database, if it exists (these commands never create it).
async fn existing_store(settings: &Settings) -> anyhow::Result<Option<Store>> {
    if crate::store::is_postgres_url(&settings.database.url) {
        return Store::open_existing(&settings.database).await;
    }
    match crate::home::database_file(&settings.database.url) {
        Some(file) if file.is_file() => Ok(Some(Store::open(&settings.database).await?)),
        _ => Ok(None),
    }
}

/// `issue check`: for each attribute the issue prints without a default,
/// warn how many active subscribers lack it (they get nothing there).
async fn attribute_coverage(settings: &Settings, compiled: &CompiledIssue) -> anyhow::Result<()> {
    let mut used = std::collections::BTreeMap::new();
    for doc in [&compiled.subject, &compiled.html, &compiled.text] {
        render::attributes_in(doc, &mut used);
    }
    if used.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = used.keys().map(String::as_str).collect();
    println!("attributes used: {}", keys.join(", "));
    let bare: Vec<&str> = used
        .iter()
        .filter(|(_, defaulted)| !**defaulted)
        .map(|(k, _)| k.as_str())
        .collect();
    if bare.is_empty() {
        return Ok(());
    }
    let Some(store) = existing_store(settings).await? else {
        println!("no database yet: attribute coverage not checked");
        return Ok(());
    };
    let active = store.count_active().await?;
    for key in bare {
        let missing = store.active_missing_attribute(key).await?;
        if missing > 0 {
            eprintln!(
                "herald: warning: attribute `{key}` has no default and {missing} of {active} active subscribers lack it (add | default(\"...\"))"
            );
        }
    }
    store.close().await;
    Ok(())
}

/// A stand-in recipient's per-recipient values: the sample recipient, or
/// a real subscriber picked with `--sample EMAIL`.
struct Sample {
    subscriber_id: i64,
    email: String,
    name: Option<String>,
    attributes: Attributes,
    unsubscribe_url: String,
    view_url: String,
}

impl Sample {
    async fn new(
        settings: &Settings,
        issue: &Issue,
        compiled: &CompiledIssue,
        pick: Option<&str>,
    ) -> anyhow::Result<Sample> {
        let (subscriber_id, email, name, attributes) = match pick {
            None => {
                // A sample value for every attribute the issue uses.
                let mut used = std::collections::BTreeMap::new();
                for doc in [&compiled.subject, &compiled.html, &compiled.text] {
                    render::attributes_in(doc, &mut used);
                }
                let attributes = used
                    .into_keys()
                    .map(|k| {
                        let v = serde_json::Value::String(format!("sample {k}"));
                        (k, v)
                    })
                    .collect();
                (
                    SAMPLE_SUBSCRIBER,
                    SAMPLE_EMAIL.to_string(),
                    Some(SAMPLE_NAME.to_string()),
                    attributes,
                )
            }
            Some(address) => {
                let email = SubscriberEmail::parse(address)
                    .map_err(|e| crate::bad_input!("--sample {address}: {e}"))?;
                let store = existing_store(settings).await?.ok_or_else(|| {
                    crate::bad_input!("--sample {address}: there is no database yet")
                })?;
                let found = store.find_subscriber(&email).await;
                store.close().await;
                let sub = found?
                    .ok_or_else(|| crate::bad_input!("--sample {address}: no such subscriber"))?;
                (sub.id, sub.email.into_inner(), sub.name, sub.attributes)
            }
        };
        let keys = SigningKeys::new(SAMPLE_KEY.into(), None);
        let token = keys.sign(TokenClaims {
            subscriber_id,
            issue_id: None,
        });
        Ok(Sample {
            subscriber_id,
            email,
            name,
            attributes,
            unsubscribe_url: crate::token::unsubscribe_url(&settings.http.public_base_url, &token),
            view_url: render::view_url(settings, issue.slug()),
        })
    }

    fn recipient(&self) -> Recipient<'_> {
        Recipient {
            email: &self.email,
            name: self.name.as_deref(),
            unsubscribe_url: &self.unsubscribe_url,
            view_url: &self.view_url,
            attributes: Some(&self.attributes),
        }
    }

    /// The complete message the sample recipient would get, built by the
    /// same composer as a live send.
    fn message(
        &self,
        settings: &Settings,
        issue: &Issue,
        compiled: &CompiledIssue,
    ) -> anyhow::Result<Vec<u8>> {
        let composer = Composer::new(
            settings,
            compiled.prepare(),
            issue.slug(),
            None,
            SigningKeys::new(SAMPLE_KEY.into(), None),
            None,
            "",
        )?;
        let message_id = format!("{}.sample@{}", issue.slug(), settings.sending_domain());
        let message = composer.compose(&Addressee {
            subscriber_id: self.subscriber_id,
            email: &self.email,
            name: self.name.as_deref(),
            attributes: Some(&self.attributes),
            message_id: &message_id,
        })?;
        Ok(message.formatted().to_vec())
    }
}
