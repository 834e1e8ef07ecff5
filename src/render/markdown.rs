//! Markdown bodies: validated once (absolute links, no raw HTML), then
//! rendered two ways from the same events — HTML for the MJML layout and
//! wrapped plain text for the text twin. Neither output is scraped from the
//! other.

use pulldown_cmark::{html, CowStr, Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd};

use super::wrap::{wrap_into, WIDTH};

/// Markdown source whose links are absolute and which holds no raw HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markdown(String);

/// Why a Markdown body was refused, and where (byte offset in the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkdownError {
    pub offset: usize,
    pub message: String,
}

fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH
}

/// The deepest nesting of block quotes and lists a body may have.
pub const MAX_NESTING: usize = 16;
/// The largest Markdown body, in bytes.
pub const MAX_BODY_BYTES: usize = 100 * 1024;

/// Refuse bodies that are too large or nested too deeply before the parser
/// sees them (a 20,000-deep quote overflowed the stack; deep emphasis took
/// seconds). Nesting is estimated per line from its container markers
/// (`>`, list bullets and numbers) and its indentation; inline nesting is
/// checked on the parsed events.
fn check_shape(source: &str) -> Result<(), MarkdownError> {
    if source.len() > MAX_BODY_BYTES {
        return Err(MarkdownError {
            offset: 0,
            message: format!(
                "is {} KiB of Markdown; at most {} KiB are allowed",
                source.len() / 1024,
                MAX_BODY_BYTES / 1024
            ),
        });
    }
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let depth = nesting_of(line);
        if depth > MAX_NESTING {
            return Err(MarkdownError {
                offset,
                message: format!(
                    "quotes or lists nested {depth} levels deep; at most {MAX_NESTING} are allowed"
                ),
            });
        }
        offset += line.len();
    }
    Ok(())
}

/// Container depth a line opens: its `>` and list markers, plus one level
/// per four columns of indentation (nested list items).
fn nesting_of(line: &str) -> usize {
    let bytes = line.as_bytes();
    let mut depth = 0;
    let mut columns = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // Indentation before the first marker nests list items.
            b' ' if depth == 0 => columns += 1,
            b'\t' if depth == 0 => columns += 4,
            b' ' | b'\t' => {}
            b'>' => depth += 1,
            b'-' | b'*' | b'+' if bytes.get(i + 1).is_some_and(|c| *c == b' ' || *c == b'\t') => {
                depth += 1
            }
            b'0'..=b'9' => {
                let digits = bytes[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                match bytes.get(i + digits) {
                    Some(b'.' | b')')
                        if bytes
                            .get(i + digits + 1)
                            .is_some_and(|c| *c == b' ' || *c == b'\t') =>
                    {
                        depth += 1;
                        i += digits;
                    }
                    _ => break,
                }
            }
            _ => break,
        }
        i += 1;
    }
    depth + columns / 4
}

impl Markdown {
    pub fn parse(source: &str) -> Result<Markdown, MarkdownError> {
        check_shape(source)?;
        let mut depth = 0usize;
        for (event, range) in Parser::new_ext(source, options()).into_offset_iter() {
            let bad = |message: String| {
                Err(MarkdownError {
                    offset: range.start,
                    message,
                })
            };
            // Inline nesting (emphasis in emphasis…) is only known after
            // parsing; the HTML and MJML passes recurse on it.
            match &event {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > 2 * MAX_NESTING {
                return bad(format!(
                    "elements nested more than {} levels deep",
                    2 * MAX_NESTING
                ));
            }
            match event {
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    ..
                }) if link_type != LinkType::Email
                    && super::checks::check_url(&dest_url, true).is_err() =>
                {
                    return bad(format!(
                        "link `{dest_url}` is not an absolute http(s):// or mailto: URL"
                    ));
                }
                Event::Start(Tag::Image { dest_url, .. })
                    if super::checks::check_url(&dest_url, false).is_err() =>
                {
                    return bad(format!(
                        "image `{dest_url}` is not an absolute http(s):// URL"
                    ));
                }
                Event::Text(t) | Event::Code(t)
                    if super::placeholder::reserved_outside_attr_tokens(&t) =>
                {
                    return bad(super::placeholder::RESERVED.to_string());
                }
                Event::Html(h) | Event::InlineHtml(h) => {
                    return bad(format!(
                        "raw HTML `{}` is not allowed in Markdown; write Markdown instead",
                        h.trim()
                    ));
                }
                _ => {}
            }
        }
        Ok(Markdown(source.to_string()))
    }

    /// HTML for the layout. `lead` (a dateline) is set in bold at the start
    /// of the first paragraph. Raw HTML would be escaped, never passed on.
    pub fn to_html(&self, lead: Option<&str>) -> String {
        let mut out = String::with_capacity(self.0.len() * 2);
        html::push_html(&mut out, with_lead(&self.0, lead).into_iter());
        out
    }

    /// Plain text wrapped at [`WIDTH`] columns; links as `text (url)`.
    pub fn to_text(&self, lead: Option<&str>) -> String {
        let mut r = TextRenderer::default();
        for event in with_lead(&self.0, lead) {
            r.event(event);
        }
        r.finish()
    }
}

/// The body's events with `lead – ` injected into the first paragraph and
/// any raw HTML turned into text.
fn with_lead<'a>(source: &'a str, lead: Option<&'a str>) -> Vec<Event<'a>> {
    let mut events = Vec::new();
    let mut pending = lead;
    for event in Parser::new_ext(source, options()) {
        let event = match event {
            Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
            other => other,
        };
        let first_paragraph = matches!(event, Event::Start(Tag::Paragraph));
        events.push(event);
        if first_paragraph {
            if let Some(lead) = pending.take() {
                events.push(Event::Start(Tag::Strong));
                events.push(Event::Text(CowStr::Borrowed(lead)));
                events.push(Event::End(TagEnd::Strong));
                events.push(Event::Text(CowStr::Borrowed(" \u{2013} ")));
            }
        }
    }
    events
}

/// A container that prefixes lines: a list item or a block quote.
struct Container {
    first: String,
    rest: String,
    used_first: bool,
}

#[derive(Default)]
struct TextRenderer {
    out: String,
    /// Inline text of the block being built.
    buf: String,
    containers: Vec<Container>,
    /// Next number per open list (None: bullets).
    lists: Vec<Option<u64>>,
    /// Destinations of open links and where their text starts in `buf`.
    links: Vec<(String, usize)>,
    in_code_block: bool,
    heading: Option<HeadingLevel>,
}

impl TextRenderer {
    fn prefixes(&mut self) -> (String, String) {
        let mut first = String::new();
        let mut rest = String::new();
        for c in &mut self.containers {
            first.push_str(if c.used_first { &c.rest } else { &c.first });
            rest.push_str(&c.rest);
            c.used_first = true;
        }
        (first, rest)
    }

    /// Write the pending inline text as one wrapped block.
    fn flush(&mut self, blank_after: bool) {
        let text = std::mem::take(&mut self.buf);
        if text.trim().is_empty() {
            return;
        }
        let (first, rest) = self.prefixes();
        let start = self.out.len();
        wrap_into(&mut self.out, text.trim(), WIDTH, &first, &rest);
        if let Some(level) = self.heading {
            let len = self.out[start..]
                .lines()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0);
            let mark = if level == HeadingLevel::H1 { '=' } else { '-' };
            self.out.push_str(&rest);
            self.out
                .extend(std::iter::repeat(mark).take(len.saturating_sub(rest.len())));
            self.out.push('\n');
        }
        if blank_after {
            self.blank_line();
        }
    }

    fn blank_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if self.in_code_block {
                    let (first, rest) = self.prefixes();
                    for (i, line) in t.lines().enumerate() {
                        self.out.push_str(if i == 0 { &first } else { &rest });
                        self.out.push_str("    ");
                        self.out.push_str(line);
                        self.out.push('\n');
                    }
                } else {
                    self.buf.push_str(&t);
                }
            }
            Event::Code(t) => self.buf.push_str(&t),
            Event::InlineMath(t) | Event::DisplayMath(t) => self.buf.push_str(&t),
            Event::Html(t) | Event::InlineHtml(t) => self.buf.push_str(&t),
            Event::FootnoteReference(t) => {
                self.buf.push('[');
                self.buf.push_str(&t);
                self.buf.push(']');
            }
            Event::SoftBreak => self.buf.push(' '),
            Event::HardBreak => self.buf.push('\n'),
            Event::Rule => {
                self.flush(true);
                let (first, _) = self.prefixes();
                self.out.push_str(&first);
                self.out.push_str("----------");
                self.out.push('\n');
                self.blank_line();
            }
            Event::TaskListMarker(done) => self.buf.push_str(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {}
            Tag::Heading { level, .. } => {
                self.flush(true);
                self.heading = Some(level);
            }
            Tag::BlockQuote(_) => {
                self.flush(true);
                self.containers.push(Container {
                    first: "> ".into(),
                    rest: "> ".into(),
                    used_first: false,
                });
            }
            Tag::CodeBlock(_) => {
                self.flush(true);
                self.in_code_block = true;
            }
            Tag::List(start) => {
                self.flush(false);
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush(false);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "- ".to_string(),
                };
                let rest = " ".repeat(marker.chars().count());
                self.containers.push(Container {
                    first: marker,
                    rest,
                    used_first: false,
                });
            }
            Tag::Link { dest_url, .. } => {
                self.links.push((dest_url.into_string(), self.buf.len()));
            }
            Tag::Image { dest_url, .. } => {
                self.buf.push('[');
                self.links.push((dest_url.into_string(), self.buf.len()));
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.flush(true),
            TagEnd::Heading(_) => {
                self.flush(true);
                self.heading = None;
            }
            TagEnd::BlockQuote(_) => {
                self.flush(true);
                self.containers.pop();
            }
            TagEnd::CodeBlock => {
                self.in_code_block = false;
                self.blank_line();
            }
            TagEnd::List(_) => {
                self.flush(false);
                self.lists.pop();
                self.blank_line();
            }
            TagEnd::Item => {
                self.flush(false);
                self.containers.pop();
            }
            TagEnd::Link => {
                if let Some((dest, start)) = self.links.pop() {
                    let text = self.buf[start..].trim().to_string();
                    let bare = dest.strip_prefix("mailto:").unwrap_or(&dest);
                    if text.is_empty() {
                        self.buf.push_str(&dest);
                    } else if text != dest && text != bare {
                        self.buf.push_str(" (");
                        self.buf.push_str(&dest);
                        self.buf.push(')');
                    }
                }
            }
            TagEnd::Image => {
                if let Some((dest, _)) = self.links.pop() {
                    self.buf.push_str("] (");
                    self.buf.push_str(&dest);
                    self.buf.push(')');
                }
            }
            _ => {}
        }
    }

    fn finish(mut self) -> String {
        self.flush(true);
        let trimmed = self.out.trim_end().len();
        self.out.truncate(trimmed);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_raw_html_and_script_urls_are_refused() {
        assert!(Markdown::parse("see [x](/about)").is_err());
        assert!(Markdown::parse("see [x](javascript:alert(1))").is_err());
        assert!(Markdown::parse("a <b>bold</b> claim").is_err());
        assert!(Markdown::parse("![p](photo.jpg)").is_err());
        let err = Markdown::parse("line one\n\nsee [x](/about)").unwrap_err();
        assert_eq!(err.offset, 14);
        assert!(Markdown::parse("a < b and [ok](https://example.org)").is_ok());
        assert!(Markdown::parse("forged &#x27E6;herald:email&#x27E7;").is_err());
    }

    #[test]
    fn html_escapes_text_and_sets_the_dateline_in_bold() {
        let md = Markdown::parse("Fish & chips < 5\n\nSecond.").unwrap();
        let html = md.to_html(Some("Tripoli"));
        assert_eq!(
            html,
            "<p><strong>Tripoli</strong> \u{2013} Fish &amp; chips &lt; 5</p>\n<p>Second.</p>\n"
        );
    }

    #[test]
    fn text_shows_links_as_text_then_url_and_never_breaks_urls() {
        let long = format!("https://example.org/{}", "a".repeat(90));
        let md = Markdown::parse(&format!(
            "Read [the report]({long}) and <https://example.org/b> today."
        ))
        .unwrap();
        let text = md.to_text(None);
        assert!(text.contains(&long), "{text}");
        assert!(text.contains(&format!("the report\n({long})")), "{text}");
        assert!(text.contains("https://example.org/b today."), "{text}");
        assert!(!text.contains("https://example.org/b (https"), "{text}");
        for line in text.lines() {
            assert!(
                line.chars().count() <= WIDTH || line.contains("https://"),
                "{line}"
            );
        }
    }

    #[test]
    fn text_lists_quotes_and_headings() {
        let md =
            Markdown::parse("## Facts\n\n- one\n- two\n\n> quoted\n\n1. first\n2. second").unwrap();
        assert_eq!(
            md.to_text(None),
            "Facts\n-----\n\n- one\n- two\n\n> quoted\n\n1. first\n2. second"
        );
    }
}
