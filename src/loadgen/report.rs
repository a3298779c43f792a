//! The results of a run, in several forms from one [`Report`] value: a
//! table for people (stdout, see [`super::table`]), JSON for machines
//! (`--json`, schema in docs/loadgen.md), one HdrHistogram
//! percentile-distribution file per phase (`--hgrm`) and the interval log
//! (`--hlog`, see [`super::series`]).
//!
//! The JSON schema is versioned by `schema_version`: fields may be added
//! without a bump, never renamed or removed. Phases a scenario does not
//! exercise are absent from `phases`; `server` is null without
//! `--server-pid`; latencies are milliseconds, sizes bytes, times seconds.
//! Figures that would divide by zero (CPU per request with no successful
//! request) are null, never invented.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::checks::{self, Check, Figures};
use super::plan::Plan;
use super::procstat;
use super::scenario::Op;
use super::series::{self, RoundSeries, SecondReport};
use super::stats::Stats;

/// Bumped only when a field changes meaning or goes away.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Everything a run measured, as the table, the JSON and the charts show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Report {
    pub schema_version: u32,
    /// `ringftp loadtest <version>`.
    pub tool: String,
    pub scenario: String,
    pub description: String,
    pub config: Config,
    /// When the run started (seconds since the Unix epoch).
    pub started_unix_s: f64,
    /// The measuring window (all rounds together): from the start to the
    /// deadline of `--duration` (or the Ctrl-C that ended the run early);
    /// to the end of the last request when the run finished its
    /// `--requests` before. Rates are over this.
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
    /// Requests by action (`noop`, `pasv-retr`, ...): ok, errors,
    /// abandoned. Their latencies are in `phases["request.<action>"]` when
    /// the mix has several actions.
    #[serde(default)]
    pub ops: BTreeMap<String, OpSummary>,
    pub generator: Cpu,
    pub server: Option<Server>,
    /// Each non-empty phase's percentile distribution: `[percentile (0-100),
    /// ms]` pairs, five per halving of the tail (as in `.hgrm` files).
    #[serde(default)]
    pub distribution: BTreeMap<String, Vec<[f64; 2]>>,
    /// The run second by second.
    #[serde(default)]
    pub series: Vec<SecondReport>,
    /// Each round's figures (one entry without `--rounds`).
    #[serde(default)]
    pub rounds: Vec<RoundFigures>,
    /// `--max-errors` and every threshold, with the run's figure.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Every check passed: the run's exit code is 0 exactly when true.
    pub passed: bool,
}

/// One action's requests by outcome.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct OpSummary {
    pub ok: u64,
    pub errors: u64,
    pub abandoned: u64,
}

/// The plan the run followed (also what `--dry-run` prints).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Config {
    pub target: String,
    pub mode: String,
    /// The distinct ops.
    pub ops: Vec<String>,
    /// Each op's weight in the mix (a list used in turn: each op's count).
    #[serde(default)]
    pub op_weights: BTreeMap<String, u32>,
    /// `--scale` the scenario ran at, if any.
    #[serde(default)]
    pub scale: Option<String>,
    /// The login name (`--user`).
    #[serde(default)]
    pub user: String,
    /// Uploads: bytes per STOR, the directory, and whether each STOR makes
    /// a new file (null / false without STOR).
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub upload_dir: Option<String>,
    #[serde(default)]
    pub new_files: bool,
    pub clients: usize,
    /// Open loop: most virtual clients (= clients: no growth).
    #[serde(default)]
    pub max_clients: usize,
    pub cores: usize,
    /// Generator shards pinned to CPUs (`--pin`).
    #[serde(default)]
    pub pin: bool,
    /// Data connections' fixed SO_RCVBUF in bytes (`--rcvbuf`); null: the
    /// kernel's tuning.
    #[serde(default)]
    pub rcvbuf: Option<u64>,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    /// Open-loop rate (requests/s, all clients), null for closed loop.
    pub rate: Option<f64>,
    #[serde(default)]
    pub ramp_s: Option<f64>,
    #[serde(default = "one")]
    pub rounds: u32,
    pub verify: bool,
    pub timeout_s: f64,
    pub max_errors: u64,
    #[serde(default)]
    pub max_p99_ms: Option<f64>,
    #[serde(default)]
    pub max_error_rate: Option<f64>,
    #[serde(default)]
    pub min_rate: Option<f64>,
}

fn one() -> u32 {
    1
}

/// Counts and rates of the whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Totals {
    /// Requests finished: ok + failed requests. A client's failed login
    /// before its first request is in `errors` but is no request, so a
    /// `--requests` run reports at most that many here.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Requests in flight when the run ended (neither ok nor error; in the
    /// `request` histogram at the time they had waited).
    pub abandoned: u64,
    /// Open loop: starts due before the end that no client could send.
    #[serde(default)]
    pub missed: u64,
    /// Data bytes moved, both directions, including those of abandoned
    /// requests.
    pub bytes: u64,
    /// Successful requests a second over the window.
    pub requests_per_s: f64,
    pub mib_per_s: f64,
    /// Most logged-in sessions open at once.
    #[serde(default)]
    pub sessions_peak: u64,
}

/// One histogram summarised, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct PhaseSummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

/// One error kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ErrorSummary {
    pub count: u64,
    /// The first message seen of this kind.
    pub example: String,
}

/// The generator's own CPU time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Cpu {
    pub user_s: f64,
    pub sys_s: f64,
    /// (user + sys) / elapsed, in percent of one core.
    pub cpu_percent: f64,
}

/// The server's CPU and memory (`--server-pid`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Server {
    pub pid: u32,
    /// Most processes seen in the tree at once.
    pub processes_peak: usize,
    /// CPU of the whole tree (reaped children included) during the run,
    /// until its sessions had closed.
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub cpu_s: f64,
    /// `cgroup` (the server's own cgroup: exact) or `proc` (the /proc
    /// tree; see docs/benchmarks.md).
    #[serde(default)]
    pub cpu_source: String,
    /// The tree was back to its starting size when CPU was last read; false:
    /// sessions were still closing, the CPU is a lower bound.
    #[serde(default)]
    pub cpu_settled: bool,
    /// cpu_s per successful request, in milliseconds; null with none.
    pub cpu_ms_per_request: Option<f64>,
    /// Sum of VmRSS over the tree.
    pub rss_start_bytes: u64,
    pub rss_peak_bytes: u64,
    pub rss_end_bytes: u64,
    /// Sum of Pss over the tree (shared pages split), when readable.
    pub pss_peak_bytes: Option<u64>,
    /// (rss_peak - rss_start) / clients.
    pub rss_growth_per_client_bytes: u64,
    /// (rss_peak - rss_start) / sessions_peak: memory a session held costs;
    /// null when no session was held.
    #[serde(default)]
    pub rss_growth_per_session_bytes: Option<u64>,
}

/// One round's headline figures (`--rounds`), for noise estimates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct RoundFigures {
    pub round: u32,
    pub elapsed_s: f64,
    pub ok: u64,
    pub errors: u64,
    pub abandoned: u64,
    pub missed: u64,
    pub requests_per_s: f64,
    pub mib_per_s: f64,
    /// Percentiles of the `request` histogram (null: none recorded).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p99_9_ms: Option<f64>,
    pub server_cpu_s: Option<f64>,
    pub server_cpu_ms_per_request: Option<f64>,
    pub generator_cpu_percent: f64,
}

/// Summarises a histogram of microseconds in milliseconds.
pub(crate) fn summarize(h: &Histogram<u64>) -> PhaseSummary {
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

/// The percentile distribution of a histogram of microseconds:
/// `[percentile, ms]`, five steps per halving of the tail.
pub(crate) fn distribution(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    h.iter_quantiles(5)
        .map(|v| {
            [
                v.quantile_iterated_to() * 100.0,
                v.value_iterated_to() as f64 / 1000.0,
            ]
        })
        .collect()
}

/// Non-empty phases of `stats`, in the order they happen.
pub(crate) fn phases(stats: &Stats) -> Vec<(&str, &Histogram<u64>)> {
    stats
        .names
        .iter()
        .zip(&stats.hists)
        .filter(|(_, h)| !h.is_empty())
        .map(|(n, h)| (n.as_str(), h))
        .collect()
}

/// What one round measured.
pub(crate) struct RoundResult {
    pub stats: Stats,
    /// From the run's start to this round's start.
    pub offset: Duration,
    /// The round's measuring window (see [`Report::elapsed_s`]).
    pub window: Duration,
    /// Data bytes moved.
    pub bytes: u64,
    /// The generator's own (user, system) CPU time, in µs.
    pub generator_cpu_us: (u64, u64),
    pub server: Option<procstat::Summary>,
    pub sessions_peak: u64,
    /// login-storm with barrier: when every client was logged in.
    pub all_logged_in: Option<Duration>,
}

impl RoundResult {
    fn figures(&self, round: u32, clients: usize) -> RoundFigures {
        let secs = self.window.as_secs_f64().max(1e-6);
        let req = self.stats.hist("request").filter(|h| !h.is_empty());
        let q = |p: f64| req.map(|h| h.value_at_quantile(p) as f64 / 1000.0);
        let server = self
            .server
            .as_ref()
            .map(|s| server(s, 0, self.stats.ok, clients, self.sessions_peak));
        let (gu, gs) = self.generator_cpu_us;
        RoundFigures {
            round,
            elapsed_s: secs,
            ok: self.stats.ok,
            errors: self.stats.error_count(),
            abandoned: self.stats.abandoned,
            missed: self.stats.missed,
            requests_per_s: self.stats.ok as f64 / secs,
            mib_per_s: self.bytes as f64 / (1 << 20) as f64 / secs,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            p99_9_ms: q(0.999),
            server_cpu_s: server.as_ref().map(|s| s.cpu_s),
            server_cpu_ms_per_request: server.and_then(|s| s.cpu_ms_per_request),
            generator_cpu_percent: (gu + gs) as f64 / 1e6 / secs * 100.0,
        }
    }
}

/// The server block from a sampler's summary.
fn server(s: &procstat::Summary, pid: u32, ok: u64, clients: usize, sessions: u64) -> Server {
    let secs = |us: u64| us as f64 / 1e6;
    let (user, sys) = s.cpu_us;
    let growth = s.peak_rss_bytes.saturating_sub(s.start_rss_bytes);
    Server {
        pid,
        processes_peak: s.peak_processes,
        cpu_user_s: secs(user),
        cpu_sys_s: secs(sys),
        cpu_s: secs(user + sys),
        cpu_source: s.source.name().to_string(),
        cpu_settled: s.settled,
        cpu_ms_per_request: (ok > 0).then(|| secs(user + sys) * 1000.0 / ok as f64),
        rss_start_bytes: s.start_rss_bytes,
        rss_peak_bytes: s.peak_rss_bytes,
        rss_end_bytes: s.end_rss_bytes,
        pss_peak_bytes: s.peak_pss_bytes,
        rss_growth_per_client_bytes: growth / clients.max(1) as u64,
        rss_growth_per_session_bytes: (sessions > 0).then(|| growth / sessions),
    }
}

impl Report {
    /// Assembles the report of a run of `plan` from its rounds (at least
    /// one), started at `started`; writes the interval log into `hlog`
    /// when given.
    pub(crate) fn new(
        plan: &Plan,
        rounds: &[RoundResult],
        started: SystemTime,
        hlog: Option<&mut Vec<u8>>,
    ) -> anyhow::Result<Report> {
        let first = rounds.first().context("a run has at least one round")?;
        let mut stats = first.stats.clone();
        for r in &rounds[1..] {
            stats.merge_figures(&r.stats);
        }
        let window: Duration = rounds.iter().map(|r| r.window).sum();
        let elapsed = window.as_secs_f64().max(1e-6);
        let bytes: u64 = rounds.iter().map(|r| r.bytes).sum();
        let errors = stats.error_count();
        let gen_us = rounds.iter().fold((0, 0), |a, r| {
            (a.0 + r.generator_cpu_us.0, a.1 + r.generator_cpu_us.1)
        });
        let secs = |us: u64| us as f64 / 1e6;
        let (gen_user, gen_sys) = (secs(gen_us.0), secs(gen_us.1));
        let sessions_peak = rounds.iter().map(|r| r.sessions_peak).max().unwrap_or(0);
        let server_all = combine_servers(rounds);
        let mut logged_in: Vec<Duration> = rounds.iter().filter_map(|r| r.all_logged_in).collect();
        logged_in.sort();
        let requests_per_s = stats.ok as f64 / elapsed;
        let request = stats.hist("request").filter(|h| !h.is_empty());
        let checks = checks::evaluate(
            plan.max_errors,
            &plan.thresholds,
            Figures {
                ok: stats.ok,
                errors,
                p99_ms: request.map(|h| h.value_at_quantile(0.99) as f64 / 1000.0),
                requests_per_s,
            },
        );
        let series_in: Vec<RoundSeries> = rounds
            .iter()
            .zip(1..)
            .map(|(r, round)| RoundSeries {
                round,
                offset: r.offset,
                window: r.window,
                names: &r.stats.names,
                series: &r.stats.series,
            })
            .collect();
        let series = series::report(&series_in, started, hlog)?;
        let started_unix_s = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Ok(Report {
            schema_version: SCHEMA_VERSION,
            tool: format!("ringftp loadtest {}", env!("CARGO_PKG_VERSION")),
            scenario: plan.scenario.clone(),
            description: plan.description.clone(),
            config: Config::of(plan),
            started_unix_s,
            elapsed_s: elapsed,
            totals: Totals {
                requests: stats.ok + stats.request_errors(),
                ok: stats.ok,
                errors,
                abandoned: stats.abandoned,
                missed: stats.missed,
                bytes,
                requests_per_s,
                mib_per_s: bytes as f64 / (1 << 20) as f64 / elapsed,
                sessions_peak,
            },
            all_logged_in_s: logged_in.get(logged_in.len() / 2).map(|d| d.as_secs_f64()),
            phases: phases(&stats)
                .into_iter()
                .map(|(n, h)| (n.to_string(), summarize(h)))
                .collect(),
            distribution: phases(&stats)
                .into_iter()
                .map(|(n, h)| (n.to_string(), distribution(h)))
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
            ops: stats
                .by_action
                .iter()
                .map(|(a, c)| {
                    let o = OpSummary {
                        ok: c.ok,
                        errors: c.errors,
                        abandoned: c.abandoned,
                    };
                    (a.name(), o)
                })
                .collect(),
            generator: Cpu {
                user_s: gen_user,
                sys_s: gen_sys,
                cpu_percent: (gen_user + gen_sys) / elapsed * 100.0,
            },
            server: server_all.map(|s| {
                server(
                    &s,
                    plan.server_pid.unwrap_or(0),
                    stats.ok,
                    plan.clients,
                    sessions_peak,
                )
            }),
            series,
            rounds: rounds
                .iter()
                .zip(1..)
                .map(|(r, i)| r.figures(i, plan.clients))
                .collect(),
            passed: checks.iter().all(|c| c.passed),
            checks,
        })
    }

    /// Writes the report as pretty JSON.
    pub(crate) fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("--json {}", path.display()))
    }

    /// Reads a report written by `--json`.
    pub(crate) fn read_json(path: &Path) -> anyhow::Result<Report> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a `ringftp loadtest --json` report", path.display()))
    }
}

/// The rounds' server summaries as one: CPU added up, peaks the highest.
fn combine_servers(rounds: &[RoundResult]) -> Option<procstat::Summary> {
    let mut all = rounds.iter().filter_map(|r| r.server.clone());
    let mut s = all.next()?;
    for r in all {
        s.cpu_us = (s.cpu_us.0 + r.cpu_us.0, s.cpu_us.1 + r.cpu_us.1);
        s.settled &= r.settled;
        s.end_rss_bytes = r.end_rss_bytes;
        s.peak_rss_bytes = s.peak_rss_bytes.max(r.peak_rss_bytes);
        s.peak_processes = s.peak_processes.max(r.peak_processes);
        s.peak_pss_bytes = match (s.peak_pss_bytes, r.peak_pss_bytes) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    Some(s)
}

impl Config {
    /// The plan as the report records it (also what `--dry-run` prints).
    pub(crate) fn of(plan: &Plan) -> Config {
        Config {
            target: plan.target_text.clone(),
            mode: plan.mode.name().into(),
            ops: plan.ops.iter().map(|o| o.name()).collect(),
            op_weights: plan.weights.iter().map(|(o, &w)| (o.name(), w)).collect(),
            scale: plan.scale.clone(),
            user: plan.user.clone(),
            size_bytes: plan.has(Op::Stor).then_some(plan.size),
            upload_dir: plan.has(Op::Stor).then(|| plan.upload_dir.clone()),
            new_files: plan.has(Op::Stor) && plan.new_files,
            clients: plan.clients,
            max_clients: plan.max_clients,
            cores: plan.cores,
            pin: plan.pin,
            rcvbuf: plan.rcvbuf,
            duration_s: plan.bounds.duration.map(|d| d.as_secs_f64()),
            requests: plan.bounds.total_requests,
            rate: plan.rate,
            ramp_s: plan.ramp.map(|d| d.as_secs_f64()),
            rounds: plan.rounds,
            verify: plan.verify,
            timeout_s: plan.timeout.as_secs_f64(),
            max_errors: plan.max_errors,
            max_p99_ms: plan.thresholds.max_p99.map(|d| d.as_secs_f64() * 1000.0),
            max_error_rate: plan.thresholds.max_error_rate,
            min_rate: plan.thresholds.min_rate,
        }
    }
}

/// Writes `<phase>.hgrm` for every non-empty phase into `dir`.
pub(crate) fn write_hgrm(dir: &Path, stats: &Stats) -> anyhow::Result<()> {
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
pub(crate) fn hgrm(h: &Histogram<u64>) -> String {
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
