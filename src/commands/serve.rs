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
    let addr = resolve_bind(addr, source).await?;
    let store = super::open_existing_store(settings).await?;
    if !secrets::has_signing_key(&store, &settings.unsubscribe).await? {
        store.close().await;
        return Err(bad_input!(
            "the database at {} holds no unsubscribe signing key and unsubscribe.secret is not \
             set, so no link in any sent message could be verified (run `herald init` there, \
             or set unsubscribe.secret)",
            crate::store::redact_url(&settings.database.url)
        ));
    }
    let keys = secrets::signing_keys(&store, &settings.unsubscribe).await?;
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
    })
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

/// `IP:PORT`, or `NAME:PORT` resolved (the first address it resolves to).
async fn resolve_bind(addr: &str, source: &str) -> anyhow::Result<SocketAddr> {
    let addr = addr.trim();
    if let Ok(ip) = addr.parse::<SocketAddr>() {
        return Ok(ip);
    }
    let usage = "expected HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or localhost:8080";
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(bad_input!("{source} `{addr}`: {usage}"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad_input!("{source} `{addr}`: {usage}"));
    }
    let mut found = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| bad_input!("{source} `{addr}`: cannot resolve `{host}`: {e}"))?;
    found
        .next()
        .ok_or_else(|| bad_input!("{source} `{addr}`: `{host}` resolves to no address"))
}
