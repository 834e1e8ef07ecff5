//! The guards before a live send through SMTP: no demo identity, links
//! that work for readers (or `--allow-unsafe-links`); test sends and the
//! outbox are not guarded.

use crate::helpers::{ledger, seed_subscribers, smtp_env, stderr, stdout, write_issue, TestEnv};
use crate::smtp_server::SmtpServer;

#[test]
fn a_live_smtp_send_with_the_demo_identity_is_refused_listing_what_to_set() {
    let env = TestEnv::new();
    seed_subscribers(&env, 3);
    let issue = write_issue(&env, "demo-identity");
    let server = SmtpServer::start();
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    // Back to the embedded demo values.
    cmd.env_remove("HERALD__SENDER__FROM_ADDRESS")
        .env_remove("HERALD__NEWSLETTER__LIST_ID")
        .env_remove("HERALD__NEWSLETTER__POSTAL_ADDRESS")
        .env_remove("HERALD__HTTP__PUBLIC_BASE_URL");
    let out = cmd
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for key in [
        "sender.from_address: still the demo value `news@example.org`",
        "newsletter.list_id",
        "newsletter.postal_address",
        "http.public_base_url: `http://127.0.0.1:8080` is not https",
    ] {
        assert!(err.contains(key), "missing {key}: {err}");
    }
    assert_eq!(server.received().len(), 0);
    // Nothing was registered either.
    let out = env.herald().arg("status").arg(&issue).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));

    // A test send through the same server is not guarded.
    let mut test = env.herald();
    smtp_env(&mut test, server.port());
    test.env_remove("HERALD__SENDER__FROM_ADDRESS");
    let out = test
        .arg("send")
        .arg(&issue)
        .args(["--test", "me@example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn loopback_or_private_links_are_refused_unless_allowed_for_an_intranet_list() {
    let env = TestEnv::new();
    seed_subscribers(&env, 4);
    let issue = write_issue(&env, "intranet");
    let server = SmtpServer::start();
    for (base, why) in [
        ("http://news.example.net", "is not https"),
        ("https://127.0.0.1:8443", "loopback"),
        ("https://localhost/herald", "loopback"),
        ("https://10.0.0.7", "private address"),
        ("https://[fd12::1]/", "private address"),
    ] {
        let mut cmd = env.herald();
        smtp_env(&mut cmd, server.port());
        let out = cmd
            .env("HERALD__HTTP__PUBLIC_BASE_URL", base)
            .args(["send", "--live", "--yes"])
            .arg(&issue)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{base}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{base}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--allow-unsafe-links"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(server.received().len(), 0);

    // run-due and schedule apply the same rule.
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd
        .env("HERALD__HTTP__PUBLIC_BASE_URL", "https://10.0.0.7")
        .arg("schedule")
        .arg(&issue)
        .args(["--in", "1h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // The override lets an intranet list through; the links are the intranet's.
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd
        .env("HERALD__HTTP__PUBLIC_BASE_URL", "https://10.0.0.7")
        .args(["send", "--live", "--yes", "--allow-unsafe-links"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received().len(), 4);
    assert!(server.received()[0]
        .data
        .contains("<https://10.0.0.7/unsubscribe/"));
    assert_eq!(ledger(&env, &issue)["state"], "sent");
}

#[test]
fn run_due_refuses_to_resume_through_smtp_with_unsafe_links_unless_allowed() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);
    let issue = write_issue(&env, "cron-guard");
    let server = SmtpServer::start();
    let schedule = |extra: &[&str]| {
        let mut cmd = env.herald();
        smtp_env(&mut cmd, server.port());
        cmd.env("HERALD__HTTP__PUBLIC_BASE_URL", "https://192.168.1.20")
            .arg("schedule")
            .arg(&issue)
            .args([
                "--at",
                "2030-01-06T07:00:00Z",
                "--now",
                "2030-01-06T06:00:00Z",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = schedule(&["--allow-unsafe-links"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run_due = |extra: &[&str]| {
        let mut cmd = env.herald();
        smtp_env(&mut cmd, server.port());
        cmd.env("HERALD__HTTP__PUBLIC_BASE_URL", "https://192.168.1.20")
            .args(["run-due", "--now", "2030-01-06T07:01:00Z"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run_due(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("private address"), "{}", stderr(&out));
    assert_eq!(server.received().len(), 0);
    let out = run_due(&["--allow-unsafe-links"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received().len(), 2);
}
