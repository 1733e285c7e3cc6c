//! `sluice status`: the figures of a running daemon, read from its
//! metrics endpoint.
//!
//! The address comes from `--metrics ADDR`, else from the `DATA_DIR/.daemon`
//! file the daemon writes once it listens, else from the config's
//! `[metrics] listen`. The endpoint's text is parsed back into numbers and
//! printed as a short report (or as is, with `--raw`), so `status` shows
//! exactly what Prometheus would scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use sluice_ingest::gates::DropReason;
use sluice_schemas::TABLES;

use crate::cli::DataDirArg;
use crate::config::Config;

/// Arguments of `sluice status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The daemon's data dir (its `.daemon` file says where it listens).
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// The daemon's config; its `[metrics]` section says where to ask.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The metrics address (`HOST:PORT`), overriding the above.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// A file holding the metrics bearer token (else the config's
    /// `metrics.token_file`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the metrics as the endpoint serves them.
    #[arg(long)]
    pub raw: bool,
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The token file is unusable.
    #[error(transparent)]
    Token(#[from] super::metrics::MetricsError),
    /// Nobody answered.
    #[error("no sluice daemon answers at {addr} ({source}); is `sluice run` running?")]
    Connect {
        /// Where we asked.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The endpoint answered with something other than metrics.
    #[error("{addr} answered {status}")]
    Http {
        /// Where we asked.
        addr: String,
        /// The status line.
        status: String,
    },
}

/// Samples by series (`name{labels}`).
pub type Samples = BTreeMap<String, f64>;

/// Parses the text exposition format into samples; comments and lines that
/// are not `series value` are skipped.
pub fn parse_exposition(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Where to ask: the flag, the state file, the config, the default.
fn metrics_address(args: &StatusArgs, config: &Config) -> String {
    if let Some(addr) = &args.metrics {
        return addr.clone();
    }
    let state = args.data_dir.resolve().join(super::STATE_FILE);
    if let Ok(text) = std::fs::read_to_string(&state)
        && let Some(url) = text.lines().find_map(|l| l.strip_prefix("metrics "))
        && let Some(addr) = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
    {
        return addr.to_string();
    }
    config.metrics.listen.to_string()
}

/// Fetches `/metrics` from `addr` with a plain HTTP/1.0 GET.
pub fn scrape(addr: &str, token: Option<&str>) -> Result<String, StatusError> {
    let connect_error = |source| StatusError::Connect {
        addr: addr.to_string(),
        source,
    };
    let target: SocketAddr = addr
        .to_socket_addrs()
        .map_err(connect_error)?
        .next()
        .ok_or_else(|| {
            connect_error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address",
            ))
        })?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(connect_error)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(connect_error)?;
    let mut request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(token) = token {
        let _ = write!(request, "Authorization: Bearer {token}\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(connect_error)?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(connect_error)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    if !status.contains(" 200 ") {
        return Err(StatusError::Http {
            addr: addr.to_string(),
            status,
        });
    }
    Ok(body.to_string())
}

fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The report `sluice status` prints.
pub fn render(addr: &str, samples: &Samples) -> String {
    let get = |series: &str| samples.get(series).copied().unwrap_or(0.0);
    let mut out = String::new();
    let uptime = get("sluice_uptime_seconds") as u64;
    let _ = writeln!(
        out,
        "sluice daemon at http://{addr}/metrics: up {}h {:02}m {:02}s, CPU {:.1} s, RSS {}",
        uptime / 3600,
        uptime / 60 % 60,
        uptime % 60,
        get("sluice_process_cpu_seconds_total"),
        samples
            .get("sluice_process_resident_memory_bytes")
            .map_or_else(|| "n/a".to_string(), |b| human_bytes(*b)),
    );
    let _ = writeln!(
        out,
        "  {:<24} {:>12} {:>12} {:>12}  dropped by reason",
        "table", "in", "stored", "Parquet"
    );
    for table in TABLES {
        let name = table.name;
        let series = |family: &str| get(&format!("{family}{{table=\"{name}\"}}"));
        let (events_in, out_rows) = (
            series("sluice_events_in_total"),
            series("sluice_events_out_total"),
        );
        let parquet = series("sluice_parquet_bytes");
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter_map(|reason| {
                let n = get(&format!(
                    "sluice_events_dropped_total{{table=\"{name}\",reason=\"{}\"}}",
                    reason.name()
                ));
                (n > 0.0).then(|| format!("{} {n}", reason.name()))
            })
            .collect();
        if events_in == 0.0 && out_rows == 0.0 && parquet == 0.0 && drops.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "  {name:<24} {events_in:>12} {out_rows:>12} {:>12}  {}",
            human_bytes(parquet),
            if drops.is_empty() {
                "-".to_string()
            } else {
                drops.join(", ")
            }
        );
    }
    let _ = writeln!(
        out,
        "  queue: {} batches, {} of {}",
        get("sluice_queue_batches"),
        human_bytes(get("sluice_queue_bytes")),
        human_bytes(get("sluice_queue_budget_bytes")),
    );
    let _ = writeln!(
        out,
        "  storage: hot tail {}, WAL {}, {} Parquet files published, {} failed rolls, {} rows refused",
        human_bytes(get("sluice_hot_tail_bytes")),
        human_bytes(get("sluice_wal_bytes")),
        get("sluice_parquet_files_published_total"),
        get("sluice_storage_failed_rolls_total"),
        get("sluice_storage_refused_rows_total"),
    );
    if samples.contains_key("sluice_upload_lag_seconds") {
        let _ = writeln!(
            out,
            "  upload: {} files ({}) confirmed, {} pending ({}), lag {:.0} s, {} failed attempts",
            get("sluice_upload_files_total"),
            human_bytes(get("sluice_upload_bytes_total")),
            get("sluice_upload_pending_files"),
            human_bytes(get("sluice_upload_pending_bytes")),
            get("sluice_upload_lag_seconds"),
            get("sluice_upload_failed_attempts_total"),
        );
    } else {
        let _ = writeln!(out, "  upload: off");
    }
    for source in ["file_events", "eslogger"] {
        let series = |family: &str| get(&format!("{family}{{source=\"{source}\"}}"));
        let up = series("sluice_source_up");
        let restarts = series("sluice_source_restarts_total");
        let errors = series("sluice_source_errors_total");
        if up == 0.0 && restarts == 0.0 && errors == 0.0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  source {source}: {}, {restarts} restarts, {errors} errors, {} lines skipped",
            if up > 0.0 { "up" } else { "down" },
            series("sluice_source_skipped_lines_total"),
        );
    }
    let _ = writeln!(
        out,
        "  config reloads: {} applied, {} refused",
        get("sluice_config_reloads_total"),
        get("sluice_config_reload_failures_total"),
    );
    out
}

/// Runs `sluice status`, printing to standard output.
pub fn run(args: &StatusArgs) -> Result<(), StatusError> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let token_file = args
        .token_file
        .as_ref()
        .or(config.metrics.token_file.as_ref());
    let token = token_file
        .map(|path| super::metrics::read_token(path))
        .transpose()?;
    let addr = metrics_address(args, &config);
    let text = scrape(&addr, token.as_deref())?;
    if args.raw {
        print!("{text}");
    } else {
        print!("{}", render(&addr, &parse_exposition(&text)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_tables_with_activity_and_their_drops() {
        let text = "# HELP x y\n\
            sluice_events_in_total{table=\"file_events\"} 7\n\
            sluice_events_out_total{table=\"file_events\"} 6\n\
            sluice_events_dropped_total{table=\"file_events\",reason=\"backpressure\"} 1\n\
            sluice_events_in_total{table=\"es_process_events\"} 0\n\
            sluice_source_up{source=\"file_events\"} 1\n\
            sluice_uptime_seconds 3725.5\n";
        let samples = parse_exposition(text);
        assert_eq!(samples["sluice_uptime_seconds"], 3725.5);
        let report = render("127.0.0.1:1", &samples);
        assert!(report.contains("up 1h 02m 05s"), "{report}");
        assert!(
            report.lines().any(|l| l.contains("file_events")
                && l.contains(" 7 ")
                && l.contains(" 6 ")
                && l.contains("backpressure 1")),
            "{report}"
        );
        assert!(!report.contains("es_process_events"), "{report}");
        assert!(report.contains("source file_events: up"), "{report}");
        assert!(report.contains("upload: off"), "{report}");
    }

    #[test]
    fn nobody_listening_is_a_clear_error() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = scrape(&format!("127.0.0.1:{port}"), None).unwrap_err();
        assert!(
            err.to_string().contains("is `sluice run` running?"),
            "{err}"
        );
    }
}
