//! Pass/fail checks of a run, for CI: `--max-errors` and the thresholds
//! `--max-p99`, `--max-error-rate` and `--min-rate` (also settable in a
//! scenario file). Pure: a [`Thresholds`] and the report's figures in, one
//! [`Check`] per configured limit out; the run's exit status is 1 when any
//! fails, and each failing one is named with its figure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits a run is held to, beyond `--max-errors`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Thresholds {
    /// p99 of whole requests (the `request` histogram, abandoned requests
    /// included at the time they had waited).
    pub max_p99: Option<Duration>,
    /// errors / (ok + errors), 0..=1.
    pub max_error_rate: Option<f64>,
    /// Successful requests a second over the measuring window.
    pub min_rate: Option<f64>,
}

/// One limit and how the run did against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Check {
    /// What is checked: `errors`, `p99_ms`, `error_rate`, `requests_per_s`.
    pub figure: String,
    /// The flag that set the limit, as a user would type it.
    pub flag: String,
    pub limit: f64,
    /// The run's figure (null when there is none, e.g. no request at all
    /// for a p99: that fails the check).
    pub value: Option<f64>,
    pub passed: bool,
}

impl Check {
    /// `p99_ms 1523.400 > --max-p99 500ms`: the line a failure prints.
    pub(crate) fn describe(&self) -> String {
        let value = self
            .value
            .map_or_else(|| "none".to_string(), |v| format!("{v:.3}"));
        let rel = if self.passed { "within" } else { "breaks" };
        format!("{} {value} {rel} {}", self.figure, self.flag)
    }
}

/// The figures checks look at.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Figures {
    pub ok: u64,
    pub errors: u64,
    /// p99 of the request histogram in ms (None: no request recorded).
    pub p99_ms: Option<f64>,
    pub requests_per_s: f64,
}

/// Every configured check of a run: `--max-errors` and at least one
/// successful request always (a run in which nothing succeeded, a server
/// that accepts and never answers, must not pass), each threshold when
/// set.
pub(crate) fn evaluate(max_errors: u64, t: &Thresholds, f: Figures) -> Vec<Check> {
    let mut out = vec![
        Check {
            figure: "errors".into(),
            flag: format!("--max-errors {max_errors}"),
            limit: max_errors as f64,
            value: Some(f.errors as f64),
            passed: f.errors <= max_errors,
        },
        Check {
            figure: "ok_requests".into(),
            flag: "at least 1 (always)".into(),
            limit: 1.0,
            value: Some(f.ok as f64),
            passed: f.ok >= 1,
        },
    ];
    if let Some(d) = t.max_p99 {
        let limit = d.as_secs_f64() * 1000.0;
        out.push(Check {
            figure: "p99_ms".into(),
            flag: format!("--max-p99 {}", crate::units::format_duration(d)),
            limit,
            value: f.p99_ms,
            passed: f.p99_ms.is_some_and(|v| v <= limit),
        });
    }
    if let Some(r) = t.max_error_rate {
        let finished = f.ok + f.errors;
        let rate = (finished > 0).then(|| f.errors as f64 / finished as f64);
        out.push(Check {
            figure: "error_rate".into(),
            flag: format!("--max-error-rate {r}"),
            limit: r,
            value: rate,
            passed: rate.is_some_and(|v| v <= r),
        });
    }
    if let Some(r) = t.min_rate {
        out.push(Check {
            figure: "requests_per_s".into(),
            flag: format!("--min-rate {r}"),
            limit: r,
            value: Some(f.requests_per_s),
            passed: f.requests_per_s >= r,
        });
    }
    out
}

/// Parses a fraction: `0.01` or `1%`, between 0 and 1.
pub(crate) fn parse_fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (t, 1.0),
    };
    let v: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a fraction (try 0.01 or 1%)"))?;
    fraction(v * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// Checks that `v` is a fraction between 0 and 1.
pub(crate) fn fraction(v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1 (0 % and 100 %)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("0.01"), Ok(0.01));
        assert_eq!(parse_fraction("5%"), Ok(0.05));
        assert_eq!(parse_fraction(" 100 % "), Ok(1.0));
        for bad in ["", "x", "2", "-1%", "150%"] {
            assert!(parse_fraction(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_threshold_passes_and_fails() {
        let t = Thresholds {
            max_p99: Some(Duration::from_millis(100)),
            max_error_rate: Some(0.1),
            min_rate: Some(50.0),
        };
        let good = Figures {
            ok: 95,
            errors: 5,
            p99_ms: Some(99.0),
            requests_per_s: 60.0,
        };
        let checks = evaluate(10, &t, good);
        assert_eq!(checks.len(), 5);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        let bad = Figures {
            ok: 80,
            errors: 20,
            p99_ms: Some(101.0),
            requests_per_s: 49.0,
        };
        let failed: Vec<String> = evaluate(20, &t, bad)
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.figure)
            .collect();
        assert_eq!(failed, ["p99_ms", "error_rate", "requests_per_s"]);
        // No request at all: none succeeded, no p99 and no error rate,
        // and all three fail.
        let none = evaluate(0, &t, Figures::default());
        assert!(!none[1].passed && !none[2].passed && !none[3].passed);
        assert!(
            none[1]
                .describe()
                .contains("ok_requests 0.000 breaks at least 1"),
            "{}",
            none[1].describe()
        );
        assert!(
            none[2].describe().contains("none breaks --max-p99 100ms"),
            "{}",
            none[2].describe()
        );
    }
}
