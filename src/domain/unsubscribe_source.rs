//! `UnsubscribeSource`: what moved a subscriber out of `active`. Only an
//! unsubscribe made through the subscriber's own link may be undone through
//! that link.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnsubscribeSource {
    /// A POST to the List-Unsubscribe URL (RFC 8058 one-click, or any POST).
    OneClick,
    /// The button on herald's unsubscribe page.
    Page,
    /// The `unsubscribe+TOKEN@domain` mailto fallback.
    Mailto,
    /// `herald subscribers unsubscribe`.
    Operator,
    /// A CSV import with a non-active status.
    Import,
    /// A permanent bounce.
    Bounce,
    /// A spam complaint.
    Complaint,
}

impl UnsubscribeSource {
    pub const ALL: [UnsubscribeSource; 7] = [
        UnsubscribeSource::OneClick,
        UnsubscribeSource::Page,
        UnsubscribeSource::Mailto,
        UnsubscribeSource::Operator,
        UnsubscribeSource::Import,
        UnsubscribeSource::Bounce,
        UnsubscribeSource::Complaint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnsubscribeSource::OneClick => "one-click",
            UnsubscribeSource::Page => "page",
            UnsubscribeSource::Mailto => "mailto",
            UnsubscribeSource::Operator => "operator",
            UnsubscribeSource::Import => "import",
            UnsubscribeSource::Bounce => "bounce",
            UnsubscribeSource::Complaint => "complaint",
        }
    }

    /// Made with the subscriber's own link token, so the same link may undo
    /// it (within the undo window).
    pub fn made_by_link(self) -> bool {
        matches!(
            self,
            UnsubscribeSource::OneClick | UnsubscribeSource::Page | UnsubscribeSource::Mailto
        )
    }

    /// The stored names of the sources a link may undo, for SQL.
    pub fn link_sources_json() -> String {
        let names: Vec<&str> = UnsubscribeSource::ALL
            .into_iter()
            .filter(|s| s.made_by_link())
            .map(UnsubscribeSource::as_str)
            .collect();
        serde_json::to_string(&names).expect("strings serialise")
    }
}

impl fmt::Display for UnsubscribeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UnsubscribeSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnsubscribeSource::ALL
            .into_iter()
            .find(|src| src.as_str() == s)
            .ok_or_else(|| format!("unknown unsubscribe source `{s}`"))
    }
}
