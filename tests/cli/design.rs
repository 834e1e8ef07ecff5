//! MJML designs as issues (a design written in the style of an ESP export,
//! tests/fixtures/design/newsletter.mjml with a sidecar mapping its Mailchimp
//! merge tags), their refusals, the deliverability findings of `issue
//! check`, and SpamAssassin's local rules on live copies.

use std::path::{Path, PathBuf};

use crate::helpers::{live_send, real_identity, stderr, stdout, TestEnv};
use crate::smtp_server::SmtpServer;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/design/newsletter.mjml")
}

/// A small design: `body` inside one column, then a footer with the
/// unsubscribe link and the postal address.
fn design(body: &str) -> String {
    format!(
        "<mjml>\n<mj-head><mj-title>A calm subject line</mj-title></mj-head>\n<mj-body>\n<mj-section><mj-column>\n{body}\n<mj-text><p>{{{{ newsletter.postal_address }}}}</p><p><a href=\"{{{{ recipient.unsubscribe_url }}}}\">Unsubscribe</a></p></mj-text>\n</mj-column></mj-section>\n</mj-body>\n</mjml>\n"
    )
}

const WORDS: &str = "<mj-text><p>Our gardens had a good year. Volunteers planted beans, chard and marigolds along the street, the seed library lent forty packets, and the compost bins behind the school now take the peelings of sixty households. Thank you for helping, and see you at the next planting day in the spring.</p></mj-text>";

fn check(env: &TestEnv, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = env.herald();
    real_identity(&mut cmd);
    cmd.args(["issue", "check"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_design_is_sent_with_its_merge_tags_mapped_and_values_escaped() {
    let env = TestEnv::new();
    let csv = env.write(
        "subs.csv",
        "email,name\nzoe@example.org,Zoë <b>&amp; Co</b>\n",
    );
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = env.path().join("designs");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["newsletter.mjml", "newsletter.toml"] {
        std::fs::copy(fixture().with_file_name(f), dir.join(f)).unwrap();
    }
    let server = SmtpServer::start();
    let out = live_send(&env, &dir.join("newsletter.mjml"), server.port());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let received = server.received();
    assert_eq!(received.len(), 1);
    let msg = mail_parser::MessageParser::default()
        .parse(received[0].data.as_bytes())
        .unwrap();
    assert_eq!(
        msg.subject(),
        Some("Field notes: spring planting and the new seed library")
    );
    let html = msg.body_html(0).unwrap();
    let text = msg.body_text(0).unwrap();
    // Mailchimp's tags became the recipient's values: escaped in HTML,
    // verbatim in text; no foreign tag is left.
    assert!(
        html.contains("Hello Zoë &lt;b&gt;&amp;amp; Co&lt;/b&gt;,"),
        "{html}"
    );
    assert!(text.contains("Hello Zoë <b>&amp; Co</b>,"), "{text}");
    assert!(html.contains("zoe@example.org"));
    assert!(html.contains("Herald Test Weekly, 2 Test Road, 1000 Testville"));
    assert!(html.contains("href=\"https://news.herald-test.example.net/unsubscribe/"));
    assert!(text.contains("Unsubscribe (https://news.herald-test.example.net/unsubscribe/"));
    assert!(
        html.contains("href=\"https://news.herald-test.example.net/issues/field-notes-spring\""),
        "{html}"
    );
    for s in [&*html, &*text] {
        assert!(
            !s.contains("*|") && !s.contains("{{") && !s.contains('\u{27E6}'),
            "{s}"
        );
    }
    // The preheader is in the document, hidden, and not white text.
    assert!(html.contains("Three stories from the gardens"));
    assert!(!html.contains("color:#ffffff;line-height:1px"));
    assert!(!text.contains("Three stories from the gardens"));
}

#[test]
fn the_text_twin_reads_well() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .args(["issue", "preview"])
        .arg(fixture())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // Wrapped at 72 columns (the sample's URLs are filled in after
    // wrapping, and a URL is never broken).
    assert!(
        text.lines()
            .all(|l| l.chars().count() <= 72 || l.contains("://")),
        "{text}"
    );
    let text = regex_free_token(&text);
    insta::assert_snapshot!("design_text_twin", text);
}

/// The sample unsubscribe token differs per build key; keep the snapshot
/// about the text.
fn regex_free_token(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("/unsubscribe/") {
            Some(i) => format!("{}/unsubscribe/TOKEN)", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn front_matter_and_the_merge_tags_option() {
    let env = TestEnv::new();
    let body = "<mj-text><p>Hi {{ first_name }}, view it at <a href=\"{{ browser_url }}\">the web</a>.</p></mj-text>";
    let file = env.write("generic.mjml", design(body));
    // A foreign tag without a mapping is bad input naming its line.
    let out = check(&env, &file, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("generic.mjml:5:"), "{err}");
    assert!(
        err.contains("unknown merge tag `{{ first_name }}`"),
        "{err}"
    );
    // Mapped on the command line, it compiles.
    let out = check(&env, &file, &["--merge-tags", "generic"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Or in the front matter, with the subject taken from it.
    let fm = format!(
        "<!--\n+++\nsubject = \"From the front matter\"\nslug = \"fm\"\nmerge_tags = \"generic\"\n+++\n-->\n{}",
        design(body)
    );
    let file = env.write("fm.mjml", fm);
    let mut cmd = env.herald();
    real_identity(&mut cmd);
    let out = cmd
        .args(["issue", "render"])
        .arg(&file)
        .args(["--out", "out"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let eml = std::fs::read_to_string(env.path().join("out/sample.eml")).unwrap();
    assert!(eml.contains("Subject: From the front matter"), "{eml}");
    let txt = std::fs::read_to_string(env.path().join("out/index.txt")).unwrap();
    assert!(
        txt.contains(
            "Hi Ana Example, view it at the web (https://news.herald-test.example.net/issues/fm)."
        ),
        "{txt}"
    );
    // A front-matter TOML error names its line.
    let file = env.write(
        "bad.mjml",
        format!("<!--\n+++\nsubject = \n+++\n-->\n{}", design("")),
    );
    let out = check(&env, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.mjml:3: front matter"),
        "{}",
        stderr(&out)
    );
}

fn refused(env: &TestEnv, name: &str, contents: &str, expect: &[&str]) {
    let file = env.write(name, contents);
    let out = check(env, &file, &[]);
    assert_eq!(out.status.code(), Some(2), "{name}: {}", stdout(&out));
    let err = stderr(&out);
    for e in expect {
        assert!(err.contains(e), "{name}: want {e:?} in {err}");
    }
}

#[test]
fn a_design_without_unsubscribe_link_or_postal_address_or_with_unsafe_content_is_refused() {
    let env = TestEnv::new();
    let ok = env.write("ok.mjml", design(WORDS));
    assert!(check(&env, &ok, &[]).status.success());

    let no_unsub = design(WORDS).replace(
        "<a href=\"{{ recipient.unsubscribe_url }}\">Unsubscribe</a>",
        "",
    );
    refused(
        &env,
        "nounsub.mjml",
        &no_unsub,
        &["nounsub.mjml: no visible unsubscribe link"],
    );
    let hidden = design(WORDS).replace(
        "<a href=\"{{ recipient.unsubscribe_url }}\">Unsubscribe</a>",
        "<span style=\"display:none\"><a href=\"{{ recipient.unsubscribe_url }}\">Unsubscribe</a></span>",
    );
    refused(
        &env,
        "hidden.mjml",
        &hidden,
        &["hidden.mjml: the unsubscribe link is not visible"],
    );
    let no_address = design(WORDS).replace("{{ newsletter.postal_address }}", "");
    refused(
        &env,
        "noaddr.mjml",
        &no_address,
        &["noaddr.mjml: no postal address"],
    );
    refused(
        &env,
        "unsafe.mjml",
        &design(
            "<mj-raw><script>alert(1)</script></mj-raw>\n<mj-raw><form action=\"https://x.example\"><input name=\"q\"></form></mj-raw>\n<mj-image src=\"https://track.example.com/o.gif\" width=\"1px\" height=\"1px\" alt=\"\" />\n<mj-text>id {{ subscriber_id }} *|UNIQID|*</mj-text>",
        ),
        &[
            "unsafe.mjml:5:9: <script>",
            "unsafe.mjml:6:9: forms",
            "unsafe.mjml:6:42: form fields",
            "unsafe.mjml:7:1: a 1×1 image is another service's tracking pixel",
            "unsafe.mjml:8:13: merge tag `{{ subscriber_id }}` would print an internal subscriber id",
            "internal subscriber id",
        ],
    );
    refused(
        &env,
        "include.mjml",
        &design("<mj-include path=\"./header.mjml\" />"),
        &["include.mjml:5:1: mj-include is not supported"],
    );
    refused(
        &env,
        "tag.mjml",
        &design("<mj-sektion></mj-sektion>"),
        &["tag.mjml:5:1:"],
    );
}

/// `issue check` on a design with `body`, the finding codes it printed.
fn findings(env: &TestEnv, name: &str, contents: &str, dkim: bool) -> (Vec<String>, Option<i32>) {
    let file = env.write(name, contents);
    let mut cmd = env.herald();
    real_identity(&mut cmd);
    if dkim {
        cmd.env("HERALD__DKIM__DOMAIN", "herald-test.example.net")
            .env("HERALD__DKIM__SELECTOR", "herald")
            .env(
                "HERALD__DKIM__PRIVATE_KEY_PATH",
                env.path().join("dkim.pem"),
            );
    }
    let out = cmd
        .args(["issue", "check", "--strict"])
        .arg(&file)
        .output()
        .unwrap();
    let codes = stdout(&out)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{}", file.display()))?;
            let rest = rest.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit());
            let code = rest.trim_start().split(':').next()?;
            (code != "ok").then(|| code.to_string())
        })
        .collect();
    (codes, out.status.code())
}

#[test]
fn each_deliverability_finding_fires_on_its_cause_and_only_then() {
    let env = TestEnv::new();
    let (clean, code) = findings(&env, "clean.mjml", &design(WORDS), true);
    assert_eq!(clean, Vec::<String>::new());
    assert_eq!(code, Some(0));

    let img = |attrs: &str| format!("{WORDS}\n<mj-raw><img {attrs} /></mj-raw>");
    let cases: Vec<(&str, String)> = vec![
        ("image-alt", img("src=\"https://e.example/a.png\" width=\"100\"")),
        ("image-width", img("src=\"https://e.example/a.png\" alt=\"A\"")),
        ("image-http", img("src=\"http://e.example/a.png\" alt=\"A\" width=\"100\"")),
        ("link-http", format!("{WORDS}<mj-text><a href=\"http://e.example/\">x</a></mj-text>")),
        ("link-ip", format!("{WORDS}<mj-text><a href=\"https://192.0.2.7/x\">x</a></mj-text>")),
        (
            "text-image-balance",
            "<mj-image src=\"https://e.example/a.png\" alt=\"A\" /><mj-image src=\"https://e.example/b.png\" alt=\"B\" />".to_string(),
        ),
        (
            "hidden-low-contrast",
            format!("<mj-raw><div style=\"display:none;color:#ffffff;\">preheader</div></mj-raw>{WORDS}"),
        ),
        ("html-size", format!("{WORDS}{}", "<mj-text><p>more words here</p></mj-text>\n".repeat(500))),
    ];
    for (want, body) in cases {
        let (codes, exit) = findings(&env, &format!("{want}.mjml"), &design(&body), true);
        assert_eq!(codes, vec![want.to_string()], "{want}");
        assert_eq!(exit, Some(1), "{want}: --strict fails on a finding");
    }
    let long = design(WORDS).replace(
        "A calm subject line",
        "A subject line that goes on and on well past what any inbox list will show",
    );
    assert_eq!(
        findings(&env, "long.mjml", &long, true).0,
        ["subject-length"]
    );
    let caps = design(WORDS).replace("A calm subject line", "A FREE calm subject");
    assert_eq!(findings(&env, "caps.mjml", &caps, true).0, ["subject-caps"]);
    let short_caps = design(WORDS).replace("A calm subject line", "A calm EU subject");
    assert!(findings(&env, "eu.mjml", &short_caps, true).0.is_empty());
    // Configuration: no DKIM; a link base that is not https.
    assert_eq!(
        findings(&env, "nodkim.mjml", &design(WORDS), false).0,
        ["dkim"]
    );
    let file = env.write("http.mjml", design(WORDS));
    let mut cmd = env.herald();
    real_identity(&mut cmd);
    let out = cmd
        .env(
            "HERALD__HTTP__PUBLIC_BASE_URL",
            "http://news.herald-test.example.net",
        )
        .args(["issue", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "without --strict findings do not fail"
    );
    assert!(
        stdout(&out).contains("list-unsubscribe: http.public_base_url"),
        "{}",
        stdout(&out)
    );
    // TOML issues get the same check.
    let out = check(&env, &crate::helpers::bundled_issue(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("deliverability:"), "{}", stdout(&out));
}

/// SpamAssassin (Debian's package, local rules only) scores a live copy.
fn spam_rules(message: &str) -> Vec<(f64, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new("spamassassin")
        .args(["-L", "-t"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spamassassin (Debian package spamassassin; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("Content analysis details"), "{report}");
    report
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let score: f64 = parts.next()?.parse().ok()?;
            let rule = parts.next()?;
            rule.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                .then(|| (score, rule.to_string()))
        })
        .collect()
}

#[test]
fn spamassassin_local_rules_score_no_positive_points_on_live_copies() {
    let env = TestEnv::new();
    crate::helpers::seed_subscribers(&env, 1);
    let dir = env.path().join("designs");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["newsletter.mjml", "newsletter.toml"] {
        std::fs::copy(fixture().with_file_name(f), dir.join(f)).unwrap();
    }
    for issue in [crate::helpers::bundled_issue(), dir.join("newsletter.mjml")] {
        let server = SmtpServer::start();
        let out = live_send(&env, &issue, server.port());
        assert!(out.status.success(), "{}", stderr(&out));
        let received = server.received();
        assert_eq!(received.len(), 1);
        let rules = spam_rules(&received[0].data);
        assert!(rules.iter().any(|(_, r)| r == "HTML_MESSAGE"), "{rules:?}");
        let positive: Vec<_> = rules.iter().filter(|(s, _)| *s > 0.0).collect();
        assert!(positive.is_empty(), "{}: {positive:?}", issue.display());
    }
}

#[test]
fn a_design_is_test_sent_and_scheduled_with_the_merge_tags_option() {
    let env = TestEnv::new();
    crate::helpers::seed_subscribers(&env, 1);
    let file = env.write(
        "generic.mjml",
        design("<mj-text><p>Hi {{ first_name }} ({{ email }}).</p></mj-text>"),
    );
    let server = SmtpServer::start();
    let text_of = |data: &str| {
        let msg = mail_parser::MessageParser::default()
            .parse(data.as_bytes())
            .unwrap();
        msg.body_text(0).unwrap().into_owned()
    };

    // Without the mapping: bad input naming the line, nothing sent.
    let mut cmd = env.herald();
    crate::helpers::smtp_env(&mut cmd, server.port());
    let out = cmd
        .arg("send")
        .arg(&file)
        .args(["--test", "user0001@example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("generic.mjml:5:"), "{}", stderr(&out));
    assert!(server.received().is_empty());

    let mut cmd = env.herald();
    crate::helpers::smtp_env(&mut cmd, server.port());
    let out = cmd
        .arg("send")
        .arg(&file)
        .args(["--merge-tags", "generic", "--test", "user0001@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert!(
        text_of(&received[0].data).contains("Hi User 1 (user0001@example.org)."),
        "{}",
        received[0].data
    );

    let mut cmd = env.herald();
    real_identity(&mut cmd);
    let out = cmd
        .arg("schedule")
        .arg(&file)
        .args(["--merge-tags", "generic"])
        .args([
            "--at",
            "2030-01-06T07:00:00Z",
            "--now",
            "2030-01-06T06:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cmd = env.herald();
    crate::helpers::smtp_env(&mut cmd, server.port());
    let out = cmd
        .args(["run-due", "--now", "2030-01-06T07:01:00Z"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].to, ["user0001@example.org"]);
    assert!(text_of(&received[1].data).contains("Hi User 1 (user0001@example.org)."));
}

#[test]
fn mrml_warnings_on_a_design_name_its_line_and_column() {
    let env = TestEnv::new();
    let file = env.write(
        "warn.mjml",
        design(WORDS).replacen("<mjml>", "<mjml\n  owner=\"me\">", 1),
    );
    let out = check(&env, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: ") && err.contains("warn.mjml:2:"),
        "{err}"
    );
}

#[test]
fn sidecar_mistakes_are_bad_input_naming_file_and_line() {
    let env = TestEnv::new();
    let file = env.write("side.mjml", design(WORDS));
    env.write("side.toml", "subject = \"Hello\"\ncolour = \"red\"\n");
    let out = check(&env, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("side.toml:2: unknown field `colour`"),
        "{}",
        stderr(&out)
    );
    env.write(
        "side.toml",
        "subject = \"Hello\"\nmerge_tags = \"constant-contact\"\n",
    );
    let out = check(&env, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("merge_tags: `constant-contact`: expected mailchimp or generic"),
        "{}",
        stderr(&out)
    );
    // Front matter and sidecar together: which one wins would be a guess.
    env.write("side.toml", "subject = \"Hello\"\n");
    let both = env.write(
        "side.mjml",
        format!(
            "<!--\n+++\nsubject = \"Other\"\n+++\n-->\n{}",
            design(WORDS)
        ),
    );
    let out = check(&env, &both, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has both a front-matter block and a sidecar"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_toml_issue_gets_the_same_findings_with_its_line() {
    let env = TestEnv::new();
    let bundled = std::fs::read_to_string(crate::helpers::bundled_issue()).unwrap();
    let line = bundled
        .lines()
        .position(|l| l.starts_with("subject = "))
        .unwrap()
        + 1;
    let shouting: String = bundled
        .lines()
        .map(|l| {
            if l.starts_with("subject = ") {
                "subject = \"FREE migration news\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = env.write("shout.toml", shouting);
    let out = check(&env, &file, &["--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "shout.toml:{line}: subject-caps: ALL-CAPS words in the subject (FREE)"
        )),
        "{text}"
    );
    assert!(!text.contains("subject-length"), "{text}");
    let out = check(&env, &crate::helpers::bundled_issue(), &[]);
    assert!(stdout(&out).contains("subject-length"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("subject-caps"), "{}", stdout(&out));
}

#[test]
fn subscriber_attributes_fill_a_design_escaped_with_their_default() {
    let env = TestEnv::new();
    let csv = env.write(
        "subs.csv",
        "email,name,city\nana@example.org,Ana,<b>Kyiv</b>\nbob@example.org,Bob,\n",
    );
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let body = format!(
        "<mj-text><p>News from {{{{ recipient.attributes.city | default(\"your town\") }}}} for {{{{ recipient.name }}}}.</p></mj-text>{WORDS}"
    );
    let file = env.write("city.mjml", design(&body));
    // An unknown filter is bad input naming the line.
    let bad = env.write(
        "bad.mjml",
        design("<mj-text><p>{{ recipient.attributes.city | upper }}</p></mj-text>"),
    );
    let out = check(&env, &bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.mjml:5:"), "{}", stderr(&out));

    let server = SmtpServer::start();
    let out = live_send(&env, &file, server.port());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut seen = std::collections::BTreeMap::new();
    for m in server.received() {
        let msg = mail_parser::MessageParser::default()
            .parse(m.data.as_bytes())
            .unwrap();
        seen.insert(
            m.to[0].clone(),
            (
                msg.body_html(0).unwrap().into_owned(),
                msg.body_text(0).unwrap().into_owned(),
            ),
        );
    }
    let (html, text) = &seen["ana@example.org"];
    assert!(
        html.contains("News from &lt;b&gt;Kyiv&lt;/b&gt; for Ana."),
        "{html}"
    );
    assert!(text.contains("News from <b>Kyiv</b> for Ana."), "{text}");
    let (html, text) = &seen["bob@example.org"];
    assert!(html.contains("News from your town for Bob."), "{html}");
    assert!(text.contains("News from your town for Bob."), "{text}");
}

#[test]
fn placeholder_brackets_as_character_references_or_toml_escapes_are_refused() {
    let env = TestEnv::new();
    for (name, reference) in [
        ("dec.mjml", "&#10214;herald:email&#10215;"),
        ("hex.mjml", "&#x27E6;herald:email&#x27e7;"),
        (
            "named.mjml",
            "&LeftDoubleBracket;herald:email&RightDoubleBracket;",
        ),
    ] {
        let body = format!("<mj-text><p>Hello {reference}</p></mj-text>{WORDS}");
        refused(
            &env,
            name,
            &design(&body),
            &[&format!("{name}:5:"), "reserved for placeholders"],
        );
    }
    // The sidecar's values are checked once parsed.
    let file = env.write("meta.mjml", design(WORDS));
    for (sidecar, field) in [
        (
            "subject = \"Hi\\r\\nBcc: v@e.org\"\n",
            "subject: must be one line",
        ),
        (
            "subject = \"Hi\"\npreheader = \"\\u27e6herald:email\\u27e7\"\n",
            "preheader: the characters",
        ),
    ] {
        env.write("meta.toml", sidecar);
        let out = check(&env, &file, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        assert!(stderr(&out).contains(field), "{}", stderr(&out));
    }
}
