//! Lease holder identity: names this process so that another herald on the
//! same machine can tell, safely, whether the holder of a lease is still
//! alive. A holder is `host:pid:start:boot:nonce`, where `host` is the host
//! name and the PID namespace (`name~id`: containers may share a host name
//! and a boot id, not PIDs), `start` is the
//! process start time (clock ticks since boot, from /proc/PID/stat) and
//! `boot` the kernel boot id: a recycled PID (or a thread id that happens
//! to match) has another start time, and a reboot changes the boot id.

use std::path::Path;

/// The host name, with the PID namespace when there is one: two
/// containers can share a host name (and a boot id) but not their PIDs, so
/// a PID is only checked from inside the namespace it belongs to.
fn host_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let namespace: String = std::fs::read_link("/proc/self/ns/pid")
        .map(|link| {
            link.to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect()
        })
        .unwrap_or_default();
    if namespace.is_empty() {
        host
    } else {
        format!("{host}~{namespace}")
    }
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().replace('-', ""))
        .filter(|b| !b.is_empty())
}

/// Field 22 of /proc/PID/stat (start time since boot, in clock ticks), if
/// PID is a process (not a thread of another one) that exists now.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 on; start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Is `pid` the id of a process (thread group leader)? A thread id also
/// has a /proc entry but a different Tgid.
fn is_process(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|t| t.trim().parse::<u32>().ok())
        })
        .is_some_and(|tgid| tgid == pid)
}

/// This process's holder name, unique per process.
pub fn current() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}:{}:{:08x}",
        host_name(),
        start_time(pid).map(|t| t.to_string()).unwrap_or_default(),
        boot_id().unwrap_or_default(),
        rand::random::<u32>()
    )
}

/// Is `holder` a process on this machine that no longer exists? Only a
/// holder known to be gone is reported dead; one on another host, or one
/// whose identity cannot be checked, is not.
pub fn is_dead(holder: &str) -> bool {
    let parts: Vec<&str> = holder.split(':').collect();
    let (Some(host), Some(Ok(pid))) = (parts.first(), parts.get(1).map(|p| p.parse::<u32>()))
    else {
        return false;
    };
    if *host != host_name() || pid == std::process::id() {
        return false;
    }
    match (parts.get(2), parts.get(3)) {
        // host:pid:start:boot:nonce
        (Some(start), Some(boot)) if parts.len() == 5 => {
            if !boot.is_empty() && boot_id().is_some_and(|now| now != *boot) {
                return true; // the machine rebooted since
            }
            if !is_process(pid) {
                return true;
            }
            match (start.parse::<u64>(), start_time(pid)) {
                (Ok(then), Some(now)) => then != now,
                (_, None) => true,
                (Err(_), Some(_)) => false,
            }
        }
        // An older holder name (host:pid:nonce): only a missing /proc
        // entry proves it dead.
        _ => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_recycled_pid_or_a_thread_is_not_the_holder() {
        let me = current();
        // Our own name is never "dead" (that is how we renew our lease).
        assert!(!is_dead(&me));
        let parts: Vec<&str> = me.split(':').collect();
        assert_eq!(parts.len(), 5, "{me}");
        // PID 1 exists, but a holder claiming PID 1 with another start time
        // is a recycled PID: dead.
        let init_start = start_time(1).expect("pid 1 has a start time");
        let recycled = format!("{}:1:{}:{}:00000000", parts[0], init_start + 1, parts[3]);
        assert!(is_dead(&recycled));
        let same = format!("{}:1:{init_start}:{}:00000000", parts[0], parts[3]);
        assert!(!is_dead(&same));
        // Another boot: dead.
        let rebooted = format!(
            "{}:1:{init_start}:00000000000000000000000000000000:0",
            parts[0]
        );
        assert!(is_dead(&rebooted));
        // Another host: never judged from here.
        assert!(!is_dead("some-other-host:1:1:x:0"));
    }

    #[test]
    fn a_thread_id_is_not_a_live_holder() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0);
            tx.send(tid).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let me = current();
        let parts: Vec<&str> = me.split(':').collect();
        let start = start_time(tid).map(|s| s.to_string()).unwrap_or_default();
        let holder = format!("{}:{tid}:{start}:{}:0", parts[0], parts[3]);
        assert!(tid != 0 && tid != std::process::id());
        assert!(is_dead(&holder), "a thread is not a holder process");
        done_tx.send(()).unwrap();
        t.join().unwrap();
    }
}
