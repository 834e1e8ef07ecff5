//! `herald init`: create/migrate the database and make sure an unsubscribe
//! signing key exists.

use crate::config::Settings;
use crate::secrets;

pub async fn run(settings: &Settings) -> anyhow::Result<u8> {
    let store = super::open_store(settings).await?;
    let origin = secrets::ensure_signing_key(&store, settings).await?;
    let counts = store.subscriber_counts().await?;
    store.close().await;
    println!("database ready: {}", settings.database.url);
    println!("unsubscribe signing key: {origin}");
    let total: i64 = counts.values().sum();
    println!("subscribers: {total} ({})", format_counts(&counts));
    Ok(0)
}

pub(crate) fn format_counts(counts: &std::collections::BTreeMap<&'static str, i64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
