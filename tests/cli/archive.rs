//! The public archive through `herald serve` and a real HTTP client:
//! `/issues` lists exactly the issues whose live send started, newest
//! first; `/issues/feed.xml` is an Atom feed of the same, read here by an
//! independent parser (Python's xml.etree with the Atom namespace); each
//! web version links back; `http.archive = false` turns the archive off
//! and keeps the web versions.

use std::process::{Child, Command};

use crate::helpers::{live_send, seed_subscribers, spawn_serve, stderr, write_issue, TestEnv};
use crate::smtp_server::SmtpServer;

fn serve(env: &TestEnv, archive: bool) -> (Child, String) {
    spawn_serve(env, &[("HERALD__HTTP__ARCHIVE", &archive.to_string())])
}

fn get(rt: &tokio::runtime::Runtime, url: String) -> (u16, String, String) {
    rt.block_on(async {
        let res = reqwest::get(url).await.unwrap();
        let kind = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (res.status().as_u16(), kind, res.text().await.unwrap())
    })
}

/// (feed title, [(entry title, link href, updated)]) as xml.etree reads them.
fn parse_atom(env: &TestEnv, xml: &str) -> serde_json::Value {
    let file = env.write("feed.xml", xml);
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
A = "{http://www.w3.org/2005/Atom}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == A + "feed", root.tag
entries = [[e.findtext(A + "title"), e.find(A + "link").get("href"), e.findtext(A + "updated"),
            e.findtext(A + "id")] for e in root.findall(A + "entry")]
print(json.dumps({"title": root.findtext(A + "title"), "updated": root.findtext(A + "updated"),
                  "author": root.findtext(A + "author/" + A + "name"), "entries": entries}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_archive_and_its_atom_feed_list_exactly_the_started_issues_newest_first() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);
    let server = SmtpServer::start();
    let first = write_issue(&env, "first");
    let out = live_send(&env, &first, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(20));
    // A subject with an attribute placeholder is listed with its default.
    let second = write_issue(&env, "second");
    let text = std::fs::read_to_string(&second).unwrap().replace(
        "subject = \"Migration news — second\"",
        "subject = 'News & views for {{ attributes.city | default(\"everyone\") }}'",
    );
    std::fs::write(&second, text).unwrap();
    let out = live_send(&env, &second, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    // Registered (scheduled) but not started: not in the archive.
    let draft = write_issue(&env, "draft");
    let out = env
        .herald()
        .args(["schedule", "--in", "1d"])
        .arg(&draft)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let (mut http, base) = serve(&env, true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, kind, page) = get(&rt, format!("{base}/issues"));
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    let at_second = page
        .find("href=\"/issues/second\">News &amp; views for everyone</a>")
        .expect("second listed");
    let at_first = page
        .find("href=\"/issues/first\">Migration news — first</a>")
        .expect("first listed");
    assert!(at_second < at_first, "newest first");
    assert!(!page.contains("draft"));
    assert!(page.contains("href=\"/issues/feed.xml\""));

    let (status, kind, xml) = get(&rt, format!("{base}/issues/feed.xml"));
    assert_eq!(status, 200);
    assert_eq!(kind, "application/atom+xml; charset=utf-8");
    let feed = parse_atom(&env, &xml);
    let entries = feed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{feed}");
    assert_eq!(entries[0][0], "News & views for everyone");
    assert_eq!(
        entries[0][1],
        format!("{}/issues/second", crate::helpers::PUBLIC_BASE_URL)
    );
    assert_eq!(entries[1][0], "Migration news — first");
    assert_eq!(
        entries[1][1],
        format!("{}/issues/first", crate::helpers::PUBLIC_BASE_URL)
    );
    assert_eq!(feed["updated"], entries[0][2]);
    assert_ne!(entries[0][3], entries[1][3], "entry ids differ");
    assert!(feed["author"].as_str().is_some_and(|a| !a.is_empty()));

    let (status, _, web) = get(&rt, format!("{base}/issues/first"));
    assert_eq!(status, 200);
    assert!(
        web.contains("<a href=\"/issues\""),
        "links back to the archive"
    );
    assert_eq!(get(&rt, format!("{base}/issues/draft")).0, 404);
    let _ = http.kill();
    let _ = http.wait();

    // Archive off: no list, no feed, web versions stay (without the link).
    let (mut http, base) = serve(&env, false);
    assert_eq!(get(&rt, format!("{base}/issues")).0, 404);
    assert_eq!(get(&rt, format!("{base}/issues/feed.xml")).0, 404);
    let (status, _, web) = get(&rt, format!("{base}/issues/first"));
    assert_eq!(status, 200);
    assert!(!web.contains("<a href=\"/issues\""));
    let _ = http.kill();
    let _ = http.wait();
}

#[test]
fn an_empty_archive_is_a_valid_page_and_feed() {
    let env = TestEnv::new();
    let out = env.herald().arg("init").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut http, base) = serve(&env, true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _, page) = get(&rt, format!("{base}/issues"));
    assert_eq!(status, 200);
    assert!(page.contains("No issue has been sent yet."));
    let (_, _, xml) = get(&rt, format!("{base}/issues/feed.xml"));
    let feed = parse_atom(&env, &xml);
    assert_eq!(feed["entries"].as_array().unwrap().len(), 0);
    let _ = http.kill();
    let _ = http.wait();
}
