//! DKIM set-up: `herald dkim keygen` writes an owner-only key and prints a
//! DNS record that verifies what herald signs with it (dkimpy, an
//! independent verifier, checks every signature against the printed
//! records); two `[[dkim]]` keys give every message both signatures;
//! `herald dkim show` prints the same records again.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::helpers::{live_send, seed_subscribers, stderr, stdout, write_issue, TestEnv};
use crate::smtp_server::SmtpServer;

/// What keygen printed: the record's name, its value as DNS gives it to a
/// verifier (the quoted strings joined), the raw value line, and the
/// configuration lines.
struct Generated {
    name: String,
    value: String,
    quoted: String,
    config: String,
}

fn keygen(env: &TestEnv, selector: &str, algorithm: &str) -> Generated {
    let out = env
        .herald()
        .args([
            "dkim",
            "keygen",
            "--domain",
            "example.org",
            "--selector",
            selector,
        ])
        .args(["--algorithm", algorithm])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {text}"))
            .trim()
            .to_string()
    };
    let quoted = field("value:");
    // Each string at most 255 bytes, as DNS TXT data requires.
    let strings: Vec<&str> = quoted
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{quoted}");
    let config = text[text.find("\n[[dkim]]\n").expect("config lines") + 1..].to_string();
    Generated {
        name: field("name:"),
        value: strings.concat(),
        quoted,
        config,
    }
}

#[test]
fn keygen_writes_a_private_key_and_a_record_that_dkimpy_verifies_with_both_signatures() {
    let env = TestEnv::new();
    let rsa = keygen(&env, "herald-rsa", "rsa");
    let ed = keygen(&env, "herald-ed", "ed25519");
    assert!(
        rsa.value.starts_with("v=DKIM1; k=rsa; p=MII"),
        "{}",
        rsa.value
    );
    assert!(
        rsa.quoted.matches('"').count() >= 4,
        "RSA-2048 needs two strings"
    );
    assert!(ed.value.starts_with("v=DKIM1; k=ed25519; p="));
    assert_eq!(rsa.name, "herald-rsa._domainkey.example.org");
    for key in [
        "herald-rsa._domainkey.example.org.pem",
        "herald-ed._domainkey.example.org.ed25519",
    ] {
        let mode = std::fs::metadata(env.path().join("dkim").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    // Never replaced.
    let again = env
        .herald()
        .args([
            "dkim",
            "keygen",
            "--domain",
            "example.org",
            "--selector",
            "herald-ed",
        ])
        .args(["--algorithm", "ed25519"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already exists"));

    // The printed configuration lines, both keys.
    env.write(
        "config/local.toml",
        format!("{}\n{}", rsa.config, ed.config),
    );
    let show = env.herald().args(["dkim", "show"]).output().unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let shown = stdout(&show);
    for g in [&rsa, &ed] {
        assert!(shown.contains(&format!("name:  {}", g.name)), "{shown}");
        assert!(shown.contains(&format!("value: {}", g.quoted)), "{shown}");
    }

    seed_subscribers(&env, 3);
    let issue = write_issue(&env, "signed");
    let server = SmtpServer::start();
    let out = live_send(&env, &issue, server.port());
    assert!(out.status.success(), "{}", stderr(&out));
    let mut files = Vec::new();
    for (i, r) in server.received().iter().enumerate() {
        files.push(env.write(&format!("inbox/{i}.eml"), &r.data));
    }
    assert_eq!(files.len(), 3);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/dkim_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .args(&files)
        .args(["--record", &rsa.name, &rsa.value])
        .args(["--record", &ed.name, &ed.value])
        .output()
        .expect("python3 with dkimpy and PyNaCl");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report
            .matches("ok: 2 signatures (a=rsa-sha256, a=ed25519-sha256)")
            .count(),
        3,
        "{report}"
    );

    // A record that does not match the key fails: the check can fail.
    let other = keygen(&env, "other", "ed25519");
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/dkim_verify.py"))
        .arg(&files[0])
        .args(["--record", &rsa.name, &rsa.value])
        .args(["--record", &ed.name, &other.value])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn dkim_show_without_a_key_is_bad_input() {
    let env = TestEnv::new();
    let out = env.herald().args(["dkim", "show"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no DKIM key is configured"));
}

#[test]
fn a_bad_key_in_a_dkim_table_or_list_is_named() {
    let env = TestEnv::new();
    for config in [
        "[dkim]\ndomain = \"example.org\"\nselector = \"s\"\nprivate_key_path = \"k\"\nbogus = 1\n",
        "[[dkim]]\ndomain = \"example.org\"\nselector = \"s\"\nprivate_key_path = \"k\"\n\
         [[dkim]]\ndomain = \"example.org\"\nselector = \"t\"\nprivate_key_path = \"k\"\nbogus = 1\n",
        "[[dkim]]\ndomain = \"example.org\"\nselector = \"s\"\nprivate_key_path = \"k\"\n\
         [[dkim]]\ndomain = \"example.org\"\nselector = \"s\"\nprivate_key_path = \"k\"\n",
    ] {
        env.write("config/local.toml", config);
        let out = env.herald().args(["dkim", "show"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.contains("bogus") || err.contains("listed twice"),
            "{err}"
        );
    }
}
