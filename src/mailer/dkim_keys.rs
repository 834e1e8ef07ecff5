//! DKIM keys for `herald dkim`: generate a private key in the format the
//! signer loads (RSA: PKCS#1 PEM; Ed25519: the base64 32-byte seed), derive
//! the public key from a key file, and format the DNS TXT record to publish
//! (RFC 6376 §3.6.1; Ed25519 per RFC 8463), split into strings of at most
//! 255 bytes as DNS TXT data requires.

use anyhow::Context;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::EncodePublicKey;

use crate::config::DkimAlgorithm;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// RSA keys herald generates.
pub const RSA_BITS: usize = 2048;

/// The longest character-string in DNS TXT data.
const TXT_CHUNK: usize = 255;

/// rand 0.9's thread-local CSPRNG behind the rand_core 0.6 traits rsa uses.
struct Rng(rand::rngs::ThreadRng);

impl rsa::rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        rand::RngCore::next_u32(&mut self.0)
    }
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut self.0, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        rand::RngCore::fill_bytes(&mut self.0, dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Rng {}

/// A new private key, as the key file's contents.
pub fn generate(algorithm: DkimAlgorithm) -> anyhow::Result<String> {
    match algorithm {
        DkimAlgorithm::Rsa => {
            let key = rsa::RsaPrivateKey::new(&mut Rng(rand::rng()), RSA_BITS)
                .context("generating an RSA key")?;
            Ok(key
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .context("encoding the RSA key")?
                .to_string())
        }
        DkimAlgorithm::Ed25519 => {
            let seed: [u8; 32] = rand::random();
            Ok(format!("{}\n", B64.encode(seed)))
        }
    }
}

/// The `p=` value (base64 public key) for a key file's contents.
pub fn public_key(algorithm: DkimAlgorithm, private: &str) -> anyhow::Result<String> {
    match algorithm {
        DkimAlgorithm::Rsa => {
            let key = rsa::RsaPrivateKey::from_pkcs1_pem(private.trim())
                .context("not an RSA private key in PKCS#1 PEM")?;
            let der = key
                .to_public_key()
                .to_public_key_der()
                .context("encoding the RSA public key")?;
            Ok(B64.encode(der.as_bytes()))
        }
        DkimAlgorithm::Ed25519 => {
            let seed: [u8; 32] = B64
                .decode(private.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("not a base64 32-byte Ed25519 seed")?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            Ok(B64.encode(key.verifying_key().to_bytes()))
        }
    }
}

/// The TXT record's owner name.
pub fn record_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// The TXT record's text (one string, before splitting).
pub fn record_text(algorithm: DkimAlgorithm, public: &str) -> String {
    let k = match algorithm {
        DkimAlgorithm::Rsa => "rsa",
        DkimAlgorithm::Ed25519 => "ed25519",
    };
    format!("v=DKIM1; k={k}; p={public}")
}

/// The text as quoted DNS strings of at most 255 bytes each (the record
/// text is ASCII, so any split point is safe).
pub fn quoted_strings(text: &str) -> String {
    text.as_bytes()
        .chunks(TXT_CHUNK)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_public_keys_are_32_bytes_and_records_name_the_algorithm() {
        let private = generate(DkimAlgorithm::Ed25519).unwrap();
        let public = public_key(DkimAlgorithm::Ed25519, &private).unwrap();
        assert_eq!(B64.decode(&public).unwrap().len(), 32);
        let text = record_text(DkimAlgorithm::Ed25519, &public);
        assert!(text.starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(quoted_strings(&text), format!("\"{text}\""));
        assert!(public_key(DkimAlgorithm::Ed25519, "bm90IGEga2V5").is_err());
    }

    #[test]
    fn long_records_split_into_strings_of_at_most_255_bytes() {
        let text = "a".repeat(600);
        let quoted = quoted_strings(&text);
        let parts: Vec<&str> = quoted.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() <= 257));
        assert_eq!(parts.concat().replace('"', ""), text);
    }
}
