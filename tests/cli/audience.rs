//! Audience selection: `[audience]` in the issue file and `--audience` on
//! the command line choose exactly the matching active subscribers when the
//! live send starts; the dry run shows the count; `status` shows the
//! filter; later attribute changes do not alter a started send.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::{
    closed_port, ledger, live_send, smtp_env, stderr, stdout, write_issue, TestEnv,
};
use crate::smtp_server::SmtpServer;

const PEOPLE: &str = "email,city,role\n\
    ana@example.org,Kyiv,\n\
    bo@example.org,Lviv,\n\
    cy@example.org,Odesa,\n\
    dee@example.org,,\n\
    eve@example.org,Kyiv,\n\
    fay@example.org, ,editor\n";

fn import(env: &TestEnv, csv: &str) {
    let file = env.write("people.csv", csv);
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The directory's people, with eve unsubscribed.
fn people(env: &TestEnv) {
    import(env, PEOPLE);
    let out = env
        .herald()
        .args(["subscribers", "unsubscribe", "eve@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The bundled issue with an `[audience]` table added.
fn issue_with_audience(env: &TestEnv, slug: &str, audience: &str) -> std::path::PathBuf {
    let path = write_issue(env, slug);
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\n[[blocks]]").unwrap() + 1;
    let text = format!("{}[audience]\n{audience}\n\n{}", &text[..at], &text[at..]);
    std::fs::write(&path, text).unwrap();
    path
}

fn recipients(server: &SmtpServer) -> BTreeSet<String> {
    server
        .received()
        .iter()
        .flat_map(|r| r.to.clone())
        .collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_issue_files_audience_selects_exactly_the_matching_active_subscribers_and_status_shows_it() {
    let env = TestEnv::new();
    people(&env);
    let issue = issue_with_audience(&env, "cities", "city = [\"Kyiv\", \"Lviv\"]");
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "audience active subscribers with city in [\"Kyiv\", \"Lviv\"]: 2 subscribers"
        ),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        recipients(&server),
        set(&["ana@example.org", "bo@example.org"])
    );
    let status = env.herald().args(["status"]).arg(&issue).output().unwrap();
    assert!(
        stdout(&status).contains("audience: active subscribers with city in [\"Kyiv\", \"Lviv\"]"),
        "{}",
        stdout(&status)
    );
    let l = ledger(&env, &issue);
    assert_eq!(l["audience"]["city"]["one-of"][1], "Lviv", "{l}");
    assert_eq!(l["total"], 2);
}

#[test]
fn command_line_filters_replace_the_files_and_the_dry_run_counts_them() {
    let env = TestEnv::new();
    people(&env);
    let issue = issue_with_audience(&env, "cli", "city = \"Kyiv\"");
    let dry = |args: &[&str]| {
        let mut cmd = env.herald();
        cmd.args(["send", "--dry-run"]).arg(&issue).args(args);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let out = dry(&[]);
    assert!(
        out.contains("audience: active subscribers with city = \"Kyiv\": 1 subscribers"),
        "{out}"
    );
    assert!(out.contains("built 1 messages"), "{out}");
    let out = dry(&["--audience", "city=Odesa", "--audience", "city=Lviv"]);
    assert!(out.contains(": 2 subscribers"), "{out}");
    assert!(out.contains("built 2 messages"), "{out}");
    // Present and absent (a blank value counts as absent).
    let out = dry(&["--audience", "role=*"]);
    assert!(out.contains("role present: 1 subscribers"), "{out}");
    let out = dry(&["--audience", "city="]);
    assert!(out.contains("city absent: 2 subscribers"), "{out}");
    assert!(out.contains("built 2 messages"), "{out}");

    let server = SmtpServer::start();
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd
        .args(["send", "--live", "--yes", "--audience", "city="])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        recipients(&server),
        set(&["dee@example.org", "fay@example.org"])
    );

    let bad = env
        .herald()
        .args(["send", "--dry-run", "--audience", "city"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--audience city: write KEY=VALUE"));
}

#[test]
fn a_bad_audience_table_is_bad_input_naming_the_line() {
    let env = TestEnv::new();
    let issue = issue_with_audience(&env, "badaud", "city = 3");
    let out = env
        .herald()
        .args(["issue", "check"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("audience: `city`: write a string"), "{err}");
    assert!(err.contains("badaud.toml:"), "{err}");
}

#[test]
fn attribute_changes_after_the_start_do_not_change_who_gets_a_started_send() {
    let env = TestEnv::new();
    people(&env);
    let issue = issue_with_audience(&env, "fixed", "city = \"Kyiv\"");
    // Nothing listens: the send starts (snapshot taken) and stops.
    let port = closed_port();
    let out = live_send(&env, &issue, port);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(ledger(&env, &issue)["counts"]["pending"], 1);

    // Ana moves away, Cy moves to Kyiv.
    import(
        &env,
        "email,city\nana@example.org,Odesa\ncy@example.org,Kyiv\n",
    );
    let server = SmtpServer::start_on(&format!("127.0.0.1:{port}"));
    let out = live_send(&env, &issue, port);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.wait_for(1, Duration::from_secs(5)), 1);
    assert_eq!(recipients(&server), set(&["ana@example.org"]));
    // A different --audience cannot change a started send.
    let mut cmd = env.herald();
    smtp_env(&mut cmd, port);
    let out = cmd
        .args(["send", "--live", "--yes", "--audience", "city=Odesa"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--audience cannot change it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_scheduled_send_keeps_the_audience_given_when_scheduling() {
    let env = TestEnv::new();
    people(&env);
    let issue = write_issue(&env, "later");
    let out = env
        .herald()
        .args(["schedule", "--audience", "city=Lviv"])
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
    assert!(
        stdout(&out)
            .contains("audience: active subscribers with city = \"Lviv\": 1 subscribers now"),
        "{}",
        stdout(&out)
    );
    let out = env
        .herald()
        .args(["run-due", "--now", "2030-01-06T07:00:30Z"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sent: Vec<String> = std::fs::read_dir(env.path().join("outbox"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "eml").then(|| std::fs::read_to_string(p).unwrap())
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].contains("To: bo@example.org"),
        "{}",
        &sent[0][..400]
    );
    assert_eq!(
        ledger(&env, &issue)["audience"]["city"]["one-of"][0],
        "Lviv"
    );
}

#[test]
fn booleans_and_numbers_from_an_attributes_column_match_as_their_json_text() {
    let env = TestEnv::new();
    import(
        &env,
        "email,attributes\n\
         ana@example.org,\"{\"\"vip\"\": true, \"\"score\"\": 1.50}\"\n\
         ben@example.org,\"{\"\"vip\"\": false, \"\"score\"\": 2}\"\n\
         cai@example.org,\"{\"\"vip\"\": \"\"true\"\"}\"\n",
    );
    let issue = issue_with_audience(&env, "typed", "vip = \"true\"");
    let dry = |args: &[&str]| {
        let out = env
            .herald()
            .args(["send", "--dry-run"])
            .arg(&issue)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    // The boolean true and the string "true" both read `true`.
    assert!(dry(&[]).contains("built 2 messages"), "{}", dry(&[]));
    assert!(dry(&["--audience", "vip=false"]).contains("built 1 messages"));
    // The import reads numbers through serde_json: 1.50 is stored as 1.5.
    assert!(dry(&["--audience", "score=1.5"]).contains("built 1 messages"));
    assert!(dry(&["--audience", "score=2"]).contains("built 1 messages"));
}
