//! The public web version of a sent issue (`GET /issues/{slug}`, the
//! "view in browser" link in every message) and the page its generic
//! unsubscribe link leads to. Only issues whose live send has started are
//! shown, except with a test copy's signed preview token
//! (`?preview=TOKEN`, see `crate::test_copy`), which opens the version it
//! names; nothing per-recipient appears on them. With the archive on, each
//! web version starts with a link back to it.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::{pages, AppState};
use crate::render::{CompiledIssue, Recipient};
use crate::store::issues::IssueRecord;
use crate::store::StoreResult;
use crate::test_copy::{preview_issue, PREVIEW_PARAM};

/// `GET /issues/{slug}[?preview=TOKEN]`.
pub async fn issue(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let preview = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == PREVIEW_PARAM)
            .map(|(_, v)| v.into_owned())
    });
    let found: StoreResult<Option<IssueRecord>> = match preview {
        Some(token) => match preview_issue(state.keys(), &token) {
            Some(id) => state
                .store()
                .issue_by_id(id)
                .await
                .map(|r| r.filter(|r| r.slug == slug)),
            None => Ok(None),
        },
        None => state
            .store()
            .latest_issue(&slug)
            .await
            .map(|r| r.filter(|r| r.started_at.is_some())),
    };
    let record = match found {
        Ok(Some(r)) => r,
        Ok(None) => return pages::not_found(),
        Err(e) => {
            tracing::error!(error = %e, "reading an issue for the web");
            return pages::error(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let compiled: CompiledIssue = match serde_json::from_str(&record.compiled) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, issue = %slug, "stored compiled issue is unreadable");
            return pages::error(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let base = state.base_path();
    let unsubscribe_url = format!("{base}/unsubscribe");
    let view_url = format!("{base}/issues/{slug}");
    let (html, _) = compiled.prepare().personalise(&Recipient {
        email: "you",
        name: None,
        unsubscribe_url: &unsubscribe_url,
        view_url: &view_url,
        attributes: None,
    });
    let html = if state.archive() {
        with_archive_link(&html, &format!("{base}/issues"))
    } else {
        html
    };
    pages::web_issue(html)
}

/// A one-line "All issues" link right after `<body…>`, styled inline (the
/// page's CSP allows inline styles), narrow enough for any phone.
fn with_archive_link(html: &str, archive_path: &str) -> String {
    let link = format!(
        "<div style=\"max-width:600px;margin:0 auto;padding:8px 16px;\
         font:14px/1.4 system-ui,-apple-system,Arial,sans-serif\">\
         <a href=\"{}\" style=\"color:#1f4fd1\">&larr; All issues</a></div>",
        html_escape::encode_double_quoted_attribute(archive_path)
    );
    let at = html
        .find("<body")
        .and_then(|b| html[b..].find('>').map(|e| b + e + 1));
    match at {
        Some(at) => format!("{}{link}{}", &html[..at], &html[at..]),
        None => format!("{link}{html}"),
    }
}

/// `GET /unsubscribe`: the web version's unsubscribe link, which cannot
/// know who is reading.
pub async fn unsubscribe_help(State(state): State<AppState>) -> Response {
    pages::unsubscribe_help(state.newsletter_name())
}
