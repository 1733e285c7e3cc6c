//! Bytes on disk per stored event, per table and per column, for the
//! synthetic firehose written by the real [`ParquetPersister`].
//!
//! Issue 5 asks for at most 15 bytes per stored `open` event. The events
//! come from [`EsloggerFirehose`] (seeded, so every run writes the same
//! bytes) as decoded rows, in 128 Ki-row batches like `sluice ingest`'s,
//! persisted with the shipped [`PersistOptions`]. The bytes are the sizes of
//! the published files, footer and page index included; the per-column
//! table (printed with `--nocapture`) comes from each column chunk's
//! `compressed_size` in the footer, so it shows where the bytes go.
//!
//! `SLUICE_SIZE_EVENTS=N` changes the event count (default 262,144);
//! `SLUICE_SIZE_ZSTD_LEVEL=L` the zstd level (default: the shipped one), to
//! see the size side of the level's size/speed trade-off.
//!
//! Measured 2026-11-23 (seed 42, 262,144 events, zstd 3): open-heavy mix
//! `es_process_file_events` 10.0 bytes/event, `es_process_events` 22.2;
//! only opens 7.5. Before the dictionary limit and delta encodings of
//! [`sluice_sinks::parquet_persister`] the mix cost 23.7 and 28.1.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::file::reader::{FileReader, SerializedFileReader};
use sluice_ingest::gates::Gates;
use sluice_ingest::synthetic::{DirectRows, EsloggerFirehose, EventMix};
use sluice_sinks::{ParquetPersister, PersistOptions};

/// What one table's files cost.
struct TableSize {
    rows: u64,
    file_bytes: u64,
    /// Column name → compressed bytes over all row groups.
    columns: BTreeMap<String, u64>,
}

fn events() -> usize {
    std::env::var("SLUICE_SIZE_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256 * 1024)
}

/// The generator's rows for `mix`, in batches of at most 128 Ki rows.
fn firehose_batches(mix: &EventMix, events: usize) -> Vec<(&'static str, RecordBatch)> {
    let mut firehose = EsloggerFirehose::new(42, mix);
    let mut rows = DirectRows::new(Gates::keep_everything());
    let mut out = Vec::new();
    for _ in 0..events {
        firehose.next_rows(&mut rows);
        if rows.buffered_rows() >= 128 * 1024 {
            let batches = rows.take_batches().expect("batches build");
            out.extend(batches.into_iter().map(|(t, b)| (t.name, b)));
        }
    }
    let batches = rows.take_batches().expect("batches build");
    out.extend(batches.into_iter().map(|(t, b)| (t.name, b)));
    out
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files
}

/// Persists `batches` with `options` and measures each table's files.
fn store_and_measure(
    batches: &[(&'static str, RecordBatch)],
    options: PersistOptions,
) -> BTreeMap<String, TableSize> {
    let dir = tempfile::tempdir().expect("tempdir");
    let persister = ParquetPersister::with_options(dir.path(), options);
    for (table, batch) in batches {
        persister.persist(table, batch).expect("persist");
    }
    let mut sizes = BTreeMap::new();
    for (table, _) in batches {
        if sizes.contains_key(*table) {
            continue;
        }
        let mut size = TableSize {
            rows: 0,
            file_bytes: 0,
            columns: BTreeMap::new(),
        };
        for path in parquet_files(&dir.path().join(table)) {
            size.file_bytes += std::fs::metadata(&path).expect("stat").len();
            let reader = SerializedFileReader::new(File::open(&path).expect("open")).expect("read");
            let metadata = reader.metadata();
            size.rows += metadata.file_metadata().num_rows() as u64;
            for row_group in metadata.row_groups() {
                for column in row_group.columns() {
                    *size
                        .columns
                        .entry(column.column_path().string())
                        .or_default() += column.compressed_size() as u64;
                }
            }
        }
        sizes.insert(table.to_string(), size);
    }
    sizes
}

fn print_sizes(label: &str, sizes: &BTreeMap<String, TableSize>) {
    for (table, size) in sizes {
        eprintln!(
            "{label}: {table}: {} rows, {} bytes = {:.2} bytes/event",
            size.rows,
            size.file_bytes,
            size.file_bytes as f64 / size.rows as f64
        );
        let mut columns: Vec<_> = size.columns.iter().collect();
        columns.sort_by(|a, b| b.1.cmp(a.1));
        for (column, bytes) in columns {
            eprintln!(
                "  {column:<22} {bytes:>10} B {:>7.2} B/event",
                *bytes as f64 / size.rows as f64
            );
        }
    }
}

/// The shipped options, with the zstd level from `SLUICE_SIZE_ZSTD_LEVEL`.
fn options() -> PersistOptions {
    let mut options = PersistOptions::default();
    if let Some(level) = std::env::var("SLUICE_SIZE_ZSTD_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
    {
        options.zstd_level = level;
    }
    options
}

fn open_only() -> EventMix {
    EventMix::parse("open=1").expect("mix")
}

/// The target: at most 15 bytes per stored `open` event, both in a
/// stream of only opens and in the default open-heavy mix.
#[test]
fn open_events_cost_at_most_15_bytes() {
    let events = events();
    for (label, mix) in [
        ("open-heavy mix", EventMix::default()),
        ("open only", open_only()),
    ] {
        let sizes = store_and_measure(&firehose_batches(&mix, events), options());
        print_sizes(label, &sizes);
        let file_events = &sizes["es_process_file_events"];
        let per_event = file_events.file_bytes as f64 / file_events.rows as f64;
        assert!(
            per_event <= 15.0,
            "{label}: es_process_file_events costs {per_event:.2} bytes/event"
        );
    }
}
