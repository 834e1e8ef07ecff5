//! `GET /healthz`: 200 when the database answers, 503 when it does not;
//! the body names the backend (`sqlite` or `postgres`).

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// A database that takes longer than this to answer `SELECT 1` is down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz(State(state): State<AppState>) -> Response {
    let up = tokio::time::timeout(PING_TIMEOUT, state.store().ping())
        .await
        .unwrap_or(false);
    let mut res = if up {
        (
            StatusCode::OK,
            format!("ok\ndatabase: {}\n", state.store().backend_name()),
        )
            .into_response()
    } else {
        tracing::warn!("health check: database unreachable");
        let body = format!("database unreachable: {}\n", state.store().backend_name());
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    };
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
