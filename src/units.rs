//! Human units, one syntax everywhere: every duration and byte size on the
//! command line (`serve` and `loadtest` alike), in scenario files and in the
//! users file goes through these two parsers, so `1m30s` or `1.5MiB` means
//! the same thing wherever it is written.
//!
//! - **Durations** are parsed by `humantime` (`500ms`, `30s`, `1m30s`,
//!   `2h`, `1h 5m`; units ns, us, ms, s, m/min, h, d), plus two forms it
//!   lacks: a bare number is seconds (`30`, what `serve`'s timeout flags
//!   always took) and one unit may take a fraction (`1.5s`, `0.25h`).
//! - **Sizes** are parsed by `bytesize`, case-insensitively: `KiB`, `MiB`,
//!   `GiB`, `TiB` (also `Ki`, `Mi`, ...) are powers of 1024; `KB`, `MB`, `GB`,
//!   `TB` and the bare `K`, `M`, `G`, `T` powers of 1000 (SI, as disk vendors
//!   and `bytesize` mean them); `B` or nothing is bytes. Fractions are
//!   allowed (`1.5MiB`).
//!
//! Printing uses the same crates: [`format_duration`] and [`format_bytes`].

use std::time::Duration;

use bytesize::ByteSize;

/// Longest duration accepted anywhere: about 31 years. A guard against
/// typos (`1e30s`) and `Instant` overflow, not a policy.
const MAX_DURATION_S: f64 = 1e9;

/// Parses a duration: `humantime` syntax (`500ms`, `1m30s`, `2h`), a bare
/// number of seconds (`30`, `1.5`), or one unit with a fraction (`1.5s`).
/// Negative, empty, unit-less garbage and durations over ~31 years are
/// errors that say what was expected.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let hint = || {
        format!("{text:?} is not a duration (try 500ms, 30s, 1m30s, 2h; a bare number is seconds)")
    };
    if t.is_empty() {
        return Err(hint());
    }
    // A bare number is seconds (`serve --idle-timeout 300`).
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|_| hint())?;
        return seconds(text, secs);
    }
    match humantime::parse_duration(t) {
        Ok(d) if d.as_secs_f64() <= MAX_DURATION_S => Ok(d),
        Ok(_) => Err(format!("{text:?} is out of range")),
        Err(e) => {
            // humantime takes whole numbers only: `1.5s` is one number with
            // a fraction and one unit, scaled by what `1<unit>` means.
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (number, unit) = t.split_at(split);
            match (
                number.parse::<f64>(),
                humantime::parse_duration(&format!("1{}", unit.trim())),
            ) {
                (Ok(n), Ok(one)) if number.contains('.') => seconds(text, n * one.as_secs_f64()),
                _ => Err(format!("{}: {e}", hint())),
            }
        }
    }
}

fn seconds(text: &str, secs: f64) -> Result<Duration, String> {
    if !(0.0..=MAX_DURATION_S).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a byte size (see the module docs for the units): `4096`,
/// `64KiB`, `1.5MiB`, `10kib`, `1TiB`, `10MB`. Negative, empty, unknown
/// units and sizes beyond 2^64 - 1 bytes are errors.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let hint = || format!("{text:?} is not a size (try 4096, 64KiB, 1.5MiB, 1GiB, 10MB)");
    if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(hint());
    }
    let ByteSize(n) = t
        .parse::<ByteSize>()
        .map_err(|e| format!("{}: {e}", hint()))?;
    // bytesize saturates where the number overflows.
    if n == u64::MAX {
        return Err(format!("{text:?} is too large"));
    }
    Ok(n)
}

/// Formats a byte count for people, in binary units: `512 B`, `64.0 KiB`,
/// `1.5 GiB` (bytesize's IEC display).
pub(crate) fn format_bytes(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

/// Formats a duration for people, in the syntax [`parse_duration`] reads
/// back (`1m 30s`, `500ms`), rounded to the millisecond above one second.
pub(crate) fn format_duration(d: Duration) -> String {
    let d = if d >= Duration::from_secs(1) {
        Duration::from_millis(d.as_millis() as u64)
    } else {
        d
    };
    humantime::format_duration(d).to_string()
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
            ("1m30s", 90_000),
            ("1m 30s", 90_000),
            ("1.5s", 1_500),
            ("0.25h", 900_000),
            ("10", 10_000),
            ("1.5", 1_500),
            (" 3s ", 3_000),
            ("0s", 0),
            ("2min", 120_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "",
            "s",
            "-1s",
            "10x",
            "1.2.3s",
            "abc",
            "5 parsecs",
            "1e30s",
            "99999999999",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("4096", 4096),
            ("64KiB", 65536),
            ("10kib", 10240),
            ("1.5MiB", 3 << 19),
            ("16MiB", 16 << 20),
            ("1GiB", 1 << 30),
            ("1TiB", 1 << 40),
            ("1K", 1000),
            ("10MB", 10_000_000),
            ("7B", 7),
            ("2 MiB", 2 << 20),
        ];
        for (text, n) in ok {
            assert_eq!(parse_size(text), Ok(n), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "-3",
            "12 parsecs",
            "1.2.3MiB",
            "99999999999999999999G",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }

    fn cli(argv: &[&str]) -> crate::cli::Command {
        use clap::Parser;
        let mut all = vec!["ringftp"];
        all.extend_from_slice(argv);
        crate::cli::Cli::try_parse_from(all)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .command
    }

    fn serve(argv: &[&str]) -> Result<crate::config::Config, String> {
        let mut all = vec!["serve", "--pasv-ports", "50000-50100"];
        all.extend_from_slice(argv);
        match cli(&all) {
            crate::cli::Command::Serve(a) => crate::config::Config::from_args(&a, 4),
            other => panic!("{other:?}"),
        }
    }

    /// Issue 17: each form means the same in every `serve` and `prepare`
    /// flag and in the users file (loadtest flags and scenario fields are
    /// checked in loadgen::plan).
    #[test]
    fn every_form_in_every_serve_and_prepare_flag_and_the_users_file() {
        for (text, secs) in [("1m30s", 90), ("90", 90), ("1.5m", 90), ("90s", 90)] {
            let c = serve(&[
                "--data-timeout",
                text,
                "--idle-timeout",
                text,
                "--login-timeout",
                text,
                "--shutdown-grace",
                text,
                "--login-ban",
                &format!("5/{text}"),
            ])
            .unwrap();
            let d = Duration::from_secs(secs);
            assert_eq!(
                (
                    c.data_timeout,
                    c.idle_timeout,
                    c.login_timeout,
                    c.shutdown_grace
                ),
                (d, d, d, d),
                "{text}"
            );
            assert_eq!(c.login_ban.map(|b| b.window), Some(d), "{text}");
        }
        // 500ms parses like anywhere else; a serve timeout under a second
        // is then refused with a clear reason.
        let e = serve(&["--data-timeout", "500ms"]).unwrap_err();
        assert!(e.contains("at least 1 second"), "{e}");
        let e = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "ringftp",
            "serve",
            "--idle-timeout",
            "soon",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a duration"), "{e}");

        for (text, bytes) in [
            ("1.5MiB", 3u64 << 19),
            ("10kib", 10 << 10),
            ("1TiB", 1 << 40),
            ("10MB", 10_000_000),
        ] {
            let c = serve(&["--max-rate", text, "--max-rate-per-session", text]).unwrap();
            assert_eq!(
                (c.max_rate, c.max_rate_per_session),
                (Some(bytes), Some(bytes)),
                "{text}"
            );
            match cli(&[
                "loadtest",
                "prepare",
                "--dir",
                "x",
                "--max-size",
                text,
                "--bigfile",
                text,
            ]) {
                crate::cli::Command::Loadtest(a) => match a.command {
                    Some(crate::loadgen::LoadtestCommand::Prepare(p)) => {
                        assert_eq!((p.max_size, p.bigfile), (bytes, bytes), "{text}")
                    }
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
            let users = format!(
                "[[user]]\nname = \"u\"\npassword = \"{}\"\nhome = \"/\"\npermissions = [\"read\"]\nmax_download_rate = \"{text}\"\nmax_upload_rate = \"{text}\"\n",
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ"
            );
            let u = crate::auth::users::Users::parse(&users, &|_| Ok(()))
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .get("u")
                .unwrap();
            assert_eq!(
                (u.max_download_rate, u.max_upload_rate),
                (Some(bytes), Some(bytes)),
                "{text}"
            );
        }
    }

    #[test]
    fn printing_reads_back() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(64 << 10), "64.0 KiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        for d in [
            Duration::from_millis(500),
            Duration::from_secs(90),
            Duration::from_secs(7200),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m 30s");
    }
}
