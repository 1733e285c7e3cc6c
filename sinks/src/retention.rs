//! Retention: deleting what is too old, or over a table's byte budget.
//!
//! This plays the role of osquery's `events_expiry`, with one difference
//! that matters at firehose rates: osquery expires events only when
//! somebody queries the table, so an unqueried table grows without bound.
//! Here retention runs on the storage's housekeeping schedule
//! ([`crate::Storage::maintain`]) whether or not anyone queries.
//!
//! Two limits, each optional, per table:
//!
//! - **age**: a whole hour partition is deleted once the *end* of its hour
//!   is older than `max_age` (a partition's rows are never younger than its
//!   hour, so nothing younger than `max_age` is lost);
//! - **bytes**: while a table's Parquet files total more than
//!   `max_bytes_per_table`, its oldest file (oldest hour first, then oldest
//!   name) is deleted.
//!
//! Deleting a file is atomic for readers that list the directory: a file is
//! listed whole or not at all. A query that listed a file just before it is
//! deleted may fail to open it (the rows it wanted had expired anyway); it
//! never sees partial or duplicate rows.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::layout::PartitionKey;
use crate::storage::{StorageError, StorageEvent};

/// Limits on how much history each table keeps. `Default` keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete hour partitions whose hour ended longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep each table's Parquet files under this many bytes, deleting
    /// oldest first.
    pub max_bytes_per_table: Option<u64>,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files deleted.
    pub files_removed: u64,
    /// Bytes deleted.
    pub bytes_removed: u64,
}

/// One published Parquet file of an hour partition.
#[derive(Debug, Clone)]
pub(crate) struct ListedFile {
    /// File name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
}

/// The hour partitions of one table directory, oldest first, each with its
/// published (`*.parquet`, not hidden) files sorted by name.
pub(crate) fn list_hours(
    table_dir: &Path,
) -> Result<Vec<(PartitionKey, PathBuf, Vec<ListedFile>)>, StorageError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StorageError::Io { op, path, source }
    };
    let mut hours = Vec::new();
    let dates = match fs::read_dir(table_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(hours),
        Err(e) => return Err(io("listing", table_dir)(e)),
    };
    for date in dates {
        let date = date.map_err(io("listing", table_dir))?;
        let date_name = date.file_name().to_string_lossy().into_owned();
        let Some((year, month, day)) = parse_date_dir(&date_name) else {
            continue;
        };
        let date_path = date.path();
        for hour in fs::read_dir(&date_path).map_err(io("listing", &date_path))? {
            let hour = hour.map_err(io("listing", &date_path))?;
            let hour_name = hour.file_name().to_string_lossy().into_owned();
            let Some(h) = hour_name
                .strip_prefix("hour=")
                .and_then(|h| h.parse::<u32>().ok())
                .filter(|h| *h < 24)
            else {
                continue;
            };
            let key = PartitionKey {
                year,
                month,
                day,
                hour: h,
            };
            let hour_path = hour.path();
            let mut files = Vec::new();
            for file in fs::read_dir(&hour_path).map_err(io("listing", &hour_path))? {
                let file = file.map_err(io("listing", &hour_path))?;
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".parquet") {
                    continue;
                }
                // A file removed between readdir and stat is simply gone.
                let Ok(meta) = file.metadata() else { continue };
                files.push(ListedFile {
                    name,
                    path: file.path(),
                    bytes: meta.len(),
                });
            }
            files.sort_by(|a, b| a.name.cmp(&b.name));
            hours.push((key, hour_path, files));
        }
    }
    hours.sort_by_key(|(key, _, _)| *key);
    Ok(hours)
}

fn parse_date_dir(name: &str) -> Option<(i32, u32, u32)> {
    let date = name.strip_prefix("date=")?;
    let mut parts = date.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = parts
        .next()?
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))?;
    let day = parts
        .next()?
        .parse()
        .ok()
        .filter(|d| (1..=31).contains(d))?;
    Some((year, month, day))
}

/// Applies `policy` to every table under `data_dir`, as of `now`.
pub(crate) fn apply(
    data_dir: &Path,
    policy: &RetentionPolicy,
    now: SystemTime,
    notify: &dyn Fn(StorageEvent<'_>),
) -> Result<RetentionReport, StorageError> {
    let mut report = RetentionReport::default();
    if policy.max_age.is_none() && policy.max_bytes_per_table.is_none() {
        return Ok(report);
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut remove = |table: &str, file: &ListedFile| -> Result<(), StorageError> {
        match fs::remove_file(&file.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StorageError::Io {
                    op: "removing expired file",
                    path: file.path.clone(),
                    source,
                });
            }
        }
        report.files_removed += 1;
        report.bytes_removed += file.bytes;
        notify(StorageEvent::Removed {
            table,
            path: &file.path,
        });
        Ok(())
    };

    for table in table_names(data_dir) {
        let table_dir = data_dir.join(&table);
        let hours = list_hours(&table_dir)?;
        let mut total: u64 = hours
            .iter()
            .flat_map(|(_, _, files)| files.iter().map(|f| f.bytes))
            .sum();
        for (key, hour_dir, files) in &hours {
            let hour_end = key.start_unix_seconds() + 3_600;
            let expired = policy
                .max_age
                .is_some_and(|age| hour_end <= now_secs.saturating_sub(age.as_secs() as i64));
            for file in files {
                let over = policy.max_bytes_per_table.is_some_and(|max| total > max);
                if !expired && !over {
                    break;
                }
                remove(&table, file)?;
                total -= file.bytes;
            }
            // Empty partition directories are removed too (best effort: a
            // roll may be publishing into it, and then it is not empty).
            if fs::remove_dir(hour_dir).is_ok()
                && let Some(date_dir) = hour_dir.parent()
            {
                let _ = fs::remove_dir(date_dir);
            }
        }
    }
    Ok(report)
}

/// Names of the table directories under `data_dir` (hidden ones, the WAL and
/// compaction staging, are not tables).
pub(crate) fn table_names(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}
