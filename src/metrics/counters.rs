//! The counters one shard keeps: plain relaxed atomics that only that
//! shard writes, so counting costs a load and a store on the shard's own
//! cache lines and nothing on the hot path is shared. The scrape thread
//! reads them (relaxed loads) and sums the shards ([`super::exposition`]).
//!
//! Every label a counter can take is a small enum with a fixed list of
//! values, so the set of series never grows with traffic (no label comes
//! from a client: a verb the parser does not know counts as `unknown`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::proto::command::VERBS;
use crate::session::outcome::{Direction, Ended, Failure};

/// A count that only grows, written by one thread (its shard) only.
///
/// `add` is a relaxed load and store, not a read-modify-write: with a
/// single writer no increment is lost, and no locked instruction runs on
/// the transfer path. A second writer would lose counts (never memory
/// safety), which is why every [`ShardMetrics`] belongs to one shard.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down, written by one thread only.
#[derive(Default, Debug)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn inc(&self) {
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
    }

    /// Never below zero.
    pub fn dec(&self) {
        self.0
            .store(self.0.load(Relaxed).saturating_sub(1), Relaxed);
    }

    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A histogram of durations with fixed bucket bounds (seconds), written by
/// one thread only. Each observation lands in exactly one bucket (the
/// first whose bound is >= the value, or the overflow bucket); the scrape
/// makes the buckets cumulative, as Prometheus wants them.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending.
    pub bounds: &'static [f64],
    /// One per bound, then the +Inf bucket.
    buckets: Box<[Counter]>,
    /// Sum of all observations, nanoseconds.
    sum_ns: Counter,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| Counter::default()).collect(),
            sum_ns: Counter::default(),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].inc();
        self.sum_ns
            .add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds this histogram's per-bucket counts (not cumulative; one more
    /// than `bounds`, the last for +Inf) and its sum in nanoseconds into
    /// `counts` and `sum_ns`.
    pub fn add_to(&self, counts: &mut [u64], sum_ns: &mut u64) {
        for (c, b) in counts.iter_mut().zip(self.buckets.iter()) {
            *c += b.get();
        }
        *sum_ns = sum_ns.wrapping_add(self.sum_ns.get());
    }
}

/// Bucket bounds of `ringftp_transfer_duration_seconds`: a small file on
/// loopback takes a millisecond, an ISO over a slow link half an hour.
pub(crate) const DURATION_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// Bucket bounds of `ringftp_transfer_first_byte_seconds`: from the
/// transfer command to the first data byte moved (data connection set-up,
/// opening the file, the first read).
pub(crate) const FIRST_BYTE_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Declares a label enum: its variants, their label values in order, and
/// `ALL`/`COUNT`/`label()`/`index()`.
macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every value, in label order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// How many values there are.
            pub const COUNT: usize = $name::ALL.len();

            /// The label value.
            pub fn label(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }

            /// Position in [`Self::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_enum! {
    /// `direction` of transfers and their bytes.
    Dir {
        /// RETR.
        Download => "download",
        /// STOR, APPE, STOU.
        Upload => "upload",
        /// LIST, NLST, MLSD.
        Listing => "listing",
    }
}

impl From<Direction> for Dir {
    fn from(d: Direction) -> Dir {
        match d {
            Direction::Download => Dir::Download,
            Direction::Upload => Dir::Upload,
            Direction::Listing => Dir::Listing,
        }
    }
}

label_enum! {
    /// `path`: how a transfer's bytes went between file and socket.
    BytePath {
        /// `sendfile(2)` from the page cache on the shard (downloads).
        Sendfile => "sendfile",
        /// io_uring splice through a pipe: disk reads of downloads, and
        /// every binary upload.
        Splice => "splice",
        /// Through a userspace buffer: ASCII mode and listings.
        Copied => "copied",
        /// Encrypted or decrypted in userspace by TLS (FTPS without kernel
        /// TLS). Bytes sent through kernel TLS count under the path that
        /// moved them (sendfile, splice), and in
        /// `ringftp_transfer_kernel_tls_bytes_total` as well.
        Tls => "tls",
    }
}

label_enum! {
    /// `outcome` of a transfer command.
    TransferOutcome {
        /// Every byte moved (and the 226 sent).
        Complete => "complete",
        /// The client sent ABOR.
        Aborted => "aborted",
        /// The data connection broke.
        NetworkError => "network_error",
        /// No progress for `--data-timeout`.
        Timeout => "timeout",
        /// Reading or writing the local file failed, or the server ran
        /// out of fds or memory mid-transfer.
        LocalError => "local_error",
        /// The disk or quota is full (452).
        NoSpace => "no_space",
        /// No data connection could be made (425).
        NoConnection => "no_connection",
        /// The client closed the control connection mid-transfer.
        ControlClosed => "control_closed",
        /// Cut at the end of the shutdown grace period.
        Shutdown => "shutdown",
    }
}

impl From<Ended> for TransferOutcome {
    fn from(e: Ended) -> TransferOutcome {
        match e {
            Ended::Complete => TransferOutcome::Complete,
            Ended::Aborted => TransferOutcome::Aborted,
            Ended::ControlClosed => TransferOutcome::ControlClosed,
            Ended::ShutDown => TransferOutcome::Shutdown,
            Ended::Failed(Failure::Network) => TransferOutcome::NetworkError,
            Ended::Failed(Failure::Timeout) => TransferOutcome::Timeout,
            Ended::Failed(Failure::Local | Failure::Exhausted) => TransferOutcome::LocalError,
            Ended::Failed(Failure::NoSpace) => TransferOutcome::NoSpace,
        }
    }
}

label_enum! {
    /// `outcome` of a PASS.
    LoginOutcome {
        /// A named account logged in.
        Ok => "ok",
        /// An anonymous login was accepted.
        Anonymous => "anonymous",
        /// The account exists; the password does not match.
        BadPassword => "bad_password",
        /// No account of that name.
        UnknownUser => "unknown_user",
        /// The address is under `--login-ban`.
        Banned => "banned",
        /// Anonymous while `--no-anonymous` is set.
        AnonymousDisabled => "anonymous_disabled",
        /// The password was right but the account's home is unusable.
        HomeUnavailable => "home_unavailable",
    }
}

label_enum! {
    /// `reason` a new control connection was refused before its session
    /// started: answered 421 and closed (closed without a reply for
    /// `proxy_protocol`).
    RefusedReason {
        /// `--max-sessions` sessions are open.
        MaxSessions => "max_sessions",
        /// The client's address has `--max-per-ip` sessions open.
        PerIp => "per_ip",
        /// The client's address is on the deny list.
        DenyList => "deny_list",
        /// The client's address is banned (failed logins).
        Ban => "ban",
        /// The server is shutting down.
        Shutdown => "shutdown",
        /// The process ran out of file descriptors.
        OutOfFds => "out_of_fds",
        /// `--proxy-protocol`: not from `--proxy-from`, or no valid PROXY
        /// header in time; closed without a reply.
        ProxyProtocol => "proxy_protocol",
    }
}

/// Reply classes counted: 1xx to 5xx.
pub(crate) const REPLY_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Everything one shard counts. Built once per shard, shared (as an `Arc`)
/// with the scrape thread, written by its shard only.
#[derive(Debug)]
pub struct ShardMetrics {
    /// The shard's index (the `shard` label).
    pub shard: usize,
    /// The shard's accept loops are running (for `/health`).
    pub accepting: AtomicBool,
    pub sessions_open: Gauge,
    pub sessions_total: Counter,
    /// By [`LoginOutcome`].
    pub logins: Box<[Counter]>,
    /// By verb: [`VERBS`] in order, then `unknown`.
    pub commands: Box<[Counter]>,
    /// By class, 1xx to 5xx.
    pub replies: [Counter; 5],
    /// By [`Dir`], then [`TransferOutcome`].
    pub transfers: Box<[Box<[Counter]>]>,
    /// By [`Dir`], then [`BytePath`].
    pub bytes: Box<[Box<[Counter]>]>,
    /// Download bytes sent through kernel TLS (also in `bytes`, by path).
    pub kernel_tls: Counter,
    /// By [`Dir`]: command to the end of the transfer.
    pub duration: Box<[Histogram]>,
    /// By [`Dir`]: command to the first data byte moved.
    pub first_byte: Box<[Histogram]>,
    /// Ports in this shard's slice of `--pasv-ports`.
    pub pasv_ports: Gauge,
    /// Of those, leased to a passive listener now.
    pub pasv_leased: Gauge,
    /// Of the leased, held by a listener kept for its session's next
    /// PASV after a transfer (given up when the slice runs out).
    pub pasv_kept: Gauge,
    /// PASV/EPSV answered 425 because no port of the slice was free.
    pub pasv_exhausted: Counter,
    /// By [`RefusedReason`].
    pub refused: Box<[Counter]>,
    /// Uploads whose file was put in place.
    pub upload_commits: Counter,
    /// Uploads undone (deleted, or kept partial with `--keep-partial`).
    pub upload_aborts: Counter,
    /// Entries sent in listings (LIST, NLST, MLSD, STAT with a path).
    pub listing_entries: Counter,
    /// xferlog lines that could not be written.
    pub xferlog_errors: Counter,
}

fn counters(n: usize) -> Box<[Counter]> {
    (0..n).map(|_| Counter::default()).collect()
}

impl ShardMetrics {
    pub fn new(shard: usize) -> ShardMetrics {
        ShardMetrics {
            shard,
            accepting: AtomicBool::new(false),
            sessions_open: Gauge::default(),
            sessions_total: Counter::default(),
            logins: counters(LoginOutcome::COUNT),
            commands: counters(VERBS.len() + 1),
            replies: Default::default(),
            transfers: (0..Dir::COUNT)
                .map(|_| counters(TransferOutcome::COUNT))
                .collect(),
            bytes: (0..Dir::COUNT).map(|_| counters(BytePath::COUNT)).collect(),
            kernel_tls: Counter::default(),
            duration: (0..Dir::COUNT)
                .map(|_| Histogram::new(DURATION_BOUNDS))
                .collect(),
            first_byte: (0..Dir::COUNT)
                .map(|_| Histogram::new(FIRST_BYTE_BOUNDS))
                .collect(),
            pasv_ports: Gauge::default(),
            pasv_leased: Gauge::default(),
            pasv_kept: Gauge::default(),
            pasv_exhausted: Counter::default(),
            refused: counters(RefusedReason::COUNT),
            upload_commits: Counter::default(),
            upload_aborts: Counter::default(),
            listing_entries: Counter::default(),
            xferlog_errors: Counter::default(),
        }
    }

    /// One control command, by its canonical verb (`None`: a line the
    /// parser refused).
    pub fn command(&self, verb: Option<&str>) {
        let i = verb
            .and_then(|v| VERBS.iter().position(|&k| k == v))
            .unwrap_or(VERBS.len());
        self.commands[i].inc();
    }

    /// One reply sent on a control connection.
    pub fn reply(&self, code: u16) {
        if let 100..=599 = code {
            self.replies[(code / 100 - 1) as usize].inc();
        }
    }

    pub fn login(&self, outcome: LoginOutcome) {
        self.logins[outcome.index()].inc();
    }

    pub fn refused(&self, why: RefusedReason) {
        self.refused[why.index()].inc();
    }

    /// `n` bytes of a `dir` transfer moved by `path`.
    pub fn bytes(&self, dir: Dir, path: BytePath, n: u64) {
        self.bytes[dir.index()][path.index()].add(n);
    }

    /// A transfer command ended.
    pub fn transfer(&self, dir: Dir, outcome: TransferOutcome) {
        self.transfers[dir.index()][outcome.index()].inc();
    }

    /// Bytes of all directions moved by `path`.
    pub fn bytes_by_path(&self, path: BytePath) -> u64 {
        self.bytes.iter().map(|d| d[path.index()].get()).sum()
    }

    /// Transfers that had their data connection (every outcome but
    /// [`TransferOutcome::NoConnection`]), all directions.
    pub fn transfers_connected(&self) -> u64 {
        self.transfers
            .iter()
            .flat_map(|d| {
                TransferOutcome::ALL
                    .iter()
                    .filter(|&&o| o != TransferOutcome::NoConnection)
                    .map(move |o| d[o.index()].get())
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::new(&[0.01, 1.0]);
        h.observe(Duration::from_millis(10)); // == bound: first bucket
        h.observe(Duration::from_millis(11));
        h.observe(Duration::from_secs(2)); // overflow
        let mut counts = vec![0; 3];
        let mut sum = 0;
        h.add_to(&mut counts, &mut sum);
        assert_eq!(counts, vec![1, 1, 1]);
        assert_eq!(sum, 2_021_000_000);
    }

    #[test]
    fn commands_by_verb_and_unknown() {
        let m = ShardMetrics::new(0);
        m.command(Some("RETR"));
        m.command(Some("RETR"));
        m.command(None);
        m.command(Some("NOSUCH"));
        let retr = VERBS.iter().position(|&v| v == "RETR").unwrap();
        assert_eq!(m.commands[retr].get(), 2);
        assert_eq!(m.commands[VERBS.len()].get(), 2);
    }

    #[test]
    fn replies_by_class() {
        let m = ShardMetrics::new(0);
        for code in [150, 226, 226, 331, 421, 550, 0, 600] {
            m.reply(code);
        }
        let got: Vec<u64> = m.replies.iter().map(Counter::get).collect();
        assert_eq!(got, vec![1, 2, 1, 1, 1]);
    }

    #[test]
    fn gauge_never_below_zero() {
        let g = Gauge::default();
        g.dec();
        assert_eq!(g.get(), 0);
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
    }
}
