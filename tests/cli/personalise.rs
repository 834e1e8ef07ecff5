//! Subscriber attributes in templates and in issue text: received messages
//! carry each subscriber's values (escaped in HTML, verbatim in text), a
//! missing attribute falls back to its default, `issue check` counts the
//! subscribers lacking an attribute used without a default, and a
//! malformed placeholder is bad input naming its line.

use herald::config::Settings;
use herald::render::{self, Recipient, Templates};

use crate::helpers::{live_send, stderr, stdout, TestEnv};
use crate::smtp_server::SmtpServer;

/// An issue whose headline, body and subject use attributes.
const ISSUE: &str = r#"slug = "personal"
subject = 'News for {{ attributes.city | default("everyone") }}'
preheader = "This month in {{ attributes.city | default('your town') }}"
date = 2026-12-01

[[blocks]]
type = "story"
headline = 'Hello from {{ attributes.city | default("your town") }}'
body = """
First paragraph.

Your role: {{ attributes.club_role }}.
"""
"#;

/// A text twin that prints an attribute through the template too.
const TEXT_TEMPLATE: &str = "{% for b in blocks %}{{ b.headline }}\n\n{{ b.body }}\n{% endfor %}\
Member type: {{ recipient.attributes.tier | default(\"standard\") }}\n\
Unsubscribe: {{ recipient.unsubscribe_url }}\n";

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

/// Minimal quoted-printable decoding (soft breaks and =XX).
fn decode_qp(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// (subject, text part, html part) of a raw received message.
fn parts(data: &str) -> (String, String, String) {
    let subject = data
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Subject: "))
        .expect("a Subject header")
        .to_string();
    let text_at = data.find("Content-Type: text/plain").expect("text part");
    let html_at = data.find("Content-Type: text/html").expect("html part");
    let b = data.find("boundary=").expect("multipart") + "boundary=".len();
    let boundary = data[b..]
        .split(['\r', ';'])
        .next()
        .unwrap()
        .trim_matches('"');
    let delimiter = format!("\r\n--{boundary}");
    let body = |from: usize| {
        let start = from + data[from..].find("\r\n\r\n").unwrap() + 4;
        let end = start + data[start..].find(&delimiter).unwrap();
        decode_qp(&data[start..end])
    };
    (subject, body(text_at), body(html_at))
}

#[test]
fn received_messages_carry_each_subscribers_attributes_escaped_in_html_and_verbatim_in_text() {
    let env = TestEnv::new();
    import(
        &env,
        "email,name,city,club_role,tier\n\
         ana@example.org,Ana,<b>Kyiv</b>,treasurer,gold\n\
         bo@example.org,Bo,,,\n",
    );
    env.write("templates/issue.txt", TEXT_TEMPLATE);
    let issue = env.write("issues/personal.toml", ISSUE);
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    let received = server.received();
    assert_eq!(received.len(), 2);
    let by = |to: &str| {
        let r = received.iter().find(|r| r.to == [to]).expect(to);
        parts(&r.data)
    };

    let (subject, text, html) = by("ana@example.org");
    assert_eq!(subject, "News for <b>Kyiv</b>");
    assert!(text.contains("Hello from <b>Kyiv</b>"), "{text}");
    assert!(text.contains("Your role: treasurer."), "{text}");
    assert!(text.contains("Member type: gold"), "{text}");
    assert!(
        html.contains("Hello from &lt;b&gt;Kyiv&lt;/b&gt;"),
        "the value stays literal in HTML: {html}"
    );
    assert!(
        !html.contains("<b>Kyiv"),
        "an attribute never becomes markup"
    );
    assert!(html.contains("Your role: treasurer."));
    assert!(
        html.contains("This month in &lt;b&gt;Kyiv&lt;/b&gt;"),
        "preheader"
    );

    // Bo has none of them: defaults, or nothing where there is no default.
    let (subject, text, html) = by("bo@example.org");
    assert_eq!(subject, "News for everyone");
    assert!(text.contains("Hello from your town"), "{text}");
    assert!(text.contains("Your role: ."), "{text}");
    assert!(text.contains("Member type: standard"), "{text}");
    assert!(html.contains("Hello from your town"));
    assert!(!html.contains('\u{27E6}'), "no placeholder is left");
}

#[test]
fn template_attributes_in_the_html_are_escaped_and_the_default_is_escaped_once() {
    let settings: Settings = toml::from_str(herald::config::DEFAULT_TOML).unwrap();
    let mjml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/issue.mjml"),
    )
    .unwrap()
    .replacen(
        "Hello {{ recipient.name }},",
        "Hello {{ recipient.name }} of {{ recipient.attributes.club | default(\"Cats & Dogs\") }} ({{ recipient.attributes.since }}),",
        1,
    );
    let text = "{{ recipient.attributes.club }} {{ recipient.unsubscribe_url }}\n";
    let templates = Templates::from_sources(&mjml, text).unwrap();
    let issue = render::load_issue(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("issues/2018-12-14-migration-news.toml"),
    )
    .unwrap();
    let compiled = render::compile_with(&issue, &settings, &templates)
        .unwrap()
        .compiled;
    let prepared = compiled.prepare();
    let attrs: render::Attributes =
        serde_json::from_str(r#"{"club": "<i>Chess</i> & co", "since": 2019}"#).unwrap();
    let base = Recipient {
        email: "ana@example.org",
        name: Some("Ana"),
        unsubscribe_url: "https://news.example.org/unsubscribe/t",
        view_url: "https://news.example.org/issues/x",
        attributes: Some(&attrs),
    };
    let (html, text) = prepared.personalise(&base);
    assert!(
        html.contains("Hello Ana of &lt;i&gt;Chess&lt;/i&gt; &amp; co (2019),"),
        "{html}"
    );
    assert!(text.starts_with("<i>Chess</i> & co https://"), "{text}");
    let (html, text) = prepared.personalise(&Recipient {
        attributes: None,
        ..base
    });
    assert!(html.contains("Hello Ana of Cats &amp; Dogs (),"), "{html}");
    assert!(text.starts_with(" https://"), "{text}");
}

#[test]
fn issue_check_warns_how_many_active_subscribers_lack_an_attribute_without_default() {
    let env = TestEnv::new();
    import(
        &env,
        "email,city,club_role\n\
         a@example.org,Kyiv,treasurer\n\
         b@example.org,Lviv,\n\
         c@example.org,,\n\
         d@example.org,,\n",
    );
    // An unsubscribed subscriber without the attribute does not count.
    let out = env
        .herald()
        .args(["subscribers", "unsubscribe", "d@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let issue = env.write("issues/personal.toml", ISSUE);
    let out = env
        .herald()
        .args(["issue", "check"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("attributes used: city, club_role"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("attribute `club_role` has no default and 2 of 3 active subscribers lack it"),
        "{err}"
    );
    assert!(!err.contains("`city`"), "city always has a default: {err}");
}

#[test]
fn preview_uses_sample_values_or_a_real_subscriber_with_sample() {
    let env = TestEnv::new();
    let issue = env.write("issues/personal.toml", ISSUE);
    let out = env
        .herald()
        .args(["issue", "preview"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Your role: sample club_role."));
    import(&env, "email,name,club_role\nzoe@example.org,Zoë,editor\n");
    let out = env
        .herald()
        .args(["issue", "preview", "--sample", "zoe@example.org"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Your role: editor."), "{text}");
    assert!(text.contains("Hello from your town"), "{text}");
    let out = env
        .herald()
        .args(["issue", "preview", "--sample", "nobody@example.org"])
        .arg(&issue)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no such subscriber"));
}

fn check_fails(issue: &str, expected: &str) {
    let env = TestEnv::new();
    env.write("issues/bad.toml", issue);
    let out = env
        .herald()
        .args(["issue", "check", "issues/bad.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
}

#[test]
fn an_unknown_filter_or_a_malformed_placeholder_is_bad_input_naming_the_line() {
    check_fails(
        &ISSUE.replace(
            "{{ attributes.club_role }}",
            "{{ attributes.club_role | upper }}",
        ),
        "issues/bad.toml:12: blocks[1].body: unknown filter `upper`",
    );
    check_fails(
        &ISSUE.replace("{{ attributes.club_role }}", "{{ attributes.club_role"),
        "issues/bad.toml:12: blocks[1].body: unclosed placeholder",
    );
    check_fails(
        &ISSUE.replace("Hello from {{ attributes.city", "Hello from {{ city"),
        "issues/bad.toml:8: blocks[1].headline: unknown placeholder `{{ city",
    );
    check_fails(
        &ISSUE.replace("default(\"everyone\")", "default(everyone)"),
        "issues/bad.toml:2: subject: malformed default",
    );
}
