//! `herald serve`: the HTTP side of herald. Owns the axum router, the
//! unsubscribe pages and the RFC 8058 one-click endpoint, `/healthz` and
//! `/metrics`, the bounce webhooks, the web version and archive of sent
//! issues, and the server that runs them until SIGINT/SIGTERM.
//!
//! Invariants: HTTP never sends mail; SQL stays in `store/`; a GET never
//! changes state; tokens never reach the logs (requests are logged by route
//! template, never by raw path); internal errors are logged, never echoed.
//!
//! - `server`: binding, the accept loop, timeouts, graceful shutdown.
//! - `unsubscribe`: the unsubscribe and resubscribe handlers.
//! - `pages`: the HTML pages, their response headers, and the short
//!   plain-text answers to webhooks.
//! - `metrics`: Prometheus metrics and the request-logging middleware.
//! - `health`: `/healthz`.
//! - `batch`: batches the subscriber reads and writes of concurrent requests.
//! - `webhooks`: bounce and complaint webhooks (Mailgun, generic JSON).
//! - `sns`: Amazon SES bounces and complaints through SNS (certificate and
//!   signature checks).
//! - `web`: the web version of each sent issue.
//! - `archive`: the list of sent issues and its Atom feed.

pub(crate) mod archive;
pub(crate) mod batch;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod pages;
pub(crate) mod server;
pub mod sns;
pub(crate) mod unsubscribe;
pub(crate) mod web;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

use crate::error::BadInput;
use crate::store::Store;
use crate::token::SigningKeys;

pub use server::{shutdown_signal, Application};

/// Largest request body accepted (a one-click POST is ~200 bytes); larger
/// ones are answered 413.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Upper bound for handling one request, body included (408 after it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    webhooks: Option<Arc<webhooks::Webhooks>>,
}

struct Inner {
    store: Store,
    lookups: batch::Lookups,
    unsubscribes: batch::Unsubscribes,
    keys: SigningKeys,
    newsletter_name: String,
    base_path: String,
    /// `http.public_base_url` without a trailing slash (for the feed).
    public_base_url: String,
    /// `http.archive`.
    archive: bool,
    metrics: metrics::Metrics,
}

impl AppState {
    /// `public_base_url` is `http.public_base_url`: when it has a path
    /// (`https://example.org/news`), every route is served under that path.
    /// Call inside a tokio runtime (it starts the batching tasks).
    pub fn new(
        store: Store,
        keys: SigningKeys,
        newsletter_name: impl Into<String>,
        public_base_url: &str,
    ) -> Result<AppState, BadInput> {
        Ok(AppState {
            inner: Arc::new(Inner {
                lookups: batch::lookups(store.clone()),
                unsubscribes: batch::unsubscribes(store.clone()),
                store,
                keys,
                newsletter_name: newsletter_name.into(),
                base_path: base_path(public_base_url)?,
                public_base_url: public_base_url.trim_end_matches('/').to_string(),
                archive: true,
                metrics: metrics::Metrics::new(),
            }),
            webhooks: None,
        })
    }

    /// Turn on the bounce webhooks (each still off unless its key is set).
    pub fn with_webhooks(mut self, webhooks: webhooks::Webhooks) -> AppState {
        self.webhooks = Some(Arc::new(webhooks));
        self
    }

    pub fn webhooks(&self) -> Option<&webhooks::Webhooks> {
        self.webhooks.as_deref()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Batched reads of the subscriber a link names.
    pub fn lookups(&self) -> &batch::Lookups {
        &self.inner.lookups
    }

    /// Batched unsubscribes (group commit).
    pub fn unsubscribes(&self) -> &batch::Unsubscribes {
        &self.inner.unsubscribes
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.inner.keys
    }

    pub fn newsletter_name(&self) -> &str {
        &self.inner.newsletter_name
    }

    /// The path prefix of every route: `""` or e.g. `"/news"`.
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Turn the public archive on or off (on by default). Call right after
    /// [`AppState::new`], before the state is shared.
    pub fn with_archive(mut self, enabled: bool) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("with_archive is called before the state is shared")
            .archive = enabled;
        self
    }

    /// Is the public archive served?
    pub fn archive(&self) -> bool {
        self.inner.archive
    }

    /// `http.public_base_url` without a trailing slash.
    pub fn public_base_url(&self) -> &str {
        &self.inner.public_base_url
    }
}

/// The router, with no socket: tests drive it with `oneshot`.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::page).post(unsubscribe::unsubscribe),
        )
        .route("/resubscribe/{token}", post(unsubscribe::resubscribe))
        .route("/unsubscribe", get(web::unsubscribe_help))
        .route("/issues", get(archive::list))
        .route("/issues/feed.xml", get(archive::feed))
        .route("/issues/{slug}", get(web::issue))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::scrape))
        .route(
            "/webhooks/mailgun",
            post(webhooks::mailgun).layer(DefaultBodyLimit::max(webhooks::MAX_WEBHOOK_BYTES)),
        )
        .route(
            "/webhooks/ses",
            post(sns::ses).layer(DefaultBodyLimit::max(webhooks::MAX_WEBHOOK_BYTES)),
        )
        .route(
            "/webhooks/bounce",
            post(webhooks::generic).layer(DefaultBodyLimit::max(webhooks::MAX_WEBHOOK_BYTES)),
        )
        .route_layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .route_layer(from_fn(metrics::tag_route));
    let router = match state.base_path() {
        "" => routes,
        base => Router::new().nest(base, routes),
    };
    router
        .fallback(unsubscribe::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(state.clone(), metrics::observe))
        .with_state(state)
}

/// The path part of the public base URL, without a trailing slash.
fn base_path(public_base_url: &str) -> Result<String, BadInput> {
    let uri: Uri = public_base_url.parse().map_err(|e| {
        BadInput::new(format!(
            "invalid configuration: http.public_base_url `{public_base_url}`: {e}"
        ))
    })?;
    if uri.query().is_some() {
        return Err(BadInput::new(
            "invalid configuration: http.public_base_url must not have a query",
        ));
    }
    Ok(uri.path().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::base_path;

    #[test]
    fn base_path_is_the_url_path_without_trailing_slash() {
        assert_eq!(base_path("http://127.0.0.1:8080").unwrap(), "");
        assert_eq!(base_path("https://example.org/").unwrap(), "");
        assert_eq!(base_path("https://example.org/news/").unwrap(), "/news");
        assert_eq!(base_path("https://example.org/a/b").unwrap(), "/a/b");
        assert!(base_path("https://example.org/news?x=1").is_err());
        assert!(base_path("https://exa mple.org").is_err());
    }
}
