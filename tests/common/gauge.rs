//! What the server process holds, for the hostile-client, overload and
//! shutdown tests: its open fds by kind and its memory from /proc, the
//! "nothing leaked" check every such test ends with, and the figures line
//! each prints (collected into docs/reliability.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Server;

/// What the server process holds: open fds by kind and resident memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gauge {
    /// fds that are not pipes (sockets, files, the ring...), by kind.
    pub other: BTreeMap<String, usize>,
    /// Pipe ends (the per-shard pipe pool keeps two pipes per transfer
    /// that ran at once, so this may grow without a leak).
    pub pipes: usize,
    pub rss_kib: u64,
}

impl Gauge {
    pub fn fds(&self) -> usize {
        self.other.values().sum::<usize>() + self.pipes
    }

    fn non_pipe(&self) -> usize {
        self.other.values().sum()
    }
}

/// The kind of an fd from its /proc link: `socket`, `pipe`,
/// `anon_inode:[io_uring]`, or `file` for a path.
fn kind(target: &str) -> String {
    if let Some((k, _)) = target.split_once(":[") {
        return k.to_string();
    }
    if target.starts_with("anon_inode:") {
        return target.to_string();
    }
    "file".to_string()
}

/// The server's fds and RSS now.
pub fn gauge(pid: u32) -> Gauge {
    let mut other = BTreeMap::new();
    let mut pipes = 0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            let Ok(t) = std::fs::read_link(e.path()) else {
                continue;
            };
            match kind(&t.to_string_lossy()).as_str() {
                "pipe" => pipes += 1,
                k => *other.entry(k.to_string()).or_insert(0) += 1,
            }
        }
    }
    Gauge {
        other,
        pipes,
        rss_kib: rss_kib(pid),
    }
}

/// VmRSS of `pid` in KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:", 1).unwrap_or(0)
}

/// CPU time the process has used so far (user + system, all threads),
/// seconds: fields 14 and 15 of `/proc/PID/stat` (proc(5)), in clock
/// ticks.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: count fields after its ')'.
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / ringftp::engine::sys::clock_ticks_per_second() as f64
}

/// Word `nth` (0: the key itself) of the line of `/proc/PID/status` that
/// starts with `key`, parsed; `None` if unreadable. `("Uid:", 2)` is the
/// effective uid.
pub fn status_field(pid: u32, key: &str, nth: usize) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(nth)?.parse().ok()
}

/// A warm server's baseline: one normal download first (it fills the pipe
/// pool, which then stays), then the gauge once it is steady.
pub fn baseline(srv: &mut Server, path: &str) -> Gauge {
    srv.assert_serving(path);
    settle(srv.pid(), |_| true, Duration::from_millis(300))
}

/// Waits until two readings 100 ms apart agree and satisfy `ok` (or
/// `limit` passes); returns the last reading.
pub fn settle(pid: u32, ok: impl Fn(&Gauge) -> bool, limit: Duration) -> Gauge {
    let deadline = Instant::now() + limit;
    let mut last = gauge(pid);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = gauge(pid);
        if (now.other == last.other && now.pipes == last.pipes && ok(&now))
            || Instant::now() >= deadline
        {
            return now;
        }
        last = now;
    }
}

/// The end of every hostile test: the server still serves a normal
/// client's download byte-exact, and its fds come back to `before` —
/// every socket and file closed; pipes no more than `before` plus
/// `extra_pipes` pipe fds (the pool keeps the pipes transfers used: two
/// pipes, four fds, for every upload that ran at once on a shard, one for
/// every download that read past the page cache). Prints the
/// figures line and returns the gauge after.
#[track_caller]
pub fn finish(
    srv: &mut Server,
    test: &str,
    before: &Gauge,
    path: &str,
    extra_pipes: usize,
) -> Gauge {
    srv.assert_serving(path);
    check_fds(srv, test, before, extra_pipes)
}

/// The fd half of [`finish`], for tests that check service their own way.
#[track_caller]
pub fn check_fds(srv: &Server, test: &str, before: &Gauge, extra_pipes: usize) -> Gauge {
    let ok = |g: &Gauge| g.other == before.other && g.pipes <= before.pipes + extra_pipes;
    let after = settle(srv.pid(), ok, Duration::from_secs(10));
    report(test, before, &after);
    assert!(
        ok(&after),
        "{test}: the server's fds did not return to the baseline:\n before {before:?}\n after  {after:?}\n{}",
        fd_list(srv.pid())
    );
    after
}

/// One `reliability:` line per test, collected into docs/reliability.md
/// (`cargo test --release --test hostile -- --nocapture | grep reliability:`).
pub fn report(test: &str, before: &Gauge, after: &Gauge) {
    eprintln!(
        "reliability: {test}: fds {} -> {} (non-pipe {} -> {}), rss {} KiB -> {} KiB",
        before.fds(),
        after.fds(),
        before.non_pipe(),
        after.non_pipe(),
        before.rss_kib,
        after.rss_kib
    );
}

/// A free-form figures line (sessions held, inputs tried...).
pub fn note(test: &str, what: &str) {
    eprintln!("reliability: {test}: {what}");
}

/// The server's fds with their targets, for failure messages.
pub fn fd_list(pid: u32) -> String {
    let mut out = String::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        let mut v: Vec<_> = dir
            .flatten()
            .map(|e| {
                format!(
                    "{} -> {}",
                    e.file_name().to_string_lossy(),
                    std::fs::read_link(e.path())
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )
            })
            .collect();
        v.sort();
        out = v.join("\n");
    }
    out
}

/// One IPv4 TCP socket of this network namespace, a line of
/// /proc/net/tcp (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    pub local: std::net::SocketAddrV4,
    pub remote: std::net::SocketAddrV4,
    /// `st`, as include/net/tcp_states.h numbers it: 2 SYN_SENT,
    /// 8 CLOSE_WAIT.
    pub state: u8,
    /// Bytes waiting in the receive queue.
    pub rx_queue: u64,
}

/// Every IPv4 TCP socket of this network namespace (/proc/net/tcp).
pub fn tcp4_sockets() -> Vec<TcpRow> {
    // An address is `HHHHHHHH:PPPP`: the IPv4 address as the kernel holds
    // it (network byte order) printed as a native u32, the port in hex.
    fn addr(s: &str) -> std::net::SocketAddrV4 {
        let (ip, port) = s.split_once(':').unwrap();
        let ip = u32::from_str_radix(ip, 16).unwrap().to_ne_bytes();
        std::net::SocketAddrV4::new(ip.into(), u16::from_str_radix(port, 16).unwrap())
    }
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            TcpRow {
                local: addr(f[1]),
                remote: addr(f[2]),
                state: u8::from_str_radix(f[3], 16).unwrap(),
                rx_queue: u64::from_str_radix(f[4].split_once(':').unwrap().1, 16).unwrap(),
            }
        })
        .collect()
}
