//! The two issue templates — the MJML layout and the plain-text twin — and
//! their checks. An operator's `templates/issue.mjml` / `templates/issue.txt`
//! (relative to the working directory) win over the bundled copies, which are
//! compiled into the binary so herald renders anywhere. A template is linted
//! when loaded: unknown or unsupported `mj-*` tags, the mrml pitfalls from
//! the MJML notes and reserved characters are errors naming file:line:column.

use std::path::Path;

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::placeholder;
use super::wrap;
use crate::bad_input;

pub const MJML_NAME: &str = "issue.mjml";
pub const TEXT_NAME: &str = "issue.txt";
/// Operator templates are looked for here, relative to the working directory.
pub const DIR: &str = "templates";

const BUNDLED_MJML: &str = include_str!("../../templates/issue.mjml");
const BUNDLED_TEXT: &str = include_str!("../../templates/issue.txt");

/// MJML v4 tags mrml knows how to render (mj-include is left out: herald
/// templates are single files).
const KNOWN_TAGS: &[&str] = &[
    "mjml",
    "mj-head",
    "mj-body",
    "mj-attributes",
    "mj-all",
    "mj-class",
    "mj-breakpoint",
    "mj-font",
    "mj-preview",
    "mj-style",
    "mj-title",
    "mj-raw",
    "mj-accordion",
    "mj-accordion-element",
    "mj-accordion-title",
    "mj-accordion-text",
    "mj-button",
    "mj-carousel",
    "mj-carousel-image",
    "mj-column",
    "mj-divider",
    "mj-group",
    "mj-hero",
    "mj-image",
    "mj-navbar",
    "mj-navbar-link",
    "mj-section",
    "mj-social",
    "mj-social-element",
    "mj-spacer",
    "mj-table",
    "mj-text",
    "mj-wrapper",
];

/// Where a template came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(String),
    Bundled(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => f.write_str(path),
            Origin::Bundled(name) => write!(f, "built-in templates/{name}"),
        }
    }
}

/// The loaded, linted templates in a ready template environment.
pub struct Templates {
    env: Environment<'static>,
    mjml: Origin,
    text: Origin,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("mjml", &self.mjml)
            .field("text", &self.text)
            .finish()
    }
}

impl Templates {
    /// The templates compiled into the binary.
    pub fn bundled() -> anyhow::Result<Templates> {
        Templates::new(
            (Origin::Bundled(MJML_NAME), BUNDLED_MJML.to_string()),
            (Origin::Bundled(TEXT_NAME), BUNDLED_TEXT.to_string()),
        )
    }

    /// Each template from `dir` if the file exists there, else the bundled one.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Templates> {
        let pick = |name: &'static str, bundled: &str| -> anyhow::Result<(Origin, String)> {
            let path = dir.join(name);
            if path.is_file() {
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| bad_input!("reading template {}: {e}", path.display()))?;
                Ok((Origin::File(path.display().to_string()), source))
            } else {
                Ok((Origin::Bundled(name), bundled.to_string()))
            }
        };
        Templates::new(
            pick(MJML_NAME, BUNDLED_MJML)?,
            pick(TEXT_NAME, BUNDLED_TEXT)?,
        )
    }

    /// `templates/` in the installation directory `home` if it exists, else
    /// bundled.
    pub fn discover(home: &Path) -> anyhow::Result<Templates> {
        let dir = home.join(DIR);
        let dir = dir.as_path();
        if dir.is_dir() {
            Templates::from_dir(dir)
        } else {
            Templates::bundled()
        }
    }

    /// From explicit sources (tests, tools).
    pub fn from_sources(mjml: &str, text: &str) -> anyhow::Result<Templates> {
        Templates::new(
            (Origin::File(format!("{DIR}/{MJML_NAME}")), mjml.to_string()),
            (Origin::File(format!("{DIR}/{TEXT_NAME}")), text.to_string()),
        )
    }

    fn new(mjml: (Origin, String), text: (Origin, String)) -> anyhow::Result<Templates> {
        lint_mjml(&mjml.0, &mjml.1, false)?;
        reserved_chars(&text.0, &text.1)?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".mjml") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if state.auto_escape() == AutoEscape::Html && !value.is_safe() {
                if !value.is_none() && !value.is_undefined() {
                    let owned;
                    let s = match value.as_str() {
                        Some(s) => s,
                        None => {
                            owned = value.to_string();
                            &owned
                        }
                    };
                    let escaped = html_escape::encode_quoted_attribute(s);
                    out.write_str(&protect_for_mrml(&escaped, false))?;
                }
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("wrap", wrap_filter);
        env.add_filter("default", default_filter);
        env.add_filter("underline", underline_filter);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_template_owned(MJML_NAME, mjml.1)
            .map_err(|e| template_error(&mjml.0, &e))?;
        env.add_template_owned(TEXT_NAME, text.1)
            .map_err(|e| template_error(&text.0, &e))?;
        Ok(Templates {
            env,
            mjml: mjml.0,
            text: text.0,
        })
    }

    pub fn mjml_origin(&self) -> &Origin {
        &self.mjml
    }

    pub fn text_origin(&self) -> &Origin {
        &self.text
    }

    /// Fill the MJML layout.
    pub fn render_mjml(&self, ctx: &Value) -> anyhow::Result<String> {
        self.render(MJML_NAME, &self.mjml, ctx)
    }

    /// Fill the text template.
    pub fn render_text(&self, ctx: &Value) -> anyhow::Result<String> {
        self.render(TEXT_NAME, &self.text, ctx)
    }

    fn render(&self, name: &str, origin: &Origin, ctx: &Value) -> anyhow::Result<String> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| template_error(origin, &e))?;
        template.render(ctx).map_err(|e| template_error(origin, &e))
    }
}

/// `recipient.attributes`: any valid key gives that attribute's placeholder
/// (see [`crate::domain::is_attr_key`]); other keys are undefined.
#[derive(Debug)]
pub(crate) struct AttributeSlots;

impl Object for AttributeSlots {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str().filter(|k| crate::domain::is_attr_key(k))?;
        Some(Value::from_object(AttributeSlot(key.to_string())))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

/// One attribute's placeholder; prints as its sentinel. With
/// `| default("…")` it becomes the sentinel carrying that fallback.
#[derive(Debug)]
struct AttributeSlot(String);

impl Object for AttributeSlot {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result
    where
        Self: Sized + 'static,
    {
        f.write_str(&placeholder::attr_sentinel(&self.0, None))
    }
}

/// The built-in `default`, except that on an attribute placeholder the
/// default becomes the placeholder's fallback (filled per recipient).
fn default_filter(
    state: &minijinja::State,
    value: &Value,
    args: minijinja::value::Rest<Value>,
) -> Result<Value, minijinja::Error> {
    if let Some(slot) = value.downcast_object_ref::<AttributeSlot>() {
        let fallback = args.first().map(|v| v.to_string()).unwrap_or_default();
        return Ok(Value::from(placeholder::attr_sentinel(
            &slot.0,
            Some(&fallback),
        )));
    }
    minijinja::filters::default(state, value, args)
}

/// `{{ text | wrap }}`, `{{ text | wrap(60) }}`, `{{ text | wrap(72, "  ") }}`:
/// word-wrap plain text; `indent` starts every line after the first.
fn wrap_filter(text: String, width: Option<usize>, indent: Option<String>) -> String {
    let indent = indent.unwrap_or_default();
    wrap::wrap(&text, width.unwrap_or(wrap::WIDTH), "", &indent)
}

/// `{{ title | underline("=") }}`: the text, then a line of `char` as long
/// as its longest line.
fn underline_filter(text: String, mark: Option<String>) -> String {
    let mark = mark.unwrap_or_else(|| "-".to_string());
    let width = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let count = width / mark.chars().count().max(1);
    format!("{text}\n{}", mark.repeat(count))
}

fn template_error(origin: &Origin, e: &minijinja::Error) -> anyhow::Error {
    let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    bad_input!("{origin}{line}: template error: {}{detail}", e.kind())
}

/// mrml writes attribute values with Rust's `{:?}` formatting, which turns
/// `\` into `\\` and invisible characters into `\u{..}` text. Replace such
/// characters with numeric character references, which HTML reads back as the
/// same characters in text and in attributes. With `markup` the input is
/// HTML (Markdown output), whose quotes and line breaks are kept.
pub(crate) fn protect_for_mrml(s: &str, markup: bool) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| {
        if markup {
            c == '\\' || (!c.is_ascii() && c.escape_debug().count() > 1)
        } else {
            c.escape_debug().count() > 1
        }
    };
    if !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs(c) {
            out.push_str(&format!("&#x{:X};", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before[i + 1..].chars().count())
        .unwrap_or_else(|| before.chars().count())
        + 1;
    (line, col)
}

fn reserved_chars(origin: &Origin, source: &str) -> anyhow::Result<()> {
    if let Some(pos) = source.find(placeholder::is_reserved_char) {
        let (l, c) = line_col(source, pos);
        return Err(bad_input!("{origin}:{l}:{c}: {}", placeholder::RESERVED));
    }
    Ok(())
}

/// One `<mj-…>` tag found in a template source.
struct TagAt<'a> {
    name: &'a str,
    closing: bool,
    offset: usize,
    /// The text between the name and the closing `>`.
    attrs: &'a str,
}

/// `<mjml…>`/`<mj-…>` tags, skipping `<!-- -->` comments and, in a
/// template (not `filled`), `{# #}` comments.
fn mj_tags(source: &str, filled: bool) -> Vec<TagAt<'_>> {
    let bytes = source.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map(|e| e + 3).unwrap_or(rest.len());
            continue;
        }
        if !filled && rest.starts_with("{#") {
            i += rest.find("#}").map(|e| e + 2).unwrap_or(rest.len());
            continue;
        }
        if bytes[i] == b'<' {
            let closing = rest.starts_with("</");
            let name_start = i + 1 + usize::from(closing);
            let name_len = source[name_start..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
                .count();
            let name = &source[name_start..name_start + name_len];
            if name == "mjml" || name.starts_with("mj-") {
                let after = name_start + name_len;
                let end = source[after..]
                    .find('>')
                    .map(|e| after + e)
                    .unwrap_or(source.len());
                tags.push(TagAt {
                    name,
                    closing,
                    offset: i,
                    attrs: &source[after..end],
                });
                i = end;
                continue;
            }
        }
        // Jump to the next place anything can start (both are ASCII, so
        // this lands on a char boundary).
        i += 1 + bytes[i + 1..]
            .iter()
            .position(|&b| b == b'<' || (!filled && b == b'{'))
            .unwrap_or(bytes.len() - i - 1);
    }
    tags
}

/// Check an MJML template source for what mrml would reject or silently
/// render differently from MJML. `filled` documents (no template logic left)
/// must also nest their `mj-*` tags properly.
pub(crate) fn lint_mjml(origin: &Origin, source: &str, filled: bool) -> anyhow::Result<()> {
    if !filled {
        reserved_chars(origin, source)?;
    }
    let mut problems = Vec::new();
    let mut at = |offset: usize, msg: String| {
        let (l, c) = line_col(source, offset);
        problems.push(format!("{origin}:{l}:{c}: {msg}"));
    };
    let mut in_attributes = false;
    let mut preview_open: Option<usize> = None;
    let mut open: Vec<(&str, usize)> = Vec::new();
    for tag in mj_tags(source, filled) {
        if filled {
            if tag.closing {
                match open.pop() {
                    Some((name, _)) if name == tag.name => {}
                    Some((name, at_open)) => {
                        let (l, c) = line_col(source, at_open);
                        at(
                            tag.offset,
                            format!("</{}> closes <{name}> opened at {l}:{c}", tag.name),
                        );
                        break;
                    }
                    None => {
                        at(tag.offset, format!("</{}> closes nothing", tag.name));
                        break;
                    }
                }
            } else if !tag.attrs.trim_end().ends_with('/') {
                open.push((tag.name, tag.offset));
            }
        }
        match tag.name {
            "mj-html-attributes" | "mj-selector" | "mj-html-attribute" => at(
                tag.offset,
                format!(
                    "<{}> is not supported by the MJML compiler herald uses (mrml)",
                    tag.name
                ),
            ),
            "mj-include" => at(
                tag.offset,
                "<mj-include> is not supported: keep the layout in one template file".into(),
            ),
            name if !KNOWN_TAGS.contains(&name) => {
                at(tag.offset, format!("unknown MJML tag <{name}>"))
            }
            _ => {}
        }
        if tag.closing {
            if tag.name == "mj-attributes" {
                in_attributes = false;
            }
            if tag.name == "mj-preview" {
                if let Some(open) = preview_open.take() {
                    if source[open..tag.offset].contains('<') {
                        at(
                            open,
                            "<mj-preview> must hold plain text only (no HTML tags)".into(),
                        );
                    }
                }
            }
            continue;
        }
        match tag.name {
            "mj-attributes" => in_attributes = !tag.attrs.trim_end().ends_with('/'),
            "mj-body" if in_attributes => at(
                tag.offset,
                "mj-body attributes inside <mj-attributes> are ignored by mrml: put them on the <mj-body> tag"
                    .into(),
            ),
            "mj-preview" => preview_open = Some(tag.offset + 1 + tag.name.len() + tag.attrs.len() + 1),
            _ => {}
        }
        for (name, value) in attributes(tag.attrs) {
            let sized =
                name.contains("padding") || name.contains("radius") || name == "border-width";
            if sized && value.split_whitespace().any(|t| t == "0") {
                at(
                    tag.offset,
                    format!(
                        "<{}> {name}=\"{value}\": write 0px, not a bare 0 (mrml drops it)",
                        tag.name
                    ),
                );
            }
        }
    }
    if let Some((name, offset)) = open.pop().filter(|_| problems.is_empty()) {
        let (l, c) = line_col(source, offset);
        problems.push(format!("{origin}:{l}:{c}: <{name}> is never closed"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(bad_input!("{}", problems.join("\n")))
    }
}

/// `name="value"` pairs of a tag (double or single quotes).
fn attributes(attrs: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = attrs;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].split_whitespace().last().unwrap_or("");
        let after = rest[eq + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            rest = &rest[eq + 1..];
            continue;
        };
        let body = &after[1..];
        let Some(end) = body.find(quote) else { break };
        out.push((name, &body[..end]));
        rest = &body[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(src: &str) -> Result<(), String> {
        lint_mjml(&Origin::File("templates/issue.mjml".into()), src, false)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_bundled_templates_load() {
        Templates::bundled().unwrap();
    }

    #[test]
    fn unknown_and_unsupported_tags_are_named_with_position() {
        let err = lint("<mjml>\n  <mj-body>\n    <mj-colum>\n").unwrap_err();
        assert_eq!(err, "templates/issue.mjml:3:5: unknown MJML tag <mj-colum>");
        let err = lint("<mjml><mj-head><mj-html-attributes>").unwrap_err();
        assert!(
            err.contains("1:16: <mj-html-attributes> is not supported"),
            "{err}"
        );
        assert!(lint("<mjml><!-- <mj-nothing> --><mj-body></mj-body></mjml>").is_ok());
    }

    #[test]
    fn mrml_pitfalls_are_refused() {
        let err = lint("<mjml><mj-body><mj-section padding=\"0 10px\">").unwrap_err();
        assert!(err.contains("write 0px"), "{err}");
        assert!(lint("<mj-section padding=\"0px 10px\">").is_ok());
        let err = lint("<mj-head><mj-attributes><mj-body width=\"600px\" /></mj-attributes>")
            .unwrap_err();
        assert!(err.contains("put them on the <mj-body> tag"), "{err}");
        let err = lint("<mj-preview>Hi <b>there</b></mj-preview>").unwrap_err();
        assert!(err.contains("plain text only"), "{err}");
        assert!(lint("<mj-preview>{{ issue.preheader }}</mj-preview>").is_ok());
    }
}
