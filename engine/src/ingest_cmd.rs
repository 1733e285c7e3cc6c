//! `sluice ingest`: replay a file or stdin of events into the data dir.
//!
//! Two threads share the work so that both cores are used: this one reads
//! and decodes lines into Arrow batches (through the gates), and a writer
//! thread turns each batch into Parquet files. A [`BatchQueue`] with a memory
//! budget joins them. A replay waits when the writer falls behind, because
//! it must lose nothing; with `--live` (a pipe from a running `eslogger`)
//! the reader never waits: a batch that does not fit is dropped and counted
//! as `backpressure`. At the end the counters are printed and also stored
//! as rows of `osquery_events`.
//!
//! `--format bsm` reads OpenBSM audit records (a trail, stdin, or a
//! directory of trails, see [`crate::bsm_cmd`]) into the four BSM tables
//! through the same gates, writer thread and summary.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow::record_batch::RecordBatch;
use sluice_ingest::backpressure::{BatchQueue, Full};
use sluice_ingest::bsm::BsmDecoder;
use sluice_ingest::builders::{EventCountersRow, osquery_events_batch};
use sluice_ingest::eslogger::EsloggerDecoder;
use sluice_ingest::gates::config::{BucketConfig, GateRules, GatesConfig};
use sluice_ingest::gates::{DropCounters, DropReason, GateConfigError, Gates};
use sluice_ingest::replay::{ReplayError, ReplayOptions, replay_eslogger};
use sluice_ingest::{DecodeStats, SkipReason};
use sluice_schemas::{
    ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS, OSQUERY_EVENTS, PROCESS_EVENTS, PROCESS_FILE_EVENTS,
    SOCKET_EVENTS, TableDef, USER_EVENTS,
};
use sluice_sinks::{FsyncPolicy, PersistError, Storage, StorageError, StorageOptions, WalOptions};

use crate::config::{Config, ConfigError};

/// The input formats `sluice ingest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Apple's `eslogger` JSON lines.
    Eslogger,
    /// OpenBSM audit records: a trail file, standard input, or a directory
    /// of trails such as `/var/audit` (read once, in name order).
    Bsm,
}

/// Arguments of `sluice ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The format of the input.
    #[arg(long, value_enum, default_value = "eslogger")]
    pub format: InputFormat,
    /// A sluice TOML config; its `[gates]` section applies (flags add to it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep open events (off by default: they are most of the firehose).
    #[arg(long)]
    pub open_events: bool,
    /// Do not mute the file events of the noisy macOS daemons.
    #[arg(long)]
    pub no_default_mutes: bool,
    /// Mute every event of processes whose executable matches this path or
    /// glob (repeatable).
    #[arg(long, value_name = "PATH|GLOB")]
    pub mute_process: Vec<String>,
    /// Mute every event of processes whose executable starts with this
    /// prefix (repeatable).
    #[arg(long, value_name = "PREFIX")]
    pub mute_process_prefix: Vec<String>,
    /// Mute events whose every target path matches this path or glob
    /// (repeatable).
    #[arg(long, value_name = "PATH|GLOB")]
    pub mute_target: Vec<String>,
    /// Mute events whose every target path starts with this prefix
    /// (repeatable).
    #[arg(long, value_name = "PREFIX")]
    pub mute_target_prefix: Vec<String>,
    /// Keep only events with a target path under this prefix (inverted
    /// muting; repeatable).
    #[arg(long, value_name = "PREFIX")]
    pub allow_target_prefix: Vec<String>,
    /// A token bucket over all events: RATE events per second of event time,
    /// with an optional BURST.
    #[arg(long, value_name = "RATE[:BURST]", value_parser = parse_bucket)]
    pub rate_limit: Option<BucketConfig>,
    /// Keep 1 event in N of a table (repeatable).
    #[arg(long, value_name = "TABLE=N", value_parser = parse_sample)]
    pub sample: Vec<(String, u32)>,
    /// The input is a live stream (a pipe from eslogger): never block the
    /// reader; drop and count what does not fit in the memory budget.
    #[arg(long)]
    pub live: bool,
    /// Memory budget in MiB for batches waiting to be written.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub memory_budget_mib: usize,
    /// Rows per batch handed to the Parquet writer (over all tables).
    #[arg(long, default_value_t = ReplayOptions::default().batch_rows)]
    pub batch_rows: usize,
    /// When the write-ahead log is fsynced: `batch` (before each batch is
    /// acknowledged), `interval:<ms>`, or `off`.
    #[arg(long, value_name = "POLICY", default_value = "batch")]
    pub wal_fsync: FsyncPolicy,
    /// Roll a table's in-memory batches into a Parquet file once they hold
    /// this many KiB of Arrow memory (and at the end of the input).
    #[arg(long, value_name = "KIB", default_value_t = 128 * 1024)]
    pub roll_kib: usize,
    /// Print `ack <rows>` on standard output each time a batch is durable in
    /// the write-ahead log (`<rows>`: rows acknowledged so far, in input
    /// order). For tools that must know what survived a crash.
    #[arg(long)]
    pub ack: bool,
    /// The file to read, `-` for standard input, or (for `--format bsm`) a
    /// directory of audit trails.
    pub input: PathBuf,
}

fn parse_bucket(s: &str) -> Result<BucketConfig, String> {
    let (rate, burst) = match s.split_once(':') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let number = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| format!("{v:?} is not a number (expected RATE[:BURST])"))
    };
    Ok(BucketConfig {
        per_second: number(rate)?,
        burst: burst.map(number).transpose()?,
    })
}

fn parse_sample(s: &str) -> Result<(String, u32), String> {
    let (table, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected TABLE=N"))?;
    let n = n
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{n:?} is not a whole number"))?;
    Ok((table.trim().to_string(), n))
}

impl IngestArgs {
    /// The gates config: the file's `[gates]`, then the flags on top.
    pub fn gates_config(&self) -> Result<GatesConfig, ConfigError> {
        let mut gates = match &self.config {
            Some(path) => Config::load(path)?.gates,
            None => GatesConfig::default(),
        };
        gates.open_events |= self.open_events;
        if self.no_default_mutes {
            gates.default_mutes = false;
        }
        let global = &mut gates.global;
        let (process, target) = (&mut global.mute.process, &mut global.mute.target);
        for pattern in &self.mute_process {
            if is_glob(pattern) {
                process.globs.push(pattern.clone())
            } else {
                process.paths.push(pattern.clone())
            }
        }
        process
            .prefixes
            .extend(self.mute_process_prefix.iter().cloned());
        for pattern in &self.mute_target {
            if is_glob(pattern) {
                target.globs.push(pattern.clone())
            } else {
                target.paths.push(pattern.clone())
            }
        }
        target
            .prefixes
            .extend(self.mute_target_prefix.iter().cloned());
        global
            .allow
            .target
            .prefixes
            .extend(self.allow_target_prefix.iter().cloned());
        if let Some(bucket) = self.rate_limit {
            global.rate = Some(bucket);
        }
        for (table, n) in &self.sample {
            gates
                .tables
                .entry(table.clone())
                .or_insert_with(GateRules::default)
                .sample = Some(*n);
        }
        Ok(gates)
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Why an ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The gates cannot be built from the config.
    #[error(transparent)]
    Gates(#[from] GateConfigError),
    /// The input could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The input path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input could not be read, or a batch could not be built.
    #[error("{input}: {source}")]
    Replay {
        /// The input, as named on the command line.
        input: String,
        /// What failed.
        source: ReplayError<std::convert::Infallible>,
    },
    /// A BSM input could not be read, or a batch could not be built.
    #[error("{input}: {source}")]
    BsmReplay {
        /// The input (or the trail of a directory) being read.
        input: String,
        /// What failed.
        source: sluice_ingest::bsm::ReplayError<std::convert::Infallible>,
    },
    /// Writing Parquet failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// The storage (write-ahead log, Parquet roller) failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The counters could not be built into a batch.
    #[error("building the osquery_events rows failed: {0}")]
    Counters(#[from] arrow::error::ArrowError),
    /// `--batch-rows 0` or `--memory-budget-mib 0`.
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
}

/// What one ingest did, for the summary.
#[derive(Debug)]
pub struct IngestSummary {
    /// Rows stored, per table.
    pub stored_by_table: Vec<(&'static str, u64)>,
    /// The decoder's counters of skipped lines.
    pub stats: DecodeStats,
    /// Drops per table and reason (gates, kernel gaps, backpressure).
    pub drops: DropCounters,
    /// Messages the kernel dropped (global sequence gaps).
    pub kernel_drops: u64,
    /// Open events dropped because they are off.
    pub open_dropped: u64,
    /// Whether open events were on.
    pub open_events: bool,
    /// The `osquery_events` rows stored for this run.
    pub counter_rows: Vec<EventCountersRow>,
    /// Parquet files written.
    pub files: usize,
    /// Rows recovered from the write-ahead log of an earlier run that
    /// stopped before writing them to Parquet.
    pub recovered_rows: u64,
    /// Rows not stored because the disk was full (counted in `drops` as
    /// `backpressure` too).
    pub storage_dropped: u64,
    /// The most bytes of batches that waited at once, and the budget.
    pub queue_high_water: (usize, usize),
    /// Wall time from open to the last file published.
    pub elapsed: std::time::Duration,
    /// What the input is made of: `lines` (JSON) or `records` (BSM).
    pub unit: &'static str,
}

impl IngestSummary {
    /// Rows stored over all tables.
    pub fn stored(&self) -> u64 {
        self.stored_by_table.iter().map(|(_, n)| n).sum()
    }

    /// The summary as printed at the end of `sluice ingest`.
    pub fn render(&self, input: &str, data_dir: &Path) -> String {
        let mut out = String::new();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(out, "ingested {input} into {}", data_dir.display());
        for &(table, n) in &self.stored_by_table {
            let def = sluice_schemas::table(table).unwrap_or(&ES_PROCESS_EVENTS);
            let dropped: Vec<String> = DropReason::ALL
                .iter()
                .filter_map(|&r| {
                    let n = self.drops.dropped(def, r);
                    (n > 0).then(|| format!("{} {n}", r.name()))
                })
                .collect();
            let dropped = if dropped.is_empty() {
                String::new()
            } else {
                format!("  (dropped: {})", dropped.join(", "))
            };
            let _ = writeln!(out, "  {table:<24} {n:>12} events{dropped}");
        }
        if self.open_dropped > 0 {
            let _ = writeln!(
                out,
                "  open events are off: {} muted (--open-events keeps them)",
                self.open_dropped
            );
        }
        if self.kernel_drops > 0 {
            let _ = writeln!(
                out,
                "  kernel drops (global_seq_num gaps): {}",
                self.kernel_drops
            );
        }
        let skipped: Vec<String> = SkipReason::ALL
            .iter()
            .map(|&r| {
                let n = self.stats.skipped(r);
                if r == SkipReason::UnmappedEventType && n > 0 {
                    let names: Vec<String> = self
                        .stats
                        .unmapped_event_types()
                        .iter()
                        .map(|(name, c)| format!("{name} {c}"))
                        .collect();
                    format!("{r} {n} ({})", names.join(", "))
                } else {
                    format!("{r} {n}")
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "  skipped {}: {} ({})",
            self.unit,
            self.stats.skipped_total(),
            skipped.join(", ")
        );
        for problem in self.stats.problems() {
            let _ = writeln!(out, "    {problem}");
        }
        let kept = self.stats.problems().len() as u64;
        if self.stats.skipped_total() > kept {
            let _ = writeln!(out, "    … and {} more", self.stats.skipped_total() - kept);
        }
        if self.recovered_rows > 0 {
            let _ = writeln!(
                out,
                "  recovered {} rows from the write-ahead log of an interrupted run",
                self.recovered_rows
            );
        }
        if self.storage_dropped > 0 {
            let _ = writeln!(
                out,
                "  not stored, disk full: {} rows",
                self.storage_dropped
            );
        }
        let _ = writeln!(
            out,
            "  {} {}, {:.1} MB in {:.3} s: {:.0} events/s, {:.1} MB/s; {} Parquet files",
            self.stats.lines,
            self.unit,
            self.stats.bytes as f64 / 1e6,
            secs,
            self.stored() as f64 / secs,
            self.stats.bytes as f64 / 1e6 / secs,
            self.files
        );
        out
    }
}

/// Runs `sluice ingest` into `data_dir`, printing a summary on stdout.
pub fn run(args: &IngestArgs, data_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let name = if args.input.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        args.input.display().to_string()
    };
    let summary = ingest(args, data_dir)?;
    print!("{}", summary.render(&name, data_dir));
    Ok(())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Replays the input of `args` into `data_dir` and says what happened.
pub fn ingest(args: &IngestArgs, data_dir: &Path) -> Result<IngestSummary, IngestError> {
    if args.batch_rows == 0 {
        return Err(IngestError::Zero("batch-rows"));
    }
    if args.memory_budget_mib == 0 {
        return Err(IngestError::Zero("memory-budget-mib"));
    }
    let gates_config = args.gates_config()?;
    let gates = Gates::new(&gates_config)?;
    let started = Instant::now();
    if args.format == InputFormat::Bsm {
        return ingest_bsm(args, data_dir, started);
    }
    let reader: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(&args.input).map_err(|source| IngestError::Open {
            path: args.input.clone(),
            source,
        })?)
    };
    let reader = BufReader::with_capacity(1 << 20, reader);
    let (storage, recovered) = open_storage(args, data_dir)?;
    let options = ReplayOptions {
        batch_rows: args.batch_rows,
        ..ReplayOptions::default()
    };
    let mut decoder = EsloggerDecoder::with_gates(gates);
    let queue = BatchQueue::new(args.memory_budget_mib.saturating_mul(1 << 20));
    let mut backpressure = DropCounters::default();
    let tables = [&ES_PROCESS_EVENTS, &ES_PROCESS_FILE_EVENTS];
    let (written, replayed) = write_in_background(&storage, args.ack, &queue, &tables, || {
        replay_eslogger(reader, &mut decoder, &options, |table, batch| {
            offer(&queue, args.live, &mut backpressure, table, batch);
            Ok(())
        })
    });
    let written = written?;
    let stored_by_table = written.stored_by_table;
    backpressure.add(&written.storage_drops);
    replayed.map_err(|source| IngestError::Replay {
        input: args.input.display().to_string(),
        source,
    })?;

    // The run's counters become rows of osquery_events, stored like any
    // other batch, so they can be queried next to the events they describe.
    let counter_rows = decoder.counter_rows(&backpressure, now_ns(), false);
    storage.append(OSQUERY_EVENTS.name, osquery_events_batch(&counter_rows)?)?;
    // Everything still in memory goes to Parquet; on failure (a full disk)
    // it stays in the write-ahead log and the next run writes it.
    storage.flush()?;
    let files = storage.stats().files_published as usize;

    let mut drops = decoder.gates().counters().clone();
    drops.add(&backpressure);
    Ok(IngestSummary {
        stored_by_table,
        stats: decoder.stats().clone(),
        drops,
        kernel_drops: decoder.kernel_drops(),
        open_dropped: decoder.gates().open_dropped(),
        open_events: decoder.gates().open_events(),
        counter_rows,
        files,
        recovered_rows: recovered,
        storage_dropped: written.storage_dropped,
        queue_high_water: (queue.high_water_bytes(), queue.budget_bytes()),
        elapsed: started.elapsed(),
        unit: "lines",
    })
}

/// Opens the data dir's storage (write-ahead log in `DATA_DIR/.wal`) and
/// replays what an interrupted run left in the log. Returns the rows
/// recovered.
fn open_storage(args: &IngestArgs, data_dir: &Path) -> Result<(Storage, u64), IngestError> {
    if args.roll_kib == 0 {
        return Err(IngestError::Zero("roll-kib"));
    }
    let options = StorageOptions {
        wal: WalOptions {
            fsync: args.wal_fsync,
            ..WalOptions::default()
        },
        roll_bytes: args.roll_kib.saturating_mul(1024),
        // The writer thread never holds more than a roll per table plus
        // what the queue hands it; the queue's budget bounds the rest.
        hot_budget_bytes: args
            .roll_kib
            .saturating_mul(1024)
            .saturating_mul(8)
            .max(args.memory_budget_mib.saturating_mul(1 << 20)),
        ..StorageOptions::default()
    };
    let (storage, recovery) = Storage::open(data_dir, options)?;
    if recovery.torn_bytes > 0 {
        for cut in &recovery.torn {
            tracing::warn!("write-ahead log: {cut}");
        }
    }
    Ok((storage, recovery.replayed_rows))
}

/// What the writer thread did.
struct WriterOutcome {
    /// Rows acknowledged (durable in the WAL), per table.
    stored_by_table: Vec<(&'static str, u64)>,
    /// Rows refused because the disk was full, per table, as `backpressure`.
    storage_drops: DropCounters,
    /// Their total.
    storage_dropped: u64,
}

/// Runs `produce` on this thread while a writer thread appends every batch it
/// queues to `storage` (WAL, then hot tail, rolled to Parquet by size and
/// age). Returns the writer's outcome (counting rows for the tables of
/// `tables`) and `produce`'s.
///
/// A full disk does not stop the run: the batch is counted as dropped and
/// the next one is tried, so writing resumes as soon as space returns. With
/// `ack`, `ack <rows>` is printed after each batch is durable.
fn write_in_background<T>(
    storage: &Storage,
    ack: bool,
    queue: &BatchQueue,
    tables: &[&'static TableDef],
    produce: impl FnOnce() -> T,
) -> (Result<WriterOutcome, StorageError>, T) {
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<WriterOutcome, StorageError> {
            let mut outcome = WriterOutcome {
                stored_by_table: tables.iter().map(|t| (t.name, 0)).collect(),
                storage_drops: DropCounters::default(),
                storage_dropped: 0,
            };
            let mut acked: u64 = 0;
            let mut warned = false;
            let mut failure: Option<StorageError> = None;
            // The next batch is encoded while the WAL waits for the fsync
            // of this one. After a failure the rest of the queue is still
            // taken (and discarded) until the producer is done, so it is not
            // left waiting on a writer that has stopped.
            let queued = std::iter::from_fn(|| queue.pop()).map(|(t, b)| (t.name, b, t));
            storage.append_all(queued, |table, rows, result| {
                let rows = rows as u64;
                match result {
                    Ok(_) => {
                        acked += rows;
                        if ack {
                            println!("ack {acked}");
                        }
                        if let Some(entry) = outcome
                            .stored_by_table
                            .iter_mut()
                            .find(|(name, _)| *name == table.name)
                        {
                            entry.1 += rows;
                        }
                    }
                    Err(err) if err.is_out_of_space() => {
                        if !warned {
                            tracing::warn!(error = %err, "disk full: dropping batches until space returns");
                            warned = true;
                        }
                        outcome.storage_drops.drop_n(
                            sluice_ingest::gates::table_slot(table),
                            DropReason::Backpressure,
                            rows,
                        );
                        outcome.storage_dropped += rows;
                    }
                    Err(err) => {
                        failure = Some(err);
                        return false;
                    }
                }
                // Rolls by age, fsyncs under an interval policy, housekeeping.
                if let Err(err) = storage.maintain() {
                    tracing::warn!(error = %err, "storage maintenance failed");
                }
                true
            });
            match failure {
                Some(err) => Err(err),
                None => Ok(outcome),
            }
        });
        let produced = produce();
        queue.close();
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, produced)
    })
}

/// Queues a batch for the writer: a replay waits for room, a live input
/// drops (and counts) what does not fit.
fn offer(
    queue: &BatchQueue,
    live: bool,
    backpressure: &mut DropCounters,
    table: &'static TableDef,
    batch: RecordBatch,
) {
    if live {
        if let Err(Full((table, batch))) = queue.try_push((table, batch)) {
            backpressure.drop_n(
                sluice_ingest::gates::table_slot(table),
                DropReason::Backpressure,
                batch.num_rows() as u64,
            );
        }
    } else {
        queue.push_blocking((table, batch));
    }
}

/// `sluice ingest --format bsm`: the same gates, writer, `osquery_events`
/// counter rows and summary as eslogger's.
fn ingest_bsm(
    args: &IngestArgs,
    data_dir: &Path,
    started: Instant,
) -> Result<IngestSummary, IngestError> {
    let (storage, recovered) = open_storage(args, data_dir)?;
    let queue = BatchQueue::new(args.memory_budget_mib.saturating_mul(1 << 20));
    let mut backpressure = DropCounters::default();
    let gates = Gates::new(&args.gates_config()?)?;
    let mut decoder = BsmDecoder::with_gates(gates);
    let tables = [
        &PROCESS_EVENTS,
        &PROCESS_FILE_EVENTS,
        &SOCKET_EVENTS,
        &USER_EVENTS,
    ];
    let (written, replayed) = write_in_background(&storage, args.ack, &queue, &tables, || {
        crate::bsm_cmd::replay_input(&args.input, &mut decoder, args.batch_rows, &mut |t, b| {
            offer(&queue, args.live, &mut backpressure, t, b)
        })
    });
    let written = written?;
    let stored_by_table = written.stored_by_table;
    backpressure.add(&written.storage_drops);
    replayed?;
    let counter_rows = decoder.counter_rows(&backpressure, now_ns(), false);
    storage.append(OSQUERY_EVENTS.name, osquery_events_batch(&counter_rows)?)?;
    storage.flush()?;
    let files = storage.stats().files_published as usize;
    Ok(IngestSummary {
        stored_by_table,
        stats: decoder.stats().clone(),
        drops: {
            let mut drops = decoder.gates().counters().clone();
            drops.add(&backpressure);
            drops
        },
        kernel_drops: 0,
        open_dropped: decoder.gates().open_dropped(),
        open_events: decoder.gates().open_events(),
        counter_rows,
        files,
        recovered_rows: recovered,
        storage_dropped: written.storage_dropped,
        queue_high_water: (queue.high_water_bytes(), queue.budget_bytes()),
        elapsed: started.elapsed(),
        unit: "records",
    })
}
