//! Shared set-up: a fresh working directory per test, the built binary run
//! inside it, and direct library access to the same database.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A fresh directory holding one herald installation (database, outbox).
/// With `HERALD_TEST_BACKEND=postgres` its database is a fresh PostgreSQL
/// database on the server at `HERALD_TEST_POSTGRES_URL`, dropped with it.
pub struct TestEnv {
    pub dir: TempDir,
    postgres: Option<PgDatabase>,
}

/// The server the PostgreSQL run uses.
pub fn postgres_server_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Is this run of the suite against PostgreSQL?
pub fn on_postgres() -> bool {
    std::env::var("HERALD_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// A database of one test's own on the PostgreSQL server.
pub struct PgDatabase {
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// Create a fresh, empty database (named after this process and a
    /// counter) on the test server.
    pub fn create() -> PgDatabase {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("herald_t{}_{n}_{:04x}", std::process::id(), rand_u16());
        admin(&format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(&postgres_server_url()).expect("HERALD_TEST_POSTGRES_URL");
        url.set_path(&name);
        PgDatabase {
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ (t.as_secs() as u32)) as u16
}

/// Run a future to completion on a runtime of its own, on a thread of its
/// own (so it works from sync and async tests alike).
pub fn on_own_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .expect("database helper")
}

/// Tests of what only a SQLite installation has (its file, its WAL index,
/// paths relative to the installation): on a PostgreSQL run they say so
/// and return early.
pub fn sqlite_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("SQLite-only test on the PostgreSQL run, not repeated there: {what}");
        true
    } else {
        false
    }
}

/// Run one statement on the test server's own database (on a thread of its
/// own, so it works from sync and async tests alike).
fn admin(sql: &str) {
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(&postgres_server_url())
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL test server {}: {e}", postgres_server_url())
                });
            conn.execute(sql.as_str())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    })
    .join()
    .expect("admin statement");
}

impl TestEnv {
    /// A fresh installation: `herald init` has created its database.
    pub fn new() -> TestEnv {
        let env = TestEnv::bare();
        env.init();
        env
    }

    /// A fresh installation on SQLite, whichever backend this run uses.
    pub fn sqlite() -> TestEnv {
        let env = TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres: None,
        };
        env.init();
        env
    }

    /// A fresh, empty directory: no database yet.
    pub fn bare() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres: on_postgres().then(PgDatabase::create),
        }
    }

    /// `herald init` in this directory.
    pub fn init(&self) {
        let out = self.herald().arg("init").output().expect("herald init");
        assert!(out.status.success(), "herald init: {}", stderr(&out));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db_url(&self) -> String {
        match &self.postgres {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", self.path().join("herald.db").display()),
        }
    }

    /// Is this installation's database on PostgreSQL?
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// `herald` run in this directory with no HERALD__ variables from the
    /// outer environment.
    pub fn herald(&self) -> Command {
        let mut cmd = Command::cargo_bin("herald").expect("herald binary");
        cmd.current_dir(self.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD") {
                cmd.env_remove(key);
            }
        }
        cmd.env("NO_COLOR", "1");
        if let Some(db) = &self.postgres {
            cmd.env("HERALD__DATABASE__URL", &db.url);
        }
        cmd
    }

    /// `herald` as a plain child process (to signal or kill it), in this
    /// directory with no outer HERALD variables, sending through the SMTP
    /// server on `port` at `rate` msg/s over `concurrency` connections.
    /// stdout and stderr are piped.
    pub fn herald_process(
        &self,
        port: u16,
        rate: u32,
        concurrency: usize,
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("herald"));
        cmd.current_dir(self.path());
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HERALD")) {
            cmd.env_remove(key);
        }
        real_identity(&mut cmd);
        if let Some(db) = &self.postgres {
            cmd.env("HERALD__DATABASE__URL", &db.url);
        }
        cmd.env("NO_COLOR", "1")
            .env("HERALD__TRANSPORT__KIND", "smtp")
            .env("HERALD__SMTP__PORT", port.to_string())
            .env("HERALD__SENDER__RATE_PER_SECOND", rate.to_string())
            .env("HERALD__SENDER__CONCURRENCY", concurrency.to_string())
            .env(
                "HERALD__UNSUBSCRIBE__SECRET",
                "test-signing-key-0123456789abcdefghijkl",
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    /// Write a file into the directory and return its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Library access to the same database.
    pub async fn store(&self) -> herald::store::Store {
        let settings = herald::config::DatabaseSettings {
            url: self.db_url(),
            busy_timeout_ms: 5000,
            max_connections: 10,
        };
        herald::store::Store::open(&settings)
            .await
            .expect("open store")
    }

    /// `herald` as a plain child process in this directory, with no outer
    /// HERALD variables and this installation's database.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("herald"));
        cmd.current_dir(self.path());
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HERALD")) {
            cmd.env_remove(key);
        }
        if let Some(db) = &self.postgres {
            cmd.env("HERALD__DATABASE__URL", &db.url);
        }
        cmd.env("NO_COLOR", "1");
        cmd
    }

    /// Run statements on this installation's database, whichever backend,
    /// for set-up no command offers (faults).
    pub fn execute(&self, statements: &[&str]) {
        let url = self.db_url();
        let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
        on_own_runtime(async move {
            if url.starts_with("postgres") {
                let db = sqlx::PgPool::connect(&url).await.expect("open database");
                for sql in &statements {
                    sqlx::raw_sql(sql)
                        .execute(&db)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
            } else {
                let db = sqlx::SqlitePool::connect(&url)
                    .await
                    .expect("open database");
                for sql in &statements {
                    sqlx::raw_sql(sql)
                        .execute(&db)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
            }
        })
    }

    /// Rows of a query on this installation's database, whichever backend,
    /// for what no command shows (leases, attempts).
    pub fn fetch_all<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin
            + 'static,
    {
        let url = self.db_url();
        let sql = sql.to_string();
        on_own_runtime(async move {
            if url.starts_with("postgres") {
                let db = sqlx::PgPool::connect(&url).await.expect("open database");
                sqlx::query_as(&sql).fetch_all(&db).await.unwrap()
            } else {
                let db = sqlx::SqlitePool::connect(&url)
                    .await
                    .expect("open database");
                sqlx::query_as(&sql).fetch_all(&db).await.unwrap()
            }
        })
    }
}

/// stdout of a finished command as a String.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a finished command as a String.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The bundled sample subscribers file in the repository.
pub fn sample_subscribers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sample-subscribers.csv")
}

/// The bundled example issue.
pub fn bundled_issue() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("issues/2018-12-14-migration-news.toml")
}

/// Write a copy of the bundled issue with its own slug and the subject
/// "Migration news — SLUG", and return its path.
pub fn write_issue(env: &TestEnv, slug: &str) -> PathBuf {
    let bundled = std::fs::read_to_string(bundled_issue()).unwrap();
    let subject_line = bundled
        .lines()
        .find(|l| l.starts_with("subject = "))
        .expect("the bundled issue has a subject");
    let text = bundled.replacen(
        subject_line,
        &format!("slug = \"{slug}\"\nsubject = \"Migration news — {slug}\""),
        1,
    );
    env.write(&format!("issues/{slug}.toml"), text)
}

/// Import `n` subscribers named user0001@example.org … into the database.
pub fn seed_subscribers(env: &TestEnv, n: usize) {
    let mut csv = String::from("email,name\n");
    for i in 1..=n {
        csv.push_str(&format!("user{i:04}@example.org,User {i}\n"));
    }
    let file = env.write("seed.csv", csv);
    let out = env
        .herald()
        .args(["subscribers", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The sender identity and link base of a real list (not the demo's), so
/// the live-send guards let SMTP sends through.
pub const FROM_ADDRESS: &str = "news@herald-test.example.net";
pub const PUBLIC_BASE_URL: &str = "https://news.herald-test.example.net";

/// Settings of a real list instead of the embedded demo identity.
pub fn real_identity<C: EnvSetter>(cmd: &mut C) {
    cmd.set("HERALD__SENDER__FROM_ADDRESS", FROM_ADDRESS);
    cmd.set(
        "HERALD__NEWSLETTER__LIST_ID",
        "news.herald-test.example.net",
    );
    cmd.set(
        "HERALD__NEWSLETTER__POSTAL_ADDRESS",
        "Herald Test Weekly, 2 Test Road, 1000 Testville",
    );
    cmd.set("HERALD__HTTP__PUBLIC_BASE_URL", PUBLIC_BASE_URL);
}

/// `env` on both kinds of command.
pub trait EnvSetter {
    fn set(&mut self, key: &str, value: &str);
}

impl EnvSetter for Command {
    fn set(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }
}

impl EnvSetter for std::process::Command {
    fn set(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }
}

/// Settings for sending through the SMTP server on `port`, fast retries,
/// with a real list's identity.
pub fn smtp_env(cmd: &mut Command, port: u16) {
    real_identity(cmd);
    cmd.env("HERALD__TRANSPORT__KIND", "smtp")
        .env("HERALD__SMTP__HOST", "127.0.0.1")
        .env("HERALD__SMTP__PORT", port.to_string())
        .env("HERALD__SMTP__SEND_TIMEOUT_SECS", "1")
        .env("HERALD__SMTP__CONNECT_TIMEOUT_SECS", "2")
        .env("HERALD__SMTP__RECONNECT_ATTEMPTS", "3")
        .env("HERALD__SMTP__RECONNECT_BACKOFF_MS", "50")
        .env("HERALD__SENDER__RATE_PER_SECOND", "1000")
        .env("HERALD__SENDER__CONCURRENCY", "4")
        .env(
            "HERALD__UNSUBSCRIBE__SECRET",
            "test-signing-key-0123456789abcdefghijkl",
        );
}

/// Ledger counts of an issue via `herald status --format json`.
pub fn ledger(env: &TestEnv, issue: &Path) -> serde_json::Value {
    let out = env
        .herald()
        .args(["status", "--format", "json"])
        .arg(issue)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `herald send ISSUE --live --yes` through the SMTP server on `port`
/// (settings of [`smtp_env`]), within a minute.
pub fn live_send(env: &TestEnv, issue: &Path, port: u16) -> std::process::Output {
    live_send_with(env, issue, port, &[])
}

/// [`live_send`] with these settings on top.
pub fn live_send_with(
    env: &TestEnv,
    issue: &Path,
    port: u16,
    settings: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = env.herald();
    smtp_env(&mut cmd, port);
    for (k, v) in settings {
        cmd.env(k, v);
    }
    cmd.args(["send", "--live", "--yes"])
        .arg(issue)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

/// Start `herald serve` on a free loopback port with these extra settings;
/// returns the child and its base URL (read from its first line).
pub fn spawn_serve(env: &TestEnv, settings: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut cmd = env.herald_process(2525, 1, 1);
    for (k, v) in settings {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    (child, base)
}

/// A loopback port with nothing listening on it (a server that is down).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child's stderr, read as it is written, so that a test can wait for a
/// log line (an event) instead of for time to pass.
pub struct LogWatch {
    seen: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
    reader: std::thread::JoinHandle<()>,
}

impl LogWatch {
    /// Take over `child`'s piped stderr.
    pub fn new(child: &mut std::process::Child) -> LogWatch {
        use std::io::Read;
        let mut pipe = child.stderr.take().expect("stderr piped");
        let seen = std::sync::Arc::new((
            std::sync::Mutex::new(String::new()),
            std::sync::Condvar::new(),
        ));
        let shared = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shared
                    .0
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
                shared.1.notify_all();
            }
        });
        LogWatch { seen, reader }
    }

    /// Wait until the log contains `needle`; false if it did not within
    /// `within`.
    pub fn wait_for(&self, needle: &str, within: std::time::Duration) -> bool {
        let (text, changed) = &*self.seen;
        let guard = text.lock().unwrap();
        let (guard, _) = changed
            .wait_timeout_while(guard, within, |t| !t.contains(needle))
            .unwrap();
        guard.contains(needle)
    }

    /// Everything the child wrote, once it has closed stderr (exited).
    pub fn text(self) -> String {
        self.reader.join().unwrap();
        let text = self.seen.0.lock().unwrap();
        text.clone()
    }
}
