//! The recorder under write failures, through the built binary: a fault
//! planted in the database (a trigger that rolls the whole transaction
//! back, as SQLite does on a full disk) makes recording a `sent` outcome
//! fail. A fault that clears is survived by a retry; one that stays stops
//! the run with the database's own words, and a later run loses nothing.
//! A WAL index (-shm) truncated under a running send ends it with a message
//! and exit 1, not a bus error, and the next run finishes the issue. (A real
//! SQLITE_FULL on the store's own connections is tested in
//! `src/store/tests.rs`.)

use std::time::{Duration, Instant};

use crate::helpers::{ledger, seed_subscribers, smtp_env, stderr, write_issue, LogWatch, TestEnv};
use crate::smtp_server::SmtpServer;

/// Plant the fault: while `test_fault.active` is 1, marking a delivery
/// `sent` aborts and rolls back the whole transaction (on PostgreSQL with
/// SQLSTATE disk_full).
fn plant_fault(env: &TestEnv) {
    if env.is_postgres() {
        env.execute(&[
            "CREATE TABLE test_fault (active INTEGER NOT NULL)",
            "INSERT INTO test_fault VALUES (1)",
            "CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.state = 'sent' AND (SELECT active FROM test_fault) = 1 THEN \
                 RAISE EXCEPTION 'planted fault: no room to write' USING ERRCODE = 'disk_full'; \
               END IF; RETURN NEW; END $$",
            "CREATE TRIGGER test_fault_on_sent BEFORE UPDATE OF state ON deliveries \
             FOR EACH ROW EXECUTE FUNCTION test_fault()",
        ]);
    } else {
        env.execute(&[
            "CREATE TABLE test_fault (active INTEGER NOT NULL)",
            "INSERT INTO test_fault VALUES (1)",
            "CREATE TRIGGER test_fault_on_sent BEFORE UPDATE OF state ON deliveries \
             WHEN NEW.state = 'sent' AND (SELECT active FROM test_fault) = 1 \
             BEGIN SELECT RAISE(ROLLBACK, 'planted fault: no room to write'); END",
        ]);
    }
}

fn clear_fault(env: &TestEnv) {
    env.execute(&["UPDATE test_fault SET active = 0"]);
}

#[test]
fn a_commit_that_fails_then_succeeds_is_retried_and_the_run_completes() {
    let env = TestEnv::new();
    seed_subscribers(&env, 30);
    let issue = write_issue(&env, "retried");
    plant_fault(&env);
    let server = SmtpServer::start();
    let mut child = env
        .herald_process(server.port(), 50, 2)
        .env("HERALD__SMTP__HOST", "127.0.0.1")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    let log = LogWatch::new(&mut child);
    // The first batch has failed (and rolled back); let one retry fail too.
    assert!(log.wait_for("attempt=2", Duration::from_secs(20)));
    clear_fault(&env);
    let status = child.wait().unwrap();
    let err = log.text();
    assert!(status.success(), "{err}");
    assert!(err.contains("recording outcomes failed; retrying"), "{err}");
    assert!(err.contains("planted fault"), "{err}");
    assert!(!err.contains("transaction depth"), "{err}");
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 30, "{l}");
    let counts = server.counts();
    assert_eq!(counts.len(), 30);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[test]
fn a_ledger_that_cannot_be_written_stops_the_run_with_the_cause_and_a_later_run_loses_nothing() {
    let env = TestEnv::new();
    seed_subscribers(&env, 30);
    let issue = write_issue(&env, "unwritable");
    plant_fault(&env);
    let server = SmtpServer::start();
    let concurrency = 3;
    let started = Instant::now();
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd
        .env("HERALD__SENDER__CONCURRENCY", concurrency.to_string())
        .env("HERALD__SENDER__RATE_PER_SECOND", "50")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the delivery ledger cannot be written")
            && stderr(&out).contains("planted fault: no room to write"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // Each worker waits for its previous outcome to be durable before the
    // next message: at most one unrecorded message per worker went out.
    let before = server.received().len();
    assert!(before <= concurrency, "{before} messages went out");

    clear_fault(&env);
    let mut resume = env.herald();
    smtp_env(&mut resume, server.port());
    resume
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 30, "{l}");
    assert_eq!(l["counts"]["claimed"], 0, "{l}");
    let counts = server.counts();
    assert_eq!(counts.len(), 30, "nothing lost");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(duplicates <= concurrency, "{duplicates} duplicates");
}

#[test]
fn a_shared_memory_file_truncated_mid_send_ends_the_run_with_a_message_not_a_bus_error() {
    if crate::helpers::sqlite_only("the WAL index of SQLite truncated under a send") {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 1000);
    let issue = write_issue(&env, "shm");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("herald"));
    child
        .current_dir(env.path())
        .env("NO_COLOR", "1")
        .env("HERALD__SENDER__RATE_PER_SECOND", "300")
        .env(
            "HERALD__UNSUBSCRIBE__SECRET",
            "test-signing-key-0123456789abcdefghijkl",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HERALD")) {
        child.env_remove(key);
    }
    let child = child
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    let outbox = env.path().join("outbox");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&outbox).map_or(0, |d| d.count()) < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let shm = env.path().join("herald.db-shm");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shm)
        .unwrap()
        .set_len(0)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert!(err.contains("shared-memory file"), "{err}");

    // The next run finishes the issue; nothing is lost.
    let out = env
        .herald()
        .env(
            "HERALD__UNSUBSCRIBE__SECRET",
            "test-signing-key-0123456789abcdefghijkl",
        )
        .env("HERALD__SENDER__RATE_PER_SECOND", "5000")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 1000, "{l}");
    let delivered = std::fs::read_dir(&outbox)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".eml") && !name.starts_with('.')
        })
        .count();
    assert_eq!(delivered, 1000);
}
