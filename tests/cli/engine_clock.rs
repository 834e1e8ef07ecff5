//! The live send through the library (`delivery::dispatch`) on a manual
//! clock: time passes only when the test moves it, so pacing, retry times
//! and the wait for deferred rows are checked exactly, in milliseconds of
//! real time. Messages go to the test SMTP server over TCP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald::clock::ManualClock;
use herald::config::{Settings, TransportKind};
use herald::delivery::dispatch::{Dispatch, Finished, IssueFile, Started};
use herald::delivery::progress::Progress;
use herald::delivery::{Halt, RunReport, Stopper};
use tokio::task::JoinHandle;

use crate::helpers::{
    ledger, seed_subscribers, stderr, write_issue, TestEnv, FROM_ADDRESS, PUBLIC_BASE_URL,
};
use crate::smtp_server::{Fault, SmtpServer};

/// An installation with `n` subscribers and the issue file `slug`.
fn started(n: usize, slug: &str) -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    seed_subscribers(&env, n);
    let issue = write_issue(&env, slug);
    (env, issue)
}

/// Settings for a live send: SMTP to `port`, `rate` a second over
/// `concurrency` connections, a real list's identity.
fn settings(port: u16, rate: f64, concurrency: usize) -> Settings {
    let mut s: Settings = toml::from_str(herald::config::DEFAULT_TOML).unwrap();
    s.transport.kind = TransportKind::Smtp;
    s.smtp.port = port;
    s.smtp.send_timeout_secs = 5;
    s.smtp.connect_timeout_secs = 5;
    s.sender.rate_per_second = rate;
    s.sender.concurrency = concurrency;
    s.sender.from_address =
        herald::domain::SubscriberEmail::parse(FROM_ADDRESS).expect("from address");
    s.newsletter.list_id = "news.herald-test.example.net".into();
    s.newsletter.postal_address = "Herald Test Weekly, 2 Test Road, 1000 Testville".into();
    s.http.public_base_url = PUBLIC_BASE_URL.into();
    s
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Register, start and run the live send of `issue` on `clock`, in a task.
async fn send(
    env: &TestEnv,
    issue: &Path,
    settings: Settings,
    clock: &ManualClock,
    interrupt: Stopper,
) -> JoinHandle<RunReport> {
    let store = env.store().await;
    let (issue, clock) = (issue.to_path_buf(), clock.clock());
    tokio::spawn(async move {
        let dispatch = Dispatch {
            store: &store,
            settings: &settings,
            allow_unsafe_links: false,
            progress: Progress::Quiet,
            clock,
        };
        let file = IssueFile::load(&settings, &issue, None).unwrap();
        let registered = dispatch.register(&file, false, None).await.unwrap();
        let Started::Ready(started) = dispatch.start(registered).await.unwrap() else {
            panic!("nobody else sends it");
        };
        let Finished { report, .. } = dispatch.run(started, &interrupt).await.unwrap();
        report
    })
}

/// One move of the clock: how far, and how many messages the server had
/// received before it.
#[derive(Debug, Clone, Copy)]
struct Advance {
    by: Duration,
    received_before: usize,
}

/// Run the engine to its end, moving the clock to the next wake-up
/// whenever the engine sleeps on it.
async fn drive(
    clock: &ManualClock,
    server: &SmtpServer,
    mut run: JoinHandle<RunReport>,
) -> (RunReport, Vec<Advance>) {
    let mut advances = Vec::new();
    loop {
        tokio::select! {
            report = &mut run => return (report.unwrap(), advances),
            _ = clock.until_asleep(1) => {
                let received_before = server.received().len();
                let by = clock.advance_to_next_wake();
                advances.push(Advance { by, received_before });
            }
        }
    }
}

fn manual() -> ManualClock {
    ManualClock::new(chrono::Utc::now())
}

#[test]
fn messages_go_at_the_configured_rate_of_the_engines_clock() {
    let (env, issue) = started(20, "paced");
    let server = SmtpServer::start();
    let clock = manual();
    let report = block_on(async {
        let run = send(
            &env,
            &issue,
            settings(server.port(), 10.0, 2),
            &clock,
            Stopper::default(),
        )
        .await;
        let (report, advances) = drive(&clock, &server, run).await;
        // One slot every 100 ms; the first at once.
        for a in &advances {
            assert!(a.by <= Duration::from_millis(100), "{a:?}");
            assert!(a.received_before <= 20);
        }
        report
    });
    assert_eq!(report.sent, 20);
    assert_eq!(report.halt, Halt::None);
    assert_eq!(clock.elapsed(), Duration::from_millis(1900));
    assert_eq!(report.elapsed, Duration::from_millis(1900));
    assert_eq!(server.counts().len(), 20);
}

#[test]
fn a_deferred_retry_is_sent_when_the_clock_reaches_its_time() {
    let (env, issue) = started(5, "deferred");
    let server = SmtpServer::start();
    server.fault(
        "user0002@example.org",
        Fault::AtRcpt("450 4.2.1 mailbox busy".into()),
        1,
    );
    let clock = manual();
    let mut s = settings(server.port(), 1000.0, 2);
    s.sender.retry_base_ms = 60_000;
    s.sender.linger_secs = 300;
    let (report, advances) = block_on(async {
        let run = send(&env, &issue, s, &clock, Stopper::default()).await;
        drive(&clock, &server, run).await
    });
    // The engine waited for the retry (60 s ± 20 %, + 5 ms) on the clock,
    // with the other four delivered; then sent it.
    let waits: Vec<_> = advances
        .iter()
        .filter(|a| a.by >= Duration::from_secs(1))
        .collect();
    assert_eq!(waits.len(), 1, "{advances:?}");
    assert!(
        waits[0].by >= Duration::from_secs(48) && waits[0].by <= Duration::from_millis(72_005),
        "{waits:?}"
    );
    assert_eq!(waits[0].received_before, 4);
    assert_eq!(report.sent, 5);
    assert_eq!(report.deferred, 0);
    assert_eq!(server.counts()["user0002@example.org"], 1);
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["sent"], 5, "{l}");
    assert_eq!(l["state"], "sent");
}

#[test]
fn a_retry_due_after_the_linger_time_is_left_to_the_next_run() {
    let (env, issue) = started(3, "lingered");
    let server = SmtpServer::start();
    server.fault(
        "user0001@example.org",
        Fault::AtRcpt("451 4.3.0 try later".into()),
        1,
    );
    let clock = manual();
    let mut s = settings(server.port(), 1000.0, 1);
    s.sender.retry_base_ms = 60_000;
    s.sender.linger_secs = 10;
    let (report, advances) = block_on(async {
        let run = send(&env, &issue, s, &clock, Stopper::default()).await;
        drive(&clock, &server, run).await
    });
    assert!(clock.elapsed() < Duration::from_secs(1), "{advances:?}");
    assert_eq!(report.sent, 2);
    assert_eq!(report.deferred, 1);
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["deferred"], 1, "{l}");
    assert_eq!(l["state"], "sending");
}

#[test]
fn a_stop_during_the_wait_for_a_deferred_retry_ends_the_run_at_once() {
    let (env, issue) = started(2, "waiting");
    let server = SmtpServer::start();
    server.fault(
        "user0002@example.org",
        Fault::AtRcpt("450 4.2.1 mailbox busy".into()),
        1,
    );
    let clock = manual();
    let mut s = settings(server.port(), 1000.0, 1);
    s.sender.retry_base_ms = 60_000;
    let stop = Stopper::default();
    let report = block_on(async {
        let run = send(&env, &issue, s, &clock, stop.clone()).await;
        // Asleep until the retry: a minute away on the clock.
        loop {
            clock.until_asleep(1).await;
            if clock.next_wake().unwrap_or_default() >= Duration::from_secs(40) {
                break;
            }
            clock.advance_to_next_wake();
        }
        stop.halt(Halt::Interrupted);
        run.await.unwrap()
    });
    assert!(clock.elapsed() < Duration::from_secs(1));
    assert_eq!(report.halt, Halt::Interrupted);
    assert_eq!(report.sent, 1);
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["deferred"], 1, "{l}");
}

#[test]
fn an_unsubscribe_while_the_engine_waits_for_its_slot_skips_that_recipient() {
    let (env, issue) = started(60, "midsend");
    let server = SmtpServer::start();
    let clock = manual();
    let report = block_on(async {
        let run = send(
            &env,
            &issue,
            settings(server.port(), 10.0, 2),
            &clock,
            Stopper::default(),
        )
        .await;
        // The first message is out; the engine waits for the next slot and
        // time stands still meanwhile.
        clock.until_asleep(1).await;
        let out = tokio::task::block_in_place(|| {
            env.herald()
                .args(["subscribers", "unsubscribe", "user0060@example.org"])
                .output()
                .unwrap()
        });
        assert!(out.status.success(), "{}", stderr(&out));
        drive(&clock, &server, run).await.0
    });
    assert_eq!(report.sent, 59);
    let counts = server.counts();
    assert!(!counts.contains_key("user0060@example.org"));
    assert_eq!(counts.len(), 59);
    let l = ledger(&env, &issue);
    assert_eq!(l["counts"]["skipped"], 1, "{l}");
    assert_eq!(l["counts"]["sent"], 59, "{l}");
}
