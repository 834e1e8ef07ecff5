//! Print subscribers' unsubscribe URLs, one per line, signed with the key
//! `herald serve` uses (same settings: config files and HERALD__ variables).
//! For trying an installation by hand, the browser test and the load
//! benchmark; real links reach people inside issues.
//!
//! cargo run --example unsubscribe_links -- [--status active] [--limit N]

use clap::Parser;
use herald::config::Settings;
use herald::domain::SubscriberStatus;
use herald::store::Store;
use herald::token::TokenClaims;

#[derive(Parser)]
struct Args {
    /// Only subscribers with this status (default: all).
    #[arg(long, value_enum)]
    status: Option<SubscriberStatus>,
    /// At most this many links.
    #[arg(long, default_value_t = 10)]
    limit: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load(None)?;
    let store = Store::open(&settings.database).await?;
    let keys = herald::secrets::signing_keys(&store, &settings.unsubscribe).await?;
    let base = settings.http.public_base_url.trim_end_matches('/');
    let mut after = 0;
    let mut printed = 0;
    'pages: loop {
        let page = store.subscribers_page(args.status, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for sub in page {
            if printed == args.limit {
                break 'pages;
            }
            let token = keys.sign(TokenClaims {
                subscriber_id: sub.id,
                issue_id: None,
            });
            println!("{base}/unsubscribe/{token}");
            printed += 1;
        }
    }
    store.close().await;
    Ok(())
}
