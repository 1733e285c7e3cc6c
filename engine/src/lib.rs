//! # sluice: the engine that wires sources, storage and SQL together
//!
//! Events arrive from a source (`eslogger` JSON, EndpointSecurity on macOS,
//! OpenBSM trails and auditpipe, file notifications) and are decoded and
//! gated by `sluice-ingest` into Arrow batches, one stream per table.
//! `sluice-sinks` logs those batches in a write-ahead log, keeps them in a hot
//! tail, and persists them as Parquet under
//! `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/` (or in an object store), a
//! file becoming visible only once complete. This crate serves them back as
//! osquery's event tables through DataFusion: the [`catalog`] registers one
//! [`tables::EventTable`] per table of `sluice-schemas` (the hot tail and the
//! files, pruned on `time`), [`sql`] gives it SQLite's dialect, [`group_by`]
//! groups text by its Arrow views, and [`query`] runs read-only SQL over them
//! for `sluice query`, the osqueryi-like `sluice shell` and the Flight SQL
//! server ([`flight`]).
//!
//! The binary's commands: `ingest` (replay a file or stdin into the data
//! dir), `query`, `shell`, `serve`, `run` (the daemon), `status`, `export`,
//! `bsm` and `bench`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = sluice::catalog::open_catalog(std::path::Path::new("/var/db/sluice"))?;
//! let sql = "SELECT pid, path FROM es_process_events LIMIT 5";
//! let format = sluice::output::OutputFormat::Table;
//! sluice::query::run(&ctx, sql, format, &mut std::io::stdout()).await?;
//! # Ok(()) }
//! ```

pub mod bench;
pub mod bsm_cmd;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod data_dir;
pub mod export;
pub mod flight;
pub mod group_by;
pub mod host;
pub mod ingest_cmd;
pub mod logging;
pub mod output;
pub mod query;
pub mod shell;
pub mod sql;
pub mod tables;
