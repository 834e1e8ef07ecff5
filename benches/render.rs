//! `cargo bench --bench render`: compile the bundled issue (content → HTML +
//! text) N times and personalise 10,000 copies from it, printing per-compile
//! and per-copy times. Where Node.js is available, the reference `mjml`
//! package (benches/mjml-node, installed with `npm ci` on first use) compiles
//! the same generated MJML in-process for comparison.
//!
//! Env: BENCH_COMPILES (default 300), BENCH_COPIES (default 10000),
//! BENCH_MJML_RUNS (default 100), BENCH_NO_NODE=1 to skip the mjml run.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use herald::config::Settings;
use herald::render::{self, Recipient, Templates};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings: Settings = toml::from_str(herald::config::DEFAULT_TOML).expect("settings");
    let issue = render::load_issue(&root.join("issues/2018-12-14-migration-news.toml"))
        .expect("bundled issue");
    let templates = Templates::bundled().expect("templates");

    // --- compile once per issue ------------------------------------------
    let compiles = env_usize("BENCH_COMPILES", 300);
    for _ in 0..20 {
        black_box(render::compile_with(&issue, &settings, &templates).unwrap());
    }
    let mut times = Vec::with_capacity(compiles);
    let total = Instant::now();
    for _ in 0..compiles {
        let t = Instant::now();
        black_box(render::compile_with(&issue, &settings, &templates).unwrap());
        times.push(t.elapsed());
    }
    let compile_mean = total.elapsed() / compiles as u32;
    let compile_median = median(times);
    let compiled = render::compile_with(&issue, &settings, &templates).unwrap();

    // The MJML compile alone (mrml parse + render), for the like-for-like
    // comparison with mjml.
    let mut mrml_times = Vec::with_capacity(compiles);
    for _ in 0..compiles {
        let t = Instant::now();
        let parsed = mrml::parse(&compiled.mjml).unwrap();
        black_box(parsed.element.render(&Default::default()).unwrap());
        mrml_times.push(t.elapsed());
    }
    let mrml_median = median(mrml_times);

    println!(
        "herald render benchmark (bundled issue, {} blocks)",
        issue.blocks().len()
    );
    println!(
        "  compile (content -> MJML -> HTML + text): mean {:.1} us, median {:.1} us over {compiles} runs",
        us(compile_mean),
        us(compile_median)
    );
    println!(
        "  of which mrml parse+render alone:        median {:.1} us",
        us(mrml_median)
    );
    println!(
        "  output: HTML {} bytes, text {} bytes, MJML {} bytes",
        compiled.compiled.html.len(),
        compiled.compiled.text.len(),
        compiled.mjml.len()
    );

    // --- personalise ------------------------------------------------------
    let copies = env_usize("BENCH_COPIES", 10_000);
    let prepared = compiled.compiled.prepare();
    let people: Vec<(String, Option<String>, String)> = (0..copies)
        .map(|i| {
            (
                format!("subscriber{i}@example.org"),
                (i % 3 != 0).then(|| format!("Reader <{i}> & \"friend\"")),
                format!("https://news.example.org/unsubscribe/AQAAAAAAAAAB{i:08}"),
            )
        })
        .collect();
    let view = render::view_url(&settings, issue.slug());
    let (mut html, mut text) = (String::new(), String::new());
    let mut bytes = 0usize;
    let start = Instant::now();
    for (email, name, unsub) in &people {
        let r = Recipient {
            email,
            name: name.as_deref(),
            unsubscribe_url: unsub,
            view_url: &view,
            attributes: None,
        };
        prepared.personalise_into(&r, &mut html, &mut text);
        bytes += black_box(html.len() + text.len());
    }
    let elapsed = start.elapsed();
    let per_copy = us(elapsed) / copies as f64;
    println!(
        "  personalise {copies} copies (HTML + text): {:.1} ms total, {per_copy:.2} us per copy ({:.0} MB/s)",
        elapsed.as_secs_f64() * 1e3,
        bytes as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "  targets: per copy <= 5 us: {}",
        if per_copy <= 5.0 { "met" } else { "MISSED" }
    );

    // --- the reference mjml, in Node -----------------------------------------
    if std::env::var_os("BENCH_NO_NODE").is_some() {
        return;
    }
    match mjml_node(root, &compiled.mjml, env_usize("BENCH_MJML_RUNS", 100)) {
        Ok((version, mean_ms, ms)) => {
            let ratio = ms * 1e3 / us(compile_median);
            println!(
                "  mjml {version} (Node, in-process) on the same MJML: mean {mean_ms:.2} ms, median {ms:.2} ms per compile"
            );
            println!(
                "  median vs median: herald's whole compile is {ratio:.1}x faster than mjml's MJML step alone (mrml alone: {:.1}x); target >= 20x: {}",
                ms * 1e3 / us(mrml_median),
                if ratio >= 20.0 { "met" } else { "MISSED" }
            );
        }
        Err(why) => println!("  mjml comparison skipped: {why}"),
    }
}

/// Run benches/mjml-node/bench.mjs on `mjml`; returns (version, mean ms,
/// median ms) per compile.
fn mjml_node(root: &Path, mjml: &str, runs: usize) -> Result<(String, f64, f64), String> {
    let dir = root.join("benches/mjml-node");
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        return Err("node is not installed".into());
    }
    if !dir.join("node_modules/mjml").is_dir() {
        println!("  installing mjml for the comparison (npm ci in benches/mjml-node) ...");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err("npm ci failed in benches/mjml-node".into());
        }
    }
    let file = std::env::temp_dir().join(format!("herald-bench-{}.mjml", std::process::id()));
    std::fs::write(&file, mjml).map_err(|e| e.to_string())?;
    let out = Command::new("node")
        .arg(dir.join("bench.mjs"))
        .arg(&file)
        .arg(runs.to_string())
        .output()
        .map_err(|e| format!("node: {e}"));
    let _ = std::fs::remove_file(&file);
    let out = out?;
    if !out.status.success() {
        return Err(format!(
            "node bench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("node output: {e}"))?;
    let mean = v["ms_per_compile"].as_f64().ok_or("no ms_per_compile")?;
    let median = v["ms_median"].as_f64().ok_or("no ms_median")?;
    let version = v["version"].as_str().unwrap_or("?").to_string();
    Ok((version, mean, median))
}
