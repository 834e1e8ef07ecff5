//! Amazon SES bounce and complaint notifications, delivered by SNS to
//! `POST /webhooks/ses`. Every message is verified before anything else:
//! its topic must be the configured one, its signing certificate must come
//! over HTTPS from an SNS host (`sns.<region>.amazonaws.com`), and its RSA
//! signature (SignatureVersion 1: SHA-1, 2: SHA-256) must check against
//! that certificate. Subscription confirmations are confirmed by fetching
//! the SubscribeURL (same host rule); Bounce and Complaint notifications are
//! recorded; Delivery notifications are ignored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use http_body_util::BodyExt;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde::Deserialize;
use tokio_rustls::rustls;
use x509_cert::der::{DecodePem, Encode};

use super::{pages, AppState};
use crate::bounce::report::Outcome;
use crate::bounce::{Event, Matcher};

/// How SNS messages are checked. Built once at start-up.
pub struct SnsVerifier {
    topic_arn: String,
    /// A `host[:port]` accepted besides the SNS pattern (tests only).
    extra_host: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    keys: Mutex<HashMap<String, RsaPublicKey>>,
}

impl SnsVerifier {
    /// `extra_ca` (PEM) is trusted in addition to the public roots, and
    /// `extra_host` accepted besides `sns.<region>.amazonaws.com`: both for
    /// tests against a local HTTPS server.
    pub fn new(
        topic_arn: String,
        extra_host: Option<String>,
        extra_ca: Option<&[u8]>,
    ) -> anyhow::Result<SnsVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca {
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                roots
                    .add(cert.context("reading the extra CA certificate")?)
                    .context("adding the extra CA certificate")?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(SnsVerifier {
            topic_arn,
            extra_host,
            tls: Arc::new(tls),
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// An https URL on an SNS host (or the test host).
    fn allowed_url(&self, raw: &str) -> Option<url::Url> {
        let url = url::Url::parse(raw).ok()?;
        if url.scheme() != "https" || url.username() != "" || url.password().is_some() {
            return None;
        }
        let host = url.host_str()?;
        let with_port = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let sns = host
            .strip_prefix("sns.")
            .and_then(|r| r.strip_suffix(".amazonaws.com"))
            .is_some_and(|region| {
                !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
            && url.port().is_none();
        (sns || self.extra_host.as_deref() == Some(with_port.as_str())).then_some(url)
    }

    async fn public_key(&self, cert_url: &url::Url) -> anyhow::Result<RsaPublicKey> {
        if let Some(key) = self
            .keys
            .lock()
            .expect("not poisoned")
            .get(cert_url.as_str())
        {
            return Ok(key.clone());
        }
        let pem = https_get(&self.tls, cert_url).await?;
        let cert = x509_cert::Certificate::from_pem(&pem).context("reading the SNS certificate")?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .context("encoding the certificate's key")?;
        let key =
            RsaPublicKey::from_public_key_der(&spki).context("the certificate's key is not RSA")?;
        self.keys
            .lock()
            .expect("not poisoned")
            .insert(cert_url.to_string(), key.clone());
        Ok(key)
    }

    /// Check a message's topic, certificate and signature.
    async fn verify(&self, m: &SnsMessage) -> Result<(), &'static str> {
        if m.topic_arn != self.topic_arn {
            return Err("unexpected topic");
        }
        let cert_url = self
            .allowed_url(&m.signing_cert_url)
            .ok_or("signing certificate not on an SNS host")?;
        let key = self
            .public_key(&cert_url)
            .await
            .map_err(|_| "signing certificate unavailable")?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&m.signature)
            .ok()
            .and_then(|s| Signature::try_from(s.as_slice()).ok())
            .ok_or("malformed signature")?;
        let text = m.string_to_sign().ok_or("incomplete message")?;
        let ok = match m.signature_version.as_str() {
            "1" => VerifyingKey::<sha1::Sha1>::new(key).verify(text.as_bytes(), &signature),
            "2" => VerifyingKey::<sha2::Sha256>::new(key).verify(text.as_bytes(), &signature),
            _ => return Err("unknown signature version"),
        };
        ok.map_err(|_| "bad signature")
    }
}

/// GET an https URL (certificate or subscription confirmation), at most
/// 64 KiB, within 10 s.
async fn https_get(tls: &Arc<rustls::ClientConfig>, url: &url::Url) -> anyhow::Result<Vec<u8>> {
    let work = async {
        let host = url.host_str().context("no host")?.to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, host)
            .body(http_body_util::Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
        let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_bytes();
        anyhow::Ok(body.to_vec())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .context("timed out")?
}

#[derive(Deserialize)]
struct SnsMessage {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "SignatureVersion")]
    signature_version: String,
    #[serde(rename = "Signature")]
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
    #[serde(rename = "SubscribeURL", default)]
    subscribe_url: Option<String>,
    #[serde(rename = "Token", default)]
    token: Option<String>,
}

impl SnsMessage {
    /// The canonical text SNS signs: `Name\nvalue\n` for the type's fields,
    /// in byte order of their names.
    fn string_to_sign(&self) -> Option<String> {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind.as_str() {
            "Notification" => {
                if let Some(s) = &self.subject {
                    fields.push(("Subject", s));
                }
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                fields.push(("SubscribeURL", self.subscribe_url.as_deref()?));
                fields.push(("Token", self.token.as_deref()?));
            }
            _ => return None,
        }
        fields.push(("Timestamp", &self.timestamp));
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        fields.sort_by_key(|(name, _)| *name);
        Some(fields.iter().map(|(n, v)| format!("{n}\n{v}\n")).collect())
    }
}

/// `POST /webhooks/ses`.
pub async fn ses(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(w) = state.webhooks() else {
        return pages::not_found();
    };
    let Some(verifier) = &w.sns else {
        return pages::not_found();
    };
    let Ok(message) = serde_json::from_slice::<SnsMessage>(&body) else {
        return pages::plain_text(StatusCode::BAD_REQUEST, "not an SNS message\n");
    };
    if let Err(why) = verifier.verify(&message).await {
        tracing::warn!(reason = why, "refused an SNS message");
        return pages::plain_text(StatusCode::FORBIDDEN, "signature not verified\n");
    }
    match message.kind.as_str() {
        "SubscriptionConfirmation" => {
            let Some(url) = message
                .subscribe_url
                .as_deref()
                .and_then(|u| verifier.allowed_url(u))
            else {
                return pages::plain_text(
                    StatusCode::FORBIDDEN,
                    "subscribe URL not on an SNS host\n",
                );
            };
            match https_get(&verifier.tls, &url).await {
                Ok(_) => {
                    tracing::info!(topic = message.topic_arn, "confirmed the SNS subscription");
                    pages::plain_text(StatusCode::OK, "subscription confirmed\n")
                }
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "confirming the SNS subscription failed"
                    );
                    pages::plain_text(StatusCode::BAD_GATEWAY, "could not confirm\n")
                }
            }
        }
        "Notification" => notification(&state, &message).await,
        _ => pages::plain_text(StatusCode::OK, "ignored\n"),
    }
}

async fn notification(state: &AppState, message: &SnsMessage) -> Response {
    let Ok(n) = serde_json::from_str::<SesNotification>(&message.message) else {
        return pages::plain_text(StatusCode::OK, "ignored: not an SES notification\n");
    };
    let Some(w) = state.webhooks() else {
        return pages::not_found();
    };
    let message_id = n.mail.as_ref().and_then(|m| {
        m.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("message-id"))
            .map(|h| h.value.clone())
    });
    let mut events: Vec<(Outcome, String, Option<String>, Option<String>)> = Vec::new();
    match (n.notification_type.as_str(), &n.bounce, &n.complaint) {
        ("Bounce", Some(b), _) => {
            for r in &b.bounced_recipients {
                let outcome = match b.bounce_type.as_str() {
                    "Permanent" => Outcome::Hard,
                    _ => Outcome::Soft,
                };
                events.push((
                    outcome,
                    r.email_address.clone(),
                    r.status.clone(),
                    r.diagnostic_code.clone(),
                ));
            }
        }
        ("Complaint", _, Some(c)) => {
            for r in &c.complained_recipients {
                events.push((
                    Outcome::Complaint,
                    r.email_address.clone(),
                    None,
                    c.complaint_feedback_type.clone(),
                ));
            }
        }
        // Delivery, Send, Open…: nothing to act on.
        _ => return pages::plain_text(StatusCode::OK, "ignored\n"),
    }
    let matcher = Matcher {
        store: state.store(),
        keys: state.keys(),
        list_id: &w.list_id,
        soft_limit: w.soft_limit,
    };
    let raw = message.message.chars().take(64 * 1024).collect::<String>();
    for (i, (outcome, email, status, diagnostic)) in events.iter().enumerate() {
        let fingerprint = format!("ses:{}:{i}", message.message_id);
        let event = Event {
            outcome: *outcome,
            email,
            message_id: message_id.as_deref(),
            status: status.as_deref(),
            diagnostic: diagnostic.as_deref(),
            source: "webhook:ses",
            fingerprint: &fingerprint,
            raw: Some(&raw),
        };
        if let Err(e) = matcher.ingest_event(&event).await {
            tracing::error!(error = format!("{e:#}"), "recording an SES event failed");
            return pages::plain_text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
        }
    }
    pages::plain_text(StatusCode::OK, "recorded\n")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesNotification {
    notification_type: String,
    #[serde(default)]
    bounce: Option<SesBounce>,
    #[serde(default)]
    complaint: Option<SesComplaint>,
    #[serde(default)]
    mail: Option<SesMail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    #[serde(default)]
    bounced_recipients: Vec<SesRecipient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesComplaint {
    #[serde(default)]
    complained_recipients: Vec<SesRecipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesRecipient {
    email_address: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
struct SesMail {
    #[serde(default)]
    headers: Vec<SesHeader>,
}

#[derive(Deserialize)]
struct SesHeader {
    name: String,
    value: String,
}
