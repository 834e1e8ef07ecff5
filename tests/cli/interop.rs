//! Interop with independent implementations: Python's aiosmtpd receives the
//! messages over SMTP, Python's `email` package parses them, and dkimpy
//! verifies the DKIM signatures made with a freshly generated RSA key.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::helpers::{seed_subscribers, smtp_env, stderr, write_issue, TestEnv};

fn interop_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/interop.py")
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn messages_parse_and_dkim_verify_with_independent_python_tools() {
    let env = TestEnv::new();
    let inbox = env.path().join("inbox");
    let mut server = Command::new("python3")
        .arg(interop_script())
        .arg("serve")
        .arg(&inbox)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with aiosmtpd (installed by .ci/run)");
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port: u16 = first
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("aiosmtpd did not start: {first:?}"));

    let key = env.path().join("dkim.pem");
    let public = env.path().join("dkim.pub.pem");
    run_ok(
        Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg("2048"),
    );
    run_ok(
        Command::new("openssl")
            .arg("rsa")
            .arg("-in")
            .arg(&key)
            .arg("-pubout")
            .arg("-out")
            .arg(&public),
    );
    let config = env.write(
        "interop.toml",
        format!(
            "[http]\nbind = \"127.0.0.1:8080\"\npublic_base_url = \"https://news.example.org\"\n\n\
             [dkim]\ndomain = \"example.org\"\nselector = \"herald\"\nprivate_key_path = \"{}\"\n",
            key.display()
        ),
    );

    seed_subscribers(&env, 25);
    let issue = write_issue(&env, "interop");
    let mut cmd = env.herald();
    smtp_env(&mut cmd, port);
    let out = cmd
        .arg("--config")
        .arg(&config)
        .args(["send", "--live", "--yes"])
        .arg(&issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    drop(server.stdin.take());
    let _ = server.kill();
    let _ = server.wait();

    let report = run_ok(
        Command::new("python3")
            .arg(interop_script())
            .arg("check")
            .arg(&inbox)
            .arg("25")
            .arg("--dkim-pubkey")
            .arg(&public)
            .args(["--selector", "herald", "--domain", "example.org"]),
    );
    assert!(
        report.contains("ok: 25 messages, unique Message-IDs, DKIM verified"),
        "{report}"
    );
}
