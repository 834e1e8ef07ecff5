//! Per-recipient placeholders. Templates write `{{ recipient.name }}` etc.;
//! compilation leaves a sentinel `⟦herald:KEY⟧` (`⟦herald:name|fallback⟧`
//! for the name) in the documents. The brackets are U+27E6/U+27E7, which no
//! template syntax, MJML or HTML uses and which issue files and templates may
//! not contain (they are refused), so content can never forge or break a
//! placeholder. They are printable, so mrml copies them unchanged into
//! attribute values (it escapes non-printable characters there).
//! [`CompiledIssue::prepare`] splits the compiled documents at the sentinels
//! once; [`Prepared::personalise_into`] then only copies slices and escaped
//! values, never recompiling anything.
//!
//! Subscriber attributes use `⟦herald:attr:KEY⟧` (`⟦herald:attr:KEY|fallback⟧`
//! with a default); their values are looked up by key per recipient.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::domain::is_attr_key;

const OPEN: &str = "\u{27E6}herald:";
const CLOSE: char = '\u{27E7}';
const FALLBACK: char = '|';
const ATTR: &str = "attr:";

/// A subscriber's attributes (the JSON object stored with them).
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// The sentinel for attribute `key` (a valid [`is_attr_key`]), with an
/// optional fallback already in the document's escaping.
pub fn attr_sentinel(key: &str, fallback: Option<&str>) -> String {
    let mut s = String::with_capacity(OPEN.len() + ATTR.len() + key.len() + 8);
    s.push_str(OPEN);
    s.push_str(ATTR);
    s.push_str(key);
    if let Some(f) = fallback {
        s.push(FALLBACK);
        s.push_str(f);
    }
    s.push(CLOSE);
    s
}

/// The text a subscriber attribute puts in a document: strings (unless
/// blank), numbers and booleans; anything else counts as missing.
pub fn attr_value<'v>(attributes: Option<&'v Attributes>, key: &str) -> Option<Cow<'v, str>> {
    match attributes?.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s)),
        serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
        serde_json::Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// Characters reserved for placeholders (⟦ and ⟧).
pub fn is_reserved_char(c: char) -> bool {
    matches!(c, '\u{27E6}' | CLOSE)
}

/// How reserved characters are described in messages.
pub const RESERVED: &str =
    "the characters \u{27E6} and \u{27E7} (U+27E6, U+27E7) are reserved for placeholders";

/// What stands for the `n`th attribute placeholder of the issue's text
/// until the compiled documents are complete: no spaces and nothing
/// Markdown or wrapping would touch, unlike the final sentinel.
pub(crate) fn attr_token(n: usize) -> String {
    format!("\u{27E6}herald:a{n}\u{27E7}")
}

/// Whether `t` holds a reserved character that is not part of an
/// attribute token (which only the issue file's validation puts there).
pub(crate) fn reserved_outside_attr_tokens(t: &str) -> bool {
    let mut rest = t;
    while let Some(i) = rest.find(is_reserved_char) {
        let after = &rest[i..];
        let token_len = after
            .strip_prefix("\u{27E6}herald:a")
            .and_then(|r| {
                let digits = r.bytes().take_while(u8::is_ascii_digit).count();
                (digits > 0 && r[digits..].starts_with('\u{27E7}')).then_some(digits)
            })
            .map(|d| "\u{27E6}herald:a".len() + d + '\u{27E7}'.len_utf8());
        match token_len {
            Some(n) => rest = &after[n..],
            None => return true,
        }
    }
    false
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The subscriber's name, or the fallback text when they have none.
    Name,
    Email,
    UnsubscribeUrl,
    ViewUrl,
}

impl Slot {
    pub const ALL: [Slot; 4] = [Slot::Name, Slot::Email, Slot::UnsubscribeUrl, Slot::ViewUrl];

    pub fn key(self) -> &'static str {
        match self {
            Slot::Name => "name",
            Slot::Email => "email",
            Slot::UnsubscribeUrl => "unsubscribe_url",
            Slot::ViewUrl => "view_url",
        }
    }

    fn from_key(key: &str) -> Option<Slot> {
        Slot::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The sentinel a template puts in the document (`fallback` only for
    /// [`Slot::Name`]).
    pub fn sentinel(self, fallback: Option<&str>) -> String {
        let mut s = String::new();
        s.push_str(OPEN);
        s.push_str(self.key());
        if let Some(f) = fallback {
            s.push(FALLBACK);
            s.push_str(f);
        }
        s.push(CLOSE);
        s
    }
}

/// The compiled issue: subject, HTML and text, the last two still holding
/// placeholders. Compiled once per issue; stored as is to resume a send
/// byte-identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledIssue {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Per-recipient values, all plain text; escaping is done here.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub unsubscribe_url: &'a str,
    pub view_url: &'a str,
    /// The subscriber's attributes (`None`: no subscriber behind the copy).
    pub attributes: Option<&'a Attributes>,
}

impl<'a> Recipient<'a> {
    fn value(&self, what: What, doc: &str) -> Option<Cow<'a, str>> {
        match what {
            What::Slot(Slot::Name) => self
                .name
                .filter(|n| !n.trim().is_empty())
                .map(Cow::Borrowed),
            What::Slot(Slot::Email) => Some(Cow::Borrowed(self.email)),
            What::Slot(Slot::UnsubscribeUrl) => Some(Cow::Borrowed(self.unsubscribe_url)),
            What::Slot(Slot::ViewUrl) => Some(Cow::Borrowed(self.view_url)),
            What::Attr(a, b) => attr_value(self.attributes, &doc[a..b]),
        }
    }
}

/// What a placeholder found in a document stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    Slot(Slot),
    /// A subscriber attribute; the range is its key in the document.
    Attr(usize, usize),
}

#[derive(Debug, Clone)]
enum Piece {
    /// A byte range of the document.
    Literal(usize, usize),
    /// A placeholder; the range is its fallback text (already in the
    /// document's own escaping).
    Slot(What, usize, usize),
}

#[derive(Debug, Clone)]
struct Split {
    doc: String,
    pieces: Vec<Piece>,
    /// Bytes of literal text, to reserve once per copy.
    literal_len: usize,
}

/// A placeholder found in a document: its slot, the byte range of the whole
/// sentinel and of its fallback text.
pub(crate) struct Found {
    pub(crate) what: What,
    pub(crate) start: usize,
    end: usize,
    fallback: (usize, usize),
    /// Whether the sentinel has a fallback part (possibly empty).
    pub(crate) has_fallback: bool,
}

impl Found {
    /// How a template names this placeholder, for messages.
    pub(crate) fn describe(&self, doc: &str) -> String {
        match self.what {
            What::Slot(slot) => format!("recipient.{}", slot.key()),
            What::Attr(a, b) => format!("recipient.attributes.{}", &doc[a..b]),
        }
    }
}

/// The well-formed placeholders of `doc`, in order. Unknown or malformed
/// markers are not placeholders (they stay literal text).
pub(crate) fn scan(doc: &str) -> impl Iterator<Item = Found> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || loop {
        // A char search (memchr on one byte), then the rest of the marker.
        let open = pos + doc[pos..].find('\u{27E6}')?;
        if !doc[open..].starts_with(OPEN) {
            pos = open + '\u{27E6}'.len_utf8();
            continue;
        }
        let body_start = open + OPEN.len();
        let close = body_start + doc[body_start..].find(CLOSE)?;
        let body = &doc[body_start..close];
        let (key, fallback) = match body.find(FALLBACK) {
            Some(i) => (&body[..i], (body_start + i + FALLBACK.len_utf8(), close)),
            None => (body, (close, close)),
        };
        pos = close + CLOSE.len_utf8();
        if body.contains('\u{27E6}') {
            continue;
        }
        let what = match key.strip_prefix(ATTR) {
            Some(attr) if is_attr_key(attr) => {
                let a = body_start + ATTR.len();
                Some(What::Attr(a, a + attr.len()))
            }
            Some(_) => None,
            None => Slot::from_key(key).map(What::Slot),
        };
        if let Some(what) = what {
            return Some(Found {
                what,
                start: open,
                end: pos,
                fallback,
                has_fallback: key.len() < body.len(),
            });
        }
    })
}

/// The placeholders of a compiled document, in order.
pub(crate) fn slots_in(doc: &str) -> Vec<Slot> {
    scan(doc)
        .filter_map(|f| match f.what {
            What::Slot(s) => Some(s),
            What::Attr(..) => None,
        })
        .collect()
}

/// The attribute keys a compiled document uses, each with whether every
/// use of it has a fallback.
pub fn attributes_in(doc: &str, out: &mut std::collections::BTreeMap<String, bool>) {
    for f in scan(doc) {
        if let What::Attr(a, b) = f.what {
            let all = out.entry(doc[a..b].to_string()).or_insert(true);
            *all &= f.has_fallback;
        }
    }
}

impl Split {
    fn new(doc: &str) -> Split {
        let mut pieces = Vec::new();
        let mut literal_len = 0;
        let mut lit_start = 0;
        for f in scan(doc) {
            if lit_start < f.start {
                pieces.push(Piece::Literal(lit_start, f.start));
                literal_len += f.start - lit_start;
            }
            pieces.push(Piece::Slot(f.what, f.fallback.0, f.fallback.1));
            lit_start = f.end;
        }
        if lit_start < doc.len() {
            pieces.push(Piece::Literal(lit_start, doc.len()));
            literal_len += doc.len() - lit_start;
        }
        Split {
            doc: doc.to_string(),
            pieces,
            literal_len,
        }
    }

    /// Walk one recipient's document as chunks: static text (identified by
    /// piece index, the same for every recipient) and filled values.
    fn chunks(
        &self,
        r: &Recipient<'_>,
        html: bool,
        scratch: &mut String,
        f: &mut dyn FnMut(Chunk<'_>),
    ) {
        for (i, piece) in self.pieces.iter().enumerate() {
            match *piece {
                Piece::Literal(a, b) => f(Chunk::Static(i, &self.doc[a..b])),
                Piece::Slot(what, a, b) => match r.value(what, &self.doc) {
                    Some(v) if html => {
                        scratch.clear();
                        html_escape::encode_quoted_attribute_to_string(&*v, scratch);
                        f(Chunk::Value(scratch));
                    }
                    Some(v) => f(Chunk::Value(&v)),
                    None if a < b => f(Chunk::Static(i, &self.doc[a..b])),
                    None => {}
                },
            }
        }
    }

    fn fill(&self, r: &Recipient<'_>, out: &mut String, html: bool) {
        out.clear();
        out.reserve(self.literal_len + 256);
        for piece in &self.pieces {
            match *piece {
                Piece::Literal(a, b) => out.push_str(&self.doc[a..b]),
                Piece::Slot(what, a, b) => match r.value(what, &self.doc) {
                    Some(v) if html => {
                        html_escape::encode_quoted_attribute_to_string(&*v, out);
                    }
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&self.doc[a..b]),
                },
            }
        }
    }
}

/// A piece of one recipient's copy, as [`Prepared::html_chunks`] and
/// [`Prepared::text_chunks`] yield them.
#[derive(Debug, Clone, Copy)]
pub enum Chunk<'a> {
    /// Text that is the same for every recipient; `usize` identifies it
    /// (below [`Prepared::html_pieces`] / [`Prepared::text_pieces`]), so a
    /// caller can cache work done on it.
    Static(usize, &'a str),
    /// A recipient's value, already escaped for the document.
    Value(&'a str),
}

/// A compiled issue split at its placeholders, ready for cheap per-recipient
/// fills.
#[derive(Debug, Clone)]
pub struct Prepared {
    subject: Split,
    html: Split,
    text: Split,
}

impl CompiledIssue {
    pub fn prepare(&self) -> Prepared {
        Prepared {
            subject: Split::new(&self.subject),
            html: Split::new(&self.html),
            text: Split::new(&self.text),
        }
    }
}

impl Prepared {
    /// The subject as compiled (placeholders still in it).
    pub fn subject(&self) -> &str {
        &self.subject.doc
    }

    /// One recipient's subject (plain text, one line: a control character
    /// in an attribute value becomes a space, so no value can add a header).
    pub fn subject_for(&self, r: &Recipient<'_>) -> String {
        let mut out = String::new();
        self.subject.fill(r, &mut out, false);
        if out.contains(char::is_control) {
            out = out
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
        }
        out
    }

    /// Whether the subject is the same for every recipient.
    pub fn subject_is_static(&self) -> bool {
        self.subject
            .pieces
            .iter()
            .all(|p| matches!(p, Piece::Literal(..)))
    }

    /// Fill one recipient's values into `html` and `text` (both cleared
    /// first). Values are HTML-escaped in the HTML; the text gets them as
    /// they are.
    pub fn personalise_into(&self, r: &Recipient<'_>, html: &mut String, text: &mut String) {
        self.html.fill(r, html, true);
        self.text.fill(r, text, false);
    }

    /// One recipient's HTML as chunks, in order (concatenated, they equal
    /// the HTML [`Prepared::personalise_into`] builds).
    pub fn html_chunks(&self, r: &Recipient<'_>, f: &mut dyn FnMut(Chunk<'_>)) {
        let mut scratch = String::new();
        self.html.chunks(r, true, &mut scratch, f);
    }

    /// One recipient's plain text as chunks, in order.
    pub fn text_chunks(&self, r: &Recipient<'_>, f: &mut dyn FnMut(Chunk<'_>)) {
        let mut scratch = String::new();
        self.text.chunks(r, false, &mut scratch, f);
    }

    /// Number of distinct static chunk ids of the HTML.
    pub fn html_pieces(&self) -> usize {
        self.html.pieces.len()
    }

    /// Number of distinct static chunk ids of the text.
    pub fn text_pieces(&self) -> usize {
        self.text.pieces.len()
    }

    /// `(html, text)` for one recipient.
    pub fn personalise(&self, r: &Recipient<'_>) -> (String, String) {
        let mut html = String::new();
        let mut text = String::new();
        self.personalise_into(r, &mut html, &mut text);
        (html, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_personalised_copy() {
        let p = compiled().prepare();
        for name in [Some("Zoë <b>&"), None] {
            let r = recipient(name);
            let (html, text) = p.personalise(&r);
            let mut h = String::new();
            p.html_chunks(&r, &mut |c| match c {
                Chunk::Static(i, s) => {
                    assert!(i < p.html_pieces());
                    h.push_str(s)
                }
                Chunk::Value(v) => h.push_str(v),
            });
            let mut t = String::new();
            p.text_chunks(&r, &mut |c| match c {
                Chunk::Static(_, s) | Chunk::Value(s) => t.push_str(s),
            });
            assert_eq!(h, html);
            assert_eq!(t, text);
        }
    }

    fn recipient<'a>(name: Option<&'a str>) -> Recipient<'a> {
        Recipient {
            email: "ana@example.org",
            name,
            unsubscribe_url: "https://news.example.org/unsubscribe/T?a=1&b=2",
            view_url: "https://news.example.org/issues/x",
            attributes: None,
        }
    }

    fn compiled() -> CompiledIssue {
        CompiledIssue {
            subject: "S".into(),
            html: format!(
                "<p>Hello {}</p><a href=\"{}\">x</a>{}",
                Slot::Name.sentinel(Some("reader")),
                Slot::UnsubscribeUrl.sentinel(None),
                Slot::Email.sentinel(None)
            ),
            text: format!(
                "Hello {}\n{}\n",
                Slot::Name.sentinel(Some("reader")),
                Slot::UnsubscribeUrl.sentinel(None)
            ),
        }
    }

    #[test]
    fn fills_values_escaped_in_html_and_plain_in_text() {
        let p = compiled().prepare();
        let (html, text) = p.personalise(&recipient(Some("\"><img src=x>")));
        assert_eq!(
            html,
            "<p>Hello &quot;&gt;&lt;img src=x&gt;</p><a href=\"https://news.example.org/unsubscribe/T?a=1&amp;b=2\">x</a>ana@example.org"
        );
        assert_eq!(
            text,
            "Hello \"><img src=x>\nhttps://news.example.org/unsubscribe/T?a=1&b=2\n"
        );
    }

    #[test]
    fn missing_or_blank_name_gets_the_fallback() {
        let p = compiled().prepare();
        for name in [None, Some("  ")] {
            let (html, text) = p.personalise(&recipient(name));
            assert!(html.starts_with("<p>Hello reader</p>"), "{html}");
            assert!(text.starts_with("Hello reader\n"), "{text}");
        }
    }

    #[test]
    fn buffers_are_cleared_and_reused() {
        let p = compiled().prepare();
        let (mut h, mut t) = (String::from("old"), String::from("old"));
        p.personalise_into(&recipient(Some("A")), &mut h, &mut t);
        p.personalise_into(&recipient(Some("B")), &mut h, &mut t);
        assert!(h.starts_with("<p>Hello B</p>"));
        assert!(t.starts_with("Hello B\n"));
    }

    #[test]
    fn attributes_fill_html_escaped_text_verbatim_subject_on_one_line() {
        let c = CompiledIssue {
            subject: format!("News for {}", attr_sentinel("city", Some("you"))),
            html: format!(
                "<p>{}|{}</p>",
                attr_sentinel("city", Some("you &amp; yours")),
                attr_sentinel("n", None)
            ),
            text: format!(
                "{}|{}",
                attr_sentinel("city", Some("you & yours")),
                attr_sentinel("n", None)
            ),
        };
        let p = c.prepare();
        assert!(!p.subject_is_static());
        let attrs: Attributes =
            serde_json::from_str(r#"{"city": "<b>Kyiv</b>\r\nBcc: x@example.org", "n": 7}"#)
                .unwrap();
        let r = Recipient {
            attributes: Some(&attrs),
            ..recipient(None)
        };
        let (html, text) = p.personalise(&r);
        assert_eq!(
            html,
            "<p>&lt;b&gt;Kyiv&lt;/b&gt;\r\nBcc: x@example.org|7</p>"
        );
        assert_eq!(text, "<b>Kyiv</b>\r\nBcc: x@example.org|7");
        assert_eq!(
            p.subject_for(&r),
            "News for <b>Kyiv</b>  Bcc: x@example.org"
        );
        let blank: Attributes = serde_json::from_str(r#"{"city": "  ", "n": null}"#).unwrap();
        for attributes in [None, Some(&blank)] {
            let r = Recipient {
                attributes,
                ..recipient(None)
            };
            let (html, text) = p.personalise(&r);
            assert_eq!(html, "<p>you &amp; yours|</p>");
            assert_eq!(text, "you & yours|");
            assert_eq!(p.subject_for(&r), "News for you");
        }
        let mut used = std::collections::BTreeMap::new();
        attributes_in(&c.html, &mut used);
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            [("city".to_string(), true), ("n".to_string(), false)]
        );
    }

    #[test]
    fn unknown_or_unterminated_markers_stay_literal() {
        let doc = "a\u{27E6}herald:nope\u{27E7}b\u{27E6}herald:email".to_string();
        let c = CompiledIssue {
            subject: String::new(),
            html: doc.clone(),
            text: doc.clone(),
        };
        let (html, _) = c.prepare().personalise(&recipient(None));
        assert_eq!(html, doc);
    }
}
