//! `ringftp who --metrics ADDR:PORT`: who is connected and what they are
//! doing, read from a running server's `/sessions` and printed as a table
//! (as `pure-ftpwho` does for pure-ftpd).

use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;

use super::sessions::{SessionRow, SessionsReport};
use crate::units::format_bytes;

/// `ringftp who` flags.
#[derive(Args, Debug, Clone)]
pub struct WhoArgs {
    /// The server's --metrics-listen address.
    #[arg(long = "metrics", value_name = "ADDR:PORT")]
    pub metrics: String,

    /// Print the server's JSON as it is instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ringftp who`: prints the table (or the JSON) to stdout.
pub fn run(args: &WhoArgs) -> anyhow::Result<()> {
    let (status, body) = super::http::get(&args.metrics, "/sessions", Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!("--metrics {}: {e}", args.metrics))?;
    if status != 200 {
        anyhow::bail!("--metrics {}: /sessions answered {status}", args.metrics);
    }
    if args.json {
        print!("{body}");
        return Ok(());
    }
    let report: SessionsReport = serde_json::from_str(&body)
        .map_err(|e| anyhow::anyhow!("--metrics {}: not a /sessions answer: {e}", args.metrics))?;
    print!("{}", table(&report));
    Ok(())
}

/// Seconds as `1h02m`, `3m05s` or `12s`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// What the session is doing, in a few words.
fn doing(r: &SessionRow) -> String {
    match (&r.transfer, &r.command) {
        (Some(t), _) => format!(
            "{} {} {} at {}/s",
            t.direction,
            t.path,
            format_bytes(t.bytes),
            format_bytes(t.bytes_per_second as u64)
        ),
        (None, Some(c)) => c.clone(),
        (None, None) => format!("idle {}", duration(r.idle_seconds)),
    }
}

/// `s` with each control character (ESC, BEL, CR, ...; C0, DEL and C1)
/// written as `\xNN`, and each bidirectional control, separator or
/// invisible format character ([`crate::logging::is_hidden_format`]) as
/// `\u{NNNN}`: names and commands come from clients, and raw they would
/// be obeyed by the operator's terminal (retitle it, clear it, show text
/// reordered or split).
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else if crate::logging::is_hidden_format(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The report as a text table, one line per session, and a summary line.
/// Client-given text (user names, paths, commands) is [`shown`] escaped.
pub fn table(report: &SessionsReport) -> String {
    let header = ["SHARD", "PEER", "USER", "CONNECTED", "FOR", "DOING"];
    let rows: Vec<[String; 6]> = report
        .sessions
        .iter()
        .map(|r| {
            [
                r.shard.to_string(),
                shown(&r.peer),
                shown(r.user.as_deref().unwrap_or("-")),
                shown(&r.connected_since),
                duration(r.connected_seconds),
                shown(&doing(r)),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let transfers = report
        .sessions
        .iter()
        .filter(|r| r.transfer.is_some())
        .count();
    let _ = writeln!(
        out,
        "{} session(s), {} transferring{}",
        report.sessions.len(),
        transfers,
        if report.shards_answered < report.shards {
            format!(
                " ({} of {} shards answered in time)",
                report.shards_answered, report.shards
            )
        } else {
            String::new()
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sessions::TransferRow;

    #[test]
    fn table_lines() {
        let base = SessionRow {
            shard: 0,
            id: 1,
            peer: "127.0.0.1:40000".into(),
            user: None,
            connected_since: "2026-01-01T00:00:00Z".into(),
            connected_seconds: 75.0,
            idle_seconds: 12.0,
            command: None,
            transfer: None,
        };
        let busy = SessionRow {
            shard: 1,
            id: 7,
            user: Some("anonymous".into()),
            command: Some("RETR big.iso".into()),
            transfer: Some(TransferRow {
                direction: "download".into(),
                path: "/pub/big.iso".into(),
                bytes: 3 << 20,
                seconds: 3.0,
                bytes_per_second: (1 << 20) as f64,
            }),
            ..base.clone()
        };
        let hostile = SessionRow {
            id: 8,
            user: Some("eve\u{9b}\u{202e}gpj.exe".into()),
            command: Some("RETR esc\u{1b}]0;PWNED\u{7}\u{1b}[2Jx".into()),
            ..base.clone()
        };
        let report = SessionsReport {
            shards: 2,
            shards_answered: 1,
            sessions: vec![base, busy, hostile],
        };
        let t = table(&report);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        // What a client named reaches the terminal escaped.
        assert!(
            lines[3].ends_with("RETR esc\\x1b]0;PWNED\\x07\\x1b[2Jx"),
            "{t}"
        );
        assert!(lines[3].contains("eve\\x9b\\u{202e}gpj.exe"), "{t}");
        assert!(!t.chars().any(crate::logging::is_hidden_format), "{t:?}");
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(lines[0].starts_with("SHARD  PEER"), "{t}");
        assert!(lines[1].ends_with("idle 12s"), "{t}");
        assert!(lines[1].contains("1m15s"), "{t}");
        assert!(lines[2].contains("anonymous"), "{t}");
        assert!(lines[2].contains("download /pub/big.iso 3.0 MiB"), "{t}");
        assert_eq!(
            lines[4],
            "3 session(s), 1 transferring (1 of 2 shards answered in time)"
        );
    }
}
