//! Where exported files go: partition directories and part names.
//!
//! - Hive: `table=<t>/host=<h>/date=YYYY-MM-DD/hour=HH/`, one unit of work per
//!   table and hour, read by Spark/Trino/Athena/DuckDB/pyarrow with Hive
//!   partition discovery.
//! - Security Lake: `ext/<source>/region=<r>/accountId=<id>/eventDay=YYYYMMDD/`,
//!   one source per OCSF class, one unit per table and day.
//!
//! Part names are `part-<table>-<run>-<seq>.parquet`: the table tells the
//! parts of tables sharing a partition (a Security Lake source) apart, and the
//! run token tells this export's parts from those of an earlier one, which
//! are deleted once the new ones are written.

use sluice_sinks::PartitionKey;

use super::ocsf::OcsfClass;

/// Seconds in an hour.
pub const HOUR: i64 = 3600;
/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The directory layout of the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `table=…/host=…/date=…/hour=…/`.
    Hive {
        /// The `host=` value.
        host: String,
    },
    /// `ext/<source>/region=…/accountId=…/eventDay=…/`.
    SecurityLake {
        /// The AWS region of the lake.
        region: String,
        /// The AWS account id that owns the source.
        account_id: String,
    },
}

impl Layout {
    /// The length in seconds of one partition (and unit of work).
    pub fn window(&self) -> i64 {
        match self {
            Layout::Hive { .. } => HOUR,
            Layout::SecurityLake { .. } => DAY,
        }
    }

    /// The directory (relative to the export root, no trailing `/`) holding
    /// every partition of `table`'s rows; `class` is the table's OCSF class
    /// (needed for Security Lake).
    pub fn table_dir(&self, table: &str, class: Option<OcsfClass>) -> String {
        match self {
            Layout::Hive { host } => format!("table={table}/host={host}"),
            Layout::SecurityLake { region, account_id } => {
                let source = class.map(OcsfClass::source_name).unwrap_or("sluice_other");
                format!("ext/{source}/region={region}/accountId={account_id}")
            }
        }
    }

    /// The partition directory, below [`Layout::table_dir`], of the window
    /// starting at `start` (unix seconds).
    pub fn partition_dir(&self, start: i64) -> String {
        let key = PartitionKey::from_unix_seconds(start);
        match self {
            Layout::Hive { .. } => format!("{}/{}", key.date_dir_name(), key.hour_dir_name()),
            Layout::SecurityLake { .. } => {
                format!("eventDay={:04}{:02}{:02}", key.year, key.month, key.day)
            }
        }
    }

    /// The window start a partition directory (as [`Layout::partition_dir`]
    /// writes it) stands for; `None` for anything else.
    pub fn parse_partition_dir(&self, dir: &str) -> Option<i64> {
        let number = |s: &str| -> Option<u32> {
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        let (year, month, day, hour) = match self {
            Layout::Hive { .. } => {
                let (date, hour) = dir.split_once('/')?;
                let date = date.strip_prefix("date=")?;
                let hour = number(hour.strip_prefix("hour=")?)?;
                let mut parts = date.split('-');
                let y = number(parts.next()?)?;
                let m = number(parts.next()?)?;
                let d = number(parts.next()?)?;
                (y, m, d, hour)
            }
            Layout::SecurityLake { .. } => {
                let day = dir.strip_prefix("eventDay=")?;
                // Checked before slicing: a key can hold any UTF-8.
                if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (
                    number(&day[..4])?,
                    number(&day[4..6])?,
                    number(&day[6..])?,
                    0,
                )
            }
        };
        let key = PartitionKey {
            year: i32::try_from(year).ok()?,
            month,
            day,
            hour,
        };
        let start = key.start_unix_seconds();
        // Reject what does not round-trip (month 13, hour 25, …).
        (PartitionKey::from_unix_seconds(start) == key).then_some(start)
    }
}

/// The name of part `seq` of `table` written by export run `run`.
pub fn part_name(table: &str, run: &str, seq: usize) -> String {
    format!("{}{seq:05}.parquet", run_prefix(table, run))
}

/// What every part name of `table` starts with.
pub fn table_prefix(table: &str) -> String {
    format!("part-{table}-")
}

/// What every part name of `table` from run `run` starts with.
pub fn run_prefix(table: &str, run: &str) -> String {
    format!("part-{table}-{run}-")
}

/// Whether `name` is a part of `table` left by a run other than `run`.
pub fn is_stale_part(name: &str, table: &str, run: &str) -> bool {
    name.starts_with(&table_prefix(table))
        && name.ends_with(".parquet")
        && !name.starts_with(&run_prefix(table, run))
        // `part-es_process_events-…` also starts with `part-es_process_`…
        // only when another table's name extends this one; a run token
        // never contains '-', so check the rest is `<run>-<seq>.parquet`.
        && name[table_prefix(table).len()..].split('-').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_and_security_lake_paths() {
        let hive = Layout::Hive {
            host: "mac-1".into(),
        };
        let t = 1_714_568_400; // 2024-05-01T13:00:00Z
        assert_eq!(
            hive.table_dir("es_process_events", None),
            "table=es_process_events/host=mac-1"
        );
        assert_eq!(hive.partition_dir(t + 59), "date=2024-05-01/hour=13");
        assert_eq!(hive.parse_partition_dir("date=2024-05-01/hour=13"), Some(t));
        assert_eq!(hive.parse_partition_dir("date=2024-13-01/hour=13"), None);
        assert_eq!(hive.parse_partition_dir("x"), None);
        assert_eq!(hive.parse_partition_dir("date=2024-05-é/hour=1"), None);
        let lake = Layout::SecurityLake {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        };
        assert_eq!(
            lake.table_dir("process_events", Some(OcsfClass::ProcessActivity)),
            "ext/sluice_process_activity/region=us-east-1/accountId=123456789012"
        );
        assert_eq!(lake.partition_dir(t), "eventDay=20240501");
        assert_eq!(
            lake.parse_partition_dir("eventDay=20240501"),
            Some(t - 13 * HOUR)
        );
    }

    #[test]
    fn stale_parts_are_this_tables_from_other_runs() {
        let name = part_name("process_events", "r1", 3);
        assert_eq!(name, "part-process_events-r1-00003.parquet");
        assert!(!is_stale_part(&name, "process_events", "r1"));
        assert!(is_stale_part(&name, "process_events", "r2"));
        assert!(!is_stale_part(&name, "es_process_events", "r2"));
        let longer = part_name("process_events_x", "r1", 0);
        assert!(!is_stale_part(&longer, "process_events", "r2"));
    }
}
