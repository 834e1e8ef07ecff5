//! `herald demo`: the whole job on embedded defaults, no server needed.

use crate::cli::DemoArgs;
use crate::config::Settings;
use crate::{import, secrets};

/// The bundled sample audience (fictional people on reserved domains, with a
/// few deliberately bad rows).
pub const SAMPLE_SUBSCRIBERS: &str = include_str!("../../config/sample-subscribers.csv");

pub async fn run(settings: &Settings, args: DemoArgs) -> anyhow::Result<u8> {
    let store = super::open_store(settings).await?;
    secrets::ensure_signing_key(&store, settings).await?;
    println!("database: {}", settings.database.url);

    let report = match &args.subscribers {
        Some(path) => {
            import::import_csv(&store, path, |r| {
                eprintln!("{}:{}: rejected: {}", path.display(), r.line, r.reason)
            })
            .await?
        }
        None => {
            import::import_reader(
                &store,
                "sample-subscribers.csv",
                SAMPLE_SUBSCRIBERS.as_bytes(),
                |r| eprintln!("sample-subscribers.csv:{}: rejected: {}", r.line, r.reason),
            )
            .await?
        }
    };
    println!("subscribers import: {report}");
    let counts = store.subscriber_counts().await?;
    println!("audience: {}", super::init::format_counts(&counts));
    store.close().await;
    Ok(0)
}
