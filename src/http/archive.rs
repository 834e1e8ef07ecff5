//! The public archive: `GET /issues` lists the issues whose live send has
//! started (newest first: subject, date, link to the web version) and
//! `GET /issues/feed.xml` is the same list as an Atom feed (RFC 4287).
//! Both answer 404 when `http.archive` is off. Nothing per-recipient
//! appears: subjects are shown with their attribute defaults.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::pages::{self, ArchiveEntry as Entry};
use super::AppState;
use crate::store::issues::ArchivedIssue;

/// The most issues listed (the newest).
pub const MAX_ENTRIES: i64 = 500;

async fn entries(state: &AppState) -> Result<Vec<Entry>, Response> {
    let issues = state
        .store()
        .archived_issues(MAX_ENTRIES)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading the archive");
            pages::error(StatusCode::SERVICE_UNAVAILABLE)
        })?;
    Ok(issues
        .into_iter()
        .map(|i: ArchivedIssue| Entry {
            date: crate::store::parse_time(&i.started_at)
                .map(|t| t.format("%-d %B %Y").to_string())
                .unwrap_or_else(|| i.started_at.clone()),
            path: format!("{}/issues/{}", state.base_path(), i.slug),
            subject: i.subject,
            started_at: i.started_at,
        })
        .collect())
}

/// `GET /issues`.
pub async fn list(State(state): State<AppState>) -> Response {
    if !state.archive() {
        return pages::not_found();
    }
    match entries(&state).await {
        Ok(entries) => pages::archive(
            state.newsletter_name(),
            &entries,
            &format!("{}/issues/feed.xml", state.base_path()),
        ),
        Err(page) => page,
    }
}

/// `GET /issues/feed.xml`.
pub async fn feed(State(state): State<AppState>) -> Response {
    if !state.archive() {
        return pages::not_found();
    }
    let entries = match entries(&state).await {
        Ok(e) => e,
        Err(page) => return page,
    };
    let xml = atom(
        state.newsletter_name(),
        state.public_base_url(),
        state.base_path(),
        &entries,
    );
    pages::atom_feed(xml)
}

/// The Atom document. `public_base_url` is absolute (links in a feed must
/// work outside the site); `base_path` is its path part.
pub fn atom(newsletter: &str, public_base_url: &str, base_path: &str, entries: &[Entry]) -> String {
    // Absolute URL of a path under the base path.
    let origin = public_base_url
        .strip_suffix(base_path)
        .unwrap_or(public_base_url);
    let absolute = |path: &str| format!("{origin}{path}");
    let archive_url = absolute(&format!("{base_path}/issues"));
    let updated = entries
        .first()
        .map_or("1970-01-01T00:00:00Z", |e| e.started_at.as_str());
    let mut xml = String::with_capacity(512 + entries.len() * 400);
    xml.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    xml.push_str(&format!("  <title>{}</title>\n", text(newsletter)));
    xml.push_str(&format!("  <id>{}</id>\n", text(&archive_url)));
    xml.push_str(&format!(
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n",
        attr(&format!("{archive_url}/feed.xml"))
    ));
    xml.push_str(&format!(
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
        attr(&archive_url)
    ));
    xml.push_str(&format!("  <updated>{}</updated>\n", text(updated)));
    xml.push_str(&format!(
        "  <author><name>{}</name></author>\n",
        text(newsletter)
    ));
    for e in entries {
        let url = absolute(&e.path);
        xml.push_str("  <entry>\n");
        xml.push_str(&format!("    <title>{}</title>\n", text(&e.subject)));
        xml.push_str(&format!("    <id>{}</id>\n", text(&url)));
        xml.push_str(&format!(
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
            attr(&url)
        ));
        xml.push_str(&format!(
            "    <published>{}</published>\n",
            text(&e.started_at)
        ));
        xml.push_str(&format!("    <updated>{}</updated>\n", text(&e.started_at)));
        xml.push_str("  </entry>\n");
    }
    xml.push_str("</feed>\n");
    xml
}
