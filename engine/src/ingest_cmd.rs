//! `sluice ingest`: replay a file or stdin of events into the data dir.
//!
//! Two threads share the work so that both cores are used: this one reads
//! and decodes lines into Arrow batches, and a writer thread turns each batch
//! into Parquet files. A bounded channel joins them; when the writer falls
//! behind, decoding waits instead of dropping, because a replay must lose
//! nothing. Bad lines are counted and skipped, and the summary says which.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use sluice_ingest::SkipReason;
use sluice_ingest::eslogger::EsloggerDecoder;
use sluice_ingest::replay::{ReplayError, ReplayOptions, replay_eslogger};
use sluice_sinks::{ParquetPersister, PersistError};

/// The input formats `sluice ingest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Apple's `eslogger` JSON lines.
    Eslogger,
}

/// Arguments of `sluice ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The format of the input.
    #[arg(long, value_enum, default_value = "eslogger")]
    pub format: InputFormat,
    /// Rows per batch handed to the Parquet writer (over all tables).
    #[arg(long, default_value_t = ReplayOptions::default().batch_rows)]
    pub batch_rows: usize,
    /// The file to read, or `-` for standard input.
    pub input: PathBuf,
}

/// Why an ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
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
        source: ReplayError<WriterGone>,
    },
    /// Writing Parquet failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// `--batch-rows 0`.
    #[error("--batch-rows must be at least 1")]
    BatchRows,
}

/// The writer thread stopped (its error is reported separately).
#[derive(Debug, thiserror::Error)]
#[error("the Parquet writer stopped")]
pub struct WriterGone;

/// What one ingest did, for the summary.
#[derive(Debug)]
pub struct IngestSummary {
    /// Events decoded, per table.
    pub events_by_table: Vec<(&'static str, u64)>,
    /// The decoder's counters.
    pub stats: sluice_ingest::DecodeStats,
    /// Parquet files written.
    pub files: usize,
    /// Wall time from open to the last file published.
    pub elapsed: std::time::Duration,
}

impl IngestSummary {
    /// Events decoded over all tables.
    pub fn events(&self) -> u64 {
        self.events_by_table.iter().map(|(_, n)| n).sum()
    }

    /// The summary as printed at the end of `sluice ingest`.
    pub fn render(&self, input: &str, data_dir: &Path) -> String {
        let mut out = String::new();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(out, "ingested {input} into {}", data_dir.display());
        for (table, n) in &self.events_by_table {
            let _ = writeln!(out, "  {table:<24} {n:>12} events");
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
            "  skipped lines: {} ({})",
            self.stats.skipped_total(),
            skipped.join(", ")
        );
        for problem in self.stats.problems() {
            let _ = writeln!(out, "    {problem}");
        }
        if self.stats.skipped_total() > self.stats.problems().len() as u64 {
            let _ = writeln!(
                out,
                "    … and {} more",
                self.stats.skipped_total() - self.stats.problems().len() as u64
            );
        }
        let _ = writeln!(
            out,
            "  {} lines, {:.1} MB in {:.3} s: {:.0} events/s, {:.1} MB/s; {} Parquet files",
            self.stats.lines,
            self.stats.bytes as f64 / 1e6,
            secs,
            self.events() as f64 / secs,
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

/// Replays the input of `args` into `data_dir` and says what happened.
pub fn ingest(args: &IngestArgs, data_dir: &Path) -> Result<IngestSummary, IngestError> {
    if args.batch_rows == 0 {
        return Err(IngestError::BatchRows);
    }
    let started = Instant::now();
    let reader: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(&args.input).map_err(|source| IngestError::Open {
            path: args.input.clone(),
            source,
        })?)
    };
    let reader = BufReader::with_capacity(1 << 20, reader);
    let persister = ParquetPersister::new(data_dir);
    let options = ReplayOptions {
        batch_rows: args.batch_rows,
        ..ReplayOptions::default()
    };
    let mut decoder = match args.format {
        InputFormat::Eslogger => EsloggerDecoder::new(),
    };
    let (files, replayed) = std::thread::scope(|scope| {
        // Two batches in flight: enough to overlap decoding with writing,
        // small enough to bound memory.
        let (tx, rx) = mpsc::sync_channel::<(&'static str, RecordBatch)>(2);
        let writer = scope.spawn(move || -> Result<usize, PersistError> {
            let mut files = 0;
            for (table, batch) in rx {
                files += persister.persist(table, &batch)?.len();
            }
            Ok(files)
        });
        let replayed = replay_eslogger(reader, &mut decoder, &options, |table, batch| {
            tx.send((table.name, batch)).map_err(|_| WriterGone)
        });
        drop(tx);
        let files = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (files, replayed)
    });
    // A writer error explains a replay that stopped with WriterGone, so it
    // is reported first.
    let files = files?;
    replayed.map_err(|source| IngestError::Replay {
        input: args.input.display().to_string(),
        source,
    })?;
    Ok(IngestSummary {
        events_by_table: decoder.events_by_table().to_vec(),
        stats: decoder.stats().clone(),
        files,
        elapsed: started.elapsed(),
    })
}
