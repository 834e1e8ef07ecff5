//! Prometheus metrics (`GET /metrics`, OpenMetrics text) and the middleware
//! that counts and logs every request by route template, never by raw path
//! (the path holds the token).
//!
//! Counters live in memory for the life of the process; gauges that describe
//! the database are read from it at each scrape ([`DatabaseGauges`]).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::unsubscribe::Via;
use super::AppState;
use crate::store::Store;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Route label for requests no route matched.
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnsubscribeLabels {
    via: &'static str,
    /// `unsubscribed` when this request changed the status, else `unchanged`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// Every metric `herald serve` exposes.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    unsubscribes: Family<UnsubscribeLabels, Counter>,
    resubscribes: Counter,
    database: DatabaseGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("herald");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let unsubscribes = Family::<UnsubscribeLabels, Counter>::default();
        registry.register(
            "unsubscribes",
            "Unsubscribe POSTs served with a genuine token, by how they came \
             (one_click, page, other) and whether they changed the status",
            unsubscribes.clone(),
        );
        let resubscribes = Counter::default();
        registry.register(
            "resubscribes",
            "Unsubscribes undone from the confirmation page",
            resubscribes.clone(),
        );
        // Every series exists from the start, so dashboards see zeros.
        for via in [Via::OneClick, Via::Page, Via::Other] {
            for result in ["unsubscribed", "unchanged"] {
                let _ = unsubscribes.get_or_create(&UnsubscribeLabels {
                    via: via.as_str(),
                    result,
                });
            }
        }
        let database = DatabaseGauges::register(&mut registry);
        Metrics {
            registry,
            http_requests,
            unsubscribes,
            resubscribes,
            database,
        }
    }

    pub fn unsubscribe_served(&self, via: Via, changed: bool) {
        let result = if changed { "unsubscribed" } else { "unchanged" };
        self.unsubscribes
            .get_or_create(&UnsubscribeLabels {
                via: via.as_str(),
                result,
            })
            .inc();
    }

    pub fn resubscribe_served(&self) {
        self.resubscribes.inc();
    }

    fn request_answered(&self, route: &str, method: &'static str, status: StatusCode) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method,
                status: status.as_u16(),
            })
            .inc();
    }

    /// Refresh the database gauges and encode everything.
    pub async fn render(&self, store: &Store) -> anyhow::Result<String> {
        self.database.refresh(store).await?;
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Gauges read from the database at every scrape. This is the place for
/// more of them: a ledger's deliveries by state for recent issues go here as
/// one more family registered in [`DatabaseGauges::register`] and one more
/// store query in [`DatabaseGauges::refresh`].
struct DatabaseGauges {
    subscribers: Family<StatusLabels, Gauge>,
    deliveries: Family<DeliveryLabels, Gauge>,
    /// Recorded bounces by kind: a counter (rows are never deleted),
    /// advanced to the database's count at each scrape.
    bounces: Family<KindLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    /// The issue slug, with `-vN` for versions after the first.
    issue: String,
    state: &'static str,
}

/// How many recently started issues `herald_deliveries` reports.
const RECENT_ISSUES: i64 = 5;

impl DatabaseGauges {
    fn register(registry: &mut Registry) -> DatabaseGauges {
        let subscribers = Family::<StatusLabels, Gauge>::default();
        registry.register("subscribers", "Subscribers by status", subscribers.clone());
        let deliveries = Family::<DeliveryLabels, Gauge>::default();
        registry.register(
            "deliveries",
            "Delivery ledger rows by state, for the most recently started issues",
            deliveries.clone(),
        );
        let bounces = Family::<KindLabels, Counter>::default();
        registry.register(
            "bounces",
            "Bounce and complaint reports recorded, by kind",
            bounces.clone(),
        );
        DatabaseGauges {
            subscribers,
            deliveries,
            bounces,
        }
    }

    async fn refresh(&self, store: &Store) -> anyhow::Result<()> {
        for (status, n) in store.subscriber_counts().await? {
            self.subscribers
                .get_or_create(&StatusLabels { status })
                .set(n);
        }
        for (kind, n) in store.bounce_counts(None).await? {
            let counter = self.bounces.get_or_create(&KindLabels { kind });
            let n = u64::try_from(n).unwrap_or(0);
            if n > counter.get() {
                counter.inc_by(n - counter.get());
            }
        }
        let recent = store.recent_delivery_counts(RECENT_ISSUES).await?;
        // Issues that are no longer recent drop out of the family.
        self.deliveries.clear();
        for (slug, version, state, n) in recent {
            let issue = if version > 1 {
                format!("{slug}-v{version}")
            } else {
                slug
            };
            self.deliveries
                .get_or_create(&DeliveryLabels {
                    issue,
                    state: state.as_str(),
                })
                .set(n);
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    match state.metrics().render(state.store()).await {
        Ok(body) => {
            let mut res = body.into_response();
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "metrics scrape failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics unavailable: database unreachable\n",
            )
                .into_response()
        }
    }
}

/// Route layer: copy the matched route template into the response, where
/// [`observe`] (outside the router) can read it.
pub async fn tag_route(matched: MatchedPath, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.extensions_mut().insert(matched);
    res
}

/// Outermost layer: count and log each request once it is answered. Logs
/// the route template, never the path.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let started = Instant::now();
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or(UNMATCHED);
    let status = res.status();
    state.metrics().request_answered(route, method, status);
    tracing::info!(
        method,
        route,
        status = status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    res
}

/// A bounded label set: the methods herald answers, and `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        _ => "other",
    }
}
