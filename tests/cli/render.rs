//! Issue rendering: the bundled issue compiled through the bundled templates
//! (snapshots), validation errors through the CLI, `issue render` output,
//! per-recipient escaping and a property test over arbitrary valid content.

use std::path::{Path, PathBuf};

use herald::config::Settings;
use herald::render::{self, CompiledIssue, Recipient, Templates};
use proptest::prelude::*;

use crate::helpers::{stderr, stdout, TestEnv};

const UNSUBSCRIBE: &str = "https://news.example.org/unsubscribe/AQAAAAAAAAAB";

fn bundled_issue_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("issues/2018-12-14-migration-news.toml")
}

/// The embedded defaults only (no local.toml, no environment).
fn settings() -> Settings {
    toml::from_str(herald::config::DEFAULT_TOML).expect("default settings")
}

fn compile_bundled() -> CompiledIssue {
    let issue = render::load_issue(&bundled_issue_path()).expect("bundled issue loads");
    let templates = Templates::bundled().expect("bundled templates");
    let out = render::compile_with(&issue, &settings(), &templates).expect("compiles");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    out.compiled
}

fn recipient(name: Option<&str>) -> Recipient<'_> {
    Recipient {
        email: "ana@example.org",
        name,
        unsubscribe_url: UNSUBSCRIBE,
        view_url: "https://news.example.org/issues/2018-12-14-migration-news",
        attributes: None,
    }
}

#[test]
fn the_bundled_issue_compiles_to_the_reviewed_html_and_text() {
    let compiled = compile_bundled();
    assert_eq!(
        compiled.subject,
        "Migration news: aid reaches Tawergha, new roots in Mariupol, a framework for return"
    );
    insta::assert_snapshot!("bundled_issue_html", compiled.html);
    insta::assert_snapshot!("bundled_issue_text", compiled.text);
}

#[test]
fn compiling_is_deterministic_and_the_compiled_issue_round_trips_through_serde() {
    let a = compile_bundled();
    let b = compile_bundled();
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    let back: CompiledIssue = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    assert_eq!(
        back.prepare().personalise(&recipient(Some("Ana"))),
        a.prepare().personalise(&recipient(Some("Ana")))
    );
}

#[test]
fn the_bundled_issue_carries_the_seed_digest_structure() {
    let c = compile_bundled();
    let (html, text) = c.prepare().personalise(&recipient(None));
    for needle in [
        "View this issue in your browser",
        "14 December 2018",
        "editor@example.org",
        "Photo: IOM/Eshaebi",
        ">Read on</a>",
        "Share on",
        "Read more</a>",
        "In the news",
        "1 Example Street",
        &format!("<a href=\"{UNSUBSCRIBE}\">Unsubscribe</a>"),
        "Hello reader,",
    ] {
        assert!(html.contains(needle), "HTML lacks {needle:?}");
    }
    for needle in [
        "14 December 2018",
        "Read on: https://example.org/news/libya-tawergha-aid",
        "In the news",
        &format!("Unsubscribe: {UNSUBSCRIBE}"),
        "Hello reader,",
    ] {
        assert!(text.contains(needle), "text lacks {needle:?}");
    }
    assert!(!html.contains("\u{27E6}") && !text.contains("\u{27E6}"));
}

#[test]
fn hostile_subscriber_names_come_out_escaped_in_html_and_verbatim_in_text() {
    let prepared = compile_bundled().prepare();
    for (name, escaped) in [
        (
            "<script>alert(1)</script>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        ("\"><img src=x>", "&quot;&gt;&lt;img src=x&gt;"),
    ] {
        let (html, text) = prepared.personalise(&recipient(Some(name)));
        assert!(html.contains(&format!("Hello {escaped},")), "{name}");
        assert!(!html.contains(name), "{name} reached the HTML unescaped");
        assert!(!html.contains("<script"), "{name}");
        assert!(text.contains(&format!("Hello {name},")), "{name}");
    }
    let (html, _) = prepared.personalise(&Recipient {
        email: "a&b\"<i>@example.org",
        ..recipient(None)
    });
    assert!(html.contains("a&amp;b&quot;&lt;i&gt;@example.org"));
}

#[test]
fn the_name_fallback_is_escaped_once_in_html_and_verbatim_in_text() {
    let source = VALID.replace(
        "date = 2018-12-14\n",
        "date = 2018-12-14\nname_fallback = \"O'Neil & <co>\"\n",
    );
    let issue = render::parse_issue("f.toml", Path::new("f.toml"), source.into_bytes()).unwrap();
    let compiled = render::compile_with(&issue, &settings(), &Templates::bundled().unwrap())
        .unwrap()
        .compiled;
    let (html, text) = compiled.prepare().personalise(&recipient(None));
    assert!(
        html.contains("Hello O&#x27;Neil &amp; &lt;co&gt;,"),
        "{html}"
    );
    assert!(text.contains("Hello O'Neil & <co>,"), "{text}");
}

#[test]
fn an_empty_postal_address_is_refused_before_compiling() {
    let env = TestEnv::bare();
    env.write("issues/ok.toml", VALID);
    let out = env
        .herald()
        .env("HERALD__NEWSLETTER__POSTAL_ADDRESS", " ")
        .args(["issue", "check", "issues/ok.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("newsletter.postal_address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn view_url_is_under_the_public_base_url() {
    let mut s = settings();
    s.http.public_base_url = "https://news.example.org/".into();
    assert_eq!(
        render::view_url(&s, "2018-12-14-migration-news"),
        "https://news.example.org/issues/2018-12-14-migration-news"
    );
}

// --- the CLI ---------------------------------------------------------------

#[test]
fn issue_check_accepts_the_bundled_issue_with_the_built_in_templates() {
    let env = TestEnv::bare();
    let out = env
        .herald()
        .args(["issue", "check"])
        .arg(bundled_issue_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(
        o.contains("ok: slug 2018-12-14-migration-news, 7 blocks"),
        "{o}"
    );
    assert!(o.contains("built-in templates/issue.mjml"), "{o}");
    assert!(
        !env.path().join("herald.db").exists(),
        "check touches no database"
    );
}

/// Unfold a header block and return the value of `name`.
fn header(head: &str, name: &str) -> Option<String> {
    head.replace("\r\n ", " ")
        .replace("\r\n\t", " ")
        .split("\r\n")
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
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

#[test]
fn issue_render_writes_html_text_and_a_multipart_alternative_sample_message() {
    let env = TestEnv::bare();
    let out = env
        .herald()
        .args(["issue", "render"])
        .arg(bundled_issue_path())
        .args(["--out", "site"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = env.path().join("site");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let text = std::fs::read_to_string(dir.join("index.txt")).unwrap();
    let eml = std::fs::read_to_string(dir.join("sample.eml")).unwrap();
    assert!(html.starts_with("<!doctype html>"), "{}", &html[..40]);
    assert!(html.contains("Hello Ana Example,"));
    assert!(text.contains("Hello Ana Example,"));

    let (head, body) = eml.split_once("\r\n\r\n").expect("header and body");
    assert_eq!(
        header(head, "Message-ID").as_deref(),
        Some("<2018-12-14-migration-news.sample@example.org>")
    );
    assert_eq!(
        header(head, "To").as_deref(),
        Some("\"Ana Example\" <ana@example.org>")
    );
    let list_unsubscribe = header(head, "List-Unsubscribe").unwrap();
    let unsubscribe_url = list_unsubscribe.trim_matches(['<', '>']).to_string();
    assert!(
        unsubscribe_url.starts_with("http://127.0.0.1:8080/unsubscribe/"),
        "{unsubscribe_url}"
    );
    let content_type = header(head, "Content-Type").unwrap();
    assert!(
        content_type.starts_with("multipart/alternative;"),
        "{content_type}"
    );
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"')
        .to_string();
    let parts: Vec<&str> = body
        .split(&format!("--{boundary}"))
        .map(str::trim_start)
        .filter(|p| !p.is_empty() && !p.starts_with("--"))
        .collect();
    assert_eq!(parts.len(), 2, "two alternatives");
    let (plain_head, plain_body) = parts[0].split_once("\r\n\r\n").unwrap();
    let (html_head, html_body) = parts[1].split_once("\r\n\r\n").unwrap();
    assert!(header(plain_head, "Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(header(html_head, "Content-Type")
        .unwrap()
        .starts_with("text/html"));
    let plain = decode_qp(plain_body.trim_end());
    assert!(
        plain.contains(&format!("Unsubscribe: {unsubscribe_url}")),
        "the text part shows the same unsubscribe link"
    );
    let html_part = decode_qp(html_body.trim_end());
    assert!(html_part.contains(&format!("href=\"{unsubscribe_url}\"")));
}

#[test]
fn issue_preview_prints_the_sample_text_or_html() {
    let env = TestEnv::bare();
    let out = env
        .herald()
        .args(["issue", "preview"])
        .arg(bundled_issue_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Hello Ana Example, here is the latest issue."));
    let out = env
        .herald()
        .args(["issue", "preview", "--html"])
        .arg(bundled_issue_path())
        .output()
        .unwrap();
    assert!(stdout(&out).starts_with("<!doctype html>"));
}

const VALID: &str = r#"subject = "Hello"
preheader = "Pre"
date = 2018-12-14

[[blocks]]
type = "story"
headline = "A headline"
body = "Some *text*."
"#;

/// Write `contents` as `bad.toml`, run `issue check` on it, expect exit 2
/// and every `expected` fragment in stderr.
fn check_fails(contents: &str, expected: &[&str]) {
    let env = TestEnv::bare();
    env.write("issues/bad.toml", contents);
    let out = env
        .herald()
        .args(["issue", "check", "issues/bad.toml"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
}

#[test]
fn a_minimal_issue_passes_the_check() {
    let env = TestEnv::bare();
    env.write("issues/ok.toml", VALID);
    let out = env
        .herald()
        .args(["issue", "check", "issues/ok.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_missing_headline_is_exit_2_naming_file_line_and_field() {
    check_fails(
        &VALID.replace("headline = \"A headline\"\n", ""),
        &["issues/bad.toml:5: blocks[1].headline: missing"],
    );
}

#[test]
fn a_relative_image_url_is_exit_2_naming_file_line_and_field() {
    check_fails(
        &format!("{VALID}image = \"images/photo.jpg\"\nimage_alt = \"A photo\"\n"),
        &["issues/bad.toml:9: blocks[1].image: `images/photo.jpg` is not an absolute http(s):// URL"],
    );
}

#[test]
fn an_image_without_alt_text_is_exit_2() {
    check_fails(
        &format!("{VALID}image = \"https://example.org/p.jpg\"\n"),
        &["issues/bad.toml:9: blocks[1].image_alt: missing"],
    );
}

#[test]
fn an_unknown_block_type_is_exit_2_naming_it() {
    check_fails(
        &format!("{VALID}\n[[blocks]]\ntype = \"gallery\"\n"),
        &["issues/bad.toml:11: blocks[2].type: unknown block type `gallery` (expected story, quote, promo, news or text)"],
    );
}

#[test]
fn a_block_without_type_is_exit_2() {
    check_fails(
        &format!("{VALID}\n[[blocks]]\nheadline = \"x\"\n"),
        &["issues/bad.toml:10: blocks[2].type: missing"],
    );
}

#[test]
fn a_key_the_block_type_does_not_use_is_exit_2() {
    check_fails(
        &format!("{VALID}button_label = \"Go\"\n"),
        &["issues/bad.toml:9: blocks[1].button_label: is not used by a `story` block"],
    );
}

#[test]
fn an_unknown_key_is_exit_2_naming_it() {
    check_fails(
        &format!("{VALID}headlin = \"typo\"\n"),
        &["issues/bad.toml:9: blocks[1].headlin: unknown field `headlin`"],
    );
    check_fails(
        &format!("sender = \"x\"\n{VALID}"),
        &["issues/bad.toml:1: sender: unknown field `sender`"],
    );
}

#[test]
fn missing_subject_preheader_and_date_are_all_reported_at_once() {
    check_fails(
        "[[blocks]]\ntype = \"text\"\nbody = \"x\"\n",
        &[
            "issues/bad.toml:1: subject: missing",
            "issues/bad.toml:1: preheader: missing",
            "issues/bad.toml:1: date: missing",
        ],
    );
}

#[test]
fn a_date_with_a_time_or_as_text_is_exit_2() {
    check_fails(
        &VALID.replace("2018-12-14", "2018-12-14T10:00:00Z"),
        &["issues/bad.toml:3: date: must be a plain date"],
    );
    check_fails(
        &VALID.replace("2018-12-14", "\"14 December\""),
        &["issues/bad.toml:3: date:"],
    );
}

#[test]
fn a_line_break_in_the_subject_is_exit_2() {
    check_fails(
        &VALID.replace(
            "subject = \"Hello\"",
            "subject = \"Hello\\nBcc: x@example.org\"",
        ),
        &["issues/bad.toml:1: subject: must be one line of text"],
    );
}

#[test]
fn a_relative_link_in_a_markdown_body_names_the_line_inside_the_body() {
    let body = "body = \"\"\"\nFirst paragraph.\n\nSee [the report](/report.pdf).\n\"\"\"\n";
    check_fails(
        &VALID.replace("body = \"Some *text*.\"\n", body),
        &["issues/bad.toml:11: blocks[1].body: link `/report.pdf` is not an absolute http(s):// or mailto: URL"],
    );
}

#[test]
fn raw_html_in_markdown_is_exit_2() {
    check_fails(
        &VALID.replace("Some *text*.", "Some <b>bold</b> text."),
        &["issues/bad.toml:8: blocks[1].body: raw HTML `<b>` is not allowed"],
    );
}

#[test]
fn a_toml_syntax_error_is_exit_2_with_its_line() {
    check_fails(
        &format!("{VALID}headline = \"unterminated\n"),
        &["issues/bad.toml:9: blocks[1].headline:"],
    );
}

#[test]
fn a_bad_slug_is_exit_2() {
    check_fails(
        &format!("slug = \"Bad Slug\"\n{VALID}"),
        &["issues/bad.toml:1: slug: `Bad Slug` may only contain a-z, 0-9 and -"],
    );
}

#[test]
fn reserved_placeholder_brackets_in_an_issue_are_exit_2() {
    check_fails(
        &VALID.replace("A headline", "A \u{27E6}herald:email\u{27E7} headline"),
        &["issues/bad.toml:7: issue: the characters"],
    );
}

#[test]
fn news_items_need_source_text_and_absolute_url() {
    check_fails(
        &format!(
            "{VALID}\n[[blocks]]\ntype = \"news\"\n\n[[blocks.items]]\nsource = \"AP\"\ntext = \"x\"\nurl = \"example.org/a\"\n\n[[blocks.items]]\nsource = \"AFP\"\n"
        ),
        &[
            "issues/bad.toml:16: blocks[2].items[1].url: `example.org/a` is not an absolute http(s):// URL",
            "issues/bad.toml:18: blocks[2].items[2].text: missing",
        ],
    );
}

#[test]
fn a_missing_issue_file_is_exit_2() {
    let env = TestEnv::bare();
    let out = env
        .herald()
        .args(["issue", "check", "nope.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
}

#[test]
fn an_unknown_mjml_tag_in_an_operator_template_is_exit_2_naming_template_and_position() {
    let env = TestEnv::bare();
    env.write("issues/ok.toml", VALID);
    let layout =
        include_str!("../../templates/issue.mjml").replacen("<mj-divider />", "<mj-devider />", 1);
    let line = layout
        .lines()
        .position(|l| l.contains("<mj-devider"))
        .unwrap()
        + 1;
    env.write("templates/issue.mjml", layout);
    let out = env
        .herald()
        .args(["issue", "render", "issues/ok.toml", "--out", "site"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "templates/issue.mjml:{line}:9: unknown MJML tag <mj-devider>"
        )),
        "{err}"
    );
    assert!(!env.path().join("site").exists(), "nothing written");
}

#[test]
fn an_operator_template_without_an_unsubscribe_link_is_refused() {
    let env = TestEnv::bare();
    env.write("issues/ok.toml", VALID);
    env.write(
        "templates/issue.txt",
        "{{ issue.subject }}\n{% for b in blocks %}{{ b.type }}\n{% endfor %}",
    );
    let out = env
        .herald()
        .args(["issue", "check", "issues/ok.toml"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("templates/issue.txt: the text twin must show the unsubscribe link"),
        "{err}"
    );
}

#[test]
fn operator_templates_in_the_working_directory_win_over_the_built_in_ones() {
    let env = TestEnv::bare();
    env.write("issues/ok.toml", VALID);
    env.write(
        "templates/issue.txt",
        "CUSTOM {{ issue.subject }}\nUnsubscribe: {{ recipient.unsubscribe_url }}\n",
    );
    let out = env
        .herald()
        .args(["issue", "preview", "issues/ok.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("CUSTOM Hello\n"),
        "{}",
        stdout(&out)
    );
}

// --- arbitrary valid content -------------------------------------------------

/// TOML basic string (JSON string escapes are valid TOML). `{{` opens an
/// attribute placeholder in issue text, so arbitrary text never holds one.
fn q(s: &str) -> String {
    let mut s = s.to_string();
    while s.contains("{{") {
        s = s.replace("{{", "{ {");
    }
    serde_json::to_string(&s).unwrap()
}

/// One-line text with HTML, template and Markdown specials, Unicode and an
/// invisible character.
fn line() -> impl Strategy<Value = String> {
    "[A-Za-z0-9é中🙂][A-Za-z0-9 <>&\"'{}%#*_\\\\/é中🙂\u{200B}-]{0,40}"
}

/// Markdown with no raw HTML and no link syntax (so always valid).
fn markdown() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 \n&\"'{}%#*_>\\\\`~é中🙂-]{0,200}"
}

fn url() -> impl Strategy<Value = String> {
    "[a-z0-9/_-]{0,20}(\\?a=[a-z]{1,5}&b=[0-9]{1,3})?"
        .prop_map(|path| format!("https://example.org/{path}"))
}

fn block() -> impl Strategy<Value = String> {
    prop_oneof![
        (line(), line(), markdown(), url(), proptest::option::of(line())).prop_map(
            |(headline, alt, body, u, dateline)| {
                let dateline = dateline
                    .map(|d| format!("dateline = {}\n", q(&d)))
                    .unwrap_or_default();
                format!(
                    "[[blocks]]\ntype = \"story\"\nheadline = {}\nimage = {}\nimage_alt = {}\nbody = {}\nread_on = {}\n{dateline}share = [{{ label = {}, url = {} }}]\n",
                    q(&headline), q(&u), q(&alt), q(&body), q(&u), q(&alt), q(&u)
                )
            }
        ),
        (line(), line(), url()).prop_map(|(text, who, u)| format!(
            "[[blocks]]\ntype = \"quote\"\ntext = {}\nwho = {}\nwhere = {}\nlink = {}\nlink_label = {}\n",
            q(&text), q(&who), q(&who), q(&u), q(&text)
        )),
        (line(), markdown(), line(), url()).prop_map(|(title, body, label, u)| format!(
            "[[blocks]]\ntype = \"promo\"\ntitle = {}\nbody = {}\nbutton_label = {}\nbutton_url = {}\nimage = {}\nimage_alt = {}\n",
            q(&title), q(&body), q(&label), q(&u), q(&u), q(&label)
        )),
        proptest::collection::vec((line(), line(), url()), 1..4).prop_map(|items| {
            let mut s = "[[blocks]]\ntype = \"news\"\n".to_string();
            for (source, text, u) in items {
                s.push_str(&format!(
                    "[[blocks.items]]\nsource = {}\ntext = {}\nurl = {}\n",
                    q(&source), q(&text), q(&u)
                ));
            }
            s
        }),
        (proptest::option::of(line()), markdown()).prop_map(|(title, body)| format!(
            "[[blocks]]\ntype = \"text\"\n{}body = {}\n",
            title.map(|t| format!("title = {}\n", q(&t))).unwrap_or_default(),
            q(&body)
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_valid_content_compiles_and_the_text_always_carries_the_unsubscribe_url(
        subject in line(),
        preheader in line(),
        fallback in line(),
        blocks in proptest::collection::vec(block(), 1..6),
        name in proptest::option::of(line()),
    ) {
        let source = format!(
            "subject = {}\npreheader = {}\ndate = 2020-02-29\nname_fallback = {}\n\n{}",
            q(&subject), q(&preheader), q(&fallback), blocks.join("\n")
        );
        let issue = render::parse_issue("prop.toml", Path::new("prop.toml"), source.clone().into_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{source}")))?;
        let templates = Templates::bundled().unwrap();
        let compiled = render::compile_with(&issue, &settings(), &templates)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{source}")))?
            .compiled;
        let (html, text) = compiled.prepare().personalise(&recipient(name.as_deref()));
        prop_assert!(!text.trim().is_empty());
        prop_assert!(text.contains(UNSUBSCRIBE), "{}", text);
        let href = format!("href=\"{UNSUBSCRIBE}\"");
        prop_assert!(html.contains(&href), "no unsubscribe link in the HTML");
        let bracket = '\u{27E6}';
        prop_assert!(!html.contains(bracket) && !text.contains(bracket), "a placeholder was left");
        prop_assert!(!html.contains("\\u{"), "mrml escaped a character: {}", html);
    }
}
