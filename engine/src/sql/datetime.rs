//! SQLite's date and time functions: `strftime`, `datetime`, `date`, `time`
//! and `unixepoch`, computed the way SQLite computes them.
//!
//! A time value (`'now'`, an ISO-8601 text, a Julian day number, or Unix
//! seconds with the `'unixepoch'` modifier) is read into milliseconds since
//! the Unix epoch, UTC, which is SQLite's own precision. Modifiers then move
//! it, and a format turns it back into text. Anything SQLite would reject
//! gives `None`, which the SQL functions return as NULL.
//!
//! sluice runs on servers whose local time zone is not the analyst's, so
//! `'localtime'` and `'utc'` leave the time unchanged (both are UTC): a
//! documented difference from SQLite.

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// The Unix epoch as a Julian day number, in milliseconds.
const UNIX_EPOCH_JD_MS: i64 = 210_866_760_000_000;
/// The last millisecond of 9999-12-31, SQLite's upper bound.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;

/// A value handed to a date/time function: SQLite's storage classes.
#[derive(Debug, Clone, Copy)]
pub enum TimeArg<'a> {
    /// An INTEGER.
    Int(i64),
    /// A REAL.
    Real(f64),
    /// A TEXT.
    Text(&'a str),
}

/// The broken-down fields of a moment, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    /// Milliseconds within the minute.
    second_ms: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn to_civil(ms: i64) -> Civil {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: in_day / 3_600_000,
        minute: in_day / 60_000 % 60,
        second_ms: in_day % 60_000,
    }
}

fn from_civil(c: &Civil) -> i64 {
    days_from_civil(c.year, c.month, c.day) * DAY_MS
        + c.hour * 3_600_000
        + c.minute * 60_000
        + c.second_ms
}

fn in_range(ms: i64) -> Option<i64> {
    (-UNIX_EPOCH_JD_MS..=MAX_UNIX_MS)
        .contains(&ms)
        .then_some(ms)
}

/// Reads `digits` decimal digits at the start of `s`.
fn take_digits(s: &str, digits: usize) -> Option<(i64, &str)> {
    let head = s.get(..digits)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[digits..]))
}

/// `HH:MM[:SS[.fff]]`, returning milliseconds into the day and the rest.
fn parse_clock(s: &str) -> Option<(i64, &str)> {
    let (hour, rest) = take_digits(s, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (minute, mut rest) = take_digits(rest, 2)?;
    let mut ms = 0;
    if let Some(after) = rest.strip_prefix(':') {
        let (second, after) = take_digits(after, 2)?;
        ms = second * 1000;
        rest = after;
        if let Some(frac) = rest.strip_prefix('.') {
            let len = frac.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            // SQLite keeps milliseconds, rounding the rest away.
            let digits = &frac[..len];
            let value: f64 = format!("0.{digits}").parse().ok()?;
            ms += (value * 1000.0).round() as i64;
            rest = &frac[len..];
        }
    }
    if hour > 24 || minute > 59 || ms >= 60_000 {
        return None;
    }
    Some((hour * 3_600_000 + minute * 60_000 + ms, rest))
}

/// An optional `[+-]HH:MM` or `Z` suffix, as an offset in milliseconds to
/// subtract to reach UTC.
fn parse_zone(s: &str) -> Option<i64> {
    let s = s.trim_start();
    if s.is_empty() {
        return Some(0);
    }
    if s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (hours, rest) = take_digits(rest, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (minutes, rest) = take_digits(rest, 2)?;
    if !rest.trim().is_empty() || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3_600_000 + minutes * 60_000))
}

/// An ISO-8601 date and/or time in one of the forms SQLite accepts.
fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    // HH:MM[:SS[.fff]] alone is a time on 2000-01-01.
    if let Some((clock, rest)) = parse_clock(s) {
        let offset = parse_zone(rest)?;
        return Some(days_from_civil(2000, 1, 1) * DAY_MS + clock - offset);
    }
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (year, rest) = take_digits(s, 4)?;
    let rest = rest.strip_prefix('-')?;
    let (month, rest) = take_digits(rest, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = take_digits(rest, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = if negative { -year } else { year };
    let date_ms = days_from_civil(year, month, day) * DAY_MS;
    let rest = rest.trim_start_matches(' ');
    let rest = rest.strip_prefix('T').unwrap_or(rest);
    if rest.trim().is_empty() {
        return Some(date_ms);
    }
    let (clock, rest) = parse_clock(rest)?;
    let offset = parse_zone(rest)?;
    Some(date_ms + clock - offset)
}

/// Whether `s` is a number as SQLite's date functions read one.
fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    t.parse().ok()
}

fn julian_day_to_ms(jd: f64) -> Option<i64> {
    let ms = (jd * DAY_MS as f64).round();
    if !ms.is_finite() {
        return None;
    }
    in_range(ms as i64 - UNIX_EPOCH_JD_MS)
}

fn unix_seconds_to_ms(seconds: f64) -> Option<i64> {
    let ms = (seconds * 1000.0).round();
    if !ms.is_finite() {
        return None;
    }
    in_range(ms as i64)
}

/// How a date function's result should carry fractions of a second.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moment {
    /// Milliseconds since the Unix epoch, UTC.
    pub ms: i64,
    /// The `'subsec'` modifier was given.
    pub subsec: bool,
}

/// Reads a time value and applies its modifiers, as every SQLite date
/// function does first. `now_ms` is the statement's `'now'`.
pub fn evaluate(value: TimeArg<'_>, modifiers: &[&str], now_ms: i64) -> Option<Moment> {
    let first_is = |name: &str| {
        modifiers
            .first()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(name))
    };
    let numeric = match value {
        TimeArg::Int(i) => Some(i as f64),
        TimeArg::Real(r) => Some(r),
        TimeArg::Text(t) => parse_number(t),
    };
    let (mut ms, skip) = match (numeric, value) {
        (Some(n), _) if first_is("unixepoch") => (unix_seconds_to_ms(n)?, 1),
        (Some(n), _) if first_is("auto") => {
            // 'auto': a Julian day if it can be one, else Unix seconds.
            if (0.0..5_373_484.5).contains(&n) {
                (julian_day_to_ms(n)?, 1)
            } else {
                (unix_seconds_to_ms(n)?, 1)
            }
        }
        (Some(n), _) => (julian_day_to_ms(n)?, 0),
        (None, TimeArg::Text(t)) if t.trim().eq_ignore_ascii_case("now") => (now_ms, 0),
        (None, TimeArg::Text(t)) => (parse_iso(t)?, 0),
        (None, _) => return None,
    };
    let mut subsec = false;
    for modifier in &modifiers[skip..] {
        let m = modifier.trim().to_ascii_lowercase();
        match m.as_str() {
            "utc" | "localtime" => {}
            "subsec" | "subsecond" => subsec = true,
            "start of day" => ms = ms.div_euclid(DAY_MS) * DAY_MS,
            "start of month" => {
                let c = to_civil(ms);
                ms = days_from_civil(c.year, c.month, 1) * DAY_MS;
            }
            "start of year" => {
                let c = to_civil(ms);
                ms = days_from_civil(c.year, 1, 1) * DAY_MS;
            }
            // 'unixepoch' and 'auto' are only meaningful right after a number.
            "unixepoch" | "auto" => return None,
            _ => {
                if let Some(n) = m.strip_prefix("weekday ") {
                    let target: i64 = n.trim().parse().ok().filter(|d| (0..=6).contains(d))?;
                    // 1970-01-01 was a Thursday (day 4).
                    let days = ms.div_euclid(DAY_MS);
                    let weekday = (days + 4).rem_euclid(7);
                    ms += (target - weekday).rem_euclid(7) * DAY_MS;
                } else {
                    ms = shift(ms, &m)?;
                }
            }
        }
        ms = in_range(ms)?;
    }
    Some(Moment { ms, subsec })
}

/// `'+N unit'` / `'-N unit'` / `'N unit'`.
fn shift(ms: i64, modifier: &str) -> Option<i64> {
    let mut parts = modifier.split_whitespace();
    let amount: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    let scaled = |per: f64| -> Option<i64> {
        let delta = (amount * per).round();
        delta.is_finite().then(|| ms + delta as i64)
    };
    match unit {
        "second" => scaled(1000.0),
        "minute" => scaled(60_000.0),
        "hour" => scaled(3_600_000.0),
        "day" => scaled(DAY_MS as f64),
        "month" | "year" => {
            let whole = amount.trunc() as i64;
            let months = if unit == "year" { whole * 12 } else { whole };
            let mut c = to_civil(ms);
            let total = c.year * 12 + (c.month - 1) + months;
            c.year = total.div_euclid(12);
            c.month = total.rem_euclid(12) + 1;
            // Day overflow rolls into the next month, as in SQLite.
            let day = c.day;
            c.day = 1;
            let base = from_civil(&c) + (day - 1) * DAY_MS;
            let fraction = amount - amount.trunc();
            let per = if unit == "year" { 365.0 } else { 30.0 } * DAY_MS as f64;
            Some(base + (fraction * per).round() as i64)
        }
        _ => None,
    }
}

/// `datetime(…)`: `YYYY-MM-DD HH:MM:SS`.
pub fn datetime(m: Moment) -> String {
    format!("{} {}", date(m), time(m))
}

/// `date(…)`: `YYYY-MM-DD`.
pub fn date(m: Moment) -> String {
    let c = to_civil(m.ms);
    format!("{}-{:02}-{:02}", year4(c.year), c.month, c.day)
}

fn year4(year: i64) -> String {
    if year < 0 {
        format!("-{:04}", -year)
    } else {
        format!("{year:04}")
    }
}

/// `time(…)`: `HH:MM:SS`, or `HH:MM:SS.SSS` with `'subsec'`.
pub fn time(m: Moment) -> String {
    let c = to_civil(m.ms);
    if m.subsec {
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            c.hour,
            c.minute,
            c.second_ms / 1000,
            c.second_ms % 1000
        )
    } else {
        format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second_ms / 1000)
    }
}

/// `unixepoch(…)`: whole seconds (rounded toward negative infinity, as SQLite
/// does), or fractional seconds with `'subsec'`.
pub fn unixepoch(m: Moment) -> UnixEpoch {
    if m.subsec {
        UnixEpoch::Real(m.ms as f64 / 1000.0)
    } else {
        UnixEpoch::Int(m.ms.div_euclid(1000))
    }
}

/// What `unixepoch` returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnixEpoch {
    /// Whole seconds.
    Int(i64),
    /// Seconds with milliseconds (`'subsec'`).
    Real(f64),
}

fn julian_day(ms: i64) -> f64 {
    (ms + UNIX_EPOCH_JD_MS) as f64 / DAY_MS as f64
}

/// ISO-8601 week-based year and week number of a day count.
fn iso_week(days: i64) -> (i64, i64) {
    // Monday = 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week)
}

/// `strftime(format, …)`. Returns `None` for an unknown `%` conversion, as
/// SQLite does.
pub fn strftime(format: &str, m: Moment) -> Option<String> {
    let c = to_civil(m.ms);
    let days = m.ms.div_euclid(DAY_MS);
    let day_of_year = days - days_from_civil(c.year, 1, 1); // 0-based
    let weekday = (days + 4).rem_euclid(7); // Sunday = 0
    let seconds = c.second_ms / 1000;
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        let conv = chars.next()?;
        let hour12 = match c.hour % 12 {
            0 => 12,
            h => h,
        };
        match conv {
            'd' => out.push_str(&format!("{:02}", c.day)),
            'e' => out.push_str(&format!("{:2}", c.day)),
            'f' => out.push_str(&format!("{:02}.{:03}", seconds, c.second_ms % 1000)),
            'F' => out.push_str(&format!("{}-{:02}-{:02}", year4(c.year), c.month, c.day)),
            'G' => out.push_str(&year4(iso_week(days).0)),
            'g' => out.push_str(&format!("{:02}", iso_week(days).0.rem_euclid(100))),
            'H' => out.push_str(&format!("{:02}", c.hour)),
            'I' => out.push_str(&format!("{hour12:02}")),
            'j' => out.push_str(&format!("{:03}", day_of_year + 1)),
            'J' => out.push_str(&format_real_g16(julian_day(m.ms))),
            'k' => out.push_str(&format!("{:2}", c.hour)),
            'l' => out.push_str(&format!("{hour12:2}")),
            'm' => out.push_str(&format!("{:02}", c.month)),
            'M' => out.push_str(&format!("{:02}", c.minute)),
            'p' => out.push_str(if c.hour < 12 { "AM" } else { "PM" }),
            'P' => out.push_str(if c.hour < 12 { "am" } else { "pm" }),
            'R' => out.push_str(&format!("{:02}:{:02}", c.hour, c.minute)),
            's' => {
                if m.subsec {
                    out.push_str(&format!("{:.3}", m.ms as f64 / 1000.0));
                } else {
                    out.push_str(&m.ms.div_euclid(1000).to_string());
                }
            }
            'S' => out.push_str(&format!("{seconds:02}")),
            'T' => out.push_str(&format!("{:02}:{:02}:{seconds:02}", c.hour, c.minute)),
            'u' => out.push_str(&(if weekday == 0 { 7 } else { weekday }).to_string()),
            'w' => out.push_str(&weekday.to_string()),
            'U' => out.push_str(&format!("{:02}", (day_of_year + 7 - weekday) / 7)),
            'W' => {
                let monday_based = (weekday + 6) % 7;
                out.push_str(&format!("{:02}", (day_of_year + 7 - monday_based) / 7));
            }
            'V' => out.push_str(&format!("{:02}", iso_week(days).1)),
            'Y' => out.push_str(&year4(c.year)),
            '%' => out.push('%'),
            _ => return None,
        }
    }
    Some(out)
}

/// A REAL as SQLite's `%.16g` prints it.
fn format_real_g16(value: f64) -> String {
    let text = format!("{value:.16e}");
    // Up to 16 significant digits without trailing zeros.
    let Some((mantissa, exponent)) = text.split_once('e') else {
        return text;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.replace(['.', '-'], "");
    let digits = &digits[..digits.len().min(16)];
    let point = exponent + 1;
    let mut out = String::new();
    if value < 0.0 {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-point) as usize));
        out.push_str(digits);
    } else if (point as usize) < digits.len() {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else {
        out.push_str(digits);
        out.push_str(&"0".repeat(point as usize - digits.len()));
    }
    if out.contains('.') {
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(value: TimeArg<'_>, modifiers: &[&str]) -> Moment {
        evaluate(value, modifiers, 0).expect("valid")
    }

    #[test]
    fn civil_round_trips() {
        for days in [-800_000, -1, 0, 1, 59, 10_957, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn formats_match_sqlite() {
        // 2024-02-29 13:05:09.250 UTC, a Thursday.
        let m = eval(TimeArg::Text("2024-02-29 13:05:09.250"), &[]);
        assert_eq!(datetime(m), "2024-02-29 13:05:09");
        assert_eq!(date(m), "2024-02-29");
        assert_eq!(time(m), "13:05:09");
        assert_eq!(
            strftime(
                "%Y|%m|%d|%H|%M|%S|%f|%j|%w|%u|%s|%%|%W|%U|%V|%G|%I|%p|%e",
                m
            )
            .unwrap(),
            "2024|02|29|13|05|09|09.250|060|4|4|1709211909|%|09|08|09|2024|01|PM|29"
        );
        assert_eq!(strftime("%J", m).unwrap(), "2460370.045245949");
        assert_eq!(strftime("%Q", m), None);
    }

    #[test]
    fn unixepoch_modifier_and_shifts() {
        let m = eval(TimeArg::Int(1_700_000_000), &["unixepoch"]);
        assert_eq!(datetime(m), "2023-11-14 22:13:20");
        let m = eval(
            TimeArg::Int(1_700_000_000),
            &["unixepoch", "start of day", "+1 day"],
        );
        assert_eq!(datetime(m), "2023-11-15 00:00:00");
        let m = eval(TimeArg::Text("2001-01-31"), &["+1 month"]);
        assert_eq!(date(m), "2001-03-03");
        let m = eval(TimeArg::Text("2024-01-01"), &["weekday 0"]);
        assert_eq!(date(m), "2024-01-07");
        let m = eval(TimeArg::Real(2_460_370.5), &[]);
        assert_eq!(datetime(m), "2024-03-01 00:00:00");
        assert!(evaluate(TimeArg::Text("2024-13-01"), &[], 0).is_none());
        assert!(evaluate(TimeArg::Text("x"), &[], 0).is_none());
        assert!(evaluate(TimeArg::Int(1), &["+1 fortnight"], 0).is_none());
        assert_eq!(
            unixepoch(eval(TimeArg::Text("now"), &[])),
            UnixEpoch::Int(0)
        );
    }
}
