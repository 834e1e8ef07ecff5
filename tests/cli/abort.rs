//! `herald abort`: a send stopped for good, from another process while it
//! runs, and never resumed by `run-due` or `send --live`.

use std::time::{Duration, Instant};

use crate::helpers::{
    closed_port, ledger, live_send, seed_subscribers, smtp_env, stderr, stdout, write_issue,
    TestEnv,
};
use crate::smtp_server::SmtpServer;

#[test]
fn abort_from_a_second_process_stops_a_running_send_for_good() {
    let env = TestEnv::new();
    seed_subscribers(&env, 60);
    let issue = write_issue(&env, "oops-typo");
    let server = SmtpServer::start();
    // 4 messages a second over one connection: the send would take 15 s.
    let child = env
        .herald_process(server.port(), 4, 1)
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    assert!(server.wait_for(3, Duration::from_secs(30)) >= 3);

    let out = env.herald().args(["abort", "oops-typo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("aborted `oops-typo`"), "{text}");
    assert!(text.contains("deliveries cancelled"), "{text}");
    let aborted_at = Instant::now();

    // The running sender notices within seconds and stops, exit 0.
    let out = child.wait_with_output().unwrap();
    let stopped_after = aborted_at.elapsed();
    eprintln!("the running send stopped {stopped_after:?} after the abort");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stopped_after < Duration::from_secs(5),
        "stopped {stopped_after:?} after the abort"
    );
    assert!(
        stdout(&out).contains("the send was aborted"),
        "{}",
        stdout(&out)
    );
    let received = server.received().len() as i64;
    assert!(received < 60, "the abort came too late to test anything");
    // Its connections are closed: nothing more can arrive.
    assert!(server.wait_closed(Duration::from_secs(10)));
    assert_eq!(
        server.received().len() as i64,
        received,
        "nothing after the stop"
    );

    // Counts add up: every accepted message is sent, the rest cancelled.
    let l = ledger(&env, &issue);
    assert_eq!(l["state"], "aborted", "{l}");
    assert_eq!(l["counts"]["sent"], received, "{l}");
    assert_eq!(l["counts"]["cancelled"], 60 - received, "{l}");
    for open in ["pending", "claimed", "deferred", "unknown"] {
        assert_eq!(l["counts"][open], 0, "{open}: {l}");
    }
    let table = env.herald().arg("status").arg(&issue).output().unwrap();
    assert!(
        stdout(&table).contains(&format!("cancelled {}", 60 - received)),
        "{}",
        stdout(&table)
    );

    // run-due does not resume it.
    let mut run_due = env.herald();
    smtp_env(&mut run_due, server.port());
    let out = run_due.arg("run-due").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received().len() as i64, received);

    // Neither does a live send, unless as a new version.
    let mut live = env.herald();
    smtp_env(&mut live, server.port());
    let out = live
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("was aborted"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--force-new-version"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.received().len() as i64, received);

    let mut again = env.herald();
    smtp_env(&mut again, server.port());
    let out = again
        .args(["send", "--live", "--yes", "--force-new-version"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received().len() as i64, received + 60);
    let l = ledger(&env, &issue);
    assert_eq!(l["version"], 2, "{l}");
    assert_eq!(l["state"], "sent", "{l}");
}

#[test]
fn abort_stops_a_scheduled_send_and_refuses_a_finished_one() {
    let env = TestEnv::new();
    seed_subscribers(&env, 3);
    let issue = write_issue(&env, "later");
    let out = env
        .herald()
        .arg("schedule")
        .arg(&issue)
        .args([
            "--at",
            "2030-01-06T07:00:00Z",
            "--now",
            "2030-01-06T06:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.herald().arg("abort").arg(&issue).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env
        .herald()
        .args(["run-due", "--now", "2030-01-06T07:01:00Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!env.path().join("outbox").exists(), "nothing was sent");
    assert_eq!(ledger(&env, &issue)["state"], "aborted");
    // Scheduling it again, even edited, is refused; a live send needs a
    // new version.
    let edited = std::fs::read_to_string(&issue).unwrap() + "\n# edited\n";
    std::fs::write(&issue, edited).unwrap();
    let out = env
        .herald()
        .arg("schedule")
        .arg(&issue)
        .args([
            "--at",
            "2030-01-08T07:00:00Z",
            "--now",
            "2030-01-06T08:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("was aborted"), "{}", stderr(&out));
    let out = env
        .herald()
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--force-new-version"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ledger(&env, &issue)["state"], "aborted");
    let out = env
        .herald()
        .args(["send", "--live", "--yes", "--force-new-version"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let l = ledger(&env, &issue);
    assert_eq!(
        (l["version"].as_i64(), l["state"].as_str()),
        (Some(2), Some("sent")),
        "{l}"
    );
    assert_eq!(l["counts"]["sent"], 3, "{l}");

    // A finished send has nothing to abort: exit 2, nothing changes.
    let done = write_issue(&env, "done");
    let out = env
        .herald()
        .args(["send", "--live", "--yes"])
        .arg(&done)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.herald().args(["abort", "done"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is sent"), "{}", stderr(&out));
    assert_eq!(ledger(&env, &done)["state"], "sent");

    // An unknown issue is exit 2 naming it.
    let out = env.herald().args(["abort", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope"));
}

#[test]
fn cancelling_the_schedule_of_a_started_send_points_to_abort() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);
    let issue = write_issue(&env, "started");
    // A live send that starts but cannot reach its server: interrupted.
    let port = closed_port();
    let out = live_send(&env, &issue, port);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(ledger(&env, &issue)["state"], "sending");
    let out = env
        .herald()
        .args(["schedule", "cancel", "started"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("To stop it for good: herald abort started"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_interrupted_send_can_be_aborted_so_run_due_leaves_it() {
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let issue = write_issue(&env, "interrupted");
    let down = closed_port();
    let out = live_send(&env, &issue, down);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = env
        .herald()
        .args(["abort", "interrupted"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("5 deliveries cancelled"),
        "{}",
        stdout(&out)
    );

    let server = SmtpServer::start();
    let mut run_due = env.herald();
    smtp_env(&mut run_due, server.port());
    let out = run_due.arg("run-due").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received().len(), 0);
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["cancelled"], 5, "{l}");
    assert_eq!(l["total"], 5, "{l}");
    // resend refuses too.
    let out = env
        .herald()
        .args(["resend", "interrupted", "--failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
