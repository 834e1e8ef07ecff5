//! The unsubscribe link: `GET /unsubscribe/{token}` shows a page and changes
//! nothing; `POST` to the same URL unsubscribes at once (RFC 8058 one-click
//! from a mailbox provider, or the page's own button) and answers 200 with
//! a confirmation page, never a redirect, no cookies, idempotent.
//! `POST /resubscribe/{token}` undoes a recent unsubscribe.
//!
//! The token in the URL is the only credential. Anything that is not a
//! genuine token, or names no subscriber, gets the same 404 page.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::{pages, AppState};
use crate::domain::{SubscriberStatus, UnsubscribeSource};
use crate::store::unsubscribe::LinkSubscriber;
use crate::store::StoreError;
use crate::token::{unsubscribe_url, TokenClaims};

/// How long after unsubscribing the confirmation page's "Resubscribe"
/// button works. An undo for a mis-click, short so that whoever holds a
/// forwarded copy of a message cannot re-subscribe its reader later.
pub const RESUBSCRIBE_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Why a handler did not produce its page.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Not a genuine token, or no such subscriber.
    #[error("not found")]
    NotFound,
    /// A genuine link from a test copy (of this newsletter): changes nothing.
    #[error("a test copy's link")]
    TestCopy(String),
    /// The request body was refused (too large, unreadable).
    #[error("bad request body: {0}")]
    Body(#[from] BytesRejection),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> LinkError {
        LinkError::Internal(anyhow::Error::new(e).context("reading or updating the subscriber"))
    }
}

impl IntoResponse for LinkError {
    fn into_response(self) -> Response {
        match self {
            LinkError::NotFound => pages::not_found(),
            LinkError::TestCopy(newsletter) => pages::test_copy(&newsletter),
            LinkError::Body(rejection) => pages::error(rejection.status()),
            LinkError::Internal(e) => {
                // Logged here, once; the client only learns it was our fault.
                tracing::error!(error = format!("{e:#}"), "unsubscribe link failed");
                pages::error(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// How an unsubscribe POST reached us, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The RFC 8058 body `List-Unsubscribe=One-Click` (a mailbox provider's
    /// button), in either form encoding.
    OneClick,
    /// The button on our own page.
    Page,
    /// Any other POST: still honoured, the URL is the credential.
    Other,
}

impl Via {
    /// What the ledger of subscriber changes records for this POST.
    pub fn source(self) -> UnsubscribeSource {
        match self {
            Via::Page => UnsubscribeSource::Page,
            Via::OneClick | Via::Other => UnsubscribeSource::OneClick,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Via::OneClick => "one_click",
            Via::Page => "page",
            Via::Other => "other",
        }
    }
}

/// `GET /unsubscribe/{token}`: the confirmation page. Changes nothing.
pub async fn page(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, LinkError> {
    let (_claims, sub, token) = resolve(&state, token).await?;
    let masked = pages::mask_email(sub.email.as_ref());
    let name = state.newsletter_name();
    Ok(match sub.status {
        SubscriberStatus::Active => {
            pages::confirm(name, &masked, &unsubscribe_url(state.base_path(), &token))
        }
        _ => unsubscribed_page(&state, &sub, &token),
    })
}

/// `POST /unsubscribe/{token}`: unsubscribe now. Whatever the body says,
/// a genuine token unsubscribes; the body only tells the metrics how.
pub async fn unsubscribe(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, LinkError> {
    let body = body?;
    let (claims, mut sub, token) = resolve(&state, token).await?;
    let via = classify(&headers, body).await;
    let changed = if sub.status == SubscriberStatus::Active {
        // Only an active subscriber costs a write; a repeat is a read.
        match state.unsubscribes().get((sub.id, via.source())).await? {
            Some(stamp) => {
                sub.status = SubscriberStatus::Unsubscribed;
                sub.unsubscribed_at = Some(stamp);
                sub.source = Some(via.source());
                true
            }
            // Changed by someone else between the read and the write.
            None => match state.store().link_subscriber(sub.id).await? {
                Some(now) => {
                    sub = now;
                    false
                }
                None => return Err(LinkError::NotFound),
            },
        }
    } else {
        false
    };
    state.metrics().unsubscribe_served(via, changed);
    if changed {
        tracing::info!(
            subscriber_id = claims.subscriber_id,
            issue_id = claims.issue_id,
            via = via.as_str(),
            "unsubscribed"
        );
    }
    Ok(unsubscribed_page(&state, &sub, &token))
}

/// `POST /resubscribe/{token}`: undo an unsubscribe made within
/// [`RESUBSCRIBE_WINDOW`]. Never re-activates a bounced or complained
/// address, nor one that unsubscribed longer ago.
pub async fn resubscribe(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, LinkError> {
    body?;
    let (claims, sub, token) = resolve(&state, token).await?;
    let name = state.newsletter_name();
    let masked = pages::mask_email(sub.email.as_ref());
    let unsubscribe_path = unsubscribe_url(state.base_path(), &token);
    let resubscribed = match sub.status {
        SubscriberStatus::Active => false,
        SubscriberStatus::Unsubscribed => {
            let since = Utc::now() - RESUBSCRIBE_WINDOW;
            if !state.store().resubscribe_if_recent(sub.id, since).await? {
                return Ok(pages::cannot_resubscribe(name));
            }
            true
        }
        SubscriberStatus::Bounced | SubscriberStatus::Complained => {
            return Ok(pages::cannot_resubscribe(name));
        }
    };
    if resubscribed {
        state.metrics().resubscribe_served();
        tracing::info!(
            subscriber_id = claims.subscriber_id,
            issue_id = claims.issue_id,
            "resubscribed"
        );
    }
    Ok(pages::resubscribed(name, &masked, &unsubscribe_path))
}

/// Any path no route matches: the same page as a bad token.
pub async fn fallback() -> Response {
    pages::not_found()
}

/// A genuine token and the subscriber it names, or [`LinkError::NotFound`].
async fn resolve(
    state: &AppState,
    token: Result<Path<String>, PathRejection>,
) -> Result<(TokenClaims, LinkSubscriber, String), LinkError> {
    let Ok(Path(token)) = token else {
        return Err(LinkError::NotFound);
    };
    let claims = state.keys().verify(&token).ok_or(LinkError::NotFound)?;
    if crate::test_copy::is_test_copy(&claims) {
        return Err(LinkError::TestCopy(state.newsletter_name().to_string()));
    }
    let sub = state
        .lookups()
        .get(claims.subscriber_id)
        .await?
        .ok_or(LinkError::NotFound)?;
    Ok((claims, sub, token))
}

/// The confirmation page for a subscriber who no longer receives issues,
/// with the undo button while the window is open.
fn unsubscribed_page(state: &AppState, sub: &LinkSubscriber, token: &str) -> Response {
    let masked = pages::mask_email(sub.email.as_ref());
    let undo_path =
        undo_open(sub, Utc::now()).then(|| format!("{}/resubscribe/{token}", state.base_path()));
    let undo = undo_path.as_deref().map(|path| pages::Undo {
        path,
        window_minutes: RESUBSCRIBE_WINDOW.as_secs() / 60,
    });
    pages::unsubscribed(state.newsletter_name(), &masked, undo)
}

/// Is the undo window for this subscriber's unsubscribe still open?
fn undo_open(sub: &LinkSubscriber, now: DateTime<Utc>) -> bool {
    // Only an unsubscribe a link made: never the operator's or an import's.
    if sub.status != SubscriberStatus::Unsubscribed
        || !sub.source.is_some_and(UnsubscribeSource::made_by_link)
    {
        return false;
    }
    let Some(at) = sub
        .unsubscribed_at
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    else {
        return false;
    };
    now.signed_duration_since(at.with_timezone(&Utc))
        .to_std()
        .is_ok_and(|age| age < RESUBSCRIBE_WINDOW)
}

/// Which kind of POST this was, from its form body.
pub async fn classify(headers: &HeaderMap, body: Bytes) -> Via {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Via::Other;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut via = Via::Other;
    let mut see = |name: &str, value: &str| match (name, value.trim()) {
        ("List-Unsubscribe", "One-Click") => via = Via::OneClick,
        ("source", "page") if via == Via::Other => via = Via::Page,
        _ => {}
    };
    match essence.as_str() {
        "application/x-www-form-urlencoded" => {
            for (name, value) in form_urlencoded::parse(&body) {
                see(&name, &value);
            }
        }
        "multipart/form-data" => {
            let Ok(boundary) = multer::parse_boundary(content_type) else {
                return Via::Other;
            };
            let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
            let mut multipart = multer::Multipart::new(stream, boundary);
            while let Ok(Some(field)) = multipart.next_field().await {
                let name = field.name().unwrap_or("").to_string();
                let Ok(value) = field.text().await else { break };
                see(&name, &value);
            }
        }
        _ => {}
    }
    via
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        h
    }

    #[tokio::test]
    async fn one_click_is_recognised_in_both_form_encodings() {
        let urlencoded = headers("application/x-www-form-urlencoded");
        assert_eq!(
            classify(
                &urlencoded,
                Bytes::from_static(b"List-Unsubscribe=One-Click")
            )
            .await,
            Via::OneClick
        );
        let multipart = headers("multipart/form-data; boundary=XyZ");
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
                    One-Click\r\n--XyZ--\r\n";
        assert_eq!(classify(&multipart, Bytes::from(body)).await, Via::OneClick);
    }

    #[tokio::test]
    async fn the_page_form_and_other_bodies_are_told_apart() {
        let urlencoded = headers("application/x-www-form-urlencoded");
        assert_eq!(
            classify(&urlencoded, Bytes::from_static(b"source=page")).await,
            Via::Page
        );
        assert_eq!(
            classify(&urlencoded, Bytes::from_static(b"List-Unsubscribe=Nope")).await,
            Via::Other
        );
        assert_eq!(classify(&HeaderMap::new(), Bytes::new()).await, Via::Other);
        let broken = headers("multipart/form-data; boundary=XyZ");
        assert_eq!(
            classify(&broken, Bytes::from_static(b"--XyZ\r\ngarbage")).await,
            Via::Other
        );
        let no_boundary = headers("multipart/form-data");
        assert_eq!(classify(&no_boundary, Bytes::new()).await, Via::Other);
    }

    #[test]
    fn the_undo_window_opens_at_unsubscribe_and_closes_after_the_window() {
        let now = Utc::now();
        let sub = |status, at: Option<DateTime<Utc>>| LinkSubscriber {
            id: 1,
            email: crate::domain::SubscriberEmail::parse("a@example.org").unwrap(),
            status,
            unsubscribed_at: at.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            source: Some(UnsubscribeSource::Page),
        };
        let recent = Some(now - chrono::Duration::minutes(5));
        let old = Some(now - chrono::Duration::hours(2));
        assert!(undo_open(&sub(SubscriberStatus::Unsubscribed, recent), now));
        for source in [
            None,
            Some(UnsubscribeSource::Operator),
            Some(UnsubscribeSource::Import),
        ] {
            let mut by_other = sub(SubscriberStatus::Unsubscribed, recent);
            by_other.source = source;
            assert!(!undo_open(&by_other, now), "{source:?}");
        }
        assert!(!undo_open(&sub(SubscriberStatus::Unsubscribed, old), now));
        assert!(!undo_open(&sub(SubscriberStatus::Unsubscribed, None), now));
        assert!(!undo_open(&sub(SubscriberStatus::Bounced, recent), now));
    }
}
