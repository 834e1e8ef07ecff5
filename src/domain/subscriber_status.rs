//! `SubscriberStatus`: where a subscriber stands.

use super::text_enum::text_enum;

text_enum! {
    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
    )]
    #[serde(rename_all = "lowercase")]
    pub enum SubscriberStatus ("subscriber status") {
        /// Receives issues.
        Active = "active",
        /// Asked to stop; never re-activated by an import.
        Unsubscribed = "unsubscribed",
        /// The mailbox does not exist (permanent 5.1.x bounce).
        Bounced = "bounced",
        /// Marked a message as spam.
        Complained = "complained",
    }
}
