//! One recipient's MIME message: the headers a bulk sender must carry and a
//! multipart/alternative body (text/plain first, text/html last).

use std::time::SystemTime;

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, Mailboxes, MessageBuilder, MultiPart, SinglePart};
use lettre::Message;

use super::qp::BodyOut;
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

/// The two alternative bodies of a message, already quoted-printable
/// encoded (CRLF line ends, lines ≤ 76), as [`super::qp`] assembles them.
#[derive(Debug, Clone)]
pub struct Bodies {
    pub text: Vec<u8>,
    pub html: Vec<u8>,
}

/// A built message and its envelope, ready for a transport.
pub struct OutgoingMessage {
    envelope: Envelope,
    wire: Wire,
}

enum Wire {
    /// Built by lettre (plain bodies, or signed); formatted on first use.
    Lettre {
        message: Message,
        bytes: std::sync::OnceLock<Vec<u8>>,
    },
    /// Assembled by [`Frame::message`] as SMTP DATA content: the ASCII
    /// message dot-stuffed (`dots` dots added), then the terminator `.`
    /// CRLF, which `len` leaves out. The message itself is made from it
    /// only when asked for (outbox, sample).
    Assembled {
        data: String,
        len: usize,
        dots: usize,
        plain: std::sync::OnceLock<Vec<u8>>,
    },
}

impl OutgoingMessage {
    fn from_lettre(message: Message, bytes: Option<Vec<u8>>) -> OutgoingMessage {
        OutgoingMessage {
            envelope: message.envelope().clone(),
            wire: Wire::Lettre {
                message,
                bytes: bytes.map_or_else(Default::default, std::sync::OnceLock::from),
            },
        }
    }

    /// The message as it goes on the wire (CRLF line ends).
    pub fn formatted(&self) -> &[u8] {
        match &self.wire {
            Wire::Lettre { message, bytes } => bytes.get_or_init(|| message.formatted()),
            Wire::Assembled {
                data, len, plain, ..
            } => plain.get_or_init(|| super::qp::unstuff(&data[..*len])),
        }
    }

    /// Size of the message in bytes.
    pub fn formatted_len(&self) -> usize {
        match &self.wire {
            Wire::Assembled { len, dots, .. } => len - dots,
            Wire::Lettre { .. } => self.formatted().len(),
        }
    }

    /// The SMTP envelope (MAIL FROM, RCPT TO).
    pub(crate) fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The SMTP DATA content (dot-stuffed, terminated by `.` CRLF), when
    /// the message was assembled that way.
    pub(crate) fn data(&self) -> Option<&str> {
        match &self.wire {
            Wire::Assembled { data, .. } => Some(data),
            Wire::Lettre { .. } => None,
        }
    }

    /// Sign with DKIM (relaxed/relaxed). Messages from [`Frame::message`]
    /// are signed there.
    #[cfg(test)]
    pub(crate) fn sign(&mut self, signer: &super::dkim::Signer) {
        match &mut self.wire {
            Wire::Lettre { message, bytes } => {
                *bytes = std::sync::OnceLock::from(signer.sign(message));
            }
            Wire::Assembled { .. } => {
                unreachable!("an assembled message is signed when it is built")
            }
        }
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

/// The header fields of one message, addresses parsed.
struct Head<'a> {
    from: Mailbox,
    to: Mailbox,
    reply_to: Option<Mailbox>,
    subject: &'a str,
    message_id: &'a str,
    unsubscribe_url: &'a str,
    unsubscribe_mailto: Option<&'a str>,
    list_id: &'a ListIdHeader,
    feedback_id: Option<&'a str>,
    envelope_from: Option<&'a str>,
    date: SystemTime,
}

/// The top-level header fields, as every way of building a message writes
/// them (lettre encodes non-ASCII values, RFC 2047, and folds long lines).
fn head_builder(h: Head<'_>) -> anyhow::Result<MessageBuilder> {
    let to_address = h.to.email.clone();
    let mut builder = Message::builder()
        .from(h.from)
        .to(h.to)
        .date(h.date)
        .message_id(Some(format!("<{}>", h.message_id)))
        .raw_header(list_unsubscribe(h.unsubscribe_url, h.unsubscribe_mailto))
        .raw_header(raw_header(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .raw_header(h.list_id.0.clone());
    builder = match subject_header(h.subject) {
        Some(encoded) => builder.raw_header(encoded),
        None => builder.subject(h.subject),
    };
    if let Some(reply_to) = h.reply_to {
        builder = builder.reply_to(reply_to);
    }
    if let Some(sender) = h.envelope_from {
        let sender = sender
            .parse::<lettre::Address>()
            .map_err(|e| bad_input!("bounce address `{sender}`: {e}"))?;
        let envelope = Envelope::new(Some(sender), vec![to_address])
            .map_err(|e| anyhow::anyhow!("building the envelope: {e}"))?;
        builder = builder.envelope(envelope);
    }
    if let Some(feedback_id) = h.feedback_id {
        builder = builder.raw_header(raw_header("Feedback-ID", feedback_id.to_string()));
    }
    Ok(builder)
}

fn qp_part(content_type: ContentType, bytes: Vec<u8>) -> SinglePart {
    SinglePart::builder()
        .header(content_type)
        .header(ContentTransferEncoding::QuotedPrintable)
        .body(Body::dangerous_pre_encoded(
            bytes,
            ContentTransferEncoding::QuotedPrintable,
        ))
}

/// Build one recipient's message. Header values come from parsed newtypes or
/// configuration; lettre encodes non-ASCII values (RFC 2047) and folds long
/// lines.
#[cfg(test)]
pub(crate) fn build(spec: MessageSpec<'_>) -> anyhow::Result<OutgoingMessage> {
    build_at(spec, None, SystemTime::now())
}

fn build_at(
    spec: MessageSpec<'_>,
    boundary: Option<&str>,
    date: SystemTime,
) -> anyhow::Result<OutgoingMessage> {
    let builder = head_builder(Head {
        from: mailbox(
            Some(spec.from_name),
            spec.from_address,
            "sender.from_address",
        )?,
        to: mailbox(spec.to_name, spec.to_address, "recipient")?,
        reply_to: spec
            .reply_to
            .map(|r| mailbox(None, r, "sender.reply_to"))
            .transpose()?,
        subject: spec.subject,
        message_id: spec.message_id,
        unsubscribe_url: spec.unsubscribe_url,
        unsubscribe_mailto: spec.unsubscribe_mailto,
        list_id: spec.list_id,
        feedback_id: spec.feedback_id,
        envelope_from: spec.envelope_from,
        date,
    })?;
    let mut body = MultiPart::alternative();
    if let Some(b) = boundary {
        body = body.boundary(b);
    }
    let body = body
        .singlepart(qp_part(ContentType::TEXT_PLAIN, spec.body.text))
        .singlepart(qp_part(ContentType::TEXT_HTML, spec.body.html));
    let message = builder
        .multipart(body)
        .map_err(|e| anyhow::anyhow!("building the message: {e}"))?;
    Ok(OutgoingMessage::from_lettre(message, None))
}

/// Which alternative body [`Frame::message`] asks its writer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPart {
    Text,
    Html,
}

/// The part headers (and the blank line after them) of the quoted-printable
/// text and HTML parts, as lettre formats them.
fn part_heads() -> &'static (String, String) {
    static HEADS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    HEADS.get_or_init(|| {
        let head = |content_type| {
            let mut formatted = String::from_utf8(qp_part(content_type, Vec::new()).formatted())
                .expect("header fields are ASCII");
            // An empty body is formatted as the body's own CRLF.
            formatted.truncate(formatted.len() - 2);
            formatted
        };
        (head(ContentType::TEXT_PLAIN), head(ContentType::TEXT_HTML))
    })
}

/// A header field of the per-send layout: formatted once, or per message.
#[derive(Debug, Clone)]
enum Field {
    /// Formatted once (one or more whole fields with their CRLFs).
    Static(String),
    To,
    Date,
    MessageId,
    ListUnsubscribe,
    Subject,
    /// `Content-Type: multipart/alternative; boundary=…`: the text before
    /// and after the boundary.
    ContentType(String, String),
}

/// A boundary for the reference message, the length of lettre's.
const REF_BOUNDARY: &str = "REFERENCEboundaryREFERENCEboundaryREFERE";

/// What every message of one send shares, parsed and formatted once: the
/// sender's mailboxes, the list headers, the subject when it is the same
/// for everyone, and the order lettre writes the header fields in (taken
/// from a reference message lettre builds). [`Frame::message`] then builds
/// each recipient's message in one buffer: lettre formats only the
/// recipient's own header fields (each field is encoded and folded on its
/// own), the quoted-printable bodies are written straight after them, and
/// the envelope is made from the addresses already parsed. The bytes are
/// those [`build_at`] makes.
pub struct Frame {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_id: ListIdHeader,
    feedback_id: Option<String>,
    layout: Vec<Field>,
    /// The subject the reference message was built with, and its field.
    subject: (String, String),
    /// The largest message so far, to size the next buffer once.
    size_hint: std::sync::atomic::AtomicUsize,
}

/// One recipient's header values for [`Frame::message`].
#[derive(Debug, Clone, Copy)]
pub struct Personal<'a> {
    pub to_address: &'a str,
    pub to_name: Option<&'a str>,
    pub subject: &'a str,
    /// Without angle brackets: `local@domain`.
    pub message_id: &'a str,
    pub unsubscribe_url: &'a str,
    pub unsubscribe_mailto: Option<&'a str>,
    /// The envelope sender when it is not the From address (VERP).
    pub envelope_from: Option<&'a str>,
}

/// One header field as lettre formats it (name, encoded value, CRLF).
fn field(out: &mut String, set: impl FnOnce(&mut lettre::message::header::Headers)) {
    use std::fmt::Write;
    let mut headers = lettre::message::header::Headers::new();
    set(&mut headers);
    let _ = write!(out, "{headers}");
}

fn list_unsubscribe(url: &str, mailto: Option<&str>) -> HeaderValue {
    let mut value = format!("<{url}>");
    if let Some(mailto) = mailto {
        value.push_str(&format!(", <{mailto}>"));
    }
    raw_header("List-Unsubscribe", value)
}

impl Frame {
    /// `subject`: the subject most messages carry (any other is formatted
    /// per message).
    pub fn new(
        from_name: &str,
        from_address: &str,
        reply_to: Option<&str>,
        list_id: ListIdHeader,
        feedback_id: Option<&str>,
        subject: &str,
    ) -> anyhow::Result<Frame> {
        let from = mailbox(Some(from_name), from_address, "sender.from_address")?;
        let reply_to_address = reply_to;
        let reply_to = reply_to
            .map(|r| mailbox(None, r, "sender.reply_to"))
            .transpose()?;
        let reference = build_at(
            MessageSpec {
                from_name,
                from_address,
                to_address: from_address,
                to_name: None,
                reply_to: reply_to_address,
                subject,
                message_id: "reference@example.org",
                unsubscribe_url: "https://example.org/",
                unsubscribe_mailto: None,
                list_id: &list_id,
                feedback_id,
                envelope_from: None,
                body: Bodies {
                    text: Vec::new(),
                    html: Vec::new(),
                },
            },
            Some(REF_BOUNDARY),
            SystemTime::UNIX_EPOCH,
        )?;
        let wire = std::str::from_utf8(reference.formatted())
            .map_err(|_| anyhow::anyhow!("building the message: header fields are not ASCII"))?;
        let head = &wire[..wire.find("\r\n\r\n").map_or(wire.len(), |i| i + 2)];
        let mut layout: Vec<Field> = Vec::new();
        let mut subject_field = String::new();
        let mut fields = head.split_inclusive("\r\n").peekable();
        while let Some(first) = fields.next() {
            let mut text = first.to_string();
            while let Some(more) = fields.next_if(|l| l.starts_with([' ', '\t'])) {
                text.push_str(more);
            }
            let name = text.split(':').next().unwrap_or_default();
            let slot = match name {
                "To" => Field::To,
                "Date" => Field::Date,
                "Message-ID" => Field::MessageId,
                "List-Unsubscribe" => Field::ListUnsubscribe,
                "Subject" => {
                    subject_field = text.clone();
                    Field::Subject
                }
                "Content-Type" => match text.split_once(REF_BOUNDARY) {
                    Some((a, b)) => Field::ContentType(a.to_string(), b.to_string()),
                    None => anyhow::bail!("building the message: no boundary in {text:?}"),
                },
                _ => match layout.last_mut() {
                    Some(Field::Static(s)) => {
                        s.push_str(&text);
                        continue;
                    }
                    _ => Field::Static(text),
                },
            };
            layout.push(slot);
        }
        Ok(Frame {
            from,
            reply_to,
            list_id,
            feedback_id: feedback_id.map(str::to_string),
            layout,
            subject: (subject.to_string(), subject_field),
            size_hint: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Build one recipient's message; `write` appends the quoted-printable
    /// encoding (ASCII, CRLF line ends, lines ≤ 76) of each body. With a
    /// DKIM `signer`, lettre builds and signs the whole message instead.
    pub fn message(
        &self,
        p: &Personal<'_>,
        signer: Option<&super::dkim::Signer>,
        write: impl FnMut(BodyPart, &mut BodyOut<'_>),
    ) -> anyhow::Result<OutgoingMessage> {
        self.message_at(p, signer, None, SystemTime::now(), write)
    }

    fn message_at(
        &self,
        p: &Personal<'_>,
        signer: Option<&super::dkim::Signer>,
        boundary: Option<&str>,
        date: SystemTime,
        mut write: impl FnMut(BodyPart, &mut BodyOut<'_>),
    ) -> anyhow::Result<OutgoingMessage> {
        use lettre::message::header;
        use std::sync::atomic::Ordering;
        let to = mailbox(p.to_name, p.to_address, "recipient")?;
        if let Some(signer) = signer {
            let builder = head_builder(Head {
                from: self.from.clone(),
                to,
                reply_to: self.reply_to.clone(),
                subject: p.subject,
                message_id: p.message_id,
                unsubscribe_url: p.unsubscribe_url,
                unsubscribe_mailto: p.unsubscribe_mailto,
                list_id: &self.list_id,
                feedback_id: self.feedback_id.as_deref(),
                envelope_from: p.envelope_from,
                date,
            })?;
            let (mut text, mut html) = (String::new(), String::new());
            for (part, buf) in [(BodyPart::Text, &mut text), (BodyPart::Html, &mut html)] {
                write(
                    part,
                    &mut BodyOut {
                        buf,
                        stuffed: false,
                        dots: 0,
                    },
                );
            }
            let mut multipart = MultiPart::alternative();
            if let Some(b) = boundary {
                multipart = multipart.boundary(b);
            }
            let mut message = builder
                .multipart(
                    multipart
                        .singlepart(qp_part(ContentType::TEXT_PLAIN, text.into_bytes()))
                        .singlepart(qp_part(ContentType::TEXT_HTML, html.into_bytes())),
                )
                .map_err(|e| anyhow::anyhow!("building the message: {e}"))?;
            let signed = signer.sign(&mut message);
            return Ok(OutgoingMessage::from_lettre(message, Some(signed)));
        }
        let sender = match p.envelope_from {
            Some(sender) => sender
                .parse::<lettre::Address>()
                .map_err(|e| bad_input!("bounce address `{sender}`: {e}"))?,
            None => self.from.email.clone(),
        };
        let envelope = Envelope::new(Some(sender), vec![to.email.clone()])
            .map_err(|e| anyhow::anyhow!("building the envelope: {e}"))?;
        let boundary: String = match boundary {
            Some(b) => b.to_string(),
            None => {
                use rand::Rng;
                rand::rng()
                    .sample_iter(rand::distr::Alphanumeric)
                    .take(REF_BOUNDARY.len())
                    .map(char::from)
                    .collect()
            }
        };
        let hint = self.size_hint.load(Ordering::Relaxed);
        let mut out = String::with_capacity(hint.max(8192));
        let mut to = Some(to);
        for f in &self.layout {
            match f {
                Field::Static(text) => out.push_str(text),
                Field::To => {
                    let to = to.take().expect("one To field");
                    field(&mut out, |h| h.set(header::To::from(Mailboxes::from(to))));
                }
                Field::Date => field(&mut out, |h| h.set(header::Date::new(date))),
                Field::MessageId => field(&mut out, |h| {
                    h.set(header::MessageId::from(format!("<{}>", p.message_id)))
                }),
                Field::ListUnsubscribe => field(&mut out, |h| {
                    h.insert_raw(list_unsubscribe(p.unsubscribe_url, p.unsubscribe_mailto))
                }),
                Field::Subject if p.subject == self.subject.0 => out.push_str(&self.subject.1),
                Field::Subject => field(&mut out, |h| match subject_header(p.subject) {
                    Some(encoded) => h.insert_raw(encoded),
                    None => h.set(header::Subject::from(p.subject.to_string())),
                }),
                Field::ContentType(before, after) => {
                    out.push_str(before);
                    out.push_str(&boundary);
                    out.push_str(after);
                }
            }
        }
        out.push_str("\r\n");
        // No header line starts with a dot; the bodies are stuffed as they
        // are written (each encoded piece starts a line).
        let (text_head, html_head) = part_heads();
        let mut dots = 0;
        for (part, part_head) in [(BodyPart::Text, text_head), (BodyPart::Html, html_head)] {
            out.push_str("--");
            out.push_str(&boundary);
            out.push_str("\r\n");
            out.push_str(part_head);
            let mut body = BodyOut {
                buf: &mut out,
                stuffed: true,
                dots: 0,
            };
            write(part, &mut body);
            dots += body.dots;
            out.push_str("\r\n");
        }
        out.push_str("--");
        out.push_str(&boundary);
        out.push_str("--\r\n");
        let len = out.len();
        out.push_str(".\r\n");
        if out.len() > hint {
            self.size_hint.fetch_max(out.len() + 512, Ordering::Relaxed);
        }
        Ok(OutgoingMessage {
            envelope,
            wire: Wire::Assembled {
                data: out,
                len,
                dots,
                plain: Default::default(),
            },
        })
    }
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
            body: Bodies {
                text: b"hi\r\n".to_vec(),
                html: b"<p>hi</p>\r\n".to_vec(),
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
        /// A message assembled by the frame is byte for byte the one lettre
        /// builds from the same values and quoted-printable bodies.
        #[test]
        fn the_frame_assembles_what_lettre_builds(
            to_name in proptest::option::of("[ -~]{1,40}|\\PC{1,40}"),
            subject in "[ -~]{1,80}|\\PC{1,80}",
            text in "(\\PC|\n){0,200}",
            html in "(\\PC|\n|\\.){0,300}",
            mailto in proptest::option::of("mailto:u\\+[a-z]{1,60}@example\\.org"),
            verp in any::<bool>(),
            reply in any::<bool>(),
            same_subject in any::<bool>(),
        ) {
            prop_assume!(!subject.trim().is_empty() && !subject.chars().any(char::is_control));
            let to_name = match to_name.as_deref().map(crate::domain::SubscriberName::parse_optional) {
                None => None,
                Some(Ok(parsed)) => parsed.map(|n| n.as_ref().to_string()),
                Some(Err(_)) => return Err(TestCaseError::reject("import refuses this name")),
            };
            let encode = |s: &str| {
                let mut out = String::new();
                crate::mailer::qp::encode_piece(s, &mut out);
                out
            };
            let (text, html) = (encode(&text), encode(&html));
            let list_id = list_id_header("News Ünïcode", "news.example.org");
            let reply_to = reply.then_some("editor@example.org");
            let envelope_from = verp.then_some("bounces+abc-1@example.org");
            let date = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
            let boundary = "b0undaryb0undaryb0undaryb0undaryb0undary";
            let url = "https://news.example.org/unsubscribe/TOKEN";
            let built = build_at(
                MessageSpec {
                    from_name: "News Ünïcode",
                    from_address: "news@example.org",
                    to_address: "ana@example.org",
                    to_name: to_name.as_deref(),
                    reply_to,
                    subject: &subject,
                    message_id: "x.1@example.org",
                    unsubscribe_url: url,
                    unsubscribe_mailto: mailto.as_deref(),
                    list_id: &list_id,
                    feedback_id: Some("herald:example"),
                    envelope_from,
                    body: Bodies {
                        text: text.clone().into_bytes(),
                        html: html.clone().into_bytes(),
                    },
                },
                Some(boundary),
                date,
            )
            .unwrap();
            let frame = Frame::new(
                "News Ünïcode",
                "news@example.org",
                reply_to,
                list_id.clone(),
                Some("herald:example"),
                if same_subject { &subject } else { "Static subject" },
            )
            .unwrap();
            let assembled = frame
                .message_at(
                    &Personal {
                        to_address: "ana@example.org",
                        to_name: to_name.as_deref(),
                        subject: &subject,
                        message_id: "x.1@example.org",
                        unsubscribe_url: url,
                        unsubscribe_mailto: mailto.as_deref(),
                        envelope_from,
                    },
                    None,
                    Some(boundary),
                    date,
                    |part, out| out.push_encoded(if part == BodyPart::Text { &text } else { &html }),
                )
                .unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(assembled.formatted()),
                String::from_utf8_lossy(built.formatted())
            );
            prop_assert_eq!(assembled.formatted_len(), built.formatted().len());
            // The DATA content: every line starting with a dot gets a
            // second one, then the terminator.
            let wire = std::str::from_utf8(built.formatted()).unwrap();
            let mut data: String = wire
                .split_inclusive("\r\n")
                .map(|l| if l.starts_with('.') { format!(".{l}") } else { l.to_string() })
                .collect();
            data.push_str(".\r\n");
            prop_assert_eq!(assembled.data().unwrap(), data);
            prop_assert_eq!(assembled.envelope(), built.envelope());
        }
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
