//! The plain-text twin of a compiled HTML document (an MJML design), read
//! from its structure by html2text: headings, paragraphs and lists as text,
//! links as `text (url)`, images as their alt text, layout tables read cell
//! after cell, hidden elements (the preheader) left out. Lines are wrapped
//! like the TOML issues' twins ([`super::wrap`]), never inside a word.

use html2text::render::TextDecorator;

use super::wrap;

/// Render `html` as plain text (placeholders pass through unchanged).
pub fn from_html(html: &str) -> anyhow::Result<String> {
    // Wide enough that html2text never wraps or splits a word itself.
    const UNWRAPPED: usize = 10_000;
    let raw = html2text::config::with_decorator(Links::default())
        .raw_mode(true)
        .use_doc_css()
        .link_footnotes(false)
        .string_from_read(html.as_bytes(), UNWRAPPED)
        .map_err(|e| anyhow::anyhow!("deriving the text twin: {e}"))?;
    let mut out = String::with_capacity(raw.len() + raw.len() / 8);
    for line in raw.lines() {
        let line = line.trim_end();
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
    Ok(out)
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
        (title.trim().to_string(), ())
    }
    fn header_prefix(&self, _level: usize) -> String {
        String::new()
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
        assert!(text.contains("Title"), "{text}");
        assert!(text.contains("Read the post (https://e.org/a)."), "{text}");
        assert!(text.contains("* one\n* two"), "{text}");
        assert!(text.contains("Logo"), "{text}");
        assert!(text.contains("cell"), "{text}");
    }
}
