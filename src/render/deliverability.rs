//! Deliverability findings for a compiled issue (TOML or MJML alike): what
//! mailbox providers and spam filters will hold against the message, each
//! with its reason and, where it applies, the line of the issue file. The
//! checks read the compiled HTML, the text twin, the subject and the
//! configuration; they never change the issue.

use super::design::attr;
use super::placeholder::CompiledIssue;
use super::Issue;
use crate::config::Settings;

/// Gmail clips a message's HTML above this many bytes ("[Message clipped]"),
/// hiding the footer with the unsubscribe link.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;
/// Subjects longer than this are cut off in most inbox lists.
pub const SUBJECT_MAX_CHARS: usize = 70;
/// Fewer words of text than this per image reads as an image-only mail.
pub const WORDS_PER_IMAGE: usize = 20;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Line of the issue file it concerns, when one does.
    pub line: Option<usize>,
    /// Short name, e.g. `image-alt`.
    pub code: &'static str,
    /// What was found and why it matters.
    pub message: String,
}

/// All findings for an issue, in a stable order.
pub fn check(issue: &Issue, compiled: &CompiledIssue, settings: &Settings) -> Vec<Finding> {
    let source = String::from_utf8_lossy(issue.source_bytes());
    let line_of = |needle: &str| -> Option<usize> {
        if needle.is_empty() {
            return None;
        }
        source
            .find(needle)
            .map(|at| source[..at].matches('\n').count() + 1)
    };
    let mut out = Vec::new();
    let mut add = |line: Option<usize>, code: &'static str, message: String| {
        out.push(Finding {
            line,
            code,
            message,
        })
    };
    let html = &compiled.html;

    if html.len() > GMAIL_CLIP_BYTES {
        add(
            None,
            "html-size",
            format!(
                "the HTML is {} KB; Gmail clips messages above 102 KB, hiding the rest (and the unsubscribe link) behind \"View entire message\"",
                html.len().div_ceil(1024)
            ),
        );
    }

    let lower = html.to_ascii_lowercase();
    let mut images = 0;
    for tag in tags(&lower, "img") {
        images += 1;
        let src = attr(tag, "src").unwrap_or("");
        let line = line_of(src);
        match attr(tag, "alt") {
            Some(a) if !a.trim().is_empty() => {}
            _ => add(
                line,
                "image-alt",
                format!("image {src} has no alt text: clients that block images show nothing in its place, and filters count images without text"),
            ),
        }
        if attr(tag, "width").is_none() && !tag.contains("width:") {
            add(
                line,
                "image-width",
                format!("image {src} has no width: Outlook shows it at its full size and the layout breaks"),
            );
        }
        if src.starts_with("http://") {
            add(
                line,
                "image-http",
                format!("image {src} is loaded over http://: clients show a warning or block it; use https://"),
            );
        }
    }

    for tag in tags(&lower, "a") {
        let Some(href) = attr(tag, "href") else {
            continue;
        };
        let line = line_of(href);
        if href.starts_with("http://") {
            add(
                line,
                "link-http",
                format!("link {href} uses http://: filters and browsers treat unencrypted links as less trustworthy; use https://"),
            );
        }
        if let Some(host) = href
            .strip_prefix("http://")
            .or_else(|| href.strip_prefix("https://"))
            .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""))
        {
            let host = host.rsplit('@').next().unwrap_or(host);
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.split(']').next())
                .unwrap_or_else(|| host.split(':').next().unwrap_or(host));
            if bare.parse::<std::net::IpAddr>().is_ok() {
                add(
                    line,
                    "link-ip",
                    format!("link {href} points to a raw IP address: a classic phishing sign that filters score; use a domain name"),
                );
            }
        }
    }

    let words = compiled
        .text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic) && !w.contains("://"))
        .count();
    if images > 0 && words < images * WORDS_PER_IMAGE {
        add(
            None,
            "text-image-balance",
            format!("{words} words of text for {images} images: mostly-image mail is a spam sign and unreadable with images off; aim for at least {WORDS_PER_IMAGE} words per image"),
        );
    }

    for (at, _) in lower.match_indices("display:none") {
        let start = lower[..at].rfind('<').unwrap_or(0);
        let end = lower[at..].find('>').map(|e| at + e).unwrap_or(lower.len());
        let tag = &lower[start..end];
        if let Some(style) = attr(tag, "style") {
            let compact: String = style.chars().filter(|c| !c.is_whitespace()).collect();
            if ["color:#fff;", "color:#ffffff", "color:white"]
                .iter()
                .any(|c| compact.contains(c) || compact.ends_with(c.trim_end_matches(';')))
            {
                add(
                    line_of(&html[start..end]).or_else(|| line_of("display:none")),
                    "hidden-low-contrast",
                    "a hidden block (the preheader?) is styled as white text: filters read it as text hidden by low contrast (SpamAssassin HTML_FONT_LOW_CONTRAST); hide it with display:none alone".to_string(),
                );
            }
        }
    }

    if settings.dkim.is_empty() {
        add(
            None,
            "dkim",
            "no [dkim] in the configuration: Gmail and Yahoo require bulk senders to sign mail (DKIM aligned with the From domain)".to_string(),
        );
    }
    if !settings.http.public_base_url.starts_with("https://") {
        add(
            None,
            "list-unsubscribe",
            format!("http.public_base_url ({}) is not https: the List-Unsubscribe link and one-click List-Unsubscribe-Post that Gmail and Yahoo require need an https address", settings.http.public_base_url),
        );
    }

    let subject = &compiled.subject;
    let subject_line = line_of(subject);
    let chars = subject.chars().count();
    if chars > SUBJECT_MAX_CHARS {
        add(
            subject_line,
            "subject-length",
            format!("the subject is {chars} characters: inbox lists cut it off after about {SUBJECT_MAX_CHARS}"),
        );
    }
    let shouting: Vec<&str> = subject
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| {
            w.chars().filter(|c| c.is_alphabetic()).count() >= 4
                && w.chars().all(|c| !c.is_lowercase())
                && w.chars().any(char::is_uppercase)
        })
        .collect();
    if !shouting.is_empty() {
        add(
            subject_line,
            "subject-caps",
            format!(
                "ALL-CAPS words in the subject ({}): filters score shouting subjects",
                shouting.join(", ")
            ),
        );
    }
    out
}

/// The opening tags `<name …>` of a lower-cased document (without `>`).
fn tags<'a>(lower: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}");
    let mut from = 0;
    std::iter::from_fn(move || loop {
        let at = from + lower[from..].find(&open)?;
        let after = lower.as_bytes().get(at + open.len()).copied();
        let end = lower[at..].find('>').map(|e| at + e).unwrap_or(lower.len());
        from = end.max(at + 1);
        if after.is_some_and(|b| b.is_ascii_whitespace() || b == b'>' || b == b'/') {
            return Some(&lower[at..end]);
        }
    })
}
