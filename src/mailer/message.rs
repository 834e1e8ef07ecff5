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
    /// `List-Id` value, e.g. `Newsletter <news.example.org>`.
    pub list_id: &'a str,
    pub feedback_id: Option<&'a str>,
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
        signer.sign(&mut self.message);
        self.wire = std::sync::OnceLock::new();
    }
}

fn raw_header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

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
        .subject(spec.subject)
        .date_now()
        .message_id(Some(format!("<{}>", spec.message_id)))
        .raw_header(raw_header("List-Unsubscribe", list_unsubscribe))
        .raw_header(raw_header(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .raw_header(raw_header("List-Id", spec.list_id.to_string()));
    if let Some(reply_to) = spec.reply_to {
        builder = builder.reply_to(mailbox(None, reply_to, "sender.reply_to")?);
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
