//! The unsubscribe signing key: from configuration when set, otherwise one
//! random key generated once per installation and kept in the database.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::config::UnsubscribeSettings;
use crate::store::Store;
use crate::token::SigningKeys;

const META_KEY: &str = "unsubscribe_signing_key";

/// Where the signing key in force comes from (for `herald init` output).
pub async fn ensure_signing_key(
    store: &Store,
    settings: &UnsubscribeSettings,
) -> anyhow::Result<&'static str> {
    if settings.secret.is_some() {
        return Ok("from configuration");
    }
    let generated = store.meta_get(META_KEY).await?.is_none();
    signing_keys(store, settings).await?;
    Ok(if generated {
        "generated and stored in the database"
    } else {
        "stored in the database"
    })
}

/// The current key and, during a rotation, the previous one.
pub async fn signing_keys(
    store: &Store,
    settings: &UnsubscribeSettings,
) -> anyhow::Result<SigningKeys> {
    let current = match &settings.secret {
        // Strength and difference from the previous key were checked when
        // the settings were loaded.
        Some(secret) => secret.clone(),
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let fresh = hex::encode(bytes);
            SecretString::from(store.meta_get_or_insert(META_KEY, &fresh).await?)
        }
    };
    if let Some(previous) = &settings.previous_secret {
        if previous.expose_secret() == current.expose_secret() {
            return Err(crate::bad_input!(
                "invalid configuration: unsubscribe.previous_secret: must differ from the signing key in force"
            ));
        }
    }
    Ok(SigningKeys::new(current, settings.previous_secret.clone()))
}

/// Is there a key to verify links with, without generating one: configured,
/// or generated earlier into this database?
pub async fn has_signing_key(
    store: &Store,
    settings: &UnsubscribeSettings,
) -> anyhow::Result<bool> {
    Ok(settings.secret.is_some() || store.meta_get(META_KEY).await?.is_some())
}
