//! A run never hangs and never hides a failure: a server that goes silent at
//! any stage ends the run within its bound (exit 1, nothing left `claimed`,
//! lease released); a stop request ends a run within one send timeout; a
//! dead worker ends the run; a connection the server closed while idle
//! costs no attempt; STARTTLS and credentials never degrade to plain text;
//! a crash leaves at most one `unknown` row per worker; lease holders are
//! told apart from recycled PIDs; waiting for retries is visible.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::{
    ledger, live_send_with, seed_subscribers, smtp_env, stderr, write_issue, TestEnv,
};
use crate::smtp_server::{Fault, Script, Silence, SmtpServer};

/// Leases still held in the database, and (PostgreSQL) sender
/// registrations still there.
fn leases(env: &TestEnv) -> i64 {
    let rows: Vec<(i64,)> =
        env.fetch_all("SELECT (SELECT COUNT(*) FROM leases) + (SELECT COUNT(*) FROM senders)");
    rows[0].0
}

fn counts(env: &TestEnv, issue: &Path) -> serde_json::Value {
    ledger(env, issue)["counts"].clone()
}

/// Settings for the stall runs: short bounds, two workers, two tries.
fn stall_cmd(env: &TestEnv, port: u16) -> assert_cmd::Command {
    let mut cmd = env.herald();
    smtp_env(&mut cmd, port);
    cmd.env("HERALD__SMTP__CONNECT_TIMEOUT_SECS", "1")
        .env("HERALD__SMTP__SEND_TIMEOUT_SECS", "1")
        .env("HERALD__SMTP__RECONNECT_ATTEMPTS", "2")
        .env("HERALD__SENDER__CONCURRENCY", "2")
        .env("HERALD__SENDER__LINGER_SECS", "0")
        .timeout(Duration::from_secs(60));
    cmd
}

#[test]
fn a_server_silent_at_any_stage_ends_the_run_in_bounded_time_with_exit_1() {
    // (stage, smtp.tls, credentials sent, states the rows may end in)
    let cases: [(Silence, &str, bool, &[&str]); 9] = [
        (Silence::Greeting, "none", false, &["pending"]),
        (Silence::Greeting, "tls", false, &["pending"]),
        (Silence::Ehlo, "none", false, &["pending"]),
        (Silence::Starttls, "starttls", false, &["pending"]),
        (Silence::TlsHandshake, "starttls", false, &["pending"]),
        (Silence::Auth, "none", true, &["pending"]),
        (Silence::Mail, "none", false, &["pending", "deferred"]),
        (Silence::Data, "none", false, &["pending", "deferred"]),
        (Silence::Body, "none", false, &["pending", "unknown"]),
    ];
    // The cases wait on timeouts, not on the processor: run them side by
    // side.
    std::thread::scope(|scope| {
        for case in cases {
            scope.spawn(move || silent_case(case));
        }
    });
}

fn silent_case((silence, tls, auth, allowed): (Silence, &str, bool, &[&str])) {
    let env = TestEnv::new();
    seed_subscribers(&env, 12);
    let issue = write_issue(&env, "silent");
    let server = SmtpServer::start_scripted(Script {
        silence: Some(silence),
        offer_starttls: tls == "starttls",
        offer_auth: auth,
        ..Script::default()
    });
    let mut cmd = stall_cmd(&env, server.port());
    cmd.env("HERALD__SMTP__TLS", tls);
    if auth {
        cmd.env("HERALD__SMTP__USERNAME", "herald")
            .env("HERALD__SMTP__PASSWORD", "secret")
            .env("HERALD__SMTP__ALLOW_PLAINTEXT_AUTH", "true");
    }
    let started = Instant::now();
    let out = cmd
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    let took = started.elapsed();
    let case = format!("{silence:?} with tls={tls}");
    assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
    // Two workers × two tries × 1 s bound, plus backoff and start-up.
    assert!(took < Duration::from_secs(12), "{case}: took {took:?}");
    assert!(
        stderr(&out).contains("could not reach smtp://127.0.0.1"),
        "{case}: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("within 1s"),
        "{case}: the cause names the bound: {}",
        stderr(&out)
    );
    let c = counts(&env, &issue);
    assert_eq!(c["claimed"], 0, "{case}: {c}");
    assert_eq!(c["sent"], 0, "{case}: {c}");
    let total: i64 = allowed.iter().map(|s| c[s].as_i64().unwrap()).sum();
    assert_eq!(total, 12, "{case}: rows only in {allowed:?}: {c}");
    assert_eq!(leases(&env), 0, "{case}: lease released");
    assert!(server.received().is_empty());
    if silence == Silence::TlsHandshake {
        assert!(server.commands("STARTTLS") > 0, "{case}");
    }
    if silence == Silence::Auth {
        assert!(server.commands("AUTH") > 0, "{case}");
    }
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_ends_a_run_within_one_send_timeout_whatever_the_server_does() {
    // Silent after the body (send timeout 4 s): the stop waits at most one
    // send timeout for the message in flight, which becomes `unknown`.
    let env = TestEnv::new();
    seed_subscribers(&env, 10);
    let issue = write_issue(&env, "termbody");
    let server = SmtpServer::start_scripted(Script {
        silence: Some(Silence::Body),
        ..Script::default()
    });
    let mut child = env
        .herald_process(server.port(), 100, 2)
        .env("HERALD__SMTP__SEND_TIMEOUT_SECS", "4")
        .env("HERALD__SMTP__RECONNECT_ATTEMPTS", "100")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    // Both workers' bodies are in: two messages in flight, their replies
    // never coming.
    assert!(server.wait_for_bodies(2, Duration::from_secs(20)));
    let stopped = Instant::now();
    sigterm(&child);
    let code = wait_exit(&mut child, Duration::from_secs(8));
    let took = stopped.elapsed();
    assert_eq!(code, Some(130), "took {took:?}");
    assert!(took < Duration::from_secs(7), "took {took:?}");
    let c = counts(&env, &issue);
    assert_eq!(c["claimed"], 0, "{c}");
    assert_eq!(c["unknown"], 2, "the two messages in flight: {c}");
    assert_eq!(c["pending"], 8, "{c}");
    assert_eq!(leases(&env), 0);

    // Silent greeting with a long connect timeout: nothing is in flight, the
    // stop is immediate and every row goes back to `pending`.
    let env = TestEnv::new();
    seed_subscribers(&env, 10);
    let issue = write_issue(&env, "termconnect");
    let server = SmtpServer::start_scripted(Script {
        silence: Some(Silence::Greeting),
        ..Script::default()
    });
    let mut child = env
        .herald_process(server.port(), 100, 2)
        .env("HERALD__SMTP__CONNECT_TIMEOUT_SECS", "60")
        .env("HERALD__SMTP__SEND_TIMEOUT_SECS", "60")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.connections() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = Instant::now();
    sigterm(&child);
    let code = wait_exit(&mut child, Duration::from_secs(8));
    let took = stopped.elapsed();
    assert_eq!(code, Some(130), "took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let c = counts(&env, &issue);
    assert_eq!(c["pending"], 10, "{c}");
    assert_eq!(leases(&env), 0);
}

#[test]
fn a_worker_that_dies_ends_the_run_with_exit_1_and_its_row_resolved() {
    for (point, in_flight_state) in [("before-send:3", "pending"), ("after-send:3", "unknown")] {
        let env = TestEnv::new();
        seed_subscribers(&env, 40);
        let issue = write_issue(&env, "crash");
        let server = SmtpServer::start();
        let mut cmd = env.herald();
        smtp_env(&mut cmd, server.port());
        let out = cmd
            .env("HERALD__SENDER__RATE_PER_SECOND", "20")
            .env("HERALD_FAULT_WORKER_PANIC", point)
            .args(["send", "--live", "--yes"])
            .arg(&issue)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{point}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("a delivery worker crashed: injected fault"),
            "{point}: {}",
            stderr(&out)
        );
        let c = counts(&env, &issue);
        assert_eq!(c["claimed"], 0, "{point}: {c}");
        assert!(
            c["pending"].as_i64().unwrap() > 0,
            "{point}: stopped early: {c}"
        );
        let received = server.received().len() as i64;
        let unknown = c["unknown"].as_i64().unwrap();
        if in_flight_state == "unknown" {
            // The third message reached the server; its outcome was never
            // recorded, so it is `unknown`, not `sent`.
            assert_eq!(unknown, 1, "{point}: {c}");
            assert_eq!(c["sent"].as_i64().unwrap(), received - 1, "{point}: {c}");
        } else {
            assert_eq!(unknown, 0, "{point}: {c}");
            assert_eq!(c["sent"].as_i64().unwrap(), received, "{point}: {c}");
        }
        assert_eq!(leases(&env), 0, "{point}: lease released");

        // The next run finishes the issue.
        let mut again = env.herald();
        smtp_env(&mut again, server.port());
        again
            .args(["send", "--live", "--yes"])
            .arg(&issue)
            .timeout(Duration::from_secs(30))
            .assert()
            .success();
        assert_eq!(server.counts().len(), 40, "{point}");
    }
}

#[test]
fn a_connection_closed_by_the_server_while_idle_costs_no_attempt() {
    let env = TestEnv::new();
    seed_subscribers(&env, 4);
    let issue = write_issue(&env, "idle");
    let server = SmtpServer::start_scripted(Script {
        close_idle_after: Some(Duration::from_millis(200)),
        ..Script::default()
    });
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    // One connection, one message every 0.5 s: every reuse finds it closed.
    let out = cmd
        .env("HERALD__SENDER__CONCURRENCY", "1")
        .env("HERALD__SENDER__RATE_PER_SECOND", "2")
        .env("HERALD__SENDER__LINGER_SECS", "0")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.counts().len(), 4);
    assert!(
        server.connections() >= 4,
        "{} connections",
        server.connections()
    );
    let attempts: Vec<(String, i64)> =
        env.fetch_all("SELECT state, attempts FROM deliveries ORDER BY id");
    assert_eq!(attempts, vec![("sent".to_string(), 1); 4]);
}

#[test]
fn starttls_never_falls_back_and_credentials_never_go_out_in_clear() {
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let issue = write_issue(&env, "strict");
    // A server that offers neither STARTTLS nor anything else special.
    let server = SmtpServer::start_scripted(Script {
        offer_auth: true,
        ..Script::default()
    });
    let started = Instant::now();
    let out = stall_cmd(&env, server.port())
        .env("HERALD__SMTP__TLS", "starttls")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not offer STARTTLS")
            && stderr(&out).contains("never falls back to plain text"),
        "{}",
        stderr(&out)
    );
    // Refused at once: no retries with backoff.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(server.received().is_empty());
    assert_eq!(server.commands("MAIL"), 0);
    assert_eq!(counts(&env, &issue)["pending"], 5);

    // Credentials on a plain connection: refused, AUTH never sent.
    let out = stall_cmd(&env, server.port())
        .env("HERALD__SMTP__USERNAME", "herald")
        .env("HERALD__SMTP__PASSWORD", "secret")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("over an unencrypted connection"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("secret"));
    assert_eq!(server.commands("AUTH"), 0);
    assert_eq!(counts(&env, &issue)["pending"], 5);

    // allow_plaintext_auth is for loopback relays only: bad configuration.
    let out = stall_cmd(&env, server.port())
        .env("HERALD__SMTP__HOST", "relay.example.org")
        .env("HERALD__SMTP__USERNAME", "herald")
        .env("HERALD__SMTP__PASSWORD", "secret")
        .env("HERALD__SMTP__ALLOW_PLAINTEXT_AUTH", "true")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("smtp.allow_plaintext_auth"),
        "{}",
        stderr(&out)
    );

    // On loopback with the opt-in, AUTH goes through and mail flows.
    let out = stall_cmd(&env, server.port())
        .env("HERALD__SMTP__USERNAME", "herald")
        .env("HERALD__SMTP__PASSWORD", "secret")
        .env("HERALD__SMTP__ALLOW_PLAINTEXT_AUTH", "true")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(server.commands("AUTH") > 0);
    assert_eq!(server.counts().len(), 5);
}

#[test]
fn a_lease_held_under_a_recycled_pid_is_taken_over_at_once_and_a_live_holder_is_respected() {
    if crate::helpers::sqlite_only(
        "the exclusive send lease of SQLite (PostgreSQL shares sends: tests/cli/scale_out.rs)",
    ) {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 1);
    // A holder names its host and PID namespace: `hostname~NSID`.
    let namespace: String = std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let host = format!(
        "{}~{namespace}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "");
    let stat = std::fs::read_to_string("/proc/1/stat").unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(env.store());
    let at = |secs: i64| {
        herald::store::format_time(chrono::Utc::now() + chrono::Duration::seconds(secs))
    };
    // PID 1 is alive, but it is not the process that took this lease.
    let recycled = format!("{host}:1:{}:{boot}:0badcafe", start + 1);
    assert!(rt
        .block_on(store.acquire_lease("run-due", &recycled, &at(0), &at(600)))
        .unwrap());
    let out = env.herald().arg("run-due").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !crate::helpers::stdout(&out).contains("another run-due holds the lease"),
        "{}",
        crate::helpers::stdout(&out)
    );
    assert_eq!(rt.block_on(store.lease_holder("run-due")).unwrap(), None);

    // The same PID with its real start time is a live holder: respected.
    let live = format!("{host}:1:{start}:{boot}:0badcafe");
    assert!(rt
        .block_on(store.acquire_lease("run-due", &live, &at(0), &at(600)))
        .unwrap());
    let out = env.herald().arg("run-due").output().unwrap();
    assert!(
        crate::helpers::stdout(&out).contains("another run-due holds the lease"),
        "{}",
        crate::helpers::stdout(&out)
    );
    rt.block_on(store.close());
}

#[test]
fn a_crash_at_a_low_rate_leaves_at_most_one_unknown_row_per_worker() {
    let env = TestEnv::new();
    seed_subscribers(&env, 60);
    let issue = write_issue(&env, "slowkill");
    let server = SmtpServer::start();
    let concurrency = 4;
    let mut child = env
        .herald_process(server.port(), 2, concurrency)
        .env("HERALD__SENDER__ON_UNKNOWN", "hold")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    server.wait_for(4, Duration::from_secs(20));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = server.received().len();
    assert!((4..60).contains(&before), "killed after {before} messages");

    let mut resume = env.herald();
    smtp_env(&mut resume, server.port());
    let out = resume
        .env("HERALD__SENDER__ON_UNKNOWN", "hold")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let c = counts(&env, &issue);
    let unknown = c["unknown"].as_i64().unwrap();
    assert!(unknown <= concurrency as i64, "{unknown} unknown: {c}");
    assert_eq!(c["claimed"], 0, "{c}");
    assert_eq!(c["sent"].as_i64().unwrap() + unknown, 60, "{c}");
    // Held rows are not resent: nobody got two copies, and everyone but
    // the held rows got one.
    let received = server.counts();
    assert!(received.values().all(|n| *n == 1), "{received:?}");
    assert!(received.len() as i64 >= 60 - unknown);
    // The summary does not promise that a later run resends held rows.
    let text = crate::helpers::stdout(&out);
    assert!(unknown > 0, "workers had taken rows when killed: {c}");
    assert!(
        text.contains("held (sender.on_unknown = \"hold\")")
            && text.contains("`herald resend --unknown slowkill`"),
        "{text}"
    );

    // Given the slug, resend prints a command that works as printed.
    let out = env
        .herald()
        .args(["resend", "--unknown", "slowkill"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let hint = crate::helpers::stdout(&out);
    let command = hint.split('`').nth(1).expect("a command in backticks");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], "herald", "{hint}");
    let mut again = env.herald();
    smtp_env(&mut again, server.port());
    let out = again.args(&words[1..]).arg("--yes").output().unwrap();
    assert!(out.status.success(), "{hint}: {}", stderr(&out));
    let c = counts(&env, &issue);
    assert_eq!(c["sent"], 60, "{c}");
    assert_eq!(server.counts().len(), 60);
}

#[test]
fn waiting_for_deferred_retries_says_until_when_and_deferred_counts_recipients() {
    let env = TestEnv::new();
    seed_subscribers(&env, 10);
    let issue = write_issue(&env, "waiting");
    let server = SmtpServer::start();
    // Deferred twice, then accepted.
    server.fault(
        "user0002@example.org",
        Fault::AtRcpt("450 4.2.1 mailbox busy".into()),
        2,
    );
    // Deferred at every attempt (greylisted for longer than the run).
    server.fault(
        "user0003@example.org",
        Fault::AtRcpt("451 4.7.1 greylisted, come back later".into()),
        usize::MAX,
    );
    // Retries after ~1.5 s and ~3 s are waited for; the next (~6 s) is
    // beyond the linger time and left to the next run.
    let out = live_send_with(
        &env,
        &issue,
        server.port(),
        &[
            ("HERALD__SENDER__RETRY_BASE_MS", "1500"),
            ("HERALD__SENDER__MAX_ATTEMPTS", "10"),
            ("HERALD__SENDER__LINGER_SECS", "4"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("waiting until ")
            && err.contains("UTC for 2 deferred retries (last reply: 45")
            && err.contains("Ctrl-C leaves them to the next run"),
        "{err}"
    );
    assert!(err.contains("left to the next run"), "{err}");
    assert_eq!(server.counts()["user0002@example.org"], 1);
    let c = counts(&env, &issue);
    assert_eq!(c["deferred"], 1, "{c}");
    assert_eq!(c["sent"], 9, "{c}");
    // One recipient is deferred, however many times it was deferred.
    let text = crate::helpers::stdout(&out);
    assert!(
        text.contains("sent 9, failed 0, deferred 1, unknown 0"),
        "{text}"
    );
}

#[test]
fn a_server_silent_at_rset_or_quit_costs_one_bounded_wait_and_the_run_completes() {
    // Each case waits out a bound: run them side by side.
    std::thread::scope(|scope| {
        for silence in [Silence::Rset, Silence::Quit] {
            scope.spawn(move || silent_at_reset_or_quit(silence));
        }
    });
}

fn silent_at_reset_or_quit(silence: Silence) {
    let env = TestEnv::new();
    seed_subscribers(&env, 6);
    let issue = write_issue(&env, "rsetquit");
    let server = SmtpServer::start_scripted(Script {
        silence: Some(silence),
        ..Script::default()
    });
    // A 5xx at RCPT makes herald reset the transaction with RSET.
    server.fault(
        "user0002@example.org",
        Fault::AtRcpt("550 5.1.1 no such user".into()),
        1,
    );
    let started = Instant::now();
    let out = stall_cmd(&env, server.port())
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{silence:?}: {}", stderr(&out));
    assert!(took < Duration::from_secs(10), "{silence:?}: took {took:?}");
    let c = counts(&env, &issue);
    assert_eq!(c["sent"], 5, "{silence:?}: {c}");
    assert_eq!(c["failed"], 1, "{silence:?}: {c}");
    assert_eq!(leases(&env), 0);
    assert!(
        server.commands(if silence == Silence::Rset {
            "RSET"
        } else {
            "QUIT"
        }) > 0
    );
}
