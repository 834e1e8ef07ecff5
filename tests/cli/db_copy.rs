//! `herald db copy`: a SQLite installation with a send stopped half-way is
//! copied into an empty PostgreSQL database, and the send resumes there
//! with nothing lost or doubled; a non-empty target, a source with a send
//! running and a target that is not PostgreSQL are refused (exit 2). Runs
//! in the PostgreSQL pass of the suite.

use std::time::Duration;

use crate::helpers::{
    ledger, on_postgres, seed_subscribers, smtp_env, stderr, stdout, write_issue, PgDatabase,
    TestEnv,
};
use crate::smtp_server::SmtpServer;

#[test]
fn a_half_finished_send_is_copied_to_postgres_and_resumes_there_with_nothing_lost_or_doubled() {
    if !on_postgres() {
        eprintln!("PostgreSQL-only test, run in the PostgreSQL pass: db copy round trip");
        return;
    }
    let env = TestEnv::sqlite();
    seed_subscribers(&env, 600);
    let out = env
        .herald()
        .args(["subscribers", "unsubscribe", "user0007@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let issue = write_issue(&env, "moving");
    let server = SmtpServer::start();
    // Stop the first run after about 150 messages (SIGTERM: a clean stop).
    let child = env
        .herald_process(server.port(), 150, 4)
        .env("HERALD__SMTP__HOST", "127.0.0.1")
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .spawn()
        .unwrap();
    assert!(server.wait_for(150, Duration::from_secs(30)) >= 150);
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let before = ledger(&env, &issue);
    let sent_before = before["counts"]["sent"].as_u64().unwrap();
    assert!((150..599).contains(&sent_before), "{before}");
    let meta: Vec<(String, String)> = env.fetch_all("SELECT key, value FROM app_meta ORDER BY key");

    let target = PgDatabase::create();
    let out = env
        .herald()
        .args(["db", "copy", "--to", &target.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("subscribers         600        600"),
        "{report}"
    );
    assert!(report.contains("copied and verified"), "{report}");
    assert!(
        report.contains(&format!("url = \"{}\"", target.url)),
        "{report}"
    );

    // The same installation, now on PostgreSQL.
    let on_pg = |cmd: &mut assert_cmd::Command| {
        cmd.env("HERALD__DATABASE__URL", &target.url);
    };
    let mut status = env.herald();
    on_pg(&mut status);
    let copied: serde_json::Value = serde_json::from_slice(
        &status
            .args(["status", "--format", "json"])
            .arg(&issue)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(copied["counts"], before["counts"]);
    assert_eq!(copied["state"], "sending");

    let mut resume = env.herald();
    smtp_env(&mut resume, server.port());
    on_pg(&mut resume);
    let out = resume
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = server.counts();
    assert_eq!(
        counts.len(),
        599,
        "every active subscriber, the unsubscribed one not"
    );
    assert!(counts.values().all(|n| *n == 1), "nobody twice");
    assert!(!counts.contains_key("user0007@example.org"));

    // Keys and ids came along: the signing key is the same, and new rows
    // get fresh ids after the copied ones.
    let pg_env_meta = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = target.url.clone();
        rt.block_on(async move {
            let db = sqlx::PgPool::connect(&url).await.unwrap();
            let meta: Vec<(String, String)> =
                sqlx::query_as("SELECT key, value FROM app_meta ORDER BY key")
                    .fetch_all(&db)
                    .await
                    .unwrap();
            db.close().await;
            meta
        })
    };
    assert_eq!(pg_env_meta, meta);
    let mut add = env.herald();
    on_pg(&mut add);
    let out = add
        .args(["subscribers", "add", "newcomer@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // A second copy into the now non-empty target is refused, and changes
    // nothing there.
    let out = env
        .herald()
        .args(["db", "copy", "--to", &target.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    let mut list = env.herald();
    on_pg(&mut list);
    let out = list
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).matches("@example.org").count(), 601);
}

#[test]
fn db_copy_refuses_a_target_that_is_not_postgres() {
    let env = TestEnv::sqlite();
    let out = env
        .herald()
        .args(["db", "copy", "--to", "sqlite://other.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--to must be a postgres://"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path().join("other.db").exists());
}

#[test]
fn commands_before_init_on_an_empty_postgres_database_exit_2_and_create_nothing() {
    if !on_postgres() {
        eprintln!("PostgreSQL-only test, run in the PostgreSQL pass: commands before init");
        return;
    }
    let env = TestEnv::bare();
    for args in [&["status"][..], &["subscribers", "list"], &["run-due"]] {
        let out = env.herald().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("has no herald tables (run `herald init` first)"),
            "{}",
            stderr(&out)
        );
    }
    let tables: Vec<(i64,)> = env
        .fetch_all("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'");
    assert_eq!(tables[0].0, 0, "nothing was created");
    env.init();
    let out = env.herald().arg("status").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
