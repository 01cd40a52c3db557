//! How many connections are in each state, kept for the pool and for each
//! key. Every change of state is one `moved` (or `entered` / `left`), so
//! the counts cannot drift apart; a count that would go below zero is a
//! bug, caught by a debug assertion (and by overflow checks in release).

/// A state a connection (or a loan of a multiplexed one) can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Parked on an idle list.
    Idle,
    /// Taken off the idle list for a liveness check (still idle to users).
    Checking,
    /// Lent out (one user at a time).
    Active,
    /// Room reserved, connect in progress.
    Connecting,
    /// A multiplexed connection with no stream.
    SharedIdle,
    /// A multiplexed connection with streams.
    SharedBusy,
    /// One loan of a multiplexed connection.
    Stream,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    pub(crate) idle: usize,
    pub(crate) checking: usize,
    pub(crate) active: usize,
    pub(crate) connecting: usize,
    pub(crate) shared_idle: usize,
    pub(crate) shared_busy: usize,
    pub(crate) streams: usize,
}

impl Gauges {
    fn count(&mut self, slot: Slot) -> &mut usize {
        match slot {
            Slot::Idle => &mut self.idle,
            Slot::Checking => &mut self.checking,
            Slot::Active => &mut self.active,
            Slot::Connecting => &mut self.connecting,
            Slot::SharedIdle => &mut self.shared_idle,
            Slot::SharedBusy => &mut self.shared_busy,
            Slot::Stream => &mut self.streams,
        }
    }

    pub(crate) fn entered(&mut self, slot: Slot) {
        *self.count(slot) += 1;
    }

    pub(crate) fn left(&mut self, slot: Slot) {
        let count = self.count(slot);
        debug_assert!(*count > 0, "a gauge went below zero: {slot:?}");
        *count -= 1;
    }

    pub(crate) fn moved(&mut self, from: Slot, to: Slot) {
        self.left(from);
        self.entered(to);
    }

    /// Connections that count against the limits: open or connecting.
    pub(crate) fn total(&self) -> usize {
        self.open() + self.connecting
    }

    /// Open connections: idle or in use.
    pub(crate) fn open(&self) -> usize {
        self.idle_count() + self.in_use()
    }

    /// Connections nobody uses: parked, being checked, multiplexed without streams.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle + self.checking + self.shared_idle
    }

    /// Connections in use: lent out, or multiplexed with streams.
    pub(crate) fn in_use(&self) -> usize {
        self.active + self.shared_busy
    }

    /// Multiplexed connections.
    pub(crate) fn multiplexed(&self) -> usize {
        self.shared_idle + self.shared_busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_the_total_and_views_add_up() {
        let mut g = Gauges::default();
        g.entered(Slot::Connecting);
        g.moved(Slot::Connecting, Slot::Active);
        g.moved(Slot::Active, Slot::Idle);
        g.entered(Slot::Connecting);
        g.moved(Slot::Connecting, Slot::SharedBusy);
        g.entered(Slot::Stream);
        assert_eq!(
            (
                g.total(),
                g.open(),
                g.idle_count(),
                g.in_use(),
                g.multiplexed()
            ),
            (2, 2, 1, 1, 1)
        );
        assert_eq!(g.streams, 1);
    }

    #[test]
    #[should_panic(expected = "below zero")]
    fn a_gauge_below_zero_is_caught() {
        Gauges::default().left(Slot::Active);
    }
}
