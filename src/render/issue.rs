//! The issue file: its TOML shape, and validation into an [`Issue`] whose
//! fields are known good. Every error names the file, the line and the field
//! (`issues/x.toml:14: blocks[2].headline: missing`); all errors of a file
//! are reported at once. Block numbers count from 1, in file order.

use std::ops::Range;
use std::path::Path;

use anyhow::Context;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::checks::{check_slug, check_url};
use super::markdown::Markdown;
use super::placeholder::{self, attr_token};
use crate::bad_input;

/// A parsed, validated issue file.
#[derive(Debug, Clone)]
pub struct Issue {
    pub(crate) file: String,
    pub(crate) source: Vec<u8>,
    pub(crate) slug: String,
    pub(crate) subject: String,
    pub(crate) preheader: String,
    pub(crate) date: NaiveDate,
    pub(crate) contact: Option<String>,
    pub(crate) name_fallback: String,
    pub(crate) blocks: Vec<Block>,
    /// The attribute placeholders of the issue's text, in the order of the
    /// tokens standing for them (see [`placeholder::attr_token`]).
    pub(crate) attrs: Vec<AttrUse>,
    /// `[audience]`: who a live send goes to (None: every active subscriber).
    pub(crate) audience: Option<crate::domain::Audience>,
    /// Set when the issue is an MJML design rather than a TOML file.
    pub(crate) design: Option<Box<super::merge_tags::Design>>,
}

/// One `{{ attributes.KEY | default("…") }}` in the issue's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrUse {
    pub key: String,
    pub default: Option<String>,
}

impl Issue {
    /// From the file's `slug` key, else its file stem; `[a-z0-9-]` only.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The subject as the templates get it (attribute placeholders as
    /// tokens; [`Issue::display_subject`] for people).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject with every attribute placeholder replaced by its default
    /// (or nothing): what lists and the archive show.
    pub fn display_subject(&self) -> String {
        self.expand_attrs(&self.subject, |u| u.default.clone().unwrap_or_default())
    }

    /// The file's `[audience]`, if any.
    pub fn audience(&self) -> Option<&crate::domain::Audience> {
        self.audience.as_ref()
    }

    /// Replace the attribute tokens in `doc` by `f(use)`.
    pub(crate) fn expand_attrs(&self, doc: &str, f: impl Fn(&AttrUse) -> String) -> String {
        let mut out = doc.to_string();
        // Highest index first, so `a1` never matches inside `a10`.
        for (n, u) in self.attrs.iter().enumerate().rev() {
            let token = attr_token(n);
            if out.contains(&token) {
                out = out.replace(&token, &f(u));
            }
        }
        out
    }

    /// The exact bytes of the issue file.
    pub fn source_bytes(&self) -> &[u8] {
        &self.source
    }

    /// The file name as given, for messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn preheader(&self) -> &str {
        &self.preheader
    }

    pub fn date(&self) -> NaiveDate {
        self.date
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Whether this is an MJML design (its own layout, no blocks).
    pub fn is_design(&self) -> bool {
        self.design.is_some()
    }
}

/// One content block, in reading order.
#[derive(Debug, Clone)]
pub enum Block {
    Story(Story),
    Quote(Quote),
    Promo(Promo),
    News(News),
    Text(TextBlock),
}

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub src: String,
    pub alt: String,
    pub credit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct Story {
    pub image: Option<Image>,
    pub headline: String,
    pub dateline: Option<String>,
    pub body: Markdown,
    pub read_on: Option<String>,
    pub share: Vec<Link>,
}

#[derive(Debug, Clone)]
pub struct Quote {
    pub text: String,
    pub who: String,
    pub place: Option<String>,
    pub image: Option<Image>,
    pub link: Option<Link>,
    pub share: Vec<Link>,
}

#[derive(Debug, Clone)]
pub struct Promo {
    pub title: String,
    pub body: Option<Markdown>,
    pub image: Option<Image>,
    pub button: Link,
}

#[derive(Debug, Clone)]
pub struct News {
    pub title: String,
    pub items: Vec<NewsItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewsItem {
    pub source: String,
    pub text: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct TextBlock {
    pub title: Option<String>,
    pub body: Markdown,
}

// ---------------------------------------------------------------------------
// The file as TOML gives it: everything optional and spanned, so validation
// (not serde) decides what is missing and can say where.

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssue {
    slug: S<String>,
    subject: S<String>,
    preheader: S<String>,
    date: S<toml::value::Datetime>,
    contact: S<String>,
    name_fallback: S<String>,
    audience: S<toml::Table>,
    blocks: S<Vec<Spanned<RawBlock>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlock {
    #[serde(rename = "type")]
    kind: S<String>,
    image: S<String>,
    image_alt: S<String>,
    photo_credit: S<String>,
    headline: S<String>,
    dateline: S<String>,
    body: S<String>,
    read_on: S<String>,
    share: S<Vec<Spanned<RawLink>>>,
    text: S<String>,
    who: S<String>,
    #[serde(rename = "where")]
    place: S<String>,
    link: S<String>,
    link_label: S<String>,
    title: S<String>,
    button_label: S<String>,
    button_url: S<String>,
    items: S<Vec<Spanned<RawItem>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    label: S<String>,
    url: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    source: S<String>,
    text: S<String>,
    url: S<String>,
}

/// Which keys each block type takes (besides `type`).
const STORY_KEYS: &[&str] = &[
    "image",
    "image_alt",
    "photo_credit",
    "headline",
    "dateline",
    "body",
    "read_on",
    "share",
];
const QUOTE_KEYS: &[&str] = &[
    "text",
    "who",
    "where",
    "image",
    "image_alt",
    "photo_credit",
    "link",
    "link_label",
    "share",
];
const PROMO_KEYS: &[&str] = &[
    "title",
    "body",
    "image",
    "image_alt",
    "photo_credit",
    "button_label",
    "button_url",
];
const NEWS_KEYS: &[&str] = &["title", "items"];
const TEXT_KEYS: &[&str] = &["title", "body"];

const BLOCK_TYPES: &str = "story, quote, promo, news or text";

/// The largest issue file herald reads.
pub const MAX_ISSUE_BYTES: u64 = 1024 * 1024;

/// Read, parse and validate an issue file.
pub fn load_issue(path: &Path) -> anyhow::Result<Issue> {
    use std::io::Read;
    let mut source = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_ISSUE_BYTES + 1).read_to_end(&mut source))
        .with_context(|| format!("reading issue file {}", path.display()))
        .map_err(|e| bad_input!("{e:#}"))?;
    parse_issue(&path.display().to_string(), path, source)
}

/// Validate issue-file bytes; `file` names it in messages, `path` gives the
/// default slug (its stem).
pub fn parse_issue(file: &str, path: &Path, source: Vec<u8>) -> anyhow::Result<Issue> {
    if source.len() as u64 > MAX_ISSUE_BYTES {
        return Err(bad_input!(
            "{file}: the issue file is larger than {} KiB",
            MAX_ISSUE_BYTES / 1024
        ));
    }
    let text = std::str::from_utf8(&source).map_err(|e| {
        let line = line_of(&source, e.valid_up_to());
        bad_input!("{file}:{line}: issue file is not valid UTF-8")
    })?;
    let mut v = Validator {
        file,
        source: text,
        errors: Vec::new(),
        attrs: Vec::new(),
    };
    // The raw text first (a literal bracket anywhere, comments included);
    // every parsed value is checked again below, since TOML escapes such as
    // `\u27e6` only become the character after parsing.
    if let Some(pos) = text.find(placeholder::is_reserved_char) {
        v.error(pos, "issue", placeholder::RESERVED);
        return Err(v.finish());
    }
    let raw: RawIssue = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            let field = field_at(text, at);
            v.error(at, &field, e.message().trim());
            return Err(v.finish());
        }
    };
    let issue = v.issue(raw, path, source.clone());
    if v.errors.is_empty() {
        Ok(issue.expect("an issue when there is no error"))
    } else {
        Err(v.finish())
    }
}

/// Line number (1-based) of a byte offset.
pub(crate) fn line_of(source: &[u8], offset: usize) -> usize {
    let end = offset.min(source.len());
    source[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Best-effort field name at a byte offset for a TOML parse error: the
/// `[[blocks]]` it falls in, and the key on that line if any.
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let block = before
        .lines()
        .filter(|l| l.trim_start().starts_with("[[blocks]]"))
        .count();
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'));
    match (block, key) {
        (0, Some(k)) => k.to_string(),
        (0, None) => "issue".to_string(),
        (n, Some(k)) => format!("blocks[{n}].{k}"),
        (n, None) => format!("blocks[{n}]"),
    }
}

struct Validator<'a> {
    file: &'a str,
    source: &'a str,
    errors: Vec<(usize, String)>,
    attrs: Vec<AttrUse>,
}

/// A placeholder in issue text that is not `{{ attributes.KEY }}` or
/// `{{ attributes.KEY | default("text") }}`.
#[derive(Debug, PartialEq, Eq)]
struct BadPlaceholder {
    offset: usize,
    message: String,
}

/// The `{{ … }}` placeholders of one text value: their byte ranges and
/// what they ask for.
fn find_placeholders(text: &str) -> Result<Vec<(Range<usize>, AttrUse)>, BadPlaceholder> {
    const FORM: &str = "write {{ attributes.KEY }} or {{ attributes.KEY | default(\"text\") }}";
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = text[pos..].find("{{") {
        let start = pos + i;
        let bad = |message: String| BadPlaceholder {
            offset: start,
            message,
        };
        let line_end = text[start..].find('\n').map_or(text.len(), |e| start + e);
        let Some(close) = text[start + 2..line_end].find("}}") else {
            return Err(bad(format!("unclosed placeholder `{{{{` ({FORM})")));
        };
        let end = start + 2 + close + 2;
        let inner = text[start + 2..end - 2].trim();
        let rest = inner
            .strip_prefix("recipient.attributes.")
            .or_else(|| inner.strip_prefix("attributes."))
            .ok_or_else(|| bad(format!("unknown placeholder `{{{{ {inner} }}}}` ({FORM})")))?;
        let key_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        let key = &rest[..key_len];
        if !crate::domain::is_attr_key(key) {
            return Err(bad(format!(
                "placeholder `{{{{ {inner} }}}}`: an attribute key is 1 to {} of A-Z a-z 0-9 _ -",
                crate::domain::MAX_ATTR_KEY
            )));
        }
        let after = rest[key_len..].trim();
        let default = if after.is_empty() {
            None
        } else if let Some(filter) = after.strip_prefix('|') {
            let filter = filter.trim();
            let name_len = filter
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = &filter[..name_len];
            if name != "default" {
                return Err(bad(format!(
                    "unknown filter `{name}` in `{{{{ {inner} }}}}` (the only filter is default(\"text\"))"
                )));
            }
            let args = filter[name_len..].trim();
            let literal = args
                .strip_prefix('(')
                .and_then(|a| a.strip_suffix(')'))
                .map(str::trim)
                .and_then(|a| {
                    let q = a.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                    let body = a.strip_prefix(q)?.strip_suffix(q)?;
                    (!body.contains(q)).then_some(body)
                });
            match literal {
                Some(d) => Some(d.to_string()),
                None => {
                    return Err(bad(format!(
                        "malformed default in `{{{{ {inner} }}}}` (write default(\"text\"))"
                    )))
                }
            }
        } else {
            return Err(bad(format!(
                "malformed placeholder `{{{{ {inner} }}}}` ({FORM})"
            )));
        };
        out.push((
            start..end,
            AttrUse {
                key: key.to_string(),
                default,
            },
        ));
        pos = end;
    }
    Ok(out)
}

impl Validator<'_> {
    fn error(&mut self, offset: usize, field: &str, message: &str) {
        let line = line_of(self.source.as_bytes(), offset);
        self.errors
            .push((line, format!("{}:{line}: {field}: {message}", self.file)));
    }

    /// The line of byte `offset` within the string value `v` (multi-line
    /// strings drop the newline right after their opening quotes).
    fn line_in_value(&self, v: &Spanned<String>, within: &str, offset: usize) -> usize {
        let start = v.span().start;
        let opening = &self.source[start..];
        let skip = usize::from(
            (opening.starts_with("\"\"\"") || opening.starts_with("'''"))
                && opening[3..].starts_with(['\n', '\r']),
        );
        let end = (0..=offset.min(within.len()))
            .rev()
            .find(|&i| within.is_char_boundary(i))
            .unwrap_or(0);
        let line_in_value = within[..end].matches('\n').count();
        line_of(self.source.as_bytes(), start) + skip + line_in_value
    }

    /// `text` (the value of `v`, possibly trimmed) with its attribute
    /// placeholders replaced by tokens; a malformed one is an error naming
    /// its line.
    fn personal(&mut self, v: &Spanned<String>, field: &str, text: &str) -> Option<String> {
        match find_placeholders(text) {
            Ok(found) if found.is_empty() => Some(text.to_string()),
            Ok(found) => {
                let mut out = String::with_capacity(text.len());
                let mut last = 0;
                for (range, u) in found {
                    out.push_str(&text[last..range.start]);
                    let n = match self.attrs.iter().position(|a| *a == u) {
                        Some(n) => n,
                        None => {
                            self.attrs.push(u);
                            self.attrs.len() - 1
                        }
                    };
                    out.push_str(&attr_token(n));
                    last = range.end;
                }
                out.push_str(&text[last..]);
                Some(out)
            }
            Err(bad) => {
                // `text` may be the trimmed value: find the offset in it.
                let lead = v.get_ref().find(text).unwrap_or(0);
                let line = self.line_in_value(v, v.get_ref(), lead + bad.offset);
                self.errors.push((
                    line,
                    format!("{}:{line}: {field}: {}", self.file, bad.message),
                ));
                None
            }
        }
    }

    /// A required one-line field that may hold attribute placeholders.
    fn personal_line(&mut self, value: &S<String>, field: &str, at: usize) -> Option<String> {
        let line = self.line(value, field, at)?;
        self.personal(value.as_ref()?, field, &line)
    }

    fn finish(&mut self) -> anyhow::Error {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|(line, _)| *line);
        let lines: Vec<String> = errors.into_iter().map(|(_, m)| m).collect();
        bad_input!("{}", lines.join("\n"))
    }

    /// A required one-line text field.
    fn line(&mut self, value: &S<String>, field: &str, at: usize) -> Option<String> {
        match value {
            None => {
                self.error(at, field, "missing");
                None
            }
            Some(v) => self.opt_line_value(v, field),
        }
    }

    fn opt_line(&mut self, value: &S<String>, field: &str) -> Option<String> {
        value.as_ref().and_then(|v| self.opt_line_value(v, field))
    }

    /// Every string value passes here before any other check: the parsed
    /// text may not hold the placeholder brackets.
    fn unreserved<'v>(&mut self, v: &'v Spanned<String>, field: &str) -> Option<&'v str> {
        if v.get_ref().contains(placeholder::is_reserved_char) {
            self.error(v.span().start, field, placeholder::RESERVED);
            None
        } else {
            Some(v.get_ref())
        }
    }

    fn opt_line_value(&mut self, v: &Spanned<String>, field: &str) -> Option<String> {
        let s = self.unreserved(v, field)?.trim();
        if s.is_empty() {
            self.error(v.span().start, field, "is empty");
            None
        } else if s.chars().any(char::is_control) {
            self.error(
                v.span().start,
                field,
                "must be one line of text (no line breaks or control characters)",
            );
            None
        } else {
            Some(s.to_string())
        }
    }

    /// An absolute http(s) URL (or mailto: where `mailto` allows it).
    fn url(&mut self, value: &S<String>, field: &str, at: usize, mailto: bool) -> Option<String> {
        match value {
            None => {
                self.error(at, field, "missing");
                None
            }
            Some(v) => self.url_value(v, field, mailto),
        }
    }

    fn opt_url(&mut self, value: &S<String>, field: &str, mailto: bool) -> Option<String> {
        value
            .as_ref()
            .and_then(|v| self.url_value(v, field, mailto))
    }

    fn url_value(&mut self, v: &Spanned<String>, field: &str, mailto: bool) -> Option<String> {
        let s = self.unreserved(v, field)?.trim();
        match check_url(s, mailto) {
            Ok(()) => Some(s.to_string()),
            Err(why) => {
                self.error(v.span().start, field, &format!("`{s}` {why}"));
                None
            }
        }
    }

    fn markdown(&mut self, value: &S<String>, field: &str, at: usize) -> Option<Markdown> {
        match value {
            None => {
                self.error(at, field, "missing");
                None
            }
            Some(v) => self.markdown_value(v, field),
        }
    }

    fn markdown_value(&mut self, v: &Spanned<String>, field: &str) -> Option<Markdown> {
        if self.unreserved(v, field)?.trim().is_empty() {
            self.error(v.span().start, field, "is empty");
            return None;
        }
        // Tokens keep the text's line breaks, so Markdown's offsets still
        // give the right line.
        let text = self.personal(v, field, v.get_ref())?;
        match Markdown::parse(&text) {
            Ok(md) => Some(md),
            Err(bad) => {
                let line = self.line_in_value(v, &text, bad.offset);
                self.errors.push((
                    line,
                    format!("{}:{line}: {field}: {}", self.file, bad.message),
                ));
                None
            }
        }
    }

    fn image(&mut self, b: &RawBlock, prefix: &str, at: usize) -> Option<Image> {
        let src = self.opt_url(&b.image, &format!("{prefix}.image"), false)?;
        let alt = self.line(
            &b.image_alt,
            &format!("{prefix}.image_alt"),
            b.image.as_ref().map(|s| s.span().start).unwrap_or(at),
        );
        let credit = self.opt_line(&b.photo_credit, &format!("{prefix}.photo_credit"));
        Some(Image {
            src,
            alt: alt?,
            credit,
        })
    }

    fn links(&mut self, value: &S<Vec<Spanned<RawLink>>>, field: &str) -> Vec<Link> {
        let mut out = Vec::new();
        for (i, raw) in value.iter().flat_map(|v| v.get_ref()).enumerate() {
            let name = format!("{field}[{}]", i + 1);
            let at = raw.span().start;
            let label = self.line(&raw.get_ref().label, &format!("{name}.label"), at);
            let url = self.url(&raw.get_ref().url, &format!("{name}.url"), at, true);
            if let (Some(label), Some(url)) = (label, url) {
                out.push(Link { label, url });
            }
        }
        out
    }

    fn issue(&mut self, raw: RawIssue, path: &Path, source: Vec<u8>) -> Option<Issue> {
        let slug = match &raw.slug {
            Some(s) => {
                let v = self.unreserved(s, "slug").unwrap_or("").trim();
                if let Err(why) = check_slug(v) {
                    self.error(s.span().start, "slug", &format!("`{v}` {why}"));
                }
                v.to_string()
            }
            None => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Err(why) = check_slug(&stem) {
                    self.error(
                        0,
                        "slug",
                        &format!("the file name `{stem}` {why}; add a `slug = \"...\"` key"),
                    );
                }
                stem
            }
        };
        let subject = self.personal_line(&raw.subject, "subject", 0);
        if let (Some(s), Some(raw)) = (&subject, &raw.subject) {
            if s.chars().count() > 250 {
                self.error(raw.span().start, "subject", "is longer than 250 characters");
            }
        }
        let preheader = self.personal_line(&raw.preheader, "preheader", 0);
        let date = match &raw.date {
            None => {
                self.error(0, "date", "missing (write e.g. date = 2018-12-14)");
                None
            }
            Some(d) => match (d.get_ref().date, d.get_ref().time) {
                (Some(date), None) => {
                    let parsed = NaiveDate::from_ymd_opt(
                        date.year.into(),
                        date.month.into(),
                        date.day.into(),
                    );
                    if parsed.is_none() {
                        self.error(d.span().start, "date", "is not a calendar date");
                    }
                    parsed
                }
                _ => {
                    self.error(
                        d.span().start,
                        "date",
                        "must be a plain date without time (e.g. date = 2018-12-14)",
                    );
                    None
                }
            },
        };
        let contact = raw.contact.as_ref().and_then(|c| {
            let v = self.unreserved(c, "contact")?.trim();
            match crate::domain::SubscriberEmail::parse(v) {
                Ok(_) => Some(v.to_string()),
                Err(e) => {
                    self.error(c.span().start, "contact", &format!("`{v}`: {e}"));
                    None
                }
            }
        });
        let name_fallback = self
            .opt_line(&raw.name_fallback, "name_fallback")
            .unwrap_or_else(|| "reader".to_string());

        let audience =
            raw.audience.as_ref().and_then(|a| {
                match crate::domain::Audience::from_toml(a.get_ref()) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        self.error(a.span().start, "audience", &e);
                        None
                    }
                }
            });
        let mut blocks = Vec::new();
        match &raw.blocks {
            None => self.error(
                self.source.len(),
                "blocks",
                "an issue needs at least one [[blocks]] entry",
            ),
            Some(list) if list.get_ref().is_empty() => self.error(
                list.span().start,
                "blocks",
                "an issue needs at least one [[blocks]] entry",
            ),
            Some(list) => {
                for (i, b) in list.get_ref().iter().enumerate() {
                    if let Some(block) = self.block(b.get_ref(), b.span(), i + 1) {
                        blocks.push(block);
                    }
                }
            }
        }
        Some(Issue {
            file: self.file.to_string(),
            source,
            slug,
            subject: subject?,
            preheader: preheader?,
            date: date?,
            contact,
            name_fallback,
            blocks,
            attrs: std::mem::take(&mut self.attrs),
            audience,
            design: None,
        })
    }

    fn block(&mut self, b: &RawBlock, span: Range<usize>, n: usize) -> Option<Block> {
        let prefix = format!("blocks[{n}]");
        let at = span.start;
        let Some(kind) = &b.kind else {
            self.error(
                at,
                &format!("{prefix}.type"),
                &format!("missing (one of {BLOCK_TYPES})"),
            );
            return None;
        };
        let allowed = match kind.get_ref().as_str() {
            "story" => STORY_KEYS,
            "quote" => QUOTE_KEYS,
            "promo" => PROMO_KEYS,
            "news" => NEWS_KEYS,
            "text" => TEXT_KEYS,
            other => {
                self.error(
                    kind.span().start,
                    &format!("{prefix}.type"),
                    &format!("unknown block type `{other}` (expected {BLOCK_TYPES})"),
                );
                return None;
            }
        };
        for (key, offset) in present_keys(b) {
            if !allowed.contains(&key) {
                self.error(
                    offset,
                    &format!("{prefix}.{key}"),
                    &format!("is not used by a `{}` block", kind.get_ref()),
                );
            }
        }
        let f = |name: &str| format!("{prefix}.{name}");
        match kind.get_ref().as_str() {
            "story" => {
                let image = self.image(b, &prefix, at);
                let headline = self.personal_line(&b.headline, &f("headline"), at);
                let dateline = self.opt_line(&b.dateline, &f("dateline"));
                let body = self.markdown(&b.body, &f("body"), at);
                let read_on = self.opt_url(&b.read_on, &f("read_on"), false);
                let share = self.links(&b.share, &f("share"));
                Some(Block::Story(Story {
                    image,
                    headline: headline?,
                    dateline,
                    body: body?,
                    read_on,
                    share,
                }))
            }
            "quote" => {
                let text = self.line(&b.text, &f("text"), at);
                let who = self.line(&b.who, &f("who"), at);
                let place = self.opt_line(&b.place, &f("where"));
                let image = self.image(b, &prefix, at);
                let link = match (&b.link, &b.link_label) {
                    (None, None) => None,
                    (link, label) => {
                        let at = link
                            .as_ref()
                            .or(label.as_ref())
                            .map(|s| s.span().start)
                            .unwrap_or(at);
                        let url = self.url(link, &f("link"), at, true);
                        let label = self.line(label, &f("link_label"), at);
                        Some(Link {
                            label: label?,
                            url: url?,
                        })
                    }
                };
                let share = self.links(&b.share, &f("share"));
                Some(Block::Quote(Quote {
                    text: text?,
                    who: who?,
                    place,
                    image,
                    link,
                    share,
                }))
            }
            "promo" => {
                let title = self.line(&b.title, &f("title"), at);
                let body = b
                    .body
                    .as_ref()
                    .and_then(|v| self.markdown_value(v, &f("body")));
                let image = self.image(b, &prefix, at);
                let label = self.line(&b.button_label, &f("button_label"), at);
                let url = self.url(&b.button_url, &f("button_url"), at, true);
                Some(Block::Promo(Promo {
                    title: title?,
                    body,
                    image,
                    button: Link {
                        label: label?,
                        url: url?,
                    },
                }))
            }
            "news" => {
                let title = self
                    .opt_line(&b.title, &f("title"))
                    .unwrap_or_else(|| "In the news".to_string());
                let mut items = Vec::new();
                match &b.items {
                    None => self.error(at, &f("items"), "missing (add [[blocks.items]] entries)"),
                    Some(list) if list.get_ref().is_empty() => {
                        self.error(list.span().start, &f("items"), "is empty")
                    }
                    Some(list) => {
                        for (i, item) in list.get_ref().iter().enumerate() {
                            let name = f(&format!("items[{}]", i + 1));
                            let at = item.span().start;
                            let it = item.get_ref();
                            let source = self.line(&it.source, &format!("{name}.source"), at);
                            let text = self.line(&it.text, &format!("{name}.text"), at);
                            let url = self.url(&it.url, &format!("{name}.url"), at, false);
                            if let (Some(source), Some(text), Some(url)) = (source, text, url) {
                                items.push(NewsItem { source, text, url });
                            }
                        }
                    }
                }
                Some(Block::News(News { title, items }))
            }
            "text" => {
                let title = self.opt_line(&b.title, &f("title"));
                let body = self.markdown(&b.body, &f("body"), at);
                Some(Block::Text(TextBlock { title, body: body? }))
            }
            _ => unreachable!("block type checked above"),
        }
    }
}

/// The keys present in a raw block (except `type`) with their offsets.
fn present_keys(b: &RawBlock) -> Vec<(&'static str, usize)> {
    fn at<T>(v: &S<T>) -> Option<usize> {
        v.as_ref().map(|s| s.span().start)
    }
    [
        ("image", at(&b.image)),
        ("image_alt", at(&b.image_alt)),
        ("photo_credit", at(&b.photo_credit)),
        ("headline", at(&b.headline)),
        ("dateline", at(&b.dateline)),
        ("body", at(&b.body)),
        ("read_on", at(&b.read_on)),
        ("share", at(&b.share)),
        ("text", at(&b.text)),
        ("who", at(&b.who)),
        ("where", at(&b.place)),
        ("link", at(&b.link)),
        ("link_label", at(&b.link_label)),
        ("title", at(&b.title)),
        ("button_label", at(&b.button_label)),
        ("button_url", at(&b.button_url)),
        ("items", at(&b.items)),
    ]
    .into_iter()
    .filter_map(|(k, o)| o.map(|o| (k, o)))
    .collect()
}
