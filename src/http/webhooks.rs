//! Bounce and complaint webhooks from email service providers, each
//! authenticated the way its provider signs requests and each off unless
//! configured: Mailgun (HMAC-SHA256 over timestamp + token, within a replay
//! window), Amazon SES through SNS (`sns`: certificate and RSA signature)
//! and a generic JSON endpoint behind a bearer token. A request
//! that fails authentication changes nothing and gets 401 or 403.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{pages, AppState};
use crate::bounce::report::Outcome;
use crate::bounce::{Event, Matcher};

/// How far a Mailgun timestamp may be from now (replay window).
pub const REPLAY_WINDOW_SECS: i64 = 15 * 60;
/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// What the webhook endpoints need; `None` keys leave that endpoint off.
pub struct Webhooks {
    pub mailgun_signing_key: Option<SecretString>,
    pub bearer_token: Option<SecretString>,
    /// Amazon SES through SNS: `POST /webhooks/ses`.
    pub sns: Option<super::sns::SnsVerifier>,
    pub list_id: String,
    pub soft_limit: u32,
}

/// `POST /webhooks/mailgun`.
pub async fn mailgun(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(key) = state
        .webhooks()
        .and_then(|w| w.mailgun_signing_key.as_ref())
    else {
        return pages::not_found();
    };
    let Ok(payload) = serde_json::from_slice::<MailgunPayload>(&body) else {
        return pages::plain_text(StatusCode::BAD_REQUEST, "not a Mailgun webhook payload\n");
    };
    let sig = &payload.signature;
    if !mailgun_signature_ok(key, &sig.timestamp, &sig.token, &sig.signature) {
        return pages::plain_text(StatusCode::FORBIDDEN, "bad signature\n");
    }
    let fresh = sig
        .timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= REPLAY_WINDOW_SECS);
    if !fresh {
        return pages::plain_text(StatusCode::FORBIDDEN, "stale timestamp\n");
    }
    let e = &payload.event_data;
    let status = e.delivery_status.as_ref().and_then(|d| {
        d.enhanced_code.clone().or_else(|| {
            d.code
                .as_ref()
                .map(|c| c.to_string().trim_matches('"').to_string())
        })
    });
    let diagnostic = e
        .delivery_status
        .as_ref()
        .and_then(|d| d.message.clone().or_else(|| d.description.clone()))
        .or_else(|| e.reason.clone());
    let outcome = match (e.event.as_str(), e.severity.as_deref()) {
        ("complained", _) => Outcome::Complaint,
        ("failed", Some("permanent")) => {
            crate::bounce::report::classify(status.as_deref(), diagnostic.as_deref())
        }
        ("failed", _) => Outcome::Soft,
        // Deliveries, opens, clicks…: not ours to act on.
        _ => return pages::plain_text(StatusCode::OK, "ignored\n"),
    };
    let Some(email) = e.recipient.as_deref() else {
        return pages::plain_text(StatusCode::BAD_REQUEST, "no recipient\n");
    };
    let message_id = e
        .message
        .as_ref()
        .and_then(|m| m.headers.message_id.as_deref());
    let fingerprint = format!(
        "mailgun:{}",
        e.id.clone().unwrap_or_else(|| sig.token.clone())
    );
    let raw = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned();
    record(
        &state,
        Event {
            outcome,
            email,
            message_id,
            status: status.as_deref(),
            diagnostic: diagnostic.as_deref(),
            source: "webhook:mailgun",
            fingerprint: &fingerprint,
            raw: Some(&raw),
        },
    )
    .await
}

/// Mailgun signs `timestamp ‖ token` with HMAC-SHA256 under the webhook
/// signing key; the signature is hex.
pub fn mailgun_signature_ok(
    key: &SecretString,
    timestamp: &str,
    token: &str,
    signature: &str,
) -> bool {
    let Ok(expected) = hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// `POST /webhooks/bounce`: `{"email", "kind": "hard|soft|complaint",
/// "message_id"?, "status"?, "diagnostic"?, "id"?}` with
/// `Authorization: Bearer TOKEN`.
pub async fn generic(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = state.webhooks().and_then(|w| w.bearer_token.as_ref()) else {
        return pages::not_found();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests, so the time taken says nothing about the token.
    let same = Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose_secret().as_bytes());
    if given.is_empty() || !same {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized\n",
        )
            .into_response();
    }
    let Ok(event) = serde_json::from_slice::<GenericEvent>(&body) else {
        return pages::plain_text(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"email\", \"kind\": \"hard|soft|complaint\", ...}\n",
        );
    };
    let outcome = match event.kind.as_str() {
        "hard" => Outcome::Hard,
        "soft" => Outcome::Soft,
        "complaint" => Outcome::Complaint,
        _ => {
            return pages::plain_text(
                StatusCode::BAD_REQUEST,
                "kind must be hard, soft or complaint\n",
            )
        }
    };
    let fingerprint = format!(
        "generic:{}",
        event
            .id
            .clone()
            .unwrap_or_else(|| hex::encode(Sha256::digest(&body)))
    );
    let raw = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned();
    record(
        &state,
        Event {
            outcome,
            email: &event.email,
            message_id: event.message_id.as_deref(),
            status: event.status.as_deref(),
            diagnostic: event.diagnostic.as_deref(),
            source: "webhook:generic",
            fingerprint: &fingerprint,
            raw: Some(&raw),
        },
    )
    .await
}

async fn record(state: &AppState, event: Event<'_>) -> Response {
    let Some(w) = state.webhooks() else {
        return pages::not_found();
    };
    let matcher = Matcher {
        store: state.store(),
        keys: state.keys(),
        list_id: &w.list_id,
        soft_limit: w.soft_limit,
    };
    match matcher.ingest_event(&event).await {
        Ok(line) => {
            tracing::info!(
                source = event.source,
                kind = line.kind,
                new = line.recorded.new,
                marked = line.recorded.marked,
                "bounce event"
            );
            pages::plain_text(StatusCode::OK, "recorded\n")
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "recording a bounce event failed");
            // 5xx: the provider retries later.
            pages::plain_text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n")
        }
    }
}

#[derive(Deserialize)]
struct MailgunPayload {
    signature: MailgunSignature,
    #[serde(rename = "event-data")]
    event_data: MailgunEvent,
}

#[derive(Deserialize)]
struct MailgunSignature {
    timestamp: String,
    token: String,
    signature: String,
}

#[derive(Deserialize)]
struct MailgunEvent {
    event: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    recipient: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default, rename = "delivery-status")]
    delivery_status: Option<MailgunDeliveryStatus>,
    #[serde(default)]
    message: Option<MailgunMessage>,
}

#[derive(Deserialize)]
struct MailgunDeliveryStatus {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "enhanced-code")]
    enhanced_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct MailgunMessage {
    #[serde(default)]
    headers: MailgunHeaders,
}

#[derive(Deserialize, Default)]
struct MailgunHeaders {
    #[serde(default, rename = "message-id")]
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct GenericEvent {
    email: String,
    kind: String,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    diagnostic: Option<String>,
    #[serde(default)]
    id: Option<String>,
}
