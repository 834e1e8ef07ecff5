//! The overview: `herald status` without an issue, `schedule list --all`
//! with sends started by hand, and `run-due --dry-run`.

use crate::helpers::{seed_subscribers, stderr, stdout, write_issue, TestEnv};

fn run_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = env.herald().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}\n{}",
        out.status.code(),
        stderr(&out)
    );
    stdout(&out)
}

fn json(text: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn status_without_an_issue_lists_every_issue_with_state_times_and_counts() {
    let env = TestEnv::new();
    assert!(run_ok(&env, &["status"]).contains("no issues yet"));
    seed_subscribers(&env, 4);
    let sent = write_issue(&env, "a-sent");
    let scheduled = write_issue(&env, "b-scheduled");
    let aborted = write_issue(&env, "c-aborted");
    run_ok(&env, &["send", sent.to_str().unwrap(), "--live", "--yes"]);
    run_ok(
        &env,
        &[
            "schedule",
            scheduled.to_str().unwrap(),
            "--at",
            "2030-01-06T07:00:00Z",
        ],
    );
    run_ok(
        &env,
        &[
            "schedule",
            aborted.to_str().unwrap(),
            "--at",
            "2030-01-07T07:00:00Z",
        ],
    );
    run_ok(&env, &["abort", "c-aborted"]);

    let all = json(&run_ok(&env, &["status", "--format", "json"]));
    assert_eq!(all.len(), 3, "{all:?}");
    let find = |slug: &str| {
        all.iter()
            .find(|i| i["slug"] == slug)
            .unwrap_or_else(|| panic!("{slug} missing: {all:?}"))
            .clone()
    };
    let a = find("a-sent");
    assert_eq!(a["state"], "sent");
    assert_eq!(a["counts"]["sent"], 4);
    assert_eq!(a["counts"]["cancelled"], 0);
    assert!(a["started_at"].is_string());
    assert!(a["last_activity"].as_str().unwrap() >= a["started_at"].as_str().unwrap());
    let b = find("b-scheduled");
    assert_eq!(b["state"], "scheduled");
    assert_eq!(b["scheduled_at"], "2030-01-06T07:00:00.000Z");
    assert_eq!(b["counts"]["pending"], 0);
    assert_eq!(find("c-aborted")["state"], "aborted");

    let table = run_ok(&env, &["status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ISSUE"), "{table}");
    assert!(lines[0].contains("CANCELLED") && lines[0].contains("LAST ACTIVITY"));
    let row = lines.iter().find(|l| l.starts_with("a-sent")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "sent", "{row}");
    assert_eq!(cols[3], "4", "SENT column: {row}");
    assert!(table.contains("b-scheduled") && table.contains("2030-01-06T07:00:00.000Z"));

    // schedule list --all includes the send started by hand.
    let listed = json(&run_ok(
        &env,
        &["schedule", "list", "--all", "--format", "json"],
    ));
    let slugs: Vec<&str> = listed.iter().map(|i| i["slug"].as_str().unwrap()).collect();
    assert!(slugs.contains(&"a-sent"), "{slugs:?}");
    let by_hand = listed.iter().find(|i| i["slug"] == "a-sent").unwrap();
    assert!(by_hand["scheduled_at"].is_null());
    assert!(run_ok(&env, &["schedule", "list", "--all"]).contains("(by hand)"));
    // Without --all: only what is still to be sent.
    let pending = json(&run_ok(&env, &["schedule", "list", "--format", "json"]));
    assert_eq!(pending.len(), 1, "{pending:?}");
}

#[test]
fn run_due_dry_run_says_what_a_run_would_do_and_changes_nothing() {
    let env = TestEnv::new();
    seed_subscribers(&env, 3);
    let due = write_issue(&env, "due-now");
    let late = write_issue(&env, "too-late");
    let schedule = |issue: &std::path::Path, at: &str| {
        run_ok(
            &env,
            &[
                "schedule",
                issue.to_str().unwrap(),
                "--at",
                at,
                "--now",
                "2030-01-05T00:00:00Z",
            ],
        )
    };
    schedule(&due, "2030-01-06T07:00:00Z");
    schedule(&late, "2030-01-05T23:00:00Z");
    let text = run_ok(
        &env,
        &["run-due", "--dry-run", "--now", "2030-01-06T07:01:00Z"],
    );
    assert!(text.contains("nothing is sent or changed"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("send") && l.contains("due-now") && l.contains("3 active")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("missed") && l.contains("too-late") && l.contains("8h 1m")),
        "{text}"
    );
    // Nothing happened: no message, both still scheduled.
    assert!(!env.path().join("outbox").exists());
    let listed = json(&run_ok(&env, &["schedule", "list", "--format", "json"]));
    assert!(
        listed.iter().all(|i| i["state"] == "scheduled"),
        "{listed:?}"
    );

    // The real run does what the dry run said.
    let out = env
        .herald()
        .args(["run-due", "--now", "2030-01-06T07:01:00Z"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missed issue: {}",
        stderr(&out)
    );
    let listed = json(&run_ok(&env, &["status", "--format", "json"]));
    let state = |slug: &str| {
        listed.iter().find(|i| i["slug"] == slug).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("due-now"), "sent");
    assert_eq!(state("too-late"), "missed");

    // Nothing left: the dry run says so.
    let text = run_ok(
        &env,
        &["run-due", "--dry-run", "--now", "2030-01-06T07:02:00Z"],
    );
    assert!(text.contains("nothing is due"), "{text}");
}
