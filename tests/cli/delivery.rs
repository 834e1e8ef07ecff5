//! The delivery engine through the built binary against a real SMTP server
//! on loopback: exactly-once on a clean run, per-recipient faults, a server
//! that is down, a killed process, an unsubscribe mid-send, the rate limit.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::helpers::{
    closed_port, ledger, live_send, live_send_with, seed_subscribers, smtp_env, stderr, stdout,
    write_issue, TestEnv,
};
use crate::smtp_server::{Fault, Script, SmtpServer};

#[test]
fn a_clean_run_delivers_every_recipient_exactly_once_and_a_rerun_sends_nothing() {
    let env = TestEnv::new();
    seed_subscribers(&env, 60);
    let issue = write_issue(&env, "clean");
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));

    let counts = server.counts();
    assert_eq!(counts.len(), 60);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let ids: HashSet<String> = server
        .received()
        .iter()
        .map(|r| header(&r.data, "Message-ID").unwrap())
        .collect();
    assert_eq!(ids.len(), 60, "Message-IDs are unique per recipient");
    // The server offers PIPELINING: every envelope went out as one group
    // (MAIL, RCPT and DATA in one write).
    assert_eq!(server.pipelined(), 60);
    assert!(server
        .received()
        .iter()
        .all(|r| r.from == crate::helpers::FROM_ADDRESS));
    // Each worker keeps its connection: no connection per message.
    assert!(
        server.connections() <= 4,
        "{} connections",
        server.connections()
    );
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 60);
    assert_eq!(l["state"], "sent");
    let replies = env
        .herald()
        .args(["status", "--failed"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(stdout(&replies).contains("sent 60"));

    // Running the same live send again resumes: nothing is left, nothing is sent.
    let mut again = env.herald();
    smtp_env(&mut again, server.port());
    let out = again
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.received().len(), 60);
}

fn header(data: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    data.lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

#[test]
fn per_recipient_faults_end_in_the_right_state_without_hanging() {
    // Pipelined envelopes: the replies to a refused group are read in order
    // and the connection carries on.
    let server = faults_case(Script::default());
    assert!(server.pipelined() > 0);
}

#[test]
fn per_recipient_faults_end_in_the_same_states_without_pipelining() {
    let server = faults_case(Script {
        no_pipelining: true,
        ..Script::default()
    });
    assert_eq!(server.pipelined(), 0, "one command at a time");
}

/// Fifteen recipients with a fault each, fifteen without, through a server
/// of this script; every recipient ends in the state its fault calls for.
fn faults_case(script: Script) -> SmtpServer {
    let env = TestEnv::new();
    seed_subscribers(&env, 30);
    let issue = write_issue(&env, "faults");
    let server = SmtpServer::start_scripted(script);
    let plan: Vec<(usize, Fault, &str)> = vec![
        (
            1,
            Fault::AtRcpt("421 4.3.2 shutting down".into()),
            "deferred",
        ),
        (
            2,
            Fault::AtRcpt("450 4.2.1 mailbox busy".into()),
            "deferred",
        ),
        (3, Fault::AtRcpt("451 4.3.0 local error".into()), "deferred"),
        (
            4,
            Fault::AtRcpt("452 4.2.2 mailbox full".into()),
            "deferred",
        ),
        (5, Fault::AtRcpt("550 5.1.1 no such user".into()), "failed"),
        (6, Fault::AtRcpt("554 5.7.1 rejected".into()), "failed"),
        (7, Fault::AfterData("421 4.3.2 closing".into()), "deferred"),
        (
            8,
            Fault::AfterData("450 4.7.1 try later".into()),
            "deferred",
        ),
        (
            9,
            Fault::AfterData("451 4.3.0 queue trouble".into()),
            "deferred",
        ),
        (
            10,
            Fault::AfterData("452 4.3.1 no space".into()),
            "deferred",
        ),
        (
            11,
            Fault::AfterData("550 5.1.1 unknown user".into()),
            "failed",
        ),
        (
            12,
            Fault::AfterData("554 5.6.0 content rejected".into()),
            "failed",
        ),
        (13, Fault::DropAfterData, "unknown"),
        (14, Fault::StallAfterData, "unknown"),
        (15, Fault::StallAtRcpt, "deferred"),
    ];
    for (n, fault, _) in &plan {
        server.fault(
            &format!("user{n:04}@example.org"),
            fault.clone(),
            usize::MAX,
        );
    }
    let started = Instant::now();
    let out = live_send_with(
        &env,
        &issue,
        server.port(),
        &[
            ("HERALD__SENDER__LINGER_SECS", "0"),
            ("HERALD__SENDER__RETRY_BASE_MS", "600000"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    let l = ledger(&env, &issue);
    let problems = l["problems"].as_array().unwrap();
    let state_of = |n: usize| {
        problems
            .iter()
            .find(|p| p["email"] == format!("user{n:04}@example.org"))
            .map(|p| p["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "sent".into())
    };
    for (n, _, expected) in &plan {
        assert_eq!(state_of(*n), *expected, "user{n:04}");
    }
    assert_eq!(l["counts"]["sent"], 15);
    assert_eq!(server.counts().len(), 15);
    // The last reply is kept for the operator.
    let p5 = problems
        .iter()
        .find(|p| p["email"] == "user0005@example.org")
        .unwrap();
    assert_eq!(p5["last_code"], 550);
    assert!(p5["last_reply"].as_str().unwrap().contains("5.1.1"));

    // 5.1.x bounced the subscriber; 5.7.1 did not.
    let out = env
        .herald()
        .args([
            "subscribers",
            "list",
            "--status",
            "bounced",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let bounced = stdout(&out);
    assert!(
        bounced.contains("user0005@example.org") && bounced.contains("user0011@example.org"),
        "{bounced}"
    );
    assert!(!bounced.contains("user0006@example.org") && !bounced.contains("user0012@example.org"));
    server
}

#[test]
fn a_refused_mail_from_in_a_pipelined_group_defers_the_recipient_and_keeps_the_connection() {
    // The server refuses the first two MAIL FROM commands; the RCPT and
    // DATA already sent behind each are refused in turn (503). The client
    // reads every reply due, resets, and carries on on the same connection.
    for script in [
        Script {
            refuse_mail: 2,
            ..Script::default()
        },
        Script {
            refuse_mail: 2,
            no_pipelining: true,
            ..Script::default()
        },
    ] {
        let pipelining = !script.no_pipelining;
        let env = TestEnv::new();
        seed_subscribers(&env, 12);
        let issue = write_issue(&env, "mailrefused");
        let server = SmtpServer::start_scripted(script);
        let out = live_send_with(
            &env,
            &issue,
            server.port(),
            &[
                ("HERALD__SENDER__CONCURRENCY", "1"),
                ("HERALD__SENDER__LINGER_SECS", "0"),
                ("HERALD__SENDER__RETRY_BASE_MS", "600000"),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let l = ledger(&env, &issue);
        assert_eq!(l["counts"]["sent"], 10, "pipelining {pipelining}: {l}");
        assert_eq!(l["counts"]["deferred"], 2, "pipelining {pipelining}: {l}");
        assert_eq!(server.received().len(), 10);
        assert_eq!(server.connections(), 1, "pipelining {pipelining}");
        assert_eq!(server.commands("RSET"), 2, "pipelining {pipelining}");
        if pipelining {
            assert_eq!(server.pipelined(), 12);
            // RCPT and DATA of both refused groups, refused in turn.
            assert_eq!(server.commands("RCPT"), 12);
            assert_eq!(server.commands("DATA"), 12);
        } else {
            assert_eq!(server.commands("RCPT"), 10);
            assert_eq!(server.commands("DATA"), 10);
        }
        let deferred: Vec<_> = l["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "deferred")
            .map(|p| p["last_code"].as_i64())
            .collect();
        assert_eq!(
            deferred,
            vec![Some(451), Some(451)],
            "pipelining {pipelining}"
        );
    }
}

#[test]
fn temporary_failures_are_retried_with_backoff_and_then_delivered() {
    let env = TestEnv::new();
    seed_subscribers(&env, 10);
    let issue = write_issue(&env, "retry");
    let server = SmtpServer::start();
    server.fault(
        "user0002@example.org",
        Fault::AtRcpt("450 4.2.1 busy".into()),
        1,
    );
    server.fault(
        "user0003@example.org",
        Fault::AfterData("451 4.3.0 later".into()),
        2,
    );
    server.fault(
        "user0004@example.org",
        Fault::AtRcpt("452 4.2.2 full".into()),
        usize::MAX,
    );
    let out = live_send_with(
        &env,
        &issue,
        server.port(),
        &[
            ("HERALD__SENDER__RETRY_BASE_MS", "100"),
            ("HERALD__SENDER__MAX_ATTEMPTS", "3"),
            ("HERALD__SENDER__LINGER_SECS", "10"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = server.counts();
    assert_eq!(counts["user0002@example.org"], 1);
    assert_eq!(counts["user0003@example.org"], 1);
    assert!(!counts.contains_key("user0004@example.org"));
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 9);
    assert_eq!(l["counts"]["failed"], 1);
    let p = &l["problems"][0];
    assert_eq!(p["email"], "user0004@example.org");
    assert_eq!(p["attempts"], 3);
    assert!(p["last_reply"]
        .as_str()
        .unwrap()
        .contains("gave up after 3 attempts"));
}

#[test]
fn a_server_down_for_the_whole_run_leaves_everything_pending_exits_1_and_resumes_later() {
    let env = TestEnv::new();
    seed_subscribers(&env, 20);
    let issue = write_issue(&env, "down");
    // A port with nothing listening.
    let port = closed_port();
    let out = live_send(&env, &issue, port);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not reach smtp://127.0.0.1"),
        "{}",
        stderr(&out)
    );
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["pending"], 20);
    assert_eq!(l["counts"]["claimed"], 0);

    let server = SmtpServer::start_on(&format!("127.0.0.1:{port}"));
    let out = live_send(&env, &issue, port);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.counts().len(), 20);
    assert_eq!(ledger(&env, &issue)["counts"]["sent"], 20);
}

#[test]
fn a_killed_send_resumes_with_nothing_lost_and_duplicates_bounded_by_concurrency() {
    let env = TestEnv::new();
    seed_subscribers(&env, 400);
    let issue = write_issue(&env, "killed");
    let server = SmtpServer::start();
    let concurrency = 4;
    let mut child = env
        .herald_process(server.port(), 200, concurrency)
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    // Let it get well into the list, then SIGKILL it.
    server.wait_for(100, Duration::from_secs(20));
    child.kill().unwrap();
    child.wait().unwrap();
    let before = server.received().len();
    assert!(
        (100..400).contains(&before),
        "killed after {before} messages"
    );

    let mut resume = env.herald();
    smtp_env(&mut resume, server.port());
    let out = resume
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let counts = server.counts();
    assert_eq!(counts.len(), 400, "every subscriber got the issue");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(duplicates <= concurrency, "{duplicates} duplicates");
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 400, "{l}");
    assert_eq!(l["state"], "sent");
}

#[test]
fn an_unsubscribe_arriving_mid_send_skips_that_recipient() {
    let env = TestEnv::new();
    seed_subscribers(&env, 60);
    let issue = write_issue(&env, "midsend");
    let server = SmtpServer::start();
    // The server holds the send after its first message, long before the
    // claimer reaches the last recipient (claimed in the second batch).
    server.hold_after(1);
    let child = env
        .herald_process(server.port(), 1000, 2)
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    server.wait_for(1, Duration::from_secs(20));
    env.herald()
        .args(["subscribers", "unsubscribe", "user0060@example.org"])
        .assert()
        .success();
    server.release();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = server.counts();
    assert!(!counts.contains_key("user0060@example.org"));
    assert_eq!(counts.len(), 59);
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["skipped"], 1);
    assert_eq!(l["counts"]["sent"], 59);
}

#[test]
fn sigterm_stops_claiming_records_every_outcome_and_the_next_run_finishes() {
    let env = TestEnv::new();
    seed_subscribers(&env, 300);
    let issue = write_issue(&env, "stopped");
    let server = SmtpServer::start();
    let child = env
        .herald_process(server.port(), 100, 4)
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    server.wait_for(50, Duration::from_secs(20));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run the same command to resume"), "{err}");
    assert!(
        err.contains("the next `herald run-due` (cron) resumes it too")
            && err.contains("herald abort stopped"),
        "{err}"
    );

    // Every message the server accepted is recorded as sent; nothing is
    // left claimed; the rest is pending.
    let l = ledger(&env, &issue);
    let received = server.received().len() as i64;
    assert!(received < 300, "the stop came too late to test anything");
    assert_eq!(l["counts"]["sent"], received, "{l}");
    assert_eq!(l["counts"]["claimed"], 0);
    assert_eq!(l["counts"]["unknown"], 0);
    assert_eq!(l["counts"]["pending"], 300 - received);

    let mut resume = env.herald();
    smtp_env(&mut resume, server.port());
    let out = resume
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = server.counts();
    assert_eq!(counts.len(), 300);
    assert!(
        counts.values().all(|n| *n == 1),
        "a graceful stop causes no duplicate"
    );
}

#[test]
fn test_sends_go_only_to_the_given_addresses_and_stay_out_of_the_live_ledger() {
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let issue = write_issue(&env, "tested");
    let server = SmtpServer::start();
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd
        .arg("send")
        .arg(&issue)
        .args(["--test", "editor@example.net", "user0002@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("test message to editor@example.net: accepted"));
    let received = server.received();
    assert_eq!(received.len(), 2);
    for r in &received {
        let subject = header(&r.data, "Subject").unwrap();
        assert!(subject.starts_with("[TEST] "), "{subject}");
    }
    // A subscriber's test copy is personalised with their name.
    let to_sub = received
        .iter()
        .find(|r| r.to == ["user0002@example.org"])
        .unwrap();
    assert!(header(&to_sub.data, "To").unwrap().contains("User 2"));
    // No live send exists yet: the test send registered a draft (so its
    // preview link works), with an empty ledger.
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "draft", "{l}");
    assert_eq!(l["total"], 0, "{l}");

    // A bad test address is bad input.
    let mut bad = env.herald();
    smtp_env(&mut bad, server.port());
    bad.arg("send")
        .arg(&issue)
        .args(["--test", "not-an-address"])
        .assert()
        .code(2);

    let mut live = env.herald();
    smtp_env(&mut live, server.port());
    live.args(["send", "--live", "--yes"])
        .arg(&issue)
        .assert()
        .success();
    assert_eq!(ledger(&env, &issue)["counts"]["sent"], 5);
}

#[test]
fn a_dry_run_builds_every_message_and_sends_nothing() {
    let env = TestEnv::new();
    seed_subscribers(&env, 12);
    let issue = write_issue(&env, "dry");
    let server = SmtpServer::start();
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd
        .args(["send", "--dry-run"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("built 12 messages"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("nothing was sent"));
    assert!(server.received().is_empty());
    assert_eq!(server.connections(), 0);
    env.herald().arg("status").arg(&issue).assert().code(2);
}

#[test]
fn a_live_send_refused_for_a_missing_yes_writes_nothing() {
    let env = TestEnv::new();
    seed_subscribers(&env, 3);
    let issue = write_issue(&env, "unconfirmed");
    let server = SmtpServer::start();
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd.args(["send", "--live"]).arg(&issue).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(server.connections(), 0);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = env.store().await;
        assert!(
            store.latest_issue("unconfirmed").await.unwrap().is_none(),
            "no issue row"
        );
        assert!(store.lease_holder("send:1").await.unwrap().is_none());
        assert!(
            store.recent_delivery_counts(10).await.unwrap().is_empty(),
            "no deliveries"
        );
        store.close().await;
    });
}

#[test]
fn a_live_send_without_a_terminal_needs_yes_and_an_edited_issue_needs_a_new_version() {
    let env = TestEnv::new();
    seed_subscribers(&env, 4);
    let issue = write_issue(&env, "guarded");
    let server = SmtpServer::start();
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd.args(["send", "--live"]).arg(&issue).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(server.received().is_empty());

    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    cmd.args(["send", "--live", "--yes"])
        .arg(&issue)
        .assert()
        .success();
    assert_eq!(server.received().len(), 4);

    // Edit the file after the send started: refused, nothing sent.
    let mut text = std::fs::read_to_string(&issue).unwrap();
    text = text.replacen("Migration news", "Migration news (corrected)", 1);
    std::fs::write(&issue, &text).unwrap();
    let out = live_send(&env, &issue, server.port());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--force-new-version"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.received().len(), 4);

    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    cmd.args(["send", "--live", "--yes", "--force-new-version"])
        .arg(&issue)
        .assert()
        .success();
    let received = server.received();
    assert_eq!(received.len(), 8);
    let v2 = &received[4..];
    assert!(v2
        .iter()
        .all(|r| header(&r.data, "Subject").unwrap().contains("corrected")));
    // Version 2 has its own Message-IDs.
    let ids: HashSet<String> = received
        .iter()
        .map(|r| header(&r.data, "Message-ID").unwrap())
        .collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(ledger(&env, &issue)["version"], 2);
}

#[test]
fn resend_failed_puts_rows_back_and_the_next_live_run_delivers_them() {
    let env = TestEnv::new();
    seed_subscribers(&env, 6);
    let issue = write_issue(&env, "resent");
    let server = SmtpServer::start();
    server.fault(
        "user0003@example.org",
        Fault::AtRcpt("554 5.7.1 relay denied".into()),
        1,
    );
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    cmd.args(["send", "--live", "--yes"])
        .arg(&issue)
        .assert()
        .success();
    assert_eq!(ledger(&env, &issue)["counts"]["failed"], 1);

    let out = env
        .herald()
        .args(["resend", "--failed"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(
        stdout(&out).starts_with("1 failed deliveries"),
        "{}",
        stdout(&out)
    );
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    cmd.args(["send", "--live", "--yes"])
        .arg(&issue)
        .assert()
        .success();
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 6);
    assert_eq!(server.counts()["user0003@example.org"], 1);
}

#[test]
fn a_one_click_unsubscribe_from_a_received_message_removes_the_reader_from_the_next_live_send() {
    let env = TestEnv::new();
    seed_subscribers(&env, 8);
    let issue = write_issue(&env, "oneclick");
    let next = write_issue(&env, "oneclick-next");
    let server = SmtpServer::start();
    let (mut http, base) = crate::helpers::spawn_serve(&env, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |path: String| {
        rt.block_on(async {
            let res = reqwest::get(format!("{base}{path}")).await.unwrap();
            (res.status(), res.text().await.unwrap())
        })
    };
    // No web version before the live send starts.
    assert_eq!(get("/issues/oneclick".into()).0, 404);

    // The reader gets their copy and uses its List-Unsubscribe URL.
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    cmd.args(["send", "--live", "--yes"])
        .arg(&issue)
        .assert()
        .success();
    let message = server
        .received()
        .into_iter()
        .find(|r| r.to == ["user0005@example.org"])
        .unwrap()
        .data;
    let link = header(&message, "List-Unsubscribe").unwrap();
    let url = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        header(&message, "List-Unsubscribe-Post").unwrap(),
        "List-Unsubscribe=One-Click"
    );
    let url = url.replace(crate::helpers::PUBLIC_BASE_URL, &base);
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);

    let mut live = env.herald();
    smtp_env(&mut live, server.port());
    live.args(["send", "--live", "--yes"])
        .arg(&next)
        .assert()
        .success();
    let counts = server.counts();
    assert_eq!(counts["user0005@example.org"], 1, "only the first issue");
    assert_eq!(counts.len(), 8);
    assert_eq!(ledger(&env, &next)["counts"]["sent"], 7);

    // The "view in browser" link works once the issue is out, with nothing
    // personal on the page.
    let (status, page) = get("/issues/oneclick".into());
    assert_eq!(status, 200);
    assert!(page.contains("Migration news — oneclick") && page.contains("Hello reader"));
    assert!(page.contains("href=\"/unsubscribe\"") && !page.contains('\u{27E6}'));
    assert!(!page.contains("user0005") && !page.contains("/unsubscribe/"));
    let (status, help) = get("/unsubscribe".into());
    assert_eq!(status, 200);
    assert!(help.contains("link is personal to you"));

    // /metrics reports the issue's ledger by state.
    let body = rt.block_on(async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        body.lines()
            .any(|l| l == "herald_deliveries{issue=\"oneclick-next\",state=\"sent\"} 7"),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == "herald_subscribers{status=\"unsubscribed\"} 1"),
        "{body}"
    );
    let _ = http.kill();
    let _ = http.wait();
}

#[test]
fn a_send_whose_lease_another_process_took_over_stops_and_leaves_the_rest_to_it() {
    if crate::helpers::sqlite_only(
        "the exclusive send lease of SQLite (PostgreSQL shares sends: tests/cli/scale_out.rs)",
    ) {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 40);
    let issue = write_issue(&env, "taken-over");
    let server = SmtpServer::start();
    // 4 messages a second: the send outlasts a few lease renewals (every
    // third of the 5 s lease).
    let child = env
        .herald_process(server.port(), 4, 1)
        .env("HERALD__SCHEDULE__LEASE_SECS", "5")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(env.store());
    let started = Instant::now();
    let holder = loop {
        if let Some((holder, _)) = rt.block_on(store.lease_holder("send:1")).unwrap() {
            break holder;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no send lease");
        std::thread::sleep(Duration::from_millis(50));
    };
    // A process on another machine takes the lease over (as if this one
    // had stalled past its expiry).
    let other = "elsewhere.example:4242:1:0:0badcafe";
    let until = herald::store::format_time(chrono::Utc::now() + chrono::Duration::hours(1));
    assert!(rt
        .block_on(store.replace_lease("send:1", &holder, other, &until))
        .unwrap());

    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another herald process took over the send"),
        "{}",
        stderr(&out)
    );
    let sent = server.received().len();
    assert!(sent < 40, "stopped early: {sent} sent");
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], sent);
    assert_eq!(l["counts"]["claimed"], 0, "{l}");
    assert_eq!(l["counts"]["pending"], 40 - sent, "{l}");
    // The lease stays with the process that took it.
    assert_eq!(
        rt.block_on(store.lease_holder("send:1"))
            .unwrap()
            .unwrap()
            .0,
        other
    );
    rt.block_on(store.close());
}

#[test]
fn pipelining_can_be_turned_off_for_a_relay_that_offers_it() {
    let env = TestEnv::new();
    seed_subscribers(&env, 8);
    let issue = write_issue(&env, "nopipe");
    let server = SmtpServer::start();
    let out = live_send_with(
        &env,
        &issue,
        server.port(),
        &[("HERALD__SMTP__PIPELINING", "false")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.received().len(), 8);
    assert_eq!(server.pipelined(), 0, "one command at a time");
    // No second EHLO to look for PIPELINING: one per connection.
    assert_eq!(server.commands("EHLO"), server.connections());

    // On (the default), each connection asks twice (lettre's parser drops
    // the keyword) and every envelope is one group.
    let env = TestEnv::new();
    seed_subscribers(&env, 8);
    let issue = write_issue(&env, "pipe");
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.pipelined(), 8);
    assert_eq!(server.commands("EHLO"), 2 * server.connections());
}
