//! Progress display: an indicatif bar on a terminal, periodic log lines
//! otherwise.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::recorder::Tally;
use crate::domain::LedgerCounts;

/// How a run reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Bar on a TTY, log lines every `every` otherwise.
    Auto {
        every: Duration,
    },
    Quiet,
}

/// A running display; `finish` stops it.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Progress {
    pub fn start(&self, tally: Arc<Tally>, counts: LedgerCounts) -> Running {
        let Progress::Auto { every } = *self else {
            return Running {
                stop: None,
                task: None,
            };
        };
        let total = counts.open();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let tty = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let bar = tty.then(|| {
                let bar = ProgressBar::new(total.max(0) as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed_precise}, {per_sec}, ETA {eta}]",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            });
            let tick = if tty {
                Duration::from_millis(200)
            } else {
                every
            };
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                let done = tokio::select! {
                    _ = interval.tick() => false,
                    _ = &mut stopped => true,
                };
                let sent = tally.sent.load(Ordering::Relaxed);
                let failed = tally.failed.load(Ordering::Relaxed);
                let deferred = tally.deferred.load(Ordering::Relaxed);
                let unknown = tally.unknown.load(Ordering::Relaxed);
                match &bar {
                    Some(bar) => {
                        bar.set_position(sent + failed);
                        bar.set_message(format!("sent {sent} failed {failed} deferred {deferred}"));
                    }
                    None if !done => {
                        tracing::info!(sent, failed, deferred, unknown, total, "progress");
                    }
                    None => {}
                }
                if done {
                    if let Some(bar) = bar {
                        bar.finish_and_clear();
                    }
                    break;
                }
            }
        });
        Running {
            stop: Some(stop),
            task: Some(task),
        }
    }
}
