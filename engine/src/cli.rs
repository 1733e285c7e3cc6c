//! The `sluice` command line: what each subcommand takes.
//!
//! ```text
//! sluice [--log-format text|json] ingest [--data-dir DIR] [--format eslogger] FILE|-
//! sluice [--log-format text|json] query  [--data-dir DIR] [--format table|json|jsonl|csv|line|parquet] [--out FILE] SQL
//! sluice [--log-format text|json] shell  [--data-dir DIR]
//! sluice bsm dump [--style l|n|raw] [--short] FILE|-
//! sluice [--log-format text|json] run [--config FILE] [--data-dir DIR]
//! sluice status [--data-dir DIR] [--config FILE] [--metrics ADDR] [--raw]
//! sluice bench firehose [--events N] [--rate-multiples 1,4] [--json FILE] [--svg FILE]
//! sluice export [--data-dir DIR] --to URL [--table T]… [--since T] [--until T] [--layout hive|security-lake] [--format parquet|ocsf]
//! ```
//!
//! Every subcommand that touches tables takes `--data-dir`; without it the
//! directory comes from [`crate::data_dir::default_data_dir`].

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::bsm_cmd::BsmCommand;
use crate::ingest_cmd::IngestArgs;
use crate::logging::LogFormat;
use crate::output::OutputFormat;

/// sluice: macOS security events to Arrow, Parquet and osquery-compatible SQL.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, propagate_version = true)]
pub struct Cli {
    /// How diagnostics on standard error are written; the level comes from
    /// RUST_LOG (default: warn).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once at startup, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Replay recorded events (a file or standard input) into the data dir.
    Ingest {
        /// Where the tables are kept.
        #[command(flatten)]
        data_dir: DataDirArg,
        /// What to replay.
        #[command(flatten)]
        args: IngestArgs,
    },
    /// Run SQL once and print the result.
    Query(QueryArgs),
    /// Query interactively, like osqueryi (reads statements from standard input
    /// when it is not a terminal).
    Shell(ShellArgs),
    /// OpenBSM audit trails: print their records as praudit does.
    Bsm {
        /// What to do with the trail.
        #[command(subcommand)]
        command: BsmCommand,
    },
    /// Measure the pipeline: `bench firehose` runs the ES firehose end to
    /// end and reports throughput, CPU, memory, bytes and query latency.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
    /// Run the daemon: live sources, storage, the Flight SQL server and
    /// Prometheus metrics, until SIGTERM or SIGINT (SIGHUP reloads).
    Run(crate::daemon::RunArgs),
    /// Show the figures of a running daemon (from its metrics endpoint).
    Status(crate::daemon::status::StatusArgs),
    /// Serve the tables to Flight SQL clients (JDBC/DBeaver, ADBC, Python);
    /// loopback only unless a token is set.
    Serve(crate::flight::ServeArgs),
    /// Export event history to a data lake (a local directory, s3://, gs://,
    /// az://) as Hive-partitioned Parquet or OCSF.
    Export {
        /// Where the tables are kept.
        #[command(flatten)]
        data_dir: DataDirArg,
        /// What to export, and where.
        #[command(flatten)]
        args: crate::export::ExportArgs,
    },
}

/// The `--data-dir` flag shared by the subcommands.
#[derive(Debug, Clone, Default, Args)]
pub struct DataDirArg {
    /// The data directory [default: $SLUICE_DATA_DIR, else
    /// ~/Library/Application Support/sluice on macOS, else
    /// $XDG_DATA_HOME/sluice or ~/.local/share/sluice].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    /// The directory to use: the flag's, or the default.
    pub fn resolve(&self) -> PathBuf {
        crate::data_dir::data_dir_or_default(self.data_dir.as_deref())
    }

    /// The flag's value, if given.
    pub fn flag(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }
}

/// Arguments of `sluice query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Where the tables are kept.
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// How to print the rows.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Read the event tables from this object store URL (`s3://bucket/prefix`,
    /// `gs://…`, `az://…`, `file:///…`: where the uploader puts the data dir's
    /// files) instead of the data dir.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Write the result to this file (mode 0600, replaced atomically) instead
    /// of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The SQL to run (read-only; several statements may be separated by ';').
    pub sql: String,
}

/// Arguments of `sluice shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Where the tables are kept.
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn query_takes_format_data_dir_and_sql() {
        let cli = Cli::try_parse_from([
            "sluice",
            "--log-format",
            "json",
            "query",
            "--data-dir",
            "/d",
            "--format",
            "csv",
            "SELECT 1",
        ])
        .expect("parse");
        assert_eq!(cli.log_format, LogFormat::Json);
        let Command::Query(args) = cli.command else {
            panic!("not query: {cli:?}")
        };
        assert_eq!(args.format, OutputFormat::Csv);
        assert_eq!(args.data_dir.flag(), Some(Path::new("/d")));
        assert_eq!(args.data_dir.resolve(), PathBuf::from("/d"));
        assert_eq!(args.sql, "SELECT 1");
    }

    #[test]
    fn defaults_and_global_flag_after_the_subcommand() {
        let cli = Cli::try_parse_from(["sluice", "shell", "--log-format", "json"]).expect("parse");
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(matches!(
            cli.command,
            Command::Shell(ShellArgs {
                data_dir: DataDirArg { data_dir: None }
            })
        ));
        let cli = Cli::try_parse_from(["sluice", "query", "SELECT 1"]).expect("parse");
        let Command::Query(args) = cli.command else {
            panic!("not query")
        };
        assert_eq!(args.format, OutputFormat::Table);
    }

    #[test]
    fn ingest_flattens_its_args_and_takes_data_dir() {
        let cli =
            Cli::try_parse_from(["sluice", "ingest", "--data-dir", "/d", "-"]).expect("parse");
        let Command::Ingest { data_dir, args } = cli.command else {
            panic!("not ingest")
        };
        assert_eq!(data_dir.flag(), Some(Path::new("/d")));
        assert_eq!(args.input, PathBuf::from("-"));
    }

    #[test]
    fn bsm_dump_takes_a_style_and_a_file() {
        let cli = Cli::try_parse_from(["sluice", "bsm", "dump", "--style", "raw", "/var/audit/x"])
            .expect("parse");
        let Command::Bsm {
            command: BsmCommand::Dump(args),
        } = cli.command
        else {
            panic!("not bsm dump")
        };
        assert_eq!(args.style, crate::bsm_cmd::DumpStyle::Raw);
        assert_eq!(args.input, PathBuf::from("/var/audit/x"));
        let cli = Cli::try_parse_from(["sluice", "ingest", "--format", "bsm", "/var/audit"])
            .expect("parse");
        let Command::Ingest { args, .. } = cli.command else {
            panic!("not ingest")
        };
        assert_eq!(args.format, crate::ingest_cmd::InputFormat::Bsm);
    }

    #[test]
    fn bad_input_is_a_usage_error_not_a_panic() {
        for argv in [
            &["sluice"][..],
            &["sluice", "query"],
            &["sluice", "query", "--format", "xml", "SELECT 1"],
            &["sluice", "frobnicate"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }
}
