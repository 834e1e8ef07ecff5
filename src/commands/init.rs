//! `herald init`: create/migrate the database and make sure an unsubscribe
//! signing key exists.

use crate::config::Settings;
use crate::secrets;

pub async fn run(settings: &Settings) -> anyhow::Result<u8> {
    let store = super::open_store(settings).await?;
    let origin = secrets::ensure_signing_key(&store, &settings.unsubscribe).await?;
    let counts = store.subscriber_counts().await?;
    store.close().await;
    println!(
        "database ready: {}",
        crate::store::redact_url(&settings.database.url)
    );
    println!("unsubscribe signing key: {origin}");
    let total: i64 = counts.values().sum();
    println!("subscribers: {total} ({})", format_counts(&counts));
    // The database holds the signing key and every address: say so when
    // others can read it (it predates herald's 0600 files, or was copied).
    if let Some(file) = crate::home::database_file(&settings.database.url) {
        for path in [file.clone(), sidecar(&file, "-wal"), sidecar(&file, "-shm")] {
            if crate::private_fs::readable_by_others(&path) {
                eprintln!(
                    "herald: warning: {} can be read by other users of this machine; it holds the unsubscribe signing key and every subscriber's address (fix: chmod 600 {})",
                    path.display(),
                    path.display()
                );
            }
        }
    }
    Ok(0)
}

pub(crate) fn format_counts(counts: &std::collections::BTreeMap<&'static str, i64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `herald.db` → `herald.db-wal`.
fn sidecar(file: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}
