//! Compaction: merging the small files of an hour into one.
//!
//! Rolls by age leave many small files in a quiet table's hour, and small
//! files compress worse and cost a footer read each. Once an hour is over,
//! compaction reads its files, sorts the rows by `time`, and writes them as
//! one file.
//!
//! The swap is what keeps queries right while it runs. Readers list
//! `*.parquet` under the table directory, so publishing the merged file next
//! to its inputs, even for a moment, would show every row twice. Instead
//! the merged hour is built in a staging directory,
//! `DATA_DIR/.compact/<table>/date=…/hour=…/`, which no table lists, and
//! then exchanged with the live `hour=HH` directory in one atomic
//! `renameat2(RENAME_EXCHANGE)` (Linux) or `renamex_np(RENAME_SWAP)`
//! (macOS). A listing reads one directory inode or the other: the old files
//! or the merged one. The old directory, now in staging, is then deleted; a
//! crash before that leaves it in `.compact/`, which [`crate::Storage::open`]
//! clears. On other systems compaction is skipped.
//!
//! The merged file's name carries the union of its inputs' WAL ranges, so
//! recovery's exactly-once check keeps working. Compaction runs under the
//! storage's writer lock, so no roll publishes into the hour meanwhile.

use std::fs::File;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::parquet_persister::{split_by_hour, time_column};
use crate::publish::{create_private_dir_all, sync_dir};
use crate::retention::{ListedFile, list_hours, table_names};
use crate::storage::{COMPACT_DIR, StorageError, StorageEvent, WalRange};
use crate::{ParquetPersister, PersistError};

/// When an hour's files are merged. `Default` is what `sluice` ships with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compaction runs at all.
    pub enabled: bool,
    /// A file under this size is "small"; an hour is merged when it has at
    /// least `min_files` small files.
    pub small_file_bytes: u64,
    /// Merge an hour only if it has at least this many small files.
    pub min_files: usize,
    /// Merge an hour only if its files total at most this many bytes: the
    /// merge holds the hour's rows in memory (about 20× the compressed size
    /// for event tables).
    pub max_hour_bytes: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            enabled: true,
            small_file_bytes: 8 << 20,
            min_files: 4,
            max_hour_bytes: 32 << 20,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Hours merged.
    pub hours_compacted: u64,
    /// Input files replaced.
    pub files_replaced: u64,
}

/// Merges every finished hour of every table under `data_dir` that `policy`
/// says is worth it.
pub(crate) fn compact(
    persister: &ParquetPersister,
    data_dir: &Path,
    policy: &CompactionPolicy,
    now: SystemTime,
    notify: &dyn Fn(StorageEvent<'_>),
) -> Result<CompactionReport, StorageError> {
    let mut report = CompactionReport::default();
    if !policy.enabled || !cfg!(any(target_os = "linux", target_os = "macos")) {
        return Ok(report);
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for table in table_names(data_dir) {
        for (key, hour_dir, files) in list_hours(&data_dir.join(&table))? {
            // The current hour still receives rolls; merging it now would
            // only be redone.
            if key.start_unix_seconds() + 3_600 > now_secs {
                continue;
            }
            let small = files
                .iter()
                .filter(|f| f.bytes < policy.small_file_bytes)
                .count();
            let total: u64 = files.iter().map(|f| f.bytes).sum();
            if small < policy.min_files.max(2) || total > policy.max_hour_bytes {
                continue;
            }
            let staging = data_dir
                .join(COMPACT_DIR)
                .join(&table)
                .join(key.date_dir_name())
                .join(key.hour_dir_name());
            let merged = merge_hour(persister, data_dir, &table, &files, &staging)?;
            let Some(merged_name) = merged else { continue };
            exchange_dirs(&staging, &hour_dir).map_err(|source| StorageError::Io {
                op: "swapping in the compacted hour",
                path: hour_dir.clone(),
                source,
            })?;
            for dir in [hour_dir.parent(), staging.parent()].into_iter().flatten() {
                sync_dir(dir).map_err(|source| StorageError::Io {
                    op: "fsyncing directory",
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            for file in &files {
                notify(StorageEvent::Removed {
                    table: &table,
                    path: &file.path,
                });
            }
            let merged_path = hour_dir.join(&merged_name);
            notify(StorageEvent::Published {
                table: &table,
                path: &merged_path,
            });
            // The old files now live in staging; nothing lists them.
            let _ = std::fs::remove_dir_all(&staging);
            tracing::info!(
                table,
                partition = %key,
                inputs = files.len(),
                "compacted hour"
            );
            report.hours_compacted += 1;
            report.files_replaced += files.len() as u64;
        }
    }
    if report.hours_compacted > 0 {
        let _ = std::fs::remove_dir_all(data_dir.join(COMPACT_DIR));
    }
    Ok(report)
}

/// Reads `files`, writes their rows sorted as one file into `staging`
/// (emptied first), and returns its name; `None` if the files do not share
/// one schema (they are then left alone).
fn merge_hour(
    persister: &ParquetPersister,
    data_dir: &Path,
    table: &str,
    files: &[ListedFile],
    staging: &Path,
) -> Result<Option<String>, StorageError> {
    let mut batches: Vec<RecordBatch> = Vec::new();
    for file in files {
        let parquet_error = |source| PersistError::Parquet {
            path: file.path.clone(),
            source,
        };
        let reader = File::open(&file.path).map_err(|source| StorageError::Io {
            op: "opening for compaction",
            path: file.path.clone(),
            source,
        })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(reader)
            .map_err(parquet_error)?
            .with_batch_size(64 * 1024)
            .build()
            .map_err(parquet_error)?;
        for batch in reader {
            batches.push(batch.map_err(|source| PersistError::Arrow {
                table: table.to_string(),
                source,
            })?);
        }
    }
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let schema = first.schema();
    if batches.iter().any(|b| b.schema() != schema) {
        tracing::info!(table, "hour has files of different schemas; not compacted");
        return Ok(None);
    }
    let arrow_error = |source| PersistError::Arrow {
        table: table.to_string(),
        source,
    };
    let all = concat_batches(&schema, &batches).map_err(arrow_error)?;
    drop(batches);
    let time = time_column(table, &all)?;
    // One hour in, one hour out: split_by_hour only sorts here.
    let parts = split_by_hour(table, &all, time)?;
    let ranges: Vec<WalRange> = files
        .iter()
        .filter_map(|f| WalRange::from_file_name(&f.name))
        .collect();
    let tag = ranges
        .iter()
        .map(|r| r.first)
        .min()
        .zip(ranges.iter().map(|r| r.last).max())
        .map(|(first, last)| WalRange { first, last }.tag());

    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(|source| StorageError::Io {
            op: "clearing compaction staging",
            path: staging.to_path_buf(),
            source,
        })?;
    }
    create_private_dir_all(data_dir, staging).map_err(|source| StorageError::Io {
        op: "creating compaction staging",
        path: staging.to_path_buf(),
        source,
    })?;
    let mut name = None;
    for (_, part) in parts {
        let path = persister.write_sorted_part(table, staging, &part, tag.as_deref())?;
        name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    Ok(name)
}

/// Atomically exchanges two directories (both must exist).
#[cfg(target_os = "linux")]
fn exchange_dirs(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Atomically exchanges two directories (both must exist).
#[cfg(target_os = "macos")]
fn exchange_dirs(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_SWAP) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// No atomic exchange here; [`compact`] never calls this.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn exchange_dirs(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
