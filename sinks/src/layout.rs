//! The data-dir layout: which directory a row belongs in.
//!
//! Every table is split into Hive-style hour partitions,
//! `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/`, keyed by the UTC date and hour
//! of the row's `time` column (unix seconds). Spark, Trino, Athena, DuckDB and
//! DataFusion all read `key=value` directories as partition columns, and a
//! query on `time` can skip whole directories before opening a file.
//!
//! The civil date is computed here (Howard Hinnant's `days_from_civil` /
//! `civil_from_days`) rather than with a date crate: it is twenty lines of
//! integer arithmetic, exact for the proleptic Gregorian calendar, and keeps
//! the storage layout free of a dependency whose time-zone rules could change.

use std::fmt;
use std::path::{Path, PathBuf};

const SECONDS_PER_DAY: i64 = 86_400;
const SECONDS_PER_HOUR: i64 = 3_600;

/// First second of the first partition the layout can name: 0000-01-01T00 UTC.
///
/// Directory names carry a four-digit year, so times before year 0 saturate
/// to this partition.
pub const MIN_PARTITION_SECONDS: i64 = days_from_civil(0, 1, 1) * SECONDS_PER_DAY;

/// Last second of the last partition the layout can name: 9999-12-31T23:59:59 UTC.
///
/// Times after it saturate to the 9999-12-31 hour 23 partition.
pub const MAX_PARTITION_SECONDS: i64 = days_from_civil(10_000, 1, 1) * SECONDS_PER_DAY - 1;

/// The UTC hour a row is filed under: `date=YYYY-MM-DD/hour=HH`.
///
/// Fields are ordered year, month, day, hour, so the derived `Ord` is
/// chronological and a sorted set of keys lists partitions oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    /// Year, 0..=9999 (proleptic Gregorian, UTC).
    pub year: i32,
    /// Month of the year, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Hour of the day, 0..=23.
    pub hour: u32,
}

impl PartitionKey {
    /// The partition of the unix epoch, `date=1970-01-01/hour=00`.
    ///
    /// Rows whose `time` is NULL are filed here: they have no place in time,
    /// and a NULL never matches a `time` predicate, so parking them in the
    /// oldest ordinary partition cannot make a time-pruned query miss a row.
    pub const EPOCH: PartitionKey = PartitionKey {
        year: 1970,
        month: 1,
        day: 1,
        hour: 0,
    };

    /// The partition holding the instant `secs` (unix seconds, UTC).
    ///
    /// Negative times use floor division, so `-1` is 1969-12-31 hour 23, the
    /// calendar's answer, not a truncation artefact. Times outside the years
    /// 0..=9999 (which a four-digit directory name cannot hold) saturate to
    /// the first or last partition. Saturation keeps the key monotonic in
    /// time, so pruning partitions by a `time` range stays correct even for
    /// absurd clock values.
    pub fn from_unix_seconds(secs: i64) -> PartitionKey {
        let secs = secs.clamp(MIN_PARTITION_SECONDS, MAX_PARTITION_SECONDS);
        let days = secs.div_euclid(SECONDS_PER_DAY);
        let second_of_day = secs.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        PartitionKey {
            // The clamp above bounds the year to 0..=9999, which fits in i32.
            year: year as i32,
            month,
            day,
            hour: (second_of_day / SECONDS_PER_HOUR) as u32,
        }
    }

    /// The first second of this partition, in unix seconds (UTC).
    ///
    /// With [`PartitionKey::from_unix_seconds`] this maps partitions back to
    /// `time` ranges, e.g. to prune directories for a query.
    pub fn start_unix_seconds(&self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day) * SECONDS_PER_DAY
            + i64::from(self.hour) * SECONDS_PER_HOUR
    }

    /// The date directory's name, `date=YYYY-MM-DD`.
    pub fn date_dir_name(&self) -> String {
        format!("date={:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// The hour directory's name, `hour=HH`.
    pub fn hour_dir_name(&self) -> String {
        format!("hour={:02}", self.hour)
    }
}

impl fmt::Display for PartitionKey {
    /// Formats as the relative path under the table directory,
    /// `date=YYYY-MM-DD/hour=HH`, which is also how logs should name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "date={:04}-{:02}-{:02}/hour={:02}",
            self.year, self.month, self.day, self.hour
        )
    }
}

/// The directory of one partition: `data_dir/<table>/date=YYYY-MM-DD/hour=HH`.
///
/// This only builds the path; it does not check `table`. The persister
/// rejects table names that are not a single plain path component before it
/// gets here, so a table name can never point outside `data_dir`.
pub fn partition_dir(data_dir: &Path, table: &str, key: PartitionKey) -> PathBuf {
    data_dir
        .join(table)
        .join(key.date_dir_name())
        .join(key.hour_dir_name())
}

/// Days since 1970-01-01 of the civil date `y-m-d` (Hinnant's `days_from_civil`).
///
/// Works in 400-year eras with March-based years, so leap days fall at the
/// end of the year and need no special case.
const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01
/// (Hinnant's `civil_from_days`), the inverse of [`days_from_civil`].
const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32; // [1, 12]
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(year: i32, month: u32, day: u32, hour: u32) -> PartitionKey {
        PartitionKey {
            year,
            month,
            day,
            hour,
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(PartitionKey::from_unix_seconds(0), PartitionKey::EPOCH);
        assert_eq!(PartitionKey::from_unix_seconds(3_599), key(1970, 1, 1, 0));
        assert_eq!(PartitionKey::from_unix_seconds(3_600), key(1970, 1, 1, 1));
        // 2023-11-14 22:13:20 UTC
        assert_eq!(
            PartitionKey::from_unix_seconds(1_700_000_000),
            key(2023, 11, 14, 22)
        );
        // 2024-02-29 12:00:00 UTC, a leap day, and the day after it.
        assert_eq!(
            PartitionKey::from_unix_seconds(1_709_208_000),
            key(2024, 2, 29, 12)
        );
        assert_eq!(
            PartitionKey::from_unix_seconds(1_709_208_000 + 12 * 3_600),
            key(2024, 3, 1, 0)
        );
        // 2000-02-29 (a leap year divisible by 400) and 2100-03-01 (2100 is not leap).
        assert_eq!(
            PartitionKey::from_unix_seconds(951_782_400),
            key(2000, 2, 29, 0)
        );
        assert_eq!(
            PartitionKey::from_unix_seconds(4_107_542_400),
            key(2100, 3, 1, 0)
        );
    }

    #[test]
    fn negative_times_floor_into_the_past() {
        assert_eq!(PartitionKey::from_unix_seconds(-1), key(1969, 12, 31, 23));
        assert_eq!(
            PartitionKey::from_unix_seconds(-86_400),
            key(1969, 12, 31, 0)
        );
        assert_eq!(
            PartitionKey::from_unix_seconds(-86_401),
            key(1969, 12, 30, 23)
        );
        // 1900-01-01 00:00:00 UTC
        assert_eq!(
            PartitionKey::from_unix_seconds(-2_208_988_800),
            key(1900, 1, 1, 0)
        );
    }

    #[test]
    fn extreme_times_saturate_without_panicking() {
        assert_eq!(PartitionKey::from_unix_seconds(i64::MIN), key(0, 1, 1, 0));
        assert_eq!(
            PartitionKey::from_unix_seconds(i64::MAX),
            key(9999, 12, 31, 23)
        );
        assert_eq!(
            PartitionKey::from_unix_seconds(MAX_PARTITION_SECONDS),
            key(9999, 12, 31, 23)
        );
        assert_eq!(
            PartitionKey::from_unix_seconds(MIN_PARTITION_SECONDS),
            key(0, 1, 1, 0)
        );
        assert_eq!(key(0, 1, 1, 0).to_string(), "date=0000-01-01/hour=00");
    }

    #[test]
    fn start_seconds_round_trip() {
        for secs in [
            MIN_PARTITION_SECONDS,
            -2_208_988_800,
            -3_601,
            -1,
            0,
            951_782_400,
            1_700_000_000,
            1_709_208_000,
            4_107_542_400,
            MAX_PARTITION_SECONDS,
        ] {
            let k = PartitionKey::from_unix_seconds(secs);
            let start = k.start_unix_seconds();
            assert!(start <= secs && secs < start + SECONDS_PER_HOUR, "{secs}");
            assert_eq!(PartitionKey::from_unix_seconds(start), k);
        }
        // Every day over several 400-year eras maps back to itself.
        for days in -200_000..200_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn partition_dir_layout() {
        let dir = partition_dir(
            Path::new("/data"),
            "es_process_events",
            PartitionKey::from_unix_seconds(1_700_000_000),
        );
        assert_eq!(
            dir,
            Path::new("/data/es_process_events/date=2023-11-14/hour=22")
        );
        assert_eq!(
            PartitionKey::from_unix_seconds(1_700_000_000).to_string(),
            "date=2023-11-14/hour=22"
        );
    }
}
