//! What a run measured: one HdrHistogram per phase, errors by kind, and the
//! counters the progress line reads while the run goes on.
//!
//! Each shard fills its own [`Stats`] with no locks (a shard is one thread)
//! and the run merges them at the end. Only [`Progress`] is shared between
//! threads: a few relaxed atomic adds per request, read once a second.
//!
//! Latencies are recorded in microseconds, from 1 µs to one hour, with three
//! significant digits (0.1 % error); reports print milliseconds.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::scenario::Op;

/// The phases every request is split into. Which ones a scenario fills
/// depends on its ops: `login` fills the first three and `request`; a
/// transfer fills `data_setup` .. `request`; `noop` only `request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
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
    /// The whole request; with `--rate`, from its scheduled start.
    Request,
}

/// Phase names as they appear in reports, in order.
pub const PHASES: [&str; 7] = [
    "connect",
    "greeting",
    "login",
    "data_setup",
    "first_byte",
    "transfer",
    "request",
];

/// Highest latency recorded: one hour, in microseconds.
const MAX_US: u64 = 3_600_000_000;

/// One error kind's tally and the first message seen, to make a report
/// actionable ("550 No such file" rather than just "550").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorTally {
    pub count: u64,
    pub example: String,
}

#[derive(Clone, Debug)]
pub struct Stats {
    /// Histogram names: [`PHASES`], then `request.<op>` for each op when the
    /// scenario mixes several (e.g. listing: LIST and MLSD).
    pub names: Vec<String>,
    pub hists: Vec<Histogram<u64>>,
    ops: Vec<Op>,
    /// Requests that completed successfully.
    pub ok: u64,
    /// Requests still in flight when the duration ran out (not counted as
    /// errors or successes).
    pub abandoned: u64,
    pub errors: BTreeMap<String, ErrorTally>,
}

impl Stats {
    pub fn new(ops: &[Op]) -> Stats {
        let mut names: Vec<String> = PHASES.iter().map(|s| s.to_string()).collect();
        let mut distinct: Vec<Op> = Vec::new();
        for &op in ops {
            if !distinct.contains(&op) {
                distinct.push(op);
            }
        }
        if distinct.len() > 1 {
            names.extend(distinct.iter().map(|op| format!("request.{}", op.name())));
        } else {
            distinct.clear();
        }
        let hists = names
            .iter()
            .map(|_| Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"))
            .collect();
        Stats {
            names,
            hists,
            ops: distinct,
            ok: 0,
            abandoned: 0,
            errors: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, phase: Phase, d: Duration) {
        record(&mut self.hists[phase as usize], d);
    }

    /// A successful request of `op` that took `d`.
    pub fn record_request(&mut self, op: Op, d: Duration) {
        self.ok += 1;
        self.record(Phase::Request, d);
        if let Some(i) = self.ops.iter().position(|&o| o == op) {
            record(&mut self.hists[PHASES.len() + i], d);
        }
    }

    pub fn record_error(&mut self, kind: String, message: impl FnOnce() -> String) {
        let tally = self.errors.entry(kind).or_default();
        if tally.count == 0 {
            tally.example = message();
        }
        tally.count += 1;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|t| t.count).sum()
    }

    /// The histogram of a phase by name.
    pub fn hist(&self, name: &str) -> Option<&Histogram<u64>> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.hists[i])
    }

    /// Adds another shard's figures into these.
    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in self.hists.iter_mut().zip(&other.hists) {
            mine.add(theirs).expect("histograms share bounds");
        }
        self.ok += other.ok;
        self.abandoned += other.abandoned;
        for (kind, t) in &other.errors {
            let mine = self.errors.entry(kind.clone()).or_default();
            if mine.count == 0 {
                mine.example = t.example.clone();
            }
            mine.count += t.count;
        }
    }
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).clamp(1, MAX_US));
}

/// Live counters shared by all shards, for the progress line and the
/// byte totals.
#[derive(Default, Debug)]
pub struct Progress {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    /// Data bytes moved (down and up), counted as they move so a transfer
    /// cut off by the deadline still counts what it moved.
    pub bytes: AtomicU64,
    /// Control connections open now.
    pub sessions: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_line_up_with_names() {
        assert_eq!(PHASES[Phase::Connect as usize], "connect");
        assert_eq!(PHASES[Phase::DataSetup as usize], "data_setup");
        assert_eq!(PHASES[Phase::Request as usize], "request");
    }

    #[test]
    fn mixed_ops_get_their_own_request_histograms() {
        let mut s = Stats::new(&[Op::List, Op::Mlsd]);
        assert_eq!(s.names.last().unwrap(), "request.mlsd");
        s.record_request(Op::Mlsd, Duration::from_millis(3));
        s.record_request(Op::List, Duration::from_millis(5));
        assert_eq!(s.hist("request").unwrap().len(), 2);
        assert_eq!(s.hist("request.mlsd").unwrap().len(), 1);
        assert_eq!(Stats::new(&[Op::Retr]).names.len(), PHASES.len());
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::new(&[Op::Retr]);
        let mut b = Stats::new(&[Op::Retr]);
        a.record(Phase::Connect, Duration::from_micros(100));
        b.record(Phase::Connect, Duration::from_micros(300));
        b.record_request(Op::Retr, Duration::from_millis(1));
        a.record_error("550".into(), || "550 first".into());
        b.record_error("550".into(), || "550 second".into());
        b.record_error("timeout".into(), || "timed out".into());
        a.merge(&b);
        assert_eq!(a.hist("connect").unwrap().len(), 2);
        assert_eq!(a.ok, 1);
        assert_eq!(a.error_count(), 3);
        assert_eq!(
            a.errors["550"],
            ErrorTally {
                count: 2,
                example: "550 first".into()
            }
        );
    }
}
