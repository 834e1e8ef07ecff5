//! Per-recipient message assembly: fill the compiled issue, sign the
//! unsubscribe token, build the MIME message, DKIM-sign it. Shared by live,
//! test and dry-run sends; never recompiles the issue.

use std::sync::Arc;

use crate::config::Settings;
use crate::mailer::dkim::Signer;
use crate::mailer::message::{self, BodyPart, Frame, OutgoingMessage, Personal};
use crate::mailer::qp::{BodyOut, PieceCache};
use crate::render::{Attributes, Chunk, Prepared, Recipient};
use crate::token::{SigningKeys, TokenClaims};

/// Everything needed to build any recipient's copy of one issue.
pub struct Composer {
    prepared: Prepared,
    keys: SigningKeys,
    issue_id: Option<i64>,
    subject_prefix: String,
    /// The subject when it has no placeholders (the usual case).
    subject: Option<String>,
    /// The sender's mailboxes and list headers, parsed once.
    frame: Frame,
    base_url: String,
    /// `unsubscribe.mailto_domain`: adds the mailto fallback.
    mailto_domain: Option<String>,
    view_url: String,
    /// `(local, domain)` of `bounce.address`: live copies go out with the
    /// envelope sender `local+TOKEN@domain` (VERP).
    bounce_address: Option<(String, String)>,
    signer: Option<Arc<Signer>>,
    /// Quoted-printable encodings of the issue's static HTML and text,
    /// made once and shared by every message.
    html_cache: PieceCache,
    text_cache: PieceCache,
}

/// One recipient, as the ledger or a test send knows them.
pub struct Addressee<'a> {
    /// The subscriber id the unsubscribe token names (0: not a subscriber).
    pub subscriber_id: i64,
    pub email: &'a str,
    pub name: Option<&'a str>,
    /// The subscriber's attributes, for attribute placeholders.
    pub attributes: Option<&'a Attributes>,
    pub message_id: &'a str,
}

impl Composer {
    pub fn new(
        settings: &Settings,
        prepared: Prepared,
        slug: &str,
        issue_id: Option<i64>,
        keys: SigningKeys,
        signer: Option<Arc<Signer>>,
        subject_prefix: &str,
    ) -> anyhow::Result<Composer> {
        let subject = prepared
            .subject_is_static()
            .then(|| format!("{subject_prefix}{}", prepared.subject()));
        let frame = Frame::new(
            &settings.sender.from_name,
            settings.sender.from_address.as_ref(),
            settings.sender.reply_to.as_ref().map(AsRef::as_ref),
            message::list_id_header(&settings.newsletter.name, &settings.newsletter.list_id),
            settings.sender.feedback_id.as_deref(),
            subject.as_deref().unwrap_or_default(),
        )?;
        Ok(Composer {
            subject,
            subject_prefix: subject_prefix.to_string(),
            keys,
            issue_id,
            frame,
            base_url: settings
                .http
                .public_base_url
                .trim_end_matches('/')
                .to_string(),
            mailto_domain: settings.unsubscribe.mailto_domain.clone(),
            view_url: crate::render::view_url(settings, slug),
            bounce_address: settings.bounce.address.as_ref().and_then(|a| {
                a.as_ref()
                    .rsplit_once('@')
                    .map(|(l, d)| (l.to_string(), d.to_string()))
            }),
            signer,
            html_cache: PieceCache::new(prepared.html_pieces()),
            text_cache: PieceCache::new(prepared.text_pieces()),
            prepared,
        })
    }

    /// Use `view_url` as every copy's "view in browser" link (a test
    /// copy's signed preview link).
    pub fn with_view_url(mut self, view_url: String) -> Composer {
        self.view_url = view_url;
        self
    }

    fn token(&self, subscriber_id: i64) -> String {
        self.keys.sign(TokenClaims {
            subscriber_id,
            issue_id: self.issue_id,
        })
    }

    /// The VERP envelope sender of a live copy, when `bounce.address` is
    /// set: `local+ISSUE-SUBSCRIBER-MAC@domain`.
    pub fn envelope_sender(&self, subscriber_id: i64) -> Option<String> {
        let (local, domain) = self.bounce_address.as_ref()?;
        let issue_id = self.issue_id.filter(|_| subscriber_id > 0)?;
        let token = self.keys.sign_verp(issue_id, subscriber_id);
        Some(format!("{local}+{token}@{domain}"))
    }

    /// Build one recipient's complete message.
    /// Whether messages are DKIM-signed (the costly part of composing).
    pub fn signs(&self) -> bool {
        self.signer.is_some()
    }

    pub fn compose(&self, to: &Addressee<'_>) -> anyhow::Result<OutgoingMessage> {
        let token = self.token(to.subscriber_id);
        let unsubscribe_url = crate::token::unsubscribe_url(&self.base_url, &token);
        let mailto = self
            .mailto_domain
            .as_ref()
            .map(|domain| format!("mailto:unsubscribe+{token}@{domain}"));
        let envelope_from = self.envelope_sender(to.subscriber_id);
        let recipient = Recipient {
            email: to.email,
            name: to.name,
            unsubscribe_url: &unsubscribe_url,
            view_url: &self.view_url,
            attributes: to.attributes,
        };
        let subject = match &self.subject {
            Some(s) => std::borrow::Cow::Borrowed(s.as_str()),
            None => std::borrow::Cow::Owned(format!(
                "{}{}",
                self.subject_prefix,
                self.prepared.subject_for(&recipient)
            )),
        };
        self.frame.message(
            &Personal {
                to_address: to.email,
                to_name: to.name,
                subject: &subject,
                message_id: to.message_id,
                unsubscribe_url: &unsubscribe_url,
                unsubscribe_mailto: mailto.as_deref(),
                envelope_from: envelope_from.as_deref(),
            },
            self.signer.as_deref(),
            // Each body goes straight into the message, static pieces
            // from the per-issue cache.
            |part, out| match part {
                BodyPart::Text => self
                    .prepared
                    .text_chunks(&recipient, &mut |c| encode_chunk(&self.text_cache, out, c)),
                BodyPart::Html => self
                    .prepared
                    .html_chunks(&recipient, &mut |c| encode_chunk(&self.html_cache, out, c)),
            },
        )
    }
}

/// Append one chunk of a recipient's copy, quoted-printable encoded: static
/// chunks from the per-issue cache, values freshly.
fn encode_chunk(cache: &PieceCache, out: &mut BodyOut<'_>, chunk: Chunk<'_>) {
    match chunk {
        Chunk::Static(id, text) => cache.append_static(id, text, out),
        Chunk::Value(value) => out.push_piece(value),
    }
}
