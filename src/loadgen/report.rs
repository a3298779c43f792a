//! The results of a run, in three forms from one [`Report`] value: a table
//! for people (stdout), JSON for machines (`--json`, schema below and in
//! docs/loadgen.md), and one HdrHistogram percentile-distribution file per
//! phase (`--hgrm`).
//!
//! The JSON schema is versioned by `schema_version`: fields may be added
//! without a bump, never renamed or removed. Phases a scenario does not
//! exercise are absent from `phases`; `server` is null without
//! `--server-pid`; latencies are milliseconds, sizes bytes, times seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::procstat;
use super::scenario::Plan;
use super::stats::Stats;
use crate::units::format_bytes;

/// Bumped only when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema_version: u32,
    /// `ringftp loadtest <version>`.
    pub tool: String,
    pub scenario: String,
    pub description: String,
    pub config: Config,
    /// When the run started (seconds since the Unix epoch).
    pub started_unix_s: f64,
    /// The measuring window: start to the end of the last request (or the
    /// deadline). Rates are over this.
    pub elapsed_s: f64,
    pub totals: Totals,
    /// login-storm with `barrier`: seconds from the start until every client
    /// was logged in (or had failed) at once; null otherwise.
    pub all_logged_in_s: Option<f64>,
    pub phases: BTreeMap<String, PhaseSummary>,
    /// Errors by kind: a reply code (`"550"`), `timeout`, `reset`,
    /// `connect-refused`, `closed`, `protocol`, `short-transfer`, `verify`,
    /// `io`.
    pub errors: BTreeMap<String, ErrorSummary>,
    pub generator: Cpu,
    pub server: Option<Server>,
    /// `errors <= max_errors`: the run's exit code is 0 exactly when true.
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub target: String,
    pub mode: String,
    pub ops: Vec<String>,
    pub clients: usize,
    pub cores: usize,
    /// Generator shards pinned to CPUs (`--pin`).
    #[serde(default)]
    pub pin: bool,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    /// Open-loop rate (requests/s, all clients), null for closed loop.
    pub rate: Option<f64>,
    pub verify: bool,
    pub timeout_s: f64,
    pub max_errors: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Requests finished: ok + errors.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Requests in flight when the duration ran out (neither ok nor error).
    pub abandoned: u64,
    /// Data bytes moved, both directions, including those of abandoned
    /// requests.
    pub bytes: u64,
    /// Successful requests a second.
    pub requests_per_s: f64,
    pub mib_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseSummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorSummary {
    pub count: u64,
    /// The first message seen of this kind.
    pub example: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    pub user_s: f64,
    pub sys_s: f64,
    /// (user + sys) / elapsed, in percent of one core.
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Server {
    pub pid: u32,
    /// Most processes seen in the tree at once.
    pub processes_peak: usize,
    /// CPU of the whole tree (reaped children included) during the run.
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub cpu_s: f64,
    /// cpu_s per successful request, in milliseconds.
    pub cpu_ms_per_request: f64,
    /// Sum of VmRSS over the tree.
    pub rss_start_bytes: u64,
    pub rss_peak_bytes: u64,
    pub rss_end_bytes: u64,
    /// Sum of Pss over the tree (shared pages split), when readable.
    pub pss_peak_bytes: Option<u64>,
    /// (rss_peak - rss_start) / clients: memory a session costs.
    pub rss_growth_per_client_bytes: u64,
}

/// Summarises a histogram of microseconds in milliseconds.
pub fn summarize(h: &Histogram<u64>) -> PhaseSummary {
    let ms = |us: u64| us as f64 / 1000.0;
    PhaseSummary {
        count: h.len(),
        min_ms: ms(h.min()),
        mean_ms: h.mean() / 1000.0,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p99_9_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// Non-empty phases of `stats`, in the order they happen.
pub fn phases(stats: &Stats) -> Vec<(&str, &Histogram<u64>)> {
    stats
        .names
        .iter()
        .zip(&stats.hists)
        .filter(|(_, h)| !h.is_empty())
        .map(|(n, h)| (n.as_str(), h))
        .collect()
}

/// What a run measured besides its [`Stats`].
pub struct Measured {
    pub started_unix_s: f64,
    /// The measuring window (see [`Report::elapsed_s`]).
    pub elapsed: Duration,
    /// Data bytes moved.
    pub bytes: u64,
    /// The generator's own (user, system) CPU time, in µs.
    pub generator_cpu_us: (u64, u64),
    pub server: Option<procstat::Summary>,
    /// login-storm with barrier: when every client was logged in.
    pub all_logged_in: Option<Duration>,
}

impl Report {
    /// Assembles the report of a run of `plan`.
    pub fn new(plan: &Plan, stats: &Stats, m: Measured) -> Report {
        let elapsed = m.elapsed.as_secs_f64().max(1e-6);
        let errors = stats.error_count();
        let secs = |us: u64| us as f64 / 1e6;
        let (gen_user, gen_sys) = (secs(m.generator_cpu_us.0), secs(m.generator_cpu_us.1));
        Report {
            schema_version: SCHEMA_VERSION,
            tool: format!("ringftp loadtest {}", env!("CARGO_PKG_VERSION")),
            scenario: plan.scenario.clone(),
            description: plan.description.clone(),
            config: Config {
                target: plan.target_text.clone(),
                mode: plan.mode.name().into(),
                ops: plan.ops.iter().map(|o| o.name().to_string()).collect(),
                clients: plan.clients,
                cores: plan.cores,
                pin: plan.pin,
                duration_s: plan.bounds.duration.map(|d| d.as_secs_f64()),
                requests: plan.bounds.total_requests,
                rate: plan.rate,
                verify: plan.verify,
                timeout_s: plan.timeout.as_secs_f64(),
                max_errors: plan.max_errors,
            },
            started_unix_s: m.started_unix_s,
            elapsed_s: elapsed,
            totals: Totals {
                requests: stats.ok + errors,
                ok: stats.ok,
                errors,
                abandoned: stats.abandoned,
                bytes: m.bytes,
                requests_per_s: stats.ok as f64 / elapsed,
                mib_per_s: m.bytes as f64 / (1 << 20) as f64 / elapsed,
            },
            all_logged_in_s: m.all_logged_in.map(|d| d.as_secs_f64()),
            phases: phases(stats)
                .into_iter()
                .map(|(n, h)| (n.to_string(), summarize(h)))
                .collect(),
            errors: stats
                .errors
                .iter()
                .map(|(k, t)| {
                    let e = ErrorSummary {
                        count: t.count,
                        example: t.example.clone(),
                    };
                    (k.clone(), e)
                })
                .collect(),
            generator: Cpu {
                user_s: gen_user,
                sys_s: gen_sys,
                cpu_percent: (gen_user + gen_sys) / elapsed * 100.0,
            },
            server: m.server.map(|s| {
                let (user, sys) = s.cpu_us();
                Server {
                    pid: plan.server_pid.unwrap_or(0),
                    processes_peak: s.peak_processes,
                    cpu_user_s: secs(user),
                    cpu_sys_s: secs(sys),
                    cpu_s: secs(user + sys),
                    cpu_ms_per_request: secs(user + sys) * 1000.0 / stats.ok.max(1) as f64,
                    rss_start_bytes: s.start.rss_bytes,
                    rss_peak_bytes: s.peak_rss_bytes,
                    rss_end_bytes: s.end.rss_bytes,
                    pss_peak_bytes: s.peak_pss_bytes,
                    rss_growth_per_client_bytes: s.peak_rss_bytes.saturating_sub(s.start.rss_bytes)
                        / plan.clients as u64,
                }
            }),
            passed: errors <= plan.max_errors,
        }
    }

    /// The human table.
    pub fn table(&self, order: &[&str]) -> String {
        let mut out = String::new();
        let c = &self.config;
        let pacing = match c.rate {
            Some(r) => format!("open loop at {r} requests/s"),
            None => "closed loop".into(),
        };
        let _ = writeln!(out, "scenario {}: {}", self.scenario, self.description);
        let _ = writeln!(
            out,
            "target {}, mode {}, {} clients on {} cores, {:.1} s, {pacing}{}",
            c.target,
            c.mode,
            c.clients,
            c.cores,
            self.elapsed_s,
            if c.verify {
                ", every byte verified"
            } else {
                ""
            }
        );
        let t = &self.totals;
        let _ = writeln!(
            out,
            "\nrequests: {} ok, {} errors, {} abandoned at the deadline; {:.1} requests/s, {:.1} MiB/s ({} moved)",
            t.ok,
            t.errors,
            t.abandoned,
            t.requests_per_s,
            t.mib_per_s,
            format_bytes(t.bytes)
        );
        if let Some(s) = self.all_logged_in_s {
            let _ = writeln!(
                out,
                "all {} clients logged in at once after {:.3} s",
                c.clients, s
            );
        }
        let _ = writeln!(
            out,
            "\n{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "phase (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for name in order {
            if let Some(p) = self.phases.get(*name) {
                let _ = writeln!(
                    out,
                    "{:<14} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                    name, p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p99_9_ms, p.max_ms
                );
            }
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "\nerrors: none");
        } else {
            let verdict = if self.passed { "within" } else { "MORE THAN" };
            let _ = writeln!(
                out,
                "\n!!! {} ERRORS ({verdict} --max-errors {}) !!!",
                t.errors, c.max_errors
            );
            for (kind, e) in &self.errors {
                let _ = writeln!(out, "  {kind:<16} {:>9}   e.g. {}", e.count, e.example);
            }
        }
        let g = &self.generator;
        let _ = writeln!(
            out,
            "\ngenerator CPU: {:.2} s user + {:.2} s sys = {:.0} % of one core",
            g.user_s, g.sys_s, g.cpu_percent
        );
        if let Some(s) = &self.server {
            let _ = writeln!(
                out,
                "server pid {} ({} processes at most): CPU {:.2} s user + {:.2} s sys = {:.2} s, {:.3} ms a request",
                s.pid, s.processes_peak, s.cpu_user_s, s.cpu_sys_s, s.cpu_s, s.cpu_ms_per_request
            );
            let pss = s
                .pss_peak_bytes
                .map(|p| format!(", PSS peak {}", format_bytes(p)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "server memory: RSS {} at start, {} peak, {} at end ({} a client){pss}",
                format_bytes(s.rss_start_bytes),
                format_bytes(s.rss_peak_bytes),
                format_bytes(s.rss_end_bytes),
                format_bytes(s.rss_growth_per_client_bytes)
            );
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("--json {}", path.display()))
    }
}

/// Writes `<phase>.hgrm` for every non-empty phase into `dir`.
pub fn write_hgrm(dir: &Path, stats: &Stats) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("--hgrm {}", dir.display()))?;
    for (name, h) in phases(stats) {
        let path = dir.join(format!("{name}.hgrm"));
        std::fs::write(&path, hgrm(h)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The classic HdrHistogram percentile distribution (what Java's
/// `outputPercentileDistribution` prints and the HdrHistogram plotter
/// reads), for a histogram of microseconds, in milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / 1000.0;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    out
}

/// Sub-buckets per bucket for `sigfig` significant digits, as the
/// HdrHistogram implementations size them: 2^ceil(log2(2 * 10^sigfig)).
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(sigfig as u32)).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn summary_in_milliseconds() {
        let h = micros(1..=1000);
        let s = summarize(&h);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_ms, 0.001);
        assert_eq!(s.max_ms, 1.0);
        assert_eq!(s.p50_ms, 0.5);
        assert_eq!(s.p90_ms, 0.9);
        assert_eq!(s.p99_ms, 0.99);
        assert!((s.mean_ms - 0.5005).abs() < 0.001);
    }

    #[test]
    fn hgrm_has_the_classic_layout() {
        let h = micros([1000, 2000, 3000, 4000]);
        let text = hgrm(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        assert_eq!(
            lines.next().unwrap(),
            "       1.000 0.000000000000          1           1.00"
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .skip(1)
            .collect();
        let last = rows.last().unwrap();
        // Values are each bucket's highest equivalent value, as in Java:
        // 4000 µs shares a 2 µs bucket with 4001.
        assert_eq!(
            *last, "       4.001 1.000000000000          4",
            "the 100 % row has no 1/(1-p)"
        );
        // Every row: value, percentile, count never decreasing.
        let mut prev = (0.0, 0.0, 0u64);
        for row in &rows {
            let f: Vec<&str> = row.split_whitespace().collect();
            let now = (
                f[0].parse::<f64>().unwrap(),
                f[1].parse::<f64>().unwrap(),
                f[2].parse::<u64>().unwrap(),
            );
            assert!(
                now.0 >= prev.0 && now.1 >= prev.1 && now.2 >= prev.2,
                "{row}"
            );
            prev = now;
        }
        assert!(
            text.contains("#[Mean    =        2.501, StdDeviation   =        1.118]"),
            "{text}"
        );
        assert!(
            text.contains("#[Max     =        4.001, Total count    =            4]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
    }
}
