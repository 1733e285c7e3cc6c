//! [`Storage`]: one table-tagged batch in, durable at once, queryable at
//! once, Parquet soon after.
//!
//! A batch's life here:
//!
//! 1. [`Storage::append`] writes it to the [WAL](crate::wal) and, once the
//!    record is durable (per the fsync policy), adds it to the
//!    [hot tail](crate::hot_tail) and returns an [`AppendAck`]. From then on
//!    the batch survives `kill -9` and queries can see it.
//! 2. The roller turns all of a table's hot batches into Parquet when they
//!    reach [`StorageOptions::roll_bytes`] or
//!    [`StorageOptions::roll_age`] (checked on append and on
//!    [`Storage::maintain`]): they are concatenated into one batch, split by
//!    hour, sorted by `time`, and written as one file per table-hour with the
//!    [`ParquetPersister`], all published together.
//! 3. The WAL checkpoint is then advanced past the rolled batches, and WAL
//!    segments wholly below it are deleted.
//! 4. [Retention](crate::retention) deletes what is too old or over a
//!    table's byte budget; [compaction](crate::compaction) merges the small
//!    files of an hour.
//!
//! # What is on disk, and which files are complete
//!
//! ```text
//! DATA_DIR/.wal/LOCK, checkpoint, <first_seq>.wal   write-ahead log
//! DATA_DIR/.compact/…                               compaction staging (never read)
//! DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/<stem>-w<first>-<last>.parquet
//! ```
//!
//! The listing rule is the one the catalog already uses: **every
//! `*.parquet` file under `DATA_DIR/<table>/` is complete and holds rows no
//! other listed file holds.** Writers keep it true: files are written under
//! hidden `.tmp` names and renamed; compaction builds the merged hour in
//! `.compact/` and swaps it for the live hour directory in one atomic
//! `rename` exchange, so a listing sees the old files or the merged file,
//! never both.
//!
//! The file name's `w<first>-<last>` is the range of WAL sequence numbers
//! whose rows *for that hour* the file holds (with compaction, the union of
//! its inputs' ranges). Recovery uses it to make replay exactly-once: a WAL
//! record's rows for hour `H` are replayed only if no file in `H`'s
//! directory claims its number. A crash between publishing files and
//! writing the checkpoint therefore never stores a row twice.
//!
//! One process writes a data dir at a time (the WAL's `LOCK`); any number of
//! processes may read it.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;

use crate::compaction::{self, CompactionPolicy, CompactionReport};
use crate::hot_tail::{HotBatch, HotTail};
use crate::layout::{PartitionKey, partition_dir};
use crate::parquet_persister::{split_by_hour, time_column, validate_table_name};
use crate::retention::{self, RetentionPolicy, RetentionReport};
use crate::wal::{Checkpoint, Wal, WalError, WalOptions};
use crate::{ParquetPersister, PersistError, PersistOptions};

/// Name of the WAL directory under the data dir.
pub const WAL_DIR: &str = ".wal";
/// Name of compaction's staging directory under the data dir.
pub const COMPACT_DIR: &str = ".compact";

/// The WAL sequence numbers a Parquet file holds rows of, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalRange {
    /// First sequence number.
    pub first: u64,
    /// Last sequence number (inclusive).
    pub last: u64,
}

impl WalRange {
    /// The file-name tag, `w<first>-<last>` (20 digits each, so names sort
    /// by range).
    pub fn tag(&self) -> String {
        format!("w{:020}-{:020}", self.first, self.last)
    }

    /// The range in a file name `<stem>-w<first>-<last>.parquet`, if any.
    pub fn from_file_name(name: &str) -> Option<WalRange> {
        let stem = name.strip_suffix(".parquet")?;
        let (_, tag) = stem.rsplit_once("-w")?;
        let (first, last) = tag.split_once('-')?;
        let (first, last) = (first.parse().ok()?, last.parse().ok()?);
        (first <= last).then_some(WalRange { first, last })
    }

    /// Whether `seq` is in the range.
    pub fn contains(&self, seq: u64) -> bool {
        self.first <= seq && seq <= self.last
    }
}

/// How [`Storage`] buffers, rolls and expires data. `Default` is what
/// `sluice` ships with.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// The WAL's fsync policy and segment size.
    pub wal: WalOptions,
    /// How Parquet files are written.
    pub persist: PersistOptions,
    /// Arrow memory the hot tail may hold over all tables. When it is full
    /// and cannot be rolled (e.g. the disk is full), appends are refused.
    pub hot_budget_bytes: usize,
    /// Roll a table once its hot batches hold this much Arrow memory. Larger
    /// rolls make fewer, larger, better-compressed files.
    pub roll_bytes: usize,
    /// Roll a table once its oldest hot batch is this old.
    pub roll_age: Duration,
    /// After a failed roll, wait this long before trying again.
    pub retry_after: Duration,
    /// Deletes old data.
    pub retention: RetentionPolicy,
    /// Merges small files.
    pub compaction: CompactionPolicy,
    /// How often [`Storage::maintain`] runs retention and compaction.
    pub housekeeping_every: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            wal: WalOptions::default(),
            persist: PersistOptions::default(),
            hot_budget_bytes: 512 << 20,
            roll_bytes: 128 << 20,
            roll_age: Duration::from_secs(60),
            retry_after: Duration::from_secs(1),
            retention: RetentionPolicy::default(),
            compaction: CompactionPolicy::default(),
            housekeeping_every: Duration::from_secs(60),
        }
    }
}

/// Why storage failed. Each variant says what and on which table or file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The WAL failed (a full disk shows up here on append).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Writing Parquet failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// The hot tail is full and could not be rolled: the batch was not stored.
    #[error(
        "table {table:?}: hot tail is full ({bytes} of {budget} bytes) and cannot be rolled \
         to Parquet; batch of {rows} rows not stored"
    )]
    HotTailFull {
        /// The table of the refused batch.
        table: String,
        /// Rows refused.
        rows: usize,
        /// Bytes held.
        bytes: usize,
        /// The budget.
        budget: usize,
    },
    /// A file system operation outside the WAL and persister failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Whether the error is a full disk or quota (ENOSPC, EDQUOT), which
    /// goes away once space is freed.
    pub fn is_out_of_space(&self) -> bool {
        let io = match self {
            StorageError::Wal(WalError::Io { source, .. }) => source,
            StorageError::Persist(PersistError::Io { source, .. }) => source,
            StorageError::Persist(PersistError::Parquet {
                source: parquet::errors::ParquetError::External(inner),
                ..
            }) => match inner.downcast_ref::<std::io::Error>() {
                Some(io) => io,
                None => return false,
            },
            StorageError::Io { source, .. } => source,
            StorageError::HotTailFull { .. } => return true,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::StorageFull
            || io.kind() == std::io::ErrorKind::QuotaExceeded
    }
}

/// Proof that a batch is durable: its WAL sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    /// The WAL record's sequence number (0 for an empty batch, which is
    /// not stored).
    pub seq: u64,
}

/// What changed on disk, for listeners such as an object-store uploader.
#[derive(Debug, Clone, Copy)]
pub enum StorageEvent<'a> {
    /// A complete file appeared under its final `.parquet` name.
    Published {
        /// Its table.
        table: &'a str,
        /// Its path.
        path: &'a Path,
    },
    /// A file was removed (retention) or replaced by a merged one
    /// (compaction); its rows are gone or in a `Published` file.
    Removed {
        /// Its table.
        table: &'a str,
        /// The path it had.
        path: &'a Path,
    },
}

/// A callback told of every [`StorageEvent`], called on the writer's thread
/// while the writer lock is held: keep it short (e.g. send the path down a
/// channel).
pub type StorageListener = Box<dyn Fn(StorageEvent<'_>) + Send + Sync>;

/// What [`Storage::open`] recovered from the WAL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// WAL records put back in the hot tail (in whole or in part).
    pub replayed_batches: u64,
    /// Rows put back in the hot tail.
    pub replayed_rows: u64,
    /// Records skipped because the checkpoint says they are in Parquet.
    pub skipped_by_checkpoint: u64,
    /// Hour-parts of records skipped because a file already claims them.
    pub skipped_by_file_name: u64,
    /// Bytes of torn WAL tails cut off, and where.
    pub torn_bytes: u64,
    /// Where each torn tail was cut.
    pub torn: Vec<String>,
}

/// Live counters of a [`Storage`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StorageStats {
    /// Batches acknowledged.
    pub appended_batches: u64,
    /// Rows acknowledged.
    pub appended_rows: u64,
    /// Batches refused (WAL write failed, or the hot tail was full).
    pub refused_batches: u64,
    /// Rows refused.
    pub refused_rows: u64,
    /// Parquet files published by rolls.
    pub files_published: u64,
    /// Rolls that failed (their batches stay hot and are retried).
    pub failed_rolls: u64,
    /// Arrow memory in the hot tail.
    pub hot_bytes: usize,
    /// The last roll or housekeeping error, if any.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    appended_batches: AtomicU64,
    appended_rows: AtomicU64,
    refused_batches: AtomicU64,
    refused_rows: AtomicU64,
    files_published: AtomicU64,
    failed_rolls: AtomicU64,
}

struct Writer {
    wal: Wal,
    /// No roll is attempted before this instant (after a failure).
    retry_at: Option<Instant>,
    last_housekeeping: Instant,
    last_error: Option<String>,
}

/// The storage of one data dir: WAL, hot tail, roller, retention,
/// compaction. `Send + Sync`: one writer thread appends while query threads
/// take snapshots.
///
/// ```no_run
/// # fn demo(batch: arrow::array::RecordBatch) -> Result<(), sluice_sinks::StorageError> {
/// use sluice_sinks::{Storage, StorageOptions};
/// let (storage, recovered) = Storage::open("/var/db/sluice", StorageOptions::default())?;
/// println!("recovered {} rows from the WAL", recovered.replayed_rows);
/// let ack = storage.append("es_process_events", batch)?; // durable now
/// let visible = storage.hot_tail().snapshot("es_process_events"); // queryable now
/// storage.maintain()?; // call every second or so: rolls by age, retention, compaction
/// storage.flush()?; // at shutdown: everything to Parquet, WAL trimmed
/// # let _ = (ack, visible); Ok(()) }
/// ```
pub struct Storage {
    data_dir: PathBuf,
    options: StorageOptions,
    persister: ParquetPersister,
    hot: HotTail,
    writer: Mutex<Writer>,
    counters: Counters,
    listener: RwLock<Option<Arc<StorageListener>>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("data_dir", &self.data_dir)
            .field("hot_bytes", &self.hot.bytes())
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens the storage of `data_dir` (created if missing), takes the WAL's
    /// lock, and replays the WAL into the hot tail, exactly once.
    pub fn open(
        data_dir: impl Into<PathBuf>,
        options: StorageOptions,
    ) -> Result<(Storage, RecoveryReport), StorageError> {
        let data_dir = data_dir.into();
        crate::publish::create_private_dir_all(&data_dir, &data_dir).map_err(|source| {
            StorageError::Io {
                op: "creating data dir",
                path: data_dir.clone(),
                source,
            }
        })?;
        let (mut wal, replay) = Wal::open(&data_dir.join(WAL_DIR), options.wal.clone())?;
        // Leftovers of a compaction cut short: never read, safe to drop.
        let staging = data_dir.join(COMPACT_DIR);
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|source| StorageError::Io {
                op: "removing compaction leftovers",
                path: staging.clone(),
                source,
            })?;
        }

        let claims = FileClaims::scan(&data_dir)?;
        wal.reserve_through(claims.max_seq);
        let hot = HotTail::new(options.hot_budget_bytes);
        let mut report = RecoveryReport {
            skipped_by_checkpoint: replay.skipped_persisted,
            torn_bytes: replay.torn_bytes,
            torn: replay.torn,
            ..RecoveryReport::default()
        };
        for record in replay.records {
            let Ok(time) = time_column(&record.table, &record.batch) else {
                // append() never lets such a batch in; a record without a
                // time column cannot have come from this code.
                tracing::warn!(table = %record.table, seq = record.seq, "WAL record has no time column; skipped");
                continue;
            };
            let parts = split_by_hour(&record.table, &record.batch, time)?;
            let mut kept = Vec::with_capacity(parts.len());
            for (key, part) in parts {
                if claims.claims(&record.table, key, record.seq) {
                    report.skipped_by_file_name += 1;
                } else {
                    kept.push(part);
                }
            }
            if kept.is_empty() {
                continue;
            }
            let batch = concat_batches(&record.batch.schema(), &kept).map_err(|source| {
                PersistError::Arrow {
                    table: record.table.clone(),
                    source,
                }
            })?;
            report.replayed_batches += 1;
            report.replayed_rows += batch.num_rows() as u64;
            hot.push(&record.table, record.seq, batch);
        }
        if report.replayed_rows > 0 || report.torn_bytes > 0 {
            tracing::info!(?report, "WAL replayed");
        }

        let persister = ParquetPersister::with_options(&data_dir, options.persist.clone());
        let storage = Storage {
            data_dir,
            persister,
            hot,
            writer: Mutex::new(Writer {
                wal,
                retry_at: None,
                last_housekeeping: Instant::now(),
                last_error: None,
            }),
            counters: Counters::default(),
            listener: RwLock::new(None),
            options,
        };
        Ok((storage, report))
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The options it runs with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// The hot tail, for queries.
    pub fn hot_tail(&self) -> &HotTail {
        &self.hot
    }

    /// Sets the callback told of every file published or removed (e.g. an
    /// object-store uploader). Replaces any earlier one.
    pub fn set_listener(&self, listener: StorageListener) {
        *self.listener.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(listener));
    }

    fn notify(&self, event: StorageEvent<'_>) {
        let listener = self
            .listener
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener(event);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Live counters.
    pub fn stats(&self) -> StorageStats {
        let c = &self.counters;
        StorageStats {
            appended_batches: c.appended_batches.load(Ordering::Relaxed),
            appended_rows: c.appended_rows.load(Ordering::Relaxed),
            refused_batches: c.refused_batches.load(Ordering::Relaxed),
            refused_rows: c.refused_rows.load(Ordering::Relaxed),
            files_published: c.files_published.load(Ordering::Relaxed),
            failed_rolls: c.failed_rolls.load(Ordering::Relaxed),
            hot_bytes: self.hot.bytes(),
            last_error: self.lock().last_error.clone(),
        }
    }

    /// Stores one batch of `table`: WAL first, then the hot tail. When this
    /// returns `Ok` the batch is acknowledged: durable as the fsync policy
    /// promises, and visible in [`Storage::hot_tail`].
    ///
    /// On `Err` nothing was stored and the rows are counted as refused; a
    /// full disk ([`StorageError::is_out_of_space`]) is such an error, and
    /// later appends succeed again once space returns. May roll the table
    /// to Parquet first or after; a failed roll is not an append error (the
    /// batch is safe in the WAL), it is counted and retried.
    pub fn append(&self, table: &str, batch: RecordBatch) -> Result<AppendAck, StorageError> {
        validate_table_name(table)?;
        time_column(table, &batch)?;
        if batch.num_rows() == 0 {
            return Ok(AppendAck { seq: 0 });
        }
        let rows = batch.num_rows();
        let mut writer = self.lock();
        let result = self.append_locked(&mut writer, table, batch);
        let c = &self.counters;
        match &result {
            Ok(_) => {
                c.appended_batches.fetch_add(1, Ordering::Relaxed);
                c.appended_rows.fetch_add(rows as u64, Ordering::Relaxed);
            }
            Err(err) => {
                c.refused_batches.fetch_add(1, Ordering::Relaxed);
                c.refused_rows.fetch_add(rows as u64, Ordering::Relaxed);
                writer.last_error = Some(err.to_string());
            }
        }
        result
    }

    fn append_locked(
        &self,
        writer: &mut Writer,
        table: &str,
        batch: RecordBatch,
    ) -> Result<AppendAck, StorageError> {
        let size = batch.get_array_memory_size();
        if self.hot.would_exceed(size) {
            // Make room by rolling every table now; if that fails too (a
            // full disk), refuse rather than grow without bound. The retry
            // delay applies, so a full disk costs one failed roll per
            // `retry_after`, not one per refused batch.
            self.roll_all(writer, false);
            if self.hot.would_exceed(size) && self.hot.bytes() > 0 {
                return Err(StorageError::HotTailFull {
                    table: table.to_string(),
                    rows: batch.num_rows(),
                    bytes: self.hot.bytes(),
                    budget: self.hot.budget_bytes(),
                });
            }
        }
        let seq = writer.wal.append(table, &batch)?;
        self.hot.push(table, seq, batch);
        let table_bytes = self
            .hot
            .stats()
            .into_iter()
            .find(|(name, _)| name == table)
            .map_or(0, |(_, s)| s.bytes);
        if table_bytes >= self.options.roll_bytes {
            let _ = self.roll_table(writer, table, false);
        }
        Ok(AppendAck { seq })
    }

    /// Rolls what is due (by size or age), fsyncs the WAL under an interval
    /// policy, and every [`StorageOptions::housekeeping_every`] runs
    /// retention and compaction. Call it about once a second.
    ///
    /// Roll failures are counted and retried later, not returned; the error
    /// returned is the WAL's or housekeeping's.
    pub fn maintain(&self) -> Result<(), StorageError> {
        let mut writer = self.lock();
        writer.wal.sync_if_due()?;
        for (table, stats) in self.hot.stats() {
            let old = stats
                .oldest
                .is_some_and(|t| t.elapsed() >= self.options.roll_age);
            if old || stats.bytes >= self.options.roll_bytes {
                let _ = self.roll_table(&mut writer, &table, false);
            }
        }
        if writer.last_housekeeping.elapsed() >= self.options.housekeeping_every {
            writer.last_housekeeping = Instant::now();
            self.housekeeping_locked(&mut writer, SystemTime::now())?;
        }
        Ok(())
    }

    /// Rolls every table now, ignoring age, size and any retry delay, and
    /// fsyncs the WAL. Returns the first roll error (the batches of a failed
    /// table stay hot and in the WAL). Call it at shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut writer = self.lock();
        writer.retry_at = None;
        let mut first_error = None;
        for (table, _) in self.hot.stats() {
            if let Err(err) = self.roll_table(&mut writer, &table, true)
                && first_error.is_none()
            {
                first_error = Some(err);
            }
        }
        writer.wal.sync()?;
        first_error.map_or(Ok(()), Err)
    }

    /// Runs retention and compaction now (as of `now`), whatever the
    /// schedule.
    pub fn housekeeping(
        &self,
        now: SystemTime,
    ) -> Result<(RetentionReport, CompactionReport), StorageError> {
        let mut writer = self.lock();
        self.housekeeping_locked(&mut writer, now)
    }

    fn housekeeping_locked(
        &self,
        writer: &mut Writer,
        now: SystemTime,
    ) -> Result<(RetentionReport, CompactionReport), StorageError> {
        let notify = |event: StorageEvent<'_>| self.notify(event);
        let retention = retention::apply(&self.data_dir, &self.options.retention, now, &notify);
        let retention = match retention {
            Ok(r) => r,
            Err(err) => {
                writer.last_error = Some(err.to_string());
                return Err(err);
            }
        };
        let compaction = compaction::compact(
            &self.persister,
            &self.data_dir,
            &self.options.compaction,
            now,
            &notify,
        );
        match compaction {
            Ok(c) => Ok((retention, c)),
            Err(err) => {
                writer.last_error = Some(err.to_string());
                Err(err)
            }
        }
    }

    fn roll_all(&self, writer: &mut Writer, ignore_retry: bool) {
        for (table, _) in self.hot.stats() {
            if self.roll_table(writer, &table, ignore_retry).is_err() {
                break;
            }
        }
    }

    /// Writes all hot batches of `table` to Parquet, then advances the WAL
    /// checkpoint. On failure the batches stay hot and no roll is tried
    /// again before `retry_after` (unless `ignore_retry`).
    fn roll_table(
        &self,
        writer: &mut Writer,
        table: &str,
        ignore_retry: bool,
    ) -> Result<(), StorageError> {
        if !ignore_retry && writer.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let mut published: Vec<PathBuf> = Vec::new();
        let result = self.hot.roll(table, |batches| {
            self.write_rolled(table, batches, &mut published)
        });
        match result {
            Ok(_) => {
                writer.retry_at = None;
                self.counters
                    .files_published
                    .fetch_add(published.len() as u64, Ordering::Relaxed);
                for path in &published {
                    self.notify(StorageEvent::Published { table, path });
                }
                self.advance_checkpoint(writer)
            }
            Err(err) => {
                self.counters.failed_rolls.fetch_add(1, Ordering::Relaxed);
                writer.retry_at = Some(Instant::now() + self.options.retry_after);
                tracing::warn!(table, error = %err, "rolling the hot tail to Parquet failed; will retry");
                writer.last_error = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// The roll itself: concatenates runs of batches with one schema, and
    /// writes each run as files tagged with its WAL range.
    fn write_rolled(
        &self,
        table: &str,
        batches: &[HotBatch],
        published: &mut Vec<PathBuf>,
    ) -> Result<(), StorageError> {
        let mut runs: Vec<&[HotBatch]> = Vec::new();
        let mut start = 0;
        for i in 1..=batches.len() {
            if i == batches.len() || batches[i].batch.schema() != batches[start].batch.schema() {
                runs.push(&batches[start..i]);
                start = i;
            }
        }
        for run in runs {
            let range = WalRange {
                first: run[0].seq,
                last: run[run.len() - 1].seq,
            };
            let parts: Vec<RecordBatch> = run.iter().map(|b| b.batch.clone()).collect();
            let combined = concat_batches(&run[0].batch.schema(), &parts).map_err(|source| {
                PersistError::Arrow {
                    table: table.to_string(),
                    source,
                }
            })?;
            match self
                .persister
                .persist_tagged(table, &combined, Some(&range.tag()))
            {
                Ok(paths) => published.extend(paths),
                Err(err) => {
                    // Earlier runs of this roll are published; take them
                    // back so the retry does not store them twice.
                    for path in published.drain(..) {
                        let _ = fs::remove_file(path);
                    }
                    return Err(err.into());
                }
            }
        }
        Ok(())
    }

    /// Writes the checkpoint implied by what is still hot, then trims the WAL.
    fn advance_checkpoint(&self, writer: &mut Writer) -> Result<(), StorageError> {
        let through_all = writer.wal.next_seq() - 1;
        let mut checkpoint = Checkpoint {
            all_tables: self.hot.oldest_seq().map_or(through_all, |s| s - 1),
            tables: BTreeMap::new(),
        };
        let oldest_by_table: HashMap<String, u64> =
            self.hot.oldest_seq_by_table().into_iter().collect();
        for table in crate::retention::table_names(&self.data_dir) {
            let through = oldest_by_table.get(&table).map_or(through_all, |&s| s - 1);
            if through > checkpoint.all_tables {
                checkpoint.tables.insert(table, through);
            }
        }
        writer.wal.checkpoint(checkpoint)?;
        Ok(())
    }
}

/// Which WAL sequence numbers the Parquet files of each table-hour claim,
/// from their names.
#[derive(Debug, Default)]
struct FileClaims {
    by_hour: HashMap<PathBuf, Vec<WalRange>>,
    max_seq: u64,
    data_dir: PathBuf,
}

impl FileClaims {
    fn scan(data_dir: &Path) -> Result<FileClaims, StorageError> {
        let mut claims = FileClaims {
            data_dir: data_dir.to_path_buf(),
            ..FileClaims::default()
        };
        for table in crate::retention::table_names(data_dir) {
            for (_, hour_dir, files) in crate::retention::list_hours(&data_dir.join(&table))? {
                let ranges: Vec<WalRange> = files
                    .iter()
                    .filter_map(|f| WalRange::from_file_name(&f.name))
                    .collect();
                if let Some(max) = ranges.iter().map(|r| r.last).max() {
                    claims.max_seq = claims.max_seq.max(max);
                }
                claims.by_hour.insert(hour_dir, ranges);
            }
        }
        Ok(claims)
    }

    fn claims(&self, table: &str, key: PartitionKey, seq: u64) -> bool {
        let dir = partition_dir(&self.data_dir, table, key);
        self.by_hour
            .get(&dir)
            .is_some_and(|ranges| ranges.iter().any(|r| r.contains(seq)))
    }
}

#[cfg(test)]
mod tests;
