//! The installation directory ("home"): where herald finds
//! `config/local.toml`, and what every relative path in the settings
//! (database, outbox, templates, DKIM key) is relative to. Resolved once per
//! process, in this order: `--dir DIR`, `HERALD_HOME`, the directory of a
//! `--config FILE`, else the current directory. Also the check that a
//! command other than `init`/`demo` finds an existing database instead of
//! silently creating an empty one.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::BadInput;

/// The environment variable naming the installation directory.
pub const HOME_VAR: &str = "HERALD_HOME";

/// Where the installation directory came from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeSource {
    DirFlag,
    EnvVar,
    ConfigFile,
    CurrentDir,
}

impl fmt::Display for HomeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HomeSource::DirFlag => "--dir",
            HomeSource::EnvVar => HOME_VAR,
            HomeSource::ConfigFile => "the directory of --config",
            HomeSource::CurrentDir => "the current directory",
        })
    }
}

/// An absolute installation directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
    source: HomeSource,
}

impl Home {
    /// Resolve the home from the `--dir` flag, `HERALD_HOME`, the `--config`
    /// file, or the current directory, in that order. The directory need
    /// not exist yet: `herald init` creates it, every other command finds
    /// no database there and says so.
    pub fn resolve(dir: Option<&Path>, config: Option<&Path>) -> Result<Home, BadInput> {
        let env = std::env::var_os(HOME_VAR).filter(|v| !v.is_empty());
        let (dir, source) = if let Some(dir) = dir {
            (dir.to_path_buf(), HomeSource::DirFlag)
        } else if let Some(env) = env {
            (PathBuf::from(env), HomeSource::EnvVar)
        } else if let Some(config) = config {
            let parent = config.parent().unwrap_or(Path::new(""));
            (parent.to_path_buf(), HomeSource::ConfigFile)
        } else {
            (PathBuf::new(), HomeSource::CurrentDir)
        };
        let cwd = std::env::current_dir()
            .map_err(|e| BadInput::new(format!("cannot read the current directory: {e}")))?;
        let dir = absolute(&cwd, &dir);
        if dir.exists() && !dir.is_dir() {
            return Err(BadInput::new(format!(
                "installation directory {} (from {source}) is not a directory",
                dir.display()
            )));
        }
        Ok(Home { dir, source })
    }

    /// A home at an explicit absolute directory (tests, tools).
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        Home {
            dir: dir.into(),
            source: HomeSource::DirFlag,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn source(&self) -> HomeSource {
        self.source
    }

    /// `path` if absolute, else relative to the home.
    pub fn join(&self, path: &Path) -> PathBuf {
        absolute(&self.dir, path)
    }

    /// A `sqlite:` URL whose file path is made absolute against the home
    /// (in-memory databases and absolute paths are left alone).
    pub fn resolve_sqlite_url(&self, url: &str) -> String {
        let Some((prefix, rest)) = split_sqlite_url(url) else {
            return url.to_string();
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() || path == ":memory:" || Path::new(path).is_absolute() {
            return url.to_string();
        }
        let joined = self.join(Path::new(path));
        match query {
            Some(q) => format!("{prefix}{}?{q}", joined.display()),
            None => format!("{prefix}{}", joined.display()),
        }
    }
}

/// `("sqlite://", "herald.db")` for `sqlite://herald.db`; `None` for a URL
/// that is not `sqlite:`.
fn split_sqlite_url(url: &str) -> Option<(&str, &str)> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        Some(("sqlite://", rest))
    } else {
        url.strip_prefix("sqlite:").map(|rest| ("sqlite:", rest))
    }
}

/// The database file a `sqlite:` URL names, if it names a file.
pub fn database_file(url: &str) -> Option<PathBuf> {
    let (_, rest) = split_sqlite_url(url)?;
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    let in_memory = path.is_empty()
        || path == ":memory:"
        || rest.contains("mode=memory")
        || path.starts_with("file::memory:");
    (!in_memory).then(|| PathBuf::from(path))
}

/// Refuse to go on without an existing database: every command but
/// `init` and `demo` calls this before opening the store, so a command run
/// in the wrong directory exits 2 instead of creating an empty database.
pub fn require_database(url: &str) -> Result<(), BadInput> {
    match database_file(url) {
        Some(file) if !file.is_file() => Err(BadInput::new(format!(
            "no herald database at {} (run `herald init` there, or pass --dir)",
            file.display()
        ))),
        _ => Ok(()),
    }
}

/// For `init` and `demo`: create the directory the database file goes in
/// (the installation directory, or a subdirectory the settings name).
pub fn prepare_database_dir(url: &str) -> Result<(), BadInput> {
    let Some(file) = database_file(url) else {
        return Ok(());
    };
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            crate::private_fs::create_dir_all(dir)
                .map_err(|e| BadInput::new(format!("cannot create {}: {e}", dir.display())))
        }
        _ => Ok(()),
    }
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    // Drop `.` components so messages show clean paths.
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_database_urls_resolve_against_the_home() {
        let home = Home::at("/srv/herald");
        assert_eq!(
            home.resolve_sqlite_url("sqlite://herald.db"),
            "sqlite:///srv/herald/herald.db"
        );
        assert_eq!(
            home.resolve_sqlite_url("sqlite:data/h.db?mode=rwc"),
            "sqlite:/srv/herald/data/h.db?mode=rwc"
        );
        assert_eq!(
            home.resolve_sqlite_url("sqlite:///var/lib/h.db"),
            "sqlite:///var/lib/h.db"
        );
        assert_eq!(
            home.resolve_sqlite_url("sqlite::memory:"),
            "sqlite::memory:"
        );
        assert_eq!(
            home.join(Path::new("./outbox")),
            Path::new("/srv/herald/outbox")
        );
        assert_eq!(
            home.join(Path::new("/abs/key.pem")),
            Path::new("/abs/key.pem")
        );
    }

    #[test]
    fn only_a_missing_database_file_is_refused() {
        assert!(require_database("sqlite::memory:").is_ok());
        let err = require_database("sqlite:///nonexistent/dir/herald.db").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "no herald database at /nonexistent/dir/herald.db (run `herald init` there"
            ),
            "{err}"
        );
    }
}
