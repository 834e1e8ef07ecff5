//! Configuration layering and its errors, through the CLI.

use crate::helpers::{stderr, stdout, TestEnv};

#[test]
fn an_unknown_environment_key_is_exit_2_naming_the_key() {
    let env = TestEnv::bare();
    let out = env
        .herald()
        .env("HERALD__SENDER__RATE", "5")
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("sender.rate"), "{err}");
    assert!(err.contains("HERALD__"), "{err}");
    assert!(
        !env.path().join("herald.db").exists(),
        "nothing may be written on bad config"
    );
}

#[test]
fn an_unknown_key_in_a_config_file_is_exit_2_naming_file_and_key() {
    let env = TestEnv::new();
    let file = env.write("extra.toml", "[smtp]\nhots = \"mail.example.org\"\n");
    let out = env
        .herald()
        .arg("--config")
        .arg(&file)
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("smtp.hots"), "{err}");
    assert!(err.contains("extra.toml"), "{err}");
}

#[test]
fn a_bad_value_is_exit_2_naming_the_key() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .env("HERALD__SENDER__CONCURRENCY", "many")
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sender.concurrency"),
        "{}",
        stderr(&out)
    );

    let out = env
        .herald()
        .env("HERALD__SENDER__RATE_PER_SECOND", "0")
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sender.rate_per_second"),
        "{}",
        stderr(&out)
    );

    let out = env
        .herald()
        .env("HERALD__TRANSPORT__KIND", "pigeon")
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("transport.kind"), "{}", stderr(&out));
}

#[test]
fn local_toml_and_environment_override_the_defaults_in_order() {
    if crate::helpers::sqlite_only("database files named by config/local.toml and the environment")
    {
        return;
    }
    let env = TestEnv::new();
    env.write(
        "config/local.toml",
        "[database]\nurl = \"sqlite://from-local.db\"\n",
    );
    env.herald().arg("init").assert().success();
    assert!(env.path().join("from-local.db").exists());
    env.herald()
        .env("HERALD__DATABASE__URL", "sqlite://from-env.db")
        .arg("init")
        .assert()
        .success();
    assert!(env.path().join("from-env.db").exists());
}

#[test]
fn a_missing_config_file_is_exit_2() {
    let env = TestEnv::new();
    env.herald()
        .args(["--config", "nope.toml", "init"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nope.toml"));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let env = TestEnv::new();
    std::env::set_var("HERALD__SMTP__PASSWORD", "hunter2-very-secret");
    std::env::set_var(
        "HERALD__UNSUBSCRIBE__SECRET",
        "signing-key-very-secret-0123456789abc",
    );
    let settings = herald::config::Settings::load(None);
    std::env::remove_var("HERALD__SMTP__PASSWORD");
    std::env::remove_var("HERALD__UNSUBSCRIBE__SECRET");
    let debug = format!("{:?}", settings.unwrap());
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        !debug.contains("signing-key-very-secret-0123456789abc"),
        "{debug}"
    );
    drop(env);
}

#[test]
fn init_is_idempotent_and_generates_one_signing_key() {
    let env = TestEnv::bare();
    let first = env.herald().arg("init").output().unwrap();
    assert!(
        stdout(&first).contains("generated and stored in the database"),
        "{}",
        stdout(&first)
    );
    let second = env.herald().arg("init").output().unwrap();
    assert!(second.status.success());
    assert!(stdout(&second).contains("unsubscribe signing key: stored in the database"));
}

#[test]
fn every_subcommand_has_help() {
    let env = TestEnv::new();
    for args in [
        vec!["--help"],
        vec!["init", "--help"],
        vec!["demo", "--help"],
        vec!["subscribers", "--help"],
        vec!["subscribers", "add", "--help"],
        vec!["subscribers", "import", "--help"],
        vec!["subscribers", "list", "--help"],
        vec!["subscribers", "unsubscribe", "--help"],
        vec!["subscribers", "export", "--help"],
    ] {
        let out = env.herald().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
    env.herald().arg("no-such-command").assert().code(2);
}
