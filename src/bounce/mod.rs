//! The feedback loop: reports that come back after a relay accepted a
//! message (bounce mail, complaints, auto-replies, ESP webhooks) are
//! matched to the delivery they speak of and acted on.
//!
//! - `report`: read and classify one message (pure).
//! - `mailbox`: where messages come from (one on stdin, a Maildir, an mbox).
//! - this module: match each report line to a delivery (VERP token, else
//!   the original's Message-ID, else recipient plus our List-Id) and record
//!   it; the store applies the consequences.

pub(crate) mod mailbox;
pub(crate) mod report;

use sha2::{Digest, Sha256};

use crate::store::bounces::{NewBounce, Recorded, MAX_RAW_BYTES};
use crate::store::Store;
use crate::token::SigningKeys;
use report::{Format, Outcome, Report};

/// What the matcher needs to know about this installation.
pub struct Matcher<'a> {
    pub store: &'a Store,
    pub keys: &'a SigningKeys,
    /// `newsletter.list_id`, to recognise our own messages quoted back.
    pub list_id: &'a str,
    pub soft_limit: u32,
}

/// The result for one report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// hard | soft | complaint | auto-reply | delayed | unmatched
    pub kind: &'static str,
    pub email: Option<String>,
    pub recorded: Recorded,
}

/// A delivery a report was matched to.
#[derive(Debug, Clone, Copy)]
struct Match {
    by: &'static str,
    issue_id: Option<i64>,
    subscriber_id: i64,
}

impl Matcher<'_> {
    /// Classify, match and record one received message. Returns its format
    /// and one [`Line`] per recipient it names (none for unrelated mail).
    /// `recipient` is the address the MTA delivered it to, when known
    /// (Postfix's `${recipient}`), where a VERP token may sit.
    pub async fn ingest_message(
        &self,
        raw: &[u8],
        recipient: Option<&str>,
    ) -> anyhow::Result<(Format, Vec<Line>)> {
        let mut report = report::parse(raw);
        if report.format == Format::Other {
            return Ok((Format::Other, Vec::new()));
        }
        if let Some(r) = recipient {
            report.delivered_to.insert(0, r.to_string());
        }
        let digest = hex::encode(Sha256::digest(raw));
        let capped = cap(raw);
        let verp = self.verp_match(&report).await?;
        let mut lines = Vec::new();
        for (i, entry) in report.entries.iter().enumerate() {
            let found = match verp {
                Some(m) => Some(m),
                None => {
                    self.fallback_match(&report, entry.recipient.as_deref())
                        .await?
                }
            };
            let kind = match (found, entry.outcome) {
                (_, Outcome::AutoReply) => "auto-reply",
                (_, Outcome::Delayed) => "delayed",
                (None, _) => "unmatched",
                (Some(_), outcome) => outcome.as_str(),
            };
            let fingerprint = format!("mail:{digest}:{i}");
            let bounce = NewBounce {
                kind,
                matched_by: found.map(|m| m.by),
                issue_id: found.and_then(|m| m.issue_id),
                subscriber_id: found.map(|m| m.subscriber_id),
                email: entry.recipient.as_deref(),
                status_code: entry.status.as_deref(),
                diagnostic: entry.diagnostic.as_deref(),
                source: "mail",
                fingerprint: &fingerprint,
                raw: Some(&capped),
            };
            let recorded = self.store.record_bounce(&bounce, self.soft_limit).await?;
            lines.push(Line {
                kind,
                email: entry.recipient.clone(),
                recorded,
            });
        }
        Ok((report.format, lines))
    }

    /// Record one event from an ESP webhook (already authenticated).
    pub async fn ingest_event(&self, event: &Event<'_>) -> anyhow::Result<Line> {
        let mut found = None;
        if let Some(id) = event.message_id {
            found = self.by_message_id(id).await?;
        }
        if found.is_none() {
            found = self.by_recipient(event.email, true).await?;
        }
        let kind = match found {
            None => "unmatched",
            Some(_) => event.outcome.as_str(),
        };
        let recorded = self
            .store
            .record_bounce(
                &NewBounce {
                    kind,
                    matched_by: found.map(|m| m.by),
                    issue_id: found.and_then(|m| m.issue_id),
                    subscriber_id: found.map(|m| m.subscriber_id),
                    email: Some(event.email),
                    status_code: event.status,
                    diagnostic: event.diagnostic,
                    source: event.source,
                    fingerprint: event.fingerprint,
                    raw: event.raw,
                },
                self.soft_limit,
            )
            .await?;
        Ok(Line {
            kind,
            email: Some(event.email.to_string()),
            recorded,
        })
    }

    /// A genuine VERP token in an address the report was delivered to.
    async fn verp_match(&self, report: &Report) -> anyhow::Result<Option<Match>> {
        for address in &report.delivered_to {
            let Some((local, _)) = address.rsplit_once('@') else {
                continue;
            };
            let Some((_, token)) = local.split_once('+') else {
                continue;
            };
            if let Some((issue_id, subscriber_id)) = self.keys.verify_verp(token) {
                if self.store.delivery_exists(issue_id, subscriber_id).await? {
                    return Ok(Some(Match {
                        by: "verp",
                        issue_id: Some(issue_id),
                        subscriber_id,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// The original's Message-ID, else the recipient when the returned
    /// original carries our List-Id.
    async fn fallback_match(
        &self,
        report: &Report,
        recipient: Option<&str>,
    ) -> anyhow::Result<Option<Match>> {
        for id in &report.original_message_ids {
            if let Some(m) = self.by_message_id(id).await? {
                return Ok(Some(m));
            }
        }
        let ours = report
            .original_list_ids
            .iter()
            .any(|l| l.eq_ignore_ascii_case(self.list_id));
        match recipient {
            Some(r) => self.by_recipient(r, ours).await,
            None => Ok(None),
        }
    }

    async fn by_message_id(&self, id: &str) -> anyhow::Result<Option<Match>> {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        Ok(self
            .store
            .delivery_by_message_id(id)
            .await?
            .map(|(issue_id, subscriber_id)| Match {
                by: "message-id",
                issue_id: Some(issue_id),
                subscriber_id,
            }))
    }

    async fn by_recipient(&self, email: &str, ours: bool) -> anyhow::Result<Option<Match>> {
        if !ours {
            return Ok(None);
        }
        let Ok(email) = crate::domain::SubscriberEmail::parse(email) else {
            return Ok(None);
        };
        Ok(self
            .store
            .subscriber_and_latest_issue(email.as_ref())
            .await?
            .map(|(subscriber_id, issue_id)| Match {
                by: "recipient",
                issue_id,
                subscriber_id,
            }))
    }
}

/// One bounce or complaint as an ESP reports it.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub outcome: Outcome,
    pub email: &'a str,
    pub message_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub diagnostic: Option<&'a str>,
    /// `webhook:mailgun`, `webhook:generic`.
    pub source: &'a str,
    /// The provider's event identity, so a redelivered event counts once.
    pub fingerprint: &'a str,
    pub raw: Option<&'a str>,
}

/// The report as text, at most [`MAX_RAW_BYTES`].
fn cap(raw: &[u8]) -> String {
    let end = raw.len().min(MAX_RAW_BYTES);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}
