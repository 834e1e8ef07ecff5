//! `herald demo`: the whole job on embedded defaults, no server needed.

use crate::cli::DemoArgs;
use crate::config::Settings;
use crate::{import, secrets};

/// The bundled sample audience (fictional people on reserved domains, with a
/// few deliberately bad rows).
pub const SAMPLE_SUBSCRIBERS: &str = include_str!("../../config/sample-subscribers.csv");

/// The bundled example issue, written out when the installation directory
/// does not have it (so the demo runs anywhere).
pub const SAMPLE_ISSUE_PATH: &str = "issues/2018-12-14-migration-news.toml";
const SAMPLE_ISSUE: &str = include_str!("../../issues/2018-12-14-migration-news.toml");

pub async fn run(settings: &Settings, args: DemoArgs) -> anyhow::Result<u8> {
    let store = super::open_store(settings).await?;
    secrets::ensure_signing_key(&store, &settings.unsubscribe).await?;
    println!(
        "database: {}",
        crate::store::redact_url(&settings.database.url)
    );

    let report = match &args.subscribers {
        Some(path) => {
            import::import_csv(&store, path, |r| eprintln!("{}:{r}", path.display())).await?
        }
        None => {
            import::import_reader(
                &store,
                "sample-subscribers.csv",
                SAMPLE_SUBSCRIBERS.as_bytes(),
                |r| eprintln!("sample-subscribers.csv:{r}"),
            )
            .await?
        }
    };
    println!("subscribers import: {report}");
    let counts = store.subscriber_counts().await?;
    println!("audience: {}", super::init::format_counts(&counts));

    let issue = match &args.issue {
        Some(path) => path.clone(),
        None => {
            let path = settings.home.join(SAMPLE_ISSUE_PATH);
            if !path.exists() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, SAMPLE_ISSUE)?;
            }
            path
        }
    };
    let opts = super::send::LiveOptions {
        yes: true,
        force_new_version: false,
        allow_unsafe_links: false,
        merge_tags: None,
    };
    let result = super::send::live(settings, &store, &issue, &opts, None).await;
    store.close().await;
    let code = result?;
    if settings.transport.kind == crate::config::TransportKind::Outbox {
        println!(
            "messages are in {}/ (one .eml per subscriber); `herald status {}` shows the ledger",
            settings.transport.outbox_dir.display(),
            issue.display()
        );
    }
    Ok(code)
}
