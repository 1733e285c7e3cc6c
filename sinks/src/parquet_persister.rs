//! Turning one table's `RecordBatch` into Parquet files in the data-dir layout.
//!
//! A batch is split by the UTC hour of its `time` column (see [`crate::layout`]),
//! each part is sorted by `time` (then `time_ns`), and each part becomes one
//! new, immutable Parquet file, published atomically: written under a hidden temporary name, fsynced, then
//! renamed to its `.parquet` name.
//! Files are never appended to or rewritten here; merging small files is
//! compaction's job.
//!
//! The file format is chosen for the scans the engine runs: zstd for size,
//! dictionary encoding for the many repeated paths and user names, and
//! page-level statistics with the page index so a `time` predicate skips row
//! groups and pages, not just files.
//!
//! It is also chosen for size, because an endpoint's open firehose is mostly
//! the same few thousand files opened again and again (issue 5's target is
//! at most 15 bytes per stored open event). Measured on the synthetic
//! firehose (`sinks/tests/parquet_size.rs`), three settings carry the size:
//!
//! - a dictionary page limit of 8 MiB instead of parquet's 1 MiB: a row
//!   group's distinct file paths (often a hundred bytes each) overflow 1 MiB,
//!   and a column whose dictionary overflows falls back to plain strings for
//!   the rest of the row group (file names: 8.4 → 3.6 bytes/event);
//! - DELTA_BINARY_PACKED, without a dictionary, for the integer columns that
//!   grow with time (`time_ns`, `seq_num`, `global_seq_num`): in time order
//!   their differences are small, where a dictionary of unique values is pure
//!   overhead ([`DELTA_INTEGER_COLUMNS`]);
//! - DELTA_BYTE_ARRAY for `eid`, a zero-padded counter: each value shares
//!   all but its last digits with the one before ([`DELTA_STRING_COLUMNS`]).
//!
//! Sorting by more keys within a second (`pid`, `path`) was measured too and
//! made files larger: it breaks the time order the delta columns live on.
//!
//! Text from the kernel (paths, command lines, the columns with a raw-bytes
//! sidecar, [`unbounded_text_columns`]) is written without min/max
//! statistics. In time order a row group's paths run from `/Applications` to
//! `/var`, so their min and max skip nothing, while computing them compares
//! every row's full string: 5 % of the pipeline's CPU at the seed rate.
//! For the same reason identifiers and kinds that every page holds the
//! whole range of ([`UNORDERED_COLUMNS`]: `pid`, `parent`, `event_type`,
//! `version`) have none either.
//!
//! The storage layer hands a roll its batches as the WAL logged them, with
//! repetitive text as dictionaries. Those of the columns just named that
//! are text (paths, file names, `event_type`) need nothing but a dictionary
//! and keys, so they are written from the WAL's dictionaries without
//! hashing any row again (`dictionary_chunk`); every other column is
//! encoded from its values by the parquet crate.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{
    DataType, FieldRef, Int64Type, Schema, SchemaRef, TimeUnit, TimestampNanosecondType,
};
use arrow::error::ArrowError;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, compute_leaves,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::schema::types::{ColumnDescPtr, ColumnPath};
use sluice_schemas::RAW_BYTES_SUFFIX;

use crate::layout::{PartitionKey, partition_dir};
use crate::publish::{
    TempFileGuard, create_private_dir_all, create_private_file, unique_file_stem,
};

/// Name of the column rows are partitioned and sorted by: Int64 unix seconds, UTC.
pub const TIME_COLUMN: &str = "time";
/// Name of the optional column that breaks ties within a second.
pub const TIME_NS_COLUMN: &str = "time_ns";

/// Integer columns written with DELTA_BINARY_PACKED and no dictionary, when
/// a table has them: they grow with time, so in a file sorted by time their
/// successive differences are small (nanoseconds between events, and event
/// counters that mostly step by one per client or event type).
pub const DELTA_INTEGER_COLUMNS: [&str; 3] = [TIME_NS_COLUMN, "seq_num", "global_seq_num"];

/// String columns written with DELTA_BYTE_ARRAY (shared prefix + suffix) and
/// no dictionary: `eid` is a zero-padded event counter, unique per row, so a
/// dictionary would only repeat it, while each value shares its leading
/// digits with the one before.
pub const DELTA_STRING_COLUMNS: [&str; 1] = ["eid"];

/// Columns written without min/max statistics although they are not free
/// text: identifiers and kinds that every stretch of time holds the whole
/// range of. A page of file events holds pids from 100 to 99,999, event
/// types from `close` to `write`, and one `version`, so its min and max
/// skip nothing that a query asks for, while keeping them compares every
/// value: a tenth of the time Parquet takes to encode a file event
/// (`pid`, `parent`, `event_type`, `version` together).
pub const UNORDERED_COLUMNS: [&str; 4] = ["pid", "parent", "event_type", "version"];

/// Why a batch could not be persisted. Each variant names the table or path.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The batch has no `time` column, so its rows have no partition.
    #[error(
        "table {table:?}: batch has no `time` column (Int64 unix seconds), so its rows cannot be partitioned"
    )]
    MissingTimeColumn {
        /// The table the batch was for.
        table: String,
    },

    /// The batch's `time` column is not Int64 unix seconds.
    #[error("table {table:?}: `time` column is {data_type}, expected Int64 unix seconds")]
    TimeColumnType {
        /// The table the batch was for.
        table: String,
        /// The type the column has.
        data_type: DataType,
    },

    /// The table name cannot be used as one directory name under the data dir.
    #[error("table name {table:?} is not usable as a directory name: {reason}")]
    InvalidTableName {
        /// The rejected name.
        table: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The [`PersistOptions`] cannot produce a valid Parquet writer.
    #[error("invalid persist options: {reason}")]
    InvalidOptions {
        /// What is wrong with them.
        reason: String,
    },

    /// The batch has more rows than the sort can index (u32).
    #[error(
        "table {table:?}: batch of {rows} rows is too large to sort (at most {} rows)",
        u32::MAX
    )]
    BatchTooLarge {
        /// The table the batch was for.
        table: String,
        /// Rows in the batch.
        rows: usize,
    },

    /// Sorting or splitting the batch failed.
    #[error("table {table:?}: sorting or splitting the batch failed: {source}")]
    Arrow {
        /// The table the batch was for.
        table: String,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },

    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "renaming into place".
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// Encoding the Parquet file failed.
    #[error("writing Parquet file {}: {source}", path.display())]
    Parquet {
        /// The (temporary) file being written.
        path: PathBuf,
        /// The Parquet error.
        #[source]
        source: ParquetError,
    },
}

/// How Parquet files are written. `Default` gives the settings sluice ships with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistOptions {
    /// zstd compression level, 1..=22. The default is 1: after dictionary
    /// and delta encoding there is little left for zstd to find, so level 3
    /// (zstd's own default) made files under 1 % smaller for 7 % more of the
    /// whole pipeline's CPU at maximum rate (benches/README.md), and the
    /// endpoint is also producing the events.
    pub zstd_level: i32,
    /// Most rows in one row group. Row groups are the unit of parallel scan
    /// and of statistics-based skipping; the default, 128 Ki rows, keeps them
    /// a few MiB for typical event rows, large enough to compress well and
    /// small enough that a `time` range skips most of a big file. Must not be 0.
    pub max_row_group_rows: usize,
    /// Dictionary-encode columns. On by default: paths, user names and
    /// event types repeat heavily, and dictionaries make them both smaller
    /// and faster to filter.
    pub dictionary: bool,
    /// Write min/max statistics per page and the page index (column index and
    /// offset index), so readers can skip pages inside a row group. On by
    /// default; when off, statistics are kept per column chunk only.
    pub page_statistics: bool,
    /// Largest dictionary page per column chunk, in bytes. A column whose
    /// distinct values outgrow it switches to plain encoding for the rest of
    /// the row group, so it must hold a row group's distinct paths; see
    /// [`PersistOptions::DEFAULT_DICTIONARY_PAGE_BYTES`]. Must not be 0.
    pub dictionary_page_bytes: usize,
    /// Use the per-column encodings of [`DELTA_INTEGER_COLUMNS`] and
    /// [`DELTA_STRING_COLUMNS`] for the columns a table has. On by default;
    /// off gives every column parquet's default (dictionary, then plain).
    pub delta_encodings: bool,
    /// Threads that encode the columns of one row group side by side; 1
    /// encodes them one after another on the calling thread. Encoding is
    /// the most expensive stage of the firehose, and one thread caps it
    /// near 2M events/s; the default takes the host's cores, at most
    /// [`PersistOptions::MAX_ENCODING_THREADS`]. The file is the same
    /// whatever the count. Must not be 0.
    pub encoding_threads: usize,
}

impl PersistOptions {
    /// The most threads the default gives one file's encoding: the
    /// columns of a file event split into about four equal shares.
    pub const MAX_ENCODING_THREADS: usize = 4;
    /// Default zstd level.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
    /// Default most rows per row group.
    pub const DEFAULT_MAX_ROW_GROUP_ROWS: usize = 128 * 1024;
    /// Default dictionary page limit: 8 MiB, eight times parquet's default.
    /// It holds some 80,000 distinct 100-byte paths, well above the repeated
    /// file set of a 128 Ki-row group (the synthetic firehose's overflowed
    /// 1 MiB), while a row group of all-unique paths (12.5 MiB) still falls
    /// back to plain rather than growing without bound. The writer holds at
    /// most this much per dictionary-encoded column.
    pub const DEFAULT_DICTIONARY_PAGE_BYTES: usize = 8 << 20;
}

impl Default for PersistOptions {
    fn default() -> Self {
        PersistOptions {
            zstd_level: Self::DEFAULT_ZSTD_LEVEL,
            max_row_group_rows: Self::DEFAULT_MAX_ROW_GROUP_ROWS,
            dictionary: true,
            page_statistics: true,
            dictionary_page_bytes: Self::DEFAULT_DICTIONARY_PAGE_BYTES,
            delta_encodings: true,
            encoding_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(Self::MAX_ENCODING_THREADS),
        }
    }
}

/// Writes batches of any table as Parquet files under one data dir.
///
/// It holds no open files and no buffered rows, so it is cheap to share
/// (`&self` everywhere; it is `Send + Sync`), and several persisters, even in
/// several processes, may write to the same data dir: file names never collide.
///
/// ```no_run
/// # fn demo(batch: &arrow::array::RecordBatch) -> Result<(), sluice_sinks::PersistError> {
/// let persister = sluice_sinks::ParquetPersister::new("/var/db/sluice");
/// for path in persister.persist("es_process_events", batch)? {
///     println!("published {}", path.display());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ParquetPersister {
    data_dir: PathBuf,
    options: PersistOptions,
}

impl ParquetPersister {
    /// A persister writing under `data_dir` with [`PersistOptions::default`].
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self::with_options(data_dir, PersistOptions::default())
    }

    /// A persister writing under `data_dir` with the given options.
    ///
    /// Options are checked when a batch is persisted, so a bad setting is
    /// reported as [`PersistError::InvalidOptions`] rather than a panic.
    pub fn with_options(data_dir: impl Into<PathBuf>, options: PersistOptions) -> Self {
        ParquetPersister {
            data_dir: data_dir.into(),
            options,
        }
    }

    /// The root of the layout, `DATA_DIR`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The options files are written with.
    pub fn options(&self) -> &PersistOptions {
        &self.options
    }

    /// Writes one batch of `table` and returns the paths of the files published.
    ///
    /// Rows are split by the UTC date and hour of `time` into
    /// `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/`, one new file per hour
    /// touched, sorted by `time` then `time_ns` (when present), keeping the
    /// batch's order among equal times. Rows with a NULL `time` go to
    /// `date=1970-01-01/hour=00` (see [`PartitionKey::EPOCH`]); negative and
    /// out-of-range times are filed as [`PartitionKey::from_unix_seconds`]
    /// says. Paths are returned oldest partition first. An empty batch writes
    /// nothing and returns an empty list.
    ///
    /// Each file is atomic: it is either absent or whole. The set is not: if
    /// the second of two partitions fails, the first stays published and the
    /// error does not list it.
    pub fn persist(&self, table: &str, batch: &RecordBatch) -> Result<Vec<PathBuf>, PersistError> {
        self.persist_tagged(table, batch, None)
    }

    /// Like [`ParquetPersister::persist`], with `tag` appended to every file
    /// stem: `<stem>-<tag>.parquet`. The storage layer uses it to name the WAL
    /// sequence range a file holds (see [`crate::storage`]); `tag` must be a
    /// plain name fragment (no `/`, no leading `.`).
    pub fn persist_tagged(
        &self,
        table: &str,
        batch: &RecordBatch,
        tag: Option<&str>,
    ) -> Result<Vec<PathBuf>, PersistError> {
        self.persist_run_tagged(table, std::slice::from_ref(batch), tag)
    }

    /// Like [`ParquetPersister::persist_tagged`] for the concatenation of
    /// `batches` (which must share one schema), without concatenating them
    /// when they are already in time order: each file is then written from
    /// slices of the batches, and no row is copied before encoding.
    pub fn persist_run_tagged(
        &self,
        table: &str,
        batches: &[RecordBatch],
        tag: Option<&str>,
    ) -> Result<Vec<PathBuf>, PersistError> {
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            validate_table_name(table)?;
            return Ok(Vec::new());
        };
        self.persist_logged_run_tagged(table, schema, batches, tag)
    }

    /// [`ParquetPersister::persist_run_tagged`] for batches as the WAL logged
    /// them: a batch may hold a text or binary column of `schema` as a
    /// dictionary (see `wal/dictionary.rs`). Such a column is written from
    /// its dictionaries where Parquet would dictionary-encode it without
    /// statistics (see `parquet_persister/dictionary_chunk.rs`), and as
    /// its plain values otherwise; the file has `schema` either way.
    pub(crate) fn persist_logged_run_tagged(
        &self,
        table: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
        tag: Option<&str>,
    ) -> Result<Vec<PathBuf>, PersistError> {
        validate_table_name(table)?;
        for batch in batches {
            time_column(table, batch)?;
        }
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let properties = self.writer_properties(&schema)?;
        let parts = split_run_by_hour(table, &schema, batches)?;

        // Two phases: every part is written and fsynced under its temporary
        // name first, then all are renamed. A failure while writing (a full
        // disk) therefore publishes nothing, and a caller that retries the
        // same rows cannot store a part twice.
        let mut staged = Vec::with_capacity(parts.len());
        for (key, part) in &parts {
            let dir = partition_dir(&self.data_dir, table, *key);
            staged.push(self.stage_file(&dir, schema.clone(), part, properties.clone(), tag)?);
        }
        let mut published: Vec<PathBuf> = Vec::with_capacity(parts.len());
        for (file, (key, part)) in staged.into_iter().zip(&parts) {
            let final_path = file.final_path.clone();
            if let Err(err) = file.publish() {
                // Take back what this call already published, so that the
                // call as a whole either stores the rows or does not.
                // (The failing file itself may be in place if only the
                // directory fsync failed; its name is unique, so removing it
                // cannot touch anything else.)
                for path in published.iter().chain([&final_path]) {
                    let _ = std::fs::remove_file(path);
                }
                return Err(err);
            }
            tracing::debug!(
                table,
                partition = %key,
                rows = part.iter().map(RecordBatch::num_rows).sum::<usize>(),
                path = %final_path.display(),
                "published parquet file"
            );
            published.push(final_path);
        }
        Ok(published)
    }

    /// The Parquet writer settings for a batch with `schema`.
    fn writer_properties(&self, schema: &Schema) -> Result<WriterProperties, PersistError> {
        let options = &self.options;
        let level =
            ZstdLevel::try_new(options.zstd_level).map_err(|err| PersistError::InvalidOptions {
                reason: format!("zstd_level {}: {err}", options.zstd_level),
            })?;
        if options.max_row_group_rows == 0 {
            return Err(PersistError::InvalidOptions {
                reason: "max_row_group_rows must be at least 1".to_string(),
            });
        }
        if options.encoding_threads == 0 {
            return Err(PersistError::InvalidOptions {
                reason: "encoding_threads must be at least 1".to_string(),
            });
        }
        if options.dictionary_page_bytes == 0 {
            return Err(PersistError::InvalidOptions {
                reason: "dictionary_page_bytes must be at least 1".to_string(),
            });
        }
        let statistics = if options.page_statistics {
            EnabledStatistics::Page
        } else {
            EnabledStatistics::Chunk
        };
        let mut builder = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_dictionary_enabled(options.dictionary)
            .set_dictionary_page_size_limit(options.dictionary_page_bytes)
            .set_statistics_enabled(statistics)
            .set_max_row_group_row_count(Some(options.max_row_group_rows))
            .set_sorting_columns(sorting_columns(schema));
        let unordered = schema
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .filter(|name| UNORDERED_COLUMNS.contains(name));
        for name in unbounded_text_columns(schema).chain(unordered) {
            builder = builder
                .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None);
        }
        if options.delta_encodings {
            for (name, encoding) in delta_encoded_columns(schema) {
                let column = ColumnPath::from(name);
                builder = builder
                    .set_column_dictionary_enabled(column.clone(), false)
                    .set_column_encoding(column, encoding);
            }
        }
        Ok(builder.build())
    }

    /// Writes one already sorted, single-hour `batch` of `table` as a new file
    /// in `dir` (any directory under the data dir, e.g. compaction's staging
    /// area), named `<stem>[-<tag>].parquet`, published atomically.
    pub(crate) fn write_sorted_part(
        &self,
        table: &str,
        dir: &Path,
        batch: &RecordBatch,
        tag: Option<&str>,
    ) -> Result<PathBuf, PersistError> {
        validate_table_name(table)?;
        let properties = self.writer_properties(&batch.schema())?;
        self.write_file(dir, batch, properties, tag)
    }

    /// Writes `batch` as a new file in `dir` and publishes it atomically.
    fn write_file(
        &self,
        dir: &Path,
        batch: &RecordBatch,
        properties: WriterProperties,
        tag: Option<&str>,
    ) -> Result<PathBuf, PersistError> {
        let staged = self.stage_file(
            dir,
            batch.schema(),
            std::slice::from_ref(batch),
            properties,
            tag,
        )?;
        let final_path = staged.final_path.clone();
        staged.publish()?;
        Ok(final_path)
    }

    /// Writes and fsyncs `parts` (in order, one schema) as one file under a
    /// temporary name in `dir`, ready to be published under its final name.
    fn stage_file(
        &self,
        dir: &Path,
        schema: SchemaRef,
        parts: &[RecordBatch],
        properties: WriterProperties,
        tag: Option<&str>,
    ) -> Result<StagedFile, PersistError> {
        create_private_dir_all(&self.data_dir, dir).map_err(io_error("creating directory", dir))?;

        let final_name = match tag {
            Some(tag) => format!("{}-{tag}.parquet", unique_file_stem()),
            None => format!("{}.parquet", unique_file_stem()),
        };
        let final_path = dir.join(&final_name);
        let temp_path = dir.join(crate::publish::temp_name(&final_name));
        let file = create_private_file(&temp_path)
            .map_err(io_error("creating temporary file", &temp_path))?;
        // From here on, any early return removes the temporary file.
        let temp = TempFileGuard::new(temp_path);
        let parquet_error = |source| PersistError::Parquet {
            path: temp.path().to_path_buf(),
            source,
        };

        let rows: usize = parts.iter().map(RecordBatch::num_rows).sum();
        let threads = if rows >= PARALLEL_MIN_ROWS {
            self.options.encoding_threads
        } else {
            1
        };
        // Every file goes column by column, on one thread or more, so that
        // the file does not depend on the number of threads, and so that
        // columns `dictionary_chunk` writes (WAL dictionaries among them,
        // which ArrowWriter::write would refuse) are written by it always.
        let writer =
            ArrowWriter::try_new(file, schema.clone(), Some(properties)).map_err(parquet_error)?;
        let max_rows = self.options.max_row_group_rows;
        let file = write_columns_side_by_side(writer, &schema, parts, max_rows, threads)
            .map_err(parquet_error)?;
        file.sync_all()
            .map_err(io_error("fsyncing temporary file", temp.path()))?;
        drop(file);
        Ok(StagedFile { temp, final_path })
    }
}

/// Fewer rows than this are encoded on the calling thread: starting
/// threads would cost more than they save.
const PARALLEL_MIN_ROWS: usize = 8 * 1024;

/// Writes `parts` (of `schema`, in order) through `writer`, with row groups
/// of `max_rows` rows cut as [`ArrowWriter::write`] cuts them, each row
/// group's columns shared out among `threads` threads, and returns the
/// inner writer once the footer is written. Each column is encoded by one
/// thread from start to end, so the file is the same for any number of
/// threads; only the order in which columns are computed changes. The
/// chunks are appended in column order.
///
/// `parts` may hold text columns of `schema` as WAL dictionaries. A column
/// that Parquet would write dictionary-encoded without statistics, text
/// that every slice of a row group holds so, or integers, is written by
/// [`dictionary_chunk`]; any other is encoded by the parquet crate.
fn write_columns_side_by_side<W: std::io::Write + Send>(
    writer: ArrowWriter<W>,
    schema: &Schema,
    parts: &[RecordBatch],
    max_rows: usize,
    threads: usize,
) -> Result<W, ParquetError> {
    if parts.is_empty() {
        return writer.into_inner();
    }
    let (mut file, factory) = writer.into_serialized_writer()?;
    let properties = file.properties().clone();
    let leaves = file.schema_descr().columns().to_vec();
    for (row_group, slices) in row_group_slices(parts, max_rows.max(1))
        .into_iter()
        .enumerate()
    {
        let mut writers = factory.create_column_writers(row_group)?.into_iter();
        // One job per leaf column: its values over the row group's slices.
        let mut jobs: Vec<ColumnJob> = Vec::new();
        for (index, field) in schema.fields().iter().enumerate() {
            // The field's leaves from the first slice open jobs; the same
            // leaves of later slices join them.
            let first_job = jobs.len();
            let from_dictionaries = leaves.get(first_job).filter(|leaf| {
                !field.data_type().is_nested()
                    && dictionary_chunk::eligible(&properties, leaf)
                    && slices
                        .iter()
                        .all(|slice| dictionary_chunk::takes(leaf, slice.column(index)))
            });
            if let Some(leaf) = from_dictionaries {
                let writer = writers.next().ok_or_else(|| {
                    ParquetError::General("more leaf columns than column writers".into())
                })?;
                let columns: Vec<ArrayRef> = slices
                    .iter()
                    .map(|slice| slice.column(index).clone())
                    .collect();
                jobs.push(ColumnJob {
                    order: jobs.len(),
                    // Keys are looked up and bit-packed, a few ns a row.
                    cost: columns.iter().map(|column| column.len()).sum(),
                    writer,
                    values: JobValues::Dictionaries {
                        field: field.clone(),
                        leaf: leaf.clone(),
                        properties: properties.clone(),
                        columns,
                    },
                });
                continue;
            }
            for slice in &slices {
                let column = slice.column(index);
                for (n, leaf) in compute_leaves(field, column)?.into_iter().enumerate() {
                    if let Some(job) = jobs.get_mut(first_job + n) {
                        job.cost += encoding_cost(column.as_ref());
                        if let JobValues::Leaves(leaves) = &mut job.values {
                            leaves.push(leaf);
                        }
                        continue;
                    }
                    let writer = writers.next().ok_or_else(|| {
                        ParquetError::General("more leaf columns than column writers".into())
                    })?;
                    jobs.push(ColumnJob {
                        order: jobs.len(),
                        cost: encoding_cost(column.as_ref()),
                        writer,
                        values: JobValues::Leaves(vec![leaf]),
                    });
                }
            }
        }
        // The costliest columns first, each to the least loaded thread.
        jobs.sort_by_key(|job| (std::cmp::Reverse(job.cost), job.order));
        let mut shares: Vec<(usize, Vec<ColumnJob>)> =
            (0..threads).map(|_| (0, Vec::new())).collect();
        for job in jobs {
            if let Some((load, share)) = shares.iter_mut().min_by_key(|(load, _)| *load) {
                *load += job.cost;
                share.push(job);
            }
        }
        let mut shares = shares
            .into_iter()
            .map(|(_, share)| share)
            .filter(|share| !share.is_empty());
        let own = shares.next().unwrap_or_default();
        let mut chunks = std::thread::scope(|scope| {
            let others: Vec<_> = shares
                .map(|share| scope.spawn(move || ColumnJob::encode_all(share)))
                .collect();
            let mut chunks = ColumnJob::encode_all(own)?;
            for other in others {
                let encoded = other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                chunks.extend(encoded);
            }
            Ok::<_, ParquetError>(chunks)
        })?;
        chunks.sort_by_key(|(order, _)| *order);
        let mut group = file.next_row_group()?;
        for (_, chunk) in chunks {
            match chunk {
                EncodedChunk::Arrow(chunk) => chunk.append_to_row_group(&mut group)?,
                EncodedChunk::Dictionary(chunk) => {
                    group.append_column(&chunk.bytes, chunk.close)?
                }
            }
        }
        group.close()?;
    }
    file.into_inner()
}

/// One leaf column of a row group, to be encoded on some thread.
struct ColumnJob {
    /// Its place in the row group.
    order: usize,
    /// See [`encoding_cost`].
    cost: usize,
    writer: ArrowColumnWriter,
    values: JobValues,
}

/// What a [`ColumnJob`] encodes.
enum JobValues {
    /// Leaf values, for parquet's writer.
    Leaves(Vec<ArrowLeafColumn>),
    /// A flat column's values (WAL dictionaries for text), one array per
    /// slice, for [`dictionary_chunk::encode`]; parquet's writer takes them
    /// (through `field`) when that declines.
    Dictionaries {
        field: FieldRef,
        leaf: ColumnDescPtr,
        properties: WriterPropertiesPtr,
        columns: Vec<ArrayRef>,
    },
}

/// A column chunk ready to append to its row group.
enum EncodedChunk {
    /// Encoded by parquet's writer.
    Arrow(ArrowColumnChunk),
    /// Written by [`dictionary_chunk`].
    Dictionary(dictionary_chunk::DictionaryChunk),
}

impl ColumnJob {
    /// Encodes each job's values, returning the chunks with their places.
    fn encode_all(jobs: Vec<ColumnJob>) -> Result<Vec<(usize, EncodedChunk)>, ParquetError> {
        jobs.into_iter()
            .map(|job| Ok((job.order, job.encode()?)))
            .collect()
    }

    fn encode(mut self) -> Result<EncodedChunk, ParquetError> {
        match self.values {
            JobValues::Leaves(leaves) => {
                for leaf in &leaves {
                    self.writer.write(leaf)?;
                }
            }
            JobValues::Dictionaries {
                field,
                leaf,
                properties,
                columns,
            } => {
                if let Some(chunk) = dictionary_chunk::encode(leaf, &columns, &properties)? {
                    return Ok(EncodedChunk::Dictionary(chunk));
                }
                for column in &columns {
                    for leaf in compute_leaves(&field, column)? {
                        self.writer.write(&leaf)?;
                    }
                }
            }
        }
        Ok(EncodedChunk::Arrow(self.writer.close()?))
    }
}

/// `parts` cut into row groups of `max_rows` rows (the last may be
/// shorter), each as slices of the parts it spans, as [`ArrowWriter`] cuts
/// the batches written to it. Empty parts are skipped.
fn row_group_slices(parts: &[RecordBatch], max_rows: usize) -> Vec<Vec<RecordBatch>> {
    let mut groups = Vec::new();
    let mut current: Vec<RecordBatch> = Vec::new();
    let mut room = max_rows;
    for part in parts {
        let mut offset = 0;
        while offset < part.num_rows() {
            let take = room.min(part.num_rows() - offset);
            current.push(part.slice(offset, take));
            offset += take;
            room -= take;
            if room == 0 {
                groups.push(std::mem::take(&mut current));
                room = max_rows;
            }
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// A rough cost of encoding `column`, to share columns out evenly: a few
/// units per value, plus the bytes of variable-length values, which are
/// hashed into the dictionary. A column of NULLs costs next to nothing.
fn encoding_cost(column: &dyn Array) -> usize {
    let rows = column.len();
    if column.null_count() == rows {
        return rows / 64;
    }
    let offsets = match column.data_type() {
        DataType::Utf8 => Some(column.as_string::<i32>().offsets()),
        DataType::Binary => Some(column.as_binary::<i32>().offsets()),
        _ => None,
    };
    // Offsets hold one more entry than there are values, so never none.
    let bytes = offsets.map_or(0, |o| o[o.len() - 1] - o[0]);
    16 * rows + usize::try_from(bytes).unwrap_or(0)
}

/// A complete, fsynced file under its temporary name. Dropping it removes it.
struct StagedFile {
    temp: TempFileGuard,
    final_path: PathBuf,
}

impl StagedFile {
    /// Renames the file to its final name and fsyncs the directory.
    fn publish(self) -> Result<(), PersistError> {
        self.temp.publish(&self.final_path).map_err(io_error(
            "publishing (rename + directory fsync)",
            &self.final_path,
        ))
    }
}

/// A closure mapping an `io::Error` to [`PersistError::Io`] for `op` on `path`.
fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Rejects table names that are not one plain directory name, so that a
/// table can never write outside its own directory under the data dir.
pub(crate) fn validate_table_name(table: &str) -> Result<(), PersistError> {
    let reason = if table.is_empty() {
        Some("it is empty")
    } else if table.starts_with('.') {
        Some("it starts with '.' (hidden names are reserved for temporary files)")
    } else if table.contains(['/', '\\', '\0']) {
        Some("it contains a path separator or NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PersistError::InvalidTableName {
            table: table.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The batch's `time` column, which must exist and be Int64.
pub(crate) fn time_column<'a>(
    table: &str,
    batch: &'a RecordBatch,
) -> Result<&'a Int64Array, PersistError> {
    let column =
        batch
            .column_by_name(TIME_COLUMN)
            .ok_or_else(|| PersistError::MissingTimeColumn {
                table: table.to_string(),
            })?;
    column
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| PersistError::TimeColumnType {
            table: table.to_string(),
            data_type: column.data_type().clone(),
        })
}

/// The columns of `schema` that get a delta encoding, with that encoding.
///
/// A column is only chosen when its type suits the encoding (an `eid` that
/// is not a string keeps the defaults), and only at the top level, where the
/// Arrow field name is the Parquet column path.
fn delta_encoded_columns(schema: &Schema) -> impl Iterator<Item = (&str, Encoding)> {
    schema.fields().iter().filter_map(|field| {
        let name = field.name().as_str();
        let integer = matches!(
            field.data_type(),
            DataType::Int32
                | DataType::Int64
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Timestamp(_, _)
        );
        let string = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
        );
        if integer && DELTA_INTEGER_COLUMNS.contains(&name) {
            Some((name, Encoding::DELTA_BINARY_PACKED))
        } else if string && DELTA_STRING_COLUMNS.contains(&name) {
            Some((name, Encoding::DELTA_BYTE_ARRAY))
        } else {
            None
        }
    })
}

/// The text columns that carry the kernel's free text: those with a
/// `<name>_bytes` raw-bytes sidecar ([`RAW_BYTES_SUFFIX`]) (`path`, `filename`, `cmdline`, …).
/// Their statistics are not written (see the module doc); the sidecars keep
/// theirs, whose null counts tell a reader which files hold non-UTF-8 text.
fn unbounded_text_columns(schema: &Schema) -> impl Iterator<Item = &str> {
    schema.fields().iter().filter_map(move |field| {
        let name = field.name().as_str();
        let text = matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8);
        let sidecar = format!("{name}{RAW_BYTES_SUFFIX}");
        (text && schema.field_with_name(&sidecar).is_ok()).then_some(name)
    })
}

/// The sort order the files are written in, declared in the Parquet metadata
/// so that readers (DataFusion) can rely on it without re-sorting.
///
/// Parquet's `column_idx` counts leaf columns, which equals the Arrow field
/// index only while no nested field comes first; otherwise nothing is
/// declared rather than something wrong.
fn sorting_columns(schema: &Schema) -> Option<Vec<SortingColumn>> {
    let mut declared = Vec::new();
    for name in [TIME_COLUMN, TIME_NS_COLUMN] {
        let Ok(index) = schema.index_of(name) else {
            break;
        };
        let flat_prefix = schema.fields()[..=index]
            .iter()
            .all(|field| !field.data_type().is_nested());
        let Ok(column_idx) = i32::try_from(index) else {
            break;
        };
        if !flat_prefix {
            break;
        }
        declared.push(SortingColumn {
            column_idx,
            descending: false,
            nulls_first: true,
        });
    }
    (!declared.is_empty()).then_some(declared)
}

/// Sorts `batch` by `time`, `time_ns`, original position, and splits it into
/// one batch per hour partition, oldest partition first.
///
/// A batch that is already in that order (events mostly arrive in time
/// order) is not copied: each part is a slice of it. Sorting and gathering
/// a 128 Ki-row batch otherwise cost a fifth of a roll.
pub(crate) fn split_by_hour(
    table: &str,
    batch: &RecordBatch,
    time: &Int64Array,
) -> Result<Vec<(PartitionKey, RecordBatch)>, PersistError> {
    let arrow_error = |source| PersistError::Arrow {
        table: table.to_string(),
        source,
    };
    if let Some(sorted) = sorted_batch(batch) {
        return Ok(sorted
            .hours
            .into_iter()
            .map(|(key, rows)| (key, batch.slice(rows.start, rows.len())))
            .collect());
    }
    let rows = u32::try_from(batch.num_rows()).map_err(|_| PersistError::BatchTooLarge {
        table: table.to_string(),
        rows: batch.num_rows(),
    })?;

    // NULLs first matches the `nulls_first` declared in the file metadata.
    let ascending = Some(SortOptions {
        descending: false,
        nulls_first: true,
    });
    let mut sort_columns = vec![SortColumn {
        values: Arc::new(time.clone()) as ArrayRef,
        options: ascending,
    }];
    if let Some(time_ns) = batch.column_by_name(TIME_NS_COLUMN) {
        sort_columns.push(SortColumn {
            values: Arc::clone(time_ns),
            options: ascending,
        });
    }
    // Arrow's sort is unstable; the original position as the last key makes
    // rows with equal times keep the order they arrived in.
    sort_columns.push(SortColumn {
        values: Arc::new(UInt32Array::from_iter_values(0..rows)),
        options: ascending,
    });
    let order = lexsort_to_indices(&sort_columns, None).map_err(arrow_error)?;

    // Walking rows in sorted order keeps each partition's list sorted too.
    let mut partitions: BTreeMap<PartitionKey, Vec<u32>> = BTreeMap::new();
    let mut current: Option<(Option<i64>, PartitionKey)> = None;
    for &row in order.values() {
        let row_index = row as usize;
        // Sorted input means long runs in one hour; the key is only
        // recomputed when the hour changes.
        let hour = (!time.is_null(row_index)).then(|| time.value(row_index).div_euclid(3_600));
        let key = match current {
            Some((current_hour, key)) if current_hour == hour => key,
            _ => {
                let key = match hour {
                    Some(_) => PartitionKey::from_unix_seconds(time.value(row_index)),
                    None => PartitionKey::EPOCH,
                };
                current = Some((hour, key));
                key
            }
        };
        partitions.entry(key).or_default().push(row);
    }

    partitions
        .into_iter()
        .map(|(key, rows)| {
            let part = take_record_batch(batch, &UInt32Array::from(rows)).map_err(arrow_error)?;
            Ok((key, part))
        })
        .collect()
}

/// The values of a `time` or `time_ns` column as plain `i64`s, when it has
/// no NULLs and one of the types stored that way.
fn plain_i64_values(array: &ArrayRef) -> Option<&[i64]> {
    if array.null_count() > 0 {
        return None;
    }
    match array.data_type() {
        DataType::Int64 => Some(array.as_primitive::<Int64Type>().values()),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Some(array.as_primitive::<TimestampNanosecondType>().values())
        }
        _ => None,
    }
}

/// A batch already sorted by `time` then `time_ns`: its first and last
/// `(time, time_ns)`, and its rows' hour partitions as ranges, oldest first.
struct SortedBatch {
    first: (i64, i64),
    last: (i64, i64),
    hours: Vec<(PartitionKey, std::ops::Range<usize>)>,
}

/// `batch` as a [`SortedBatch`], or `None` if it is not sorted, or has NULL
/// times (the sort then decides where they go), or no rows.
fn sorted_batch(batch: &RecordBatch) -> Option<SortedBatch> {
    let time = plain_i64_values(batch.column_by_name(TIME_COLUMN)?)?;
    let time_ns = match batch.column_by_name(TIME_NS_COLUMN) {
        Some(column) => Some(plain_i64_values(column)?),
        None => None,
    };
    let key_at = |row: usize| (time[row], time_ns.map_or(0, |ns| ns[row]));
    let in_order = match time_ns {
        Some(ns) => time
            .windows(2)
            .zip(ns.windows(2))
            .all(|(t, n)| (t[0], n[0]) <= (t[1], n[1])),
        None => time.windows(2).all(|t| t[0] <= t[1]),
    };
    if !in_order || time.is_empty() {
        return None;
    }
    let mut hours: Vec<(PartitionKey, std::ops::Range<usize>)> = Vec::new();
    let mut start = 0;
    while start < time.len() {
        let next_hour = time[start]
            .div_euclid(3_600)
            .checked_add(1)
            .and_then(|hour| hour.checked_mul(3_600));
        let end = next_hour.map_or(time.len(), |bound| {
            start + time[start..].partition_point(|&t| t < bound)
        });
        let key = PartitionKey::from_unix_seconds(time[start]);
        // Out-of-range times clamp to one partition: merge its hours.
        match hours.last_mut() {
            Some((last, rows)) if *last == key => rows.end = end,
            _ => hours.push((key, start..end)),
        }
        start = end;
    }
    Some(SortedBatch {
        first: key_at(0),
        last: key_at(time.len() - 1),
        hours,
    })
}

/// Splits a run of batches with one schema by hour, as [`split_by_hour`]
/// splits their concatenation: each partition's rows in order, as the
/// slices that hold them.
///
/// When every batch is sorted and each starts no earlier than the one
/// before it ends (a roll of batches that arrived in time order), no row is
/// copied; otherwise the run is concatenated and sorted.
pub(crate) fn split_run_by_hour(
    table: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<(PartitionKey, Vec<RecordBatch>)>, PersistError> {
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(parts) = sorted_run_by_hour(&batches) {
        return Ok(parts);
    }
    let arrow_error = |source| PersistError::Arrow {
        table: table.to_string(),
        source,
    };
    // Rows are about to be copied anyway: WAL dictionaries become plain
    // values, so that every batch has `schema`.
    let plain = batches
        .iter()
        .map(|batch| cast_to_schema(batch, schema))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow_error)?;
    let combined = arrow::compute::concat_batches(schema, &plain).map_err(arrow_error)?;
    let time = time_column(table, &combined)?;
    Ok(split_by_hour(table, &combined, time)?
        .into_iter()
        .map(|(key, part)| (key, vec![part]))
        .collect())
}

/// `batch` in `schema`: every column whose type differs from its field's
/// (a WAL dictionary where the table has text, plain text where a scan
/// wants views) cast to it. The columns must match the fields in number
/// and order.
pub fn cast_to_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                arrow::compute::cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// The rows of `batches` by hour as slices, if every batch is sorted and
/// each starts no earlier than the one before it ends; `None` otherwise.
fn sorted_run_by_hour(batches: &[&RecordBatch]) -> Option<Vec<(PartitionKey, Vec<RecordBatch>)>> {
    let mut parts: Vec<(PartitionKey, Vec<RecordBatch>)> = Vec::new();
    let mut previous_last = None;
    for batch in batches {
        let sorted = sorted_batch(batch)
            .filter(|sorted| previous_last.is_none_or(|last| last <= sorted.first))?;
        previous_last = Some(sorted.last);
        for (key, rows) in sorted.hours {
            let slice = batch.slice(rows.start, rows.len());
            match parts.last_mut() {
                Some((last, slices)) if *last == key => slices.push(slice),
                _ => parts.push((key, vec![slice])),
            }
        }
    }
    Some(parts)
}

mod dictionary_chunk;

#[cfg(test)]
mod tests;
