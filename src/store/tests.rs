//! Store behaviour that needs the store's own pooled connections (which
//! nothing outside `store/` can reach): a real SQLITE_FULL reported as
//! [`StoreError::Full`] with the connection replaced, and CHECK rules still
//! enforced on every connection after an import.

use std::path::{Path, PathBuf};

use super::deliveries::Outcome;
use super::issues::{NewIssue, Registered};
use super::{now_text, Store, StoreError};
use crate::config::DatabaseSettings;

async fn open(dir: &Path) -> Store {
    Store::open(&DatabaseSettings {
        url: format!("sqlite://{}", dir.join("herald.db").display()),
        busy_timeout_ms: 5000,
        max_connections: 10,
    })
    .await
    .expect("open store")
}

async fn seed(store: &Store, dir: &Path, n: usize) {
    let mut csv = String::from("email,name\n");
    for i in 1..=n {
        csv.push_str(&format!("user{i:04}@example.org,User {i}\n"));
    }
    let file = dir.join("seed.csv");
    std::fs::write(&file, csv).unwrap();
    crate::import::import_csv(store, &file, |_| {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_fails_in_sqlites_own_words_and_every_retry_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    seed(&store, dir.path(), 200).await;
    let now = now_text();
    let Registered::Ready(issue) = store
        .register_issue(
            &NewIssue {
                slug: "full",
                subject: "Full",
                content_hash: "00",
                compiled_json: "{}",
                source_path: None,
            },
            false,
        )
        .await
        .unwrap()
    else {
        panic!("a new issue is ready");
    };
    store
        .start_live_send(issue.id, "full", "example.org", &now)
        .await
        .unwrap();
    let claimed = store.claim_due(issue.id, &now, 200, "test").await.unwrap();
    assert_eq!(claimed.len(), 200);
    // Cap every pooled connection (the four readers and the writer) at the
    // database's current size: the long
    // replies below need new pages, so the write fails with SQLITE_FULL, as
    // on a full disk.
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.sqlite_pools().0)
        .await
        .unwrap();
    let mut held = Vec::new();
    for pool in [
        store.sqlite_pools().0,
        store.sqlite_pools().0,
        store.sqlite_pools().0,
        store.sqlite_pools().0,
        store.sqlite_pools().1,
    ] {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        held.push(conn);
    }
    drop(held);
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .map(|c| Outcome::Sent {
            id: c.id,
            code: 250,
            reply: "x".repeat(2000),
        })
        .collect();
    // Each capped connection fails with SQLite's own message (never a
    // leftover transaction state); once they are all replaced, the write
    // goes through.
    let mut failures = 0;
    loop {
        match store.record_outcomes(&outcomes, &now, "test").await {
            Ok(()) => break,
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("database or disk is full"), "{text}");
                assert!(matches!(e, StoreError::Full(_)), "{e:?}");
                failures += 1;
                assert!(failures <= 4, "a clean connection should have succeeded");
            }
        }
    }
    assert!(failures >= 1, "the cap did not bite");
    let counts = store.delivery_counts(issue.id).await.unwrap();
    assert_eq!(counts.sent, 200);
    assert_eq!(counts.claimed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_checks_are_enforced_again_on_every_connection_after_an_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sample-subscribers.csv");
    let report = crate::import::import_csv(&store, &sample, |_| {})
        .await
        .unwrap();
    assert_eq!(report.counts.inserted, 36);
    // Hold every pooled connection at once, so the one that imported is
    // among them, and try to break a CHECK on each.
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(store.sqlite_pools().0.acquire().await.unwrap());
    }
    for conn in conns.iter_mut() {
        let err = sqlx::query("UPDATE subscribers SET status = 'bogus' WHERE id = 1")
            .execute(&mut **conn)
            .await;
        assert!(
            matches!(err.map_err(StoreError::from), Err(StoreError::Conflict(_))),
            "a CHECK constraint was not enforced"
        );
    }
}

#[test]
fn database_urls_are_shown_without_their_passwords() {
    use super::redact_url;
    assert_eq!(
        redact_url("postgres://herald:s3cret@db:5432/herald"),
        "postgres://herald:***@db:5432/herald"
    );
    let shown = redact_url("postgresql://db/herald?password=s3cret&sslmode=require");
    assert!(
        !shown.contains("s3cret") && shown.contains("sslmode=require"),
        "{shown}"
    );
    assert!(!redact_url("postgres://u:pa/ss@h/db").contains("pa/ss"));
    assert_eq!(
        redact_url("postgres://herald@db/herald"),
        "postgres://herald@db/herald"
    );
    assert_eq!(
        redact_url("sqlite://my dir/herald.db"),
        "sqlite://my dir/herald.db"
    );
}
