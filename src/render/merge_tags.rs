//! Merge tags of an MJML design: the vocabularies (herald's own keys such as
//! `recipient.name`, and the Mailchimp and generic presets), what each tag
//! resolves to, and [`Design`], a design's MJML with its tags resolved (what
//! an [`super::Issue`] made from a design carries until it is compiled).

use std::ops::Range;
use std::str::FromStr;

use super::placeholder::Slot;

/// A foreign tool's merge-tag vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeTags {
    /// `*|FNAME|*`, `*|EMAIL|*`, `*|UNSUB|*`, `*|ARCHIVE|*`, ...
    Mailchimp,
    /// `{{ first_name }}`, `{{ email }}`, `{{ unsubscribe_url }}`,
    /// `{{ browser_url }}`, ...
    Generic,
}

impl FromStr for MergeTags {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mailchimp" => Ok(MergeTags::Mailchimp),
            "generic" => Ok(MergeTags::Generic),
            _ => Err(format!("`{s}`: expected mailchimp or generic")),
        }
    }
}

impl MergeTags {
    pub(super) fn map(self, tag: &str) -> Option<&'static str> {
        let t = tag.trim();
        match self {
            MergeTags::Mailchimp => Some(match t {
                "FNAME" | "NAME" => "recipient.name",
                "EMAIL" => "recipient.email",
                "UNSUB" => "recipient.unsubscribe_url",
                "ARCHIVE" => "recipient.view_url",
                "LIST:NAME" | "LIST:COMPANY" => "newsletter.name",
                "LIST:ADDRESS" | "LIST:ADDRESSLINE" | "HTML:LIST_ADDRESS_HTML" => {
                    "newsletter.postal_address"
                }
                "MC:SUBJECT" | "MC_SUBJECT" => "issue.subject",
                "MC_PREVIEW_TEXT" => "issue.preheader",
                _ => return None,
            }),
            MergeTags::Generic => Some(match t {
                "first_name" | "name" | "subscriber.name" | "subscriber.first_name" => {
                    "recipient.name"
                }
                "email" | "subscriber.email" => "recipient.email",
                "unsubscribe_url" | "unsubscribe" | "unsubscribe_link" => {
                    "recipient.unsubscribe_url"
                }
                "browser_url" | "web_version_url" | "view_in_browser_url" => "recipient.view_url",
                "company_address" | "postal_address" => "newsletter.postal_address",
                "newsletter_name" | "list_name" => "newsletter.name",
                "subject" => "issue.subject",
                _ => return None,
            }),
        }
    }
}

/// What a merge tag becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// A per-recipient placeholder.
    Recipient(Slot),
    /// A subscriber attribute (`recipient.attributes.KEY`), with the text
    /// used when a subscriber lacks it.
    Attribute {
        key: String,
        default: Option<String>,
    },
    /// A value known when the issue is compiled.
    Fixed(Fixed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fixed {
    NewsletterName,
    PostalAddress,
    ListId,
    FromAddress,
    IssueSubject,
    IssuePreheader,
    IssueSlug,
    IssueDate,
    IssueDateIso,
}

pub(super) fn native(key: &str) -> Option<Target> {
    if let Some(attr) = key.strip_prefix("recipient.attributes.") {
        return crate::domain::is_attr_key(attr).then(|| Target::Attribute {
            key: attr.to_string(),
            default: None,
        });
    }
    Some(match key {
        "recipient.name" => Target::Recipient(Slot::Name),
        "recipient.email" => Target::Recipient(Slot::Email),
        "recipient.unsubscribe_url" => Target::Recipient(Slot::UnsubscribeUrl),
        "recipient.view_url" => Target::Recipient(Slot::ViewUrl),
        "newsletter.name" => Target::Fixed(Fixed::NewsletterName),
        "newsletter.postal_address" => Target::Fixed(Fixed::PostalAddress),
        "newsletter.list_id" => Target::Fixed(Fixed::ListId),
        "newsletter.from_address" => Target::Fixed(Fixed::FromAddress),
        "issue.subject" => Target::Fixed(Fixed::IssueSubject),
        "issue.preheader" => Target::Fixed(Fixed::IssuePreheader),
        "issue.slug" => Target::Fixed(Fixed::IssueSlug),
        "issue.date" => Target::Fixed(Fixed::IssueDate),
        "issue.date_iso" => Target::Fixed(Fixed::IssueDateIso),
        _ => return None,
    })
}

/// A merge tag in the design: its byte range and what it becomes.
#[derive(Debug, Clone)]
pub(super) struct Tag {
    pub(super) range: Range<usize>,
    pub(super) target: Target,
}

/// The MJML of a design, its merge tags resolved.
#[derive(Debug, Clone)]
pub struct Design {
    pub(super) source: String,
    pub(super) tags: Vec<Tag>,
}
