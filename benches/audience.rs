//! `cargo bench --bench audience`: the live-send snapshot (one INSERT …
//! SELECT into the delivery ledger) out of 1,000,000 subscribers, for the
//! whole list and for audience filters on attributes (JSON extraction in
//! the same full scan; no index can cover arbitrary keys). Prints time and
//! rows for each. The database is a fresh file in a temporary directory.
//!
//! Env: BENCH_SUBSCRIBERS (default 1000000).

use std::time::Instant;

use herald::config::DatabaseSettings;
use herald::domain::Audience;
use herald::store::issues::{NewIssue, Registered};
use herald::store::Store;

const CITIES: [&str; 8] = [
    "Geneva", "Tripoli", "Kyiv", "Dakar", "Lima", "Osaka", "Accra", "Lviv",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: i64 = std::env::var("BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = DatabaseSettings {
        url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        busy_timeout_ms: 5000,
        max_connections: 10,
    };
    let store = Store::open(&settings).await.expect("store");
    // Seeded with a connection of the bench's own: a million rows in one
    // statement, which no store call does.
    let db = sqlx::SqlitePool::connect(&settings.url)
        .await
        .expect("seed connection");
    let t = Instant::now();
    let cities = serde_json::to_string(&CITIES).unwrap();
    // Every 10th subscriber has a club_role; every 50th is unsubscribed.
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1) \
         INSERT INTO subscribers (email, name, status, attributes) \
         SELECT 'person' || i || '@example' || (i % 97) || '.org', 'Person ' || i, \
                CASE WHEN i % 50 = 0 THEN 'unsubscribed' ELSE 'active' END, \
                json_object('city', json_extract(?2, '$[' || (i % 8) || ']'), 'language', 'en') \
                || '' \
         FROM seq",
    )
    .bind(n)
    .bind(&cities)
    .execute(&db)
    .await
    .expect("seed");
    sqlx::query(
        "UPDATE subscribers SET attributes = json_set(attributes, '$.club_role', 'member') WHERE id % 10 = 0",
    )
    .execute(&db)
    .await
    .expect("roles");
    println!("seeded {n} subscribers in {:.2?}", t.elapsed());

    let cases: Vec<(&str, Option<Audience>)> = vec![
        ("everyone (unfiltered)", None),
        (
            "city = \"Kyiv\"",
            Audience::from_args(&["city=Kyiv".into()]).unwrap(),
        ),
        (
            "city in [\"Kyiv\", \"Lviv\"]",
            Audience::from_args(&["city=Kyiv".into(), "city=Lviv".into()]).unwrap(),
        ),
        (
            "club_role present",
            Audience::from_args(&["club_role=*".into()]).unwrap(),
        ),
        (
            "city = \"Kyiv\" and club_role absent",
            Audience::from_args(&["city=Kyiv".into(), "club_role=".into()]).unwrap(),
        ),
    ];
    for (i, (label, audience)) in cases.iter().enumerate() {
        let slug = format!("bench-{i}");
        let hash = format!("hash-{i}");
        let Registered::Ready(record) = store
            .register_issue(
                &NewIssue {
                    slug: &slug,
                    subject: "Bench",
                    content_hash: &hash,
                    compiled_json: "{}",
                    source_path: None,
                },
                false,
            )
            .await
            .expect("register")
        else {
            unreachable!("a new slug")
        };
        store
            .set_issue_audience(record.id, audience.as_ref())
            .await
            .expect("audience");
        let t = Instant::now();
        let counted = store
            .count_audience(audience.as_ref())
            .await
            .expect("count");
        let count_time = t.elapsed();
        let t = Instant::now();
        let rows = store
            .start_live_send(record.id, &slug, "example.org", "2026-12-02T00:00:00Z")
            .await
            .expect("snapshot");
        let snap = t.elapsed();
        assert_eq!(rows as i64, counted);
        println!(
            "snapshot {label:<38} {rows:>8} rows in {:>8.1} ms (count for the prompt: {:>6.1} ms)",
            snap.as_secs_f64() * 1e3,
            count_time.as_secs_f64() * 1e3
        );
    }
}
