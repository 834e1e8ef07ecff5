//! One recipient's MIME message: the headers a bulk sender must carry and a
//! multipart/alternative body (text/plain first, text/html last).

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::bad_input;

/// Everything that goes into one recipient's message.
#[derive(Debug, Clone)]
pub struct MessageSpec<'a> {
    pub from_name: &'a str,
    pub from_address: &'a str,
    pub to_address: &'a str,
    pub to_name: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    pub subject: &'a str,
    /// Without angle brackets: `local@domain`.
    pub message_id: &'a str,
    /// The https one-click URL.
    pub unsubscribe_url: &'a str,
    /// Optional `mailto:` fallback for List-Unsubscribe.
    pub unsubscribe_mailto: Option<&'a str>,
    /// `List-Id`, from [`list_id_header`].
    pub list_id: &'a ListIdHeader,
    pub feedback_id: Option<&'a str>,
    /// The envelope sender (MAIL FROM, so Return-Path) when it is not the
    /// From address: a VERP bounce address.
    pub envelope_from: Option<&'a str>,
    pub body: Bodies,
}

/// The two alternative bodies of a message.
#[derive(Debug, Clone)]
pub enum Bodies {
    /// Plain strings; lettre picks and applies the transfer encoding.
    Plain { text: String, html: String },
    /// Already quoted-printable encoded (CRLF line ends, lines ≤ 76), as
    /// [`super::qp`] assembles them.
    QuotedPrintable { text: Vec<u8>, html: Vec<u8> },
}

/// A built message and its envelope, ready for a transport.
pub struct OutgoingMessage {
    pub(crate) message: Message,
    wire: std::sync::OnceLock<Vec<u8>>,
}

impl OutgoingMessage {
    /// The message as it goes on the wire (CRLF line ends).
    pub fn formatted(&self) -> &[u8] {
        self.wire.get_or_init(|| self.message.formatted())
    }

    /// Size on the wire in bytes.
    pub fn formatted_len(&self) -> usize {
        self.formatted().len()
    }

    /// Sign with DKIM (relaxed/relaxed).
    pub fn sign(&mut self, signer: &super::dkim::Signer) {
        self.wire = std::sync::OnceLock::from(signer.sign(&mut self.message));
    }
}

fn raw_header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// RFC 2047 B-encoded words for `text`, folded (CRLF SP) between words so
/// that every word stays within 75 characters and no character is split.
fn encoded_words(text: &str) -> String {
    use base64::Engine;
    const MAX_BYTES: usize = 45; // 60 base64 characters + 12 of framing
    let mut out = String::new();
    let mut start = 0;
    let mut push = |piece: &str| {
        if !out.is_empty() {
            out.push_str("\r\n ");
        }
        out.push_str("=?utf-8?b?");
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(piece));
        out.push_str("?=");
    };
    for (i, c) in text.char_indices() {
        if i + c.len_utf8() - start > MAX_BYTES {
            push(&text[start..i]);
            start = i;
        }
    }
    push(&text[start..]);
    out
}

/// The Subject header. Text that holds `=?` is encoded whole, so a mail
/// client shows an encoded-word written into the subject literally instead
/// of decoding it (`=?utf-8?q?=0D=0ABcc:…?=` would otherwise decode to a
/// line break); anything else is left to lettre.
fn subject_header(subject: &str) -> Option<HeaderValue> {
    subject.contains("=?").then(|| {
        HeaderValue::dangerous_new_pre_encoded(
            HeaderName::new_from_ascii_str("Subject"),
            subject.to_string(),
            encoded_words(subject),
        )
    })
}

/// `List-Id` (RFC 2919): the list's name as a phrase (plain words, a quoted
/// string, or encoded words when it is not ASCII or holds `=?`), then the
/// identifier in angle brackets.
pub fn list_id_header(name: &str, id: &str) -> ListIdHeader {
    let plain = |c: char| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    let phrase = if !name.is_ascii() || name.contains("=?") {
        encoded_words(name)
    } else if name.chars().all(plain) {
        name.to_string()
    } else {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    };
    ListIdHeader(HeaderValue::dangerous_new_pre_encoded(
        HeaderName::new_from_ascii_str("List-Id"),
        format!("{name} <{id}>"),
        format!("{phrase} <{id}>"),
    ))
}

/// A ready `List-Id` header, built once per send.
#[derive(Debug, Clone)]
pub struct ListIdHeader(HeaderValue);

fn mailbox(name: Option<&str>, address: &str, what: &str) -> anyhow::Result<Mailbox> {
    let address = address
        .parse()
        .map_err(|e| bad_input!("{what} address `{address}`: {e}"))?;
    Ok(Mailbox::new(name.map(str::to_string), address))
}

/// Build one recipient's message. Header values come from parsed newtypes or
/// configuration; lettre encodes non-ASCII values (RFC 2047) and folds long
/// lines.
pub fn build(spec: MessageSpec<'_>) -> anyhow::Result<OutgoingMessage> {
    let mut list_unsubscribe = format!("<{}>", spec.unsubscribe_url);
    if let Some(mailto) = spec.unsubscribe_mailto {
        list_unsubscribe.push_str(&format!(", <{mailto}>"));
    }
    let mut builder = Message::builder()
        .from(mailbox(
            Some(spec.from_name),
            spec.from_address,
            "sender.from_address",
        )?)
        .to(mailbox(spec.to_name, spec.to_address, "recipient")?)
        .date_now()
        .message_id(Some(format!("<{}>", spec.message_id)))
        .raw_header(raw_header("List-Unsubscribe", list_unsubscribe))
        .raw_header(raw_header(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .raw_header(spec.list_id.0.clone());
    builder = match subject_header(spec.subject) {
        Some(encoded) => builder.raw_header(encoded),
        None => builder.subject(spec.subject),
    };
    if let Some(reply_to) = spec.reply_to {
        builder = builder.reply_to(mailbox(None, reply_to, "sender.reply_to")?);
    }
    if let Some(sender) = spec.envelope_from {
        let parse = |a: &str, what: &str| {
            a.parse::<lettre::Address>()
                .map_err(|e| bad_input!("{what} address `{a}`: {e}"))
        };
        let envelope = lettre::address::Envelope::new(
            Some(parse(sender, "bounce")?),
            vec![parse(spec.to_address, "recipient")?],
        )
        .map_err(|e| anyhow::anyhow!("building the envelope: {e}"))?;
        builder = builder.envelope(envelope);
    }
    if let Some(feedback_id) = spec.feedback_id {
        builder = builder.raw_header(raw_header("Feedback-ID", feedback_id.to_string()));
    }
    let body = match spec.body {
        Bodies::Plain { text, html } => MultiPart::alternative_plain_html(text, html),
        Bodies::QuotedPrintable { text, html } => {
            let part = |content_type: ContentType, bytes: Vec<u8>| {
                SinglePart::builder()
                    .header(content_type)
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(Body::dangerous_pre_encoded(
                        bytes,
                        ContentTransferEncoding::QuotedPrintable,
                    ))
            };
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, text))
                .singlepart(part(ContentType::TEXT_HTML, html))
        }
    };
    let message = builder
        .multipart(body)
        .map_err(|e| anyhow::anyhow!("building the message: {e}"))?;
    Ok(OutgoingMessage {
        message,
        wire: std::sync::OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn built(from_name: &str, to_name: Option<&str>, subject: &str, list_name: &str) -> String {
        let list_id = list_id_header(list_name, "news.example.org");
        let message = build(MessageSpec {
            from_name,
            from_address: "news@example.org",
            to_address: "ana@example.org",
            to_name,
            reply_to: Some("editor@example.org"),
            subject,
            message_id: "x.1@example.org",
            unsubscribe_url: "https://news.example.org/unsubscribe/T",
            unsubscribe_mailto: None,
            list_id: &list_id,
            feedback_id: Some("herald:example"),
            envelope_from: None,
            body: Bodies::Plain {
                text: "hi".into(),
                html: "<p>hi</p>".into(),
            },
        })
        .unwrap();
        String::from_utf8(message.formatted().to_vec()).unwrap()
    }

    /// The top-level header fields, unfolded: (name, value).
    fn headers(wire: &str) -> Vec<(String, String)> {
        let head = wire.split("\r\n\r\n").next().unwrap();
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                out.last_mut().expect("a folded line follows a header").1 += line;
            } else {
                let (name, value) = line.split_once(':').expect("a header line has a colon");
                out.push((name.to_string(), value.to_string()));
            }
        }
        out
    }

    /// How many addresses a mailbox header holds: `@`s outside quoted
    /// strings and encoded words, and no list separator.
    fn addresses(value: &str) -> usize {
        let mut count = 0;
        let mut quoted = false;
        let mut escaped = false;
        let mut rest = value;
        while let Some(c) = rest.chars().next() {
            if !quoted && rest.starts_with("=?") {
                let end = rest[2..].find("?=").map_or(rest.len(), |i| i + 4);
                rest = &rest[end..];
                continue;
            }
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '@' if !quoted => count += 1,
                ',' if !quoted => return usize::MAX,
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
        }
        count
    }

    const EXPECTED: [&str; 12] = [
        "From",
        "Reply-To",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "Feedback-ID",
        "MIME-Version",
        "Content-Type",
    ];

    #[test]
    fn an_encoded_word_subject_is_encoded_again_so_it_shows_literally() {
        let wire = built("News", None, "=?utf-8?q?=0D=0ABcc:_v@e.com?=", "News");
        let subject = headers(&wire)
            .into_iter()
            .find(|(n, _)| n == "Subject")
            .unwrap()
            .1;
        assert!(!subject.contains("=0D=0A"), "{subject}");
        assert!(subject.trim().starts_with("=?utf-8?b?"), "{subject}");
        // Decoding the words gives back the literal text.
        let decoded: String = subject
            .split_whitespace()
            .map(|w| {
                let b64 = w.trim_start_matches("=?utf-8?b?").trim_end_matches("?=");
                use base64::Engine;
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(decoded, "=?utf-8?q?=0D=0ABcc:_v@e.com?=");
    }

    proptest! {
        // Values as configuration, import and the issue checks let them
        // through: one line, no control characters.
        #[test]
        fn no_value_adds_a_header_or_an_address(
            from_name in "[ -~]{1,40}|\\PC{1,40}",
            to_name in proptest::option::of("[ -~]{1,40}|\\PC{1,40}"),
            subject in "[ -~]{1,80}|\\PC{1,80}|=\\?utf-8\\?q\\?[ -~]{0,30}\\?=",
            list_name in "[ -~]{1,40}|\\PC{1,40}",
        ) {
            for v in [&from_name, &subject, &list_name] {
                prop_assume!(!v.trim().is_empty() && !v.chars().any(char::is_control));
            }
            let to_name = match to_name.as_deref().map(crate::domain::SubscriberName::parse_optional) {
                None => None,
                Some(Ok(parsed)) => parsed.map(|n| n.as_ref().to_string()),
                Some(Err(_)) => return Err(TestCaseError::reject("import refuses this name")),
            };
            let wire = built(&from_name, to_name.as_deref(), &subject, &list_name);
            let hs = headers(&wire);
            let names: Vec<&str> = hs.iter().map(|(n, _)| n.as_str()).collect();
            prop_assert_eq!(names.len(), EXPECTED.len(), "{:?}", names);
            for name in EXPECTED {
                prop_assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{} in {:?}", name, names);
            }
            for (name, value) in &hs {
                prop_assert!(value.is_ascii(), "{}: {}", name, value);
                if ["From", "To", "Reply-To"].contains(&name.as_str()) {
                    prop_assert_eq!(addresses(value), 1, "{}: {}", name, value);
                }
            }
        }
    }
}
