//! `ringftp loadtest compare A.json B.json`: two runs side by side, every
//! figure with B's ratio to A, and a verdict on each difference where both
//! runs have several rounds (`--rounds`).
//!
//! **Noise.** A figure that each round reports (requests/s, MiB/s, request
//! p50/p99/p99.9, server CPU per request, generator CPU) is *beyond noise*
//! when the two runs' rounds do not overlap at all (every round of one is
//! above every round of the other) and the difference of the means is more
//! than twice its standard error (Welch: `sqrt(var_a/n_a + var_b/n_b)`).
//! Both must hold: with few rounds, disjoint ranges alone happen by chance,
//! and a t-like ratio alone is fooled by one wild round. With a single round
//! on either side nothing is flagged: one run cannot tell noise from a
//! difference.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::report::{Report, RoundFigures};

/// Flags of `ringftp loadtest compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The baseline run's JSON report.
    #[arg(value_name = "A.json")]
    pub a: PathBuf,
    /// The run compared with it.
    #[arg(value_name = "B.json")]
    pub b: PathBuf,
}

/// Runs `ringftp loadtest compare`; prints the table, exit status 0.
pub(crate) fn run(args: &CompareArgs) -> anyhow::Result<i32> {
    let a = Report::read_json(&args.a)?;
    let b = Report::read_json(&args.b)?;
    print!(
        "{}",
        render(
            &a,
            &b,
            &args.a.display().to_string(),
            &args.b.display().to_string()
        )
    );
    Ok(0)
}

/// How a difference between two runs reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Beyond run-to-run noise.
    Differs,
    /// Within noise.
    Noise,
    /// No rounds to tell (one side has a single round).
    Unknown,
}

/// The verdict for one figure's per-round values (see the module docs).
pub(crate) fn verdict(a: &[f64], b: &[f64]) -> Verdict {
    if a.len() < 2 || b.len() < 2 {
        return Verdict::Unknown;
    }
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (mean, var / n, lo, hi)
    };
    let (ma, sa, loa, hia) = stats(a);
    let (mb, sb, lob, hib) = stats(b);
    let disjoint = hia < lob || hib < loa;
    let se = (sa + sb).sqrt();
    if disjoint && (mb - ma).abs() > 2.0 * se {
        Verdict::Differs
    } else {
        Verdict::Noise
    }
}

type RoundFigure = fn(&RoundFigures) -> Option<f64>;

/// One row: a name, A's and B's value, and per-round values when the
/// figure has them.
struct Row {
    name: String,
    a: Option<f64>,
    b: Option<f64>,
    rounds: Option<RoundFigure>,
}

fn rows(a: &Report, b: &Report) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut push = |name: &str, f: &dyn Fn(&Report) -> Option<f64>, rounds: Option<RoundFigure>| {
        rows.push(Row {
            name: name.into(),
            a: f(a),
            b: f(b),
            rounds,
        })
    };
    push("ok requests", &|r| Some(r.totals.ok as f64), None);
    push("errors", &|r| Some(r.totals.errors as f64), None);
    push("abandoned", &|r| Some(r.totals.abandoned as f64), None);
    push("missed starts", &|r| Some(r.totals.missed as f64), None);
    push(
        "requests/s",
        &|r| Some(r.totals.requests_per_s),
        Some(|f| Some(f.requests_per_s)),
    );
    push(
        "MiB/s",
        &|r| Some(r.totals.mib_per_s),
        Some(|f| Some(f.mib_per_s)),
    );
    push(
        "sessions peak",
        &|r| Some(r.totals.sessions_peak as f64),
        None,
    );
    push("all logged in s", &|r| r.all_logged_in_s, None);
    let mut names: Vec<&String> = a
        .phases
        .keys()
        .filter(|k| b.phases.contains_key(*k))
        .collect();
    let order = |n: &str| {
        super::stats::PHASES
            .iter()
            .position(|p| *p == n)
            .unwrap_or(super::stats::PHASES.len())
    };
    names.sort_by_key(|n| (order(n), n.to_string()));
    for name in names {
        type Pick = fn(&super::report::PhaseSummary) -> f64;
        let figures: [(&str, Pick, Option<RoundFigure>); 5] = [
            ("p50", |p| p.p50_ms, Some(|f| f.p50_ms)),
            ("p90", |p| p.p90_ms, None),
            ("p99", |p| p.p99_ms, Some(|f| f.p99_ms)),
            ("p99.9", |p| p.p99_9_ms, Some(|f| f.p99_9_ms)),
            ("max", |p| p.max_ms, None),
        ];
        for (label, pick, per_round) in figures {
            let per_round = per_round.filter(|_| name == "request");
            push(
                &format!("{name} {label} ms"),
                &|r| r.phases.get(name).map(pick),
                per_round,
            );
        }
    }
    push(
        "generator CPU %",
        &|r| Some(r.generator.cpu_percent),
        Some(|f| Some(f.generator_cpu_percent)),
    );
    push(
        "server CPU s",
        &|r| r.server.as_ref().map(|s| s.cpu_s),
        Some(|f| f.server_cpu_s),
    );
    push(
        "server CPU ms/request",
        &|r| r.server.as_ref().and_then(|s| s.cpu_ms_per_request),
        Some(|f| f.server_cpu_ms_per_request),
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    push(
        "server RSS peak MiB",
        &|r| r.server.as_ref().map(|s| mib(s.rss_peak_bytes)),
        None,
    );
    push(
        "server PSS peak MiB",
        &|r| r.server.as_ref().and_then(|s| s.pss_peak_bytes.map(mib)),
        None,
    );
    push(
        "server RSS KiB/session",
        &|r| {
            r.server
                .as_ref()
                .and_then(|s| s.rss_growth_per_session_bytes)
                .map(|b| b as f64 / 1024.0)
        },
        None,
    );
    rows.retain(|r| r.a.is_some() || r.b.is_some());
    rows
}

/// Config fields that differ between the runs, as "field: A vs B".
fn config_differences(a: &Report, b: &Report) -> Vec<String> {
    let (Ok(ja), Ok(jb)) = (
        serde_json::to_value(&a.config),
        serde_json::to_value(&b.config),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if a.scenario != b.scenario {
        out.push(format!("scenario: {} vs {}", a.scenario, b.scenario));
    }
    if let (Some(oa), Some(ob)) = (ja.as_object(), jb.as_object()) {
        for (k, va) in oa {
            let vb = ob.get(k).unwrap_or(&serde_json::Value::Null);
            if k != "target" && va != vb {
                out.push(format!("{k}: {va} vs {vb}"));
            }
        }
    }
    out
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x == x.trunc() && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) if x.abs() >= 100.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}"),
    }
}

/// The comparison as text (A and B named by `name_a`, `name_b`).
pub(crate) fn render(a: &Report, b: &Report, name_a: &str, name_b: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "A: {name_a} ({}, {} round(s), {:.1} s)",
        a.scenario,
        a.rounds.len().max(1),
        a.elapsed_s
    );
    let _ = writeln!(
        out,
        "B: {name_b} ({}, {} round(s), {:.1} s)",
        b.scenario,
        b.rounds.len().max(1),
        b.elapsed_s
    );
    let diffs = config_differences(a, b);
    if !diffs.is_empty() {
        let _ = writeln!(out, "note: the runs differ in config: {}", diffs.join("; "));
    }
    let rounds_both = a.rounds.len() > 1 && b.rounds.len() > 1;
    let _ = writeln!(
        out,
        "\n{:<26} {:>14} {:>14} {:>8}  vs noise",
        "figure", "A", "B", "B/A"
    );
    for row in rows(a, b) {
        let ratio = match (row.a, row.b) {
            (Some(x), Some(y)) if x != 0.0 => format!("{:.2}x", y / x),
            (Some(x), Some(y)) if x == y => "=".into(),
            _ => "-".into(),
        };
        let note = match row.rounds {
            Some(f) if rounds_both => {
                let va: Vec<f64> = a.rounds.iter().filter_map(f).collect();
                let vb: Vec<f64> = b.rounds.iter().filter_map(f).collect();
                let spread = |v: &[f64]| {
                    let lo = v.iter().copied().fold(f64::MAX, f64::min);
                    let hi = v.iter().copied().fold(f64::MIN, f64::max);
                    format!("{}..{}", num(Some(lo)), num(Some(hi)))
                };
                match verdict(&va, &vb) {
                    Verdict::Differs => format!("DIFFERS (A {}, B {})", spread(&va), spread(&vb)),
                    Verdict::Noise => {
                        format!("within noise (A {}, B {})", spread(&va), spread(&vb))
                    }
                    Verdict::Unknown => String::new(),
                }
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<26} {:>14} {:>14} {:>8}  {}",
            row.name,
            num(row.a),
            num(row.b),
            ratio,
            note
        );
    }
    if !rounds_both {
        let _ = writeln!(
            out,
            "\n(one round on a side: no noise estimate; run both with --rounds 3 or more to tell noise from a difference)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(&[100.0], &[200.0]), Verdict::Unknown);
        assert_eq!(
            verdict(&[100.0, 101.0, 99.0], &[150.0, 151.0, 149.0]),
            Verdict::Differs
        );
        assert_eq!(
            verdict(&[100.0, 140.0, 90.0], &[110.0, 130.0, 95.0]),
            Verdict::Noise
        );
        // Disjoint but tiny against a huge spread: not enough.
        assert_eq!(verdict(&[100.0, 200.0], &[201.0, 400.0]), Verdict::Noise);
    }
}
