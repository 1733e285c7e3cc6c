//! OpenBSM records → Arrow batches, on one core.
//!
//! The input is a trail of execve-heavy records as macOS writes them: an
//! execve with its arguments, the path as given and as resolved, the
//! executable's attributes, the subject, the return and the code-signing
//! identity, with a fork and an exit now and then. Each iteration splits the
//! trail into records, decodes every one into a `process_events` row and
//! finishes the Arrow batch, so the figure covers framing, decoding, row
//! building and `RecordBatch` assembly; it excludes reading from disk and
//! writing Parquet. Criterion reports bytes/s (MB/s of trail) for one group
//! and elements/s (records/s) for the other.
//!
//! Run: `cargo bench -p sluice-benches --bench bsm_decode`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_ingest::bsm::BsmDecoder;
use sluice_ingest::bsm::encode::RecordWriter;
use sluice_ingest::bsm::token::Attr;

const RECORDS: usize = 20_000;

/// A small deterministic generator (xorshift), so every run decodes the
/// same trail.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PROGRAMS: [(&str, &[&str]); 6] = [
    ("/bin/ls", &["ls", "-la", "/Users/alice/Documents"]),
    (
        "/usr/bin/git",
        &["git", "status", "--porcelain", "--untracked-files=no"],
    ),
    (
        "/usr/bin/xcrun",
        &["xcrun", "--sdk", "macosx", "--show-sdk-path"],
    ),
    ("/bin/zsh", &["/bin/zsh", "-c", "echo $PATH | tr : '\\n'"]),
    (
        "/usr/libexec/xpcproxy",
        &[
            "xpcproxy",
            "com.apple.mdworker.shared.0B000000-0000-0000-0000-000000000000",
        ],
    ),
    (
        "/usr/bin/curl",
        &[
            "curl",
            "-fsSL",
            "https://example.com/install.sh",
            "-o",
            "/tmp/install.sh",
        ],
    ),
];

fn trail(seed: u64, count: usize) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(count * 400);
    let t = 1_714_564_800;
    for i in 0..count {
        let pid = 1000 + rng.below(60_000) as u32;
        let sec = t + (i / 1000) as u32;
        let msec = (i % 1000) as u32;
        let subject = |w: RecordWriter| {
            w.subject32(
                501,
                501,
                20,
                501,
                20,
                pid,
                100_004,
                50_331_650,
                [0, 0, 0, 0],
            )
        };
        let record = match rng.below(20) {
            0 => subject(RecordWriter::new(2, sec, msec).arg32(0, pid + 1, "child PID"))
                .return32(0, pid + 1)
                .finish(),
            1 => subject(RecordWriter::new(1, sec, msec).exit(0, 0))
                .return32(0, 0)
                .finish(),
            _ => {
                let (path, args) = PROGRAMS[rng.below(PROGRAMS.len() as u64) as usize];
                subject(
                    RecordWriter::new(23, sec, msec)
                        .exec_args(args)
                        .path(path)
                        .path(path)
                        .attr(&Attr {
                            bits64: true,
                            mode: 0o100755,
                            uid: 0,
                            gid: 0,
                            fsid: 16_777_220,
                            node_id: 1_152_921_500_312_000_000 + u64::from(pid),
                            device: 0,
                        }),
                )
                .return32(0, 0)
                .identity(1, "com.apple.ls", "", &[0x5a; 20])
                .finish()
            }
        };
        out.extend(record);
    }
    out
}

fn decode(input: &[u8], decoder: &mut BsmDecoder) -> usize {
    decoder.decode_bytes(input);
    let batches = decoder.take_batches().expect("batches build");
    batches.iter().map(|(_, b)| b.num_rows()).sum()
}

fn bsm_decode(c: &mut Criterion) {
    let input = trail(42, RECORDS);
    let mut decoder = BsmDecoder::new();
    assert_eq!(
        decode(&input, &mut decoder),
        RECORDS,
        "every record is a row"
    );
    assert_eq!(decoder.stats().skipped_total(), 0);
    eprintln!(
        "input: {RECORDS} records, {} bytes, {:.0} bytes/record",
        input.len(),
        input.len() as f64 / RECORDS as f64
    );

    let mut group = c.benchmark_group("bsm_decode_bytes");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("execve_heavy", |b| {
        b.iter(|| black_box(decode(black_box(&input), &mut decoder)))
    });
    group.finish();

    let mut group = c.benchmark_group("bsm_decode_records");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("execve_heavy", |b| {
        b.iter(|| black_box(decode(black_box(&input), &mut decoder)))
    });
    group.finish();
}

criterion_group!(benches, bsm_decode);
criterion_main!(benches);
