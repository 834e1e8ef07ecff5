//! DKIM signing with lettre, relaxed/relaxed, over the headers that matter
//! to receivers (including List-Unsubscribe and List-Unsubscribe-Post).
//! Content-Type is deliberately not signed: signing it broke multipart
//! verification in testing.

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

/// A loaded DKIM key and its signing parameters.
pub struct Signer {
    config: DkimConfig,
}

impl Signer {
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
        Ok(Signer { config })
    }

    pub(crate) fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }
}
