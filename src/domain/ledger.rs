//! The states of the delivery ledger and of an issue version, and the
//! per-state counts of one issue's ledger. Stored as text (see
//! `store/states.rs`); the tables' CHECK constraints list the same names.

use super::text_enum::text_enum;

text_enum! {
    /// Where one recipient's delivery of an issue version stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum DeliveryState ("delivery state") {
        /// In the audience snapshot, not attempted yet (or given back).
        Pending = "pending",
        /// Durably taken by a run; may be with SMTP right now.
        Claimed = "claimed",
        /// The server accepted it.
        Sent = "sent",
        /// A temporary failure; tried again from `next_attempt_at`.
        Deferred = "deferred",
        /// A permanent failure.
        Failed = "failed",
        /// The reply was lost after the body: it may have been delivered.
        Unknown = "unknown",
        /// The subscriber was no longer active when the row was claimed.
        Skipped = "skipped",
        /// Never to be attempted: the send was aborted.
        Cancelled = "cancelled",
    }
}

impl DeliveryState {
    /// Still work for a run (not final).
    pub fn is_open(self) -> bool {
        match self {
            DeliveryState::Pending
            | DeliveryState::Claimed
            | DeliveryState::Deferred
            | DeliveryState::Unknown => true,
            DeliveryState::Sent
            | DeliveryState::Failed
            | DeliveryState::Skipped
            | DeliveryState::Cancelled => false,
        }
    }
}

text_enum! {
    /// Where an issue version stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum IssueState ("issue state") {
        /// Registered (a test send, a dry run or a refused start); not sending.
        Draft = "draft",
        /// Waiting for its time; `run-due` starts it.
        Scheduled = "scheduled",
        /// Its live send started (or a `run-due` is starting it).
        Sending = "sending",
        /// Every delivery reached a final state.
        Sent = "sent",
        /// Its scheduled time passed beyond the lateness guard; not sent.
        Missed = "missed",
        /// Its schedule was cancelled before the send started.
        Cancelled = "cancelled",
        /// Stopped for good by `herald abort`.
        Aborted = "aborted",
    }
}

/// Rows per delivery state of one issue version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    pub pending: i64,
    pub claimed: i64,
    pub sent: i64,
    pub deferred: i64,
    pub failed: i64,
    pub unknown: i64,
    pub skipped: i64,
    pub cancelled: i64,
}

impl LedgerCounts {
    /// The count of one state.
    pub fn get(&self, state: DeliveryState) -> i64 {
        match state {
            DeliveryState::Pending => self.pending,
            DeliveryState::Claimed => self.claimed,
            DeliveryState::Sent => self.sent,
            DeliveryState::Deferred => self.deferred,
            DeliveryState::Failed => self.failed,
            DeliveryState::Unknown => self.unknown,
            DeliveryState::Skipped => self.skipped,
            DeliveryState::Cancelled => self.cancelled,
        }
    }

    /// Add `n` rows in `state`.
    pub fn add(&mut self, state: DeliveryState, n: i64) {
        let slot = match state {
            DeliveryState::Pending => &mut self.pending,
            DeliveryState::Claimed => &mut self.claimed,
            DeliveryState::Sent => &mut self.sent,
            DeliveryState::Deferred => &mut self.deferred,
            DeliveryState::Failed => &mut self.failed,
            DeliveryState::Unknown => &mut self.unknown,
            DeliveryState::Skipped => &mut self.skipped,
            DeliveryState::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }

    /// Every state with its count, in display order.
    pub fn iter(&self) -> impl Iterator<Item = (DeliveryState, i64)> + '_ {
        DeliveryState::ALL.into_iter().map(|s| (s, self.get(s)))
    }

    /// Rows in any state.
    pub fn total(&self) -> i64 {
        self.iter().map(|(_, n)| n).sum()
    }

    /// Rows a run still has work on (pending, claimed, deferred, unknown).
    pub fn open(&self) -> i64 {
        self.iter()
            .filter(|(s, _)| s.is_open())
            .map(|(_, n)| n)
            .sum()
    }

    /// "pending 0, claimed 0, sent 3, …" in display order.
    pub fn describe(&self) -> String {
        self.iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// As a JSON object `{ "cancelled": n, "claimed": n, … }` (every state,
/// keys in alphabetical order, as the status and overview output had).
impl serde::Serialize for LedgerCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut states = DeliveryState::ALL;
        states.sort_by_key(|s| s.as_str());
        let mut map = serializer.serialize_map(Some(states.len()))?;
        for s in states {
            map.serialize_entry(s.as_str(), &self.get(s))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_from_their_text() {
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(s));
        }
        for s in IssueState::ALL {
            assert_eq!(s.as_str().parse::<IssueState>(), Ok(s));
        }
        assert!("bounced".parse::<DeliveryState>().is_err());
        assert!("done".parse::<IssueState>().is_err());
    }

    #[test]
    fn counts_add_up_and_name_every_state() {
        let mut c = LedgerCounts::default();
        c.add(DeliveryState::Sent, 3);
        c.add(DeliveryState::Deferred, 2);
        c.add(DeliveryState::Unknown, 1);
        assert_eq!(c.total(), 6);
        assert_eq!(c.open(), 3);
        assert_eq!(
            c.describe(),
            "pending 0, claimed 0, sent 3, deferred 2, failed 0, unknown 1, skipped 0, cancelled 0"
        );
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["sent"], 3);
        assert_eq!(json.as_object().unwrap().len(), 8);
    }
}
