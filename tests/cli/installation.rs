//! The installation directory: `--dir`, `HERALD_HOME` and the directory of
//! `--config` decide where the database, `config/local.toml` and the outbox
//! are; only `init` and `demo` create a database; `serve` refuses a
//! database it could not verify links with.

use std::path::Path;

use herald::token::{SigningKeys, TokenClaims};

use crate::helpers::{stderr, stdout, TestEnv};

/// Runs a command in `env`'s directory and expects exit 2 with the
/// "no herald database" message naming `db`, and no file created.
fn assert_no_database(env: &TestEnv, args: &[&str], db: &Path) {
    let out = env.herald().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    let want = format!(
        "no herald database at {} (run `herald init` there, or pass --dir)",
        db.display()
    );
    assert!(stderr(&out).contains(&want), "{args:?}: {}", stderr(&out));
    assert_eq!(stdout(&out), "", "{args:?}");
    assert!(!db.exists(), "{args:?} created {}", db.display());
}

#[test]
fn commands_other_than_init_and_demo_never_create_a_database() {
    if crate::helpers::sqlite_only("where the database file of an installation lives") {
        return;
    }
    let env = TestEnv::bare();
    let db = env.path().join("herald.db");
    for args in [
        &["run-due"][..],
        &["serve", "--bind", "127.0.0.1:0"],
        &["status"],
        &["schedule", "list"],
        &["subscribers", "list"],
        &["subscribers", "add", "ana@example.org"],
        &["abort", "some-issue"],
    ] {
        assert_no_database(&env, args, &db);
    }
    // A cron line without `cd` (run from /) names the database it expected.
    let elsewhere = TestEnv::bare();
    let out = elsewhere
        .herald()
        .env("HERALD_HOME", env.path())
        .arg("run-due")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("no herald database at {}", db.display())));

    // init creates it; then the same commands work.
    env.init();
    assert!(db.is_file());
    let out = env.herald().arg("run-due").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn dir_flag_and_herald_home_choose_the_installation_from_any_working_directory() {
    if crate::helpers::sqlite_only("where the database file of an installation lives") {
        return;
    }
    let home = TestEnv::new();
    let cwd = TestEnv::bare();
    let out = cwd
        .herald()
        .arg("--dir")
        .arg(home.path())
        .args(["subscribers", "add", "ana@example.org"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cwd
        .herald()
        .env("HERALD_HOME", home.path())
        .args(["subscribers", "list", "--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ana@example.org"), "{}", stdout(&out));
    assert!(!cwd.path().join("herald.db").exists());

    // --dir wins over HERALD_HOME; a directory without a database is exit 2.
    let out = cwd
        .herald()
        .env("HERALD_HOME", home.path())
        .args(["--dir", "no-such-dir", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let expected = cwd.path().join("no-such-dir/herald.db");
    assert!(
        stderr(&out).contains(&format!("no herald database at {}", expected.display())),
        "{}",
        stderr(&out)
    );
    assert!(!cwd.path().join("no-such-dir").exists());
    // init creates the installation directory.
    let out = cwd
        .herald()
        .args(["init", "--dir", "new/home"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.path().join("new/home/herald.db").is_file());
}

#[test]
fn relative_paths_in_settings_resolve_against_the_installation_directory() {
    if crate::helpers::sqlite_only("where the database file of an installation lives") {
        return;
    }
    let home = TestEnv::bare();
    home.write(
        "config/local.toml",
        "[database]\nurl = \"sqlite://data/list.db\"\n\n[transport]\nkind = \"outbox\"\noutbox_dir = \"spool/out\"\n",
    );
    std::fs::create_dir_all(home.path().join("data")).unwrap();
    // Custom templates in the installation's templates/ are used.
    let txt =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/issue.txt"))
            .unwrap();
    home.write(
        "templates/issue.txt",
        format!("FROM THE HOME TEMPLATE\n{txt}"),
    );
    let issue = crate::helpers::write_issue(&home, "home-paths");

    let cwd = TestEnv::bare();
    let run = |args: &[&str]| {
        cwd.herald()
            .arg("--dir")
            .arg(home.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.path().join("data/list.db").is_file());
    assert!(stdout(&out).contains(&home.path().join("data/list.db").display().to_string()));
    assert!(run(&["subscribers", "add", "ana@example.org"])
        .status
        .success());
    let out = run(&["send", issue.to_str().unwrap(), "--live", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spool: Vec<_> = std::fs::read_dir(home.path().join("spool/out"))
        .unwrap()
        .collect();
    assert_eq!(spool.len(), 1, "the outbox is under the home");
    let out = run(&["issue", "preview", issue.to_str().unwrap()]);
    assert!(
        stdout(&out).starts_with("FROM THE HOME TEMPLATE"),
        "{}",
        stdout(&out)
    );
    // Nothing landed in the working directory.
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);

    // The relay's CA file is read from the home too: a relative name that
    // exists only there is found (and checked: here it holds no PEM).
    home.write("relay-ca.pem", "not a certificate\n");
    let out = cwd
        .herald()
        .arg("--dir")
        .arg(home.path())
        .env("HERALD__SMTP__CA_FILE", "relay-ca.pem")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&home.path().join("relay-ca.pem").display().to_string())
            && err.contains("holds no PEM certificate"),
        "{err}"
    );
}

/// The README's Postfix pipe: `herald --config /etc/herald/herald.toml
/// subscribers unsubscribe-token TOKEN`, run by the mail system from its
/// own working directory, must use that installation's database and key.
#[tokio::test]
async fn a_config_file_in_another_directory_finds_its_database_and_key() {
    if crate::helpers::sqlite_only("where the database file of an installation lives") {
        return;
    }
    let install = TestEnv::bare();
    let config = install.write("herald.toml", "[database]\nurl = \"sqlite://herald.db\"\n");
    let cwd = TestEnv::bare();
    let run = |args: &[&str]| {
        cwd.herald()
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run(&["subscribers", "add", "ana@example.org"])
        .status
        .success());

    // The key `init` generated into that database signs a genuine link.
    let store = install.store().await;
    let key = store
        .meta_get("unsubscribe_signing_key")
        .await
        .unwrap()
        .expect("init generated a key");
    store.close().await;
    let token = SigningKeys::new(key.into(), None).sign(TokenClaims {
        subscriber_id: 1,
        issue_id: None,
    });
    let out = run(&["subscribers", "unsubscribe-token", &token]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("unsubscribed ana@example.org"),
        "{}",
        stdout(&out)
    );
    assert!(!cwd.path().join("herald.db").exists());
}

#[tokio::test]
async fn serve_refuses_a_database_without_a_signing_key() {
    let env = TestEnv::bare();
    // A database made without `herald init`: no generated key in it.
    env.store().await.close().await;
    let out = env
        .herald()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no unsubscribe signing key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "", "it never listened");
}

#[test]
fn the_example_local_config_lists_every_key_and_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("config/local.example.toml")).unwrap();
    let defaults = std::fs::read_to_string(root.join("config/default.toml")).unwrap();
    // Every key of the defaults (set or commented out) appears in the example.
    for line in defaults.lines() {
        let line = line.trim_start_matches('#').trim();
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.contains(' ') || key.starts_with('"') {
            continue;
        }
        assert!(
            example.contains(&format!("{key} = ")),
            "config/local.example.toml does not mention `{key}`"
        );
    }
    // It loads as a --config file (a DKIM key path is only read at send time).
    let env = TestEnv::bare();
    let out = env
        .herald()
        .arg("--config")
        .arg(root.join("config/local.example.toml"))
        .arg("--dir")
        .arg(env.path())
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn serve_binds_a_host_name_by_resolving_it() {
    use std::io::BufRead;
    let env = TestEnv::new();
    let mut child = env
        .command()
        .args(["serve", "--bind", "localhost:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("listening on http://127.0.0.1:")
            || line.starts_with("listening on http://[::1]:"),
        "{line:?}"
    );
}

#[test]
fn a_settings_variable_with_one_underscore_gets_a_warning() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .env("HERALD_SMTP_PORT", "2525")
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "environment variable HERALD_SMTP_PORT is ignored: settings variables use two underscores, e.g. HERALD__SMTP__PORT"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_from_environment_variables_name_the_variable() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .env("HERALD__SMTP__PORT", "twenty-five")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("smtp.port"), "{err}");
    assert!(err.contains("(from HERALD__SMTP__PORT)"), "{err}");
    let out = env
        .herald()
        .env("HERALD__SENDER__RATE", "5")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("(from HERALD__SENDER__RATE)"),
        "{}",
        stderr(&out)
    );
}
