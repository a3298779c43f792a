//! The human form of a [`Report`]: what the run was, its totals (with the
//! abandoned requests and missed starts that keep tails honest), one line
//! per non-empty phase, errors with an example each, the checks, and the
//! generator's and the server's CPU and memory. Averages that would divide
//! by zero are not printed.

use std::fmt::Write as _;

use super::report::Report;
use crate::units::format_bytes;

/// The table, phases in `order` (the run's histogram names).
pub(crate) fn render(r: &Report, order: &[String]) -> String {
    let mut out = String::new();
    let c = &r.config;
    let pacing = match c.rate {
        Some(rate) if c.max_clients > c.clients => format!(
            "open loop at {rate} requests/s, {} to {} clients",
            c.clients, c.max_clients
        ),
        Some(rate) => format!("open loop at {rate} requests/s"),
        None => "closed loop".into(),
    };
    let ramp = c
        .ramp_s
        .map(|s| format!(", {s} s ramp"))
        .unwrap_or_default();
    let scale = c
        .scale
        .as_deref()
        .map(|s| format!(" (scale {s})"))
        .unwrap_or_default();
    let _ = writeln!(out, "scenario {}{scale}: {}", r.scenario, r.description);
    let rounds = if r.rounds.len() > 1 {
        format!(" in {} rounds", r.rounds.len())
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "target {}, mode {}, {} clients on {} cores, {:.1} s{rounds}, {pacing}{ramp}{}",
        c.target,
        c.mode,
        c.clients,
        c.cores,
        r.elapsed_s,
        if c.verify {
            ", every byte verified"
        } else {
            ""
        }
    );
    let t = &r.totals;
    let _ = writeln!(
        out,
        "\nrequests: {} ok, {} errors, {} abandoned at the end; {:.1} requests/s, {:.1} MiB/s ({} moved)",
        t.ok,
        t.errors,
        t.abandoned,
        t.requests_per_s,
        t.mib_per_s,
        format_bytes(t.bytes)
    );
    if t.missed > 0 {
        let _ = writeln!(
            out,
            "!!! {} scheduled starts MISSED: every client was busy{} !!!",
            t.missed,
            if c.max_clients > c.clients {
                " and --max-clients was reached"
            } else {
                " (--max-clients lets the pool grow)"
            }
        );
    }
    if t.abandoned > 0 {
        let _ = writeln!(
            out,
            "abandoned requests are in `request` at the time they had waited when the run ended"
        );
    }
    if let Some(s) = r.all_logged_in_s {
        let _ = writeln!(
            out,
            "all {} clients logged in at once after {s:.3} s",
            c.clients
        );
    }
    let _ = writeln!(
        out,
        "\n{:<17} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "phase (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for name in order {
        if let Some(p) = r.phases.get(name) {
            let _ = writeln!(
                out,
                "{:<17} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name, p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p99_9_ms, p.max_ms
            );
        }
    }
    if r.rounds.len() > 1 {
        let _ = writeln!(
            out,
            "\n{:<7} {:>9} {:>12} {:>10} {:>10}",
            "round", "ok", "requests/s", "MiB/s", "p99 ms"
        );
        for f in &r.rounds {
            let p99 = f.p99_ms.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
            let _ = writeln!(
                out,
                "{:<7} {:>9} {:>12.1} {:>10.1} {:>10}",
                f.round, f.ok, f.requests_per_s, f.mib_per_s, p99
            );
        }
    }
    if r.errors.is_empty() {
        let _ = writeln!(out, "\nerrors: none");
    } else {
        let errors_ok = r
            .checks
            .iter()
            .find(|ch| ch.figure == "errors")
            .is_none_or(|ch| ch.passed);
        let verdict = if errors_ok { "within" } else { "MORE THAN" };
        let _ = writeln!(
            out,
            "\n!!! {} ERRORS ({verdict} --max-errors {}) !!!",
            t.errors, c.max_errors
        );
        for (kind, e) in &r.errors {
            let _ = writeln!(out, "  {kind:<16} {:>9}   e.g. {}", e.count, e.example);
        }
    }
    for ch in r.checks.iter().filter(|ch| ch.figure != "errors") {
        let mark = if ch.passed { "ok    " } else { "FAILED" };
        let _ = writeln!(out, "threshold {mark} {}", ch.describe());
    }
    let g = &r.generator;
    let _ = writeln!(
        out,
        "\ngenerator CPU: {:.2} s user + {:.2} s sys = {:.0} % of one core",
        g.user_s, g.sys_s, g.cpu_percent
    );
    if let Some(s) = &r.server {
        let per_request = match s.cpu_ms_per_request {
            Some(ms) => format!("{ms:.3} ms a request"),
            None => "no successful request".into(),
        };
        let settled = if s.cpu_settled {
            ""
        } else {
            " (sessions still closing: a lower bound)"
        };
        let _ = writeln!(
            out,
            "server pid {} ({} processes at most): CPU ({}) {:.2} s user + {:.2} s sys = {:.2} s, {per_request}{settled}",
            s.pid, s.processes_peak, s.cpu_source, s.cpu_user_s, s.cpu_sys_s, s.cpu_s
        );
        let pss = s
            .pss_peak_bytes
            .map(|p| format!(", PSS peak {}", format_bytes(p)))
            .unwrap_or_default();
        let per_session = s
            .rss_growth_per_session_bytes
            .map(|b| {
                format!(
                    ", {} a session of {} held",
                    format_bytes(b),
                    t.sessions_peak
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "server memory: RSS {} at start, {} peak, {} at end ({} a client{per_session}){pss}",
            format_bytes(s.rss_start_bytes),
            format_bytes(s.rss_peak_bytes),
            format_bytes(s.rss_end_bytes),
            format_bytes(s.rss_growth_per_client_bytes)
        );
    }
    out
}
