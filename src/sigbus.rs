//! SIGBUS guard. SQLite maps the WAL index (`herald.db-shm`) into memory;
//! if that file is truncated or becomes unusable while herald runs, the next
//! access raises SIGBUS, which would kill the process with a core dump and
//! no word of why. This installs a handler that says what happened and
//! exits with status 1 instead. The ledger is as after any crash: rows in
//! flight are resolved by the next run.

/// What the handler writes to stderr (async-signal-safe: one `write`).
const MESSAGE: &[u8] = b"herald: fatal: the database's shared-memory file (the -shm next to \
the database) was truncated or became unusable while herald was using it (SIGBUS); stopping. \
The ledger stays consistent: fix the file's storage and run the same command again to resume.\n";

extern "C" fn on_sigbus(_: libc::c_int) {
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MESSAGE is a
    // static byte string.
    unsafe {
        libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
        libc::_exit(1);
    }
}

/// Install the handler (once, at start-up, before any database access).
pub fn install() {
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler
    // only calls async-signal-safe functions and never returns.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}
