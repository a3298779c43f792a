//! Pacing: the open-loop timetable (with its ramp), each shard's share of
//! it, and the closed-loop ramp.
//!
//! **Open loop** (`--rate R`). Start `g` = 0, 1, 2, ... of the run is due at
//! `t0 + offset(g)`: `g / R` at a constant rate, or, with a ramp of length
//! T, the inverse of the ramp's cumulative count `n(t) = R t² / 2T`
//! (`offset(g) = sqrt(2 T g / R)` until `g = R T / 2`, then `T + (g - R T /
//! 2) / R`): the rate climbs linearly from 0 to R over T. Shard `s` of `S`
//! owns starts `s, s + S, s + 2S, ...` ([`Slots`]). A free client of the
//! shard takes the next start, sleeps until it is due and sends it; its
//! latency is measured from the due time, so a start that waited for a
//! busy client is charged the wait (the coordinated-omission correction of
//! wrk2). When a start falls due and no client has taken it, every client
//! is busy: the shard adds a virtual client if `--max-clients` allows.
//! Starts still untaken when the run ends, though due before its end, are
//! *missed* and counted (k6's dropped iterations).
//!
//! **Closed loop.** With a ramp, client `i` of `C` starts at `t0 + T·i/C`.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The open-loop timetable of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Timetable {
    /// Requests a second once ramped up.
    pub rate: f64,
    /// Ramp length in seconds (0: none).
    pub ramp_s: f64,
}

impl Timetable {
    /// The timetable of `rate` starts a second after a linear ramp of
    /// `ramp`.
    pub(crate) fn new(rate: f64, ramp: Option<Duration>) -> Timetable {
        Timetable {
            rate,
            ramp_s: ramp.map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    /// When start `g` is due, from the start of the run.
    pub(crate) fn offset(&self, g: u64) -> Duration {
        let (g, r, t) = (g as f64, self.rate, self.ramp_s);
        let during_ramp = r * t / 2.0;
        let secs = if g < during_ramp {
            (2.0 * t * g / r).sqrt()
        } else {
            t + (g - during_ramp) / r
        };
        Duration::from_secs_f64(secs.min(1e9))
    }
}

/// One shard's share of the timetable: starts `shard, shard + stride, ...`
/// below `limit` (the run's `--requests`, when given).
#[derive(Debug)]
pub(crate) struct Slots {
    table: Timetable,
    start: Instant,
    shard: u64,
    stride: u64,
    limit: Option<u64>,
    /// The shard's next untaken start, counted in its own starts.
    next: Cell<u64>,
}

impl Slots {
    /// Shard `shard` of `stride`'s starts of `table`, from `start`.
    pub(crate) fn new(
        table: Timetable,
        start: Instant,
        shard: usize,
        stride: usize,
        limit: Option<u64>,
    ) -> Slots {
        Slots {
            table,
            start,
            shard: shard as u64,
            stride: stride as u64,
            limit,
            next: Cell::new(0),
        }
    }

    fn global(&self, k: u64) -> Option<u64> {
        let g = self.shard + k * self.stride;
        self.limit.is_none_or(|n| g < n).then_some(g)
    }

    /// The next untaken start (its global number and due time), without
    /// taking it; None when the limit is reached.
    pub(crate) fn peek(&self) -> Option<(u64, Instant)> {
        let g = self.global(self.next.get())?;
        Some((g, self.start + self.table.offset(g)))
    }

    /// Takes the next start; None when the limit is reached.
    pub(crate) fn take(&self) -> Option<(u64, Instant)> {
        let s = self.peek()?;
        self.next.set(self.next.get() + 1);
        Some(s)
    }

    /// The untaken starts due before `end`: the run's missed starts, in
    /// order (their due times).
    pub(crate) fn missed_before(&self, end: Instant) -> impl Iterator<Item = Instant> + '_ {
        let first = self.next.get();
        (first..)
            .map_while(move |k| self.global(k))
            .map(move |g| self.start + self.table.offset(g))
            .take_while(move |&t| t < end)
    }
}

/// Closed loop: when client `index` of `clients` starts, with a ramp.
pub(crate) fn closed_loop_start(
    start: Instant,
    ramp: Option<Duration>,
    index: usize,
    clients: usize,
) -> Instant {
    match ramp {
        Some(r) => start + r.mul_f64(index as f64 / clients as f64),
        None => start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate() {
        let t = Timetable::new(100.0, None);
        assert_eq!(t.offset(0), Duration::ZERO);
        assert_eq!(t.offset(100), Duration::from_secs(1));
        assert_eq!(t.offset(250), Duration::from_millis(2500));
    }

    #[test]
    fn the_ramp_climbs_linearly() {
        // 100/s after a 10 s ramp: 500 starts during the ramp, a quarter of
        // them (125) in its first half, then 100 a second.
        let t = Timetable::new(100.0, Some(Duration::from_secs(10)));
        let secs = |g| t.offset(g).as_secs_f64();
        assert!((secs(125) - 5.0).abs() < 1e-9);
        assert!((secs(500) - 10.0).abs() < 1e-9);
        assert!((secs(600) - 11.0).abs() < 1e-9);
        let starts_in = |a: f64, b: f64| (0..2000).filter(|&g| (a..b).contains(&secs(g))).count();
        assert_eq!(starts_in(0.0, 1.0), 5);
        assert_eq!(starts_in(9.0, 10.0), 95);
        assert_eq!(starts_in(12.0, 13.0), 100);
    }

    #[test]
    fn shards_split_the_timetable_and_count_what_they_miss() {
        let t0 = Instant::now();
        let table = Timetable::new(10.0, None);
        let a = Slots::new(table, t0, 0, 2, Some(7));
        let b = Slots::new(table, t0, 1, 2, Some(7));
        let ga: Vec<u64> = std::iter::from_fn(|| a.take().map(|s| s.0)).collect();
        let gb: Vec<u64> = std::iter::from_fn(|| b.take().map(|s| s.0)).collect();
        assert_eq!((ga, gb), (vec![0, 2, 4, 6], vec![1, 3, 5]));
        let c = Slots::new(table, t0, 0, 1, None);
        c.take();
        c.take();
        // Starts 2..=9 are due before 1 s (0.2 s .. 0.9 s).
        assert_eq!(c.missed_before(t0 + Duration::from_secs(1)).count(), 8);
        assert_eq!(c.peek().unwrap().1, t0 + Duration::from_millis(200));
    }

    #[test]
    fn closed_loop_ramp_spreads_clients() {
        let t0 = Instant::now();
        let r = Some(Duration::from_secs(4));
        assert_eq!(closed_loop_start(t0, r, 0, 4), t0);
        assert_eq!(closed_loop_start(t0, r, 3, 4), t0 + Duration::from_secs(3));
        assert_eq!(closed_loop_start(t0, None, 3, 4), t0);
    }
}
