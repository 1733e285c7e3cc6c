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
//!    [`Storage::maintain`]): they are split by hour, sorted by `time` (batches
//!    that arrived in time order are written from slices, without a copy),
//!    and written as one file per table-hour with the
//!    [`ParquetPersister`] under `DATA_DIR/.roll/`, then all moved into
//!    their hour directories together. By default this runs on a roller
//!    thread ([`StorageOptions::background_rolls`]), so the appending thread
//!    spends its time on the WAL only; the hot tail's memory budget is what
//!    the roller may fall behind by before appends wait for it.
//! 3. The WAL checkpoint is then advanced past the rolled batches, and WAL
//!    segments wholly below it are deleted: on a checkpointer thread of its
//!    own with background rolls, so neither appends nor the next roll wait
//!    for its fsyncs.
//! 4. [Retention](crate::retention) deletes what is too old or over a
//!    table's byte budget; [compaction](crate::compaction) merges the small
//!    files of an hour.
//!
//! # What is on disk, and which files are complete
//!
//! ```text
//! DATA_DIR/.wal/LOCK, checkpoint, <first_seq>.wal   write-ahead log
//! DATA_DIR/.compact/…                               compaction staging (never read)
//! DATA_DIR/.roll/…                                  roll staging (never read)
//! DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/<stem>-w<first>-<last>.parquet
//! ```
//!
//! The listing rule is the one the catalog already uses: **every
//! `*.parquet` file under `DATA_DIR/<table>/` is complete and holds rows no
//! other listed file holds.** Writers keep it true: files are written under
//! hidden `.tmp` names and renamed (a roll's files are complete in `.roll/`
//! before they are renamed into their hour, under the hot tail's write
//! lock, so a reader sees a row in the tail or in a file, never both);
//! compaction builds the merged hour in
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;

use crate::compaction::{self, CompactionPolicy, CompactionReport};
use crate::hot_tail::{HotBatch, HotTail, TailStats};
use crate::layout::{PartitionKey, partition_dir};
use crate::parquet_persister::{split_by_hour, time_column, validate_table_name};
use crate::retention::{self, RetentionPolicy, RetentionReport};
use crate::wal::{Checkpoint, EncodedRecord, Wal, WalError, WalOptions};
use crate::{ParquetPersister, PersistError, PersistOptions};

/// Name of the WAL directory under the data dir.
pub const WAL_DIR: &str = ".wal";
/// Name of compaction's staging directory under the data dir.
pub const COMPACT_DIR: &str = ".compact";
/// Name of the directory under the data dir where rolls write their files
/// before moving them into place (never read).
pub const ROLL_DIR: &str = ".roll";

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
    /// Roll on a thread of the storage's own, so that encoding and
    /// compressing Parquet does not hold up appends (on a 2-core host this
    /// is what lets the WAL writer and the Parquet encoder run at once).
    /// Off: rolls run on the thread that appends or calls `maintain`.
    pub background_rolls: bool,
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
            background_rolls: true,
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

/// A batch checked and encoded as its WAL record by [`Storage::prepare`],
/// ready for [`Storage::append_prepared`].
#[derive(Debug)]
pub struct PreparedAppend {
    table: String,
    batch: RecordBatch,
    /// `None` for an empty batch, which is not stored.
    record: Option<EncodedRecord>,
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
    last_housekeeping: Instant,
    last_error: Option<String>,
}

/// What only rolls use, kept under `roll_lock` (so a roll never waits for
/// the writer lock, which an append holds through its WAL fsync).
#[derive(Debug)]
struct RollState {
    /// No roll is attempted before this instant (after a failure).
    retry_at: Option<Instant>,
}

/// Which rolls the background roller has been asked for.
#[derive(Debug, Default)]
struct RollRequests {
    /// Tables to roll if still due, oldest request first, each at most once.
    tables: VecDeque<String>,
    /// The roller is working on a request.
    busy: bool,
    /// A roll has published files since the checkpointer last looked.
    checkpoint: bool,
    /// The storage is being dropped: the roller stops.
    shutdown: bool,
}

/// When [`Shared::roll_table`] rolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RollWhen {
    /// Only if the table is over `roll_bytes` or its oldest batch is older
    /// than `roll_age`, and no failure asked to wait.
    Due,
    /// Whatever it holds, unless a failure asked to wait (making room).
    Now,
    /// Whatever it holds, whatever the retry delay (flush).
    Force,
}

/// One Parquet file of a roll, complete under `DATA_DIR/.roll/` and not
/// yet where readers look.
struct StagedRoll {
    staged: PathBuf,
    final_path: PathBuf,
}

/// The storage of one data dir: WAL, hot tail, roller, retention,
/// compaction. `Send + Sync`: one writer thread appends while query threads
/// take snapshots.
///
/// With [`StorageOptions::background_rolls`] (the default) a table that
/// outgrows [`StorageOptions::roll_bytes`] is encoded to Parquet on a
/// roller thread of its own, so the thread that appends only pays for the
/// WAL; the hot-tail budget bounds what the roller may fall behind by.
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
    shared: Arc<Shared>,
    /// The background roller and checkpointer, if
    /// [`StorageOptions::background_rolls`].
    background: Option<[std::thread::JoinHandle<()>; 2]>,
}

/// What the appending threads, the roller and the checkpointer share.
///
/// Locks, always taken in this order (never the other way round):
/// `roll_lock` → `checkpoint_io` → `writer` → hot tail. `roll_lock` makes
/// rolls, retention and compaction one at a time (a compaction swaps an
/// hour directory, so no roll may publish into it meanwhile);
/// `checkpoint_io` keeps checkpoints in order; `writer` orders WAL appends
/// and is held only briefly by anyone but the appending thread. Nobody
/// waits for `roll_lock` while holding `writer`, which is why
/// [`Shared::append`] makes room before it takes `writer`. (`requests` is
/// taken last, alone or under `roll_lock`.)
struct Shared {
    data_dir: PathBuf,
    options: StorageOptions,
    /// Writes compaction's merged files.
    persister: ParquetPersister,
    /// Writes rolls under `DATA_DIR/.roll/`, where no reader looks, so the
    /// slow part of a roll (concatenate, sort, encode, compress, fsync)
    /// runs without holding any lock a reader or appender needs.
    staging: ParquetPersister,
    hot: HotTail,
    writer: Mutex<Writer>,
    roll_lock: Mutex<RollState>,
    /// Held while a WAL checkpoint is decided and written, so checkpoints
    /// are written one at a time and in order.
    checkpoint_io: Mutex<()>,
    requests: Mutex<RollRequests>,
    /// Signalled when a roll is requested or the storage shuts down.
    requested: Condvar,
    /// Signalled when a checkpoint is wanted or the storage shuts down.
    checkpoint_wanted: Condvar,
    /// Signalled when the roller finishes a request, and when a roll has
    /// taken batches out of the hot tail.
    idle: Condvar,
    counters: Counters,
    listener: RwLock<Option<Arc<StorageListener>>>,
    /// Spent WAL record buffers, reused by [`Storage::prepare`].
    spare_records: Mutex<Vec<Vec<u8>>>,
}

/// How many spent record buffers are kept: one being encoded, one waiting
/// to be appended.
const SPARE_RECORDS: usize = 2;

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("data_dir", &self.shared.data_dir)
            .field("hot_bytes", &self.shared.hot.bytes())
            .field("background_rolls", &self.background.is_some())
            .finish_non_exhaustive()
    }
}

fn relock<T>(result: std::sync::LockResult<MutexGuard<'_, T>>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a panic on
    // another thread does not make it unusable.
    result.unwrap_or_else(|p| p.into_inner())
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
        // Leftovers of a compaction or a roll cut short: never read, and
        // their rows are still in the WAL, so they are safe to drop.
        for leftovers in [COMPACT_DIR, ROLL_DIR] {
            let staging = data_dir.join(leftovers);
            if staging.exists() {
                fs::remove_dir_all(&staging).map_err(|source| StorageError::Io {
                    op: "removing leftovers of an interrupted roll or compaction",
                    path: staging.clone(),
                    source,
                })?;
            }
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
        let staging =
            ParquetPersister::with_options(data_dir.join(ROLL_DIR), options.persist.clone());
        let background = options.background_rolls;
        let shared = Arc::new(Shared {
            data_dir,
            persister,
            staging,
            hot,
            writer: Mutex::new(Writer {
                wal,
                last_housekeeping: Instant::now(),
                last_error: None,
            }),
            roll_lock: Mutex::new(RollState { retry_at: None }),
            checkpoint_io: Mutex::new(()),
            checkpoint_wanted: Condvar::new(),
            requests: Mutex::new(RollRequests::default()),
            requested: Condvar::new(),
            idle: Condvar::new(),
            counters: Counters::default(),
            listener: RwLock::new(None),
            spare_records: Mutex::new(Vec::new()),
            options,
        });
        let spawn = |name: &str, body: fn(&Shared)| {
            let for_thread = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || body(&for_thread))
                .map_err(|source| StorageError::Io {
                    op: "starting a storage thread for",
                    path: shared.data_dir.clone(),
                    source,
                })
        };
        let background = if background {
            let roller = spawn("sluice-roller", Shared::roller_loop)?;
            let checkpointer = match spawn("sluice-checkpoint", Shared::checkpointer_loop) {
                Ok(handle) => handle,
                Err(err) => {
                    relock(shared.requests.lock()).shutdown = true;
                    shared.requested.notify_all();
                    let _ = roller.join();
                    return Err(err);
                }
            };
            Some([roller, checkpointer])
        } else {
            None
        };
        Ok((Storage { shared, background }, report))
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// The options it runs with.
    pub fn options(&self) -> &StorageOptions {
        &self.shared.options
    }

    /// The hot tail, for queries.
    pub fn hot_tail(&self) -> &HotTail {
        &self.shared.hot
    }

    /// Sets the callback told of every file published or removed (e.g. an
    /// object-store uploader). Replaces any earlier one.
    pub fn set_listener(&self, listener: StorageListener) {
        *self
            .shared
            .listener
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(listener));
    }

    /// Live counters.
    pub fn stats(&self) -> StorageStats {
        let c = &self.shared.counters;
        StorageStats {
            appended_batches: c.appended_batches.load(Ordering::Relaxed),
            appended_rows: c.appended_rows.load(Ordering::Relaxed),
            refused_batches: c.refused_batches.load(Ordering::Relaxed),
            refused_rows: c.refused_rows.load(Ordering::Relaxed),
            files_published: c.files_published.load(Ordering::Relaxed),
            failed_rolls: c.failed_rolls.load(Ordering::Relaxed),
            hot_bytes: self.shared.hot.bytes(),
            last_error: self.shared.lock().last_error.clone(),
        }
    }

    /// Stores one batch of `table`: WAL first, then the hot tail. When this
    /// returns `Ok` the batch is acknowledged: durable as the fsync policy
    /// promises, and visible in [`Storage::hot_tail`].
    ///
    /// On `Err` nothing was stored and the rows are counted as refused; a
    /// full disk ([`StorageError::is_out_of_space`]) is such an error, and
    /// later appends succeed again once space returns. A table that
    /// outgrows `roll_bytes` is rolled to Parquet, on the roller thread
    /// (after this returns) or, without background rolls, before this
    /// returns; a failed roll is not an append error (the batch is safe in
    /// the WAL), it is counted and retried. When the hot tail's budget is
    /// full, this waits for the roller and then rolls every table itself.
    ///
    /// A text or binary column may come as a dictionary over its values
    /// (as `sluice-ingest`'s builders key paths): it is logged and written
    /// to Parquet as it is, without reading its rows again, and queries,
    /// replay and the Parquet files see it as plain text, the type of the
    /// table's schema.
    pub fn append(&self, table: &str, batch: RecordBatch) -> Result<AppendAck, StorageError> {
        let prepared = self.prepare(table, batch)?;
        self.append_prepared(prepared)
    }

    /// The first half of [`Storage::append`], which takes no lock: checks
    /// the batch and encodes its WAL record (dictionaries, narrowed
    /// numbers, Arrow IPC, CRC). [`Storage::append_prepared`] does the
    /// rest. One thread may prepare the next batch while another appends
    /// this one and waits for its fsync; [`Storage::append_all`] does
    /// exactly that.
    ///
    /// A batch that cannot be encoded is counted as refused, as an append
    /// that fails is.
    pub fn prepare(&self, table: &str, batch: RecordBatch) -> Result<PreparedAppend, StorageError> {
        validate_table_name(table)?;
        time_column(table, &batch)?;
        if batch.num_rows() == 0 {
            return Ok(PreparedAppend {
                table: table.to_string(),
                batch,
                record: None,
            });
        }
        let buffer = relock(self.shared.spare_records.lock())
            .pop()
            .unwrap_or_default();
        match EncodedRecord::encode(buffer, table, &batch) {
            Ok(record) => Ok(PreparedAppend {
                table: table.to_string(),
                batch,
                record: Some(record),
            }),
            Err(err) => {
                let err = StorageError::from(err);
                self.count_refused(batch.num_rows(), &err);
                Err(err)
            }
        }
    }

    /// The second half of [`Storage::append`]: the WAL record is written
    /// (and fsynced, as the policy says), then the batch joins the hot
    /// tail. When this returns `Ok` the batch is acknowledged.
    pub fn append_prepared(&self, prepared: PreparedAppend) -> Result<AppendAck, StorageError> {
        let PreparedAppend {
            table,
            batch,
            record,
        } = prepared;
        let Some(record) = record else {
            return Ok(AppendAck { seq: 0 });
        };
        let rows = batch.num_rows();
        let result = self.shared.append_encoded(&table, batch, record);
        match &result {
            Ok(_) => {
                let c = &self.shared.counters;
                c.appended_batches.fetch_add(1, Ordering::Relaxed);
                c.appended_rows.fetch_add(rows as u64, Ordering::Relaxed);
            }
            Err(err) => self.count_refused(rows, err),
        }
        if result.is_ok() && self.shared.hot.table_bytes(&table) >= self.shared.options.roll_bytes {
            self.roll_when_due(&table);
        }
        result
    }

    /// Appends every batch `batches` yields, in order, as
    /// [`Storage::append`] would one by one, and hands each outcome (with
    /// the batch's tag and rows) to `acked`, in the same order, on the
    /// calling thread. The batches are prepared on a second thread, so the
    /// next batch is being encoded while the WAL waits for this one's
    /// fsync: under `--wal-fsync batch` the appending thread spent a fifth
    /// of a firehose run waiting on the disk, and the source behind it
    /// waited with it.
    ///
    /// When `acked` returns `false`, no more batches are stored: the rest
    /// are still taken from `batches` (so a producer feeding it is not left
    /// waiting) and dropped, and this returns once `batches` ends. If the
    /// encoding thread cannot be started, the batches are appended one at a
    /// time on the calling thread instead, with a warning.
    pub fn append_all<'t, T: Send>(
        &self,
        mut batches: impl Iterator<Item = (&'t str, RecordBatch, T)> + Send,
        mut acked: impl FnMut(T, usize, Result<AppendAck, StorageError>) -> bool,
    ) {
        type Prepared<T> = (Result<PreparedAppend, StorageError>, usize, T);
        let pipelined = std::thread::scope(|scope| {
            // One batch waits, encoded, while the one before is appended.
            let (to_append, prepared) = std::sync::mpsc::sync_channel::<Prepared<T>>(1);
            // Borrowed, not moved: if the thread cannot start, the batches
            // are still here to append without it.
            let source = &mut batches;
            std::thread::Builder::new()
                .name("sluice-wal-encode".into())
                .spawn_scoped(scope, move || {
                    let mut appending = true;
                    for (table, batch, tag) in source {
                        if !appending {
                            continue;
                        }
                        let rows = batch.num_rows();
                        let prepared = self.prepare(table, batch);
                        // The appender has stopped: drain the source.
                        appending = to_append.send((prepared, rows, tag)).is_ok();
                    }
                })?;
            for (prepared, rows, tag) in prepared {
                let result = prepared.and_then(|p| self.append_prepared(p));
                if !acked(tag, rows, result) {
                    break;
                }
            }
            Ok::<(), std::io::Error>(())
        });
        if let Err(err) = pipelined {
            tracing::warn!(error = %err, "could not start the WAL encoding thread; appending one batch at a time");
            let mut appending = true;
            for (table, batch, tag) in batches {
                if appending {
                    let rows = batch.num_rows();
                    appending = acked(tag, rows, self.append(table, batch));
                }
            }
        }
    }

    /// Counts `rows` as refused because of `err`.
    fn count_refused(&self, rows: usize, err: &StorageError) {
        let c = &self.shared.counters;
        c.refused_batches.fetch_add(1, Ordering::Relaxed);
        c.refused_rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.shared.lock().last_error = Some(err.to_string());
    }

    /// Rolls `table` if due: hands it to the roller, or rolls it here.
    fn roll_when_due(&self, table: &str) {
        if self.background.is_some() {
            self.shared.request_roll(table);
        } else {
            let _ = self.shared.roll_table(table, RollWhen::Due);
        }
    }

    /// Rolls what is due (by size or age; on the roller thread with
    /// background rolls), fsyncs the WAL under an interval policy, and every
    /// [`StorageOptions::housekeeping_every`] runs retention and compaction.
    /// Call it about once a second.
    ///
    /// Roll failures are counted and retried later, not returned; the error
    /// returned is the WAL's or housekeeping's.
    pub fn maintain(&self) -> Result<(), StorageError> {
        let shared = &self.shared;
        let housekeeping_due = {
            let mut writer = shared.lock();
            writer.wal.sync_if_due()?;
            let due = writer.last_housekeeping.elapsed() >= shared.options.housekeeping_every;
            if due {
                writer.last_housekeeping = Instant::now();
            }
            due
        };
        for (table, stats) in shared.hot.stats() {
            if shared.is_due(&stats) {
                self.roll_when_due(&table);
            }
        }
        if housekeeping_due {
            shared.housekeeping(SystemTime::now())?;
        }
        Ok(())
    }

    /// Waits until the roller has done every roll asked of it so far (at
    /// once without background rolls). [`Storage::flush`] does this too.
    pub fn wait_for_rolls(&self) {
        if self.background.is_some() {
            self.shared.wait_for_roller();
        }
    }

    /// Rolls every table now, ignoring age, size and any retry delay, and
    /// fsyncs the WAL. Returns the first roll error (the batches of a failed
    /// table stay hot and in the WAL). Call it at shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.wait_for_rolls();
        let mut first_error = None;
        for (table, _) in self.shared.hot.stats() {
            if let Err(err) = self.shared.roll_table(&table, RollWhen::Force)
                && first_error.is_none()
            {
                first_error = Some(err);
            }
        }
        // The checkpointer may not have caught up with the last rolls.
        if let Err(err) = self.shared.advance_checkpoint() {
            first_error.get_or_insert(err);
        }
        self.shared.lock().wal.sync()?;
        first_error.map_or(Ok(()), Err)
    }

    /// Runs retention and compaction now (as of `now`), whatever the
    /// schedule.
    pub fn housekeeping(
        &self,
        now: SystemTime,
    ) -> Result<(RetentionReport, CompactionReport), StorageError> {
        self.shared.housekeeping(now)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let Some(threads) = self.background.take() else {
            return;
        };
        relock(self.shared.requests.lock()).shutdown = true;
        self.shared.requested.notify_all();
        self.shared.checkpoint_wanted.notify_all();
        self.shared.idle.notify_all();
        // A roll in progress finishes (or fails) first, and so does a
        // checkpoint already asked for; rolls not yet started are left to
        // the WAL, as without background rolls.
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Writer> {
        relock(self.writer.lock())
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

    /// Appends a batch [`Storage::prepare`] encoded: room in the hot tail,
    /// then the WAL (with its fsync), then the hot tail.
    fn append_encoded(
        &self,
        table: &str,
        batch: RecordBatch,
        mut record: EncodedRecord,
    ) -> Result<AppendAck, StorageError> {
        let size = batch.get_array_memory_size();
        if self.hot.would_exceed(size) {
            // Make room: first let the roller free it (its batches are
            // still hot), then, if it is idle and there is still none, roll
            // every table here. If that fails too (a full disk), refuse
            // rather than grow without bound. The retry delay applies, so a
            // full disk costs one failed roll per `retry_after`, not one per
            // refused batch.
            self.wait_for_room(size);
            if self.hot.would_exceed(size) {
                self.roll_all();
            }
        }
        let mut writer = self.lock();
        let appended = if self.hot.would_exceed(size) && self.hot.bytes() > 0 {
            Err(StorageError::HotTailFull {
                table: table.to_string(),
                rows: batch.num_rows(),
                bytes: self.hot.bytes(),
                budget: self.hot.budget_bytes(),
            })
        } else {
            writer
                .wal
                .append_encoded(&mut record)
                .map_err(StorageError::from)
        };
        let (logged, buffer) = record.into_parts();
        if let Ok(seq) = appended {
            // Under the writer lock, as the WAL append: a checkpoint decided
            // between the two would count this record as already in Parquet
            // (it is in neither the hot tail nor a file yet), and replay
            // after a crash would skip it.
            self.hot.push_logged(table, seq, batch, logged);
        }
        drop(writer);
        self.spare_record(buffer);
        appended.map(|seq| AppendAck { seq })
    }

    /// Keeps a spent record's memory for the next encoding: a record is
    /// megabytes, and a fresh one is a fresh mapping to fault in.
    fn spare_record(&self, buffer: Vec<u8>) {
        let mut spare = relock(self.spare_records.lock());
        if spare.len() < SPARE_RECORDS {
            spare.push(buffer);
        }
    }

    /// Waits until the roller's queue is empty and it is idle (at once
    /// without a roller: nothing is ever queued).
    fn wait_for_roller(&self) {
        let mut requests = relock(self.requests.lock());
        while !requests.shutdown && (requests.busy || !requests.tables.is_empty()) {
            requests = relock(self.idle.wait(requests));
        }
    }

    /// Waits until the hot tail has room for `size` more bytes, or the
    /// roller is idle with nothing asked of it (so no room is coming). It
    /// does not wait for the roller's whole queue: as soon as one roll has
    /// freed enough, the append goes ahead while the roller carries on.
    fn wait_for_room(&self, size: usize) {
        let mut requests = relock(self.requests.lock());
        while !requests.shutdown
            && (requests.busy || !requests.tables.is_empty())
            && self.hot.would_exceed(size)
        {
            requests = relock(self.idle.wait(requests));
        }
    }

    /// Asks the roller to roll `table` if it is still due when its turn
    /// comes (a table asked for twice is rolled once).
    fn request_roll(&self, table: &str) {
        let mut requests = relock(self.requests.lock());
        if !requests.tables.iter().any(|t| t == table) {
            requests.tables.push_back(table.to_string());
            self.requested.notify_one();
        }
    }

    /// Asks the checkpointer to advance the WAL checkpoint (requests made
    /// while it is busy are served by one checkpoint).
    fn request_checkpoint(&self) {
        relock(self.requests.lock()).checkpoint = true;
        self.checkpoint_wanted.notify_one();
    }

    /// The checkpointer thread: advances the WAL checkpoint after rolls,
    /// until the storage is dropped. It is a thread of its own because a
    /// checkpoint's fsyncs and segment deletions queue behind the WAL's
    /// writes on a busy disk (over half a second was measured at maximum
    /// rate); on the roller they held up the next roll, and with it every
    /// append waiting for room in the hot tail.
    fn checkpointer_loop(&self) {
        loop {
            {
                let mut requests = relock(self.requests.lock());
                loop {
                    if requests.checkpoint {
                        requests.checkpoint = false;
                        break;
                    }
                    if requests.shutdown {
                        return;
                    }
                    requests = relock(self.checkpoint_wanted.wait(requests));
                }
            }
            if let Err(err) = self.advance_checkpoint() {
                tracing::warn!(error = %err, "advancing the WAL checkpoint failed; the next roll retries");
                self.lock().last_error = Some(err.to_string());
            }
        }
    }

    /// The roller thread: rolls requested tables, one at a time, until the
    /// storage is dropped.
    fn roller_loop(&self) {
        loop {
            let table = {
                let mut requests = relock(self.requests.lock());
                loop {
                    if requests.shutdown {
                        return;
                    }
                    if let Some(table) = requests.tables.pop_front() {
                        requests.busy = true;
                        break table;
                    }
                    requests = relock(self.requested.wait(requests));
                }
            };
            // Failures are counted, logged and kept in `last_error` by
            // roll_table; the batches stay hot and the next request or
            // maintain retries.
            let _ = self.roll_table(&table, RollWhen::Due);
            relock(self.requests.lock()).busy = false;
            self.idle.notify_all();
        }
    }

    fn is_due(&self, stats: &TailStats) -> bool {
        stats.bytes >= self.options.roll_bytes
            || stats
                .oldest
                .is_some_and(|t| t.elapsed() >= self.options.roll_age)
    }

    fn housekeeping(
        &self,
        now: SystemTime,
    ) -> Result<(RetentionReport, CompactionReport), StorageError> {
        let _rolls = relock(self.roll_lock.lock());
        let notify = |event: StorageEvent<'_>| self.notify(event);
        let result = retention::apply(&self.data_dir, &self.options.retention, now, &notify)
            .and_then(|retention| {
                let compaction = compaction::compact(
                    &self.persister,
                    &self.data_dir,
                    &self.options.compaction,
                    now,
                    &notify,
                )?;
                Ok((retention, compaction))
            });
        if let Err(err) = &result {
            self.lock().last_error = Some(err.to_string());
        }
        result
    }

    fn roll_all(&self) {
        for (table, _) in self.hot.stats() {
            if self.roll_table(&table, RollWhen::Now).is_err() {
                break;
            }
        }
    }

    /// Writes the hot batches of `table` to Parquet (`when` says whether it
    /// must be due), then advances the WAL checkpoint. On failure the
    /// batches stay hot and no roll is tried again before `retry_after`
    /// (unless forced).
    ///
    /// The files are written and fsynced under `DATA_DIR/.roll/` with no
    /// lock but `roll_lock` held, so appends and queries carry on; then,
    /// under the hot tail's write lock, they are renamed into their hour
    /// directories and the batches they hold leave the tail, so a reader
    /// sees each row once. Batches appended meanwhile stay for the next
    /// roll.
    fn roll_table(&self, table: &str, when: RollWhen) -> Result<(), StorageError> {
        let mut rolls = relock(self.roll_lock.lock());
        if when != RollWhen::Force && rolls.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        if when == RollWhen::Due
            && !self
                .hot
                .stats()
                .iter()
                .any(|(name, stats)| name == table && self.is_due(stats))
        {
            return Ok(());
        }
        let batches = self.hot.batches(table);
        let Some(last_seq) = batches.last().map(|b| b.seq) else {
            return Ok(());
        };
        let result = self.stage_rolled(table, &batches).and_then(|staged| {
            self.hot
                .remove_through(table, last_seq, || publish_staged(&self.data_dir, staged))
        });
        drop(batches);
        match result {
            Ok(published) => {
                // The rolled batches have left the hot tail: an append
                // waiting for room may go now, before the checkpoint's
                // fsyncs. (Taking the lock first means a waiter that saw
                // the tail full is already waiting, so it cannot miss this.)
                drop(relock(self.requests.lock()));
                self.idle.notify_all();
                self.counters
                    .files_published
                    .fetch_add(published.len() as u64, Ordering::Relaxed);
                for path in &published {
                    self.notify(StorageEvent::Published { table, path });
                }
                rolls.retry_at = None;
                if self.options.background_rolls && when != RollWhen::Force {
                    self.request_checkpoint();
                    Ok(())
                } else {
                    self.advance_checkpoint()
                }
            }
            Err(err) => {
                self.counters.failed_rolls.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(table, error = %err, "rolling the hot tail to Parquet failed; will retry");
                rolls.retry_at = Some(Instant::now() + self.options.retry_after);
                self.lock().last_error = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// The slow part of a roll: writes each run of batches with one schema,
    /// tagged with its WAL range, as complete files under `DATA_DIR/.roll/`
    /// (see [`ParquetPersister::persist_run_tagged`]). On error nothing is
    /// left there.
    fn stage_rolled(
        &self,
        table: &str,
        batches: &[HotBatch],
    ) -> Result<Vec<StagedRoll>, StorageError> {
        let mut staged: Vec<StagedRoll> = Vec::new();
        let result = (|| {
            let mut start = 0;
            for i in 1..=batches.len() {
                if i < batches.len() && batches[i].schema == batches[start].schema {
                    continue;
                }
                let run = &batches[start..i];
                start = i;
                let range = WalRange {
                    first: run[0].seq,
                    last: run[run.len() - 1].seq,
                };
                let schema = run[0].schema.clone();
                let run: Vec<RecordBatch> = run.iter().map(|b| b.for_parquet.clone()).collect();
                let paths = self.staging.persist_logged_run_tagged(
                    table,
                    schema,
                    &run,
                    Some(&range.tag()),
                )?;
                for staged_path in paths {
                    let relative = staged_path
                        .strip_prefix(self.staging.data_dir())
                        .unwrap_or(&staged_path);
                    let final_path = self.data_dir.join(relative);
                    staged.push(StagedRoll {
                        staged: staged_path,
                        final_path,
                    });
                }
            }
            Ok::<(), StorageError>(())
        })();
        match result {
            Ok(()) => Ok(staged),
            Err(err) => {
                for file in staged {
                    let _ = fs::remove_file(file.staged);
                }
                Err(err)
            }
        }
    }

    /// Writes the checkpoint implied by what is still hot, then trims the
    /// WAL. Any thread may call it at any time: files leave the hot tail only
    /// once they are durable, so what is not hot is in Parquet.
    ///
    /// Only the decision is made under the writer lock (it must see the
    /// WAL's numbering and the hot tail at one instant); the fsyncs and the
    /// segment deletions run after it is released, so appends do not wait
    /// for them.
    fn advance_checkpoint(&self) -> Result<(), StorageError> {
        let _io = relock(self.checkpoint_io.lock());
        let tables = crate::retention::table_names(&self.data_dir);
        let planned = {
            let mut writer = self.lock();
            let through_all = writer.wal.next_seq() - 1;
            let mut checkpoint = Checkpoint {
                all_tables: self.hot.oldest_seq().map_or(through_all, |s| s - 1),
                tables: BTreeMap::new(),
            };
            let oldest_by_table: HashMap<String, u64> =
                self.hot.oldest_seq_by_table().into_iter().collect();
            for table in tables {
                let through = oldest_by_table.get(&table).map_or(through_all, |&s| s - 1);
                if through > checkpoint.all_tables {
                    checkpoint.tables.insert(table, through);
                }
            }
            writer.wal.plan_checkpoint(checkpoint)
        };
        if let Some(write) = planned {
            write.write()?;
        }
        Ok(())
    }
}

/// Moves staged roll files into their hour directories (creating them) and
/// fsyncs each directory once; returns the final paths. On error it takes
/// back what it moved and removes the rest, so the roll as a whole is
/// published or not. Called under the hot tail's write lock, so no reader
/// can have listed a file it takes back.
fn publish_staged(data_dir: &Path, staged: Vec<StagedRoll>) -> Result<Vec<PathBuf>, StorageError> {
    let mut published: Vec<PathBuf> = Vec::with_capacity(staged.len());
    let mut dirs: Vec<&Path> = Vec::new();
    let mut failure = None;
    for file in &staged {
        let dir = file.final_path.parent().unwrap_or(data_dir);
        let moved = crate::publish::create_private_dir_all(data_dir, dir)
            .map_err(|source| ("creating directory", dir, source))
            .and_then(|()| {
                fs::rename(&file.staged, &file.final_path)
                    .map_err(|source| ("publishing (rename)", file.final_path.as_path(), source))
            });
        match moved {
            Ok(()) => {
                published.push(file.final_path.clone());
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    if failure.is_none() {
        for dir in &dirs {
            if let Err(source) = crate::publish::sync_dir(dir) {
                failure = Some(("fsyncing directory", dir, source));
                break;
            }
        }
    }
    let Some((op, path, source)) = failure else {
        return Ok(published);
    };
    let error = StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    for path in &published {
        let _ = fs::remove_file(path);
    }
    for file in &staged {
        let _ = fs::remove_file(&file.staged);
    }
    Err(error)
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
