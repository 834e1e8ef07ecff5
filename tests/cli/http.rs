//! `herald serve`: the router driven with `oneshot` (no socket), the server
//! over a real socket with a real HTTP client, and the binary itself.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use herald::domain::{SubscriberEmail, SubscriberName, SubscriberStatus, UnsubscribeSource};
use herald::http::{app, AppState, Application, MAX_BODY_BYTES};
use herald::store::subscribers::AddOutcome;
use herald::store::Store;
use herald::token::{SigningKeys, TokenClaims};
use tower::ServiceExt;

use crate::helpers::{stderr, stdout, TestEnv};

const CURRENT: &str = "current-secret-0123456789abcdefghij";
const PREVIOUS: &str = "previous-secret-0123456789abcdefghi";
const NEWSLETTER: &str = "The Herald Weekly";
const ONE_CLICK: &str = "List-Unsubscribe=One-Click";
const URLENCODED: &str = "application/x-www-form-urlencoded";

/// A migrated database with subscribers, and the state a server would use.
struct Fixture {
    _env: TestEnv,
    store: Store,
    keys: SigningKeys,
    state: AppState,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_base_url("http://127.0.0.1:8080").await
    }

    async fn with_base_url(base: &str) -> Fixture {
        let env = TestEnv::new();
        let store = env.store().await;
        let keys = SigningKeys::new(CURRENT.into(), Some(PREVIOUS.into()));
        let state = AppState::new(store.clone(), keys.clone(), NEWSLETTER, base).unwrap();
        Fixture {
            _env: env,
            store,
            keys,
            state,
        }
    }

    async fn add(&self, email: &str) -> i64 {
        let email = SubscriberEmail::parse(email).unwrap();
        let name = SubscriberName::parse("Ana Silva").unwrap();
        match self
            .store
            .add_subscriber(&email, Some(&name), false)
            .await
            .unwrap()
        {
            AddOutcome::Added(id) => id,
            other => panic!("not added: {other:?}"),
        }
    }

    fn token(&self, subscriber_id: i64) -> String {
        self.keys.sign(TokenClaims {
            subscriber_id,
            issue_id: Some(3),
        })
    }

    async fn status(&self, id: i64) -> SubscriberStatus {
        self.store
            .link_subscriber(id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    async fn unsubscribed_at(&self, id: i64) -> Option<String> {
        self.store
            .link_subscriber(id)
            .await
            .unwrap()
            .unwrap()
            .unsubscribed_at
    }

    /// One request through the router, no socket.
    async fn call(&self, req: Request<Body>) -> Reply {
        let res = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, path: &str, content_type: &str, body: impl Into<Body>) -> Reply {
        self.call(
            Request::post(path)
                .header(header::CONTENT_TYPE, content_type)
                .body(body.into())
                .unwrap(),
        )
        .await
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    /// What every unsubscribe-link answer must be: no redirect, no cookie,
    /// not cached, no referrer.
    fn assert_plain_page(&self) {
        assert!(self.headers.get(header::LOCATION).is_none());
        assert!(self.headers.get(header::SET_COOKIE).is_none());
        assert_eq!(self.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(self.headers[header::REFERRER_POLICY], "no-referrer");
        assert!(self.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
}

/// A one-click body as Gmail sends it: multipart/form-data.
fn multipart_one_click() -> (String, String) {
    let boundary = "----herald-test-boundary-7MA4YWxkTrZu0gW";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
         One-Click\r\n--{boundary}--\r\n"
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Forms of a token that must all be refused, given a genuine one.
fn bad_tokens(genuine: &str, subscriber_id: i64) -> Vec<(&'static str, String)> {
    let claims = TokenClaims {
        subscriber_id,
        issue_id: Some(3),
    };
    let mut tampered: Vec<char> = genuine.chars().collect();
    tampered[5] = if tampered[5] == 'A' { 'B' } else { 'A' };
    vec![
        ("tampered", tampered.into_iter().collect()),
        ("truncated", genuine[..genuine.len() - 2].to_string()),
        ("extended", format!("{genuine}AA")),
        (
            "forged with another key",
            SigningKeys::new("someone-elses-secret-0123456789abcdef".into(), None).sign(claims),
        ),
        (
            "signed with a retired key",
            SigningKeys::new("retired-secret-0123456789abcdefghijk".into(), None).sign(claims),
        ),
        ("garbage", "not-a-token".to_string()),
        ("percent junk", "%00%ff%2F..%2F".to_string()),
    ]
}

// ----- router (oneshot) -------------------------------------------------

#[tokio::test]
async fn get_shows_the_page_and_changes_nothing() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let token = f.token(id);
    let reply = f.get(&format!("/unsubscribe/{token}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.assert_plain_page();
    assert!(reply.body.contains(NEWSLETTER));
    assert!(reply.body.contains("a***@example.org"));
    assert!(!reply.body.contains("ana.silva"), "address must be masked");
    assert!(reply.body.contains(&format!(
        "<form method=\"post\" action=\"/unsubscribe/{token}\">"
    )));
    assert!(!reply.body.contains("<script"));
    assert!(reply.body.contains("name=\"viewport\""));

    // Link scanners prefetch with GET and HEAD: still active.
    let head = f
        .call(
            Request::head(format!("/unsubscribe/{token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(f.status(id).await, SubscriberStatus::Active);
}

#[tokio::test]
async fn one_click_post_urlencoded_unsubscribes_and_a_repeat_answers_200_without_a_write() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let path = format!("/unsubscribe/{}", f.token(id));

    let reply = f.post(&path, URLENCODED, ONE_CLICK).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.assert_plain_page();
    assert!(reply.body.contains("You are unsubscribed"));
    assert!(reply.body.contains("a***@example.org"));
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
    let first = f.unsubscribed_at(id).await.expect("stamped");

    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = f.post(&path, URLENCODED, ONE_CLICK).await;
    assert_eq!(again.status, StatusCode::OK);
    again.assert_plain_page();
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
    assert_eq!(
        f.unsubscribed_at(id).await,
        Some(first),
        "the first unsubscribe time is kept"
    );

    // A GET after unsubscribing says so and offers no unsubscribe button.
    let page = f.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("You are unsubscribed"));
}

#[tokio::test]
async fn one_click_post_multipart_unsubscribes() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let (content_type, body) = multipart_one_click();
    let reply = f
        .post(
            &format!("/unsubscribe/{}", f.token(id)),
            &content_type,
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.assert_plain_page();
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);

    let metrics = f.get("/metrics").await.body;
    assert!(
        metrics.contains("herald_unsubscribes_total{via=\"one_click\",result=\"unsubscribed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_pages_own_form_unsubscribes() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let reply = f
        .post(
            &format!("/unsubscribe/{}", f.token(id)),
            URLENCODED,
            "source=page",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
    let metrics = f.get("/metrics").await.body;
    assert!(metrics.contains("herald_unsubscribes_total{via=\"page\",result=\"unsubscribed\"} 1"));
}

#[tokio::test]
async fn tampered_forged_truncated_retired_and_garbage_tokens_change_nothing_and_reveal_nothing() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let genuine = f.token(id);
    let reference = f.get("/unsubscribe/garbage").await;
    assert_eq!(reference.status, StatusCode::NOT_FOUND);
    for (what, token) in bad_tokens(&genuine, id) {
        let path = format!("/unsubscribe/{token}");
        for reply in [
            f.get(&path).await,
            f.post(&path, URLENCODED, ONE_CLICK).await,
            f.post(&format!("/resubscribe/{token}"), URLENCODED, "")
                .await,
        ] {
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{what}");
            assert_eq!(reply.body, reference.body, "{what}: same page as garbage");
            assert!(!reply.body.contains("example.org"), "{what}");
            assert!(!reply.body.contains(NEWSLETTER), "{what}");
        }
        assert_eq!(f.status(id).await, SubscriberStatus::Active, "{what}");
    }
    // A genuine token for a subscriber who does not exist looks the same.
    let ghost_path = format!("/unsubscribe/{}", f.token(9999));
    let ghost = f.post(&ghost_path, URLENCODED, ONE_CLICK).await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND);
    assert_eq!(ghost.body, reference.body);
}

#[tokio::test]
async fn a_token_signed_with_the_previous_secret_works_during_rotation() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let old = SigningKeys::new(PREVIOUS.into(), None).sign(TokenClaims {
        subscriber_id: id,
        issue_id: Some(1),
    });
    let path = format!("/unsubscribe/{old}");
    assert_eq!(f.get(&path).await.status, StatusCode::OK);
    assert_eq!(f.status(id).await, SubscriberStatus::Active);
    assert_eq!(
        f.post(&path, URLENCODED, ONE_CLICK).await.status,
        StatusCode::OK
    );
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_and_changes_nothing() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let body = format!("{ONE_CLICK}&pad={}", "x".repeat(MAX_BODY_BYTES));
    let reply = f
        .post(&format!("/unsubscribe/{}", f.token(id)), URLENCODED, body)
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(f.status(id).await, SubscriberStatus::Active);
}

#[tokio::test]
async fn the_confirmation_page_can_undo_and_resubscribe_never_revives_a_bounce() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let token = f.token(id);
    let done = f
        .post(&format!("/unsubscribe/{token}"), URLENCODED, ONE_CLICK)
        .await;
    let undo_form = format!("<form method=\"post\" action=\"/resubscribe/{token}\">");
    assert!(done.body.contains(&undo_form), "{}", done.body);

    // GET on the undo URL is not a way in.
    let get = f.get(&format!("/resubscribe/{token}")).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);

    let back = f
        .post(&format!("/resubscribe/{token}"), URLENCODED, "")
        .await;
    assert_eq!(back.status, StatusCode::OK);
    back.assert_plain_page();
    assert!(back.body.contains("subscribed again"));
    assert_eq!(f.status(id).await, SubscriberStatus::Active);
    assert_eq!(f.unsubscribed_at(id).await, None);
    // Idempotent.
    let again = f
        .post(&format!("/resubscribe/{token}"), URLENCODED, "")
        .await;
    assert_eq!(again.status, StatusCode::OK);

    // A bounced address stays bounced, whatever the link does.
    let bounced = f.add("bob@example.net").await;
    f.store
        .set_subscriber_status(
            bounced,
            SubscriberStatus::Bounced,
            UnsubscribeSource::Bounce,
        )
        .await
        .unwrap();
    let t = f.token(bounced);
    let reply = f.post(&format!("/resubscribe/{t}"), URLENCODED, "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = f
        .post(&format!("/unsubscribe/{t}"), URLENCODED, ONE_CLICK)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.body.contains("/resubscribe/"));
    assert_eq!(f.status(bounced).await, SubscriberStatus::Bounced);
}

#[tokio::test]
async fn a_link_cannot_undo_an_unsubscribe_it_did_not_make() {
    let f = Fixture::new().await;
    // The operator unsubscribes Ana; an import unsubscribes Bob.
    let ana = f.add("ana.silva@example.org").await;
    f.store
        .unsubscribe_email(&SubscriberEmail::parse("ana.silva@example.org").unwrap())
        .await
        .unwrap();
    let bob = f.add("bob@example.org").await;
    herald::import::import_reader(
        &f.store,
        "list.csv",
        "email,status\nbob@example.org,unsubscribed\n".as_bytes(),
        |r| panic!("rejected {r}"),
    )
    .await
    .unwrap();
    for id in [ana, bob] {
        assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
        let token = f.token(id);
        // Neither the page nor a repeated one-click offers an undo...
        let page = f.get(&format!("/unsubscribe/{token}")).await;
        assert!(!page.body.contains("/resubscribe/"), "{}", page.body);
        let again = f
            .post(&format!("/unsubscribe/{token}"), URLENCODED, ONE_CLICK)
            .await;
        assert!(!again.body.contains("/resubscribe/"), "{}", again.body);
        // ...and posting to the undo URL changes nothing.
        let reply = f
            .post(&format!("/resubscribe/{token}"), URLENCODED, "")
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
    }
    // The page's own unsubscribe can still be undone.
    let cy = f.add("cy@example.org").await;
    let token = f.token(cy);
    f.post(&format!("/unsubscribe/{token}"), URLENCODED, "")
        .await;
    let back = f
        .post(&format!("/resubscribe/{token}"), URLENCODED, "")
        .await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(f.status(cy).await, SubscriberStatus::Active);
}

#[tokio::test]
async fn resubscribe_only_undoes_an_unsubscribe_inside_the_window() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    f.store
        .unsubscribe_if_active(id, UnsubscribeSource::Page)
        .await
        .unwrap()
        .unwrap();
    // An unsubscribe older than the window's start is not undone.
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    assert!(!f.store.resubscribe_if_recent(id, later).await.unwrap());
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
    let earlier = chrono::Utc::now() - chrono::Duration::minutes(1);
    assert!(f.store.resubscribe_if_recent(id, earlier).await.unwrap());
    assert_eq!(f.status(id).await, SubscriberStatus::Active);
}

#[tokio::test]
async fn routes_live_under_the_path_of_the_public_base_url() {
    let f = Fixture::with_base_url("https://example.org/news/").await;
    let id = f.add("ana.silva@example.org").await;
    let token = f.token(id);
    let page = f.get(&format!("/news/unsubscribe/{token}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains(&format!("action=\"/news/unsubscribe/{token}\"")));
    assert_eq!(
        f.get(&format!("/unsubscribe/{token}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(f.get("/news/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn healthz_reports_whether_the_database_answers() {
    let f = Fixture::new().await;
    let backend = if f._env.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let ok = f.get("/healthz").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, format!("ok\ndatabase: {backend}\n"));
    f.store.close().await;
    let down = f.get("/healthz").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.body, format!("database unreachable: {backend}\n"));
    // Nothing internal leaks into the pages either.
    let page = f.get(&format!("/unsubscribe/{}", f.token(1))).await;
    assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!page.body.to_lowercase().contains("sqlx"));
    assert!(!page.body.to_lowercase().contains("pool"));
}

#[tokio::test]
async fn metrics_count_subscribers_unsubscribes_and_requests_by_route_template() {
    let f = Fixture::new().await;
    let a = f.add("ana.silva@example.org").await;
    f.add("bob@example.net").await;
    let token = f.token(a);
    f.get(&format!("/unsubscribe/{token}")).await;
    f.post(&format!("/unsubscribe/{token}"), URLENCODED, ONE_CLICK)
        .await;
    f.post(&format!("/unsubscribe/{token}"), URLENCODED, ONE_CLICK)
        .await;
    f.get("/unsubscribe/garbage").await;
    f.get("/no/such/route").await;

    let reply = f.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let m = reply.body;
    for line in [
        "herald_subscribers{status=\"active\"} 1",
        "herald_subscribers{status=\"unsubscribed\"} 1",
        "herald_subscribers{status=\"bounced\"} 0",
        "herald_unsubscribes_total{via=\"one_click\",result=\"unsubscribed\"} 1",
        "herald_unsubscribes_total{via=\"one_click\",result=\"unchanged\"} 1",
        "herald_unsubscribes_total{via=\"page\",result=\"unsubscribed\"} 0",
        "herald_http_requests_total{route=\"/unsubscribe/{token}\",method=\"POST\",status=\"200\"} 2",
        "herald_http_requests_total{route=\"/unsubscribe/{token}\",method=\"GET\",status=\"200\"} 1",
        "herald_http_requests_total{route=\"/unsubscribe/{token}\",method=\"GET\",status=\"404\"} 1",
        "herald_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "# EOF",
    ] {
        assert!(m.lines().any(|l| l == line), "missing `{line}` in\n{m}");
    }
    assert!(!m.contains(&token), "tokens never become labels");
    assert!(!m.contains("garbage"));
}

#[tokio::test]
async fn concurrent_lookups_are_batched_and_each_gets_its_own_answer() {
    let f = Fixture::new().await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(f.add(&format!("reader{i}@example.org")).await);
    }
    let stamp = f
        .store
        .unsubscribe_if_active(ids[7], UnsubscribeSource::OneClick)
        .await
        .unwrap();
    let lookups = f.state.lookups().clone();
    let seventh = lookups.get(ids[7]).await.unwrap().unwrap();
    assert_eq!(seventh.status, SubscriberStatus::Unsubscribed);
    assert_eq!(seventh.unsubscribed_at, stamp);
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..4 {
        for &id in &ids {
            let lookups = lookups.clone();
            tasks.spawn(async move { (id, lookups.get(id).await.unwrap()) });
        }
        let missing = 10_000 + round;
        let lookups = lookups.clone();
        tasks.spawn(async move { (missing, lookups.get(missing).await.unwrap()) });
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (id, found) = joined.unwrap();
        answered += 1;
        if id >= 10_000 {
            assert_eq!(found, None);
        } else {
            let sub = found.expect("existing subscriber found");
            assert_eq!(sub.id, id);
            let n = ids.iter().position(|&x| x == id).unwrap();
            assert_eq!(sub.email.as_ref(), format!("reader{n}@example.org"));
        }
    }
    assert_eq!(answered, 4 * 51);
}

#[tokio::test]
async fn concurrent_one_clicks_are_group_committed_and_each_subscriber_counts_once() {
    let f = Fixture::new().await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(f.add(&format!("reader{i}@example.org")).await);
    }
    let bounced = f.add("bounced@example.net").await;
    f.store
        .set_subscriber_status(
            bounced,
            SubscriberStatus::Bounced,
            UnsubscribeSource::Bounce,
        )
        .await
        .unwrap();
    let router = app(f.state.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        for &id in ids.iter().chain([&bounced]) {
            let req = Request::post(format!("/unsubscribe/{}", f.token(id)))
                .header(header::CONTENT_TYPE, URLENCODED)
                .body(Body::from(ONE_CLICK))
                .unwrap();
            let router = router.clone();
            tasks.spawn(async move { router.oneshot(req).await.unwrap().status() });
        }
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    for &id in &ids {
        assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
    }
    assert_eq!(f.status(bounced).await, SubscriberStatus::Bounced);
    let m = f.get("/metrics").await.body;
    for line in [
        "herald_unsubscribes_total{via=\"one_click\",result=\"unsubscribed\"} 30",
        "herald_unsubscribes_total{via=\"one_click\",result=\"unchanged\"} 63",
    ] {
        assert!(m.lines().any(|l| l == line), "missing `{line}` in\n{m}");
    }
}

// ----- over a real socket -------------------------------------------------

/// A server on a loopback port, stopped (gracefully) by `stop`.
struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn(state: AppState) -> Running {
    let server = Application::bind("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", server.local_addr().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Running { base, stop, done }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn assert_plain(res: &reqwest::Response) {
    assert!(res.headers().get(header::LOCATION).is_none());
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert!(!res.status().is_redirection());
}

#[tokio::test]
async fn over_a_socket_the_whole_unsubscribe_flow_holds() {
    let f = Fixture::new().await;
    let ana = f.add("ana.silva@example.org").await;
    let bob = f.add("bob@example.net").await;
    let server = spawn(f.state.clone()).await;
    let http = client();
    let url = |id| format!("{}/unsubscribe/{}", server.base, f.token(id));

    let page = http.get(url(ana)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_plain(&page);
    let html = page.text().await.unwrap();
    assert!(html.contains(NEWSLETTER) && html.contains("a***@example.org"));
    assert_eq!(f.status(ana).await, SubscriberStatus::Active);

    // urlencoded one-click, then a repeat.
    for _ in 0..2 {
        let res = http
            .post(url(ana))
            .header(header::CONTENT_TYPE, URLENCODED)
            .body(ONE_CLICK)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_plain(&res);
        assert_eq!(f.status(ana).await, SubscriberStatus::Unsubscribed);
    }

    // multipart one-click.
    let (content_type, body) = multipart_one_click();
    let res = http
        .post(url(bob))
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_plain(&res);
    assert_eq!(f.status(bob).await, SubscriberStatus::Unsubscribed);

    // Bad tokens: 404, nothing changes.
    let carol = f.add("carol@example.com").await;
    for (what, token) in bad_tokens(&f.token(carol), carol) {
        let res = http
            .post(format!("{}/unsubscribe/{token}", server.base))
            .header(header::CONTENT_TYPE, URLENCODED)
            .body(ONE_CLICK)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{what}");
        assert_plain(&res);
    }
    assert_eq!(f.status(carol).await, SubscriberStatus::Active);

    // Oversized body: 413, nothing changes.
    let res = http
        .post(url(carol))
        .header(header::CONTENT_TYPE, URLENCODED)
        .body(format!("{ONE_CLICK}&pad={}", "x".repeat(MAX_BODY_BYTES)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(f.status(carol).await, SubscriberStatus::Active);

    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    server.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.done)
        .await
        .expect("graceful shutdown finishes")
        .unwrap()
        .unwrap();
    assert!(
        http.get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let server = spawn(f.state.clone()).await;
    // Open a connection and send half a request: headers, no body yet.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /unsubscribe/{} HTTP/1.1\r\nHost: x\r\nContent-Type: {URLENCODED}\r\n\
         Content-Length: {}\r\n\r\n",
        f.token(id),
        ONE_CLICK.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The request in flight completes and is answered.
    stream.write_all(ONE_CLICK.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .expect("answered, then closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(f.status(id).await, SubscriberStatus::Unsubscribed);
    tokio::time::timeout(Duration::from_secs(5), server.done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ----- the binary ---------------------------------------------------------

#[test]
fn serve_refuses_a_malformed_bind_address_with_exit_2() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .args(["serve", "--bind", "localhost:eighty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--bind"));
}

#[test]
fn serve_logs_route_templates_never_tokens_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let env = TestEnv::new();
    env.herald()
        .args(["subscribers", "add", "ana.silva@example.org"])
        .env("HERALD__UNSUBSCRIBE__SECRET", CURRENT)
        .assert()
        .success();
    let mut cmd = env.command();
    cmd.env_remove("RUST_LOG");
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("HERALD__UNSUBSCRIBE__SECRET", CURRENT)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child_out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    child_out.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();

    let keys = SigningKeys::new(CURRENT.into(), None);
    let token = keys.sign(TokenClaims {
        subscriber_id: 1,
        issue_id: None,
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = client();
        let res = http
            .post(format!("{base}/unsubscribe/{token}"))
            .header(header::CONTENT_TYPE, URLENCODED)
            .body(ONE_CLICK)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = http
            .get(format!("{base}/unsubscribe/{token}x"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    });

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("route=\"/unsubscribe/{token}\""), "{logs}");
    assert!(logs.contains("unsubscribed"), "{logs}");
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(!logs.contains(&token), "a token reached the logs:\n{logs}");

    let out = env
        .herald()
        .args([
            "subscribers",
            "list",
            "--status",
            "unsubscribed",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("ana.silva@example.org"));
}

#[test]
fn unsubscribe_token_is_the_mailto_fallback() {
    let env = TestEnv::new();
    let run = |args: &[&str]| {
        env.herald()
            .args(args)
            .env("HERALD__UNSUBSCRIBE__SECRET", CURRENT)
            .output()
            .unwrap()
    };
    assert!(run(&["subscribers", "add", "ana.silva@example.org"])
        .status
        .success());
    assert!(run(&["subscribers", "add", "bob@example.net"])
        .status
        .success());
    let keys = SigningKeys::new(CURRENT.into(), None);
    let token = |id| {
        keys.sign(TokenClaims {
            subscriber_id: id,
            issue_id: Some(2),
        })
    };

    let out = run(&["subscribers", "unsubscribe-token", &token(1)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("unsubscribed ana.silva@example.org"));
    let out = run(&["subscribers", "unsubscribe-token", &token(1)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("already unsubscribed"));

    // The whole recipient address, as a mail server's pipe may pass it.
    let address = format!("unsubscribe+{}@news.example.org", token(2));
    let out = run(&["subscribers", "unsubscribe-token", &address]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("unsubscribed bob@example.net"));

    let forged =
        SigningKeys::new("someone-elses-secret-0123456789abcdef".into(), None).sign(TokenClaims {
            subscriber_id: 1,
            issue_id: None,
        });
    for bad in [forged.as_str(), "garbage", ""] {
        let out = run(&["subscribers", "unsubscribe-token", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let out = run(&["subscribers", "unsubscribe-token", &forged]);
    assert!(!stderr(&out).contains(&forged), "tokens are not echoed");
}

#[tokio::test]
async fn other_methods_are_refused_and_change_nothing() {
    let f = Fixture::new().await;
    let id = f.add("ana.silva@example.org").await;
    let path = format!("/unsubscribe/{}", f.token(id));
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = f
            .call(
                Request::builder()
                    .method(method.clone())
                    .uri(&path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    assert_eq!(f.status(id).await, SubscriberStatus::Active);
}
