//! Retry policy: what a transport result means for the ledger row, and how
//! long to wait before the next attempt.

use std::time::Duration;

use rand::Rng;

use crate::mailer::transport::{SendResult, Stage};
use crate::store::deliveries::{ClaimedDelivery, Outcome};

/// Knobs from `[sender]`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
}

/// Longest delay between two attempts of one message.
const MAX_DELAY: Duration = Duration::from_secs(6 * 3600);

impl RetryPolicy {
    /// Delay before attempt `attempts + 1`: base × 2^(attempts-1), ±20 %
    /// jitter so deferred rows do not come back in lockstep.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(20);
        let raw = self.base.saturating_mul(1 << exp).min(MAX_DELAY);
        let jitter = rand::rng().random_range(0.8..1.2);
        raw.mul_f64(jitter)
    }

    /// The ledger outcome of one attempt. `now` is the recording time,
    /// used to compute the next attempt.
    pub fn outcome(
        &self,
        job: &ClaimedDelivery,
        result: &SendResult,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Outcome {
        let id = job.id;
        let temporary = |code: Option<u16>, reply: String| {
            let attempts = u32::try_from(job.attempts).unwrap_or(u32::MAX);
            if attempts >= self.max_attempts {
                Outcome::Failed {
                    id,
                    code,
                    reply: format!("{reply} (gave up after {attempts} attempts)"),
                    bounce: None,
                }
            } else {
                let next =
                    now + chrono::Duration::from_std(self.delay(attempts)).unwrap_or_default();
                Outcome::Deferred {
                    id,
                    code,
                    reply,
                    next_attempt_at: crate::store::format_time(next),
                }
            }
        };
        match result {
            SendResult::Accepted { code, reply } => Outcome::Sent {
                id,
                code: *code,
                reply: reply.clone(),
            },
            SendResult::Rejected { code, reply, .. } if *code >= 500 => Outcome::Failed {
                id,
                code: Some(*code),
                reply: reply.clone(),
                bounce: is_bad_mailbox(reply).then_some(job.subscriber_id),
            },
            SendResult::Rejected { code, reply, .. } => temporary(Some(*code), reply.clone()),
            SendResult::Lost {
                stage: Stage::Envelope,
                detail,
            }
            | SendResult::Stale { detail } => temporary(None, detail.clone()),
            SendResult::Lost {
                stage: Stage::Body,
                detail,
            } => Outcome::Unknown {
                id,
                reply: detail.clone(),
            },
        }
    }
}

/// Does a permanent reply carry an enhanced status 5.1.x (bad destination
/// mailbox or address)?
pub fn is_bad_mailbox(reply: &str) -> bool {
    reply.split_whitespace().next().is_some_and(|word| {
        word.starts_with("5.1.") && word[4..].chars().all(|c| c.is_ascii_digit()) && word.len() > 4
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(attempts: i64) -> ClaimedDelivery {
        ClaimedDelivery {
            id: 1,
            subscriber_id: 9,
            email: crate::domain::SubscriberEmail::parse("a@example.org").unwrap(),
            name: None,
            attributes: Default::default(),
            message_id: "m@example.org".into(),
            attempts,
        }
    }

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(60),
    };

    fn rejected(code: u16, reply: &str) -> SendResult {
        SendResult::Rejected {
            code,
            reply: reply.into(),
            stage: Stage::Envelope,
            reusable: true,
        }
    }

    #[test]
    fn replies_map_to_ledger_states() {
        let now = chrono::Utc::now();
        assert!(matches!(
            P.outcome(&job(1), &rejected(450, "4.2.0 busy"), now),
            Outcome::Deferred { .. }
        ));
        assert!(matches!(
            P.outcome(&job(3), &rejected(451, "4.3.0 later"), now),
            Outcome::Failed { bounce: None, .. }
        ));
        assert!(matches!(
            P.outcome(&job(1), &rejected(550, "5.1.1 no such user"), now),
            Outcome::Failed {
                bounce: Some(9),
                ..
            }
        ));
        assert!(matches!(
            P.outcome(&job(1), &rejected(554, "5.7.1 spam"), now),
            Outcome::Failed { bounce: None, .. }
        ));
        let lost_body = SendResult::Lost {
            stage: Stage::Body,
            detail: "eof".into(),
        };
        assert!(matches!(
            P.outcome(&job(1), &lost_body, now),
            Outcome::Unknown { .. }
        ));
        let lost_env = SendResult::Lost {
            stage: Stage::Envelope,
            detail: "eof".into(),
        };
        assert!(matches!(
            P.outcome(&job(1), &lost_env, now),
            Outcome::Deferred { code: None, .. }
        ));
    }

    #[test]
    fn delay_grows_exponentially_with_bounded_jitter() {
        for (attempt, base) in [(1u32, 60.0f64), (2, 120.0), (3, 240.0)] {
            let d = P.delay(attempt).as_secs_f64();
            assert!(d >= base * 0.8 && d <= base * 1.2, "attempt {attempt}: {d}");
        }
        assert!(P.delay(40) <= MAX_DELAY.mul_f64(1.2));
    }

    #[test]
    fn only_enhanced_5_1_x_means_a_bad_mailbox() {
        assert!(is_bad_mailbox(
            "5.1.1 <x@example.org>: Recipient address rejected"
        ));
        assert!(is_bad_mailbox("5.1.10 null MX"));
        assert!(!is_bad_mailbox("5.7.1 rejected as spam"));
        assert!(!is_bad_mailbox("No such user here"));
        assert!(!is_bad_mailbox("5.1."));
    }
}
