//! `sluice bench`: measurements of the real pipeline, in this process.
//!
//! Users decide whether to turn on NOTIFY_OPEN from what a host can take
//! and what it costs, so the figures come from the code that will run on
//! the host, not from a model: [`firehose`] drives the generator, decoder,
//! gates, builders, write-ahead log and Parquet roller end to end and
//! times the standard analyst queries over what they wrote; [`report`]
//! holds the figures and prints them; [`svg`] draws them over time;
//! `upload` copies each run's files to an object store (`--upload`);
//! `disk_space` warns before the runs when their data may not fit. With
//! the `rocksdb-baseline` cargo feature, [`baseline`] stores the same
//! events the way osquery does (JSON rows in RocksDB), so the two can be
//! compared side by side.

#[cfg(feature = "rocksdb-baseline")]
pub mod baseline;
mod disk_space;
pub mod firehose;
pub mod report;
pub mod svg;
mod upload;

use std::path::Path;

/// What `sluice bench` measures.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The ES firehose end to end (generator → decode → gates → builders →
    /// WAL → Parquet), at maximum and at fixed offered rates, from decoded
    /// rows and from eslogger JSON.
    Firehose(firehose::FirehoseArgs),
}

/// Runs a `sluice bench` subcommand: the table on standard output, the
/// JSON and SVG files where asked.
pub fn run(command: &BenchCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        BenchCommand::Firehose(args) => {
            let Some(report) = firehose::run_command(args)? else {
                return Ok(());
            };
            print!("{}", report.render());
            if let Some(path) = &args.json {
                let json = serde_json::to_string_pretty(&report)?;
                write_file(path, json.as_bytes())?;
            }
            if let Some(path) = &args.svg {
                write_file(path, svg::render(&report).as_bytes())?;
            }
            Ok(())
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), firehose::BenchError> {
    std::fs::write(path, bytes).map_err(|source| firehose::BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}
