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
    .with_webhooks(crate::http::webhooks::Webhooks {
        mailgun_signing_key: settings.bounce.mailgun_signing_key.clone(),
        bearer_token: settings.bounce.webhook_token.clone(),
        sns: sns_verifier(settings)?,
        list_id: settings.newsletter.list_id.clone(),
        soft_limit: settings.bounce.soft_limit,
    });
    let app = Application::bind(addr, state).await?;
    // Scripts that bind port 0 read the address from here.
    println!("listening on http://{}", app.local_addr());
    std::io::stdout().flush()?;
    tracing::info!(address = %app.local_addr(), "serving");
    app.run_until_stopped().await?;
    store.close().await;
    Ok(0)
}

/// The SES/SNS verifier when `bounce.ses_topic_arn` is set.
fn sns_verifier(settings: &Settings) -> anyhow::Result<Option<crate::http::sns::SnsVerifier>> {
    let b = &settings.bounce;
    let Some(topic) = &b.ses_topic_arn else {
        return Ok(None);
    };
    let ca = match &b.ses_test_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| bad_input!("bounce.ses_test_ca_file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    crate::http::sns::SnsVerifier::new(topic.clone(), b.ses_test_cert_host.clone(), ca.as_deref())
        .map(Some)
}
