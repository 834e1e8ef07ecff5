//! The plain-text twin of a compiled HTML document (an MJML design), read
//! from its structure by html2text: headings, paragraphs and lists as text,
//! links as `text (url)`, images as their alt text, layout tables read cell
//! after cell, hidden elements (the preheader) left out, headings
//! underlined, a line repeated at once (an icon and its label linking to the
//! same place) written once. Lines are wrapped like the TOML issues' twins
//! ([`super::wrap`]), never inside a word.

use html2text::render::TextDecorator;

use super::wrap;

/// Marks a heading line in html2text's output (a control character that
/// cannot come from the document: it is removed from the input first).
const HEADING: char = '\u{1}';

/// Render `html` as plain text (placeholders pass through unchanged).
pub fn from_html(html: &str) -> anyhow::Result<String> {
    let html = html.replace(HEADING, "");
    // Wide enough that html2text never wraps or splits a word itself.
    const UNWRAPPED: usize = 10_000;
    let raw = html2text::config::with_decorator(Links::default())
        .raw_mode(true)
        .use_doc_css()
        .link_footnotes(false)
        .string_from_read(html.as_bytes(), UNWRAPPED)
        .map_err(|e| anyhow::anyhow!("deriving the text twin: {e}"))?;
    let mut out = String::with_capacity(raw.len() + raw.len() / 8);
    let mut previous = "";
    for line in raw.lines() {
        let line = line.trim_end();
        let bare = |l: &str| l.trim().replace(['[', ']'], "");
        if !line.is_empty() && bare(line) == bare(previous) {
            continue;
        }
        if !line.is_empty() {
            previous = line.trim();
        }
        if let Some(heading) = line.trim_start().strip_prefix(HEADING) {
            let (level, heading) = heading.split_at(1);
            let start = out.len();
            out.push('\n');
            wrap::wrap_into(&mut out, heading.trim(), wrap::WIDTH, "", "");
            let width = out[start..]
                .lines()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0);
            let rule = if level == "1" { "=" } else { "-" };
            out.push_str(&rule.repeat(width));
            out.push_str("\n\n");
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = &line[indent..];
        let marker = list_marker(body);
        let first = &line[..indent + marker];
        let rest = " ".repeat(indent + marker);
        if body.is_empty() {
            out.push('\n');
        } else {
            wrap::wrap_into(&mut out, &body[marker..], wrap::WIDTH, first, &rest);
        }
    }
    Ok(super::tidy_text(&out))
}

/// Length of a leading `* ` or `12. ` list marker.
fn list_marker(s: &str) -> usize {
    if s.starts_with("* ") {
        return 2;
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && s[digits..].starts_with(". ") {
        digits + 2
    } else {
        0
    }
}

/// Writes links as `text (url)` (just the text when it is the url) and
/// images as their alt text; no other markup.
#[derive(Clone, Default)]
struct Links {
    urls: Vec<String>,
}

impl TextDecorator for Links {
    type Annotation = ();

    fn decorate_link_start(&mut self, url: &str) -> (String, ()) {
        self.urls.push(url.to_string());
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        match self.urls.pop() {
            Some(u) if !u.is_empty() && !u.starts_with('#') => format!(" ({u})"),
            _ => String::new(),
        }
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        match title.trim() {
            "" => (String::new(), ()),
            alt => (format!("[{alt}]"), ()),
        }
    }
    fn header_prefix(&self, level: usize) -> String {
        format!("{HEADING}{}", level.clamp(1, 9))
    }
    fn quote_prefix(&self) -> String {
        "> ".to_string()
    }
    fn unordered_item_prefix(&self) -> String {
        "* ".to_string()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        Links::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_images_lists_and_hidden_text() {
        let text = from_html(
            "<div style=\"display:none\">hidden preheader</div>\
             <h1>Title</h1><p>Read <a href=\"https://e.org/a\">the post</a>.</p>\
             <ul><li>one</li><li>two</li></ul>\
             <table><tr><td><img src=\"x.png\" alt=\"Logo\"></td><td>cell</td></tr></table>",
        )
        .unwrap();
        assert!(!text.contains("hidden"), "{text}");
        assert!(text.starts_with("Title\n=====\n\nRead"), "{text}");
        assert!(text.contains("Read the post (https://e.org/a)."), "{text}");
        assert!(text.contains("* one\n* two"), "{text}");
        assert!(text.contains("[Logo]"), "{text}");
        assert!(text.contains("cell"), "{text}");
    }
}
