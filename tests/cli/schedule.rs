//! Scheduled sends through the built binary: `herald schedule` checks and
//! stores an issue, `herald run-due` sends what is due with "now" fixed by
//! the hidden `--now` flag; the lateness guard, cancelling, overlapping
//! runs, a killed run and leases held by other hosts.

use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use crate::helpers::{ledger, seed_subscribers, smtp_env, stderr, stdout, write_issue, TestEnv};
use crate::smtp_server::{Fault, SmtpServer};

/// The scheduled time most tests use, and moments around it.
const AT: &str = "2030-01-06T07:00:00Z";
const HOUR_BEFORE: &str = "2030-01-06T06:00:00Z";
const SECOND_BEFORE: &str = "2030-01-06T06:59:59Z";
const MINUTE_AFTER: &str = "2030-01-06T07:01:00Z";
/// Past the default guard (schedule.max_lateness_secs = 6 h).
const TOO_LATE: &str = "2030-01-06T13:01:00Z";

fn schedule(env: &TestEnv, issue: &Path, at: &str, now: &str) -> Output {
    env.herald()
        .arg("schedule")
        .arg(issue)
        .args(["--at", at, "--now", now])
        .output()
        .unwrap()
}

fn run_due(env: &TestEnv, now: &str) -> Output {
    env.herald()
        .args(["run-due", "--now", now])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap()
}

/// `.eml` files the outbox transport wrote.
fn outbox(env: &TestEnv) -> usize {
    std::fs::read_dir(env.path().join("outbox"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
            .count()
        })
        .unwrap_or(0)
}

fn list_json(env: &TestEnv, all: bool) -> Vec<serde_json::Value> {
    let mut cmd = env.herald();
    cmd.args(["schedule", "list", "--format", "json"]);
    if all {
        cmd.arg("--all");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

fn assert_quiet_success(out: &Output) {
    assert_ok(out);
    assert_eq!(stdout(out), "", "stdout of a run with nothing to do");
    assert_eq!(stderr(out), "", "stderr of a run with nothing to do");
}

/// `herald run-due` as a child process against the SMTP server on `port`.
fn spawn_run_due(env: &TestEnv, port: u16, rate: u32, now: &str) -> Child {
    env.herald_process(port, rate, 4)
        .args(["run-due", "--now", now])
        .spawn()
        .unwrap()
}

#[test]
fn a_scheduled_issue_goes_out_through_the_outbox_once_its_time_has_come_and_not_before() {
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let issue = write_issue(&env, "weekly");

    let out = schedule(&env, &issue, AT, HOUR_BEFORE);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("scheduled `weekly`"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("in 1h"), "{}", stdout(&out));
    let listed = list_json(&env, false);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["slug"], "weekly");
    assert_eq!(listed[0]["state"], "scheduled");
    assert_eq!(listed[0]["scheduled_at"], "2030-01-06T07:00:00.000Z");

    // One second early: nothing is due, and the run says nothing.
    assert_quiet_success(&run_due(&env, SECOND_BEFORE));
    assert_eq!(outbox(&env), 0);
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "scheduled");
    assert_eq!(l["total"], 0);

    let out = run_due(&env, MINUTE_AFTER);
    assert_ok(&out);
    assert_eq!(outbox(&env), 5);
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "sent", "{l}");
    assert_eq!(l["counts"]["sent"], 5);
    assert_eq!(l["scheduled_at"], "2030-01-06T07:00:00.000Z");
    let table = env.herald().arg("status").arg(&issue).output().unwrap();
    assert!(
        stdout(&table).contains("state:    sent"),
        "{}",
        stdout(&table)
    );

    // Done is done: the next runs send nothing and stay quiet.
    assert_quiet_success(&run_due(&env, MINUTE_AFTER));
    assert_eq!(outbox(&env), 5);
    assert!(list_json(&env, false).is_empty());
    let all = list_json(&env, true);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["state"], "sent");
}

#[test]
fn a_run_with_nothing_to_do_is_quiet_and_fast() {
    let env = TestEnv::new();
    env.herald().arg("init").assert().success();
    let started = Instant::now();
    let out = env.herald().arg("run-due").output().unwrap();
    assert_quiet_success(&out);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn scheduling_checks_the_issue_now_and_refuses_what_could_not_be_sent_with_exit_2() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);

    let missing = env.path().join("issues/missing.toml");
    let out = schedule(&env, &missing, AT, HOUR_BEFORE);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let garbage = env.write("issues/garbage.toml", [0xff, 0xfe, 0x00, 0x9c]);
    let out = schedule(&env, &garbage, AT, HOUR_BEFORE);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A configuration problem that would only bite at send time (the DKIM
    // key is not there) is reported now.
    let issue = write_issue(&env, "checked");
    let out = env
        .herald()
        .env("HERALD__DKIM__DOMAIN", "example.org")
        .env("HERALD__DKIM__SELECTOR", "herald")
        .env(
            "HERALD__DKIM__PRIVATE_KEY_PATH",
            env.path().join("no-such-key.pem"),
        )
        .arg("schedule")
        .arg(&issue)
        .args(["--at", AT, "--now", HOUR_BEFORE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Past the lateness guard: refused, with the way to send it now.
    let out = schedule(&env, &issue, "2030-01-05T07:00:00Z", HOUR_BEFORE);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("max_lateness"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--live"), "{}", stderr(&out));

    assert!(
        list_json(&env, true).is_empty(),
        "nothing refused was stored"
    );

    // A little in the past is fine: the next run sends it.
    let out = schedule(&env, &issue, "2030-01-06T05:30:00Z", HOUR_BEFORE);
    assert_ok(&out);
    assert!(stdout(&out).contains("already due"), "{}", stdout(&out));

    // --in counts from now; scheduling again moves the time.
    let out = env
        .herald()
        .arg("schedule")
        .arg(&issue)
        .args(["--in", "1d 2h", "--now", HOUR_BEFORE])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("moved from"), "{}", stdout(&out));
    let listed = list_json(&env, false);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["scheduled_at"], "2030-01-07T08:00:00.000Z");

    let out = env
        .herald()
        .arg("schedule")
        .arg(&issue)
        .args(["--in", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = env.herald().arg("schedule").arg(&issue).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a time is required");
}

#[test]
fn a_cancelled_issue_is_never_sent_by_run_due_until_scheduled_again() {
    let env = TestEnv::new();
    seed_subscribers(&env, 3);
    let issue = write_issue(&env, "cancelme");
    assert_ok(&schedule(&env, &issue, AT, HOUR_BEFORE));

    let out = env
        .herald()
        .args(["schedule", "cancel"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("cancelled"), "{}", stdout(&out));
    let table = env.herald().args(["schedule", "list"]).output().unwrap();
    assert_eq!(stdout(&table).trim(), "nothing scheduled");
    assert_eq!(list_json(&env, true)[0]["state"], "cancelled");

    assert_quiet_success(&run_due(&env, MINUTE_AFTER));
    assert_eq!(outbox(&env), 0);
    assert_eq!(ledger(&env, &issue)["state"], "cancelled");

    // Cancelling again (here by slug) is harmless.
    let out = env
        .herald()
        .args(["schedule", "cancel", "cancelme"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        stdout(&out).contains("already cancelled"),
        "{}",
        stdout(&out)
    );
    let out = env
        .herald()
        .args(["schedule", "cancel", "never-scheduled"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Scheduled again, it goes out.
    assert_ok(&schedule(&env, &issue, MINUTE_AFTER, AT));
    assert_ok(&run_due(&env, "2030-01-06T07:02:00Z"));
    assert_eq!(outbox(&env), 3);
    assert_eq!(ledger(&env, &issue)["state"], "sent");
}

#[test]
fn an_issue_found_past_the_lateness_guard_is_marked_missed_not_sent_and_can_be_sent_by_hand() {
    let env = TestEnv::new();
    seed_subscribers(&env, 4);
    let issue = write_issue(&env, "late");
    assert_ok(&schedule(&env, &issue, AT, HOUR_BEFORE));

    let out = run_due(&env, TOO_LATE);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("missed"), "{log}");
    assert!(log.contains("6h 1m"), "says how late: {log}");
    assert!(
        log.contains(&format!(
            "herald send {} --live",
            issue.canonicalize().unwrap().display()
        )),
        "tells the operator what to run: {log}"
    );
    assert_eq!(outbox(&env), 0, "nothing was sent");
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "missed");
    assert_eq!(l["total"], 0);
    let listed = list_json(&env, false);
    assert_eq!(listed[0]["state"], "missed", "missed issues stay listed");

    // Reported once: the next run has nothing to do.
    assert_quiet_success(&run_due(&env, TOO_LATE));

    // The operator decides to send it anyway.
    let out = env
        .herald()
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(outbox(&env), 4);
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "sent");
    assert_eq!(l["counts"]["sent"], 4);
}

#[test]
fn an_issue_whose_live_send_started_cannot_be_scheduled_again() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);
    let issue = write_issue(&env, "already");
    assert_ok(
        &env.herald()
            .args(["send", "--live", "--yes"])
            .arg(&issue)
            .output()
            .unwrap(),
    );

    let out = schedule(&env, &issue, AT, HOUR_BEFORE);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already started"), "{}", stderr(&out));

    // Edited after its send started: still refused, with the way forward.
    std::fs::write(
        &issue,
        std::fs::read_to_string(&issue)
            .unwrap()
            .replace("Migration news", "Migration news, edited"),
    )
    .unwrap();
    let out = schedule(&env, &issue, AT, HOUR_BEFORE);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already started"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--force-new-version"),
        "{}",
        stderr(&out)
    );

    let out = env
        .herald()
        .args(["schedule", "cancel"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a sent issue has no schedule to cancel"
    );
    assert_eq!(outbox(&env), 2);
}

#[test]
fn two_run_due_started_together_send_once_and_the_second_exits_0_at_once() {
    if crate::helpers::sqlite_only(
        "the exclusive send lease of SQLite (PostgreSQL shares sends: tests/cli/scale_out.rs)",
    ) {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 300);
    let issue = write_issue(&env, "overlap");
    assert_ok(&schedule(&env, &issue, AT, HOUR_BEFORE));
    let server = SmtpServer::start();

    // The server holds the winner after its first message until the
    // other run has exited.
    server.hold_after(1);
    let mut children = vec![
        spawn_run_due(&env, server.port(), 1000, MINUTE_AFTER),
        spawn_run_due(&env, server.port(), 1000, MINUTE_AFTER),
    ];
    let mut finished: Vec<Option<Instant>> = vec![None, None];
    let deadline = Instant::now() + Duration::from_secs(60);
    while finished.iter().any(Option::is_none) && Instant::now() < deadline {
        for (child, done) in children.iter_mut().zip(finished.iter_mut()) {
            if done.is_none() && child.try_wait().unwrap().is_some() {
                *done = Some(Instant::now());
            }
        }
        if finished.iter().any(Option::is_some) {
            server.release();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert_ok(out);
    }
    let sender: Vec<usize> = (0..2)
        .filter(|i| stdout(&outputs[*i]).contains("this run sent 300"))
        .collect();
    assert_eq!(sender.len(), 1, "exactly one run sends");
    let (winner, loser) = (sender[0], 1 - sender[0]);
    assert!(
        stdout(&outputs[loser]).contains("another run-due holds the lease"),
        "{}",
        stdout(&outputs[loser])
    );
    assert!(
        finished[loser].unwrap() < finished[winner].unwrap(),
        "the second run exits at once, while the first is still sending"
    );

    let counts = server.counts();
    assert_eq!(counts.len(), 300);
    assert!(counts.values().all(|n| *n == 1), "every recipient once");
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "sent");
    assert_eq!(l["counts"]["sent"], 300);
}

#[test]
fn a_run_due_killed_mid_send_is_finished_by_the_next_run_with_no_recipient_lost() {
    let env = TestEnv::new();
    seed_subscribers(&env, 400);
    let issue = write_issue(&env, "killed");
    assert_ok(&schedule(&env, &issue, AT, HOUR_BEFORE));
    let server = SmtpServer::start();

    let mut child = spawn_run_due(&env, server.port(), 200, MINUTE_AFTER);
    server.wait_for(100, Duration::from_secs(30));
    child.kill().unwrap(); // SIGKILL: no chance to clean up or release leases
    child.wait().unwrap();
    let before = server.received().len();
    assert!(
        (100..400).contains(&before),
        "killed after {before} messages"
    );
    assert_eq!(ledger(&env, &issue)["state"], "sending");

    // The next minute's run: the dead run's leases are taken over at once.
    let started = Instant::now();
    let mut next = env.herald();
    smtp_env(&mut next, server.port());
    let out = next
        .args(["run-due", "--now", "2030-01-06T07:02:00Z"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not wait for the dead run's lease to expire: {:?}",
        started.elapsed()
    );

    let counts = server.counts();
    assert_eq!(counts.len(), 400, "every subscriber got the issue");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(duplicates <= 4, "{duplicates} duplicates (concurrency 4)");
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 400, "{l}");
    assert_eq!(l["state"], "sent");
}

#[test]
fn a_run_due_lease_held_on_another_host_is_respected_until_it_expires_then_taken_over() {
    if crate::helpers::sqlite_only(
        "the exclusive send lease of SQLite (PostgreSQL shares sends: tests/cli/scale_out.rs)",
    ) {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let issue = write_issue(&env, "leased");
    assert_ok(&schedule(&env, &issue, AT, HOUR_BEFORE));
    let other = "other-host.example:4242:0badcafe";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(env.store());
    let at = |secs: i64| {
        herald::store::format_time(chrono::Utc::now() + chrono::Duration::seconds(secs))
    };
    assert!(rt
        .block_on(store.acquire_lease("run-due", other, &at(0), &at(600)))
        .unwrap());

    // Held, and not expired: this run leaves it alone.
    let out = run_due(&env, MINUTE_AFTER);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!("another run-due holds the lease ({other}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(outbox(&env), 0);
    assert_eq!(ledger(&env, &issue)["state"], "scheduled");

    // The other host stopped renewing: the lease expired a minute ago.
    assert!(rt
        .block_on(store.replace_lease("run-due", other, other, &at(-60)))
        .unwrap());
    let out = run_due(&env, MINUTE_AFTER);
    assert_ok(&out);
    assert_eq!(outbox(&env), 5);
    assert_eq!(ledger(&env, &issue)["state"], "sent");
    assert_eq!(
        rt.block_on(store.lease_holder("run-due")).unwrap(),
        None,
        "released after the run"
    );
    rt.block_on(store.close());
}

#[test]
fn an_issue_whose_send_lease_another_host_holds_is_left_to_it_by_run_due_and_send() {
    if crate::helpers::sqlite_only(
        "the exclusive send lease of SQLite (PostgreSQL shares sends: tests/cli/scale_out.rs)",
    ) {
        return;
    }
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let issue = write_issue(&env, "busy");
    assert_ok(&schedule(&env, &issue, AT, HOUR_BEFORE));
    // The only issue version: id 1, its send lease `send:1`.
    let other = "other-host.example:4242:0badcafe";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(env.store());
    let at = |secs: i64| {
        herald::store::format_time(chrono::Utc::now() + chrono::Duration::seconds(secs))
    };
    assert!(rt
        .block_on(store.acquire_lease("send:1", other, &at(0), &at(600)))
        .unwrap());

    // run-due finds the issue busy: not a failure, still scheduled.
    let out = run_due(&env, MINUTE_AFTER);
    assert_ok(&out);
    assert_eq!(outbox(&env), 0);
    assert_eq!(ledger(&env, &issue)["state"], "scheduled");

    // A live send by hand refuses to start a second sender.
    let out = env
        .herald()
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "another herald process is sending `busy` right now ({other}"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(outbox(&env), 0);
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
fn run_due_resumes_a_live_send_whose_deferred_recipients_came_due() {
    let env = TestEnv::new();
    seed_subscribers(&env, 10);
    let issue = write_issue(&env, "deferred");
    let server = SmtpServer::start();
    server.fault(
        "user0002@example.org",
        Fault::AtRcpt("450 4.2.1 mailbox busy".into()),
        1,
    );
    let mut send = env.herald();
    smtp_env(&mut send, server.port());
    let out = send
        .env("HERALD__SENDER__RETRY_BASE_MS", "1000")
        .env("HERALD__SENDER__LINGER_SECS", "0")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_ok(&out);
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["deferred"], 1);
    assert_eq!(l["state"], "sending");

    // An hour ago the retry was not due: nothing to do.
    let earlier = herald::store::format_time(chrono::Utc::now() - chrono::Duration::hours(1));
    let mut early = env.herald();
    smtp_env(&mut early, server.port());
    let out = early.args(["run-due", "--now", &earlier]).output().unwrap();
    assert_quiet_success(&out);
    assert_eq!(server.received().len(), 9);

    // A minute from now it is: the run goes by that time.
    let later = herald::store::format_time(chrono::Utc::now() + chrono::Duration::minutes(1));
    let mut due = env.herald();
    smtp_env(&mut due, server.port());
    let out = due.args(["run-due", "--now", &later]).output().unwrap();
    assert_ok(&out);
    assert_eq!(server.counts()["user0002@example.org"], 1);
    assert_eq!(server.counts().len(), 10);
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "sent");
    assert_eq!(l["counts"]["sent"], 10);
}

#[test]
fn run_due_with_bad_configuration_exits_2() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .env("HERALD__SCHEDULE__MAX_LATENESS_SECS", "six hours")
        .arg("run-due")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("max_lateness_secs"),
        "{}",
        stderr(&out)
    );
}
