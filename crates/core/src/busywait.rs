//! How a connection waits for another process's lock (SQLite's busy
//! handler): the polling policy, pure so `cargo test` checks it.
//!
//! SQLite's own back-off (1, 2, 5, ... 50, 100 ms) sleeps longer the
//! longer a process has waited: under steady contention the process that
//! waited longest polls least often, and a process that commits and begins
//! again within microseconds takes the lock back before the sleeper looks.
//! Here the interval never grows with the wait; it *shrinks*: a waiter
//! polls every 200 us, then every 100 us after 20 ms, then every 50 us
//! after 200 ms, so the oldest waiter is the likeliest to see the lock
//! free first. Each poll costs a few system calls (~10 us), and waits are
//! short when transactions are, so the CPU spent polling stays small.
//! A process that had to wait lately also leaves a short gap ([`HAND_OFF`])
//! between its write transactions, so a waiter can take its turn.
//! See docs/0011-fair-write-lock.md for the measurements.

use std::time::Duration;

/// From this much waiting on, the waiter checks for Python signals.
pub const CHECK_AFTER: Duration = Duration::from_millis(40);

/// ... and then at most this often (taking the GIL costs more than a poll).
pub const CHECK_EVERY: Duration = Duration::from_millis(20);

/// The sleep before the next poll, given how long this wait has lasted.
#[inline]
pub fn interval(waited: Duration) -> Duration {
    if waited < Duration::from_millis(20) {
        Duration::from_micros(200)
    } else if waited < Duration::from_millis(200) {
        Duration::from_micros(100)
    } else {
        Duration::from_micros(50)
    }
}

/// A process that had to wait for the lock within this long counts as
/// contended (others are likely waiting too).
pub const CONTENDED_FOR: Duration = Duration::from_millis(100);

/// While contended, a process lets this much time pass between the end of
/// its write transaction and its next `BEGIN IMMEDIATE`, so a waiter
/// (polling every 50–200 us) sees the lock free before it is taken back.
pub const HAND_OFF: Duration = Duration::from_micros(250);

/// The pause before `BEGIN IMMEDIATE`: `since_wait` is how long ago this
/// connection last had to wait for the lock, `since_end` how long ago its
/// last write transaction ended (None: not known). No pause unless both
/// are recent.
#[inline]
pub fn pause(since_wait: Duration, since_end: Option<Duration>) -> Option<Duration> {
    match since_end {
        Some(end) if since_wait < CONTENDED_FOR && end < HAND_OFF => Some(HAND_OFF - end),
        _ => None,
    }
}

/// What the busy handler does next.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Step {
    /// Give up: the wait reached the timeout (SQLite returns SQLITE_BUSY).
    TimedOut,
    /// Check for signals, then sleep this long and poll again.
    CheckThenSleep(Duration),
    /// Sleep this long and poll again.
    Sleep(Duration),
}

/// The decision after `waited` of waiting, bounded by `timeout`, when the
/// last signal check happened at `checked` into the wait (None: never).
pub fn next(waited: Duration, timeout: Duration, checked: Option<Duration>) -> Step {
    if waited >= timeout {
        return Step::TimedOut;
    }
    let sleep = interval(waited).min(timeout - waited);
    let due =
        waited >= CHECK_AFTER && checked.is_none_or(|at| waited.saturating_sub(at) >= CHECK_EVERY);
    if due {
        Step::CheckThenSleep(sleep)
    } else {
        Step::Sleep(sleep)
    }
}

/// The message of the error raised when a wait reached the timeout.
pub fn timeout_message(waited: Duration, timeout: Duration) -> String {
    format!(
        "database is locked: waited {:.1} s for another process's write lock on this file \
         (timeout={} s); another process keeps a write transaction open: keep write \
         transactions short, or open the Database with a larger timeout",
        waited.as_secs_f64(),
        timeout.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_interval_never_grows_with_the_wait() {
        let mut last = interval(Duration::ZERO);
        assert!(last <= Duration::from_micros(200));
        for ms in 0..6000 {
            let d = interval(MS * ms);
            assert!(d <= last, "{ms} ms: {d:?} after {last:?}");
            assert!(d >= Duration::from_micros(50));
            last = d;
        }
    }

    #[test]
    fn the_wait_ends_at_the_timeout_and_never_sleeps_past_it() {
        let timeout = MS * 300;
        assert_eq!(next(timeout, timeout, None), Step::TimedOut);
        assert_eq!(next(MS * 301, timeout, None), Step::TimedOut);
        assert_eq!(next(Duration::ZERO, Duration::ZERO, None), Step::TimedOut);
        let near = timeout - Duration::from_micros(30);
        match next(near, timeout, Some(near)) {
            Step::Sleep(d) => assert_eq!(d, Duration::from_micros(30)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signals_are_checked_after_40_ms_then_every_20_ms() {
        let t = Duration::from_secs(5);
        assert!(matches!(next(MS * 39, t, None), Step::Sleep(_)));
        assert!(matches!(next(MS * 40, t, None), Step::CheckThenSleep(_)));
        assert!(matches!(next(MS * 50, t, Some(MS * 40)), Step::Sleep(_)));
        assert!(matches!(
            next(MS * 60, t, Some(MS * 40)),
            Step::CheckThenSleep(_)
        ));
        // Simulated: every gap between checks is <= 20 ms plus one poll.
        let (mut waited, mut checked, mut last_gap) = (Duration::ZERO, None, Duration::ZERO);
        while waited < t {
            match next(waited, t, checked) {
                Step::TimedOut => break,
                Step::CheckThenSleep(d) => {
                    if let Some(at) = checked {
                        last_gap = last_gap.max(waited - at);
                    }
                    checked = Some(waited);
                    waited += d + Duration::from_micros(10);
                }
                Step::Sleep(d) => waited += d + Duration::from_micros(10),
            }
        }
        assert!(last_gap <= CHECK_EVERY + MS, "{last_gap:?}");
    }

    #[test]
    fn a_contended_process_pauses_before_taking_the_lock_again() {
        let us = Duration::from_micros(1);
        assert_eq!(pause(MS, Some(us * 50)), Some(us * 200));
        assert_eq!(pause(MS, Some(HAND_OFF)), None);
        assert_eq!(pause(MS, None), None);
        // No contention seen lately: never a pause.
        assert_eq!(pause(CONTENDED_FOR, Some(Duration::ZERO)), None);
    }

    #[test]
    fn the_message_says_how_long_it_waited() {
        let m = timeout_message(Duration::from_millis(5003), Duration::from_secs(5));
        assert!(m.starts_with("database is locked: waited 5.0 s"), "{m}");
        assert!(m.contains("timeout=5 s"), "{m}");
    }
}
