//! What came back: one received message read with a real MIME parser
//! (`mail-parser`) and classified as a delivery status notification (RFC
//! 3464), a complaint (RFC 5965 ARF), a plain-text bounce that quotes the
//! original, an auto-reply (RFC 3834, vacation, challenge-response), or
//! something else. Pure: no database, no I/O.

use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};

/// What a report says happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The mailbox does not exist or is disabled: stop sending at once.
    Hard,
    /// Temporary or policy trouble (4.x.x, mailbox full, 5.7.x).
    Soft,
    /// A "still trying" notice (Action: delayed): changes nothing.
    Delayed,
    /// A spam complaint from a feedback loop.
    Complaint,
    /// A vacation or other automatic reply: never a bounce.
    AutoReply,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hard => "hard",
            Outcome::Soft => "soft",
            Outcome::Delayed => "delayed",
            Outcome::Complaint => "complaint",
            Outcome::AutoReply => "auto-reply",
        }
    }
}

/// One recipient's line in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub outcome: Outcome,
    /// The address the report names (Final-Recipient, Original-Rcpt-To…).
    pub recipient: Option<String>,
    /// Enhanced status code (`5.1.1`) or, failing that, the SMTP code.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

/// Everything a report offers for matching it to a delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: Vec<Entry>,
    /// Addresses the report was delivered to (To, Delivered-To,
    /// X-Original-To, Envelope-To): where a VERP token sits.
    pub delivered_to: Vec<String>,
    /// Message-IDs of the returned original (without angle brackets).
    pub original_message_ids: Vec<String>,
    /// List-Id values of the returned original.
    pub original_list_ids: Vec<String>,
    /// The report's own Message-ID.
    pub report_id: Option<String>,
    pub format: Format,
}

/// What kind of message it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    Dsn,
    Arf,
    PlainBounce,
    AutoReply,
    /// Not a bounce, complaint or auto-reply: left alone.
    #[default]
    Other,
}

/// Read and classify one message.
pub fn parse(raw: &[u8]) -> Report {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Report::default();
    };
    let mut report = Report {
        report_id: message.message_id().map(str::to_string),
        delivered_to: delivered_to(&message),
        ..Report::default()
    };
    let report_type = message
        .content_type()
        .filter(|ct| ct.ctype().eq_ignore_ascii_case("multipart"))
        .filter(|ct| {
            ct.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    collect_original(&message, &mut report);
    match report_type.as_deref() {
        Some("delivery-status") => {
            report.format = Format::Dsn;
            report.entries = dsn_entries(&message);
        }
        Some("feedback-report") => {
            report.format = Format::Arf;
            report.entries = arf_entries(&message);
        }
        // Mailer daemons mark their bounces Auto-Submitted too: a bounce
        // is recognised before an auto-reply.
        _ if looks_like_plain_bounce(&message) => {
            report.entries = plain_entries(&message, &mut report);
            report.format = if report.entries.is_empty() {
                Format::Other
            } else {
                Format::PlainBounce
            };
        }
        _ if is_auto_reply(&message) => {
            report.format = Format::AutoReply;
            report.entries = vec![Entry {
                outcome: Outcome::AutoReply,
                recipient: message
                    .from()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .map(str::to_string),
                status: None,
                diagnostic: message.subject().map(str::to_string),
            }];
            // An auto-reply names the message it answers in In-Reply-To.
            for id in text_list(message.in_reply_to()) {
                push_unique(&mut report.original_message_ids, id);
            }
        }
        _ => {}
    }
    report
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !value.is_empty() && !list.contains(&value) {
        list.push(value);
    }
}

fn text_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The addresses this message was delivered to, from the headers MTAs add.
fn delivered_to(message: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in message.headers_raw() {
        if [
            "to",
            "delivered-to",
            "x-original-to",
            "envelope-to",
            "x-envelope-to",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        {
            for addr in addresses_in(value) {
                push_unique(&mut out, addr);
            }
        }
    }
    out
}

/// `local@domain` tokens in free text (angle brackets and display names
/// dropped).
fn addresses_in(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || "<>,;\"'()[]".contains(c))
        .filter(|w| {
            w.contains('@')
                && !w.starts_with('@')
                && !w.ends_with('@')
                && w.rsplit_once('@').is_some_and(|(_, d)| d.contains('.'))
        })
        .map(|w| w.trim_end_matches('.').to_string())
        .collect()
}

/// Message-IDs and List-Ids of the returned original: a message/rfc822
/// part, text/rfc822-headers, or (plain bounces) header lines quoted in
/// the body.
fn collect_original(message: &Message<'_>, report: &mut Report) {
    for part in message.parts.iter().skip(1) {
        let (ctype, subtype) = match part.content_type() {
            Some(ct) => (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or("").to_ascii_lowercase(),
            ),
            None => continue,
        };
        match (&part.body, ctype.as_str(), subtype.as_str()) {
            (PartType::Message(original), _, _) => {
                if let Some(id) = original.message_id() {
                    push_unique(&mut report.original_message_ids, id.to_string());
                }
                quoted_headers(&String::from_utf8_lossy(original.raw_message()), report);
            }
            (_, "text", "rfc822-headers") | (_, "message", "rfc822-headers") => {
                quoted_headers(&String::from_utf8_lossy(part.contents()), report);
            }
            _ => {}
        }
    }
}

/// `Message-ID:` and `List-Id:` lines anywhere in `text` (quoted headers).
fn quoted_headers(text: &str, report: &mut Report) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_start_matches(['>', ' ']);
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        // A folded value continues on the next line.
        let mut value = value.trim().to_string();
        if value.is_empty() {
            if let Some(next) = lines.get(i + 1) {
                value = next.trim().to_string();
            }
        }
        if name.eq_ignore_ascii_case("message-id") {
            let id = value.trim_start_matches('<').trim_end_matches('>').trim();
            push_unique(&mut report.original_message_ids, id.to_string());
        } else if name.eq_ignore_ascii_case("list-id") {
            if let Some(id) = value.rsplit_once('<').map(|(_, r)| r.trim_end_matches('>')) {
                push_unique(&mut report.original_list_ids, id.trim().to_string());
            } else {
                push_unique(&mut report.original_list_ids, value.trim().to_string());
            }
        }
    }
}

/// The machine-readable part of a report (`message/delivery-status`,
/// `message/feedback-report`), as field blocks: one block for the message,
/// one per recipient.
fn report_blocks(message: &Message<'_>, subtype: &str) -> Vec<Vec<(String, String)>> {
    for part in &message.parts {
        let matches = part.content_type().is_some_and(|ct| {
            ct.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
                && (ct.ctype().eq_ignore_ascii_case("message")
                    || ct.ctype().eq_ignore_ascii_case("text"))
        });
        if matches {
            let body: Vec<u8> = match &part.body {
                // A parser may read the fields as a nested message: take
                // its raw bytes.
                PartType::Message(m) => m.raw_message().to_vec(),
                _ => part.contents().to_vec(),
            };
            return field_blocks(&String::from_utf8_lossy(&body));
        }
    }
    Vec::new()
}

/// RFC 822-style field blocks separated by blank lines, with folded
/// continuation lines joined. Names are lower-cased.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some(last) = block.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field<'b>(block: &'b [(String, String)], name: &str) -> Option<&'b str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `rfc822; ana@example.org` → `ana@example.org`.
fn address_field(value: &str) -> String {
    let v = value.split_once(';').map_or(value, |(_, a)| a).trim();
    v.trim_start_matches('<').trim_end_matches('>').to_string()
}

fn dsn_entries(message: &Message<'_>) -> Vec<Entry> {
    let mut entries = Vec::new();
    for block in report_blocks(message, "delivery-status") {
        let recipient = field(&block, "final-recipient")
            .or_else(|| field(&block, "original-recipient"))
            .map(address_field);
        let Some(recipient) = recipient else {
            continue; // the per-message block
        };
        let action = field(&block, "action").unwrap_or("").to_ascii_lowercase();
        let diagnostic = field(&block, "diagnostic-code").map(|d| {
            d.split_once(';')
                .map_or(d, |(_, rest)| rest)
                .trim()
                .to_string()
        });
        let status = field(&block, "status")
            .and_then(enhanced_code)
            .or_else(|| diagnostic.as_deref().and_then(status_in_text));
        let outcome = match action.as_str() {
            "delayed" => Outcome::Delayed,
            "delivered" | "relayed" | "expanded" => continue,
            _ => classify(status.as_deref(), diagnostic.as_deref()),
        };
        entries.push(Entry {
            outcome,
            recipient: Some(recipient),
            status,
            diagnostic,
        });
    }
    entries
}

fn arf_entries(message: &Message<'_>) -> Vec<Entry> {
    let blocks = report_blocks(message, "feedback-report");
    let fields: Vec<(String, String)> = blocks.into_iter().flatten().collect();
    let feedback_type = field(&fields, "feedback-type")
        .unwrap_or("abuse")
        .to_string();
    let recipient = field(&fields, "original-rcpt-to")
        .map(address_field)
        .or_else(|| {
            // Else the To of the returned message.
            message.parts.iter().find_map(|p| match &p.body {
                PartType::Message(m) => m
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .map(str::to_string),
                _ => None,
            })
        });
    vec![Entry {
        outcome: Outcome::Complaint,
        recipient,
        status: None,
        diagnostic: Some(format!("feedback-type: {feedback_type}")),
    }]
}

/// RFC 3834 and the common non-standard marks of an automatic reply,
/// including vacation notices and challenge-response requests.
fn is_auto_reply(message: &Message<'_>) -> bool {
    let header = |name: &str| {
        message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if header("auto-submitted").is_some_and(|v| v != "no") {
        return true;
    }
    if ["x-autoreply", "x-autorespond", "x-autoresponder"]
        .iter()
        .any(|h| header(h).is_some())
    {
        return true;
    }
    if header("precedence").is_some_and(|v| v == "auto_reply") {
        return true;
    }
    let subject = message.subject().unwrap_or("").to_ascii_lowercase();
    const MARKS: [&str; 9] = [
        "out of office",
        "out of the office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "auto reply",
        "vacation",
        "away from my",
        "abwesenheit",
    ];
    const CHALLENGE: [&str; 4] = [
        "please confirm your",
        "verify your email",
        "confirm your message",
        "sender verification",
    ];
    MARKS
        .iter()
        .chain(CHALLENGE.iter())
        .any(|m| subject.contains(m))
}

/// A bounce without a machine-readable part: sent by a mailer daemon, or
/// with a subject that says delivery failed.
fn looks_like_plain_bounce(message: &Message<'_>) -> bool {
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let daemon = from.starts_with("mailer-daemon@") || from.starts_with("postmaster@");
    let subject = message.subject().unwrap_or("").to_ascii_lowercase();
    let failure_subject = [
        "failure notice",
        "undeliver",
        "delivery status notification",
        "returned mail",
        "delivery failure",
        "mail delivery failed",
        "could not be delivered",
    ]
    .iter()
    .any(|m| subject.contains(m));
    // (A null Return-Path alone is no sign: RFC 3834 auto-replies use it.)
    daemon || failure_subject
}

/// qmail-style and other plain bounces: `<address>:` lines followed by the
/// reason, then the quoted original.
fn plain_entries(message: &Message<'_>, report: &mut Report) -> Vec<Entry> {
    let body: String = message
        .text_bodies()
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    // The original, quoted below a marker line or as a message/rfc822 part.
    quoted_headers(&body, report);
    // The explanation ends where the copy of the original starts (qmail,
    // Exim and most others say so in a marker line).
    let explanation = [
        "--- Below this line is a copy of the message",
        "------ This is a copy of the message",
        "----- Original message -----",
        "Original message follows",
    ]
    .iter()
    .filter_map(|m| body.find(m))
    .min()
    .map_or(body.as_str(), |at| &body[..at]);
    let mut entries = Vec::new();
    let lines: Vec<&str> = explanation.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        // qmail: `<a@b.org>:`; others: `a@b.org:`; Exim: an indented
        // bare address under "The following address(es) failed:".
        let candidate = t
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix(">:"))
            .or_else(|| t.strip_suffix(':').filter(|r| !r.contains(' ')))
            .or_else(|| {
                (line.starts_with([' ', '\t']) && !t.contains(' ') && !t.contains(':')).then_some(t)
            });
        let Some(addr) = candidate.filter(|a| a.contains('@')) else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let reason: String = lines[i + 1..]
            .iter()
            .take_while(|l| {
                let t = l.trim_start();
                // Exim continues with deeper indentation; qmail up to a blank.
                !t.is_empty() && !t.starts_with('<') && (indent == 0 || l.len() - t.len() > indent)
            })
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        let status = status_in_text(&reason);
        let outcome = classify(status.as_deref(), Some(&reason));
        entries.push(Entry {
            outcome,
            recipient: Some(addr.to_string()),
            status,
            diagnostic: (!reason.is_empty()).then_some(reason),
        });
    }
    if entries.is_empty() {
        // No recipient lines: one entry for the whole message, matched by
        // the quoted original, if it gives a failure code at all (a
        // daemon's notice without one is not a bounce).
        let Some(status) = status_in_text(explanation).filter(|s| !s.starts_with('2')) else {
            return entries;
        };
        let status = Some(status);
        entries.push(Entry {
            outcome: classify(status.as_deref(), Some(explanation)),
            recipient: None,
            status,
            diagnostic: message.subject().map(str::to_string),
        });
    }
    entries
}

/// `5.1.1` from a Status field (`5.1.1 (user unknown)` too).
fn enhanced_code(value: &str) -> Option<String> {
    let code = value.split_whitespace().next()?;
    let parts: Vec<&str> = code.split('.').collect();
    (parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())))
    .then(|| code.to_string())
}

/// The first enhanced status code in free text, else the first SMTP reply
/// code (`550`).
fn status_in_text(text: &str) -> Option<String> {
    let words = || text.split(|c: char| c.is_whitespace() || "();,:[]".contains(c));
    words().find_map(enhanced_code).or_else(|| {
        words()
            .find(|w| {
                w.len() == 3
                    && (w.starts_with('4') || w.starts_with('5'))
                    && w.bytes().all(|b| b.is_ascii_digit())
            })
            .map(str::to_string)
    })
}

/// Hard when the status says the mailbox does not exist or is disabled
/// (5.1.0-3, 5.1.6, 5.1.10, 5.2.1; a bare 550/551/553 whose text says so);
/// every other failure is soft (4.x.x, 5.2.2 mailbox full, 5.7.x policy).
pub fn classify(status: Option<&str>, diagnostic: Option<&str>) -> Outcome {
    const HARD: [&str; 7] = [
        "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1",
    ];
    match status {
        Some(s) if HARD.contains(&s) => Outcome::Hard,
        Some(s) if s.contains('.') => Outcome::Soft,
        Some("550" | "551" | "553") => {
            let text = diagnostic.unwrap_or("").to_ascii_lowercase();
            let gone = [
                "user unknown",
                "unknown user",
                "no such user",
                "does not exist",
                "mailbox unavailable",
                "invalid recipient",
                "recipient not found",
                "no mailbox",
                "address rejected",
            ];
            if gone.iter().any(|g| text.contains(g)) {
                Outcome::Hard
            } else {
                Outcome::Soft
            }
        }
        _ => Outcome::Soft,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_read_from_fields_and_text() {
        assert_eq!(enhanced_code("5.1.1"), Some("5.1.1".into()));
        assert_eq!(enhanced_code("5.1.10 (x)"), Some("5.1.10".into()));
        assert_eq!(enhanced_code("smtp; 550"), None);
        assert_eq!(
            status_in_text("smtp; 550 5.1.1 <a@b.c>: no"),
            Some("5.1.1".into())
        );
        assert_eq!(status_in_text("552 mailbox full"), Some("552".into()));
    }

    #[test]
    fn hard_means_the_mailbox_is_gone_and_everything_else_is_soft() {
        assert_eq!(classify(Some("5.1.1"), None), Outcome::Hard);
        assert_eq!(classify(Some("5.2.1"), None), Outcome::Hard);
        assert_eq!(classify(Some("5.2.2"), None), Outcome::Soft);
        assert_eq!(classify(Some("5.7.1"), None), Outcome::Soft);
        assert_eq!(classify(Some("4.4.1"), None), Outcome::Soft);
        assert_eq!(classify(Some("550"), Some("User unknown")), Outcome::Hard);
        assert_eq!(classify(Some("550"), Some("spam detected")), Outcome::Soft);
    }

    #[test]
    fn field_blocks_join_folded_lines() {
        let b = field_blocks("Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b.org\nDiagnostic-Code: smtp; 550\n  5.1.1 gone\n");
        assert_eq!(b.len(), 2);
        assert_eq!(
            field(&b[1], "diagnostic-code"),
            Some("smtp; 550 5.1.1 gone")
        );
    }
}
