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

/// A test CA and a server certificate it signed, made with `openssl`.
struct Pki {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn make_pki(dir: &Path, name: &str, san: &str) -> Pki {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=herald test CA"])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")),
    );
    run_ok(
        Command::new("openssl")
            .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=relay"])
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")),
    );
    let ext = dir.join(format!("{name}-ext.cnf"));
    std::fs::write(&ext, format!("subjectAltName = {san}\n")).unwrap();
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2"])
            .arg("-in")
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(p("server.pem")),
    );
    Pki {
        ca: p("ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
    }
}

/// aiosmtpd running `interop.py serve` with extra arguments; stops when
/// dropped.
struct Aiosmtpd {
    child: std::process::Child,
    port: u16,
    inbox: std::path::PathBuf,
}

impl Aiosmtpd {
    fn start(inbox: &Path, args: &[&std::ffi::OsStr]) -> Aiosmtpd {
        let mut child = Command::new("python3")
            .arg(interop_script())
            .arg("serve")
            .arg(inbox)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (installed by .ci/run)");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port: u16 = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("aiosmtpd did not start: {first:?}"));
        Aiosmtpd {
            child,
            port,
            inbox: inbox.to_path_buf(),
        }
    }

    /// (.eml count, contents of every .meta file)
    fn received(&self) -> (usize, Vec<String>) {
        let Ok(entries) = std::fs::read_dir(&self.inbox) else {
            return (0, Vec::new());
        };
        let mut emls = 0;
        let mut metas = Vec::new();
        for e in entries {
            let path = e.unwrap().path();
            match path.extension().and_then(|x| x.to_str()) {
                Some("eml") => emls += 1,
                Some("meta") => metas.push(std::fs::read_to_string(&path).unwrap()),
                _ => {}
            }
        }
        (emls, metas)
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `herald send --live` of a fresh issue to 5 subscribers through
/// 127.0.0.1:`port` with these TLS settings and the relay's credentials.
fn tls_send(
    env: &TestEnv,
    slug: &str,
    port: u16,
    tls: &str,
    ca_file: Option<&Path>,
) -> std::process::Output {
    let issue = write_issue(env, slug);
    let mut cmd = env.herald();
    smtp_env(&mut cmd, port);
    cmd.env("HERALD__SMTP__TLS", tls)
        .env("HERALD__SMTP__USERNAME", "herald")
        .env("HERALD__SMTP__PASSWORD", "s3cret-relay-pass")
        .env("HERALD__SMTP__CONNECT_TIMEOUT_SECS", "5")
        .env("HERALD__SMTP__SEND_TIMEOUT_SECS", "5")
        .env("HERALD__SENDER__CONCURRENCY", "2");
    if let Some(ca) = ca_file {
        cmd.env("HERALD__SMTP__CA_FILE", ca);
    }
    cmd.args(["send", "--live", "--yes"])
        .arg(&issue)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

#[test]
fn starttls_and_implicit_tls_with_auth_plain_and_login_deliver_to_aiosmtpd() {
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let pki = make_pki(env.path(), "good", "IP:127.0.0.1,DNS:localhost");
    let cases: [(&str, &str, &str); 3] = [
        ("starttls", "PLAIN", "--starttls"),
        ("starttls", "LOGIN", "--starttls"),
        ("tls", "PLAIN", "--implicit"),
    ];
    for (n, (tls, mechanism, mode)) in cases.into_iter().enumerate() {
        let inbox = env.path().join(format!("inbox-{n}"));
        let server = Aiosmtpd::start(
            &inbox,
            &[
                mode.as_ref(),
                pki.cert.as_os_str(),
                pki.key.as_os_str(),
                "--auth".as_ref(),
                mechanism.as_ref(),
            ],
        );
        let out = tls_send(&env, &format!("tls{n}"), server.port, tls, Some(&pki.ca));
        let case = format!("{tls} + AUTH {mechanism}");
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let (count, metas) = server.received();
        assert_eq!(count, 5, "{case}: messages saved by aiosmtpd");
        for meta in &metas {
            assert!(meta.contains("tls=yes"), "{case}: {meta}");
            assert!(
                meta.contains(&format!("mechanism={mechanism}")),
                "{case}: {meta}"
            );
            assert!(meta.contains("login=herald"), "{case}: {meta}");
        }
        assert_eq!(metas.len(), 5);
    }
}

#[test]
fn an_untrusted_or_wrong_name_certificate_and_a_missing_starttls_are_refused() {
    let env = TestEnv::new();
    seed_subscribers(&env, 5);
    let good = make_pki(env.path(), "good", "IP:127.0.0.1,DNS:localhost");
    let wrong = make_pki(env.path(), "wrong", "DNS:mail.example.org");

    // A CA herald was not told about.
    let inbox = env.path().join("inbox-untrusted");
    let server = Aiosmtpd::start(
        &inbox,
        &[
            "--starttls".as_ref(),
            good.cert.as_os_str(),
            good.key.as_os_str(),
            "--auth".as_ref(),
            "PLAIN".as_ref(),
        ],
    );
    let started = std::time::Instant::now();
    let out = tls_send(&env, "untrusted", server.port, "starttls", None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("certificate is not trusted") && err.contains("smtp.ca_file"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused at once, not retried"
    );
    assert_eq!(server.received().0, 0);

    // Trusted CA, but the certificate is for another name.
    let inbox = env.path().join("inbox-wrong");
    let server = Aiosmtpd::start(
        &inbox,
        &[
            "--implicit".as_ref(),
            wrong.cert.as_os_str(),
            wrong.key.as_os_str(),
        ],
    );
    let out = tls_send(&env, "wrongname", server.port, "tls", Some(&wrong.ca));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("certificate is not trusted for `127.0.0.1`") && err.contains("smtp.ca_file"),
        "{err}"
    );
    assert_eq!(server.received().0, 0);

    // No STARTTLS on offer: never falls back to plain text.
    let inbox = env.path().join("inbox-plain");
    let server = Aiosmtpd::start(&inbox, &[]);
    let out = tls_send(&env, "nostarttls", server.port, "starttls", Some(&good.ca));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not offer STARTTLS"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.received().0, 0);

    // A ca_file that is not PEM is bad configuration.
    let not_pem = env.write("not-a-ca.pem", "hello");
    let out = tls_send(&env, "badca", server.port, "starttls", Some(&not_pem));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("smtp.ca_file"), "{}", stderr(&out));
}
