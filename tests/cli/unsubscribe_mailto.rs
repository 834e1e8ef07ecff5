//! The mailto fallback: with `unsubscribe.mailto_domain` set, every message's
//! List-Unsubscribe carries `<mailto:unsubscribe+TOKEN@DOMAIN>` after the
//! https link, and that address, piped to `herald subscribers
//! unsubscribe-token`, unsubscribes the recipient.

use crate::helpers::{live_send, seed_subscribers, stderr, write_issue, TestEnv};
use crate::smtp_server::SmtpServer;

fn list_unsubscribe(data: &str) -> String {
    let unfolded = data.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n")
        .find_map(|l| l.strip_prefix("List-Unsubscribe: "))
        .expect("List-Unsubscribe")
        .to_string()
}

#[test]
fn the_mailto_fallback_follows_the_https_link_and_unsubscribes_when_piped_back() {
    let env = TestEnv::new();
    env.write(
        "config/local.toml",
        "[unsubscribe]\nmailto_domain = \"lists.example.org\"\n",
    );
    seed_subscribers(&env, 2);
    let issue = write_issue(&env, "mailto");
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    let received = server.received();
    let first = received
        .iter()
        .find(|r| r.to == ["user0001@example.org"])
        .unwrap();
    let header = list_unsubscribe(&first.data);
    // `<BASE/unsubscribe/TOKEN>, <mailto:unsubscribe+TOKEN@lists.example.org>`
    let (https, mailto) = header.split_once(", ").expect("two entries");
    assert!(https.starts_with("<http"), "{header}");
    let token = https
        .rsplit_once("/unsubscribe/")
        .and_then(|(_, t)| t.strip_suffix('>'))
        .unwrap_or_else(|| panic!("{header}"));
    assert_eq!(
        mailto,
        format!("<mailto:unsubscribe+{token}@lists.example.org>")
    );
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(
        format!("unsubscribe+{token}").len() <= 64,
        "local-part limit"
    );

    // What the MTA pipe runs with the whole address.
    let address = mailto.trim_start_matches("<mailto:").trim_end_matches('>');
    let out = env
        .herald()
        .env(
            "HERALD__UNSUBSCRIBE__SECRET",
            "test-signing-key-0123456789abcdefghijkl",
        )
        .args(["subscribers", "unsubscribe-token", address])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let store = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { env.store().await.subscriber_counts().await.unwrap() });
    assert_eq!(store["active"], 1);
    assert_eq!(store["unsubscribed"], 1);
}

#[test]
fn without_the_setting_there_is_only_the_https_link_and_a_bad_domain_is_refused() {
    let env = TestEnv::new();
    seed_subscribers(&env, 1);
    let issue = write_issue(&env, "nomailto");
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    let header = list_unsubscribe(&server.received()[0].data);
    assert!(!header.contains("mailto:"), "{header}");

    env.write(
        "config/local.toml",
        "[unsubscribe]\nmailto_domain = \"not a domain\"\n",
    );
    let out = env.herald().args(["subscribers", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unsubscribe.mailto_domain"),
        "{}",
        stderr(&out)
    );
}
