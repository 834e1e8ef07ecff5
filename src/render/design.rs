//! An MJML design as an issue: a `.mjml` file made elsewhere (the MJML app,
//! an email editor, a previous ESP's export) sent as it is. This module owns
//! reading it (metadata from a TOML front-matter comment or a sidecar
//! `.toml`, else `<mj-title>`/`<mj-preview>`), mapping its merge tags onto
//! herald's context (native `{{ recipient.name }}` etc., or a foreign tool's
//! tags through a preset or a `[merge_tags]` table), refusing what a
//! newsletter must not carry (script, forms, other services' tracking
//! pixels, tags that would print an internal id, `mj-include`), and
//! compiling it into a [`CompiledIssue`] with the same placeholder split as
//! the TOML issues. Every error names the file and its line (and column).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chrono::NaiveDate;
use serde::Deserialize;

use super::checks::check_slug;
use super::issue::Issue;
use super::merge_tags::{native, Design, Fixed, MergeTags, Tag, Target};
use super::placeholder::{self, CompiledIssue, Slot};
use super::templates::{line_col, protect_for_mrml, Origin};
use super::{mjml, text, tidy_text, Compiled};
use crate::bad_input;
use crate::config::Settings;

/// Designs larger than this are refused (Gmail clips at 102 KB anyway).
const MAX_DESIGN_BYTES: u64 = 1024 * 1024;

/// Whether a path names an MJML design rather than a TOML issue.
pub fn is_design(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mjml"))
}

/// Front matter or sidecar keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    subject: Option<String>,
    preheader: Option<String>,
    slug: Option<String>,
    date: Option<toml::value::Datetime>,
    contact: Option<String>,
    name_fallback: Option<String>,
    merge_tags: Option<MergeTagsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MergeTagsSpec {
    Preset(String),
    /// `preset = "mailchimp"` and/or `"TAG" = "recipient.name"` pairs.
    Table(BTreeMap<String, String>),
}

/// Errors of one file, each already carrying `file:line[:col]`.
struct Problems {
    file: String,
    list: Vec<String>,
}

impl Problems {
    fn at(&mut self, source: &str, offset: usize, msg: impl std::fmt::Display) {
        let (l, c) = line_col(source, offset);
        self.list.push(format!("{}:{l}:{c}: {msg}", self.file));
    }
    fn whole(&mut self, msg: impl std::fmt::Display) {
        self.list.push(format!("{}: {msg}", self.file));
    }
    fn done(self) -> anyhow::Result<()> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(bad_input!("{}", self.list.join("\n")))
        }
    }
}

/// Read and validate an MJML design. `merge_tags` (from the command line)
/// overrides the preset named in the front matter or sidecar.
pub fn load_design(path: &Path, merge_tags: Option<MergeTags>) -> anyhow::Result<Issue> {
    use std::io::Read;
    let file = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DESIGN_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading MJML design {file}"))
        .map_err(|e| bad_input!("{e:#}"))?;
    if bytes.len() as u64 > MAX_DESIGN_BYTES {
        return Err(bad_input!(
            "{file}: the design is larger than {} KiB",
            MAX_DESIGN_BYTES / 1024
        ));
    }
    let source = String::from_utf8(bytes)
        .map_err(|e| bad_input!("{file}: not UTF-8 (byte {})", e.utf8_error().valid_up_to()))?;
    let mut p = Problems {
        file: file.clone(),
        list: Vec::new(),
    };
    if let Some(pos) = source.find(placeholder::is_reserved_char) {
        p.at(&source, pos, placeholder::RESERVED);
        return p.done().map(|_| unreachable!());
    }
    // Nor as character references (`&#10214;`, `&LeftDoubleBracket;`…),
    // which the text twin would decode into a forged placeholder.
    if let Some(pos) = reserved_entity(&source) {
        p.at(&source, pos, placeholder::RESERVED);
        return p.done().map(|_| unreachable!());
    }

    // Metadata: front matter or sidecar, not both.
    let front = front_matter(&source, &mut p);
    let sidecar_path = path.with_extension("toml");
    let mut sidecar_bytes = Vec::new();
    let sidecar = if sidecar_path.is_file() {
        let text = std::fs::read_to_string(&sidecar_path)
            .with_context(|| format!("reading {}", sidecar_path.display()))
            .map_err(|e| bad_input!("{e:#}"))?;
        sidecar_bytes = text.clone().into_bytes();
        match toml::from_str::<Meta>(&text) {
            Ok(m) => Some(m),
            Err(e) => {
                let (l, _) = line_col(&text, e.span().map(|s| s.start).unwrap_or(0));
                return Err(bad_input!(
                    "{}:{l}: {}",
                    sidecar_path.display(),
                    e.message()
                ));
            }
        }
    } else {
        None
    };
    let meta = match (front, sidecar) {
        (Some(_), Some(_)) => {
            p.whole(format!(
                "has both a front-matter block and a sidecar {}; keep one",
                sidecar_path.display()
            ));
            Meta::default()
        }
        (Some(m), None) | (None, Some(m)) => m,
        (None, None) => Meta::default(),
    };

    // Merge-tag vocabulary.
    let mut preset = None;
    let mut custom = BTreeMap::new();
    match &meta.merge_tags {
        Some(MergeTagsSpec::Preset(s)) => match s.parse() {
            Ok(m) => preset = Some(m),
            Err(e) => p.whole(format!("merge_tags: {e}")),
        },
        Some(MergeTagsSpec::Table(t)) => {
            for (k, v) in t {
                if k == "preset" {
                    match v.parse() {
                        Ok(m) => preset = Some(m),
                        Err(e) => p.whole(format!("merge_tags.preset: {e}")),
                    }
                } else if native(v).is_some() {
                    custom.insert(k.trim().to_string(), v.clone());
                } else {
                    p.whole(format!(
                        "merge_tags.{k}: `{v}` is not a herald value (e.g. recipient.name, recipient.unsubscribe_url, newsletter.postal_address)"
                    ));
                }
            }
        }
        None => {}
    }
    let preset = merge_tags.or(preset);

    let tags = scan_tags(&source, preset, &custom, &mut p);
    scan_unsafe(&source, &mut p);

    // Subject, preheader, slug, date.
    let title = element_text(&source, "mj-title");
    let preview = element_text(&source, "mj-preview");
    let subject = meta.subject.clone().or(title).unwrap_or_default();
    let subject = subject.trim().to_string();
    if subject.is_empty() {
        p.whole(
            "no subject: add `subject = \"...\"` to the front matter or sidecar, or an <mj-title>",
        );
    } else if subject.chars().count() > 250 {
        p.whole("subject: is longer than 250 characters");
    } else if subject.contains("{{") || subject.contains("*|") {
        p.whole("subject: merge tags are not supported in the subject");
    }
    let preheader = meta
        .preheader
        .clone()
        .or(preview.clone())
        .unwrap_or_default();
    // One line of text each, without placeholder brackets (TOML escapes in
    // the front matter or sidecar only become characters when parsed).
    for (field, value) in [
        ("subject", Some(&subject)),
        ("preheader", Some(&preheader)),
        ("name_fallback", meta.name_fallback.as_ref()),
    ] {
        let Some(value) = value else { continue };
        if value
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            p.whole(format!(
                "{field}: must be one line of text (no line breaks or control characters)"
            ));
        } else if value.contains(placeholder::is_reserved_char) {
            p.whole(format!("{field}: {}", placeholder::RESERVED));
        }
    }
    let slug = meta.slug.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    if let Err(why) = check_slug(&slug) {
        p.whole(format!(
            "slug: `{slug}` {why}; add `slug = \"...\"` to the front matter or sidecar"
        ));
    }
    let date = match &meta.date {
        None => chrono::Local::now().date_naive(),
        Some(d) => match (d.date, d.time) {
            (Some(x), None) => NaiveDate::from_ymd_opt(x.year.into(), x.month.into(), x.day.into())
                .unwrap_or_else(|| {
                    p.whole("date: is not a calendar date");
                    NaiveDate::MIN
                }),
            _ => {
                p.whole("date: must be a plain date without time (e.g. date = 2018-12-14)");
                NaiveDate::MIN
            }
        },
    };
    let contact = meta.contact.clone();
    if let Some(c) = &contact {
        if let Err(e) = crate::domain::SubscriberEmail::parse(c) {
            p.whole(format!("contact: `{c}`: {e}"));
        }
    }
    p.done()?;

    // A preheader given only in the metadata goes into the document.
    let mut source = source;
    let mut tags = tags;
    if preview.is_none() && !preheader.is_empty() {
        let preview_tag = format!(
            "<mj-preview>{}</mj-preview>",
            html_escape::encode_text(&preheader)
        );
        let (at, insert) = match source.find("<mj-head>") {
            Some(i) => (i + "<mj-head>".len(), preview_tag),
            None => {
                let open = source.find("<mjml").unwrap_or(0);
                let end = source[open..].find('>').map(|i| open + i + 1).unwrap_or(0);
                (end, format!("<mj-head>{preview_tag}</mj-head>"))
            }
        };
        source.insert_str(at, &insert);
        for t in &mut tags {
            if t.range.start >= at {
                t.range = t.range.start + insert.len()..t.range.end + insert.len();
            }
        }
    }

    // The content hash (versions of a send) covers everything that shapes
    // the message: the design, its sidecar and a command-line mapping.
    let mut all_bytes = source.clone().into_bytes();
    all_bytes.extend_from_slice(&sidecar_bytes);
    if let Some(m) = merge_tags {
        all_bytes.extend_from_slice(format!("\n--merge-tags {m:?}").as_bytes());
    }
    Ok(Issue {
        file,
        source: all_bytes,
        slug,
        subject,
        preheader,
        date,
        contact,
        name_fallback: meta
            .name_fallback
            .clone()
            .unwrap_or_else(|| "reader".into()),
        blocks: Vec::new(),
        attrs: Vec::new(),
        audience: None,
        design: Some(Box::new(Design { source, tags })),
    })
}

/// A leading `<!-- +++ … +++ -->` comment holding TOML.
fn front_matter(source: &str, p: &mut Problems) -> Option<Meta> {
    let start = source.len() - source.trim_start().len();
    let rest = source[start..].strip_prefix("<!--")?;
    let open_rel = rest.len() - rest.trim_start().len();
    let body = rest[open_rel..].strip_prefix("+++")?;
    let body_at = start + 4 + open_rel + 3;
    let Some(end) = body.find("+++") else {
        p.at(source, start, "front matter: no closing `+++`");
        return None;
    };
    let toml_text = &body[..end];
    match toml::from_str::<Meta>(toml_text) {
        Ok(m) => Some(m),
        Err(e) => {
            let at = body_at + e.span().map(|s| s.start).unwrap_or(0);
            let (l, _) = line_col(source, at);
            p.list
                .push(format!("{}:{l}: front matter: {}", p.file, e.message()));
            None
        }
    }
}

/// The decoded text of the first `<name>…</name>` element.
fn element_text(source: &str, name: &str) -> Option<String> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let at = source.find(&open)?;
    let body = at + source[at..].find('>')? + 1;
    let end = body + source[body..].find(&close)?;
    let text = html_escape::decode_html_entities(source[body..end].trim()).into_owned();
    (!text.is_empty()).then_some(text)
}

/// Names that would print an internal identifier of a subscriber.
fn leaks_internal_id(tag: &str) -> bool {
    let last = tag
        .rsplit(['.', '_', ':', '-', ' '])
        .next()
        .unwrap_or(tag)
        .to_ascii_lowercase();
    matches!(last.as_str(), "id" | "uid" | "uuid" | "uniqid" | "euid")
        || tag.eq_ignore_ascii_case("UNIQID")
}

/// Every `{{ … }}`, `{% … %}` and `*|…|*` in the design, resolved.
fn scan_tags(
    source: &str,
    preset: Option<MergeTags>,
    custom: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Vec<Tag> {
    let mut tags = Vec::new();
    let resolve = |inner: &str, p: &mut Problems, at: usize, shown: &str| -> Option<Target> {
        let key = inner.trim();
        if leaks_internal_id(key) {
            p.at(
                source,
                at,
                format!("merge tag `{shown}` would print an internal subscriber id; remove it"),
            );
            return None;
        }
        let mapped = custom
            .get(key)
            .map(String::as_str)
            .or_else(|| preset.and_then(|m| m.map(key)))
            .unwrap_or(key);
        // `recipient.attributes.KEY | default("text")`
        let (mapped, filter) = match mapped.split_once('|') {
            Some((k, f)) => (k.trim(), Some(f.trim())),
            None => (mapped, None),
        };
        let default = match filter {
            None => None,
            Some(f) => match f
                .strip_prefix("default(\"")
                .and_then(|r| r.strip_suffix("\")"))
                .filter(|d| !d.contains('"'))
            {
                Some(d) if mapped.starts_with("recipient.attributes.") => Some(d.to_string()),
                _ => {
                    p.at(
                        source,
                        at,
                        format!("merge tag `{shown}`: only `| default(\"…\")` on recipient.attributes.KEY is supported"),
                    );
                    return None;
                }
            },
        };
        match native(mapped) {
            Some(Target::Attribute { key, .. }) => Some(Target::Attribute { key, default }),
            Some(t) => Some(t),
            None => {
                let hint = match preset {
                    None => " (a foreign tool's tag: map it with --merge-tags mailchimp|generic or a [merge_tags] table)",
                    Some(_) => " (map it in a [merge_tags] table)",
                };
                p.at(source, at, format!("unknown merge tag `{shown}`{hint}"));
                None
            }
        }
    };
    let mut i = 0;
    while i < source.len() {
        let rest = &source[i..];
        // `{#` only as a template comment (`{# … #}`): minified CSS writes
        // `{#id{…}}` inside a media query.
        let comment = rest.starts_with("{#")
            && rest[2..].starts_with(|c: char| c.is_whitespace() || c == '-');
        if rest.starts_with("{%") || comment {
            p.at(
                source,
                i,
                "template logic (`{%`, `{#`) is not supported in an MJML design",
            );
            i += 2;
        } else if rest.starts_with("{{") {
            let Some(end) = rest.find("}}") else {
                p.at(source, i, "`{{` without a closing `}}`");
                break;
            };
            let shown = &rest[..end + 2];
            let inner = &rest[2..end];
            if let Some(target) = resolve(inner, p, i, shown) {
                tags.push(Tag {
                    range: i..i + end + 2,
                    target,
                });
            }
            i += end + 2;
        } else if let Some(after) = rest.strip_prefix("*|") {
            match after.find("|*") {
                Some(end) if !after[..end].contains(['\n', '<', '>']) => {
                    let shown = &rest[..end + 4];
                    let inner = &after[..end];
                    if let Some(target) = resolve(inner, p, i, shown) {
                        tags.push(Tag {
                            range: i..i + end + 4,
                            target,
                        });
                    }
                    i += end + 4;
                }
                _ => i += 2,
            }
        } else {
            i += rest.chars().next().map(char::len_utf8).unwrap_or(1);
        }
    }
    tags
}

/// Script, forms, embedded frames, `mj-include` and 1×1 images (another
/// service's tracking pixel) are refused, each with its line:column.
fn scan_unsafe(source: &str, p: &mut Problems) {
    let lower = source.to_ascii_lowercase();
    for (needle, why) in [
        ("<script", "<script> does not run in mail clients and filters score it as hostile; remove it"),
        ("<form", "forms do not work in most mail clients and filters score them; link to a web form instead"),
        ("<input", "form fields do not work in most mail clients; link to a web form instead"),
        ("<iframe", "<iframe> is stripped by mail clients and scored by filters; remove it"),
        ("<mj-include", "mj-include is not supported: inline the included file into the design"),
    ] {
        let mut from = 0;
        while let Some(rel) = lower[from..].find(needle) {
            let at = from + rel;
            let next = lower.as_bytes().get(at + needle.len()).copied();
            if next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-') {
                from = at + needle.len();
                continue;
            }
            p.at(source, at, why);
            from = at + needle.len();
        }
    }
    for needle in ["<img", "<mj-image"] {
        let mut from = 0;
        while let Some(rel) = lower[from..].find(needle) {
            let at = from + rel;
            let end = lower[at..].find('>').map(|e| at + e).unwrap_or(lower.len());
            let tag = &lower[at..end];
            let tiny = |name: &str| {
                attr(tag, name).is_some_and(|v| {
                    let v = v.trim().trim_end_matches("px");
                    v == "0" || v == "1"
                }) || tag.contains(&format!("{name}:1px"))
                    || tag.contains(&format!("{name}: 1px"))
            };
            if tiny("width") && tiny("height") {
                p.at(
                    source,
                    at,
                    "a 1×1 image is another service's tracking pixel; herald does not track opens, remove it",
                );
            }
            from = end;
        }
    }
}

/// The value of `name="…"` in a lower-cased tag.
pub(crate) fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(rel) = tag[from..].find(name) {
        let at = from + rel;
        from = at + name.len();
        let before_ok = at == 0 || tag.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let rest = rest[1..].trim_start();
        let quote = rest.chars().next()?;
        if quote == '"' || quote == '\'' {
            let body = &rest[1..];
            return body.find(quote).map(|e| &body[..e]);
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        return Some(&rest[..end]);
    }
    None
}

fn fixed_value(f: Fixed, issue: &Issue, settings: &Settings) -> String {
    match f {
        Fixed::NewsletterName => settings.newsletter.name.clone(),
        Fixed::PostalAddress => settings.newsletter.postal_address.clone(),
        Fixed::ListId => settings.newsletter.list_id.clone(),
        Fixed::FromAddress => settings.sender.from_address.to_string(),
        Fixed::IssueSubject => issue.subject().to_string(),
        Fixed::IssuePreheader => issue.preheader().to_string(),
        Fixed::IssueSlug => issue.slug().to_string(),
        Fixed::IssueDate => issue.date().format("%-d %B %Y").to_string(),
        Fixed::IssueDateIso => issue.date().format("%Y-%m-%d").to_string(),
    }
}

/// Compile a design: fill its merge tags, run mrml, derive the text twin,
/// and check the footer's guarantees.
pub(crate) fn compile(
    issue: &Issue,
    design: &Design,
    settings: &Settings,
) -> anyhow::Result<Compiled> {
    let file = issue.file();
    let src = &design.source;
    let mut filled = String::with_capacity(src.len() + 256);
    let mut last = 0;
    for tag in &design.tags {
        filled.push_str(&src[last..tag.range.start]);
        match &tag.target {
            Target::Attribute { key, default } => {
                let fallback = default
                    .as_deref()
                    .map(|d| html_escape::encode_quoted_attribute(d).into_owned());
                filled.push_str(&placeholder::attr_sentinel(key, fallback.as_deref()));
            }
            Target::Recipient(Slot::Name) => {
                let fallback = html_escape::encode_quoted_attribute(&issue.name_fallback);
                filled.push_str(&Slot::Name.sentinel(Some(&fallback)));
            }
            Target::Recipient(slot) => filled.push_str(&slot.sentinel(None)),
            Target::Fixed(f) => {
                let v = fixed_value(*f, issue, settings);
                let v = html_escape::encode_quoted_attribute(&v);
                filled.push_str(&protect_for_mrml(&v, false));
            }
        }
        last = tag.range.end;
    }
    filled.push_str(&src[last..]);

    let origin = Origin::File(file.to_string());
    let out = mjml::compile_labelled(&origin, file, &filled)?;
    let text = tidy_text(&text::from_html(&out.html)?);
    if !out.slots.contains(&Slot::UnsubscribeUrl) {
        return Err(bad_input!(
            "{file}: no visible unsubscribe link: add <a href=\"{{{{ recipient.unsubscribe_url }}}}\">Unsubscribe</a> to the footer (or map your tool's unsubscribe tag with --merge-tags)"
        ));
    }
    if !placeholder::slots_in(&text).contains(&Slot::UnsubscribeUrl) {
        return Err(bad_input!(
            "{file}: the unsubscribe link is not visible (it is hidden or has no text)"
        ));
    }
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let address = squash(&settings.newsletter.postal_address);
    if !squash(&text).contains(&address) {
        return Err(bad_input!(
            "{file}: no postal address: the footer must show newsletter.postal_address (`{address}`); add {{{{ newsletter.postal_address }}}}"
        ));
    }
    Ok(Compiled {
        compiled: CompiledIssue {
            subject: issue.subject().to_string(),
            html: out.html,
            text,
        },
        warnings: out.warnings,
        mjml: filled,
    })
}

/// The offset of the first character reference (`&#10214;`, `&#x27E7;`,
/// `&LeftDoubleBracket;`…) that decodes to a placeholder bracket.
fn reserved_entity(source: &str) -> Option<usize> {
    source.match_indices('&').find_map(|(at, _)| {
        let rest = &source[at..];
        let end = rest.find(';').filter(|e| *e <= 40)?;
        let decoded = html_escape::decode_html_entities(&rest[..=end]);
        decoded
            .contains(placeholder::is_reserved_char)
            .then_some(at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems() -> Problems {
        Problems {
            file: "d.mjml".into(),
            list: Vec::new(),
        }
    }

    #[test]
    fn foreign_tags_map_only_with_their_preset() {
        let src = "<p>Hi *|FNAME|*</p>\n<a href=\"{{ unsubscribe_url }}\">x</a>";
        let mut p = problems();
        let tags = scan_tags(src, None, &BTreeMap::new(), &mut p);
        assert!(tags.is_empty());
        assert_eq!(p.list.len(), 2, "{:?}", p.list);
        assert!(p.list[0].starts_with("d.mjml:1:7: unknown merge tag `*|FNAME|*`"));
        assert!(p.list[1].starts_with("d.mjml:2:10: unknown merge tag `{{ unsubscribe_url }}`"));

        let mut p = problems();
        let tags = scan_tags(src, Some(MergeTags::Mailchimp), &BTreeMap::new(), &mut p);
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].target, Target::Recipient(Slot::Name));
        assert_eq!(p.list.len(), 1);
    }

    #[test]
    fn id_tags_are_refused_even_when_mapped() {
        let mut p = problems();
        let custom = BTreeMap::from([("subscriber_id".to_string(), "recipient.email".to_string())]);
        scan_tags("{{ subscriber_id }} *|UNIQID|*", None, &custom, &mut p);
        assert_eq!(p.list.len(), 2, "{:?}", p.list);
        assert!(p.list.iter().all(|e| e.contains("internal subscriber id")));
    }

    #[test]
    fn template_logic_is_refused_but_css_id_selectors_are_not() {
        let mut p = problems();
        scan_tags(
            "<mj-style>@media (max-width:480px){#hero{width:100%}}</mj-style>",
            None,
            &BTreeMap::new(),
            &mut p,
        );
        assert!(p.list.is_empty(), "{:?}", p.list);
        scan_tags("{% if x %}\n{# note #}", None, &BTreeMap::new(), &mut p);
        assert_eq!(p.list.len(), 2, "{:?}", p.list);
        assert!(p.list[1].starts_with("d.mjml:2:1: template logic"));
    }

    #[test]
    fn attribute_values() {
        assert_eq!(attr("<img width=\"1\" height=1>", "width"), Some("1"));
        assert_eq!(attr("<img data-width=\"1\">", "width"), None);
    }
}
