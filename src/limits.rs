//! Server-wide limits that every shard enforces on its own: `--max-sessions`,
//! `--max-per-ip` and the global download cap `--max-rate`.
//!
//! Shards share nothing mutable on the hot path, yet these limits are about
//! the whole server, so each needs *some* shared state. None of it is a
//! global lock, and each is touched only where it must be:
//!
//! - **Sessions** are one `AtomicUsize`, incremented when a shard accepts a
//!   connection and decremented when the session ends. Splitting the budget
//!   between shards (N / cores each) would need no sharing at all, but
//!   SO_REUSEPORT spreads connections by a hash of the 4-tuple, not evenly:
//!   with a split budget a client could be refused while another shard
//!   still has room, so the total the operator set would not be the total
//!   served. One atomic read-modify-write per connect is cheaper than the
//!   accept itself and keeps the count exact across shards.
//! - **Per address** counts (an IPv6 client counts as its /64, see
//!   [`crate::access::client_key`]) live in a table of 64 independently locked
//!   stripes (the address's hash picks the stripe). A per-shard count would
//!   be wrong: SO_REUSEPORT sends one address's connections to every shard,
//!   so per-shard counting would allow `cores × N`. A table of atomic
//!   counters indexed by hash (no key stored) would be lock-free but inexact:
//!   two addresses that share a counter would refuse each other's clients.
//!   A stripe is held for one hash-map update at connect and one at close,
//!   never during I/O, and two shards contend only when two addresses
//!   hashing to the same stripe connect in the same instant.
//! - **The global download rate** is a generic cell-rate schedule (GCRA) on
//!   one `AtomicU64`: a transfer that moved `n` bytes pushes the shared
//!   "theoretical arrival time" forward by `n / rate` with a compare-and-swap
//!   and sleeps until then. Splitting the rate between shards would waste
//!   the budget of every shard that has no download running (one client on
//!   a 4-shard server would get a quarter of the cap). The schedule math is
//!   [`schedule`], pure and unit-tested.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::access::client_key;

/// Stripes of the per-address table (a power of two).
const STRIPES: usize = 64;

/// How far a rate schedule may lag behind the clock: the burst a transfer
/// may send at once after being idle (1/8 s of traffic). Without a bound a
/// client that stalled for a minute could then download a minute's worth
/// of bytes at full speed.
pub(crate) const RATE_SLACK: Duration = Duration::from_millis(125);

/// The lowest rate cap (bytes per second) `--max-rate`,
/// `--max-rate-per-session` and an account's `max_download_rate` /
/// `max_upload_rate` take. The pacer moves at least [`PACE_MIN_CHUNK`]
/// bytes at a time, so below this its pauses (half a second here) would
/// near the shortest `--data-timeout` (1 s), whose no-progress watchdog
/// would then abort the server's own paced transfers.
pub(crate) const MIN_RATE: u64 = 1024;

/// The smallest chunk the pacer moves at once, bytes.
pub(crate) const PACE_MIN_CHUNK: u64 = 512;

/// The rule every rate cap (bytes per second) follows, from a flag or the
/// users file: above zero, and at least [`MIN_RATE`]. The error is the
/// reason, for the caller to put its flag or field name in front of.
pub(crate) fn check_rate_cap(bytes_per_s: u64) -> Result<u64, &'static str> {
    match bytes_per_s {
        0 => Err("a rate must be above zero (leave it out for no cap)"),
        n if n < MIN_RATE => Err(
            "a rate cap is at least 1KiB a second (a lower one would pause past --data-timeout between chunks)",
        ),
        n => Ok(n),
    }
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--max-sessions` sessions are open.
    Sessions(usize),
    /// The client's address has `--max-per-ip` sessions open.
    PerAddress(usize),
}

impl Refusal {
    /// The text of the 421 reply.
    pub(crate) fn reply_text(&self) -> String {
        match self {
            Refusal::Sessions(n) => {
                format!("Too many users ({n} sessions open), try again later.")
            }
            Refusal::PerAddress(n) => {
                format!("Too many connections from your address (limit {n}).")
            }
        }
    }
}

/// The limits shared by every shard. Build one with [`Limits::new`] and
/// hand an `Arc` of it to each shard. The session limits can be changed
/// while the server runs ([`Limits::set`], on SIGHUP).
pub(crate) struct Limits {
    max_sessions: AtomicUsize,
    sessions: AtomicUsize,
    per_ip: PerAddress,
    /// IPv6 clients count per network of this prefix length.
    v6_prefix: AtomicU8,
    /// `--max-rate`: every binary or ASCII download reserves its bytes here.
    pub download: Option<Arc<SharedRate>>,
}

impl Limits {
    /// `max_sessions` and `max_per_ip` of 0 mean no limit; `max_rate` is in
    /// bytes per second.
    pub(crate) fn new(max_sessions: usize, max_per_ip: usize, max_rate: Option<u64>) -> Limits {
        Limits {
            max_sessions: AtomicUsize::new(max_sessions),
            sessions: AtomicUsize::new(0),
            per_ip: PerAddress::new(max_per_ip),
            v6_prefix: AtomicU8::new(64),
            download: max_rate.map(|r| Arc::new(SharedRate::new(r))),
        }
    }

    /// Puts new session limits in force (0 = no limit). Sessions already
    /// open stay open; an IPv6 prefix change applies to new sessions (each
    /// open one gives back the place it took).
    pub(crate) fn set(&self, max_sessions: usize, max_per_ip: usize, v6_prefix: u8) {
        self.max_sessions.store(max_sessions, Ordering::Release);
        self.per_ip.max.store(max_per_ip, Ordering::Release);
        self.v6_prefix.store(v6_prefix, Ordering::Release);
    }

    /// The address `ip` counts as (see [`client_key`]).
    pub(crate) fn key(&self, ip: IpAddr) -> IpAddr {
        client_key(ip, self.v6_prefix.load(Ordering::Acquire))
    }

    /// Admits a session from `ip`, or says why not. The session counts
    /// until the returned [`Permit`] is dropped.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let max_sessions = self.max_sessions.load(Ordering::Acquire);
        if max_sessions > 0 {
            // Increment first, then check: two shards admitting at once
            // both see the other's increment, so the total never exceeds
            // the limit (at worst both refuse near it).
            let before = self.sessions.fetch_add(1, Ordering::AcqRel);
            if before >= max_sessions {
                self.sessions.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::Sessions(max_sessions));
            }
        } else {
            self.sessions.fetch_add(1, Ordering::AcqRel);
        }
        let max_per_ip = self.per_ip.max.load(Ordering::Acquire);
        let key = (max_per_ip > 0).then(|| self.key(ip));
        if let Some(key) = key {
            if !self.per_ip.acquire(key, max_per_ip) {
                self.sessions.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerAddress(max_per_ip));
            }
        }
        Ok(Permit {
            limits: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    /// Sessions open on all shards now (an admission in progress on
    /// another shard may count for a moment before it is refused).
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Acquire)
    }

    #[cfg(test)]
    /// Sessions open from `ip`'s address (or IPv6 network) now, as
    /// counted for `--max-per-ip` (0 when it is off).
    pub(crate) fn sessions_from(&self, ip: IpAddr) -> usize {
        self.per_ip.count(self.key(ip))
    }
}

/// One admitted session; dropping it gives its place back.
pub(crate) struct Permit {
    limits: Arc<Limits>,
    /// The per-address key counted, if `--max-per-ip` was on at admission.
    key: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.limits.per_ip.release(key);
        }
        self.limits.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sessions per client address, in lock stripes (see the module docs).
struct PerAddress {
    /// `--max-per-ip`; 0 = off (nothing is counted).
    max: AtomicUsize,
    hasher: RandomState,
    stripes: Box<[Mutex<HashMap<IpAddr, usize>>]>,
}

impl PerAddress {
    fn new(max: usize) -> PerAddress {
        PerAddress {
            max: AtomicUsize::new(max),
            hasher: RandomState::new(),
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }

    fn stripe(&self, ip: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let i = self.hasher.hash_one(ip) as usize & (STRIPES - 1);
        // A panic while holding a stripe cannot leave a count half-updated
        // (each update is one statement), so a poisoned stripe is usable.
        self.stripes[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn acquire(&self, ip: IpAddr, max: usize) -> bool {
        let mut s = self.stripe(ip);
        let n = s.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut s = self.stripe(ip);
        if let Some(n) = s.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                // Memory follows the addresses connected now, not every
                // address ever seen.
                s.remove(&ip);
            }
        }
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        self.stripe(ip).get(&ip).copied().unwrap_or(0)
    }
}

/// The rate schedule shared by all shards for `--max-rate`.
pub(crate) struct SharedRate {
    rate: u64,
    epoch: Instant,
    /// Nanoseconds after `epoch` when the bytes reserved so far will have
    /// gone out at `rate` (the GCRA "theoretical arrival time").
    tat_ns: AtomicU64,
}

impl SharedRate {
    /// `rate` in bytes per second (at least 1).
    pub(crate) fn new(rate: u64) -> SharedRate {
        SharedRate {
            rate: rate.max(1),
            epoch: Instant::now(),
            tat_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// Accounts `n` bytes just moved at `now` and returns the instant
    /// until which the caller must wait before moving more. Lock-free: one
    /// compare-and-swap loop on the shared schedule.
    pub(crate) fn reserve(&self, n: u64, now: Instant) -> Instant {
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let cost = cost_ns(n, self.rate);
        let slack = RATE_SLACK.as_nanos() as u64;
        let prev = self
            .tat_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(schedule(tat, now_ns, cost, slack))
            })
            .unwrap_or_else(|v| v);
        self.epoch + Duration::from_nanos(schedule(prev, now_ns, cost, slack))
    }
}

/// Nanoseconds `n` bytes take at `rate` bytes per second.
pub(crate) fn cost_ns(n: u64, rate: u64) -> u64 {
    let ns = n as u128 * 1_000_000_000 / rate.max(1) as u128;
    ns.min(u64::MAX as u128) as u64
}

/// One step of a GCRA schedule: the bytes before were due to be out at
/// `tat`; the new ones cost `cost`; a schedule that fell behind `now` by
/// more than `slack` (an idle or slow transfer) restarts from `now - slack`,
/// so idle time buys at most `slack` worth of burst. Returns the new
/// theoretical arrival time, which is also when the sender may go on.
pub(crate) fn schedule(tat: u64, now: u64, cost: u64, slack: u64) -> u64 {
    tat.max(now.saturating_sub(slack)).saturating_add(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sessions_are_counted_exactly_and_released_on_drop() {
        let l = Arc::new(Limits::new(3, 0, None));
        let a = l.admit(ip("192.0.2.1")).unwrap();
        let b = l.admit(ip("192.0.2.2")).unwrap();
        let c = l.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(l.sessions(), 3);
        assert_eq!(l.admit(ip("192.0.2.4")).err(), Some(Refusal::Sessions(3)));
        assert_eq!(l.sessions(), 3, "a refusal leaves the count alone");
        drop(b);
        assert_eq!(l.sessions(), 2);
        let d = l.admit(ip("192.0.2.4")).unwrap();
        drop((a, c, d));
        assert_eq!(l.sessions(), 0);
    }

    #[test]
    fn zero_means_unlimited() {
        let l = Arc::new(Limits::new(0, 0, None));
        let permits: Vec<_> = (0..1000).map(|_| l.admit(ip("::1")).unwrap()).collect();
        assert_eq!(l.sessions(), 1000);
        drop(permits);
        assert_eq!(l.sessions(), 0);
    }

    #[test]
    fn per_address_limit() {
        let l = Arc::new(Limits::new(100, 2, None));
        let a1 = l.admit(ip("192.0.2.1")).unwrap();
        let _a2 = l.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(l.admit(ip("192.0.2.1")).err(), Some(Refusal::PerAddress(2)));
        // The mapped IPv6 form is the same address.
        assert_eq!(
            l.admit(ip("::ffff:192.0.2.1")).err(),
            Some(Refusal::PerAddress(2))
        );
        assert_eq!(
            l.sessions(),
            2,
            "a per-address refusal frees its session slot"
        );
        let _b = l.admit(ip("192.0.2.2")).unwrap();
        drop(a1);
        assert_eq!(l.sessions_from(ip("192.0.2.1")), 1);
        let _a3 = l.admit(ip("192.0.2.1")).unwrap();
    }

    #[test]
    fn ipv6_clients_count_per_network() {
        let l = Arc::new(Limits::new(0, 2, None));
        let _a = l.admit(ip("2001:db8:0:1::1")).unwrap();
        let _b = l.admit(ip("2001:db8:0:1:ffff::2")).unwrap();
        // A third address in the same /64: refused.
        assert_eq!(
            l.admit(ip("2001:db8:0:1::3")).err(),
            Some(Refusal::PerAddress(2))
        );
        assert_eq!(l.sessions_from(ip("2001:db8:0:1::99")), 2);
        // The next /64 is another client.
        let _c = l.admit(ip("2001:db8:0:2::1")).unwrap();
        // --ipv6-prefix 128: every address on its own.
        l.set(0, 2, 128);
        let _d = l.admit(ip("2001:db8:0:1::3")).unwrap();
        assert_eq!(l.sessions_from(ip("2001:db8:0:1::3")), 1);
    }

    #[test]
    fn limits_change_live() {
        let l = Arc::new(Limits::new(1, 0, None));
        let a = l.admit(ip("192.0.2.1")).unwrap();
        assert!(l.admit(ip("192.0.2.2")).is_err());
        l.set(3, 1, 64);
        let b = l.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(l.admit(ip("192.0.2.2")).err(), Some(Refusal::PerAddress(1)));
        // `a` was admitted while --max-per-ip was off: it was not counted
        // and gives nothing back.
        drop(a);
        assert_eq!(l.sessions_from(ip("192.0.2.1")), 0);
        drop(b);
        assert_eq!(l.sessions_from(ip("192.0.2.2")), 0);
        assert_eq!(l.sessions(), 0);
    }

    #[test]
    fn released_addresses_leave_the_table() {
        let l = Arc::new(Limits::new(0, 5, None));
        for i in 0..1000u32 {
            let p = l.admit(IpAddr::from(i.to_be_bytes())).unwrap();
            drop(p);
        }
        let t = &l.per_ip;
        let held: usize = t.stripes.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(held, 0);
    }

    #[test]
    fn concurrent_admission_never_exceeds_the_limits() {
        // 8 threads (as 8 shards would) race to admit 1000 sessions each
        // from 4 addresses against --max-sessions 50 --max-per-ip 20.
        // `live` counts permits held (up after admit, down before a permit
        // is dropped, so it never runs ahead of the truth); `sessions()`
        // itself may briefly count another thread's tentative admission.
        let l = Arc::new(Limits::new(50, 20, None));
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let l = l.clone();
                let live = live.clone();
                let peak = peak.clone();
                s.spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..1000u32 {
                        if let Ok(p) = l.admit(IpAddr::from([192, 0, 2, (i % 4) as u8])) {
                            held.push(p);
                            let now = live.fetch_add(1, Ordering::AcqRel) + 1;
                            peak.fetch_max(now, Ordering::AcqRel);
                        }
                        for k in 0..4u8 {
                            assert!(l.sessions_from(IpAddr::from([192, 0, 2, k])) <= 20);
                        }
                        if (i + t as u32).is_multiple_of(3) && !held.is_empty() {
                            live.fetch_sub(1, Ordering::AcqRel);
                            held.pop();
                        }
                    }
                    live.fetch_sub(held.len(), Ordering::AcqRel);
                });
            }
        });
        let peak = peak.load(Ordering::Acquire);
        assert!(peak <= 50, "{peak} sessions held at once");
        assert!(peak >= 40, "the race never came near the limit ({peak})");
        assert_eq!(l.sessions(), 0);
    }

    #[test]
    fn schedule_table() {
        let s = 100;
        // (tat, now, cost) -> new tat
        let table = [
            (0, 0, 10, 10),       // fresh: due after its own cost
            (50, 0, 10, 60),      // queued behind earlier bytes
            (0, 1000, 10, 910),   // idle: restarts `slack` back, so no wait
            (950, 1000, 10, 960), // slightly behind: keeps its schedule
            (0, 50, 10, 10),      // behind by less than slack
        ];
        for (tat, now, cost, want) in table {
            assert_eq!(schedule(tat, now, cost, s), want, "{tat} {now} {cost}");
        }
        assert_eq!(cost_ns(1000, 1000), 1_000_000_000);
        assert_eq!(cost_ns(1, 3), 333_333_333);
        assert_eq!(cost_ns(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn shared_rate_adds_up_across_threads() {
        // 4 threads reserve 1 MiB each at 1 MiB/s: the last reservation
        // ends about 4 s (minus the slack) after the first.
        let r = Arc::new(SharedRate::new(1 << 20));
        // Later than the epoch by more than the slack, as on a server that
        // has been up a while.
        let now = Instant::now() + Duration::from_secs(1);
        let ends: Vec<Instant> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let r = r.clone();
                    s.spawn(move || r.reserve(1 << 20, now))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let last = ends.iter().max().unwrap().duration_since(now);
        let want = Duration::from_secs(4) - RATE_SLACK;
        assert!(
            last.abs_diff(want) < Duration::from_millis(5),
            "{last:?} vs {want:?}"
        );
    }
}
