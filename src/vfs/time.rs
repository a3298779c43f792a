//! Civil (calendar) time without a clock: converts Unix seconds to UTC
//! year/month/day/hour/minute/second and back, and the `YYYYMMDDHHMMSS`
//! form of RFC 3659 (MDTM replies, MFMT arguments, the MLSx `modify` fact).
//!
//! The caller passes the time in; nothing here reads the clock or the time
//! zone database. FTP times are UTC by RFC 3659 section 2.3, and LIST uses
//! UTC too so a listing does not depend on the server's `TZ`. The day
//! arithmetic is Howard Hinnant's public-domain "days from civil" method
//! for the proleptic Gregorian calendar (shift the year to start in March
//! so the leap day is last, then count 400-year eras of 146097 days),
//! which is exact for negative times as well.

const SECS_PER_DAY: i64 = 86_400;
/// Days from 0000-03-01 to 1970-01-01 in the March-based calendar.
const EPOCH_SHIFT_DAYS: i64 = 719_468;
const DAYS_PER_ERA: i64 = 146_097;

/// Inputs beyond this many seconds either side of the epoch (about 1.1
/// billion years) are clamped, so the year always fits an `i32` and no
/// `i64` arithmetic can overflow, whatever a filesystem reports.
const CLAMP_SECS: i64 = 1 << 55;

/// Splits Unix seconds into UTC `(year, month 1-12, day 1-31, hour, minute,
/// second)` in the proleptic Gregorian calendar. Negative seconds (before
/// 1970) work; values beyond about ±1.1 billion years are clamped.
pub(crate) fn civil_from_unix(secs: i64) -> (i32, u32, u32, u32, u32, u32) {
    let secs = secs.clamp(-CLAMP_SECS, CLAMP_SECS);
    let days = secs.div_euclid(SECS_PER_DAY);
    let rem = secs.rem_euclid(SECS_PER_DAY) as u32;
    let (y, m, d) = civil_from_days(days);
    // The clamp above keeps |y| far below i32::MAX.
    (y as i32, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_SHIFT_DAYS;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z - era * DAYS_PER_ERA; // 0..=146096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365; // 0..=399
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // 0..=365
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11, 0 = March
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01. The inverse of
/// [`civil_from_days`] for valid dates.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT_DAYS
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0000-01-01T00:00:00Z: the earliest time a 4-digit-year MDTM can show.
pub(crate) const MDTM_MIN: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z: the latest.
pub(crate) const MDTM_MAX: i64 = 253_402_300_799;

/// Formats Unix seconds as `YYYYMMDDHHMMSS` in UTC (RFC 3659 section 2.3),
/// for the MDTM 213 reply and the MLSx `modify` fact. The year field is
/// four digits, so times outside years 0000..=9999 are clamped to that
/// range rather than producing a malformed time-val.
pub(crate) fn format_mdtm(secs: i64) -> String {
    let mut out = Vec::with_capacity(14);
    push_mdtm(secs, &mut out);
    // Only ASCII digits were written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`format_mdtm`] appending to a byte buffer, for listings that format
/// thousands of entries without an allocation each.
pub(crate) fn push_mdtm(secs: i64, out: &mut Vec<u8>) {
    let (y, mo, d, h, mi, s) = civil_from_unix(secs.clamp(MDTM_MIN, MDTM_MAX));
    push_digits(out, y as u32, 4);
    for v in [mo, d, h, mi, s] {
        push_digits(out, v, 2);
    }
}

/// `v` as exactly `width` decimal digits (zero-padded; `v` must fit).
fn push_digits(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Parses an RFC 3659 time-val `YYYYMMDDHHMMSS[.fff]` (UTC) into Unix
/// seconds. The fraction, if any, is checked to be digits and dropped.
/// Every field is range-checked (month 1-12, day valid for that month and
/// year, hour 0-23, minute 0-59, second 0-60: RFC 3659 allows 60 for a
/// leap second, which Unix time cannot represent and so becomes the next
/// second). Anything else, including surrounding spaces, gives `None`.
pub(crate) fn from_mdtm(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 14 || !b[..14].iter().all(u8::is_ascii_digit) {
        return None;
    }
    match &b[14..] {
        [] => {}
        [b'.', frac @ ..] if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    let num = |from: usize, len: usize| {
        b[from..from + len]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (i64::from(num(0, 4)), num(4, 2), num(6, 2));
    let (hour, minute, second) = (num(8, 2), num(10, 2), num(12, 2));
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * SECS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Civil = (i32, u32, u32, u32, u32, u32);

    #[test]
    fn civil_table() {
        // Reference values computed independently (GNU `date -u -d @N`).
        let cases: &[(i64, Civil)] = &[
            (0, (1970, 1, 1, 0, 0, 0)),
            (-1, (1969, 12, 31, 23, 59, 59)),
            (-86_400, (1969, 12, 31, 0, 0, 0)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (951_868_800, (2000, 3, 1, 0, 0, 0)),
            (1_704_164_645, (2024, 1, 2, 3, 4, 5)),
            (1_709_164_799, (2024, 2, 28, 23, 59, 59)),
            (1_709_251_199, (2024, 2, 29, 23, 59, 59)),
            (4_102_444_800, (2100, 1, 1, 0, 0, 0)),
            (4_107_456_000, (2100, 2, 28, 0, 0, 0)),
            (4_107_542_400, (2100, 3, 1, 0, 0, 0)), // 2100 is not leap
            (-2_208_988_800, (1900, 1, 1, 0, 0, 0)),
            (-62_135_596_800, (1, 1, 1, 0, 0, 0)),
            (MDTM_MIN, (0, 1, 1, 0, 0, 0)),
            (MDTM_MAX, (9999, 12, 31, 23, 59, 59)),
            (2_147_483_647, (2038, 1, 19, 3, 14, 7)),
        ];
        for &(secs, want) in cases {
            assert_eq!(civil_from_unix(secs), want, "{secs}");
        }
    }

    #[test]
    fn civil_extremes_do_not_panic() {
        for secs in [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            -CLAMP_SECS - 1,
            CLAMP_SECS + 1,
        ] {
            let (_, m, d, h, mi, s) = civil_from_unix(secs);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert!(h < 24 && mi < 60 && s < 60);
        }
        assert!(civil_from_unix(i64::MAX).0 > 1_000_000_000);
        assert!(civil_from_unix(i64::MIN).0 < -1_000_000_000);
    }

    #[test]
    fn days_round_trip_over_eras() {
        // Every day across several 400-year eras, both sides of the epoch.
        let mut days = -800 * 366;
        while days < 800 * 366 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert!(d >= 1 && d <= days_in_month(y, m), "{y}-{m}-{d}");
            days += 1;
        }
    }

    #[test]
    fn format_mdtm_table() {
        let cases: &[(i64, &str)] = &[
            (0, "19700101000000"),
            (1_704_164_645, "20240102030405"),
            (-1, "19691231235959"),
            (951_782_400, "20000229000000"),
            (-62_135_596_800, "00010101000000"),
            // Clamped to the 4-digit-year range.
            (i64::MIN, "00000101000000"),
            (i64::MAX, "99991231235959"),
            (MDTM_MAX + 1, "99991231235959"),
        ];
        for &(secs, want) in cases {
            assert_eq!(format_mdtm(secs), want, "{secs}");
        }
        let mut out = b"modify=".to_vec();
        push_mdtm(0, &mut out);
        assert_eq!(out, b"modify=19700101000000");
    }

    #[test]
    fn from_mdtm_table() {
        let cases: &[(&str, Option<i64>)] = &[
            ("19700101000000", Some(0)),
            ("20240102030405", Some(1_704_164_645)),
            ("19691231235959", Some(-1)),
            ("20000229000000", Some(951_782_400)),
            ("00000101000000", Some(MDTM_MIN)),
            ("99991231235959", Some(MDTM_MAX)),
            // Fractions are dropped, not rounded.
            ("20240102030405.999", Some(1_704_164_645)),
            ("20240102030405.1", Some(1_704_164_645)),
            // Leap second: becomes the next second.
            ("20161231235960", Some(1_483_228_800)),
            ("", None),
            ("2024010203040", None),   // 13 digits
            ("202401020304051", None), // 15 digits
            ("20240102030405.", None),
            ("20240102030405.x", None),
            ("20240102030405.1.2", None),
            ("20240102030405 ", None),
            (" 20240102030405", None),
            ("2024-01-02T03:04", None),
            ("20241302030405", None), // month 13
            ("20240002030405", None), // month 0
            ("20240100030405", None), // day 0
            ("20240132030405", None),
            ("20230229000000", None), // 2023 not leap
            ("21000229000000", None), // 2100 not leap
            ("20240431000000", None), // April has 30 days
            ("20240102240000", None),
            ("20240102036000", None),
            ("20240102030461", None),
            ("+0240102030405", None),
            ("２０２４0102030405", None), // non-ASCII digits
        ];
        for &(s, want) in cases {
            assert_eq!(from_mdtm(s), want, "{s:?}");
        }
    }

    #[test]
    fn mdtm_round_trip() {
        for secs in [
            0,
            1,
            -1,
            1_704_164_645,
            951_782_400,
            MDTM_MIN,
            MDTM_MAX,
            86_399,
        ] {
            assert_eq!(from_mdtm(&format_mdtm(secs)), Some(secs), "{secs}");
        }
    }
}
