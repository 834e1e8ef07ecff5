//! PostgreSQL scale-out, through the built binary against one database:
//! several `send --live` or `run-due` processes share one send (each
//! recipient once; a sender killed mid-send leaves the others to finish
//! with nothing lost), and two `serve` replicas take concurrent one-click
//! unsubscribes for the same subscribers, each change counted once. (The
//! shared rate is measured in tests/timing.) These run in the PostgreSQL
//! pass of the suite; the SQLite pass says so and returns.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use herald::token::{SigningKeys, TokenClaims};

use crate::helpers::{
    ledger, on_postgres, seed_subscribers, spawn_serve, stderr, stdout, write_issue, TestEnv,
};
use crate::smtp_server::SmtpServer;

const SECRET: &str = "test-signing-key-0123456789abcdefghijkl";

fn postgres_only(what: &str) -> bool {
    if !on_postgres() {
        eprintln!("PostgreSQL-only test, run in the PostgreSQL pass: {what}");
        return true;
    }
    false
}

/// A `herald send --live --yes` child with a 5-second lease.
fn spawn_sender(env: &TestEnv, port: u16, rate: u32, issue: &std::path::Path) -> Child {
    env.herald_process(port, rate, 4)
        .env("HERALD__SMTP__HOST", "127.0.0.1")
        .env("HERALD__SCHEDULE__LEASE_SECS", "5")
        .args(["send", "--live", "--yes"])
        .arg(issue)
        .spawn()
        .unwrap()
}

/// An installation with `n` subscribers, the issue `slug`, an SMTP server
/// and three senders sharing the send at 600 msg/s in all, once the server
/// has received `first` messages.
fn three_senders_after(
    n: usize,
    slug: &str,
    first: usize,
) -> (TestEnv, PathBuf, SmtpServer, Vec<Child>) {
    let env = TestEnv::new();
    seed_subscribers(&env, n);
    let issue = write_issue(&env, slug);
    let server = SmtpServer::start();
    let children = (0..3)
        .map(|_| spawn_sender(&env, server.port(), 600, &issue))
        .collect();
    assert!(server.wait_for(first, Duration::from_secs(60)) >= first);
    (env, issue, server, children)
}

/// The send finished: every one of the `n` recipients reached, and at most
/// the messages one sender had in flight (one per connection) twice.
fn all_sent_at_most_in_flight_twice(env: &TestEnv, issue: &Path, server: &SmtpServer, n: usize) {
    let l = ledger(env, issue);
    assert_eq!(l["state"], "sent", "{l}");
    assert_eq!(l["counts"]["sent"], n as u64, "{l}");
    let counts = server.counts();
    assert_eq!(counts.len(), n, "nobody lost");
    let twice = counts.values().filter(|c| **c > 1).count();
    assert!(twice <= 4, "{twice} recipients got two copies");
    assert!(counts.values().all(|c| *c <= 2));
}

/// Wait for every child (at most `within`), killing stragglers.
fn wait_all(children: Vec<Child>, within: Duration) -> Vec<Output> {
    let deadline = Instant::now() + within;
    let mut children = children;
    while Instant::now() < deadline && children.iter_mut().any(|c| c.try_wait().unwrap().is_none())
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    children
        .into_iter()
        .map(|mut c| {
            let _ = c.kill();
            c.wait_with_output().unwrap()
        })
        .collect()
}

/// "this run sent N" from a sender's report.
fn sent_by(out: &Output) -> u64 {
    let text = stdout(out);
    let at = text
        .find("this run sent ")
        .unwrap_or_else(|| panic!("no report in {text}"));
    text[at + 14..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn three_senders_on_one_issue_send_each_recipient_once_and_claim_disjoint_rows() {
    if postgres_only("three senders on one issue") {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 3000);
    let issue = write_issue(&env, "shared");
    let server = SmtpServer::start();
    let children = (0..3)
        .map(|_| spawn_sender(&env, server.port(), 1500, &issue))
        .collect();
    let outputs = wait_all(children, Duration::from_secs(60));
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    let counts = server.counts();
    assert_eq!(counts.len(), 3000);
    assert!(counts.values().all(|n| *n == 1), "every recipient once");
    let sent: Vec<u64> = outputs.iter().map(sent_by).collect();
    assert_eq!(sent.iter().sum::<u64>(), 3000, "{sent:?}");
    assert!(
        sent.iter().all(|n| *n > 0),
        "every sender took part: {sent:?}"
    );
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "sent");
    assert_eq!(l["counts"]["sent"], 3000);
    let left: Vec<(i64,)> = env.fetch_all("SELECT COUNT(*) FROM senders");
    assert_eq!(left[0].0, 0, "every sender removed its registration");
}

#[test]
fn a_sender_killed_mid_send_leaves_the_others_to_finish_with_nothing_lost() {
    if postgres_only("a sender killed mid-send") {
        return;
    }
    // The issue's scale: 30,000 recipients, 600 msg/s for the three.
    let n = 30_000;
    let (env, issue, server, mut children) = three_senders_after(n, "killed", 6000);
    let mut victim = children.remove(0);
    victim.kill().unwrap();
    let _ = victim.wait();
    let started = Instant::now();
    let outputs = wait_all(children, Duration::from_secs(150));
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    // The survivors waited for the victim's registration to lapse (5 s)
    // and resolved its rows before finishing.
    assert!(started.elapsed() >= Duration::from_secs(4));
    // Only the victim's messages in flight may have gone twice: their
    // outcome was lost, and `on_unknown = "resend"`.
    all_sent_at_most_in_flight_twice(&env, &issue, &server, n);
}

#[test]
fn two_run_due_passes_share_a_scheduled_send() {
    if postgres_only("two run-due passes at once") {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 1200);
    let issue = write_issue(&env, "scheduled");
    let out = env
        .herald()
        .arg("schedule")
        .arg(&issue)
        .args([
            "--at",
            "2030-01-06T09:00:00Z",
            "--now",
            "2030-01-06T08:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let server = SmtpServer::start();
    let children = (0..2)
        .map(|_| {
            env.herald_process(server.port(), 400, 4)
                .env("HERALD__SMTP__HOST", "127.0.0.1")
                .args(["run-due", "--now", "2030-01-06T09:01:00Z"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = wait_all(children, Duration::from_secs(60));
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    let counts = server.counts();
    assert_eq!(counts.len(), 1200);
    assert!(counts.values().all(|n| *n == 1), "every recipient once");
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "sent");
}

#[test]
fn two_serve_replicas_take_concurrent_one_click_posts_and_count_each_change_once() {
    if postgres_only("two serve replicas") {
        return;
    }
    let env = TestEnv::new();
    let n = 60;
    seed_subscribers(&env, n);
    let settings = [("HERALD__UNSUBSCRIBE__SECRET", SECRET)];
    let (mut a, base_a) = spawn_serve(&env, &settings);
    let (mut b, base_b) = spawn_serve(&env, &settings);
    let keys = SigningKeys::new(SECRET.into(), None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let mut posts = Vec::new();
        for id in 1..=n as i64 {
            let token = keys.sign(TokenClaims {
                subscriber_id: id,
                issue_id: None,
            });
            // Each subscriber's one click arrives at both replicas, twice.
            for base in [&base_a, &base_b, &base_b, &base_a] {
                let (http, url) = (http.clone(), format!("{base}/unsubscribe/{token}"));
                posts.push(tokio::spawn(async move {
                    http.post(url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("List-Unsubscribe=One-Click")
                        .send()
                        .await
                        .unwrap()
                        .status()
                }));
            }
        }
        for post in posts {
            assert_eq!(post.await.unwrap(), 200);
        }
        let mut changed = 0;
        for base in [&base_a, &base_b] {
            let health = http.get(format!("{base}/healthz")).send().await.unwrap();
            assert_eq!(health.text().await.unwrap(), "ok\ndatabase: postgres\n");
            let metrics = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let line = metrics
                .lines()
                .find(|l| {
                    l.starts_with(
                        "herald_unsubscribes_total{via=\"one_click\",result=\"unsubscribed\"}",
                    )
                })
                .unwrap_or_else(|| panic!("{metrics}"));
            changed += line.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
        }
        assert_eq!(
            changed, n as u64,
            "each change counted once, across replicas"
        );
    });
    let _ = a.kill();
    let _ = b.kill();
    let _ = (a.wait(), b.wait());
    let rows: Vec<(String, i64)> =
        env.fetch_all("SELECT status, COUNT(*) FROM subscribers GROUP BY status");
    assert_eq!(rows, vec![("unsubscribed".to_string(), n as i64)]);
}

#[test]
fn a_sender_paused_past_its_registration_hands_nothing_more_out_when_it_wakes() {
    if postgres_only("a sender paused past its registration") {
        return;
    }
    let n = 6000;
    let (env, issue, server, mut children) = three_senders_after(n, "paused", 1000);
    let signal = |sig: &str, child: &Child| {
        assert!(std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    // Frozen for longer than its 5-second registration: the others take
    // over its rows.
    signal("-STOP", &children[0]);
    std::thread::sleep(Duration::from_secs(8));
    signal("-CONT", &children[0]);
    let paused = children.remove(0);
    let outputs = wait_all(children, Duration::from_secs(90));
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    let paused = wait_all(vec![paused], Duration::from_secs(30)).remove(0);
    assert_eq!(paused.status.code(), Some(1), "{}", stderr(&paused));
    // At most the messages it had in flight when frozen went twice.
    all_sent_at_most_in_flight_twice(&env, &issue, &server, n);
}
