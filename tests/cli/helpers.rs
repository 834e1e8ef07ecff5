//! Shared set-up: a fresh working directory per test, the built binary run
//! inside it, and direct library access to the same database.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A fresh directory holding one herald installation (database, outbox).
pub struct TestEnv {
    pub dir: TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.path().join("herald.db").display())
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
        };
        herald::store::Store::open(&settings)
            .await
            .expect("open store")
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
