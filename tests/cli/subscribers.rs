//! Subscriber management through the CLI: add, list, unsubscribe, import,
//! export.

use herald::domain::{SubscriberEmail, SubscriberStatus, UnsubscribeSource};

use crate::helpers::{sample_subscribers, stderr, stdout, TestEnv};

#[test]
fn add_list_unsubscribe_round_trip() {
    let env = TestEnv::new();
    env.herald().arg("init").assert().success();
    let out = env
        .herald()
        .args([
            "subscribers",
            "add",
            "  Ana.Silva@Example.ORG ",
            "--name",
            "Ana Silva",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("added Ana.Silva@example.org"));

    // Same address in another case is the same subscriber.
    let out = env
        .herald()
        .args(["subscribers", "add", "ana.silva@example.org"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("already subscribed"),
        "{}",
        stdout(&out)
    );

    let out = env
        .herald()
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["email"], "Ana.Silva@example.org");
    assert_eq!(list[0]["name"], "Ana Silva");
    assert_eq!(list[0]["status"], "active");

    env.herald()
        .args(["subscribers", "unsubscribe", "ANA.SILVA@example.org"])
        .assert()
        .success()
        .stdout(predicates::str::contains("unsubscribed"));
    // Idempotent.
    env.herald()
        .args(["subscribers", "unsubscribe", "ana.silva@example.org"])
        .assert()
        .success()
        .stdout(predicates::str::contains("already unsubscribed"));

    let out = env
        .herald()
        .args([
            "subscribers",
            "list",
            "--status",
            "unsubscribed",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "email,name,status,created_at,updated_at,unsubscribed_at,attributes"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("Ana.Silva@example.org,Ana Silva,unsubscribed,"),
        "{row}"
    );
    assert_eq!(lines.next(), None);
    let active = env
        .herald()
        .args(["subscribers", "list", "--status", "active"])
        .output()
        .unwrap();
    assert_eq!(stdout(&active).trim(), "no subscribers");

    // Adding them again does not silently re-subscribe them.
    env.herald()
        .args(["subscribers", "add", "ana.silva@example.org"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("is unsubscribed"));
}

#[test]
fn bad_addresses_and_names_are_refused_with_exit_2() {
    let env = TestEnv::new();
    for bad in [
        "not-an-address",
        "a@b",
        "x@example.org\r\nBcc: y@example.org",
    ] {
        let out = env
            .herald()
            .args(["subscribers", "add", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(stderr(&out).contains("EMAIL:"), "{}", stderr(&out));
    }
    env.herald()
        .args([
            "subscribers",
            "add",
            "ok@example.org",
            "--name",
            "Evil\nBcc: x@example.org",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--name"));
    env.herald()
        .args(["subscribers", "unsubscribe", "not an address"])
        .assert()
        .code(2);
}

#[test]
fn unsubscribing_an_unknown_address_records_a_suppression_that_import_respects() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .args(["subscribers", "unsubscribe", "Nobody@Example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is not a subscriber; recorded as unsubscribed"),
        "{}",
        stdout(&out)
    );
    // Loaded before the audience: the import leaves the address out.
    let file = env.write(
        "list.csv",
        "email,name
nobody@example.org,No Body
ana@example.org,Ana
",
    );
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .herald()
        .args([
            "subscribers",
            "list",
            "--status",
            "active",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("ana@example.org"));
    assert!(
        !stdout(&out).to_lowercase().contains("nobody@example.org"),
        "{}",
        stdout(&out)
    );
    // Again: idempotent.
    let out = env
        .herald()
        .args(["subscribers", "unsubscribe", "nobody@example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("already unsubscribed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn importing_the_sample_file_gives_exact_counts_and_line_numbers() {
    let env = TestEnv::new();
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(sample_subscribers())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "imported 36, updated 0, unchanged 0, rejected 3 (1 duplicate rows merged)"
    );
    let err = stderr(&out);
    assert!(err.contains("sample-subscribers.csv:13: rejected: email: `not-an-address` is not a valid email address"), "{err}");
    assert!(
        err.contains("sample-subscribers.csv:30: rejected: has 2 fields, the header has 4"),
        "{err}"
    );
    assert!(err.contains("sample-subscribers.csv:36: rejected: email: email address contains a control character"), "{err}");

    // The duplicate row (line 24, other case) was merged into the first one:
    // its later city wins.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = env.store().await;
        let amira = store
            .find_subscriber(&SubscriberEmail::parse("amira.haddad@example.org").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(amira.attributes["city"], "Sfax");
        assert_eq!(amira.attributes["language"], "fr");
        assert_eq!(store.subscriber_counts().await.unwrap()["active"], 36);
    });

    // Importing the same file again changes nothing.
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(sample_subscribers())
        .output()
        .unwrap();
    assert!(
        stdout(&out).starts_with("imported 0, updated 0, unchanged 36, rejected 3"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn reimport_updates_names_but_never_reactivates_the_unsubscribed_or_bounced() {
    let env = TestEnv::new();
    let first = env.write(
        "first.csv",
        "email,name,city\nkeep@example.org,Keep,Oslo\nleft@example.org,Left,Rome\nbounce@example.org,Bounce,Lima\n",
    );
    env.herald()
        .args(["subscribers", "import"])
        .arg(&first)
        .assert()
        .success();
    env.herald()
        .args(["subscribers", "unsubscribe", "left@example.org"])
        .assert()
        .success();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = env.store().await;
        let b = store
            .find_subscriber(&SubscriberEmail::parse("bounce@example.org").unwrap())
            .await
            .unwrap()
            .unwrap();
        store
            .set_subscriber_status(b.id, SubscriberStatus::Bounced, UnsubscribeSource::Bounce)
            .await
            .unwrap();
    });

    let second = env.write(
        "second.csv",
        "email,name,city\nkeep@example.org,Keep Renamed,Oslo\nleft@example.org,Left Renamed,Rome\nbounce@example.org,Bounce,Lima\nnew@example.org,New,Quito\n",
    );
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&second)
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).trim(),
        "imported 1, updated 2, unchanged 1, rejected 0"
    );

    let out = env
        .herald()
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_email = |e: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["email"] == e)
            .unwrap()
            .clone()
    };
    assert_eq!(by_email("keep@example.org")["name"], "Keep Renamed");
    assert_eq!(by_email("left@example.org")["name"], "Left Renamed");
    assert_eq!(by_email("left@example.org")["status"], "unsubscribed");
    assert!(by_email("left@example.org")["unsubscribed_at"].is_string());
    assert_eq!(by_email("bounce@example.org")["status"], "bounced");
    assert_eq!(by_email("new@example.org")["status"], "active");
}

#[test]
fn an_import_can_record_unsubscribes_from_another_tool() {
    let env = TestEnv::new();
    let file = env.write(
        "migrated.csv",
        "email,name,status\na@example.org,A,active\nb@example.org,B,unsubscribed\nc@example.org,C,deleted\n",
    );
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).trim(),
        "imported 2, updated 0, unchanged 0, rejected 1"
    );
    assert!(stderr(&out)
        .contains("migrated.csv:4: rejected: status: unknown subscriber status `deleted`"));
    let out = env
        .herald()
        .args([
            "subscribers",
            "list",
            "--status",
            "unsubscribed",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("b@example.org,B,unsubscribed"));
}

#[test]
fn a_file_that_is_not_csv_or_lacks_an_email_column_writes_nothing() {
    let env = TestEnv::new();
    env.herald().arg("init").assert().success();
    let no_email = env.write("people.csv", "name,city\nAna,Oslo\n");
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&no_email)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("people.csv:1: no `email` column in the header (found: name, city)"),
        "{}",
        stderr(&out)
    );

    let binary = env.write(
        "photo.csv",
        [0x89u8, b'P', b'N', b'G', 0, 0, 0, 13, 0xff, 0xfe],
    );
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&binary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("photo.csv: not a CSV file"),
        "{}",
        stderr(&out)
    );

    let missing = env.path().join("missing.csv");
    env.herald()
        .args(["subscribers", "import"])
        .arg(&missing)
        .assert()
        .code(2);

    let out = env
        .herald()
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "[]");
}

#[test]
fn export_then_import_into_a_fresh_database_round_trips() {
    let env = TestEnv::new();
    env.herald()
        .args(["subscribers", "import"])
        .arg(sample_subscribers())
        .assert()
        .success();
    env.herald()
        .args(["subscribers", "unsubscribe", "ben.okafor@example.net"])
        .assert()
        .success();
    let exported = env
        .herald()
        .args(["subscribers", "export"])
        .output()
        .unwrap();
    assert!(exported.status.success());

    let other = TestEnv::new();
    let file = other.write("export.csv", &exported.stdout);
    let out = other
        .herald()
        .args(["subscribers", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).trim(),
        "imported 36, updated 0, unchanged 0, rejected 0"
    );
    let list = |e: &TestEnv| {
        let out = e
            .herald()
            .args(["subscribers", "list", "--format", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["email"].clone(),
                    s["name"].clone(),
                    s["status"].clone(),
                    s["attributes"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&env), list(&other));
}

#[test]
fn listing_into_a_closed_pipe_is_not_an_error() {
    let env = TestEnv::new();
    env.herald()
        .args(["subscribers", "import"])
        .arg(sample_subscribers())
        .assert()
        .success();
    let mut child = env
        .command()
        .args(["subscribers", "export"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn rejected_rows_name_their_physical_line_in_lf_and_crlf_files_alike() {
    // A bad address on line 5, after a quoted field spanning lines 3-4
    // (rejected too: a name may not hold a line break).
    let rows = [
        "email,name",
        "ana@example.org,Ana",
        "bob@example.org,\"Bob",
        "the Builder\"",
        "not-an-address,Nobody",
        "cy@example.org,Cy",
    ];
    for (ending, name) in [("\n", "lf.csv"), ("\r\n", "crlf.csv")] {
        let env = TestEnv::new();
        let file = env.write(name, rows.join(ending) + ending);
        let out = env
            .herald()
            .args(["subscribers", "import"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{name}:5: rejected: email: `not-an-address`")),
            "{name}: {err}"
        );
        // The record spanning lines 3-4 is reported where it starts.
        assert!(
            err.contains(&format!("{name}:3: rejected: name")),
            "{name}: {err}"
        );
        assert!(
            stdout(&out).starts_with("imported 2, updated 0, unchanged 0, rejected 2"),
            "{name}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn a_semicolon_separated_file_gets_a_hint_and_imports_with_delimiter() {
    let env = TestEnv::new();
    let file = env.write(
        "excel.csv",
        "email;name\r\nana@example.org;Ana\r\nbob@example.org;Bob\r\n",
    );
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the header looks `;`-separated: pass --delimiter ';'"),
        "{}",
        stderr(&out)
    );
    let out = env
        .herald()
        .args(["subscribers", "import", "--delimiter", ";"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("imported 2, updated 0, unchanged 0, rejected 0"),
        "{}",
        stdout(&out)
    );
    env.herald()
        .args(["subscribers", "import", "--delimiter", "ab"])
        .arg(&file)
        .assert()
        .code(2);
}

#[test]
fn a_reimport_merges_nested_attributes_and_drops_nulled_keys_the_same_on_both_backends() {
    let env = TestEnv::new();
    let first = env.write(
        "first.csv",
        "email,attributes\nana@example.org,\"{\"\"p\"\": {\"\"a\"\": 1}, \"\"gone\"\": \"\"x\"\", \"\"keep\"\": true}\"\n",
    );
    let second = env.write(
        "second.csv",
        "email,attributes\nana@example.org,\"{\"\"p\"\": {\"\"b\"\": 2}, \"\"gone\"\": null}\"\n",
    );
    for file in [&first, &second] {
        let out = env
            .herald()
            .args(["subscribers", "import"])
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = env
        .herald()
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list[0]["attributes"],
        serde_json::json!({"p": {"a": 1, "b": 2}, "keep": true}),
        "{list}"
    );
}
