//! Storage: bytes on disk per event, persister throughput, and how long an
//! appended batch takes to become visible (in the hot tail, in Parquet).
//!
//! The input is the open-heavy synthetic firehose
//! ([`sluice_ingest::synthetic`], realistic macOS paths and process objects),
//! decoded with [`EsloggerDecoder`] into Arrow batches before timing starts.
//!
//! - **Bytes per stored event** is not a time, so it is printed (stderr)
//!   during setup: the firehose is stored through [`Storage`] with the
//!   shipped defaults, flushed, and the Parquet bytes of each table divided
//!   by its rows; then again for a stream of only `open` events, the ≤ 15
//!   bytes/event target.
//! - `storage_parquet/zstd_<level>` (events/s): the Parquet persister alone
//!   ([`ParquetPersister::persist`]: sort, split by hour, encode, fsync,
//!   publish) on the same 128 Ki-row batches, at the shipped zstd level 1
//!   and at level 3, the size/speed trade-off; and `parquet_defaults`, zstd
//!   3 with parquet's own encodings (no delta encodings, 1 MiB dictionary
//!   pages), what the size tuning costs or saves in time.
//! - `storage_persist/…` (events/s): append every batch (WAL with fsync per
//!   batch, hot tail), roll to Parquet, trim the WAL; a fresh data dir per
//!   iteration.
//! - `storage_visible/…` (time per batch of 1,024 rows): append until the
//!   batch is in the hot tail's snapshot (what a query sees), and append
//!   plus roll until it is in a published Parquet file.
//!
//! Run: `cargo bench -p sluice-benches --bench storage`.

use std::hint::black_box;
use std::path::Path;

use arrow::array::RecordBatch;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sluice_benches::firehose_lines;
use sluice_ingest::eslogger::EsloggerDecoder;
use sluice_ingest::synthetic::{EsloggerFirehose, EventMix};
use sluice_schemas::TableDef;
use sluice_sinks::{
    FsyncPolicy, ParquetPersister, PersistOptions, Storage, StorageOptions, WalOptions,
};

const EVENTS: usize = 200_000;

/// Decodes `input` into batches of at most `batch_rows` rows.
fn decode(input: &[u8], batch_rows: usize) -> Vec<(&'static TableDef, RecordBatch)> {
    let mut decoder = EsloggerDecoder::new();
    let mut out = Vec::new();
    let mut start = 0;
    for (i, end) in memchr::memchr_iter(b'\n', input).enumerate() {
        decoder.decode_line(&input[start..end], i as u64 + 1);
        start = end + 1;
        if decoder.buffered_rows() >= batch_rows {
            out.extend(decoder.take_batches().expect("batches build"));
        }
    }
    out.extend(decoder.take_batches().expect("batches build"));
    out
}

fn store_all(dir: &Path, batches: &[(&'static TableDef, RecordBatch)], options: StorageOptions) {
    let (storage, _) = Storage::open(dir, options).expect("open storage");
    for (table, batch) in batches {
        storage.append(table.name, batch.clone()).expect("append");
    }
    storage.flush().expect("flush");
}

/// Parquet bytes and files under `dir/<table>`.
fn parquet_bytes(dir: &Path) -> (u64, usize) {
    let mut total = (0, 0);
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
                total.0 += entry.metadata().map(|m| m.len()).unwrap_or(0);
                total.1 += 1;
            }
        }
    }
    total
}

/// Stores `batches` with the default options and prints bytes per event.
fn report_bytes_per_event(label: &str, batches: &[(&'static TableDef, RecordBatch)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    store_all(dir.path(), batches, StorageOptions::default());
    let mut rows: Vec<(&str, usize)> = Vec::new();
    for (table, batch) in batches {
        match rows.iter_mut().find(|(name, _)| *name == table.name) {
            Some(entry) => entry.1 += batch.num_rows(),
            None => rows.push((table.name, batch.num_rows())),
        }
    }
    for (table, n) in rows {
        let (bytes, files) = parquet_bytes(&dir.path().join(table));
        eprintln!(
            "bytes per stored event, {label}: {table}: {n} events, {bytes} bytes in {files} \
             files = {:.1} bytes/event",
            bytes as f64 / n as f64
        );
    }
}

fn open_only_lines(count: usize) -> Vec<u8> {
    let mix = EventMix {
        open: 1,
        close: 0,
        write: 0,
        create: 0,
        rename: 0,
        unlink: 0,
        exec: 0,
        fork: 0,
        exit: 0,
    };
    let mut firehose = EsloggerFirehose::new(42, &mix);
    let mut out = Vec::with_capacity(count * 2048);
    for _ in 0..count {
        firehose.next_line(&mut out);
    }
    out
}

fn storage(c: &mut Criterion) {
    // Batches as `sluice ingest` makes them by default (128 Ki rows).
    let batches = decode(&firehose_lines(42, EVENTS), 128 * 1024);
    let events: usize = batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(events, EVENTS, "every synthetic line decodes");
    report_bytes_per_event("open-heavy mix", &batches);
    report_bytes_per_event(
        "open events only",
        &decode(&open_only_lines(EVENTS), 128 * 1024),
    );

    let mut group = c.benchmark_group("storage_parquet");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events as u64));
    let parquet_defaults = PersistOptions {
        zstd_level: 3,
        delta_encodings: false,
        dictionary_page_bytes: 1 << 20,
        ..PersistOptions::default()
    };
    for (name, options) in [
        ("zstd_1".to_string(), PersistOptions::default()),
        // The shipped settings with every column encoded on the calling
        // thread, against the default's side-by-side encoding.
        (
            "zstd_1_one_encoding_thread".to_string(),
            PersistOptions {
                encoding_threads: 1,
                ..PersistOptions::default()
            },
        ),
        (
            "zstd_3".to_string(),
            PersistOptions {
                zstd_level: 3,
                ..PersistOptions::default()
            },
        ),
        ("parquet_defaults".to_string(), parquet_defaults),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("tempdir"),
                |dir| {
                    let persister = ParquetPersister::with_options(dir.path(), options.clone());
                    for (table, batch) in &batches {
                        black_box(persister.persist(table.name, batch).expect("persist"));
                    }
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    let options = StorageOptions {
        wal: WalOptions {
            fsync: FsyncPolicy::EveryBatch,
            ..WalOptions::default()
        },
        ..StorageOptions::default()
    };
    let mut group = c.benchmark_group("storage_persist");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("wal_hot_tail_parquet", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| store_all(dir.path(), &batches, options.clone()),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // Latency of one ingest-sized batch, from append to visible.
    let small = decode(&firehose_lines(7, 1_024), usize::MAX);
    let (table, batch) = small
        .iter()
        .max_by_key(|(_, b)| b.num_rows())
        .cloned()
        .expect("a batch");
    let mut group = c.benchmark_group("storage_visible");
    for (name, fsync) in [
        ("fsync_batch", FsyncPolicy::EveryBatch),
        ("fsync_off", FsyncPolicy::Off),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StorageOptions {
            wal: WalOptions {
                fsync,
                ..WalOptions::default()
            },
            // Rolls happen in the untimed setup below, not inside append.
            roll_bytes: usize::MAX,
            hot_budget_bytes: usize::MAX,
            ..StorageOptions::default()
        };
        let (storage, _) = Storage::open(dir.path(), options).expect("open");
        group.bench_function(format!("append_to_hot_tail/{name}"), |b| {
            b.iter_batched(
                || {
                    if storage.hot_tail().bytes() > 64 << 20 {
                        storage.flush().expect("flush");
                    }
                    batch.clone()
                },
                |batch| {
                    storage.append(table.name, batch).expect("append");
                    black_box(storage.hot_tail().snapshot(table.name).len())
                },
                BatchSize::SmallInput,
            )
        });
        storage.flush().expect("flush");
        group.bench_function(format!("append_to_parquet/{name}"), |b| {
            b.iter(|| {
                storage.append(table.name, batch.clone()).expect("append");
                storage.flush().expect("flush");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, storage);
criterion_main!(benches);
