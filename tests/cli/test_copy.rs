//! Links in a test copy (`herald send --test`): the web version opens with
//! the copy's signed preview link before any live send, and the
//! unsubscribe link says it is a test copy and changes nothing.

use crate::helpers::{
    seed_subscribers, smtp_env, stderr, stdout, write_issue, TestEnv, PUBLIC_BASE_URL,
};
use crate::smtp_server::SmtpServer;

/// The first `<https://…>` or bare URL under the public base in `text`
/// that contains `needle`.
fn link(message: &str, needle: &str) -> String {
    let unfolded = message.replace("=\r\n", "").replace("=3D", "=");
    let start = unfolded
        .match_indices(PUBLIC_BASE_URL)
        .map(|(i, _)| i)
        .find(|i| {
            unfolded[*i..]
                .split(['>', '"', ' ', '\r', '\n'])
                .next()
                .unwrap()
                .contains(needle)
        })
        .unwrap_or_else(|| panic!("no link with {needle} in the message"));
    unfolded[start..]
        .split(['>', '"', ' ', '\r', '\n', ')'])
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_test_copys_links_open_the_preview_and_a_test_copy_page_that_changes_nothing() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);
    let issue = write_issue(&env, "preview-me");
    let server = SmtpServer::start();
    // The tester is a subscriber: their test copy must still not carry
    // their own unsubscribe link.
    let mut cmd = env.herald();
    smtp_env(&mut cmd, server.port());
    let out = cmd
        .arg("send")
        .arg(&issue)
        .args(["--test", "user0001@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let message = server.received()[0].data.clone();
    let view = link(&message, "/issues/preview-me?preview=");
    let unsubscribe = link(&message, "/unsubscribe/");

    let (mut serve, base) = crate::helpers::spawn_serve(&env, &[]);
    let local = |url: &str| url.replace(PUBLIC_BASE_URL, &base);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let get = |url: String| {
        rt.block_on(async {
            let res = client.get(url).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        })
    };
    let post = |url: String| {
        rt.block_on(async {
            let res = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click")
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        })
    };

    // No live send yet: the public web version is 404, the preview opens.
    assert_eq!(get(format!("{base}/issues/preview-me")).0, 404);
    let (status, page) = get(local(&view));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Migration news — preview-me"),
        "the issue itself"
    );
    // A tampered preview token, or the token on another slug, is 404.
    assert_eq!(get(local(&view).replace("preview=", "preview=x")).0, 404);
    assert_eq!(
        get(local(&view).replace("/issues/preview-me", "/issues/other")).0,
        404
    );

    // The unsubscribe link: a page saying it is a test copy, GET and
    // one-click POST alike, and nobody is unsubscribed.
    for (status, page) in [get(local(&unsubscribe)), post(local(&unsubscribe))] {
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("This is a test copy"), "{page}");
        assert!(page.contains("Nothing was changed"), "{page}");
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let out = env
        .herald()
        .args([
            "subscribers",
            "list",
            "--status",
            "active",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("user0001@example.org"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("user0002@example.org"));
}
