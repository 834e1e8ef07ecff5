//! Time for the delivery engine, as a value: [`Clock`] answers "what time is
//! it" (calendar time for the ledger, monotonic time for pacing) and sleeps.
//!
//! Production runs on the system clock. [`Clock::starting_at`] runs from a
//! chosen calendar time onwards (the system clock shifted by a fixed offset).
//! [`ManualClock`] stands still until it is advanced; advancing it wakes the
//! sleepers whose time has come, so engine tests decide how much time
//! passes instead of waiting for it.
//!
//! The engine (claimer, workers, recorder, pacer, retry policy) takes every
//! "now" and every pause from the clock it is given. Network timeouts in
//! `mailer/` and the lease renewal stay on the system clock: they bound real
//! I/O and coordinate real processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the engine's time comes from. Cheap to clone; clones share time.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    System,
    /// The system clock shifted by a fixed amount (calendar time only;
    /// monotonic time and sleeps are the system's).
    Offset(TimeDelta),
    Manual(Arc<Manual>),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system clock (production).
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that reads `start` now and runs at the system clock's pace
    /// from there.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock(Source::Offset(start - Utc::now()))
    }

    /// Calendar time.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now(),
            Source::Offset(by) => Utc::now() + *by,
            Source::Manual(m) => m.wall + m.elapsed(),
        }
    }

    /// Calendar time in the stored text form (`store::format_time`).
    pub fn now_text(&self) -> String {
        crate::store::format_time(self.now())
    }

    /// Monotonic time, for measuring and pacing.
    pub fn instant(&self) -> Instant {
        match &self.0 {
            Source::System | Source::Offset(_) => Instant::now(),
            Source::Manual(m) => m.base + m.elapsed(),
        }
    }

    /// Sleep until `deadline` (of [`Clock::instant`]); returns at once if it
    /// has passed.
    pub async fn sleep_until(&self, deadline: Instant) {
        match &self.0 {
            Source::System | Source::Offset(_) => tokio::time::sleep_until(deadline).await,
            Source::Manual(m) => {
                m.sleep_until(deadline.saturating_duration_since(m.base))
                    .await
            }
        }
    }

    /// Sleep for `duration` of this clock's time.
    pub async fn sleep(&self, duration: Duration) {
        self.sleep_until(self.instant() + duration).await
    }

    /// Time since `earlier` (of [`Clock::instant`]).
    pub fn elapsed_since(&self, earlier: Instant) -> Duration {
        self.instant().saturating_duration_since(earlier)
    }
}

/// A clock that moves only when told to, for tests. [`ManualClock::clock`]
/// gives the [`Clock`] to hand to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug)]
struct Manual {
    /// Calendar time when the clock was made.
    wall: DateTime<Utc>,
    /// Monotonic time when the clock was made.
    base: Instant,
    state: watch::Sender<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Time advanced so far.
    elapsed: Duration,
    /// Sleepers still waiting: (deadline, id) → ().
    sleepers: BTreeMap<(Duration, u64), ()>,
    next_id: u64,
}

impl Manual {
    fn elapsed(&self) -> Duration {
        self.state.borrow().elapsed
    }

    async fn sleep_until(&self, deadline: Duration) {
        let mut rx = self.state.subscribe();
        let mut key = None;
        self.state.send_if_modified(|s| {
            if s.elapsed >= deadline {
                return false;
            }
            let id = s.next_id;
            s.next_id += 1;
            s.sleepers.insert((deadline, id), ());
            key = Some((deadline, id));
            true
        });
        let Some(key) = key else { return };
        // Deregisters on wake-up and on cancellation (a `select!` that took
        // another branch).
        let _registered = Registration {
            state: &self.state,
            key,
        };
        let _ = rx.wait_for(|s| s.elapsed >= deadline).await;
    }
}

struct Registration<'a> {
    state: &'a watch::Sender<State>,
    key: (Duration, u64),
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.state
            .send_if_modified(|s| s.sleepers.remove(&self.key).is_some());
    }
}

impl ManualClock {
    /// A clock standing at `start` (calendar time).
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(Manual {
            wall: start,
            base: Instant::now(),
            state: watch::channel(State::default()).0,
        }))
    }

    /// The clock to give to the code under test.
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(self.0.clone()))
    }

    /// Time advanced since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// Move time forward, waking every sleeper whose deadline is reached.
    pub fn advance(&self, by: Duration) {
        self.0.state.send_modify(|s| s.elapsed += by);
    }

    /// How many tasks are sleeping on this clock.
    pub fn sleepers(&self) -> usize {
        self.0.state.borrow().sleepers.len()
    }

    /// The earliest deadline a sleeper waits for, as time from now.
    pub fn next_wake(&self) -> Option<Duration> {
        let s = self.0.state.borrow();
        s.sleepers
            .keys()
            .next()
            .map(|(at, _)| at.saturating_sub(s.elapsed))
    }

    /// Wait (in real time) until at least `n` tasks sleep on this clock.
    pub async fn until_sleepers(&self, n: usize) {
        let mut rx = self.0.state.subscribe();
        let _ = rx.wait_for(|s| s.sleepers.len() >= n).await;
    }

    /// Wait (in real time) until at least `n` tasks sleep on this clock
    /// for a time still ahead (not merely woken and yet to run).
    pub async fn until_asleep(&self, n: usize) {
        let mut rx = self.0.state.subscribe();
        let _ = rx
            .wait_for(|s| s.sleepers.keys().filter(|(at, _)| *at > s.elapsed).count() >= n)
            .await;
    }

    /// Advance to the earliest sleeper's deadline (none: no change) and
    /// return how far the clock moved.
    pub fn advance_to_next_wake(&self) -> Duration {
        let by = self.next_wake().unwrap_or_default();
        self.advance(by);
        by
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        "2030-01-06T07:00:00Z".parse().unwrap()
    }

    #[tokio::test]
    async fn a_manual_clock_stands_still_until_advanced_and_then_wakes_sleepers() {
        let manual = ManualClock::new(start());
        let clock = manual.clock();
        let t0 = clock.instant();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep(Duration::from_secs(60)).await;
                clock.now()
            })
        };
        manual.until_sleepers(1).await;
        assert_eq!(manual.next_wake(), Some(Duration::from_secs(60)));
        manual.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        assert_eq!(manual.sleepers(), 1);
        manual.advance(Duration::from_secs(1));
        let woke_at = sleeper.await.unwrap();
        assert_eq!(woke_at, start() + TimeDelta::seconds(60));
        assert_eq!(clock.elapsed_since(t0), Duration::from_secs(60));
        assert_eq!(manual.sleepers(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_sleep_is_forgotten_and_a_past_deadline_returns_at_once() {
        let manual = ManualClock::new(start());
        let clock = manual.clock();
        tokio::select! {
            _ = clock.sleep(Duration::from_secs(5)) => unreachable!("time stands still"),
            _ = tokio::task::yield_now() => {}
        }
        assert_eq!(manual.sleepers(), 0);
        let past = clock.instant();
        manual.advance(Duration::from_secs(1));
        clock.sleep_until(past).await;
        clock.sleep(Duration::ZERO).await;
        assert_eq!(manual.advance_to_next_wake(), Duration::ZERO);
    }

    #[test]
    fn a_clock_starting_at_a_time_reads_that_time_and_runs_on() {
        let clock = Clock::starting_at(start());
        let drift = (clock.now() - start()).abs();
        assert!(drift < TimeDelta::seconds(5), "{drift}");
        assert!(clock.now() >= start());
        assert!(Clock::system().now() > start() - TimeDelta::days(36500));
    }
}
