//! `sluice export`: event history, in batch, to a data lake.
//!
//! The history is read through the same DataFusion catalog that `sluice
//! query` uses, so whatever a query sees (local Parquet today) is what gets
//! exported. The time range is cut into units of work, one per table and
//! partition (an hour for the Hive layout, a day for Security Lake), counted
//! with one aggregate query per table so the progress line knows the total.
//! Each unit is one sorted query (`ORDER BY time`) streamed into zstd Parquet
//! parts of about the target size, written to the destination (a local
//! directory or an object store URL) under deterministic partition paths.
//!
//! Idempotence and resumption:
//! - Every part name carries the run token; after a unit's new parts are all
//!   written, the unit's parts from other runs are deleted (write new, then
//!   delete old), so exporting a range again replaces it.
//! - The range is widened to whole partitions, so a unit always holds all of
//!   its partition's rows and replacing it loses nothing outside the range.
//! - A checkpoint object (`_sluice_export/<plan-id>.json`, ignored by Hive
//!   readers as it starts with `_`) lists the units done; an interrupted
//!   export run again with the same arguments resumes with the same run token
//!   and skips them. It is deleted when the export completes.
//! - Partitions inside the range that no longer have rows at the source lose
//!   their old parts too, so the lake's range matches the source's.
//!
//! Rows with a NULL `time` belong to no partition and are not exported.

pub mod layout;
pub mod ocsf;
pub mod progress;
mod run;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use datafusion::error::DataFusionError;
use sluice_schemas::TableDef;
use sluice_sinks::object_store::{StoreError, StoreLocation};

pub use layout::Layout;
pub use progress::ExportTotals;
pub use run::export;

/// The default target size of an exported file: large enough for engines to
/// scan efficiently, small enough to parallelize (Spark/Trino/Athena prefer
/// 128–512 MB).
pub const DEFAULT_TARGET_FILE_MB: u64 = 256;

/// The lake layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// `table=…/host=…/date=YYYY-MM-DD/hour=HH/` (Hive partitions).
    Hive,
    /// `ext/<source>/region=…/accountId=…/eventDay=YYYYMMDD/` (AWS Security
    /// Lake custom sources; needs `--format ocsf`).
    SecurityLake,
}

/// What the exported rows look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The tables' own columns, plus `host_identifier`.
    Parquet,
    /// OCSF events (Process Activity, File System Activity) as nested
    /// Parquet.
    Ocsf,
}

/// The arguments of `sluice export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write: a local directory, `file:///…`, `s3://bucket/prefix`,
    /// `gs://…` or `az://…` (credentials from the store's usual environment
    /// variables).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A table to export (repeatable) [default: every event table, or every
    /// table with an OCSF class in OCSF mode].
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Export rows from this time on: unix seconds, `YYYY-MM-DD` or RFC 3339
    /// (widened down to the start of its partition).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Export rows before this time (widened up to the end of its partition).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The directory layout of the lake.
    #[arg(long, value_enum, default_value_t = LayoutArg::Hive)]
    pub layout: LayoutArg,
    /// The shape of the rows.
    #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
    pub format: FormatArg,
    /// The `host=` partition and `host_identifier` column [default: this
    /// machine's hostname].
    #[arg(long, value_name = "NAME")]
    pub host_identifier: Option<String>,
    /// Target size of each exported file, in MB.
    #[arg(long, value_name = "MB", default_value_t = DEFAULT_TARGET_FILE_MB)]
    pub target_file_mb: u64,
    /// Security Lake: the AWS region of the lake [default: $AWS_REGION].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Security Lake: the AWS account id of the custom source.
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// No progress line, only the summary.
    #[arg(long)]
    pub quiet: bool,
}

/// What to export, resolved from [`ExportArgs`].
#[derive(Debug, Clone)]
pub struct ExportPlan {
    /// The tables, in catalog order.
    pub tables: Vec<&'static TableDef>,
    /// Rows with `time >=` this (unix seconds, a partition start).
    pub since: Option<i64>,
    /// Rows with `time <` this (unix seconds, a partition start).
    pub until: Option<i64>,
    /// The lake layout.
    pub layout: Layout,
    /// The row shape.
    pub format: FormatArg,
    /// The host name written into `host_identifier` / `device.hostname`.
    pub host: String,
    /// Roll to a new part once a part reaches this many bytes.
    pub target_file_bytes: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The arguments do not make an export.
    #[error("{0}")]
    Usage(String),
    /// The destination URL could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source catalog could not be opened.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// Reading a table failed.
    #[error("reading {table}: {source}")]
    Query {
        /// The table.
        table: String,
        /// What DataFusion said.
        source: DataFusionError,
    },
    /// Writing a Parquet part failed.
    #[error("writing {key}: {source}")]
    Write {
        /// The object key.
        key: String,
        /// What the Parquet writer said.
        source: parquet::errors::ParquetError,
    },
    /// The destination store failed (listing, deleting, the checkpoint).
    #[error("object store {what}: {source}")]
    Destination {
        /// What was being done, on what.
        what: String,
        /// What object_store said.
        source: object_store::Error,
    },
    /// The checkpoint of an earlier run could not be read.
    #[error("checkpoint {key} is unreadable ({reason}); delete it to start over")]
    Checkpoint {
        /// The object key.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

impl ExportPlan {
    /// Resolves `args` into a plan.
    pub fn from_args(args: &ExportArgs) -> Result<ExportPlan, ExportError> {
        let usage = ExportError::Usage;
        if args.layout == LayoutArg::SecurityLake && args.format != FormatArg::Ocsf {
            return Err(usage(
                "--layout security-lake needs --format ocsf (Security Lake sources hold OCSF)"
                    .into(),
            ));
        }
        let host = match &args.host_identifier {
            Some(h) => h.clone(),
            None => hostname().ok_or_else(|| {
                usage("cannot read this machine's hostname; pass --host-identifier".into())
            })?,
        };
        check_partition_value("--host-identifier", &host)?;
        let layout = match args.layout {
            LayoutArg::Hive => Layout::Hive { host: host.clone() },
            LayoutArg::SecurityLake => {
                let region = args
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .ok_or_else(|| usage("--layout security-lake needs --region".into()))?;
                let account_id = args
                    .account_id
                    .clone()
                    .ok_or_else(|| usage("--layout security-lake needs --account-id".into()))?;
                check_partition_value("--region", &region)?;
                check_partition_value("--account-id", &account_id)?;
                Layout::SecurityLake { region, account_id }
            }
        };
        let wanted = |def: &TableDef| match args.format {
            FormatArg::Parquet => def.name != "osquery_events",
            FormatArg::Ocsf => ocsf::class_of(def.name).is_some(),
        };
        let tables = if args.tables.is_empty() {
            sluice_schemas::TABLES
                .iter()
                .copied()
                .filter(|d| wanted(d))
                .collect()
        } else {
            let mut tables = Vec::new();
            for name in &args.tables {
                let def = sluice_schemas::table(name)
                    .ok_or_else(|| usage(format!("--table {name}: no such table")))?;
                if args.format == FormatArg::Ocsf && ocsf::class_of(name).is_none() {
                    return Err(usage(format!(
                        "--table {name}: no OCSF class maps this table"
                    )));
                }
                if !tables.iter().any(|t: &&TableDef| t.name == def.name) {
                    tables.push(def);
                }
            }
            tables
        };
        let window = layout.window();
        let since = args
            .since
            .as_deref()
            .map(|t| parse_time("--since", t))
            .transpose()?
            .map(|s| s.div_euclid(window) * window);
        let until = args
            .until
            .as_deref()
            .map(|t| parse_time("--until", t))
            .transpose()?
            // Up to the next partition start (unless already on one).
            .map(|u| (u + window - 1).div_euclid(window) * window);
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(usage("--since must be before --until".into()));
        }
        if args.target_file_mb == 0 {
            return Err(usage("--target-file-mb must be at least 1".into()));
        }
        Ok(ExportPlan {
            tables,
            since,
            until,
            layout,
            format: args.format,
            host,
            target_file_bytes: args.target_file_mb.saturating_mul(1_000_000),
        })
    }
}

/// Runs `sluice export` over the data dir: resolves the plan, opens the
/// catalog and the destination, exports, and prints the summary on standard
/// error.
pub async fn run(args: &ExportArgs, data_dir: &Path) -> Result<ExportTotals, ExportError> {
    let plan = ExportPlan::from_args(args)?;
    let ctx = crate::catalog::open_catalog(data_dir)?;
    let destination = StoreLocation::parse(&args.to)?;
    if destination.root_url().scheme() == "file" {
        // LocalFileSystem creates missing parents of each object, but a
        // lake root the user named should exist with private permissions.
        create_private_dir(&destination.directory_url(""), &args.to)?;
    }
    let started = std::time::Instant::now();
    let totals = export(&ctx, &plan, &destination, !args.quiet).await?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "export: {} units ({} resumed), {} files, {} rows, {} to {destination} in {:.2} s \
         ({:.0} rows/s, {:.1} MB/s); {} old parts replaced",
        totals.units,
        totals.units_resumed,
        totals.files,
        totals.rows,
        progress::format_bytes(totals.bytes),
        secs,
        totals.rows as f64 / secs,
        totals.bytes as f64 / 1e6 / secs,
        totals.stale_deleted,
    );
    Ok(totals)
}

/// Creates the local directory behind a `file://` root URL, owner-only.
fn create_private_dir(url: &str, shown: &str) -> Result<(), ExportError> {
    let path: PathBuf = url::Url::parse(url)
        .ok()
        .and_then(|u| u.to_file_path().ok())
        .ok_or_else(|| ExportError::Usage(format!("--to {shown}: not a local directory")))?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&path).map_err(|e| {
        ExportError::Usage(format!(
            "--to {shown}: cannot create {}: {e}",
            path.display()
        ))
    })
}

/// Parses unix seconds, `YYYY-MM-DD` (midnight UTC) or RFC 3339.
pub fn parse_time(flag: &str, text: &str) -> Result<i64, ExportError> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    let candidate = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&candidate)
        .map(|ns| ns.div_euclid(1_000_000_000))
        .map_err(|e| {
            ExportError::Usage(format!(
                "{flag} {text:?}: not unix seconds, YYYY-MM-DD or RFC 3339 ({e})"
            ))
        })
}

/// Partition values go into paths unescaped, so they must be plain names.
fn check_partition_value(flag: &str, value: &str) -> Result<(), ExportError> {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if plain {
        Ok(())
    } else {
        Err(ExportError::Usage(format!(
            "{flag} {value:?}: use letters, digits, '.', '_' and '-' only"
        )))
    }
}

/// This machine's hostname.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call;
    // gethostname writes at most `len` bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ExportArgs,
    }

    fn plan(argv: &[&str]) -> Result<ExportPlan, ExportError> {
        let mut full = vec!["export"];
        full.extend(argv);
        ExportPlan::from_args(&Wrapper::try_parse_from(full).expect("parse").args)
    }

    #[test]
    fn the_range_widens_to_whole_partitions() {
        let p = plan(&[
            "--to",
            "/x",
            "--host-identifier",
            "h",
            "--since",
            "2024-05-01T12:30:00Z",
            "--until",
            "2024-05-01T13:00:01Z",
        ])
        .expect("plan");
        assert_eq!(p.since, Some(1_714_564_800)); // 12:00
        assert_eq!(p.until, Some(1_714_572_000)); // 14:00
        assert_eq!(
            parse_time("--since", "2024-05-01").expect("date"),
            1_714_521_600
        );
        assert_eq!(
            parse_time("--since", "1714521600").expect("secs"),
            1_714_521_600
        );
        assert!(parse_time("--since", "yesterday").is_err());
        assert!(!p.tables.iter().any(|t| t.name == "osquery_events"));
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        for argv in [
            &["--to", "/x", "--host-identifier", "a/b"][..],
            &[
                "--to",
                "/x",
                "--host-identifier",
                "h",
                "--layout",
                "security-lake",
            ],
            &[
                "--to",
                "/x",
                "--host-identifier",
                "h",
                "--layout",
                "security-lake",
                "--format",
                "ocsf",
                "--region",
                "r",
            ],
            &[
                "--to",
                "/x",
                "--host-identifier",
                "h",
                "--format",
                "ocsf",
                "--table",
                "socket_events",
            ],
            &["--to", "/x", "--host-identifier", "h", "--table", "nope"],
            &[
                "--to",
                "/x",
                "--host-identifier",
                "h",
                "--since",
                "2024-02-01",
                "--until",
                "2024-01-01",
            ],
        ] {
            assert!(matches!(plan(argv), Err(ExportError::Usage(_))), "{argv:?}");
        }
        assert!(hostname().is_some());
    }
}
