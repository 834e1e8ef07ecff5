//! `herald issue …`: check, render and preview an issue file. Nothing here
//! touches the database or sends mail; `render` writes files for a sample
//! recipient only.

use std::path::Path;

use anyhow::Context;

use crate::cli::IssueCommand;
use crate::config::Settings;
use crate::delivery::compose::{Addressee, Composer};
use crate::render::{self, Compiled, CompiledIssue, Issue, Recipient, Templates};
use crate::token::{SigningKeys, TokenClaims};

/// The sample recipient of `render` and `preview`.
pub const SAMPLE_NAME: &str = "Ana Example";
pub const SAMPLE_EMAIL: &str = "ana@example.org";
/// Signs the sample's unsubscribe link only; it is not a secret and the
/// link it makes is refused by a server with a real key.
const SAMPLE_KEY: &str = "herald-sample-key-not-a-secret";
const SAMPLE_SUBSCRIBER: i64 = 1;

pub fn run(settings: &Settings, cmd: IssueCommand) -> anyhow::Result<u8> {
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
            merge_tags,
        } => {
            let (issue, compiled, _) = compile(settings, &issue, merge_tags)?;
            let sample = Sample::new(settings, &issue);
            let (html, text) = compiled.compiled.prepare().personalise(&sample.recipient());
            let eml = sample.message(settings, &issue, &compiled.compiled)?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (name, bytes) in [
                ("index.html", html.as_bytes()),
                ("index.txt", text.as_bytes()),
                ("sample.eml", eml.as_slice()),
            ] {
                write(&out.join(name), bytes)?;
            }
            println!(
                "{}: wrote index.html, index.txt and sample.eml to {} (sample recipient {SAMPLE_NAME} <{SAMPLE_EMAIL}>)",
                issue.file(),
                out.display()
            );
            Ok(0)
        }
        IssueCommand::Preview {
            issue,
            html,
            merge_tags,
        } => {
            let (issue, compiled, _) = compile(settings, &issue, merge_tags)?;
            let sample = Sample::new(settings, &issue);
            let (h, t) = compiled.compiled.prepare().personalise(&sample.recipient());
            print!("{}", if html { h } else { t });
            Ok(0)
        }
    }
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

/// The sample recipient's per-recipient values.
struct Sample {
    unsubscribe_url: String,
    view_url: String,
}

impl Sample {
    fn new(settings: &Settings, issue: &Issue) -> Sample {
        let keys = SigningKeys::new(SAMPLE_KEY.into(), None);
        let token = keys.sign(TokenClaims {
            subscriber_id: SAMPLE_SUBSCRIBER,
            issue_id: None,
        });
        Sample {
            unsubscribe_url: format!(
                "{}/unsubscribe/{token}",
                settings.http.public_base_url.trim_end_matches('/')
            ),
            view_url: render::view_url(settings, issue.slug()),
        }
    }

    fn recipient(&self) -> Recipient<'_> {
        Recipient {
            email: SAMPLE_EMAIL,
            name: Some(SAMPLE_NAME),
            unsubscribe_url: &self.unsubscribe_url,
            view_url: &self.view_url,
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
        );
        let message_id = format!("{}.sample@{}", issue.slug(), settings.sending_domain());
        let message = composer.compose(&Addressee {
            subscriber_id: SAMPLE_SUBSCRIBER,
            email: SAMPLE_EMAIL,
            name: Some(SAMPLE_NAME),
            message_id: &message_id,
        })?;
        Ok(message.formatted().to_vec())
    }
}
