//! Human units on the command line, in scenario files and in the users file: durations
//! (`30s`, `2m`, `500ms`, `1.5h`) and byte sizes (`64KiB`, `1GiB`, `10MB`).
//!
//! Both parsers are pure so clap, the TOML loader and the tests share them.

use std::time::Duration;

/// Parses a duration: a number followed by `ms`, `s`, `m` or `h`. A bare
/// number is seconds. Fractions are allowed (`1.5s`); negative, empty,
/// non-finite and unit-less garbage are errors.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 30s, 2m, 500ms, 1h)"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a byte size: a whole number with an optional unit. `K`, `KiB`,
/// `M`, `MiB`, `G`, `GiB` are powers of 1024; `KB`, `MB`, `GB` powers of
/// 1000 (as disk vendors mean them); `B` or nothing is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 4096, 64KiB, 16MiB, 1GiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?} (use KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats a byte count for people: `512 B`, `64.0 KiB`, `1.50 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("1.5s", 1_500),
            ("10", 10_000),
            (" 3s ", 3_000),
            ("0s", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(ms),
                "{text}"
            );
        }
        for bad in ["", "s", "-1s", "10x", "1.2.3s", "abc", "5 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("4096", 4096),
            ("1K", 1024),
            ("64KiB", 65536),
            ("16MiB", 16 << 20),
            ("1G", 1 << 30),
            ("10MB", 10_000_000),
            ("7B", 7),
        ];
        for (text, n) in ok {
            assert_eq!(parse_size(text).unwrap(), n, "{text}");
        }
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-3",
            "12 parsecs",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(64 << 10), "64.0 KiB");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
    }
}
