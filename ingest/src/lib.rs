//! # sluice-ingest: from the kernel's words to Arrow rows
//!
//! Events arrive as bytes: eslogger's JSON lines today, and later native
//! EndpointSecurity messages, OpenBSM records and file notifications. A
//! decoder reads each one in place, without building a tree, and resolves it
//! into a borrowed row of one osquery table. The table's batch builder
//! appends that row into reused Arrow buffers, and when enough rows have
//! gathered it hands out a `RecordBatch` with the schema from
//! `sluice-schemas`. What happens to the batch next (memory, WAL, Parquet) is
//! the business of `sluice-sinks`; the two meet only at a table name and a
//! batch.
//!
//! Bad input is counted, never fatal: a line that cannot be decoded is
//! skipped under a [`SkipReason`], its line number and byte offset are kept
//! for the first few, and the lines around it still become rows.
//!
//! Modules, in the order data passes through them:
//! - [`replay`]: reads lines from a file or stdin.
//! - [`json`]: the pull parser over one line.
//! - [`eslogger`]: eslogger messages into rows of the two ES tables.
//! - [`bsm`]: OpenBSM audit trails and auditpipe into rows of the process,
//!   file, socket and user event tables.
//! - [`gates`]: muting, sampling and rate limits, with a counter for every
//!   drop.
//! - [`text`]: paths as bytes, stored without loss in UTF-8 columns.
//! - [`builders`]: rows into Arrow batches.
//! - [`backpressure`]: a bounded queue of batches, blocking for replays and
//!   dropping (and counting) for live sources.
//! - [`stats`]: what was decoded and what was skipped, and why.
//! - [`synthetic`]: a seeded generator of realistic eslogger lines, for
//!   benchmarks and tests.

pub mod backpressure;
pub mod bsm;
pub mod builders;
pub mod eslogger;
pub mod fim;
pub mod gates;
pub mod json;
pub mod replay;
pub mod stats;
pub mod synthetic;
pub mod text;
pub mod time;

pub use stats::{DecodeStats, LineProblem, SkipReason};
