//! Issue authoring and rendering: an operator's issue file (TOML, Markdown
//! bodies) → validated [`Issue`] → MJML layout filled by minijinja → HTML by
//! mrml, plus a plain-text twin from its own template — compiled ONCE per
//! issue into a [`CompiledIssue`] holding per-recipient placeholders. A
//! [`Prepared`] issue fills one recipient's escaped values in microseconds;
//! nothing per recipient ever recompiles MJML.
//!
//! Submodules: `issue` (file model + validation), `markdown` (bodies to HTML
//! and to text), `templates` (loading and linting the templates), `mjml`
//! (mrml compile and its errors), `placeholder` (sentinels, split,
//! personalise), `wrap` (text wrapping), `design` (an MJML design file as
//! an issue), `text` (text twin from HTML), `deliverability` (what filters
//! and mailbox providers will hold against an issue).

mod checks;
mod deliverability;
mod design;
mod issue;
mod markdown;
mod merge_tags;
mod mjml;
mod placeholder;
mod templates;
mod text;
mod wrap;

use minijinja::Value;
use serde::Serialize;

pub use checks::{check_slug, check_url};
pub use deliverability::{check as deliverability, Finding};
pub use design::is_design;
pub use issue::{
    parse_issue, AttrUse, Block, Image, Issue, Link, News, NewsItem, Promo, Quote, Story, TextBlock,
};
pub use markdown::Markdown;
pub use merge_tags::MergeTags;
pub use placeholder::{
    attr_value, attributes_in, Attributes, Chunk, CompiledIssue, Prepared, Recipient, Slot,
};
pub use templates::{Origin, Templates};

use crate::bad_input;
use crate::config::Settings;

/// Read and validate an issue: an MJML design (`.mjml`) or a TOML issue.
pub fn load_issue(path: &std::path::Path) -> anyhow::Result<Issue> {
    load_issue_with(path, None)
}

/// [`load_issue`], mapping an MJML design's merge tags with `merge_tags`.
pub fn load_issue_with(
    path: &std::path::Path,
    merge_tags: Option<MergeTags>,
) -> anyhow::Result<Issue> {
    if design::is_design(path) {
        design::load_design(path, merge_tags)
    } else {
        issue::load_issue(path)
    }
}

/// The public "view in browser" address of an issue.
pub fn view_url(settings: &Settings, slug: &str) -> String {
    format!(
        "{}/issues/{slug}",
        settings.http.public_base_url.trim_end_matches('/')
    )
}

/// Compile an issue with the operator's templates (`templates/` in the
/// installation directory) or the bundled ones. mrml warnings are logged.
pub fn compile(issue: &Issue, settings: &Settings) -> anyhow::Result<CompiledIssue> {
    let templates = Templates::discover(&settings.home)?;
    let out = compile_with(issue, settings, &templates)?;
    for w in &out.warnings {
        tracing::warn!(issue = issue.slug(), "MJML: {w}");
    }
    Ok(out.compiled)
}

/// A compiled issue and the MJML warnings met on the way.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub compiled: CompiledIssue,
    pub warnings: Vec<String>,
    /// The filled MJML, for tools that compare MJML compilers.
    pub mjml: String,
}

/// Compile with the given templates.
pub fn compile_with(
    issue: &Issue,
    settings: &Settings,
    templates: &Templates,
) -> anyhow::Result<Compiled> {
    if settings.newsletter.postal_address.trim().is_empty() {
        return Err(bad_input!(
            "invalid configuration: newsletter.postal_address: every issue's footer must show a postal address"
        ));
    }
    if let Some(d) = &issue.design {
        return design::compile(issue, d, settings);
    }
    let mjml = templates.render_mjml(&context(issue, settings, Flavour::Html))?;
    let out = mjml::compile(templates.mjml_origin(), &mjml)?;
    let text = tidy_text(&templates.render_text(&context(issue, settings, Flavour::Text))?);
    // The issue text's attribute tokens become sentinels only now, so that
    // neither Markdown, wrapping nor mrml ever sees a fallback text.
    let compiled = CompiledIssue {
        subject: issue.expand_attrs(issue.subject(), |u| {
            placeholder::attr_sentinel(&u.key, u.default.as_deref())
        }),
        html: issue.expand_attrs(&out.html, |u| {
            let escaped = u
                .default
                .as_deref()
                .map(|d| html_escape::encode_quoted_attribute(d).into_owned());
            placeholder::attr_sentinel(&u.key, escaped.as_deref())
        }),
        text: issue.expand_attrs(&text, |u| {
            placeholder::attr_sentinel(&u.key, u.default.as_deref())
        }),
    };
    let warnings = out.warnings;
    let text_slots = placeholder::slots_in(&compiled.text);
    if !out.slots.contains(&Slot::UnsubscribeUrl) {
        return Err(bad_input!(
            "{}: the layout must show a visible unsubscribe link ({{{{ recipient.unsubscribe_url }}}})",
            templates.mjml_origin()
        ));
    }
    if !text_slots.contains(&Slot::UnsubscribeUrl) {
        return Err(bad_input!(
            "{}: the text twin must show the unsubscribe link ({{{{ recipient.unsubscribe_url }}}})",
            templates.text_origin()
        ));
    }
    Ok(Compiled {
        compiled,
        warnings,
        mjml,
    })
}

/// Trailing spaces off every line, at most one blank line in a row, one
/// final newline.
fn tidy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    let end = out.trim_end().len();
    out.truncate(end);
    out.push('\n');
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Html,
    Text,
}

#[derive(Serialize)]
struct IssueView<'a> {
    slug: &'a str,
    subject: &'a str,
    preheader: &'a str,
    /// e.g. "14 December 2018".
    date: String,
    date_iso: String,
    contact: Option<&'a str>,
}

#[derive(Serialize)]
struct NewsletterView<'a> {
    name: &'a str,
    postal_address: &'a str,
    list_id: &'a str,
    from_address: &'a str,
    reply_to: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum BlockView<'a> {
    Story {
        image: Option<&'a Image>,
        headline: &'a str,
        dateline: Option<&'a str>,
        body: Value,
        read_on: Option<&'a str>,
        share: &'a [Link],
    },
    Quote {
        text: &'a str,
        who: &'a str,
        place: Option<&'a str>,
        image: Option<&'a Image>,
        link: Option<&'a Link>,
        share: &'a [Link],
    },
    Promo {
        title: &'a str,
        body: Option<Value>,
        image: Option<&'a Image>,
        button: &'a Link,
    },
    News {
        title: &'a str,
        items: &'a [NewsItem],
    },
    Text {
        title: Option<&'a str>,
        body: Value,
    },
}

fn body(md: &Markdown, lead: Option<&str>, flavour: Flavour) -> Value {
    match flavour {
        Flavour::Html => Value::from_safe_string(
            templates::protect_for_mrml(&md.to_html(lead), true).into_owned(),
        ),
        Flavour::Text => Value::from(md.to_text(lead)),
    }
}

fn context(issue: &Issue, settings: &Settings, flavour: Flavour) -> Value {
    let blocks: Vec<BlockView<'_>> = issue
        .blocks()
        .iter()
        .map(|b| match b {
            Block::Story(s) => BlockView::Story {
                image: s.image.as_ref(),
                headline: &s.headline,
                dateline: s.dateline.as_deref(),
                body: body(&s.body, s.dateline.as_deref(), flavour),
                read_on: s.read_on.as_deref(),
                share: &s.share,
            },
            Block::Quote(q) => BlockView::Quote {
                text: &q.text,
                who: &q.who,
                place: q.place.as_deref(),
                image: q.image.as_ref(),
                link: q.link.as_ref(),
                share: &q.share,
            },
            Block::Promo(p) => BlockView::Promo {
                title: &p.title,
                body: p.body.as_ref().map(|b| body(b, None, flavour)),
                image: p.image.as_ref(),
                button: &p.button,
            },
            Block::News(n) => BlockView::News {
                title: &n.title,
                items: &n.items,
            },
            Block::Text(t) => BlockView::Text {
                title: t.title.as_deref(),
                body: body(&t.body, None, flavour),
            },
        })
        .collect();
    let contact = issue
        .contact
        .as_deref()
        .or(settings.sender.reply_to.as_ref().map(AsRef::as_ref))
        .or(Some(settings.sender.from_address.as_ref()));
    minijinja::context! {
        issue => Value::from_serialize(IssueView {
            slug: issue.slug(),
            subject: issue.subject(),
            preheader: issue.preheader(),
            date: issue.date().format("%-d %B %Y").to_string(),
            date_iso: issue.date().format("%Y-%m-%d").to_string(),
            contact,
        }),
        newsletter => Value::from_serialize(NewsletterView {
            name: &settings.newsletter.name,
            postal_address: &settings.newsletter.postal_address,
            list_id: &settings.newsletter.list_id,
            from_address: settings.sender.from_address.as_ref(),
            reply_to: settings.sender.reply_to.as_ref().map(AsRef::as_ref),
        }),
        recipient => minijinja::context! {
            name => Slot::Name.sentinel(Some(&issue.name_fallback)),
            email => Slot::Email.sentinel(None),
            unsubscribe_url => Slot::UnsubscribeUrl.sentinel(None),
            view_url => Slot::ViewUrl.sentinel(None),
            attributes => Value::from_object(templates::AttributeSlots),
        },
        blocks => Value::from_serialize(&blocks),
    }
}
