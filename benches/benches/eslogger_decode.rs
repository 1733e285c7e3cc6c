//! eslogger JSON → Arrow batches, on one core.
//!
//! Each iteration decodes the same buffer of realistic lines and finishes
//! the Arrow batches, so the figure covers parsing, row building and the
//! final `RecordBatch` assembly; it excludes reading from disk and writing
//! Parquet. Criterion reports bytes/s (MB/s of JSON) for one group and
//! elements/s (events/s) for the other.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_benches::firehose_lines;
use sluice_ingest::eslogger::EsloggerDecoder;

const LINES: usize = 20_000;

fn decode(input: &[u8], decoder: &mut EsloggerDecoder) -> usize {
    // Split lines the way the replay reader does, with a vectorised search.
    let mut start = 0;
    for (i, end) in memchr::memchr_iter(b'\n', input).enumerate() {
        decoder.decode_line(&input[start..end], i as u64 + 1);
        start = end + 1;
    }
    let batches = decoder.take_batches().expect("batches build");
    batches.iter().map(|(_, b)| b.num_rows()).sum()
}

fn eslogger_decode(c: &mut Criterion) {
    let input = firehose_lines(42, LINES);
    let mut decoder = EsloggerDecoder::new();
    assert_eq!(
        decode(&input, &mut decoder),
        LINES,
        "every synthetic line decodes"
    );
    eprintln!(
        "input: {LINES} lines, {} bytes, {:.0} bytes/event",
        input.len(),
        input.len() as f64 / LINES as f64
    );

    let mut group = c.benchmark_group("eslogger_decode_bytes");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("open_heavy_mix", |b| {
        b.iter(|| black_box(decode(black_box(&input), &mut decoder)))
    });
    group.finish();

    let mut group = c.benchmark_group("eslogger_decode_events");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("open_heavy_mix", |b| {
        b.iter(|| black_box(decode(black_box(&input), &mut decoder)))
    });
    group.finish();
}

criterion_group!(benches, eslogger_decode);
criterion_main!(benches);
