//! The feedback loop end to end: a live send through SMTP with VERP, then
//! reports in the shapes real servers produce piped into `herald bounces
//! ingest` (stdin, Maildir, mbox), and the ESP webhooks over the router.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::http::webhooks::Webhooks;
use herald::http::{app, AppState};
use herald::token::SigningKeys;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tower::ServiceExt;

use crate::helpers::{live_send, seed_subscribers, stderr, stdout, write_issue, TestEnv};
use crate::smtp_server::SmtpServer;

const KEY: &str = "test-signing-key-0123456789abcdefghijkl";
const BOUNCE: &str = "bounces@news.example.org";
const LIST: &str = "herald demo newsletter <news.herald-test.example.net>";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bounces")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// What one subscriber's copy went out with.
#[derive(Clone)]
struct Copy {
    message_id: String,
    verp: String,
}

/// An installation with `n` subscribers and one issue sent live through a
/// real SMTP server with VERP on.
struct Sent {
    env: TestEnv,
    issue: PathBuf,
    copies: HashMap<String, Copy>,
}

fn herald(env: &TestEnv) -> assert_cmd::Command {
    let mut cmd = env.herald();
    cmd.env("HERALD__UNSUBSCRIBE__SECRET", KEY)
        .env("HERALD__BOUNCE__ADDRESS", BOUNCE);
    cmd
}

fn send_issue(env: &TestEnv, slug: &str) -> (PathBuf, Vec<crate::smtp_server::Received>) {
    let issue = write_issue(env, slug);
    let server = SmtpServer::start();
    let out = {
        let mut cmd = env.herald();
        crate::helpers::smtp_env(&mut cmd, server.port());
        cmd.env("HERALD__BOUNCE__ADDRESS", BOUNCE)
            .args(["send", "--live", "--yes"])
            .arg(&issue)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    };
    assert!(out.status.success(), "{}", stderr(&out));
    (issue, server.received())
}

fn sent(n: usize) -> Sent {
    let env = TestEnv::new();
    seed_subscribers(&env, n);
    let (issue, received) = send_issue(&env, "bounce-one");
    let mut copies = HashMap::new();
    for m in received {
        let message_id = m
            .data
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .unwrap()
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        assert!(m.from.starts_with("bounces+"), "envelope sender {}", m.from);
        assert!(
            m.from.ends_with("@news.example.org"),
            "envelope sender {}",
            m.from
        );
        copies.insert(
            m.to[0].clone(),
            Copy {
                message_id,
                verp: m.from.clone(),
            },
        );
    }
    assert_eq!(copies.len(), n);
    Sent { env, issue, copies }
}

fn user(i: usize) -> String {
    format!("user{i:04}@example.org")
}

impl Sent {
    /// A fixture with this subscriber's values filled in.
    fn report(&self, name: &str, i: usize) -> String {
        let rcpt = user(i);
        let copy = &self.copies[&rcpt];
        fixture(name)
            .replace("{RCPT}", &rcpt)
            .replace("{MSGID}", &copy.message_id)
            .replace("{VERP}", &copy.verp)
            .replace("{LIST}", LIST)
            .replace("{SUBID}", &i.to_string())
    }

    fn ingest(&self, raw: &str) -> std::process::Output {
        herald(&self.env)
            .args(["bounces", "ingest"])
            .write_stdin(raw.replace('\n', "\r\n"))
            .output()
            .unwrap()
    }

    fn bounces(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = herald(&self.env)
            .args(["bounces", "list", "--format", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn status(&self, i: usize) -> String {
        let out = herald(&self.env)
            .args(["subscribers", "list", "--format", "json"])
            .output()
            .unwrap();
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        all.iter().find(|s| s["email"] == user(i)).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[test]
fn each_report_shape_is_classified_matched_and_acted_on() {
    let s = sent(12);
    // (fixture, subscriber, kind, matched_by, status afterwards)
    let cases: [(&str, usize, &str, Option<&str>, &str); 12] = [
        ("postfix-hard.eml", 1, "hard", Some("verp"), "bounced"),
        ("exim-hard.eml", 2, "hard", Some("message-id"), "bounced"),
        (
            "exchange-hard.eml",
            3,
            "hard",
            Some("message-id"),
            "bounced",
        ),
        ("gmail-full.eml", 4, "soft", Some("verp"), "active"),
        (
            "yahoo-arf.eml",
            5,
            "complaint",
            Some("message-id"),
            "complained",
        ),
        ("qmail-hard.eml", 6, "hard", Some("message-id"), "bounced"),
        ("delayed.eml", 7, "delayed", Some("verp"), "active"),
        (
            "vacation.eml",
            8,
            "auto-reply",
            Some("message-id"),
            "active",
        ),
        (
            "rfc3834-auto.eml",
            9,
            "auto-reply",
            Some("message-id"),
            "active",
        ),
        ("challenge.eml", 10, "auto-reply", None, "active"),
        ("never-sent.eml", 12, "unmatched", None, "active"),
        ("forged-verp.eml", 11, "unmatched", None, "active"),
    ];
    for (name, i, kind, by, status) in cases {
        let out = s.ingest(&s.report(name, i));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let newest = &s.bounces(&["--limit", "1"])[0];
        assert_eq!(newest["kind"], kind, "{name}: {newest}");
        assert_eq!(newest["matched_by"].as_str(), by, "{name}: {newest}");
        assert_eq!(s.status(i), status, "{name}");
        if by.is_some() && kind != "auto-reply" {
            assert_eq!(newest["issue"], "bounce-one", "{name}: {newest}");
        }
    }
    // The details a reviewer needs.
    let hard = s.bounces(&["--kind", "hard"]);
    assert_eq!(hard.len(), 4);
    let exchange = hard.iter().find(|b| b["email"] == user(3)).unwrap();
    assert_eq!(exchange["status_code"], "5.1.10");
    assert!(exchange["diagnostic"]
        .as_str()
        .unwrap()
        .contains("RecipientNotFound"));

    // Unrelated mail: exit 0, nothing recorded.
    let before = s.bounces(&[]).len();
    let out = s.ingest(&fixture("unrelated.eml"));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("not a report 1"), "{}", stdout(&out));
    // The same report twice: recorded once.
    let out = s.ingest(&s.report("postfix-hard.eml", 1));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("already recorded 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(s.bounces(&[]).len(), before);

    // status shows the counts.
    let out = herald(&s.env)
        .args(["status", "--format", "json"])
        .arg(&s.issue)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["bounces"]["hard"], 4);
    assert_eq!(status["bounces"]["soft"], 1);
    assert_eq!(status["bounces"]["complaint"], 1);
    let table = stdout(&herald(&s.env).arg("status").arg(&s.issue).output().unwrap());
    assert!(
        table.contains("bounces:  hard 4, soft 1, complaint 1"),
        "{table}"
    );

    // `bounces show` prints the kept report.
    let id = hard[0]["id"].as_i64().unwrap();
    let shown = stdout(
        &herald(&s.env)
            .args(["bounces", "show", &id.to_string()])
            .output()
            .unwrap(),
    );
    let email = hard[0]["email"].as_str().unwrap();
    assert!(shown.contains(&format!("email:      {email}")), "{shown}");
    assert!(
        shown.contains("From: ") && shown.contains(email),
        "the raw report: {shown}"
    );

    // The next issue skips the bounced and complained readers.
    let (_, received) = send_issue(&s.env, "bounce-two");
    let to: Vec<String> = received.iter().map(|m| m.to[0].clone()).collect();
    assert_eq!(to.len(), 7);
    for gone in [1, 2, 3, 5, 6] {
        assert!(
            !to.contains(&user(gone)),
            "{} got the next issue",
            user(gone)
        );
    }
    // Neither an import nor a link brings them back.
    let csv = s.env.write("again.csv", format!("email\n{}\n", user(1)));
    herald(&s.env)
        .args(["subscribers", "import"])
        .arg(&csv)
        .assert()
        .success();
    assert_eq!(s.status(1), "bounced");
}

#[test]
fn soft_bounces_mark_a_subscriber_bounced_at_the_soft_limit() {
    let s = sent(2);
    let out = herald(&s.env)
        .env("HERALD__BOUNCE__SOFT_LIMIT", "1")
        .args(["bounces", "ingest"])
        .write_stdin(s.report("gmail-full.eml", 2))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.status(2), "bounced");
    assert!(
        stdout(&out).contains("subscribers marked 1"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_maildir_is_processed_once_and_unrelated_mail_is_left_alone() {
    let s = sent(3);
    let maildir = s.env.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(maildir.join("new/1.a"), s.report("postfix-hard.eml", 1)).unwrap();
    std::fs::write(maildir.join("new/2.b"), s.report("yahoo-arf.eml", 2)).unwrap();
    std::fs::write(maildir.join("new/3.c"), fixture("unrelated.eml")).unwrap();
    let run = || {
        herald(&s.env)
            .args(["bounces", "ingest", "--maildir"])
            .arg(&maildir)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(maildir.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("new"), ["3.c"]);
    assert_eq!(names("cur"), ["1.a:2,S", "2.b:2,S"]);
    assert_eq!(s.status(1), "bounced");
    assert_eq!(s.status(2), "complained");
    let recorded = s.bounces(&[]).len();
    let out = run();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(names("new"), ["3.c"]);
    assert_eq!(names("cur"), ["1.a:2,S", "2.b:2,S"]);
    assert_eq!(
        s.bounces(&[]).len(),
        recorded,
        "a second run changes nothing"
    );

    // An mbox of two bounces.
    let mbox = format!(
        "From MAILER-DAEMON Mon Jan  6 06:00:00 2030\n{}\nFrom MAILER-DAEMON Mon Jan  6 06:00:01 2030\n{}\n",
        s.report("qmail-hard.eml", 3),
        fixture("unrelated.eml")
    );
    let file = s.env.write("bounces.mbox", mbox);
    let out = herald(&s.env)
        .args(["bounces", "ingest", "--mbox"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("messages 2"), "{}", stdout(&out));
    assert_eq!(s.status(3), "bounced");
}

#[test]
fn ingest_exits_75_when_the_database_is_unavailable() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .env("HERALD__DATABASE__URL", "sqlite:///dev/null/herald.db")
        .args(["bounces", "ingest"])
        .write_stdin(fixture("unrelated.eml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
}

#[test]
fn without_a_bounce_address_the_envelope_sender_is_the_from_address() {
    let env = TestEnv::new();
    seed_subscribers(&env, 1);
    let issue = write_issue(&env, "plain-envelope");
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.received()[0].from, crate::helpers::FROM_ADDRESS);
}

// ESP webhooks, through the router.

const MAILGUN_KEY: &str = "mailgun-signing-key-0123456789";
const BEARER: &str = "generic-webhook-token-0123456789";

async fn webhook_state(env: &TestEnv) -> (AppState, herald::store::Store) {
    let store = env.store().await;
    for email in ["ana@example.org", "bob@example.org", "cy@example.org"] {
        store
            .add_subscriber(&SubscriberEmail::parse(email).unwrap(), None, false)
            .await
            .unwrap();
    }
    let state = AppState::new(
        store.clone(),
        SigningKeys::new(KEY.into(), None),
        "News",
        "http://127.0.0.1:8080",
    )
    .unwrap()
    .with_webhooks(Webhooks {
        mailgun_signing_key: Some(MAILGUN_KEY.into()),
        bearer_token: Some(BEARER.into()),
        sns: None,
        list_id: "news.example.org".into(),
        soft_limit: 3,
    });
    (state, store)
}

async fn post(state: &AppState, path: &str, auth: Option<&str>, body: String) -> StatusCode {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    app(state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap()
        .status()
}

fn mailgun_body(key: &str, timestamp: i64, event: serde_json::Value) -> String {
    let token = format!("tok{timestamp}{}", event["recipient"]);
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    serde_json::json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": signature},
        "event-data": event,
    })
    .to_string()
}

async fn status_of(store: &herald::store::Store, email: &str) -> SubscriberStatus {
    store
        .find_subscriber(&SubscriberEmail::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn mailgun_webhooks_need_a_fresh_valid_signature() {
    let env = TestEnv::new();
    let (state, store) = webhook_state(&env).await;
    let now = chrono::Utc::now().timestamp();
    let failed = |rcpt: &str, id: &str| {
        serde_json::json!({
            "event": "failed", "id": id, "severity": "permanent", "recipient": rcpt,
            "delivery-status": {"code": 550, "enhanced-code": "5.1.1", "message": "mailbox does not exist"},
        })
    };
    // Wrong key, stale timestamp, garbage: 403/400, nothing changes.
    let forged = mailgun_body(
        "someone-elses-key-0123456789",
        now,
        failed("ana@example.org", "e1"),
    );
    assert_eq!(
        post(&state, "/webhooks/mailgun", None, forged).await,
        StatusCode::FORBIDDEN
    );
    let stale = mailgun_body(MAILGUN_KEY, now - 3600, failed("ana@example.org", "e2"));
    assert_eq!(
        post(&state, "/webhooks/mailgun", None, stale).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&state, "/webhooks/mailgun", None, "{}".into()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(&store, "ana@example.org").await,
        SubscriberStatus::Active
    );
    assert!(store.list_bounces(None, None, 10).await.unwrap().is_empty());

    // Genuine: a permanent failure and a complaint act; a delivery is ignored.
    let ok = mailgun_body(MAILGUN_KEY, now, failed("ana@example.org", "e3"));
    assert_eq!(
        post(&state, "/webhooks/mailgun", None, ok.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&store, "ana@example.org").await,
        SubscriberStatus::Bounced
    );
    let complaint = mailgun_body(
        MAILGUN_KEY,
        now,
        serde_json::json!({"event": "complained", "id": "e4", "recipient": "bob@example.org"}),
    );
    assert_eq!(
        post(&state, "/webhooks/mailgun", None, complaint).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&store, "bob@example.org").await,
        SubscriberStatus::Complained
    );
    let delivered = mailgun_body(
        MAILGUN_KEY,
        now,
        serde_json::json!({"event": "delivered", "id": "e5", "recipient": "cy@example.org"}),
    );
    assert_eq!(
        post(&state, "/webhooks/mailgun", None, delivered).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&store, "cy@example.org").await,
        SubscriberStatus::Active
    );
    // A redelivered event counts once.
    assert_eq!(
        post(&state, "/webhooks/mailgun", None, ok).await,
        StatusCode::OK
    );
    assert_eq!(store.list_bounces(None, None, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_generic_webhook_needs_the_bearer_token() {
    let env = TestEnv::new();
    let (state, store) = webhook_state(&env).await;
    let body =
        serde_json::json!({"email": "cy@example.org", "kind": "hard", "diagnostic": "5.1.1 gone"})
            .to_string();
    assert_eq!(
        post(&state, "/webhooks/bounce", None, body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(
            &state,
            "/webhooks/bounce",
            Some("Bearer wrong-token-0123456789"),
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(&store, "cy@example.org").await,
        SubscriberStatus::Active
    );
    let auth = format!("Bearer {BEARER}");
    assert_eq!(
        post(&state, "/webhooks/bounce", Some(&auth), body).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&store, "cy@example.org").await,
        SubscriberStatus::Bounced
    );
    // Metrics count recorded bounces by kind.
    let res = app(state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&body);
    assert!(
        metrics.contains("herald_bounces_total{kind=\"hard\"} 1"),
        "{metrics}"
    );
    let bad_kind = serde_json::json!({"email": "ana@example.org", "kind": "maybe"}).to_string();
    assert_eq!(
        post(&state, "/webhooks/bounce", Some(&auth), bad_kind).await,
        StatusCode::BAD_REQUEST
    );

    // Unconfigured endpoints are not there at all.
    let bare = AppState::new(
        store.clone(),
        SigningKeys::new(KEY.into(), None),
        "News",
        "http://127.0.0.1:8080",
    )
    .unwrap();
    let body = serde_json::json!({"email": "ana@example.org", "kind": "hard"}).to_string();
    assert_eq!(
        post(&bare, "/webhooks/bounce", Some(&auth), body).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&store, "ana@example.org").await,
        SubscriberStatus::Active
    );
}

// Amazon SES through SNS: a local HTTPS server plays the SNS certificate
// host (trusted through the test-only override).

struct FakeSns {
    dir: tempfile::TempDir,
    child: std::process::Child,
    port: u16,
    key: rsa::RsaPrivateKey,
    ca_pem: Vec<u8>,
}

impl Drop for FakeSns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fake_sns() -> FakeSns {
    use rsa::pkcs8::DecodePrivateKey;
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // A test CA, and a certificate for localhost signed by it: the HTTPS
    // server's and the SNS signing certificate.
    std::fs::write(
        dir.path().join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=herald-test-ca",
        "req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile leaf.ext",
    ] {
        let ok = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(args.split(' '))
            .output()
            .expect("openssl (installed by the test set-up)");
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/https_server.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .arg(dir.path().join("cert.pem"))
        .arg(dir.path().join("key.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the server prints its port");
    let key_pem = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    FakeSns {
        key: rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem).unwrap(),
        ca_pem: std::fs::read(dir.path().join("ca.pem")).unwrap(),
        dir,
        child,
        port,
    }
}

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:ses-feedback";

impl FakeSns {
    fn cert_url(&self) -> String {
        format!("https://localhost:{}/cert.pem", self.port)
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default()
    }

    /// An SNS message with its fields, signed as SNS signs them.
    fn signed(&self, fields: &[(&str, &str)], version: &str) -> serde_json::Value {
        use rsa::signature::{SignatureEncoding, Signer};
        let mut signed: Vec<(&str, &str)> = fields
            .iter()
            .copied()
            .filter(|(n, _)| {
                [
                    "Message",
                    "MessageId",
                    "Subject",
                    "SubscribeURL",
                    "Timestamp",
                    "Token",
                    "TopicArn",
                    "Type",
                ]
                .contains(n)
            })
            .collect();
        signed.sort_by_key(|(n, _)| *n);
        let text: String = signed.iter().map(|(n, v)| format!("{n}\n{v}\n")).collect();
        let signature = match version {
            "1" => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec(),
            _ => rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec(),
        };
        use base64::Engine;
        let mut json = serde_json::Map::new();
        for (n, v) in fields {
            json.insert(n.to_string(), serde_json::Value::String(v.to_string()));
        }
        json.insert("SignatureVersion".into(), version.into());
        json.insert(
            "Signature".into(),
            base64::engine::general_purpose::STANDARD
                .encode(signature)
                .into(),
        );
        serde_json::Value::Object(json)
    }

    fn notification(&self, id: &str, ses: serde_json::Value, version: &str) -> serde_json::Value {
        let message = ses.to_string();
        let cert = self.cert_url();
        self.signed(
            &[
                ("Type", "Notification"),
                ("MessageId", id),
                ("TopicArn", TOPIC),
                ("Message", &message),
                ("Timestamp", "2030-01-06T07:00:00.000Z"),
                ("SigningCertURL", &cert),
            ],
            version,
        )
    }
}

#[tokio::test]
async fn ses_notifications_need_a_valid_sns_signature_from_an_sns_host() {
    let sns = fake_sns();
    let env = TestEnv::new();
    let (state, store) = webhook_state(&env).await;
    let verifier = herald::http::sns::SnsVerifier::new(
        TOPIC.into(),
        Some(format!("localhost:{}", sns.port)),
        Some(&sns.ca_pem),
    )
    .unwrap();
    let state = state.with_webhooks(Webhooks {
        mailgun_signing_key: None,
        bearer_token: None,
        sns: Some(verifier),
        list_id: "news.example.org".into(),
        soft_limit: 3,
    });
    let bounce = |email: &str, kind: &str| {
        serde_json::json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": kind, "bouncedRecipients": [
                {"emailAddress": email, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
            ]},
            "mail": {"headers": [{"name": "Message-ID", "value": "<unknown@example.org>"}]},
        })
    };
    let ses = |body: serde_json::Value| {
        let state = state.clone();
        async move { post(&state, "/webhooks/ses", None, body.to_string()).await }
    };

    // Tampered: the message changed after signing.
    let mut tampered = sns.notification("m1", bounce("ana@example.org", "Permanent"), "1");
    tampered["Message"] = bounce("bob@example.org", "Permanent").to_string().into();
    assert_eq!(ses(tampered).await, StatusCode::FORBIDDEN);
    // A certificate on a host that is not SNS is never fetched.
    let mut foreign = sns.notification("m2", bounce("ana@example.org", "Permanent"), "1");
    foreign["SigningCertURL"] = "https://evil.example/cert.pem".into();
    assert_eq!(ses(foreign).await, StatusCode::FORBIDDEN);
    let mut plain = sns.notification("m3", bounce("ana@example.org", "Permanent"), "1");
    plain["SigningCertURL"] = format!("http://localhost:{}/cert.pem", sns.port).into();
    assert_eq!(ses(plain).await, StatusCode::FORBIDDEN);
    // Another topic.
    let mut other = sns.notification("m4", bounce("ana@example.org", "Permanent"), "1");
    other["TopicArn"] = "arn:aws:sns:eu-west-1:123456789012:other".into();
    assert_eq!(ses(other).await, StatusCode::FORBIDDEN);
    assert_eq!(
        status_of(&store, "ana@example.org").await,
        SubscriberStatus::Active
    );
    assert_eq!(
        status_of(&store, "bob@example.org").await,
        SubscriberStatus::Active
    );
    assert!(store.list_bounces(None, None, 10).await.unwrap().is_empty());

    // Genuine, both signature versions: a permanent bounce and a complaint.
    let ok = sns.notification("m5", bounce("ana@example.org", "Permanent"), "1");
    assert_eq!(ses(ok).await, StatusCode::OK);
    assert_eq!(
        status_of(&store, "ana@example.org").await,
        SubscriberStatus::Bounced
    );
    let complaint = serde_json::json!({
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "bob@example.org"}], "complaintFeedbackType": "abuse"},
    });
    assert_eq!(
        ses(sns.notification("m6", complaint, "2")).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&store, "bob@example.org").await,
        SubscriberStatus::Complained
    );
    // A transient bounce counts but does not mark; a Delivery is ignored.
    assert_eq!(
        ses(sns.notification("m7", bounce("cy@example.org", "Transient"), "2")).await,
        StatusCode::OK
    );
    let delivery = serde_json::json!({"notificationType": "Delivery", "delivery": {"recipients": ["cy@example.org"]}});
    assert_eq!(
        ses(sns.notification("m8", delivery, "2")).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&store, "cy@example.org").await,
        SubscriberStatus::Active
    );
    let kinds: Vec<String> = store
        .list_bounces(None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.kind)
        .collect();
    assert_eq!(kinds, ["soft", "complaint", "hard"]);

    // A subscription confirmation is confirmed by fetching its URL.
    let subscribe = format!("https://localhost:{}/confirm?Token=abc", sns.port);
    let cert = sns.cert_url();
    let confirm = sns.signed(
        &[
            ("Type", "SubscriptionConfirmation"),
            ("MessageId", "c1"),
            ("TopicArn", TOPIC),
            ("Message", "You have chosen to subscribe to the topic."),
            ("Timestamp", "2030-01-06T07:00:00.000Z"),
            ("SubscribeURL", &subscribe),
            ("Token", "abc"),
            ("SigningCertURL", &cert),
        ],
        "1",
    );
    assert_eq!(ses(confirm).await, StatusCode::OK);
    assert!(
        sns.requests().contains("/confirm?Token=abc"),
        "{}",
        sns.requests()
    );
}
