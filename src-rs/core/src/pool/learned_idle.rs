//! The learned idle timeout: how long a key's server keeps an idle
//! connection open, learned from the connections it closed while they
//! were parked, so that the pool retires them first.

use std::time::Duration;

use tokio::time::Instant;

/// How long an observation is trusted: after this long without a shorter
/// or newer one, it is forgotten (a server that raised its timeout is
/// learned again from its next close).
pub(crate) const LEARNED_IDLE_MEMORY: Duration = Duration::from_secs(600);

/// Closes after less idle time than this teach nothing: a server that
/// restarts or sheds load closes every connection at once, and those it
/// had just served are no sign of an idle timeout.
const LEAST_LEARNED: Duration = Duration::from_millis(250);

/// The margin kept before the server's timeout: retire at 80 % of it or
/// 500 ms before it, whichever is sooner, but never before half of it.
const MARGIN: Duration = Duration::from_millis(500);

/// Closes this close together whose idle times differ by more than this
/// were no idle timeout: a server's timeout closes each connection at its
/// own idle time, while a restart or load shedding closes every connection
/// at once, however long each had been idle.
const BURST: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LearnedIdle {
    /// The shortest idle time after which the server closed, and when.
    shortest: Option<(Duration, Instant)>,
    /// The last close observed, and what was known before it (restored
    /// when a close of a different idle time follows at once).
    last: Option<LastClose>,
    /// Until then closes teach nothing: the server was closing everything.
    burst_until: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct LastClose {
    at: Instant,
    idle_for: Duration,
    before: Option<(Duration, Instant)>,
}

impl LearnedIdle {
    /// The server closed a connection idle for `idle_for`; true when this
    /// changes what is known.
    pub(crate) fn observe(&mut self, idle_for: Duration, now: Instant) -> bool {
        if idle_for < LEAST_LEARNED || self.burst_until.is_some_and(|until| now < until) {
            return false;
        }
        let known = self.current(now);
        let last = self
            .last
            .filter(|l| now.saturating_duration_since(l.at) < BURST);
        if let Some(last) = last.filter(|l| l.idle_for.abs_diff(idle_for) > BURST) {
            // Connections of different idle times closed together: undo
            // what the first of them taught.
            self.shortest = last.before;
            self.last = None;
            self.burst_until = Some(now + BURST);
            return self.current(now) != known;
        }
        self.last = Some(LastClose {
            at: now,
            idle_for,
            before: self.shortest,
        });
        match known {
            Some(known) if known <= idle_for => false,
            _ => {
                self.shortest = Some((idle_for, now));
                true
            }
        }
    }

    /// The server's idle timeout as learned, unless forgotten.
    pub(crate) fn current(&self, now: Instant) -> Option<Duration> {
        self.shortest
            .filter(|(_, at)| now.saturating_duration_since(*at) < LEARNED_IDLE_MEMORY)
            .map(|(d, _)| d)
    }

    /// How long a parked connection of this key may stay idle, if learned.
    pub(crate) fn keep_idle_for(&self, now: Instant) -> Option<Duration> {
        self.current(now).map(retire_before)
    }
}

/// The idle time to retire at, for a server that closes after `server`.
pub(crate) fn retire_before(server: Duration) -> Duration {
    let by_share = server.mul_f64(0.8);
    let by_margin = server.saturating_sub(MARGIN);
    by_share.min(by_margin).max(server / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_the_sooner_of_80_percent_and_500_ms_but_at_least_half() {
        let ms = Duration::from_millis;
        assert_eq!(retire_before(ms(10_000)), ms(8_000));
        assert_eq!(retire_before(ms(2_000)), ms(1_500));
        assert_eq!(retire_before(ms(800)), ms(400));
        assert_eq!(retire_before(ms(100)), ms(50));
    }

    #[test]
    fn keeps_the_shortest_and_forgets_it_in_time() {
        let t0 = Instant::now();
        let (t1, t2) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
        let mut learned = LearnedIdle::default();
        assert!(learned.observe(Duration::from_secs(5), t0));
        assert!(
            !learned.observe(Duration::from_secs(6), t1),
            "longer: nothing new"
        );
        assert!(learned.observe(Duration::from_secs(2), t2));
        assert_eq!(learned.current(t2), Some(Duration::from_secs(2)));
        let later = t2 + LEARNED_IDLE_MEMORY;
        assert_eq!(learned.current(later), None, "forgotten");
        assert!(
            learned.observe(Duration::from_secs(9), later),
            "learned again"
        );
        assert!(
            !learned.observe(Duration::from_millis(100), later),
            "a close right after use is no idle timeout"
        );
    }

    #[test]
    fn a_restart_that_closes_connections_of_every_idle_time_at_once_teaches_nothing() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        for ages in [[700, 3_000, 1_500], [3_000, 700, 1_500]] {
            let mut learned = LearnedIdle::default();
            assert!(learned.observe(ms(5_000), t0), "a timeout learned first");
            let restart = t0 + ms(60_000);
            for (i, age) in ages.into_iter().enumerate() {
                learned.observe(ms(age), restart + ms(i as u64));
            }
            assert_eq!(learned.current(restart), Some(ms(5_000)), "{ages:?}");
            // Once the burst is over, a close teaches again.
            let after = restart + BURST + ms(10);
            assert!(learned.observe(ms(2_000), after));
            assert_eq!(learned.current(after), Some(ms(2_000)));
        }
    }

    #[test]
    fn connections_parked_together_closing_together_at_their_timeout_teach_it() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut learned = LearnedIdle::default();
        assert!(learned.observe(ms(800), t0));
        assert!(!learned.observe(ms(810), t0 + ms(10)));
        assert!(learned.observe(ms(790), t0 + ms(20)));
        assert_eq!(learned.current(t0 + ms(20)), Some(ms(790)));
    }
}
