//! # sluice: the engine that wires sources, storage and SQL together
//!
//! Events arrive from a source (an `eslogger` replay today; EndpointSecurity,
//! OpenBSM and file notifications later) and are decoded and gated by
//! `sluice-ingest` into Arrow batches, one stream per table. `sluice-sinks`
//! persists those batches as Parquet under
//! `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/`, a file becoming visible only
//! once complete. This crate serves the files back as osquery's event tables
//! through DataFusion: the [`catalog`] registers one listing table per table of
//! `sluice-schemas`, and [`query`] runs read-only SQL over them, for the
//! one-shot `sluice query` and the osqueryi-like `sluice shell`.
//!
//! Today the binary offers `ingest` (replay a file or stdin into the data dir),
//! `query` and `shell`. The daemon (`run`), the in-memory hot tail and remote
//! object stores come next; the catalog is where the hot tail will join the
//! Parquet files.
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
pub mod host;
pub mod ingest_cmd;
pub mod logging;
pub mod output;
pub mod query;
pub mod shell;
pub mod sql;
pub mod tables;
