//! Unsubscribe tokens: the only credential in an unsubscribe link.
//!
//! A token is base64url (no padding) of `version ‖ subscriber id ‖ issue id ‖
//! MAC`, where MAC is HMAC-SHA256 over a domain-separation label and the
//! payload, truncated to 128 bits and checked in constant time. The issue id
//! lets a token be traced to the issue that carried it (0 = none). During a
//! key rotation a previous key is still accepted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::config::MIN_SIGNING_KEY_BYTES;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const LABEL: &[u8] = b"herald/unsubscribe/v1";
const PAYLOAD_LEN: usize = 1 + 8 + 8;
const MAC_LEN: usize = 16;
const TOKEN_LEN: usize = PAYLOAD_LEN + MAC_LEN;

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenClaims {
    pub subscriber_id: i64,
    /// The issue whose message carried the link, if any.
    pub issue_id: Option<i64>,
}

/// The signing key in force and, during a rotation, the previous one.
#[derive(Clone)]
pub struct SigningKeys {
    current: SecretString,
    previous: Option<SecretString>,
    /// HMAC keyed with `current`, cloned for each token signed: keying
    /// (two SHA-256 blocks) is done once, not once per message.
    keyed: HmacSha256,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys([REDACTED])")
    }
}

impl SigningKeys {
    pub fn new(current: SecretString, previous: Option<SecretString>) -> SigningKeys {
        let keyed = HmacSha256::new_from_slice(current.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        SigningKeys {
            current,
            previous,
            keyed,
        }
    }

    /// Sign a token for `subscriber_id` (and the issue carrying it).
    pub fn sign(&self, claims: TokenClaims) -> String {
        let mut bytes = [0u8; TOKEN_LEN];
        bytes[0] = VERSION;
        bytes[1..9].copy_from_slice(&(claims.subscriber_id as u64).to_be_bytes());
        bytes[9..17].copy_from_slice(&(claims.issue_id.unwrap_or(0) as u64).to_be_bytes());
        let mut m = self.keyed.clone();
        m.update(LABEL);
        m.update(&bytes[..PAYLOAD_LEN]);
        let tag = m.finalize().into_bytes();
        bytes[PAYLOAD_LEN..].copy_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The claims of a genuine token, or `None` for anything else
    /// (tampered, truncated, foreign, signed with a retired key, garbage).
    pub fn verify(&self, token: &str) -> Option<TokenClaims> {
        if token.len() != (TOKEN_LEN * 4).div_ceil(3) {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != TOKEN_LEN || bytes[0] != VERSION {
            return None;
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        // A key too weak to be a signing key never verifies anything, even
        // if it got past the configuration checks: an empty or one-letter
        // key would make every link forgeable.
        let genuine = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .filter(|key| key.expose_secret().len() >= MIN_SIGNING_KEY_BYTES)
            .any(|key| mac(key, payload).verify_truncated_left(tag).is_ok());
        if !genuine {
            return None;
        }
        let subscriber_id = u64::from_be_bytes(payload[1..9].try_into().ok()?) as i64;
        let issue = u64::from_be_bytes(payload[9..17].try_into().ok()?) as i64;
        Some(TokenClaims {
            subscriber_id,
            issue_id: (issue != 0).then_some(issue),
        })
    }
}

/// The unsubscribe link carrying `token`: `BASE/unsubscribe/TOKEN`, where
/// `base` is the public base URL (or, on the HTTP side, its path), with or
/// without a trailing slash.
pub fn unsubscribe_url(base: &str, token: &str) -> String {
    format!("{}/unsubscribe/{token}", base.trim_end_matches('/'))
}

/// VERP tokens: `ISSUE-SUBSCRIBER-MAC` in decimal and lower-case hex, so an
/// MTA that folds the local part to lower case keeps them intact. The MAC
/// is HMAC-SHA256 under the same keys with its own label, truncated to 64
/// bits: enough that a forged token is never taken for a real one.
const VERP_LABEL: &[u8] = b"herald/verp/v1";
const VERP_MAC_LEN: usize = 8;

impl SigningKeys {
    /// The token for the envelope sender of `subscriber_id`'s copy of
    /// `issue_id`.
    pub fn sign_verp(&self, issue_id: i64, subscriber_id: i64) -> String {
        let tag = verp_mac(&self.current, issue_id, subscriber_id);
        format!("{issue_id}-{subscriber_id}-{}", hex::encode(tag))
    }

    /// `(issue_id, subscriber_id)` of a genuine VERP token (any case).
    pub fn verify_verp(&self, token: &str) -> Option<(i64, i64)> {
        let mut parts = token.split('-');
        let issue_id: i64 = parts.next()?.parse().ok()?;
        let subscriber_id: i64 = parts.next()?.parse().ok()?;
        let tag = hex::decode(parts.next()?.to_ascii_lowercase()).ok()?;
        if parts.next().is_some()
            || tag.len() != VERP_MAC_LEN
            || issue_id <= 0
            || subscriber_id <= 0
        {
            return None;
        }
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .filter(|key| key.expose_secret().len() >= MIN_SIGNING_KEY_BYTES)
            .any(|key| {
                verp_hmac(key, issue_id, subscriber_id)
                    .verify_truncated_left(&tag)
                    .is_ok()
            })
            .then_some((issue_id, subscriber_id))
    }
}

fn verp_hmac(key: &SecretString, issue_id: i64, subscriber_id: i64) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    m.update(VERP_LABEL);
    m.update(&issue_id.to_be_bytes());
    m.update(&subscriber_id.to_be_bytes());
    m
}

fn verp_mac(key: &SecretString, issue_id: i64, subscriber_id: i64) -> [u8; VERP_MAC_LEN] {
    let full = verp_hmac(key, issue_id, subscriber_id)
        .finalize()
        .into_bytes();
    let mut tag = [0u8; VERP_MAC_LEN];
    tag.copy_from_slice(&full[..VERP_MAC_LEN]);
    tag
}

fn mac(key: &SecretString, payload: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    m.update(LABEL);
    m.update(payload);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(current: &str, previous: Option<&str>) -> SigningKeys {
        SigningKeys::new(current.into(), previous.map(Into::into))
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let k = keys("current-secret-0123456789abcdefghij", None);
        let claims = TokenClaims {
            subscriber_id: 42,
            issue_id: Some(7),
        };
        let t = k.sign(claims);
        assert_eq!(t.len(), 44);
        assert_eq!(k.verify(&t), Some(claims));
        let none = TokenClaims {
            subscriber_id: 1,
            issue_id: None,
        };
        assert_eq!(k.verify(&k.sign(none)), Some(none));
    }

    #[test]
    fn previous_key_is_accepted_during_rotation_and_retired_keys_are_not() {
        let old = keys("old-secret-0123456789abcdefghijklmn", None);
        let t = old.sign(TokenClaims {
            subscriber_id: 5,
            issue_id: None,
        });
        assert!(keys(
            "new-secret-0123456789abcdefghijklmn",
            Some("old-secret-0123456789abcdefghijklmn")
        )
        .verify(&t)
        .is_some());
        assert!(keys("new-secret-0123456789abcdefghijklmn", None)
            .verify(&t)
            .is_none());
    }

    #[test]
    fn weak_keys_never_verify_a_token() {
        for weak in ["", "x", "0123456789abcdef0123456789abcde"] {
            let forger = keys(weak, None);
            let t = forger.sign(TokenClaims {
                subscriber_id: 3,
                issue_id: None,
            });
            assert!(forger.verify(&t).is_none(), "key of {} bytes", weak.len());
            let rotating = keys("current-secret-0123456789abcdefghij", Some(weak));
            assert!(
                rotating.verify(&t).is_none(),
                "previous key of {} bytes",
                weak.len()
            );
        }
    }

    #[test]
    fn verp_tokens_verify_in_any_case_and_forgeries_do_not() {
        let k = keys("current-secret-0123456789abcdefghij", None);
        let t = k.sign_verp(12, 3456);
        assert!(t.starts_with("12-3456-") && t.len() <= 40, "{t}");
        assert_eq!(k.verify_verp(&t), Some((12, 3456)));
        assert_eq!(k.verify_verp(&t.to_ascii_uppercase()), Some((12, 3456)));
        let other = t.replacen("12-3456", "12-3457", 1);
        assert_eq!(k.verify_verp(&other), None);
        assert_eq!(k.verify_verp("12-3456-0000000000000000"), None);
        assert_eq!(k.verify_verp("garbage"), None);
        let rotated = keys(
            "new-secret-0123456789abcdefghijklmn",
            Some("current-secret-0123456789abcdefghij"),
        );
        assert_eq!(rotated.verify_verp(&t), Some((12, 3456)));
    }

    #[test]
    fn tampered_truncated_and_garbage_tokens_fail() {
        let k = keys("current-secret-0123456789abcdefghij", None);
        let t = k.sign(TokenClaims {
            subscriber_id: 42,
            issue_id: Some(7),
        });
        assert!(k.verify(&t[..t.len() - 1]).is_none());
        assert!(k.verify("").is_none());
        assert!(k.verify("not a token at all").is_none());
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[8] ^= 1; // another subscriber id
        assert!(k.verify(&URL_SAFE_NO_PAD.encode(&raw)).is_none());
    }

    proptest! {
        #[test]
        fn verify_never_panics_and_rejects_random_input(s in ".{0,80}") {
            let k = keys("current-secret-0123456789abcdefghij", None);
            prop_assert!(k.verify(&s).is_none());
        }

        #[test]
        fn any_single_bit_flip_is_rejected(id in 1i64..i64::MAX, issue in 0i64..1_000_000, bit in 0usize..(TOKEN_LEN * 8)) {
            let k = keys("current-secret-0123456789abcdefghij", None);
            let t = k.sign(TokenClaims { subscriber_id: id, issue_id: (issue != 0).then_some(issue) });
            let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
            raw[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(k.verify(&URL_SAFE_NO_PAD.encode(&raw)).is_none());
        }
    }
}
