//! `sluice bench firehose`: how many events a host can take, and what each
//! costs, end to end.
//!
//! A run is the real pipeline, in this process: the seeded generator
//! ([`sluice_ingest::synthetic`]), on a thread of its own as the kernel and
//! `eslogger` are, makes events, either as eslogger JSON lines that the
//! decoder parses (`json`) or as drawn events the pipeline turns into the
//! decoded rows themselves (`rows`, which skips parsing); the gates admit
//! them; the builders make
//! Arrow batches; a bounded queue hands the batches to a writer thread that
//! appends them to [`Storage`] (write-ahead log, hot tail, zstd Parquet),
//! the path `sluice ingest` takes. When the producer is done the storage is
//! flushed, the files are measured, and the standard analyst queries run
//! over them through the same catalog `sluice query` uses.
//!
//! Two kinds of run:
//! - **max**: the source never waits for a clock and the queue blocks
//!   instead of dropping, so the run shows the ceiling;
//! - **fixed**: the source is paced to an offered rate (the seed rate,
//!   1M events a minute, and multiples), the pipeline offers batches as a live source
//!   does: what does not fit in the queue's memory budget is dropped and
//!   counted, and how far the source falls behind its schedule is lag.
//!
//! With the `rocksdb-baseline` feature the same producer feeds a store laid
//! out the way osquery keeps events (see [`super::baseline`]), so both sets
//! of figures come from the same events on the same machine.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_ingest::backpressure::{BatchQueue, TableBatch};
use sluice_ingest::eslogger::EsloggerDecoder;
use sluice_ingest::gates::config::GatesConfig;
use sluice_ingest::gates::{GateConfigError, Gates};
use sluice_ingest::replay::ReplayOptions;
use sluice_ingest::synthetic::{
    DirectRows, DrawnEvent, EsloggerFirehose, EventMix, KINDS, RowRenderer,
};
use sluice_schemas::{ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS, TableDef};
use sluice_sinks::object_store::StoreLocation;
use sluice_sinks::{
    FsyncPolicy, PersistOptions, Storage, StorageError, StorageOptions, WalOptions,
};

use super::report::{
    FirehoseReport, Latency, QueryTiming, RunReport, Sample, StorageSettings, TableBytes,
    dir_bytes, proc_status_bytes, process_cpu, reset_peak_rss, resident_bytes, thread_cpu,
};
use super::upload::RunUpload;
use crate::config::SourcesConfig;

/// 1M events a minute: what a busy Mac's ES firehose offers with
/// NOTIFY_OPEN on.
pub const SEED_RATE: f64 = 1_000_000.0 / 60.0;

/// The two tables the firehose feeds.
const TABLES: [&TableDef; 2] = [&ES_PROCESS_EVENTS, &ES_PROCESS_FILE_EVENTS];

/// Arguments of `sluice bench firehose`. Without any, the run takes well
/// under two minutes on a 2-core machine.
#[derive(Debug, Clone, clap::Args)]
pub struct FirehoseArgs {
    /// Which sources to run: decoded rows (no JSON), eslogger JSON, or both.
    #[arg(long, value_enum, default_value = "both")]
    pub source: SourceChoice,
    /// Events of the maximum-rate run from decoded rows.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Events of the maximum-rate run from eslogger JSON [default: a
    /// quarter of --events].
    #[arg(long)]
    pub json_events: Option<u64>,
    /// Offered rates of the fixed-rate runs, as multiples of the seed rate
    /// (1M events a minute); `0` alone runs none.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub rate_multiples: Vec<f64>,
    /// Length of each fixed-rate run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration_secs: f64,
    /// The generator's seed: the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The event mix, `kind=weight,…` over open, close, write, create,
    /// rename, unlink, exec, fork, exit, or `default`.
    #[arg(long, default_value = "default", value_parser = EventMix::parse)]
    pub mix: EventMix,
    /// Processes in the generator's population: half of them live
    /// throughout, the other half are replaced as processes fork (a new
    /// pid) and exec (a new image).
    #[arg(long, default_value_t = 64)]
    pub processes: usize,
    /// Gate with the shipping defaults (open events off, noisy daemons
    /// muted) instead of keeping every event.
    #[arg(long)]
    pub default_gates: bool,
    /// Where the runs store their data [default: a new directory under the
    /// system's temporary directory, removed at the end].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the data of the runs (under --data-dir, or the temporary one).
    #[arg(long)]
    pub keep: bool,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also draw throughput and memory over time as an SVG chart to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Do not benchmark: write --events eslogger JSON lines of the
    /// generator to FILE (for `sluice ingest FILE` later) and stop.
    #[arg(long, value_name = "FILE")]
    pub write_jsonl: Option<PathBuf>,
    /// The WAL's fsync policy: `batch`, `interval:<ms>` or `off`.
    #[arg(long, value_name = "POLICY", default_value = "batch")]
    pub wal_fsync: FsyncPolicy,
    /// Roll a table to Parquet once it holds this many MiB of Arrow memory.
    /// (32 MiB rolls and a 32 MiB queue keep peak RSS at maximum rate near
    /// 360 MiB; 64 and 64 took it past 512 MiB at the same speed.)
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    pub roll_mib: usize,
    /// … or once its oldest batch is this many seconds old.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub roll_age_secs: f64,
    /// Memory budget of the queue between producer and writer, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    pub memory_budget_mib: usize,
    /// Rows per batch handed to the writer (over both tables).
    #[arg(long, default_value_t = ReplayOptions::default().batch_rows)]
    pub batch_rows: usize,
    /// Threads that encode one Parquet file's columns side by side; 1
    /// encodes them one after another on the roller's thread [default: the
    /// host's cores, at most 4, as sluice ships].
    #[arg(long, value_name = "N")]
    pub encoding_threads: Option<usize>,
    /// Skip the RocksDB baseline even when it is built in.
    #[arg(long)]
    pub no_baseline: bool,
    /// Also copy each sluice run's Parquet files to this object store
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///…`) under
    /// `<run>/`, during the run, as the daemon's `[upload]` does, and report
    /// how long after the run the store held them all. Credentials and
    /// endpoint come from the store's usual environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, …). The local files stay, for
    /// the analyst queries.
    #[arg(long, value_name = "URL")]
    pub upload: Option<String>,
    /// Spread the event times of the maximum-rate runs evenly over this
    /// many hours before now, instead of moving at the seed rate, so that
    /// the data covers many hour partitions (for measuring time pruning
    /// with `--keep`).
    #[arg(long, value_name = "HOURS")]
    pub history_hours: Option<f64>,
}

/// Which sources to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceChoice {
    /// Decoded rows, straight into the builders.
    Rows,
    /// eslogger JSON lines, through the decoder.
    Json,
    /// Both.
    Both,
}

/// Where events come from in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Decoded rows.
    Rows,
    /// eslogger JSON.
    Json,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Rows => "rows",
            Source::Json => "json",
        }
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag's value is unusable.
    #[error("{0}")]
    Usage(String),
    /// The gates could not be built.
    #[error(transparent)]
    Gates(#[from] GateConfigError),
    /// Building a batch failed.
    #[error("building a batch failed: {0}")]
    Arrow(#[from] ArrowError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An analyst query failed.
    #[error("query {name}: {message}")]
    Query {
        /// The query's name.
        name: String,
        /// What failed.
        message: String,
    },
    /// The baseline store failed.
    #[error("rocksdb baseline: {0}")]
    Baseline(String),
    /// The object store of `--upload` did not take the files.
    #[error("upload to {0}")]
    Upload(String),
}

/// A store the writer thread appends batches to: sluice's [`Storage`], or
/// the RocksDB baseline.
pub(crate) trait EventStore: Sync {
    /// Stores one batch; `Ok` once it is acknowledged (durable per the
    /// store's policy, and readable).
    fn append(&self, table: &'static TableDef, batch: RecordBatch) -> Result<(), BenchError>;
    /// Stores every batch `batches` yields, in order, and hands each
    /// one's table, rows and outcome to `acked` in the same order. The
    /// default appends them one by one; sluice's storage encodes the next
    /// batch while it waits for this one's fsync.
    fn append_all(
        &self,
        batches: &mut (dyn Iterator<Item = (&'static TableDef, RecordBatch)> + Send),
        acked: &mut dyn FnMut(&'static TableDef, u64, Result<(), BenchError>),
    ) {
        for (table, batch) in batches {
            let rows = batch.num_rows() as u64;
            acked(table, rows, self.append(table, batch));
        }
    }
    /// Periodic upkeep (rolls by age, fsync intervals).
    fn maintain(&self);
    /// Batches of `table` not yet in long-term files, for stores that have
    /// such a stage (sluice's hot tail); `None` otherwise.
    fn pending_batches(&self, table: &str) -> Option<usize>;
    /// Everything to its final form, at the end of a run.
    fn flush(&self) -> Result<(), BenchError>;
}

impl EventStore for Storage {
    fn append(&self, table: &'static TableDef, batch: RecordBatch) -> Result<(), BenchError> {
        Storage::append(self, table.name, batch)?;
        Ok(())
    }

    fn append_all(
        &self,
        batches: &mut (dyn Iterator<Item = (&'static TableDef, RecordBatch)> + Send),
        acked: &mut dyn FnMut(&'static TableDef, u64, Result<(), BenchError>),
    ) {
        let tagged = batches.map(|(table, batch)| (table.name, batch, table));
        Storage::append_all(self, tagged, |table, rows, result| {
            acked(
                table,
                rows as u64,
                result.map(|_| ()).map_err(BenchError::from),
            );
            true
        });
    }

    fn maintain(&self) {
        if let Err(err) = Storage::maintain(self) {
            tracing::warn!(error = %err, "storage maintenance failed");
        }
    }

    fn pending_batches(&self, table: &str) -> Option<usize> {
        Some(
            self.hot_tail()
                .stats()
                .into_iter()
                .find(|(name, _)| name == table)
                .map_or(0, |(_, s)| s.batches),
        )
    }

    fn flush(&self) -> Result<(), BenchError> {
        Storage::flush(self)?;
        Ok(())
    }
}

/// The settings every run of one invocation shares.
pub(crate) struct Settings {
    pub(crate) seed: u64,
    pub(crate) mix: EventMix,
    pub(crate) processes: usize,
    pub(crate) gates: GatesConfig,
    pub(crate) batch_rows: usize,
    pub(crate) queue_budget: usize,
    pub(crate) storage: StorageOptions,
    /// Maximum-rate runs spread their event times over this span before now.
    pub(crate) history: Option<Duration>,
}

/// What one run does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunSpec {
    pub(crate) source: Source,
    /// `None`: maximum rate.
    pub(crate) rate: Option<f64>,
    /// Events to generate.
    pub(crate) events: u64,
}

/// A run of events as the source thread hands them to the pipeline:
/// drawn events (rows) or eslogger lines (JSON). Chunks go back and forth,
/// so their buffers are reused.
#[derive(Default)]
struct Chunk {
    drawn: Vec<DrawnEvent>,
    /// The lines back to back, each with its newline.
    text: Vec<u8>,
    /// Where each line ends in `text`.
    line_ends: Vec<usize>,
}

impl Chunk {
    fn clear(&mut self) {
        self.drawn.clear();
        self.text.clear();
        self.line_ends.clear();
    }
}

/// Events per chunk at maximum rate. A drawn event is about 150 bytes and
/// a line about 3 KB, so a chunk of either stays well inside the cache it
/// is read from.
fn max_rate_chunk(source: Source) -> u64 {
    match source {
        Source::Rows => 1024,
        Source::Json => 128,
    }
}

/// Chunks between the source thread and the pipeline at once.
const CHUNKS_IN_FLIGHT: usize = 4;

/// What the source thread saw.
#[derive(Default)]
struct SourceOutcome {
    /// How far behind its schedule it fell at worst, and at the end.
    lag_max: Duration,
    lag_end: Duration,
    /// Its own CPU time: the generator's, which is not sluice's.
    cpu: Duration,
}

/// The source thread: the generator, standing in for the kernel (rows) or
/// for eslogger (JSON), on a thread of its own as each is. It makes
/// `spec.events` events in chunks, paced to the offered rate if there is
/// one, and stops early if the pipeline stops taking them.
fn make_events(
    mut firehose: EsloggerFirehose,
    spec: &RunSpec,
    chunk_events: u64,
    started: Instant,
    generated: &AtomicU64,
    full: mpsc::SyncSender<Chunk>,
    empty: mpsc::Receiver<Chunk>,
) -> SourceOutcome {
    let cpu_before = thread_cpu();
    let mut out = SourceOutcome::default();
    let mut made = 0;
    while made < spec.events {
        generated.store(made, Ordering::Relaxed);
        if let Some(rate) = spec.rate {
            let due = started + Duration::from_secs_f64(made as f64 / rate);
            let now = Instant::now();
            if now < due {
                std::thread::sleep(due - now);
                out.lag_end = Duration::ZERO;
            } else {
                out.lag_end = now - due;
                out.lag_max = out.lag_max.max(out.lag_end);
            }
        }
        let count = chunk_events.min(spec.events - made);
        let mut chunk = empty.try_recv().unwrap_or_default();
        chunk.clear();
        match spec.source {
            Source::Rows => chunk.drawn.extend((0..count).map(|_| firehose.draw())),
            Source::Json => {
                for _ in 0..count {
                    firehose.next_line(&mut chunk.text);
                    chunk.line_ends.push(chunk.text.len());
                }
            }
        }
        if full.send(chunk).is_err() {
            break;
        }
        made += count;
    }
    generated.store(made, Ordering::Relaxed);
    out.cpu = thread_cpu().saturating_sub(cpu_before);
    out
}

/// Batches the pipeline's rows and offers them to the writer's queue: when
/// a batch is full, and when its oldest row has waited long enough.
struct Batcher<'a> {
    queue: &'a BatchQueue,
    /// One instant per queued batch, in order, for the writer's latencies.
    born_tx: mpsc::Sender<Instant>,
    /// A live (fixed-rate) run drops what does not fit; a max run waits.
    live: bool,
    batch_rows: usize,
    /// When the oldest row of the batch being built arrived.
    batch_born: Option<Instant>,
    /// Rows dropped because the queue was full.
    backpressure: u64,
}

impl Batcher<'_> {
    /// Called after each event with the rows now buffered; takes a batch
    /// with `take` once there are enough.
    #[inline]
    fn after_event(
        &mut self,
        buffered: usize,
        take: impl FnOnce() -> Result<Vec<TableBatch>, ArrowError>,
    ) -> Result<(), ArrowError> {
        if buffered == 0 {
            return Ok(());
        }
        let born = *self.batch_born.get_or_insert_with(Instant::now);
        if buffered >= self.batch_rows {
            self.batch_born = None;
            self.offer(take()?, born);
        }
        Ok(())
    }

    /// Takes a batch with `take` if its oldest row has waited `max_age`.
    fn flush_older_than(
        &mut self,
        max_age: Duration,
        take: impl FnOnce() -> Result<Vec<TableBatch>, ArrowError>,
    ) -> Result<(), ArrowError> {
        if self
            .batch_born
            .is_some_and(|born| born.elapsed() >= max_age)
        {
            self.flush(take)?;
        }
        Ok(())
    }

    /// Takes whatever is buffered.
    fn flush(
        &mut self,
        take: impl FnOnce() -> Result<Vec<TableBatch>, ArrowError>,
    ) -> Result<(), ArrowError> {
        if let Some(born) = self.batch_born.take() {
            self.offer(take()?, born);
        }
        Ok(())
    }

    fn offer(&mut self, batches: Vec<TableBatch>, born: Instant) {
        for item in batches {
            if self.live {
                match self.queue.try_push(item) {
                    Ok(()) => {
                        let _ = self.born_tx.send(born);
                    }
                    Err(full) => self.backpressure += full.0.1.num_rows() as u64,
                }
            } else {
                self.queue.push_blocking(item);
                let _ = self.born_tx.send(born);
            }
        }
    }
}

/// The pipeline's first stage: the row renderer (rows) or the decoder
/// (JSON), then the gates and the builders.
enum Producer {
    Rows {
        renderer: RowRenderer,
        rows: Box<DirectRows>,
    },
    Json {
        decoder: Box<EsloggerDecoder>,
        line_no: u64,
    },
}

impl Producer {
    fn new(
        settings: &Settings,
        spec: &RunSpec,
        firehose: &EsloggerFirehose,
    ) -> Result<Producer, BenchError> {
        let gates = Gates::new(&settings.gates)?;
        Ok(match spec.source {
            Source::Rows => Producer::Rows {
                renderer: firehose.row_renderer(),
                rows: Box::new(DirectRows::new(gates)),
            },
            Source::Json => Producer::Json {
                decoder: Box::new(EsloggerDecoder::with_gates(gates)),
                line_no: 0,
            },
        })
    }

    /// Takes every event of `chunk` into the builders, batching as it goes.
    fn consume(&mut self, chunk: &Chunk, batcher: &mut Batcher<'_>) -> Result<(), ArrowError> {
        match self {
            Producer::Rows { renderer, rows } => {
                for event in &chunk.drawn {
                    renderer.render(event, rows.as_mut());
                    batcher.after_event(rows.buffered_rows(), || rows.take_keyed_batches())?;
                }
            }
            Producer::Json { decoder, line_no } => {
                let mut start = 0;
                for &end in &chunk.line_ends {
                    let line = &chunk.text[start..end];
                    start = end;
                    *line_no += 1;
                    decoder.decode_line(line.strip_suffix(b"\n").unwrap_or(line), *line_no);
                    batcher
                        .after_event(decoder.buffered_rows(), || decoder.take_keyed_batches())?;
                }
            }
        }
        Ok(())
    }

    fn take_batches(&mut self) -> Result<Vec<TableBatch>, ArrowError> {
        match self {
            Producer::Rows { rows, .. } => rows.take_keyed_batches(),
            Producer::Json { decoder, .. } => decoder.take_keyed_batches(),
        }
    }

    fn gate_drops(&self) -> u64 {
        let gates = match self {
            Producer::Rows { rows, .. } => rows.gates(),
            Producer::Json { decoder, .. } => decoder.gates(),
        };
        TABLES
            .iter()
            .map(|t| gates.counters().dropped_total(t))
            .sum()
    }

    fn skipped_lines(&self) -> u64 {
        match self {
            Producer::Rows { .. } => 0,
            Producer::Json { decoder, .. } => decoder.stats().skipped_total(),
        }
    }
}

/// The run's generator. Event time starts now and moves at the offered rate
/// (or at the seed rate for a max run), so the data lands in today's
/// partitions; with a history, a max run's events instead cover the span
/// before now evenly.
fn firehose(settings: &Settings, spec: &RunSpec) -> EsloggerFirehose {
    let (start, gap) = match (spec.rate, settings.history) {
        (None, Some(history)) => {
            let span = i64::try_from(history.as_nanos()).unwrap_or(i64::MAX);
            let gap = span / i64::try_from(spec.events.max(1)).unwrap_or(i64::MAX);
            (now_ns().saturating_sub(span), gap.max(1))
        }
        (rate, _) => (now_ns(), (1e9 / rate.unwrap_or(SEED_RATE)) as i64),
    };
    EsloggerFirehose::with_processes(settings.seed, &settings.mix, settings.processes)
        .with_start_time_ns(start)
        .with_mean_gap_ns(gap)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What the writer thread saw.
#[derive(Default)]
struct WriterOutcome {
    stored: [u64; 2],
    refused: u64,
    visible: Vec<Duration>,
    parquet_visible: Vec<Duration>,
    error: Option<BenchError>,
}

fn table_index(table: &TableDef) -> usize {
    usize::from(table.name == ES_PROCESS_FILE_EVENTS.name)
}

/// Appends every queued batch to `store`, timing when each becomes visible
/// (acknowledged) and, for stores with a hot stage, when it reaches a file.
fn write_all(
    store: &dyn EventStore,
    queue: &BatchQueue,
    started_at: &mpsc::Receiver<Instant>,
) -> WriterOutcome {
    let mut out = WriterOutcome::default();
    let mut pending: [VecDeque<Instant>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut last_maintain = Instant::now();
    let mut batches = std::iter::from_fn(|| queue.pop());
    store.append_all(&mut batches, &mut |table, rows, result| {
        // The producer sends one instant per batch it queued, in order.
        let born = started_at.recv().unwrap_or_else(|_| Instant::now());
        match result {
            Ok(()) => {
                let now = Instant::now();
                out.visible.push(now - born);
                out.stored[table_index(table)] += rows;
                pending[table_index(table)].push_back(born);
            }
            Err(err) => {
                out.refused += rows;
                if out.error.is_none() {
                    tracing::warn!(error = %err, "batch refused");
                    out.error = Some(err);
                }
            }
        }
        if last_maintain.elapsed() >= Duration::from_millis(250) {
            store.maintain();
            last_maintain = Instant::now();
        }
        note_rolled(store, &mut pending, &mut out.parquet_visible);
    });
    if let Err(err) = store.flush() {
        out.error.get_or_insert(err);
    }
    note_rolled(store, &mut pending, &mut out.parquet_visible);
    out
}

/// A roll writes all of a table's hot batches, oldest first; whatever is
/// no longer hot is in a published file now.
fn note_rolled(
    store: &dyn EventStore,
    pending: &mut [VecDeque<Instant>; 2],
    reached_file: &mut Vec<Duration>,
) {
    for (table, queue) in TABLES.iter().zip(pending.iter_mut()) {
        if queue.is_empty() {
            continue;
        }
        let Some(hot) = store.pending_batches(table.name) else {
            queue.clear();
            continue;
        };
        let now = Instant::now();
        while queue.len() > hot {
            if let Some(born) = queue.pop_front() {
                reached_file.push(now - born);
            }
        }
    }
}

/// Runs `spec` into `store`, whose files live under `store_dir`.
pub(crate) fn run(
    settings: &Settings,
    spec: &RunSpec,
    store_name: &str,
    store: &dyn EventStore,
) -> Result<RunReport, BenchError> {
    let firehose = firehose(settings, spec);
    let mut producer = Producer::new(settings, spec, &firehose)?;
    let queue = BatchQueue::new(settings.queue_budget);
    let (born_tx, born_rx) = mpsc::channel::<Instant>();
    let generated = AtomicU64::new(0);
    let stop_sampler = AtomicBool::new(false);
    let samples = Mutex::new(Vec::<Sample>::new());
    let mut batcher = Batcher {
        queue: &queue,
        born_tx,
        live: spec.rate.is_some(),
        batch_rows: settings.batch_rows,
        batch_born: None,
        backpressure: 0,
    };
    // A fixed run's source makes 20 ms worth of events at a time and
    // sleeps when ahead: events arrive in 20 ms bursts, as a source
    // draining the kernel's queue sees them (waking 200 times a second
    // cost more than the pipeline's own work at low rates). A batch waits
    // at most as long as the daemon's default `flush_ms`, so "visible" is
    // what a user of the defaults gets.
    let (chunk_events, flush_every) = match spec.rate {
        Some(rate) => (
            ((rate / 50.0) as u64).max(1),
            Duration::from_millis(SourcesConfig::default().flush_ms),
        ),
        None => (max_rate_chunk(spec.source), Duration::MAX),
    };

    reset_peak_rss();
    let cpu_before = process_cpu();
    let started = Instant::now();

    let (outcome, produced, sampler_cpu, source, backpressure) = std::thread::scope(|scope| {
        // The sampler is the bench's instrument, not the pipeline: its own
        // CPU time comes back so the pipeline's figure can leave it out.
        let sampler = scope.spawn(|| {
            let cpu_before = thread_cpu();
            while !stop_sampler.load(Ordering::Relaxed) {
                let sample = Sample {
                    t_secs: started.elapsed().as_secs_f64(),
                    events: generated.load(Ordering::Relaxed),
                    rss_bytes: resident_bytes(),
                };
                samples
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(sample);
                std::thread::sleep(Duration::from_millis(100));
            }
            thread_cpu().saturating_sub(cpu_before)
        });
        let queue_ref = &queue;
        let writer = scope.spawn(move || write_all(store, queue_ref, &born_rx));
        let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let (empty_tx, empty_rx) = mpsc::channel::<Chunk>();
        let generated_ref = &generated;
        // Named, so that `top -H` and `perf` tell it from the pipeline.
        let source = std::thread::Builder::new()
            .name("sluice-source".into())
            .spawn_scoped(scope, move || {
                make_events(
                    firehose,
                    spec,
                    chunk_events,
                    started,
                    generated_ref,
                    full_tx,
                    empty_rx,
                )
            });
        let produced = match &source {
            Err(err) => Err(BenchError::Usage(format!(
                "could not start the source thread: {err}"
            ))),
            Ok(_) => (|| -> Result<(), BenchError> {
                for chunk in full_rx.iter() {
                    batcher.flush_older_than(flush_every, || producer.take_batches())?;
                    producer.consume(&chunk, &mut batcher)?;
                    let _ = empty_tx.send(chunk);
                }
                batcher.flush(|| producer.take_batches())?;
                Ok(())
            })(),
        };
        // On an error the source finds the pipeline gone and stops.
        drop(full_rx);
        let source = source.map_or_else(
            |_| SourceOutcome::default(),
            |handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            },
        );
        queue.close();
        // The writer stops once the queue is empty and every instant is in.
        let backpressure = batcher.backpressure;
        drop(batcher);
        let outcome = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        stop_sampler.store(true, Ordering::Relaxed);
        let sampler_cpu = sampler.join().unwrap_or_default();
        (outcome, produced, sampler_cpu, source, backpressure)
    });
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let peak_rss = proc_status_bytes("VmHWM");
    produced?;
    let mut outcome = outcome;
    if let Some(err) = outcome.error.take() {
        return Err(err);
    }
    if producer.skipped_lines() > 0 {
        return Err(BenchError::Usage(format!(
            "the decoder skipped {} generated lines",
            producer.skipped_lines()
        )));
    }
    let generator_cpu = source.cpu;
    let stored: u64 = outcome.stored.iter().sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let pipeline_cpu = cpu
        .saturating_sub(generator_cpu)
        .saturating_sub(sampler_cpu);
    let mut samples = samples.into_inner().unwrap_or_else(|p| p.into_inner());
    samples.push(Sample {
        t_secs: secs,
        events: spec.events,
        rss_bytes: resident_bytes(),
    });
    Ok(RunReport {
        store: store_name.to_string(),
        source: spec.source.name().to_string(),
        mode: if spec.rate.is_some() { "fixed" } else { "max" }.to_string(),
        offered_rate: spec.rate,
        elapsed_secs: secs,
        events_generated: spec.events,
        events_stored: stored,
        dropped_gates: producer.gate_drops(),
        dropped_backpressure: backpressure,
        dropped_storage: outcome.refused,
        events_per_sec: stored as f64 / secs,
        cpu_secs: cpu.as_secs_f64(),
        generator_cpu_secs: generator_cpu.as_secs_f64(),
        sampler_cpu_secs: sampler_cpu.as_secs_f64(),
        cpu_secs_per_million: cpu.as_secs_f64() / (spec.events.max(1) as f64 / 1e6),
        pipeline_cpu_secs_per_million: pipeline_cpu.as_secs_f64()
            / (spec.events.max(1) as f64 / 1e6),
        cpu_percent_of_one_core: 100.0 * cpu.as_secs_f64() / secs,
        pipeline_cpu_percent_of_one_core: 100.0 * pipeline_cpu.as_secs_f64() / secs,
        peak_rss_bytes: peak_rss,
        lag_max_ms: source.lag_max.as_secs_f64() * 1e3,
        lag_end_ms: source.lag_end.as_secs_f64() * 1e3,
        tables: TABLES
            .iter()
            .map(|t| TableBytes {
                table: t.name.to_string(),
                rows: outcome.stored[table_index(t)],
                bytes: 0,
                files: 0,
                bytes_per_event: 0.0,
            })
            .collect(),
        bytes_per_event: 0.0,
        visible_ms: Latency::of(&mut outcome.visible),
        parquet_visible_ms: (!outcome.parquet_visible.is_empty())
            .then(|| Latency::of(&mut outcome.parquet_visible)),
        queries: Vec::new(),
        rows_queryable: None,
        samples,
        upload: None,
    })
}

/// Fills in a report's bytes on disk, given each table's (bytes, files).
pub(crate) fn set_bytes(report: &mut RunReport, by_table: &[(u64, u64)]) {
    let mut total = 0;
    for (t, &(bytes, files)) in report.tables.iter_mut().zip(by_table) {
        t.bytes = bytes;
        t.files = files;
        t.bytes_per_event = bytes as f64 / t.rows.max(1) as f64;
        total += bytes;
    }
    report.bytes_per_event = total as f64 / report.events_stored.max(1) as f64;
}

/// The analyst queries: (name, SQL). The two counts come first; their sum
/// is the rows a reader can see.
pub const QUERIES: [(&str, &str); 6] = [
    (
        "count_file_events",
        "SELECT count(*) AS n FROM es_process_file_events",
    ),
    (
        "count_process_events",
        "SELECT count(*) AS n FROM es_process_events",
    ),
    (
        "top_processes",
        "SELECT path, count(*) AS n FROM es_process_file_events \
         GROUP BY path ORDER BY n DESC LIMIT 10",
    ),
    (
        "changes_under_documents",
        "SELECT time, pid, path, event_type, filename FROM es_process_file_events \
         WHERE event_type IN ('write', 'create', 'rename', 'unlink') \
         AND filename LIKE '/Users/alice/Documents/%' ORDER BY time DESC LIMIT 100",
    ),
    (
        "recent_execs",
        "SELECT time, pid, path, cmdline FROM es_process_events \
         WHERE event_type = 'exec' ORDER BY time DESC LIMIT 20",
    ),
    (
        "last_minute_by_type",
        "SELECT event_type, count(*) AS n FROM es_process_file_events \
         WHERE time >= (SELECT max(time) - 60 FROM es_process_file_events) \
         GROUP BY event_type ORDER BY n DESC",
    ),
];

/// Runs [`QUERIES`] over the data dir through the catalog `sluice query`
/// uses. Returns the timings and the rows the two counts saw.
pub(crate) fn sluice_queries(
    runtime: &tokio::runtime::Runtime,
    data_dir: &Path,
) -> Result<(Vec<QueryTiming>, u64), BenchError> {
    let query_error = |name: &str, message: String| BenchError::Query {
        name: name.to_string(),
        message,
    };
    let ctx = crate::catalog::open_catalog(data_dir)
        .map_err(|e| query_error("catalog", e.to_string()))?;
    let mut timings = Vec::new();
    let mut visible = 0;
    for (name, sql) in QUERIES {
        let started = Instant::now();
        let batches = runtime
            .block_on(async { ctx.sql(sql).await?.collect().await })
            .map_err(|e| query_error(name, e.to_string()))?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let count = name.starts_with("count_").then(|| {
            batches
                .first()
                .and_then(|b| {
                    b.column(0)
                        .as_primitive_opt::<Int64Type>()
                        .map(|a| a.value(0))
                })
                .map_or(0, |n| n as u64)
        });
        if let Some(n) = count {
            visible += n;
        }
        timings.push(QueryTiming {
            name: name.to_string(),
            query: sql.to_string(),
            rows: rows as u64,
            count,
            ms,
        });
    }
    Ok((timings, visible))
}

/// Runs `sluice bench firehose`. `None` when `--write-jsonl` only wrote
/// the generator's lines.
pub fn run_command(args: &FirehoseArgs) -> Result<Option<FirehoseReport>, BenchError> {
    if args.batch_rows == 0
        || args.memory_budget_mib == 0
        || args.roll_mib == 0
        || args.encoding_threads == Some(0)
    {
        return Err(BenchError::Usage(
            "--batch-rows, --memory-budget-mib, --roll-mib and --encoding-threads must be at least 1"
                .into(),
        ));
    }
    if !(args.duration_secs > 0.0 && args.roll_age_secs > 0.0) {
        return Err(BenchError::Usage(
            "--duration-secs and --roll-age-secs must be positive".into(),
        ));
    }
    if args
        .history_hours
        .is_some_and(|h| !(h.is_finite() && h > 0.0 && h <= 24.0 * 365.0 * 10.0))
    {
        return Err(BenchError::Usage(
            "--history-hours must be a positive number of hours, at most ten years".into(),
        ));
    }
    if args
        .rate_multiples
        .iter()
        .any(|m| !(m.is_finite() && *m >= 0.0))
    {
        return Err(BenchError::Usage(
            "--rate-multiples must be non-negative numbers".into(),
        ));
    }
    if let Some(path) = &args.write_jsonl {
        let io = |source| BenchError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        let mut firehose = EsloggerFirehose::with_processes(args.seed, &args.mix, args.processes);
        let bytes = firehose.write_lines(&mut out, args.events).map_err(io)?;
        println!(
            "wrote {} eslogger lines ({:.1} MB) to {}",
            args.events,
            bytes as f64 / 1e6,
            path.display()
        );
        return Ok(None);
    }

    let gates = if args.default_gates {
        GatesConfig::default()
    } else {
        GatesConfig::keep_everything()
    };
    let roll_bytes = args.roll_mib << 20;
    let queue_budget = args.memory_budget_mib << 20;
    let storage = StorageOptions {
        wal: WalOptions {
            fsync: args.wal_fsync,
            ..WalOptions::default()
        },
        persist: persist_options(args),
        roll_bytes,
        roll_age: Duration::from_secs_f64(args.roll_age_secs),
        // Room for the roll being encoded, the next roll of the same
        // table filling up behind it, the other table's, and the batches
        // that tip each over (a batch can be as large as the queue's
        // budget). With less, the appending thread waits for every roll and
        // the two take turns instead of running side by side: 96 MiB at the
        // defaults measured 0.6-0.7M events/s where this (160) gives 0.8-0.9M.
        hot_budget_bytes: roll_bytes * 3 + queue_budget * 2,
        ..StorageOptions::default()
    };
    let settings = Settings {
        seed: args.seed,
        mix: args.mix.clone(),
        processes: args.processes.max(1),
        gates,
        batch_rows: args.batch_rows,
        queue_budget,
        storage,
        history: args
            .history_hours
            .map(|h| Duration::from_secs_f64(h * 3600.0)),
    };

    let (root, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id())),
            true,
        ),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-bench-query")
        .enable_all()
        .build()
        .map_err(|source| BenchError::Io {
            path: root.clone(),
            source,
        })?;

    let sources: &[Source] = match args.source {
        SourceChoice::Rows => &[Source::Rows],
        SourceChoice::Json => &[Source::Json],
        SourceChoice::Both => &[Source::Rows, Source::Json],
    };
    let mut specs = Vec::new();
    for &source in sources {
        let events = match source {
            Source::Rows => args.events,
            Source::Json => args.json_events.unwrap_or(args.events / 4),
        };
        specs.push(RunSpec {
            source,
            rate: None,
            events: events.max(1),
        });
        for &m in args.rate_multiples.iter().filter(|&&m| m > 0.0) {
            let rate = SEED_RATE * m;
            specs.push(RunSpec {
                source,
                rate: Some(rate),
                events: ((rate * args.duration_secs) as u64).max(1),
            });
        }
    }

    warn_if_short_of_space(args, &root, &specs);

    let mut runs = Vec::new();
    let result = (|| -> Result<(), BenchError> {
        // object_store builds its clients on the runtime it runs on.
        let upload = match &args.upload {
            Some(url) => Some(
                runtime
                    .block_on(async { StoreLocation::parse(url) })
                    .map_err(|err| BenchError::Usage(format!("--upload: {err}")))?,
            ),
            None => None,
        };
        for (i, spec) in specs.iter().enumerate() {
            let name = format!("sluice-{i}-{}", spec.source.name());
            let dir = root.join(&name);
            let _ = std::fs::remove_dir_all(&dir);
            let (storage, _) = Storage::open(&dir, settings.storage.clone())?;
            let uploading = upload
                .as_ref()
                .map(|store| RunUpload::start(&runtime, store, &name, &dir));
            let mut report = run(&settings, spec, "sluice", &storage)?;
            drop(storage);
            if let Some(uploading) = uploading {
                report.upload = Some(uploading.finish(&runtime)?);
            }
            let bytes: Vec<(u64, u64)> = TABLES
                .iter()
                .map(|t| dir_bytes(&dir.join(t.name), ".parquet"))
                .collect();
            set_bytes(&mut report, &bytes);
            let (queries, visible) = sluice_queries(&runtime, &dir)?;
            report.queries = queries;
            report.rows_queryable = Some(visible);
            eprintln!("{}", progress_line(&report));
            runs.push(report);
            if !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        #[cfg(feature = "rocksdb-baseline")]
        for (i, spec) in specs.iter().enumerate() {
            if !baseline_runs(args, spec) {
                continue;
            }
            let dir = root.join(format!("rocksdb-{i}-{}", spec.source.name()));
            let report = super::baseline::run(&settings, spec, &dir)?;
            eprintln!("{}", progress_line(&report));
            runs.push(report);
            if !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        Ok(())
    })();
    if temporary && !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    result?;

    Ok(Some(FirehoseReport {
        runs,
        ..FirehoseReport::empty(args)
    }))
}

/// Whether the baseline runs `spec`: the max runs and the seed rate only,
/// when it is built and not turned off. It is much slower, and the
/// comparison needs no more.
fn baseline_runs(args: &FirehoseArgs, spec: &RunSpec) -> bool {
    cfg!(feature = "rocksdb-baseline")
        && !args.no_baseline
        && spec.rate.is_none_or(|r| (r - SEED_RATE).abs() <= 1.0)
}

/// Warns on standard error, before anything runs, when the disk under
/// `root` may not hold the runs of `specs` (see [`super::disk_space`]).
fn warn_if_short_of_space(args: &FirehoseArgs, root: &Path, specs: &[RunSpec]) {
    use super::disk_space::{
        BASELINE_BYTES_PER_EVENT, SLUICE_BYTES_PER_EVENT, bytes_needed, free_bytes,
        shortfall_warning,
    };
    let sluice = specs
        .iter()
        .map(|spec| (spec.events, SLUICE_BYTES_PER_EVENT));
    let baseline: Vec<(u64, u64)> = specs
        .iter()
        .filter(|spec| baseline_runs(args, spec))
        .map(|spec| (spec.events, BASELINE_BYTES_PER_EVENT))
        .collect();
    let sizes: Vec<(u64, u64)> = sluice.chain(baseline.iter().copied()).collect();
    let needed = bytes_needed(&sizes, args.keep);
    let baseline = !baseline.is_empty();
    if let Some(warning) =
        free_bytes(root).and_then(|free| shortfall_warning(root, needed, free, baseline))
    {
        eprintln!("{warning}");
    }
}

/// The Parquet settings sluice ships with, but for `--encoding-threads`.
fn persist_options(args: &FirehoseArgs) -> PersistOptions {
    let shipped = PersistOptions::default();
    PersistOptions {
        encoding_threads: args.encoding_threads.unwrap_or(shipped.encoding_threads),
        ..shipped
    }
}

fn progress_line(r: &RunReport) -> String {
    format!(
        "  {} {} {}: {} events in {:.2} s, {:.0} stored/s",
        r.store,
        r.source,
        r.offered_rate
            .map_or("max".to_string(), |x| format!("{x:.0}/s")),
        r.events_generated,
        r.elapsed_secs,
        r.events_per_sec
    )
}

impl FirehoseReport {
    /// A report of `args`' settings with no runs yet.
    pub fn empty(args: &FirehoseArgs) -> FirehoseReport {
        let mix = KINDS
            .iter()
            .zip(mix_weights(&args.mix))
            .filter(|(_, w)| *w > 0)
            .map(|(k, w)| format!("{k}={w}"))
            .collect::<Vec<_>>()
            .join(",");
        FirehoseReport {
            sluice_version: env!("CARGO_PKG_VERSION"),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: args.seed,
            mix,
            processes: args.processes,
            seed_rate: SEED_RATE,
            storage: StorageSettings {
                wal_fsync: format!("{:?}", args.wal_fsync),
                compression: format!("zstd({})", PersistOptions::DEFAULT_ZSTD_LEVEL),
                encoding_threads: persist_options(args).encoding_threads,
                roll_bytes: args.roll_mib << 20,
                roll_age_secs: args.roll_age_secs,
                queue_budget_bytes: args.memory_budget_mib << 20,
                batch_rows: args.batch_rows,
            },
            runs: Vec::new(),
        }
    }
}

fn mix_weights(mix: &EventMix) -> [u32; 9] {
    [
        mix.open, mix.close, mix.write, mix.create, mix.rename, mix.unlink, mix.exec, mix.fork,
        mix.exit,
    ]
}
