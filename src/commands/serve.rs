//! `herald serve`: run the HTTP endpoint (unsubscribe links, health,
//! metrics) until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;

use crate::bad_input;
use crate::config::Settings;
use crate::http::{AppState, Application};
use crate::secrets;

pub async fn run(settings: &Settings, bind: Option<&str>) -> anyhow::Result<u8> {
    let (addr, source) = match bind {
        Some(addr) => (addr, "--bind"),
        None => (settings.http.bind.as_str(), "http.bind"),
    };
    let addr: SocketAddr = addr.trim().parse().map_err(|_| {
        bad_input!("{source} `{addr}`: expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    })?;
    let store = super::open_store(settings).await?;
    let keys = secrets::signing_keys(&store, settings).await?;
    let state = AppState::new(
        store.clone(),
        keys,
        settings.newsletter.name.clone(),
        &settings.http.public_base_url,
    )?
    .with_archive(settings.http.archive);
    let app = Application::bind(addr, state).await?;
    // Scripts that bind port 0 read the address from here.
    println!("listening on http://{}", app.local_addr());
    std::io::stdout().flush()?;
    tracing::info!(address = %app.local_addr(), "serving");
    app.run_until_stopped().await?;
    store.close().await;
    Ok(0)
}
