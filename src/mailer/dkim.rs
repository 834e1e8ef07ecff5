//! DKIM signing with lettre, relaxed/relaxed, over the headers that matter
//! to receivers (including List-Unsubscribe and List-Unsubscribe-Post).
//! Content-Type is deliberately not signed: signing it broke multipart
//! verification in testing. With several keys (dual signing, RSA and
//! Ed25519) every message carries one signature per key.

use anyhow::Context;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use lettre::Message;

use crate::bad_input;
use crate::config::{DkimAlgorithm, DkimSettings};

const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "MIME-Version",
];

/// The loaded DKIM keys and their signing parameters.
pub struct Signer {
    configs: Vec<DkimConfig>,
}

impl Signer {
    /// All configured keys; None when there is none.
    pub fn load_all(keys: &[DkimSettings]) -> anyhow::Result<Option<Signer>> {
        let mut configs = Vec::with_capacity(keys.len());
        for k in keys {
            configs.extend(Signer::load(k)?.configs);
        }
        Ok((!configs.is_empty()).then_some(Signer { configs }))
    }

    pub fn load(settings: &DkimSettings) -> anyhow::Result<Signer> {
        let pem = std::fs::read_to_string(&settings.private_key_path).map_err(|e| {
            bad_input!(
                "dkim.private_key_path {}: {e}",
                settings.private_key_path.display()
            )
        })?;
        let (algorithm, material) = match settings.algorithm {
            DkimAlgorithm::Rsa => (DkimSigningAlgorithm::Rsa, pem.trim().to_string()),
            // Ed25519 keys are the base64 of the 32-byte seed, one line.
            DkimAlgorithm::Ed25519 => (DkimSigningAlgorithm::Ed25519, pem.trim().to_string()),
        };
        let key = DkimSigningKey::new(&material, algorithm)
            .map_err(|e| {
                bad_input!(
                    "dkim.private_key_path {}: not a usable key: {e}",
                    settings.private_key_path.display()
                )
            })
            .context("loading the DKIM key")?;
        let headers = SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        let config = DkimConfig::new(
            settings.selector.clone(),
            settings.domain.clone(),
            key,
            headers,
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(Signer {
            configs: vec![config],
        })
    }

    /// Sign `message` with every key and return the message's wire bytes.
    /// lettre keeps one DKIM-Signature header (a new one replaces the old),
    /// so each earlier signature is taken from the formatted message and
    /// put in front of the final one. No signature covers another (the
    /// DKIM-Signature header is not among the signed headers), so their
    /// order does not matter to a verifier.
    pub(crate) fn sign(&self, message: &mut Message) -> Vec<u8> {
        let mut earlier = Vec::new();
        let (last, rest) = self.configs.split_last().expect("a signer has a key");
        for config in rest {
            message.sign(config);
            earlier.extend_from_slice(&signature_header(&message.formatted()));
        }
        message.sign(last);
        let mut wire = earlier;
        wire.extend_from_slice(&message.formatted());
        wire
    }
}

/// The DKIM-Signature header field (with its folded lines and CRLF) of a
/// formatted message.
fn signature_header(wire: &[u8]) -> Vec<u8> {
    let end_of_head = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(wire.len(), |p| p + 2);
    let head = &wire[..end_of_head];
    let mut out = Vec::new();
    let mut inside = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"DKIM-Signature:") {
            inside = true;
        } else if inside && !line.starts_with(b" ") && !line.starts_with(b"\t") {
            break;
        }
        if inside {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailer::message::{build, list_id_header, Bodies, MessageSpec};
    use base64::Engine;

    fn message() -> crate::mailer::OutgoingMessage {
        build(MessageSpec {
            from_name: "News",
            from_address: "news@example.org",
            to_address: "ana@example.org",
            to_name: Some("Ana"),
            reply_to: None,
            subject: "Hello",
            message_id: "x.1@example.org",
            unsubscribe_url: "https://news.example.org/unsubscribe/T",
            unsubscribe_mailto: None,
            list_id: &list_id_header("News", "news.example.org"),
            feedback_id: None,
            envelope_from: None,
            body: Bodies {
                text: b"hi\r\n".to_vec(),
                html: b"<p>hi</p>\r\n".to_vec(),
            },
        })
        .unwrap()
    }

    #[test]
    fn ed25519_keys_sign_relaxed_with_the_list_headers() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ed25519.key");
        let seed: [u8; 32] = rand::random();
        std::fs::write(&key, base64::engine::general_purpose::STANDARD.encode(seed)).unwrap();
        let signer = Signer::load(&DkimSettings {
            domain: "example.org".into(),
            selector: "ed".into(),
            private_key_path: key,
            algorithm: DkimAlgorithm::Ed25519,
        })
        .unwrap();
        let mut m = message();
        m.sign(&signer);
        let text = String::from_utf8(m.formatted().to_vec()).unwrap();
        let sig: String = text
            .split("\r\n")
            .skip_while(|l| !l.starts_with("DKIM-Signature:"))
            .take_while(|l| {
                l.starts_with("DKIM-Signature:") || l.starts_with(' ') || l.starts_with('\t')
            })
            .collect();
        assert!(sig.contains("a=ed25519-sha256"), "{sig}");
        assert!(sig.contains("c=relaxed/relaxed"), "{sig}");
        assert!(
            sig.contains(":list-unsubscribe:list-unsubscribe-post:"),
            "{sig}"
        );
    }

    #[test]
    fn an_unreadable_key_is_bad_input_naming_the_setting() {
        let err = Signer::load(&DkimSettings {
            domain: "example.org".into(),
            selector: "s".into(),
            private_key_path: "/nonexistent/key.pem".into(),
            algorithm: DkimAlgorithm::Rsa,
        })
        .err()
        .unwrap();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(format!("{err:#}").contains("dkim.private_key_path"));
    }
}
