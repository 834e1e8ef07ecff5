//! `UnsubscribeSource`: what moved a subscriber out of `active`. Only an
//! unsubscribe made through the subscriber's own link may be undone through
//! that link.

use super::text_enum::text_enum;

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum UnsubscribeSource ("unsubscribe source") {
        /// A POST to the List-Unsubscribe URL (RFC 8058 one-click, or any POST).
        OneClick = "one-click",
        /// The button on herald's unsubscribe page.
        Page = "page",
        /// The `unsubscribe+TOKEN@domain` mailto fallback.
        Mailto = "mailto",
        /// `herald subscribers unsubscribe`.
        Operator = "operator",
        /// A CSV import with a non-active status.
        Import = "import",
        /// A permanent bounce.
        Bounce = "bounce",
        /// A spam complaint.
        Complaint = "complaint",
    }
}

impl UnsubscribeSource {
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
