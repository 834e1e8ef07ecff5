//! The send-rate limiter shared by all workers: a global pacer plus optional
//! per-recipient-domain pacers, applied at the moment of sending.
//!
//! A pacer hands out evenly spaced send slots and a worker sleeps until its
//! slot. The slot is reserved *before* sleeping, so a worker that wakes a
//! little late does not shift everyone after it: with workers queued, the
//! achieved rate equals the configured one. (governor's GCRA limiter checks
//! after waking and lost ~3 % at 200 msg/s here, outside the ±2 % target.)
//! Slots that fell behind (the process was starved for a moment) are caught
//! up, but never faster than the window cap allows: no trailing second ever
//! holds more than rate + burst sends.
//!
//! A slot less than one timer tick away is taken without sleeping: tokio's
//! timer rounds every sleep up to the next millisecond, which at high rates
//! would cost a tick per message. The next slot still follows the reserved
//! one by exactly one period, so the average rate stays the configured one.
//! Time comes from the engine's [`Clock`].
//!
//! When several processes share one send (PostgreSQL), each paces itself
//! at its share of the configured rates: [`SendLimiter::set_share`] divides
//! every rate by the number of live senders.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::SenderSettings;

const WINDOW: Duration = Duration::from_secs(1);

/// The timer's resolution: a wait shorter than this is not slept.
const TICK: Duration = Duration::from_millis(1);

/// Sleep until `at` unless it is less than a tick away.
async fn wait_until(clock: &Clock, at: Instant) {
    if at.saturating_duration_since(clock.instant()) >= TICK {
        clock.sleep_until(at).await;
    }
}

/// Evenly spaced send slots with a sliding one-second cap.
pub struct Pacer {
    /// The configured rate (of all senders together).
    per_second: f64,
    burst: u32,
    state: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    next: Option<Instant>,
    /// Send times within the last second, oldest first.
    recent: VecDeque<Instant>,
    period: Duration,
    /// How far behind `now` the next slot may lie (burst − 1 periods).
    slack: Duration,
    /// Most sends in any trailing second: rate + burst.
    cap: usize,
}

impl Schedule {
    /// Pace at `per_second`.
    fn set_rate(&mut self, per_second: f64, burst: u32) {
        self.period = Duration::from_secs_f64(1.0 / per_second);
        self.slack = self.period.saturating_mul(burst - 1);
        self.cap = (per_second.floor() as usize)
            .saturating_add(burst as usize)
            .max(1);
    }
}

impl Pacer {
    pub fn new(per_second: f64, burst: u32) -> Pacer {
        let burst = burst.max(1);
        let mut schedule = Schedule::default();
        schedule.set_rate(per_second, burst);
        Pacer {
            per_second,
            burst,
            state: Mutex::new(schedule),
        }
    }

    /// Pace at `1/senders` of the configured rate from the next slot on.
    pub fn set_share(&self, senders: u32) {
        let share = self.per_second / f64::from(senders.max(1));
        self.lock().set_rate(share, self.burst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve the next slot, sleep until it, then respect the window cap.
    pub async fn until_ready(&self, clock: &Clock) {
        let slot = {
            let mut s = self.lock();
            let now = clock.instant();
            let earliest = now.checked_sub(s.slack).unwrap_or(now);
            let slot = match s.next {
                Some(n) if n > earliest => n,
                _ => earliest,
            };
            s.next = Some(slot + s.period);
            slot
        };
        wait_until(clock, slot).await;
        loop {
            let window_opens = {
                let mut s = self.lock();
                let now = clock.instant();
                while s.recent.front().is_some_and(|t| *t + WINDOW <= now) {
                    s.recent.pop_front();
                }
                if s.recent.len() < s.cap {
                    s.recent.push_back(now);
                    return;
                }
                s.recent[0] + WINDOW
            };
            // Not `wait_until`: the window cap is exact.
            clock.sleep_until(window_opens).await;
        }
    }
}

pub struct SendLimiter {
    global: Pacer,
    domains: HashMap<String, Pacer>,
}

impl SendLimiter {
    pub fn new(sender: &SenderSettings) -> SendLimiter {
        SendLimiter {
            global: Pacer::new(sender.rate_per_second, sender.burst),
            domains: sender
                .domain_rates
                .iter()
                .map(|(domain, rate)| (domain.to_ascii_lowercase(), Pacer::new(*rate, 1)))
                .collect(),
        }
    }

    /// Pace every rate at `1/senders` of its configured value (the number
    /// of processes sharing the send).
    pub fn set_share(&self, senders: u32) {
        self.global.set_share(senders);
        for pacer in self.domains.values() {
            pacer.set_share(senders);
        }
    }

    /// Wait until a message to `domain` may go. The domain slot is waited
    /// for first so a slow domain does not hold a global slot.
    pub async fn until_ready(&self, domain: &str, clock: &Clock) {
        if let Some(d) = self.domains.get(domain) {
            d.until_ready(clock).await;
        }
        self.global.until_ready(clock).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn manual() -> ManualClock {
        ManualClock::new("2030-01-06T07:00:00Z".parse().unwrap())
    }

    /// Run `tasks` tasks that each pass the pacer `each` times, moving the
    /// manual clock to the next wake-up whenever every unfinished task
    /// sleeps. Returns each pass's time, sorted.
    async fn paced(
        clock: &ManualClock,
        pacer: Arc<Pacer>,
        tasks: usize,
        each: usize,
    ) -> Vec<Duration> {
        let start = clock.elapsed();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (pacer, manual, clock) = (pacer.clone(), clock.clone(), clock.clock());
            handles.push(tokio::spawn(async move {
                let mut at = Vec::with_capacity(each);
                for _ in 0..each {
                    pacer.until_ready(&clock).await;
                    at.push(manual.elapsed() - start);
                }
                at
            }));
        }
        drive(clock, &handles).await;
        let mut times = Vec::new();
        for h in handles {
            times.extend(h.await.unwrap());
        }
        times.sort();
        times
    }

    /// Move the manual clock to the next wake-up whenever every unfinished
    /// task sleeps, until all have finished.
    async fn drive<T>(clock: &ManualClock, tasks: &[tokio::task::JoinHandle<T>]) {
        loop {
            tokio::task::yield_now().await;
            let running = tasks.iter().filter(|h| !h.is_finished()).count();
            if running == 0 {
                break;
            }
            if clock.sleepers() == running {
                clock.advance_to_next_wake();
            }
        }
    }

    fn most_in_any_second(times: &[Duration]) -> usize {
        (0..times.len())
            .map(|i| {
                times[..=i]
                    .iter()
                    .filter(|t| **t + WINDOW > times[i])
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_share_of_three_paces_at_a_third_and_the_cap_follows() {
        let clock = manual();
        let pacer = Arc::new(Pacer::new(300.0, 1));
        pacer.set_share(3);
        let at = paced(&clock, pacer.clone(), 4, 100).await;
        // 400 sends at 100/s: the last one 3.99 s after the first.
        assert_eq!(at[399] - at[0], Duration::from_millis(3990));
        assert!(most_in_any_second(&at) <= 101);
        // Back to the whole rate when the others leave.
        pacer.set_share(1);
        let at = paced(&clock, pacer, 4, 100).await;
        assert!(
            at[399] - at[0] < Duration::from_millis(1400),
            "{:?}",
            at[399] - at[0]
        );
    }

    #[tokio::test]
    async fn slots_are_evenly_spaced_and_burst_is_bounded() {
        let clock = manual();
        let pacer = Arc::new(Pacer::new(100.0, 3));
        clock.advance(Duration::from_secs(5)); // idle spell
        let at = paced(&clock, pacer, 1, 10).await;
        // Burst of 3 immediately (slots in the past), then every 10 ms.
        assert_eq!(at[2], Duration::ZERO);
        assert_eq!(at[3], Duration::from_millis(10));
        assert_eq!(at[9], Duration::from_millis(70));
    }

    #[tokio::test]
    async fn a_backlog_after_a_stall_never_exceeds_rate_plus_burst_per_second() {
        let clock = manual();
        let pacer = Arc::new(Pacer::new(10.0, 1));
        let mut waiters = Vec::new();
        for _ in 0..30 {
            let (p, c, m) = (pacer.clone(), clock.clock(), clock.clone());
            waiters.push(tokio::spawn(async move {
                p.until_ready(&c).await;
                m.elapsed()
            }));
        }
        // Every waiter reserves its slot (0 ms, 100 ms, … 2.9 s); then the
        // process stalls past all of them at once.
        clock.until_sleepers(29).await;
        clock.advance(Duration::from_secs(3));
        drive(&clock, &waiters).await;
        let mut times = Vec::new();
        for w in waiters {
            times.push(w.await.unwrap());
        }
        times.sort();
        assert_eq!(
            most_in_any_second(&times),
            11,
            "at most rate + burst sends in any second"
        );
        // The backlog is caught up, not dropped: 30 sends, 11 per second
        // from the stall at 3 s on.
        assert!(times[29] <= Duration::from_millis(5100), "{:?}", times[29]);
    }

    #[tokio::test]
    async fn a_slot_less_than_a_tick_away_is_taken_at_once_and_the_rate_holds() {
        // 2000 a second: a slot every 0.5 ms, finer than the timer.
        let clock = manual();
        let at = paced(&clock, Arc::new(Pacer::new(2000.0, 1)), 1, 1000).await;
        assert_eq!(at[1], Duration::ZERO, "0.5 ms away: no sleep");
        assert_eq!(at[2], Duration::from_millis(1));
        // 1000 slots 0.5 ms apart: the last at 499.5 ms, taken up to a
        // tick early, never later.
        assert!(
            at[999] >= Duration::from_micros(498_500) && at[999] <= Duration::from_micros(499_500),
            "{:?}",
            at[999]
        );
        assert!(most_in_any_second(&at) <= 2001);

        // 600 a second over four workers: 1.67 ms apart, 3000 sends in 5 s.
        let clock = manual();
        let at = paced(&clock, Arc::new(Pacer::new(600.0, 1)), 4, 750).await;
        let last = at[2999].as_secs_f64();
        assert!((last - 2999.0 / 600.0).abs() < 0.002, "{last}");
        assert!(
            most_in_any_second(&at) <= 601,
            "{}",
            most_in_any_second(&at)
        );
    }
}
