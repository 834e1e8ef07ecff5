//! The HTML pages: one small stylesheet, no JavaScript, readable on a phone.
//! Every dynamic value goes through `html-escape`. Responses carry headers
//! that keep the page (and its token-bearing URL) out of caches, referrers,
//! search indexes and frames.

use std::sync::LazyLock;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use sha2::{Digest, Sha256};

const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f3f4f6;--card:#fff;--text:#1f2430;--muted:#5c6473;\
--border:#e3e6eb;--accent:#1f4fd1;--accent-text:#fff}\
@media (prefers-color-scheme:dark){:root{--bg:#15181d;--card:#1f232b;--text:#e9ebef;\
--muted:#a4abb8;--border:#303641;--accent:#6d93ff;--accent-text:#0d1117}}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;background:var(--bg);color:var(--text);\
font:17px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;\
padding:10vh 16px 32px;display:flex;justify-content:center;align-items:flex-start}\
main{width:100%;max-width:30rem;background:var(--card);border:1px solid var(--border);\
border-radius:16px;padding:28px 24px;box-shadow:0 1px 3px rgba(0,0,0,.06)}\
.list{margin:0 0 8px;font-size:.8rem;font-weight:600;letter-spacing:.06em;\
text-transform:uppercase;color:var(--muted)}\
h1{margin:0 0 12px;font-size:1.5rem;line-height:1.25}\
p{margin:0 0 12px}\
.addr{font-weight:600;overflow-wrap:anywhere}\
form{margin:24px 0 0}\
button{display:block;width:100%;min-height:48px;padding:12px 16px;border:0;border-radius:10px;\
font:inherit;font-weight:600;cursor:pointer;background:var(--accent);color:var(--accent-text)}\
button:focus-visible{outline:3px solid var(--text);outline-offset:2px}\
button.quiet{background:transparent;color:var(--text);border:1px solid var(--border)}\
.note{margin:16px 0 0;font-size:.875rem;color:var(--muted)}\
ol.issues{list-style:none;margin:16px 0 0;padding:0}\
ol.issues li{padding:12px 0;border-top:1px solid var(--border)}\
ol.issues a{color:var(--accent);font-weight:600;overflow-wrap:anywhere}\
time{display:block;font-size:.875rem;color:var(--muted)}";

/// The only thing the pages may load: their own inline stylesheet (by
/// hash), no scripts, no frames, forms only to this origin.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    ))
    .expect("CSP is ASCII")
});

/// `a***@example.org`: enough for a person to recognise their address,
/// not enough to harvest it from a forwarded link.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// A short plain-text answer (to a provider's webhook), never cached.
pub fn plain_text(status: StatusCode, body: &'static str) -> Response {
    (status, [(CACHE_CONTROL, "no-store")], body).into_response()
}

/// An HTML response with the page headers.
fn respond(status: StatusCode, html: String) -> Response {
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    );
    h.insert(CONTENT_SECURITY_POLICY, CSP.clone());
    res
}

/// Everything before the title: the same on every page, built once.
static HEAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n<style>{STYLE}</style>\n<title>"
    )
});

/// The page frame. `title` is plain text; `body` is already-escaped HTML.
fn layout(title: &str, body: &str) -> String {
    const MIDDLE: &str = "</title>\n</head>\n<body>\n<main>\n";
    const END: &str = "</main>\n</body>\n</html>\n";
    let title = text(title);
    let mut page =
        String::with_capacity(HEAD.len() + title.len() + MIDDLE.len() + body.len() + END.len());
    page.push_str(&HEAD);
    page.push_str(&title);
    page.push_str(MIDDLE);
    page.push_str(body);
    page.push_str(END);
    page
}

/// A form with one button that POSTs to `action` (a path on this server).
fn button_form(action: &str, hidden: Option<(&str, &str)>, label: &str, quiet: bool) -> String {
    let hidden = hidden
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                attr(name),
                attr(value)
            )
        })
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"{action}\">{hidden}\
         <button type=\"submit\"{class}>{label}</button></form>\n",
        action = attr(action),
        class = if quiet { " class=\"quiet\"" } else { "" },
        label = text(label),
    )
}

fn heading(newsletter: &str, title: &str) -> String {
    format!(
        "<p class=\"list\">{}</p>\n<h1>{}</h1>\n",
        text(newsletter),
        text(title)
    )
}

/// GET on a genuine link of an active subscriber: ask before changing
/// anything (link scanners prefetch GETs).
pub fn confirm(newsletter: &str, masked: &str, unsubscribe_path: &str) -> Response {
    let body = format!(
        "{head}<p>Stop sending {name} to <span class=\"addr\">{addr}</span>?</p>\n{form}\
         <p class=\"note\">Changed your mind? Just close this page and nothing changes.</p>\n",
        head = heading(newsletter, "Unsubscribe?"),
        name = text(newsletter),
        addr = text(masked),
        form = button_form(
            unsubscribe_path,
            Some(("source", "page")),
            "Unsubscribe",
            false
        ),
    );
    respond(
        StatusCode::OK,
        layout(&format!("Unsubscribe from {newsletter}"), &body),
    )
}

/// An offer to undo an unsubscribe: where to POST, and for how long it
/// stays open after unsubscribing.
pub struct Undo<'a> {
    pub path: &'a str,
    pub window_minutes: u64,
}

/// The address receives no more issues; `undo` offers to take it back.
pub fn unsubscribed(newsletter: &str, masked: &str, undo: Option<Undo<'_>>) -> Response {
    let undo = match undo {
        Some(Undo {
            path,
            window_minutes,
        }) => format!(
            "{}<p class=\"note\">Unsubscribed by mistake? The button works for \
             {window_minutes} minutes after unsubscribing.</p>\n",
            button_form(path, None, "Resubscribe", true)
        ),
        None => "<p class=\"note\">There is nothing else to do; you can close this page.</p>\n"
            .to_string(),
    };
    let body = format!(
        "{head}<p><span class=\"addr\">{addr}</span> will not receive {name} any more.</p>\n{undo}",
        head = heading(newsletter, "You are unsubscribed"),
        name = text(newsletter),
        addr = text(masked),
    );
    respond(
        StatusCode::OK,
        layout(&format!("Unsubscribed from {newsletter}"), &body),
    )
}

/// The undo worked (or the address was active anyway).
pub fn resubscribed(newsletter: &str, masked: &str, unsubscribe_path: &str) -> Response {
    let body = format!(
        "{head}<p><span class=\"addr\">{addr}</span> will receive {name} again.</p>\n{form}",
        head = heading(newsletter, "You are subscribed again"),
        name = text(newsletter),
        addr = text(masked),
        form = button_form(
            unsubscribe_path,
            Some(("source", "page")),
            "Unsubscribe",
            true
        ),
    );
    respond(
        StatusCode::OK,
        layout(&format!("Subscribed to {newsletter}"), &body),
    )
}

/// A resubscribe this link may not do (the undo window has passed, or the
/// address cannot receive mail). Says nothing about which.
pub fn cannot_resubscribe(newsletter: &str) -> Response {
    let body = format!(
        "{head}<p>This link can no longer subscribe you again. To receive {name}, \
         please contact its sender.</p>\n",
        head = heading(newsletter, "Cannot resubscribe"),
        name = text(newsletter),
    );
    respond(StatusCode::FORBIDDEN, layout("Cannot resubscribe", &body))
}

/// The unsubscribe link of a test copy (`herald send --test`): says so and
/// changes nothing.
pub fn test_copy(newsletter: &str) -> Response {
    let body = format!(
        "{head}<p>This link comes from a <strong>test copy</strong> of {name}. In the copies          readers receive, it unsubscribes the reader at once.</p>\n         <p class=\"note\">Nothing was changed: a test copy's links unsubscribe no one.</p>\n",
        head = heading(newsletter, "This is a test copy"),
        name = text(newsletter),
    );
    respond(StatusCode::OK, layout("Test copy", &body))
}

/// The web version's generic unsubscribe link.
pub fn unsubscribe_help(newsletter: &str) -> Response {
    let body = format!(
        "{head}<p>To stop receiving {name}, use the <strong>Unsubscribe</strong> link at the \
         bottom of an email you received from it: that link is personal to you, so no \
         password is needed. Many mail apps also show an Unsubscribe button next to the \
         sender.</p>\n",
        head = heading(newsletter, "Unsubscribe"),
        name = text(newsletter),
    );
    respond(StatusCode::OK, layout("Unsubscribe", &body))
}

/// One archive entry ready for display.
pub struct ArchiveEntry {
    pub subject: String,
    /// Path of the web version (under the base path).
    pub path: String,
    /// e.g. "14 December 2018".
    pub date: String,
    /// RFC 3339, as stored.
    pub started_at: String,
}

/// `GET /issues`: the archive. Public and cacheable, unlike the
/// token-bearing pages.
pub fn archive(newsletter: &str, entries: &[ArchiveEntry], feed_path: &str) -> Response {
    let mut body = heading(newsletter, "Past issues");
    if entries.is_empty() {
        body.push_str("<p>No issue has been sent yet.</p>\n");
    } else {
        body.push_str("<ol class=\"issues\">\n");
        for e in entries {
            body.push_str(&format!(
                "<li><a href=\"{}\">{}</a><time datetime=\"{}\">{}</time></li>\n",
                attr(&e.path),
                text(&e.subject),
                attr(&e.started_at),
                text(&e.date)
            ));
        }
        body.push_str("</ol>\n");
    }
    body.push_str(&format!(
        "<p class=\"note\"><a href=\"{}\">Atom feed</a></p>\n",
        attr(feed_path)
    ));
    let page = layout(&format!("{newsletter}: past issues"), &body)
        .replacen(
            "<meta name=\"robots\" content=\"noindex, nofollow\">\n",
            "",
            1,
        )
        .replacen(
            "<style>",
            &format!(
                "<link rel=\"alternate\" type=\"application/atom+xml\" href=\"{}\">\n<style>",
                attr(feed_path)
            ),
            1,
        );
    let mut res = respond(StatusCode::OK, page);
    let h = res.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.remove(HeaderName::from_static("x-robots-tag"));
    res
}

/// The archive's Atom feed.
pub fn atom_feed(xml: String) -> Response {
    public("application/atom+xml; charset=utf-8", xml)
}

/// A public response that caches may keep for five minutes (the archive,
/// its feed, a web version; never a token-bearing page).
fn public(content_type: &'static str, body: String) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

/// A compiled issue as a web page. Its own inline styles and remote images
/// are allowed; scripts, forms and framing are not.
pub fn web_issue(html: String) -> Response {
    let mut res = public("text/html; charset=utf-8", html);
    let h = res.headers_mut();
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; \
             font-src https:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    res
}

/// Unknown route, or a token that is not genuine: reveals nothing.
pub fn not_found() -> Response {
    let body = "<h1>This link is not valid</h1>\n<p>It may be incomplete. If you copied it \
                from an email, check that you copied all of it.</p>\n";
    respond(StatusCode::NOT_FOUND, layout("Link not valid", body))
}

/// Any other failure: a status and a sentence, no details.
pub fn error(status: StatusCode) -> Response {
    let (title, sentence) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("Request too large", "The request was too large."),
        s if s.is_client_error() => ("Bad request", "The request could not be understood."),
        _ => (
            "Something went wrong",
            "Something went wrong on our side. Please try again in a few minutes.",
        ),
    };
    let body = format!("<h1>{}</h1>\n<p>{}</p>\n", text(title), text(sentence));
    respond(status, layout(title, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_the_first_character_of_the_local_part() {
        assert_eq!(mask_email("ana.silva@example.org"), "a***@example.org");
        assert_eq!(mask_email("a@example.org"), "a***@example.org");
        assert_eq!(mask_email("nonsense"), "***");
    }

    #[test]
    fn dynamic_values_are_escaped() {
        let html = layout("<b>", &heading("<script>alert(1)</script> & co", "t"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
        assert!(html.contains("<title>&lt;b&gt;</title>"));
        let form = button_form("/x\"><script>", None, "Go", false);
        assert!(
            form.contains("&quot;") && !form.contains("\"><script>"),
            "{form}"
        );
    }

    #[test]
    fn the_csp_allows_exactly_the_inline_stylesheet() {
        let csp = CSP.to_str().unwrap();
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("style-src 'sha256-"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
