//! Where bounce mail comes from: a Maildir (messages in `new/`, moved to
//! `cur/` with the Seen flag once handled; never deleted) and an mbox file
//! (split at its `From ` lines). One message on stdin needs no help.

use std::io;
use std::path::{Path, PathBuf};

/// The messages waiting in a Maildir's `new/`, oldest name first.
pub fn maildir_new(dir: &Path) -> io::Result<Vec<PathBuf>> {
    for sub in ["new", "cur", "tmp"] {
        if !dir.join(sub).is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a Maildir (no {sub}/)", dir.display()),
            ));
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("new"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Move a handled message from `new/` to `cur/`, adding the Seen flag
/// (`:2,S`), as a mail client marks a message read.
pub fn maildir_mark_seen(dir: &Path, message: &Path) -> io::Result<PathBuf> {
    let name = message
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy();
    let base = name.split_once(":2,").map_or(name.as_ref(), |(b, _)| b);
    let target = dir.join("cur").join(format!("{base}:2,S"));
    std::fs::rename(message, &target)?;
    Ok(target)
}

/// The messages of an mbox file: split at lines starting `From ` that
/// follow a blank line (or start the file); `>From ` quoting is undone.
pub fn mbox_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut previous_blank = true;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if previous_blank && line.starts_with(b"From ") {
            if let Some(m) = current.take() {
                messages.push(m);
            }
            current = Some(Vec::new());
            previous_blank = false;
            continue;
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        if let Some(m) = current.as_mut() {
            let unquoted = line
                .strip_prefix(b">")
                .filter(|rest| rest.trim_ascii_start_gt().starts_with(b"From "))
                .unwrap_or(line);
            m.extend_from_slice(unquoted);
        }
    }
    messages.extend(current);
    messages
}

trait TrimQuotes {
    /// The line without further leading `>` (mboxrd quoting).
    fn trim_ascii_start_gt(&self) -> &[u8];
}

impl TrimQuotes for [u8] {
    fn trim_ascii_start_gt(&self) -> &[u8] {
        let n = self.iter().take_while(|b| **b == b'>').count();
        &self[n..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_splits_at_from_lines_and_unquotes_from() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\nbody\n\nFrom c@d Mon Jan  1 00:00:01 2024\nSubject: two\n\nx\n";
        let m = mbox_messages(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], b"Subject: one\n\nFrom here\nbody\n\n");
        assert_eq!(m[1], b"Subject: two\n\nx\n");
    }
}
