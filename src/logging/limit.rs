//! Rate limits for refusal log lines, per client address, per shard.
//!
//! A client that sends a thousand refused commands a second would
//! otherwise write a thousand lines a second: journald's default limit
//! (10,000 messages per 30 s) then drops everyone's lines, and the log
//! says nothing new anyway. Each address gets a token bucket: a burst of
//! [`BURST`] lines, then one every [`REFILL`]. A line that does get
//! through carries the count of those left out since the last one, so
//! the log still says how much was refused; the metrics count every
//! refusal regardless.
//!
//! Per shard and lock-free (a shard's table is its own). SO_REUSEPORT
//! spreads one address's connections over the shards, so the burst is per
//! shard: at most `cores` times as many lines, never unbounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Lines an address may log at once.
pub const BURST: u32 = 20;

/// After the burst, one more line per this long.
pub const REFILL: Duration = Duration::from_secs(5);

/// Addresses tracked at most; past this, addresses whose bucket has
/// refilled are forgotten (and if that is not enough, all of them).
const MAX_PEERS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Lines it may log now (a whole token per line).
    tokens: u32,
    /// When the next token is added.
    refill_at: Instant,
    /// Lines left out since the last one logged.
    suppressed: u64,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: BURST,
            refill_at: now + REFILL,
            suppressed: 0,
        }
    }

    fn refill(&mut self, now: Instant) {
        while self.tokens < BURST && now >= self.refill_at {
            self.tokens += 1;
            self.refill_at += REFILL;
        }
        if self.tokens == BURST && now >= self.refill_at {
            self.refill_at = now + REFILL;
        }
    }
}

/// One shard's refusal-line budgets, by client address.
#[derive(Default)]
pub struct RefusalLog {
    peers: RefCell<HashMap<IpAddr, Bucket>>,
}

impl RefusalLog {
    /// Whether a refusal line about `ip` may be logged at `now`:
    /// `Some(n)` with `n` lines left out before it, or `None` to leave
    /// this one out.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut peers = self.peers.borrow_mut();
        if peers.len() >= MAX_PEERS && !peers.contains_key(&ip) {
            peers.retain(|_, b| {
                b.refill(now);
                b.tokens < BURST || b.suppressed > 0
            });
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let b = peers.entry(ip).or_insert_with(|| Bucket::new(now));
        b.refill(now);
        if b.tokens == 0 {
            b.suppressed += 1;
            return None;
        }
        b.tokens -= 1;
        Some(std::mem::take(&mut b.suppressed))
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.borrow().len()
    }
}

/// What a logged line adds about the lines left out before it: nothing,
/// or ` (N earlier lines about this address not logged)`.
pub struct Suppressed(pub u64);

impl std::fmt::Display for Suppressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " ({n} earlier lines about this address not logged)"),
        }
    }
}

/// A count of events logged as one line at most every `every`: the
/// events in between are summed into the next line that is due. For a
/// shard-wide event that a busy shard can meet dozens of times a second
/// (its idle pipes closed for another shard's fd shortage).
#[derive(Debug)]
pub struct Tally {
    every: Duration,
    /// No line before this.
    quiet_until: Option<Instant>,
    /// Counted since the last line.
    unlogged: usize,
}

impl Tally {
    /// A tally whose lines are at least `every` apart; the first count is
    /// logged at once.
    pub fn new(every: Duration) -> Tally {
        Tally {
            every,
            quiet_until: None,
            unlogged: 0,
        }
    }

    /// Counts `n` more at `now`; returns the sum to log when a line is
    /// due (something counted, and `every` since the last line).
    pub fn add(&mut self, n: usize, now: Instant) -> Option<usize> {
        self.unlogged += n;
        if self.unlogged == 0 || self.quiet_until.is_some_and(|t| now < t) {
            return None;
        }
        self.quiet_until = Some(now + self.every);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_refill_with_the_count_left_out() {
        let log = RefusalLog::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(log.allow(ip, t0), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(log.allow(ip, t0), None);
        }
        // Another address has its own budget.
        assert_eq!(log.allow(other, t0), Some(0));
        // One token back after REFILL: the line says 7 were left out.
        assert_eq!(log.allow(ip, t0 + REFILL), Some(7));
        assert_eq!(log.allow(ip, t0 + REFILL), None);
        // A long quiet spell refills the whole burst, no more.
        let later = t0 + REFILL * (BURST * 10);
        for i in 0..BURST {
            assert_eq!(log.allow(ip, later), Some(if i == 0 { 1 } else { 0 }));
        }
        assert_eq!(log.allow(ip, later), None);
    }

    #[test]
    fn suppressed_note() {
        assert_eq!(Suppressed(0).to_string(), "");
        assert_eq!(
            Suppressed(3).to_string(),
            " (3 earlier lines about this address not logged)"
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            assert_eq!(log.allow(ip, t0), Some(0));
        }
        assert!(log.tracked() <= MAX_PEERS, "{}", log.tracked());
    }

    #[test]
    fn a_tally_logs_at_most_once_per_period_and_loses_no_count() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = Tally::new(Duration::from_secs(10));
        assert_eq!(t.add(0, t0), None, "nothing counted, nothing logged");
        assert_eq!(t.add(2, t0), Some(2), "the first count logs at once");
        assert_eq!(t.add(1, t0 + s), None);
        assert_eq!(t.add(0, t0 + 5 * s), None);
        assert_eq!(t.add(3, t0 + 9 * s), None);
        // The period over: the next count logs what came between.
        assert_eq!(t.add(1, t0 + 10 * s), Some(5));
        assert_eq!(t.add(1, t0 + 11 * s), None);
        assert_eq!(
            t.add(0, t0 + 20 * s),
            Some(1),
            "a zero count still flushes the held one"
        );
        assert_eq!(t.add(0, t0 + 40 * s), None);
    }
}
