//! RFC 3339 timestamps to UTC nanoseconds, without a date library.
//!
//! Every eslogger message carries its time as text
//! (`2024-05-01T12:34:56.123456789Z`), and parsing it is on the hot path, so
//! this is a fixed-layout parser rather than a general one.

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
///
/// Howard Hinnant's `days_from_civil`, valid for every year an `i64` of
/// nanoseconds can reach.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1–12, day 1–31) of a day count since
/// 1970-01-01: Howard Hinnant's `civil_from_days`, the inverse of
/// [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into nanoseconds since
/// the Unix epoch. Fractions longer than nine digits are truncated. Returns
/// `None` for anything else.
pub fn parse_rfc3339_nanos(s: &[u8]) -> Option<i64> {
    fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for &b in s.get(at..at + n)? {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(b - b'0');
        }
        Some(v)
    }
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    let hour = digits(s, 11, 2)?;
    let minute = digits(s, 14, 2)?;
    let second = digits(s, 17, 2)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut nanos: i64 = 0;
    if s.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        let mut scale = 100_000_000;
        while let Some(&b) = s.get(pos) {
            if !b.is_ascii_digit() {
                break;
            }
            nanos += i64::from(b - b'0') * scale;
            scale /= 10;
            pos += 1;
        }
        if pos == start {
            return None;
        }
    }
    let offset_seconds: i64 = match s.get(pos)? {
        b'Z' | b'z' if pos + 1 == s.len() => 0,
        sign @ (b'+' | b'-') if pos + 6 == s.len() && s[pos + 3] == b':' => {
            let h = i64::from(digits(s, pos + 1, 2)?);
            let m = i64::from(digits(s, pos + 4, 2)?);
            let off = h * 3600 + m * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
            - offset_seconds;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_eslogger_times() {
        assert_eq!(parse_rfc3339_nanos(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos(b"2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"1969-12-31T23:59:59Z"),
            Some(-1_000_000_000)
        );
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            &b""[..],
            b"2023-11-14",
            b"2023-13-14T22:13:20Z",
            b"2023-11-14T22:13:20",
            b"2023-11-14T22:13:20.Z",
            b"2023-11-14T22:13:20Zjunk",
            b"abcd-11-14T22:13:20Z",
        ] {
            assert_eq!(
                parse_rfc3339_nanos(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
