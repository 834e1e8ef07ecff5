//! Issue rendering (interim minimal version; the full MJML renderer replaces
//! this module): issue file → compiled subject/HTML/text with per-recipient
//! placeholders, filled cheaply per recipient.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bad_input;
use crate::config::Settings;

pub struct Issue {
    slug: String,
    subject: String,
    body: String,
    source: Vec<u8>,
}

#[derive(Deserialize)]
struct IssueFile {
    slug: Option<String>,
    subject: String,
    body: String,
}

pub fn load_issue(path: &Path) -> anyhow::Result<Issue> {
    let source =
        std::fs::read(path).map_err(|e| bad_input!("{}: cannot read: {e}", path.display()))?;
    let text = String::from_utf8(source.clone())
        .map_err(|_| bad_input!("{}: not UTF-8", path.display()))?;
    let file: IssueFile =
        toml::from_str(&text).map_err(|e| bad_input!("{}: {e}", path.display()))?;
    let slug = file.slug.unwrap_or_else(|| {
        path.file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    });
    Ok(Issue {
        slug,
        subject: file.subject,
        body: file.body,
        source,
    })
}

impl Issue {
    pub fn slug(&self) -> &str {
        &self.slug
    }
    pub fn subject(&self) -> &str {
        &self.subject
    }
    pub fn source_bytes(&self) -> &[u8] {
        &self.source
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledIssue {
    pub subject: String,
    pub html: String,
    pub text: String,
}

const NAME: &str = "\u{1}NAME\u{1}";
const EMAIL: &str = "\u{1}EMAIL\u{1}";
const UNSUB: &str = "\u{1}UNSUB\u{1}";
const VIEW: &str = "\u{1}VIEW\u{1}";

pub fn compile(issue: &Issue, settings: &Settings) -> anyhow::Result<CompiledIssue> {
    let body = html_escape::encode_text(&issue.body);
    Ok(CompiledIssue {
        subject: issue.subject.clone(),
        html: format!(
            "<!doctype html><html><body><p><a href=\"{VIEW}\">View in browser</a></p><p>Hello {NAME},</p><p>{body}</p>\
             <p>{}</p><p><a href=\"{UNSUB}\">Unsubscribe</a> ({EMAIL})</p></body></html>",
            html_escape::encode_text(&settings.newsletter.postal_address)
        ),
        text: format!(
            "Hello {NAME},\n\n{}\n\n{}\nUnsubscribe: {UNSUB}\nView in browser: {VIEW}\n",
            issue.body, settings.newsletter.postal_address
        ),
    })
}

pub struct Recipient<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub unsubscribe_url: &'a str,
    pub view_url: &'a str,
}

pub struct Prepared {
    subject: String,
    html: Vec<Piece>,
    text: Vec<Piece>,
}

enum Piece {
    Lit(String),
    Name,
    Email,
    Unsub,
    View,
}

fn split(s: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find('\u{1}') {
        out.push(Piece::Lit(rest[..at].to_string()));
        let tail = &rest[at..];
        let (piece, len) = [
            (NAME, Piece::Name),
            (EMAIL, Piece::Email),
            (UNSUB, Piece::Unsub),
            (VIEW, Piece::View),
        ]
        .into_iter()
        .find(|(p, _)| tail.starts_with(p))
        .map(|(p, k)| (k, p.len()))
        .unwrap_or((Piece::Lit("\u{1}".into()), 1));
        out.push(piece);
        rest = &tail[len..];
    }
    out.push(Piece::Lit(rest.to_string()));
    out
}

impl CompiledIssue {
    pub fn prepare(&self) -> Prepared {
        Prepared {
            subject: self.subject.clone(),
            html: split(&self.html),
            text: split(&self.text),
        }
    }
}

impl Prepared {
    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn personalise_into(&self, r: &Recipient<'_>, html: &mut String, text: &mut String) {
        html.clear();
        text.clear();
        let name = r.name.unwrap_or("reader");
        for p in &self.html {
            match p {
                Piece::Lit(s) => html.push_str(s),
                Piece::Name => html.push_str(&html_escape::encode_text(name)),
                Piece::Email => html.push_str(&html_escape::encode_text(r.email)),
                Piece::Unsub => html.push_str(&html_escape::encode_double_quoted_attribute(
                    r.unsubscribe_url,
                )),
                Piece::View => {
                    html.push_str(&html_escape::encode_double_quoted_attribute(r.view_url))
                }
            }
        }
        for p in &self.text {
            match p {
                Piece::Lit(s) => text.push_str(s),
                Piece::Name => text.push_str(name),
                Piece::Email => text.push_str(r.email),
                Piece::Unsub => text.push_str(r.unsubscribe_url),
                Piece::View => text.push_str(r.view_url),
            }
        }
    }

    pub fn personalise(&self, r: &Recipient<'_>) -> (String, String) {
        let (mut h, mut t) = (String::new(), String::new());
        self.personalise_into(r, &mut h, &mut t);
        (h, t)
    }
}

pub fn view_url(settings: &Settings, slug: &str) -> String {
    format!(
        "{}/issues/{slug}",
        settings.http.public_base_url.trim_end_matches('/')
    )
}
