//! # sluice-benches: how much firehose a host can take
//!
//! sluice exists because one Mac with EndpointSecurity `NOTIFY_OPEN` turned
//! on produced about a million events a minute, and the store behind osquery
//! could not keep up. This crate measures sluice's answer stage by stage.
//!
//! - `benches/eslogger_decode.rs` (criterion): eslogger JSON lines decoded
//!   and built into Arrow batches, on one core, in MB/s and events/s, over a
//!   realistic mix from [`sluice_ingest::synthetic`] (mostly `open` and
//!   `close` of long paths with full process objects, some `exec`).
//!
//! Run: `cargo bench -p sluice-benches --bench eslogger_decode`.
//! Results and the machine they were measured on are in `benches/README.md`.
//!
//! [`firehose_lines`] is shared by the benchmarks so that every one of them
//! reads the same input.

use sluice_ingest::synthetic::{EsloggerFirehose, EventMix};

/// `count` eslogger lines from the default (open-heavy) mix and `seed`, as
/// one buffer with a newline after each line.
pub fn firehose_lines(seed: u64, count: usize) -> Vec<u8> {
    let mut firehose = EsloggerFirehose::new(seed, &EventMix::default());
    let mut out = Vec::with_capacity(count * 2048);
    for _ in 0..count {
        firehose.next_line(&mut out);
    }
    out
}
