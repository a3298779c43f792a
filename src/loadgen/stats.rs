//! What a run measured: one HdrHistogram per phase, failed requests' own
//! histogram, latency per op and per file-size class, errors by kind, and
//! the counts that keep tails honest (abandoned requests, missed starts);
//! plus, through [`Series`], the same second by second.
//!
//! Each shard fills its own [`Stats`] with no locks (a shard is one thread)
//! and the run merges them at the end. Only [`Progress`] is shared between
//! threads: a few relaxed atomic adds per request, read by the progress bar.
//!
//! Latencies are recorded in microseconds, from 1 µs to one hour, with three
//! significant digits (0.1 % error); reports print milliseconds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::scenario::Action;
use super::series::Series;

/// The phases every request is split into, and the request as a whole.
/// Which ones a scenario fills depends on its ops: `login` fills the first
/// three and `request`; a transfer fills `data_setup` .. `request`; `noop`
/// only `request`. A failed request goes to `failed` instead of `request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// TCP connect of the control connection.
    Connect,
    /// Connected to the 220 greeting.
    Greeting,
    /// USER sent to 230 received.
    Login,
    /// PASV/EPSV sent to the data connection being connected (passive), or
    /// PORT/EPRT sent to the server's connection accepted (active).
    DataSetup,
    /// Transfer command sent to the first data byte received.
    FirstByte,
    /// Transfer command sent to the final reply (226) received.
    Transfer,
    /// A whole successful request (with `--rate`, from its scheduled
    /// start), and every abandoned one, recorded at the time it had waited
    /// when the run ended.
    Request,
    /// A whole failed request, from its start to the failure.
    Failed,
}

/// Phase names as they appear in reports, in order.
pub(crate) const PHASES: [&str; 8] = [
    "connect",
    "greeting",
    "login",
    "data_setup",
    "first_byte",
    "transfer",
    "request",
    "failed",
];

/// File-size classes: successful RETRs and STORs are also recorded under
/// the first class whose bound is at least the bytes they moved.
pub(crate) const SIZE_CLASSES: [(u64, &str); 3] = [
    (64 << 10, "request.le_64KiB"),
    (1 << 20, "request.le_1MiB"),
    (u64::MAX, "request.gt_1MiB"),
];

/// Highest latency recorded: one hour, in microseconds.
pub(crate) const MAX_US: u64 = 3_600_000_000;

/// An empty latency histogram: microseconds, 1 µs to [`MAX_US`], three
/// significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// A duration as a histogram value: whole microseconds, within the bounds.
pub(crate) fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

/// One error kind's tally and the first message seen, to make a report
/// actionable ("550 No such file" rather than just "550").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorTally {
    pub count: u64,
    pub example: String,
}

/// Requests of one action by outcome (its latencies are in `request.<op>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OpCount {
    pub ok: u64,
    pub errors: u64,
    pub abandoned: u64,
}

/// One shard's (or, merged, the run's) measurements.
#[derive(Clone, Debug)]
pub(crate) struct Stats {
    /// Histogram names: [`PHASES`], then `request.<op>` for each op when the
    /// scenario mixes several, then the [`SIZE_CLASSES`] when it moves
    /// files.
    pub names: Vec<String>,
    pub hists: Vec<Histogram<u64>>,
    /// Index in `hists` of `request.<op>`, by action.
    by_op: Vec<(Action, usize)>,
    /// Index in `hists` of the first size class, when recorded.
    sizes: Option<usize>,
    /// Requests that completed successfully.
    pub ok: u64,
    /// Requests still in flight when the run ended: neither errors nor
    /// successes, but recorded in `request` at the time they had waited.
    pub abandoned: u64,
    /// Open loop: scheduled starts before the end that no client could send
    /// (every client busy, none could be added): k6's dropped iterations.
    pub missed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, ErrorTally>,
    /// Requests by action and outcome (failures before any request, such
    /// as the first login, are in no action).
    pub by_action: BTreeMap<Action, OpCount>,
    /// The same, second by second.
    pub series: Series,
}

impl Stats {
    /// Empty figures for `ops`; `moves_files` adds the size classes.
    /// `start` and `seconds` (the run's length, when bounded in time) place
    /// records in the per-second series.
    pub(crate) fn new(
        ops: &[Action],
        moves_files: bool,
        start: Instant,
        seconds: Option<Duration>,
    ) -> Stats {
        let mut names: Vec<String> = PHASES.iter().map(|s| s.to_string()).collect();
        let mut distinct: Vec<Action> = Vec::new();
        for &op in ops {
            if !distinct.contains(&op) {
                distinct.push(op);
            }
        }
        let mut by_op = Vec::new();
        if distinct.len() > 1 {
            for op in distinct {
                by_op.push((op, names.len()));
                names.push(format!("request.{}", op.name()));
            }
        }
        let sizes = moves_files.then(|| {
            let first = names.len();
            names.extend(SIZE_CLASSES.iter().map(|(_, n)| n.to_string()));
            first
        });
        let hists = names.iter().map(|_| histogram()).collect();
        Stats {
            series: Series::new(names.len(), start, seconds),
            names,
            hists,
            by_op,
            sizes,
            ok: 0,
            abandoned: 0,
            missed: 0,
            errors: BTreeMap::new(),
            by_action: BTreeMap::new(),
        }
    }

    fn record_at(&mut self, slot: usize, d: Duration, now: Instant) {
        let us = micros(d);
        self.hists[slot].saturating_record(us);
        self.series.record(slot, us, now);
    }

    /// One phase of a request took `d`, ending `now`.
    pub(crate) fn record(&mut self, phase: Phase, d: Duration, now: Instant) {
        self.record_at(phase as usize, d, now);
    }

    fn record_request(&mut self, op: Action, d: Duration, now: Instant) {
        self.record(Phase::Request, d, now);
        if let Some(&(_, i)) = self.by_op.iter().find(|(o, _)| *o == op) {
            self.record_at(i, d, now);
        }
    }

    /// A successful request of `op` that took `d`, ending `now`, having
    /// moved `bytes` of file data (RETR/STOR).
    pub(crate) fn record_ok(&mut self, op: Action, d: Duration, bytes: Option<u64>, now: Instant) {
        self.ok += 1;
        self.by_action.entry(op).or_default().ok += 1;
        self.series.second(now).ok += 1;
        self.record_request(op, d, now);
        if let (Some(first), Some(b)) = (self.sizes, bytes) {
            let class = SIZE_CLASSES
                .iter()
                .position(|&(bound, _)| b <= bound)
                .expect("the last class has no bound");
            self.record_at(first + class, d, now);
        }
    }

    /// A request of `op` cut off by the end of the run at `end`, `d` after
    /// its (scheduled) start.
    pub(crate) fn record_abandoned(&mut self, op: Action, d: Duration, end: Instant) {
        self.abandoned += 1;
        self.by_action.entry(op).or_default().abandoned += 1;
        self.series.second(end).abandoned += 1;
        self.record_request(op, d, end);
    }

    /// A failed request of an action, `d` after its start; `kind` and
    /// `message` as [`super::failure::Failure`] gives them. `request` is
    /// None for failures that are not a request's (the login before the
    /// first one).
    pub(crate) fn record_error(
        &mut self,
        kind: String,
        message: impl FnOnce() -> String,
        request: Option<(Action, Duration)>,
        now: Instant,
    ) {
        let tally = self.errors.entry(kind).or_default();
        if tally.count == 0 {
            tally.example = message();
        }
        tally.count += 1;
        self.series.second(now).errors += 1;
        if let Some((op, d)) = request {
            self.by_action.entry(op).or_default().errors += 1;
            self.record(Phase::Failed, d, now);
        }
    }

    /// An open-loop start scheduled `at` that was never sent.
    pub(crate) fn record_missed(&mut self, at: Instant) {
        self.missed += 1;
        self.series.second(at).missed += 1;
    }

    /// `n` data bytes moved `now`.
    pub(crate) fn add_bytes(&mut self, n: u64, now: Instant) {
        self.series.second(now).bytes += n;
    }

    /// Errors of every kind.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().map(|t| t.count).sum()
    }

    /// Failed requests: [`Stats::error_count`] less the failures that
    /// were no request's (a client's login before its first request).
    pub(crate) fn request_errors(&self) -> u64 {
        self.by_action.values().map(|c| c.errors).sum()
    }

    /// The histogram of a phase by name.
    pub(crate) fn hist(&self, name: &str) -> Option<&Histogram<u64>> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.hists[i])
    }

    /// Adds another shard's figures into these, the series too (merged by
    /// second: both must share a start).
    pub(crate) fn merge(&mut self, other: &Stats) {
        self.merge_figures(other);
        self.series.merge(&other.series);
    }

    /// Adds another shard's or round's figures into these, but not its
    /// series.
    pub(crate) fn merge_figures(&mut self, other: &Stats) {
        for (mine, theirs) in self.hists.iter_mut().zip(&other.hists) {
            mine.add(theirs).expect("histograms share bounds");
        }
        self.ok += other.ok;
        self.abandoned += other.abandoned;
        self.missed += other.missed;
        for (kind, t) in &other.errors {
            let mine = self.errors.entry(kind.clone()).or_default();
            if mine.count == 0 {
                mine.example = t.example.clone();
            }
            mine.count += t.count;
        }
        for (op, c) in &other.by_action {
            let mine = self.by_action.entry(*op).or_default();
            mine.ok += c.ok;
            mine.errors += c.errors;
            mine.abandoned += c.abandoned;
        }
    }
}

/// Live counters shared by all shards, for the progress bar, the byte
/// totals and the session peak.
#[derive(Default, Debug)]
pub(crate) struct Progress {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    /// Data bytes moved (down and up), counted as they move so a transfer
    /// cut off by the deadline still counts what it moved.
    pub bytes: AtomicU64,
    /// Logged-in sessions open now.
    pub sessions: AtomicU64,
    /// Most logged-in sessions open at once.
    pub sessions_peak: AtomicU64,
}

impl Progress {
    /// A session logged in.
    pub(crate) fn session_opened(&self) {
        let now = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        self.sessions_peak.fetch_max(now, Ordering::Relaxed);
    }

    /// A logged-in session closed.
    pub(crate) fn session_closed(&self) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::scenario::Op;
    use super::*;

    fn stats(ops: &[Op], files: bool) -> (Stats, Instant) {
        let t0 = Instant::now();
        let ops: Vec<Action> = ops.iter().map(|&o| o.into()).collect();
        (
            Stats::new(&ops, files, t0, Some(Duration::from_secs(10))),
            t0,
        )
    }

    #[test]
    fn phases_line_up_with_names() {
        assert_eq!(PHASES[Phase::Connect as usize], "connect");
        assert_eq!(PHASES[Phase::DataSetup as usize], "data_setup");
        assert_eq!(PHASES[Phase::Request as usize], "request");
        assert_eq!(PHASES[Phase::Failed as usize], "failed");
    }

    #[test]
    fn mixed_ops_get_their_own_request_histograms() {
        let (mut s, t0) = stats(&[Op::List, Op::Mlsd], false);
        assert_eq!(s.names.last().unwrap(), "request.mlsd");
        s.record_ok(Op::Mlsd.into(), Duration::from_millis(3), None, t0);
        s.record_ok(Op::List.into(), Duration::from_millis(5), None, t0);
        assert_eq!(s.hist("request").unwrap().len(), 2);
        assert_eq!(s.hist("request.mlsd").unwrap().len(), 1);
        assert_eq!(stats(&[Op::Retr], false).0.names.len(), PHASES.len());
    }

    #[test]
    fn size_classes_by_bytes_moved() {
        let (mut s, t0) = stats(&[Op::Retr], true);
        for b in [1, 64 << 10, (64 << 10) + 1, 1 << 20, 5 << 20] {
            s.record_ok(Op::Retr.into(), Duration::from_millis(1), Some(b), t0);
        }
        let n = |name: &str| s.hist(name).unwrap().len();
        assert_eq!(
            (
                n("request.le_64KiB"),
                n("request.le_1MiB"),
                n("request.gt_1MiB")
            ),
            (2, 2, 1)
        );
    }

    #[test]
    fn abandoned_and_failed_are_recorded_apart() {
        let (mut s, t0) = stats(&[Op::Retr], false);
        s.record_abandoned(Op::Retr.into(), Duration::from_secs(2), t0);
        s.record_error(
            "550".into(),
            || "550 no".into(),
            Some((Op::Retr.into(), Duration::from_millis(7))),
            t0,
        );
        s.record_error("530".into(), || "530 no".into(), None, t0);
        s.record_missed(t0);
        assert_eq!((s.ok, s.abandoned, s.missed, s.error_count()), (0, 1, 1, 2));
        assert_eq!(s.request_errors(), 1, "a failed login is no request");
        assert_eq!(
            s.by_action[&Op::Retr.into()],
            OpCount {
                ok: 0,
                errors: 1,
                abandoned: 1
            },
            "the login failure is in no action"
        );
        assert_eq!(
            s.hist("request").unwrap().max(),
            s.hist("request").unwrap().highest_equivalent(2_000_000)
        );
        assert_eq!(
            s.hist("failed").unwrap().len(),
            1,
            "only a request's failure has a latency"
        );
    }

    #[test]
    fn merge_adds_everything() {
        let (mut a, t0) = stats(&[Op::Retr], false);
        let mut b = Stats::new(&[Op::Retr.into()], false, t0, None);
        a.record(Phase::Connect, Duration::from_micros(100), t0);
        b.record(Phase::Connect, Duration::from_micros(300), t0);
        b.record_ok(Op::Retr.into(), Duration::from_millis(1), None, t0);
        a.record_error("550".into(), || "550 first".into(), None, t0);
        b.record_error("550".into(), || "550 second".into(), None, t0);
        b.record_error("timeout".into(), || "timed out".into(), None, t0);
        a.record_ok(Op::Retr.into(), Duration::from_millis(1), None, t0);
        a.merge(&b);
        assert_eq!(a.hist("connect").unwrap().len(), 2);
        assert_eq!(a.ok, 2);
        assert_eq!(a.by_action[&Op::Retr.into()].ok, 2);
        assert_eq!(a.error_count(), 3);
        assert_eq!(
            a.errors["550"],
            ErrorTally {
                count: 2,
                example: "550 first".into()
            }
        );
    }

    #[test]
    fn session_peak() {
        let p = Progress::default();
        p.session_opened();
        p.session_opened();
        p.session_closed();
        p.session_opened();
        assert_eq!(p.sessions_peak.load(Ordering::Relaxed), 2);
    }
}
