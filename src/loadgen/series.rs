//! The run second by second: per-second counts (ok, errors, abandoned,
//! missed starts, bytes) and per-second, per-phase histograms, written as
//! the JSON report's `series` and as an HdrHistogram interval log
//! (`--hlog`).
//!
//! A record lands in the second it *completed* in (the interval-log
//! convention: HdrHistogram's and k6's time series are by completion), an
//! abandoned request in the second the run ended in, a missed start in the
//! second it was scheduled for. Each shard keeps live histograms for the
//! current second only; when a record falls in a later second the live
//! ones are folded into a sparse list of (bucket, count) and reset, so memory
//! follows distinct latencies, not seconds × phases × full histograms.
//!
//! **The `.hlog` format** is HdrHistogram's interval log, as Java's
//! `HistogramLogWriter` writes it (version 1.3): `#` comment and header
//! lines (`StartTime`, `BaseTime`, `MaxValueDivisor`), a legend line, then
//! one line per interval and phase:
//! `Tag=<phase>,<start s>,<length s>,<max ms>,<base64 of the V2 deflate
//! encoding>`, values in microseconds. HdrHistogram's `HistogramLogProcessor`
//! and `HistogramLogAnalyzer`, and this crate's `IntervalLogIterator`, read it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::stats::histogram;

/// One second of one shard (or, merged, of the run).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Second {
    pub ok: u64,
    pub errors: u64,
    pub abandoned: u64,
    pub missed: u64,
    pub bytes: u64,
    /// The histograms of that second, sparse: (name index, value, count).
    pub values: Vec<(u16, u64, u64)>,
}

/// One shard's series.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    start: Instant,
    /// Highest second index: records after the end of a timed run (the
    /// abandoned, at the deadline) belong to its last second.
    last: Option<u64>,
    /// The second `live` holds.
    current: u64,
    live: Vec<Histogram<u64>>,
    used: bool,
    pub seconds: BTreeMap<u64, Second>,
}

impl Series {
    /// An empty series of `names` histograms for a run started at `start`
    /// lasting `length` (when bounded in time).
    pub(crate) fn new(names: usize, start: Instant, length: Option<Duration>) -> Series {
        Series {
            start,
            last: length.map(|d| d.as_secs_f64().ceil().max(1.0) as u64 - 1),
            current: 0,
            live: (0..names).map(|_| histogram()).collect(),
            used: false,
            seconds: BTreeMap::new(),
        }
    }

    /// The second (from the start) that `t` falls in.
    pub(crate) fn index(&self, t: Instant) -> u64 {
        let i = t.saturating_duration_since(self.start).as_secs();
        self.last.map_or(i, |last| i.min(last))
    }

    /// The counters of the second `t` falls in.
    pub(crate) fn second(&mut self, t: Instant) -> &mut Second {
        let i = self.index(t);
        self.seconds.entry(i).or_default()
    }

    /// Records `us` into histogram `slot` of the second `now` falls in.
    pub(crate) fn record(&mut self, slot: usize, us: u64, now: Instant) {
        let i = self.index(now);
        if i > self.current {
            self.fold();
            self.current = i;
        }
        // A record for an earlier second (none in practice: a shard records
        // in time order) joins the current one.
        self.live[slot].saturating_record(us);
        self.used = true;
    }

    /// Moves the live histograms into `seconds`.
    fn fold(&mut self) {
        if !self.used {
            return;
        }
        let second = self.seconds.entry(self.current).or_default();
        for (slot, h) in self.live.iter_mut().enumerate() {
            if h.is_empty() {
                continue;
            }
            for v in h.iter_recorded() {
                second
                    .values
                    .push((slot as u16, v.value_iterated_to(), v.count_at_value()));
            }
            h.reset();
        }
        self.used = false;
    }

    /// Folds what is still live; call once the shard is done.
    pub(crate) fn finish(&mut self) {
        self.fold();
    }

    /// Adds another (finished) shard's seconds into these.
    pub(crate) fn merge(&mut self, other: &Series) {
        self.fold();
        for (&i, theirs) in &other.seconds {
            let mine = self.seconds.entry(i).or_default();
            mine.ok += theirs.ok;
            mine.errors += theirs.errors;
            mine.abandoned += theirs.abandoned;
            mine.missed += theirs.missed;
            mine.bytes += theirs.bytes;
            mine.values.extend_from_slice(&theirs.values);
        }
    }
}

/// Percentiles of one phase in one second, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IntervalSummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One second of the run in the JSON report (`series`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SecondReport {
    /// The round (1, 2, ... with `--rounds`).
    pub round: u32,
    /// Start of the second, from the start of the run (of round 1), in s.
    pub t_s: f64,
    pub ok: u64,
    pub errors: u64,
    pub abandoned: u64,
    pub missed: u64,
    pub bytes: u64,
    /// Non-empty phases of that second.
    pub phases: BTreeMap<String, IntervalSummary>,
}

/// One round's merged series and where it sits in the run.
pub(crate) struct RoundSeries<'a> {
    pub round: u32,
    /// From the run's start to this round's start.
    pub offset: Duration,
    /// The round's measuring window.
    pub window: Duration,
    pub names: &'a [String],
    pub series: &'a Series,
}

/// Summarises every second of every round, in order (empty seconds of a
/// window included, so gaps show), and writes the interval log when
/// `hlog` is given (`started`: when the run started).
pub(crate) fn report(
    rounds: &[RoundSeries],
    started: SystemTime,
    mut hlog: Option<&mut Vec<u8>>,
) -> anyhow::Result<Vec<SecondReport>> {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut serializer = V2DeflateSerializer::new();
    if let Some(out) = hlog.as_deref_mut() {
        let mut head = IntervalLogWriterBuilder::new();
        head.add_comment("[Histogram log format version 1.3]")
            .add_comment(&format!(
                "[ringftp loadtest {}: one histogram per second per phase (Tag), values in microseconds]",
                env!("CARGO_PKG_VERSION")
            ))
            .with_start_time(started)
            .with_base_time(started)
            .with_max_value_divisor(1000.0);
        head.begin_log_with(out, &mut serializer)?;
        out.extend_from_slice(
            b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        );
    }
    let mut writer = match hlog {
        Some(out) => Some(IntervalLogWriterBuilder::new().begin_log_with(out, &mut serializer)?),
        None => None,
    };
    let mut out = Vec::new();
    for r in rounds {
        let whole = r.window.as_secs_f64().ceil() as u64;
        let last = r.series.seconds.keys().next_back().map_or(0, |&i| i + 1);
        for i in 0..whole.max(last) {
            let empty = Second::default();
            let s = r.series.seconds.get(&i).unwrap_or(&empty);
            let mut hists: BTreeMap<u16, Histogram<u64>> = BTreeMap::new();
            for &(slot, value, count) in &s.values {
                hists
                    .entry(slot)
                    .or_insert_with(histogram)
                    .saturating_record_n(value, count);
            }
            let begin = r.offset + Duration::from_secs(i);
            let length = r
                .window
                .saturating_sub(Duration::from_secs(i))
                .min(Duration::from_secs(1));
            let length = if length.is_zero() {
                Duration::from_secs(1)
            } else {
                length
            };
            let mut phases = BTreeMap::new();
            for (slot, h) in &hists {
                let name = &r.names[*slot as usize];
                if let Some(w) = writer.as_mut() {
                    w.write_histogram(h, begin, length, Tag::new(name))
                        .map_err(|e| anyhow::anyhow!("--hlog: {e}"))?;
                }
                phases.insert(
                    name.clone(),
                    IntervalSummary {
                        count: h.len(),
                        p50_ms: ms(h.value_at_quantile(0.50)),
                        p90_ms: ms(h.value_at_quantile(0.90)),
                        p99_ms: ms(h.value_at_quantile(0.99)),
                        max_ms: ms(h.max()),
                    },
                );
            }
            out.push(SecondReport {
                round: r.round,
                t_s: begin.as_secs_f64(),
                ok: s.ok,
                errors: s.errors,
                abandoned: s.abandoned,
                missed: s.missed,
                bytes: s.bytes,
                phases,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn records_land_in_their_second_and_round_trip_through_the_hlog() {
        let t0 = Instant::now();
        let names = vec!["request".to_string(), "failed".to_string()];
        let mut a = Series::new(2, t0, Some(Duration::from_millis(2500)));
        let mut b = Series::new(2, t0, Some(Duration::from_millis(2500)));
        a.record(0, 1_000, t0);
        a.record(0, 3_000, t0 + Duration::from_millis(1200));
        a.second(t0 + Duration::from_millis(1200)).ok += 1;
        // After the deadline: the last second (2).
        a.record(0, 2_000_000, t0 + Duration::from_secs(9));
        b.record(1, 500, t0 + Duration::from_millis(100));
        b.second(t0 + Duration::from_millis(2100)).missed += 3;
        a.finish();
        b.finish();
        a.merge(&b);
        let mut log = Vec::new();
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let round = RoundSeries {
            round: 1,
            offset: Duration::ZERO,
            window: Duration::from_millis(2500),
            names: &names,
            series: &a,
        };
        let secs = report(&[round], started, Some(&mut log)).unwrap();
        assert_eq!(secs.len(), 3);
        assert_eq!(secs[0].phases["request"].count, 1);
        assert_eq!(secs[0].phases["failed"].count, 1);
        assert_eq!((secs[1].ok, secs[1].phases["request"].count), (1, 1));
        assert_eq!(secs[2].missed, 3);
        assert!(secs[2].phases["request"].max_ms >= 2000.0);

        let text = String::from_utf8(log.clone()).unwrap();
        assert!(
            text.starts_with("#[Histogram log format version 1.3]\n"),
            "{text}"
        );
        assert!(text.contains("#[StartTime: 1700000000.000"), "{text}");
        assert!(
            text.contains("\"StartTimestamp\",\"Interval_Length\""),
            "{text}"
        );
        let mut intervals = Vec::new();
        for entry in IntervalLogIterator::new(&log) {
            if let LogEntry::Interval(i) = entry.expect("a valid log line") {
                intervals.push(i);
            }
        }
        assert_eq!(intervals.len(), 4, "request x3 seconds + failed x1");
        let last = intervals.last().unwrap();
        assert_eq!(last.tag().unwrap().as_str(), "request");
        assert_eq!(last.start_timestamp(), Duration::from_secs(2));
        assert_eq!(
            last.duration(),
            Duration::from_millis(500),
            "the window's last half second"
        );
        let bytes = base64_decode(last.encoded_histogram());
        let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
        assert_eq!(h.len(), 1);
        assert!(h.max() >= 2_000_000);
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }
}
