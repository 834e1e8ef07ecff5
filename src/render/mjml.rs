//! MJML → HTML through mrml, run once per issue. Parse errors and unknown
//! `mj-*` tags in the filled layout are errors naming the template and the
//! line:column of the filled document (with that line quoted); mrml's parse
//! warnings are handed back to be shown. Placeholders in the result are
//! checked to sit only in text or in href/src values.

use mrml::prelude::parser::{Error as ParseError, Span};
use mrml::prelude::render::RenderOptions;

use super::placeholder::{self, Slot};
use super::templates::{line_col, lint_mjml, Origin};
use crate::bad_input;

/// Compiled HTML, mrml's warnings and the placeholders in the HTML.
#[derive(Debug)]
pub struct Output {
    pub html: String,
    pub warnings: Vec<String>,
    pub slots: Vec<Slot>,
}

/// Compile filled MJML to HTML.
pub fn compile(origin: &Origin, mjml: &str) -> anyhow::Result<Output> {
    compile_labelled(origin, &format!("{origin} (as filled)"), mjml)
}

/// mrml's hidden preheader is white text: filters read it as text hidden
/// by low contrast (SpamAssassin's HTML_FONT_LOW_CONTRAST). The same block
/// without the colour stays hidden (display:none, no size, no opacity).
const MRML_PREVIEW: &str = r#"<div style="display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;max-width:0px;opacity:0;overflow:hidden;">"#;
const PREVIEW: &str = r#"<div style="display:none;font-size:1px;line-height:1px;max-height:0px;max-width:0px;opacity:0;overflow:hidden;mso-hide:all;">"#;

/// Compile MJML to HTML; positions in messages are given as `label:l:c`.
pub fn compile_labelled(origin: &Origin, label: &str, mjml: &str) -> anyhow::Result<Output> {
    let filled = || label.to_string();
    lint_mjml(&Origin::File(filled()), mjml, true)?;
    let parsed = mrml::parse(mjml).map_err(|e| {
        let at = match &e {
            ParseError::UnexpectedElement { position, .. }
            | ParseError::UnexpectedToken { position, .. }
            | ParseError::MissingAttribute { position, .. }
            | ParseError::InvalidAttribute { position, .. }
            | ParseError::InvalidFormat { position, .. }
            | ParseError::IncludeLoaderError { position, .. } => Some(*position),
            _ => None,
        };
        let what = e.to_string();
        let what = what
            .split(" in root template")
            .next()
            .unwrap_or(&what)
            .to_string();
        match at {
            Some(span) => {
                let (l, c) = line_col(mjml, span.start);
                bad_input!(
                    "{}:{l}:{c}: invalid MJML: {what}: `{}`",
                    filled(),
                    quote_line(mjml, span)
                )
            }
            None => bad_input!("{}: invalid MJML: {what}", filled()),
        }
    })?;
    let warnings = parsed
        .warnings
        .iter()
        .map(|w| {
            let (l, c) = line_col(mjml, w.span.start);
            format!(
                "{}:{l}:{c}: {}: `{}`",
                filled(),
                w.kind,
                quote_line(mjml, w.span)
            )
        })
        .collect();
    let options = RenderOptions {
        disable_comments: true,
        ..RenderOptions::default()
    };
    let html = parsed
        .element
        .render(&options)
        .map_err(|e| anyhow::anyhow!("{origin}: MJML render failed: {e}"))?
        .replacen(MRML_PREVIEW, PREVIEW, 1);
    let slots = check_placeholder_contexts(origin, &html)?;
    Ok(Output {
        html,
        warnings,
        slots,
    })
}

/// The source line holding `span`, trimmed, at most 100 characters.
fn quote_line(source: &str, span: Span) -> String {
    let start = span.start.min(source.len());
    let line_start = source[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = source[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(source.len());
    source[line_start..line_end]
        .trim()
        .chars()
        .take(100)
        .collect()
}

/// Byte ranges of `<style>` and `<script>` contents (raw text, not markup),
/// tag names matched case-insensitively.
fn raw_text_ranges(html: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = html.as_bytes();
    let starts_tag = |at: usize, name: &[u8]| {
        bytes
            .get(at..at + name.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(name))
    };
    let mut ranges = Vec::new();
    let mut i = 0;
    while let Some(rel) = bytes[i..].iter().position(|&b| b == b'<') {
        let at = i + rel;
        let mut next = at + 1;
        for name in [&b"style"[..], &b"script"[..]] {
            if starts_tag(at + 1, name) {
                let mut end = html.len();
                let mut j = at + 1;
                while let Some(r) = bytes[j..].iter().position(|&b| b == b'<') {
                    let c = j + r;
                    if bytes.get(c + 1) == Some(&b'/') && starts_tag(c + 2, name) {
                        end = c;
                        break;
                    }
                    j = c + 1;
                }
                ranges.push(at..end);
                next = end;
            }
        }
        i = next;
        if i >= bytes.len() {
            break;
        }
    }
    ranges
}

/// A placeholder may stand in text, or inside a quoted href/src value,
/// nowhere else (not in a tag name, another attribute, style or script).
/// Returns the placeholders found, in order.
fn check_placeholder_contexts(origin: &Origin, html: &str) -> anyhow::Result<Vec<Slot>> {
    let mut raw: Option<Vec<std::ops::Range<usize>>> = None;
    let mut slots = Vec::new();
    for found in placeholder::scan(html) {
        let pos = found.start;
        let before = &html[..pos];
        // Only the current tag matters.
        let last_open = before.rfind('<');
        let last_close = before.rfind('>');
        let in_tag = match (last_open, last_close) {
            (Some(o), Some(c)) => o > c,
            (Some(_), None) => true,
            _ => false,
        };
        let ok = if in_tag {
            let tag = before[last_open.unwrap_or(0)..].to_ascii_lowercase();
            let quote_at = tag.rfind('"');
            let quotes = tag.matches('"').count();
            quotes % 2 == 1
                && quote_at.is_some_and(|q| {
                    let head = tag[..q].trim_end();
                    head.ends_with("href=") || head.ends_with("src=")
                })
        } else {
            let raw = raw.get_or_insert_with(|| raw_text_ranges(html));
            !raw.iter().any(|r| r.contains(&pos))
        };
        if !ok {
            let (l, c) = line_col(html, pos);
            return Err(bad_input!(
                "{origin}: placeholder `{}` at line {l}:{c} of the compiled HTML is not in text or an href/src value",
                found.describe(html)
            ));
        }
        if let placeholder::What::Slot(slot) = found.what {
            slots.push(slot);
        }
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::templates::protect_for_mrml;

    fn origin() -> Origin {
        Origin::File("templates/issue.mjml".into())
    }

    #[test]
    fn a_parse_error_names_template_line_and_column() {
        let err = compile(&origin(), "<mjml>\n<mj-body>\n<mj-section><mj-column><mj-text>x</mj-text></mj-section>\n</mj-body></mjml>")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "templates/issue.mjml (as filled):3:44: </mj-section> closes <mj-column>"
            ),
            "{err}"
        );
        let err = compile(
            &origin(),
            "<mjml>\n<mj-head>\n  <mj-text>x</mj-text>\n</mj-head><mj-body></mj-body></mjml>",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("templates/issue.mjml (as filled):3:"),
            "{err}"
        );
        assert!(err.contains("invalid MJML"), "{err}");
        assert!(err.contains("`<mj-text>x</mj-text>`"), "{err}");
    }

    #[test]
    fn an_unknown_tag_in_the_filled_layout_is_an_error() {
        let err = compile(
            &origin(),
            "<mjml><mj-body><mj-sektion></mj-sektion></mj-body></mjml>",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown MJML tag <mj-sektion>"), "{err}");
    }

    #[test]
    fn placeholders_only_in_text_and_href_or_src() {
        let p = "\u{27E6}herald:email\u{27E7}";
        assert!(check_placeholder_contexts(
            &origin(),
            &format!("<p>{p}</p><a href=\"x{p}\">y</a>")
        )
        .is_ok());
        assert!(check_placeholder_contexts(&origin(), &format!("<p title=\"{p}\">y</p>")).is_err());
        assert!(
            check_placeholder_contexts(&origin(), &format!("<style>a{{{p}}}</style>")).is_err()
        );
        assert!(check_placeholder_contexts(&origin(), &format!("<{p}>")).is_err());
    }

    #[test]
    fn characters_mrml_would_mangle_become_character_references() {
        assert_eq!(
            protect_for_mrml("a\\b\u{200B}c\u{e9}", false),
            "a&#x5C;b&#x200B;c\u{e9}"
        );
        assert_eq!(
            protect_for_mrml("<a href=\"x\">C:\\dir\n</a>", true),
            "<a href=\"x\">C:&#x5C;dir\n</a>"
        );
        let Output { html, .. } = compile(
            &origin(),
            "<mjml><mj-body><mj-section><mj-column><mj-image src=\"https://example.org/a.jpg\" alt=\"a&#x5C;b &#x200B;\" /></mj-column></mj-section></mj-body></mjml>",
        )
        .unwrap();
        assert!(html.contains("alt=\"a&#x5C;b &#x200B;\""), "{html}");
    }

    #[test]
    fn warnings_surface_with_position() {
        let Output { warnings, .. } = compile(
            &origin(),
            "<mjml\n owner=\"me\"><mj-body><mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section></mj-body></mjml>",
        )
        .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(":2:"), "{warnings:?}");
    }
}
