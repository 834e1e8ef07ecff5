//! `herald demo`: the README's main command, on embedded defaults.

use crate::helpers::{stderr, stdout, TestEnv};

fn outbox_files(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.path().join("outbox"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| n.ends_with(".eml"));
    names.sort();
    names
}

#[test]
fn demo_runs_the_whole_job_into_the_outbox_and_a_second_run_sends_nothing_twice() {
    let env = TestEnv::new();
    let out = env.herald().arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("imported 36, updated 0, unchanged 0, rejected 3"),
        "{text}"
    );
    assert!(text.contains("this run sent 36, failed 0"), "{text}");
    assert!(text.contains("outbox/"), "{text}");
    // Rejected sample rows are reported with their line numbers.
    assert!(stderr(&out).contains("sample-subscribers.csv:13: rejected"));
    let files = outbox_files(&env);
    assert_eq!(files.len(), 36);
    let one = std::fs::read_to_string(env.path().join("outbox").join(&files[0])).unwrap();
    assert!(one.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));

    let again = env.herald().arg("demo").output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("this run sent 0"),
        "{}",
        stdout(&again)
    );
    assert_eq!(outbox_files(&env).len(), 36);
}
