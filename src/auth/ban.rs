//! `--login-ban N/WINDOW`: a client address with N failed logins within
//! WINDOW is refused (421) until WINDOW has passed since its last failure.
//!
//! The table is shared by all shards behind one mutex; it is touched when
//! a login is attempted (argon2 costs far more than the lock) and once per
//! accepted connection (a banned address is refused before the greeting),
//! never on the transfer path. An IPv6 client counts as its /64 (see
//! [`crate::access::client_key`]): one host usually holds the whole
//! network, and a ban per address would be no ban at all. Time is passed
//! in, so the rules are unit-tested.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::access::client_key;

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    pub failures: u32,
    pub window: Duration,
}

/// Parses `N/WINDOW` (e.g. `10/10m`), or `off`.
pub(crate) fn parse_policy(s: &str) -> Result<Option<BanPolicy>, String> {
    if s.eq_ignore_ascii_case("off") || s == "0" {
        return Ok(None);
    }
    let (n, w) = s
        .split_once('/')
        .ok_or_else(|| format!("--login-ban {s:?}: expected N/WINDOW such as 10/10m, or off"))?;
    let failures: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("--login-ban {s:?}: {n:?} is not a positive count"))?;
    let window = crate::units::parse_duration(w).map_err(|e| format!("--login-ban {s:?}: {e}"))?;
    if window.is_zero() {
        return Err(format!(
            "--login-ban {s:?}: the window must be longer than zero"
        ));
    }
    Ok(Some(BanPolicy { failures, window }))
}

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    policy: Option<BanPolicy>,
    table: HashMap<IpAddr, Entry>,
    /// Password checks running now, per client key: each may become a
    /// failure, so they count towards the ban before they end.
    running: HashMap<IpAddr, u32>,
}

impl Inner {
    /// `key`'s failures in force at `now` under `p` (see [`prune`]).
    fn failures(&mut self, key: IpAddr, p: BanPolicy, now: Instant) -> u32 {
        match self.table.get_mut(&key) {
            Some(e) => {
                prune(e, p, now);
                e.failures.len() as u32
            }
            None => 0,
        }
    }
}

/// Whether a password check may start now ([`BanList::start_check`]).
#[derive(Debug)]
pub enum Start<'a> {
    /// It may: it counts as running until the guard is dropped (after
    /// its failure, if it fails, is recorded).
    Go(CheckGuard<'a>),
    /// Not yet: the failures so far and the checks running could reach
    /// the ban. Try again once one of them has ended.
    Wait,
    /// The address is banned.
    Banned,
}

/// A running password check, counted towards the ban until dropped.
#[derive(Debug)]
pub struct CheckGuard<'a> {
    /// The list and the key it is counted under; None when no ban policy
    /// was in force as it started (nothing counted).
    counted: Option<(&'a BanList, IpAddr)>,
}

impl Drop for CheckGuard<'_> {
    fn drop(&mut self) {
        if let Some((list, key)) = self.counted.take() {
            let mut inner = list.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = inner.running.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    inner.running.remove(&key);
                }
            }
        }
    }
}

/// Failed logins per client address.
#[derive(Debug)]
pub struct BanList {
    inner: Mutex<Inner>,
    v6_prefix: AtomicU8,
}

impl BanList {
    pub fn new(policy: Option<BanPolicy>) -> BanList {
        BanList {
            inner: Mutex::new(Inner {
                policy,
                table: HashMap::new(),
                running: HashMap::new(),
            }),
            v6_prefix: AtomicU8::new(64),
        }
    }

    /// Puts a new policy in force (SIGHUP), keeping the failures seen so
    /// far, and the IPv6 prefix that makes one client.
    pub fn set(&self, policy: Option<BanPolicy>, v6_prefix: u8) {
        self.v6_prefix.store(v6_prefix, Ordering::Release);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.policy = policy;
        if policy.is_none() {
            inner.table.clear();
        }
    }

    fn key(&self, ip: IpAddr) -> IpAddr {
        client_key(ip, self.v6_prefix.load(Ordering::Acquire))
    }

    /// True while `ip` is banned.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let key = self.key(ip);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = inner.policy else { return false };
        inner.failures(key, p, now) >= p.failures
    }

    /// Whether a password check for `ip` may start: only while the
    /// failures in the window plus the checks running for it stay under
    /// the ban's count, so that checks sent in parallel cannot outrun it
    /// (each could fail). Checks over that wait, they are not refused:
    /// an address with no failure runs up to N at once.
    pub fn start_check(&self, ip: IpAddr, now: Instant) -> Start<'_> {
        let key = self.key(ip);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = inner.policy else {
            return Start::Go(CheckGuard { counted: None });
        };
        let failures = inner.failures(key, p, now);
        if failures >= p.failures {
            return Start::Banned;
        }
        let running = inner.running.entry(key).or_default();
        if failures + *running >= p.failures {
            return Start::Wait;
        }
        *running += 1;
        Start::Go(CheckGuard {
            counted: Some((self, key)),
        })
    }

    /// Records a failed login from `ip`: whether the address is banned
    /// now, and whether by this failure.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> BanState {
        let key = self.key(ip);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = inner.policy else {
            return BanState::Free;
        };
        let table = &mut inner.table;
        if table.len() >= SWEEP_AT {
            table.retain(|_, e| {
                prune(e, p, now);
                !e.failures.is_empty()
            });
        }
        let e = table.entry(key).or_default();
        prune(e, p, now);
        let was_banned = e.failures.len() as u32 >= p.failures;
        e.failures.push_back(now);
        // Keep the memory per address bounded whatever the attacker does.
        while e.failures.len() as u32 > p.failures {
            e.failures.pop_front();
        }
        match (was_banned, e.failures.len() as u32 >= p.failures) {
            (true, _) => BanState::Banned,
            (false, true) => BanState::BannedNow,
            (false, false) => BanState::Free,
        }
    }
}

/// Where an address stands after a failed login ([`BanList::record_failure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanState {
    /// Not banned.
    Free,
    /// Banned by this failure: the one to log.
    BannedNow,
    /// Banned already (a check that was under way when the ban came).
    Banned,
}

/// Drops failures older than the window — except that a banned address
/// stays banned until a full window has passed since its *last* failure.
fn prune(e: &mut Entry, p: BanPolicy, now: Instant) {
    match e.failures.back() {
        Some(&last) if now.duration_since(last) >= p.window => e.failures.clear(),
        Some(_) if e.failures.len() as u32 >= p.failures => {}
        _ => {
            while let Some(&first) = e.failures.front() {
                if now.duration_since(first) >= p.window {
                    e.failures.pop_front();
                } else {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parsing() {
        assert_eq!(
            parse_policy("10/10m").unwrap(),
            Some(BanPolicy {
                failures: 10,
                window: Duration::from_secs(600)
            })
        );
        assert_eq!(parse_policy("off").unwrap(), None);
        for bad in ["10", "x/10m", "0/10m", "5/0s", "5/forever"] {
            assert!(parse_policy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bans_after_n_failures_in_window() {
        let p = BanPolicy {
            failures: 3,
            window: Duration::from_secs(60),
        };
        let bans = BanList::new(Some(p));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(bans.record_failure(ip, t0), BanState::Free);
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(bans.record_failure(ip, t10), BanState::Free);
        assert!(!bans.is_banned(ip, t0 + Duration::from_secs(11)));
        let t20 = t0 + Duration::from_secs(20);
        assert_eq!(bans.record_failure(ip, t20), BanState::BannedNow);
        // A failure checked while the ban came is no new ban.
        assert_eq!(bans.record_failure(ip, t20), BanState::Banned);
        assert!(bans.is_banned(ip, t0 + Duration::from_secs(21)));
        assert!(!bans.is_banned(other, t0 + Duration::from_secs(21)));
        // Still banned 59 s after the last failure, free after 60.
        assert!(bans.is_banned(ip, t0 + Duration::from_secs(79)));
        assert!(!bans.is_banned(ip, t0 + Duration::from_secs(80)));
    }

    #[test]
    fn running_checks_count_towards_the_ban() {
        let p = BanPolicy {
            failures: 2,
            window: Duration::from_secs(60),
        };
        let bans = BanList::new(Some(p));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let a = bans.start_check(ip, t0);
        let b = bans.start_check(ip, t0);
        assert!(matches!((&a, &b), (Start::Go(_), Start::Go(_))));
        // Two running could be two failures: a third waits.
        assert!(matches!(bans.start_check(ip, t0), Start::Wait));
        // One ends well: room again.
        drop(a);
        let c = bans.start_check(ip, t0);
        assert!(matches!(c, Start::Go(_)));
        // Both fail: banned, and no check starts.
        bans.record_failure(ip, t0);
        drop(b);
        bans.record_failure(ip, t0);
        drop(c);
        assert!(matches!(bans.start_check(ip, t0), Start::Banned));
        // No policy: nothing counted.
        let off = BanList::new(None);
        let guards: Vec<_> = (0..100).map(|_| off.start_check(ip, t0)).collect();
        assert!(guards.iter().all(|g| matches!(g, Start::Go(_))));
    }

    #[test]
    fn old_failures_expire() {
        let p = BanPolicy {
            failures: 2,
            window: Duration::from_secs(10),
        };
        let bans = BanList::new(Some(p));
        let ip: IpAddr = "::1".parse().unwrap();
        let t0 = Instant::now();
        bans.record_failure(ip, t0);
        let t11 = t0 + Duration::from_secs(11);
        assert_eq!(bans.record_failure(ip, t11), BanState::Free);
        let t12 = t0 + Duration::from_secs(12);
        assert_eq!(bans.record_failure(ip, t12), BanState::BannedNow);
    }

    #[test]
    fn ipv6_bans_cover_the_network() {
        let p = BanPolicy {
            failures: 2,
            window: Duration::from_secs(60),
        };
        let bans = BanList::new(Some(p));
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let b: IpAddr = "2001:db8:0:1::2".parse().unwrap();
        bans.record_failure(a, t0);
        assert_eq!(
            bans.record_failure(b, t0),
            BanState::BannedNow,
            "two hosts of one /64 are one client"
        );
        assert!(bans.is_banned("2001:db8:0:1:ffff::9".parse().unwrap(), t0));
        assert!(!bans.is_banned("2001:db8:0:2::1".parse().unwrap(), t0));
        // Policy off (SIGHUP): the bans go.
        bans.set(None, 64);
        assert!(!bans.is_banned(a, t0));
    }

    #[test]
    fn off_never_bans() {
        let bans = BanList::new(None);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            assert_eq!(bans.record_failure(ip, Instant::now()), BanState::Free);
        }
        assert!(!bans.is_banned(ip, Instant::now()));
    }
}
