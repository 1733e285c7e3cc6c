//! The daemon's figures, and the Prometheus endpoint that shows them.
//!
//! Every stage of the pipeline counts what passes through it in one shared
//! [`Metrics`]: the sources count the rows they hand on (`events_in`) and
//! what they drop, the writer counts what storage acknowledged
//! (`events_out`) and refused, the queue between them its depth. Counters
//! are relaxed atomics, so counting costs a few nanoseconds per *batch*.
//!
//! The figures that live on disk (WAL and Parquet bytes, the files waiting
//! for upload and how old the oldest is) are measured when someone asks, by
//! [`Metrics::render`]: an idle daemon does no work for its metrics.
//!
//! The endpoint is a small hand-written HTTP/1.0 responder on a tokio
//! listener (`GET /metrics`, text exposition format 0.0.4). It binds
//! loopback by default; any other address needs a bearer token, as the
//! Flight SQL server does.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_ingest::gates::{DropCounters, DropReason, table_slot};
use sluice_schemas::{TABLES, TableDef};
use sluice_sinks::Storage;
use sluice_sinks::object_store::upload::UploadStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const N_TABLES: usize = TABLES.len();
const N_REASONS: usize = DropReason::ALL.len();

/// Per-source liveness.
#[derive(Debug, Default)]
pub struct SourceGauges {
    /// 1 while the source is collecting, 0 while it waits to restart.
    pub up: AtomicU64,
    /// Times the source was (re)started after failing or exiting.
    pub restarts: AtomicU64,
    /// Errors the source reported (e.g. the OS watcher's queue overflowing,
    /// a command that could not start).
    pub errors: AtomicU64,
    /// Input lines that could not become rows (malformed, truncated,
    /// unmapped, missing a field).
    pub skipped_lines: AtomicU64,
}

/// The daemon's counters, shared by every stage.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    start_unix: f64,
    events_in: [AtomicU64; N_TABLES],
    events_out: [AtomicU64; N_TABLES],
    dropped: [[AtomicU64; N_REASONS]; N_TABLES],
    queue_bytes: AtomicI64,
    queue_batches: AtomicI64,
    queue_budget: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// `file_events` liveness.
    pub file_events: SourceGauges,
    /// `eslogger` liveness.
    pub eslogger: SourceGauges,
    upload: std::sync::OnceLock<UploadView>,
}

/// What the uploader exposes, once it runs.
#[derive(Debug, Clone)]
struct UploadView {
    stats: Arc<UploadStats>,
    keep_local: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Zeroed counters; uptime starts now.
    pub fn new() -> Self {
        Metrics {
            started: Instant::now(),
            start_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            events_in: std::array::from_fn(|_| AtomicU64::new(0)),
            events_out: std::array::from_fn(|_| AtomicU64::new(0)),
            dropped: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            queue_bytes: AtomicI64::new(0),
            queue_batches: AtomicI64::new(0),
            queue_budget: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            file_events: SourceGauges::default(),
            eslogger: SourceGauges::default(),
            upload: std::sync::OnceLock::new(),
        }
    }

    /// Rows a source handed on for `table`.
    pub fn add_in(&self, table: &TableDef, rows: u64) {
        self.events_in[table_slot(table)].fetch_add(rows, Ordering::Relaxed);
    }

    /// Rows storage acknowledged for `table`.
    pub fn add_out(&self, table: &TableDef, rows: u64) {
        self.events_out[table_slot(table)].fetch_add(rows, Ordering::Relaxed);
    }

    /// Rows of `table` dropped for `reason`.
    pub fn add_dropped(&self, table: &TableDef, reason: DropReason, rows: u64) {
        self.dropped[table_slot(table)][reason.index()].fetch_add(rows, Ordering::Relaxed);
    }

    /// Adds what `now` counts beyond `before` (two snapshots of one
    /// decoder's gate counters), so a source can publish its decoder's
    /// running totals without the metrics knowing the decoder.
    pub fn add_drop_delta(&self, before: &DropCounters, now: &DropCounters) {
        for table in TABLES {
            for reason in DropReason::ALL {
                let delta = now
                    .dropped(table, reason)
                    .saturating_sub(before.dropped(table, reason));
                if delta > 0 {
                    self.add_dropped(table, reason, delta);
                }
            }
        }
    }

    /// Rows dropped so far for `table` and `reason`.
    pub fn dropped(&self, table: &TableDef, reason: DropReason) -> u64 {
        self.dropped[table_slot(table)][reason.index()].load(Ordering::Relaxed)
    }

    /// Rows handed on so far for `table`.
    pub fn events_in(&self, table: &TableDef) -> u64 {
        self.events_in[table_slot(table)].load(Ordering::Relaxed)
    }

    /// Rows acknowledged so far for `table`.
    pub fn events_out(&self, table: &TableDef) -> u64 {
        self.events_out[table_slot(table)].load(Ordering::Relaxed)
    }

    /// A batch of `bytes` entered (`+1`) or left (`-1`) the queue.
    pub fn queue_moved(&self, sign: i64, bytes: usize) {
        self.queue_batches.fetch_add(sign, Ordering::Relaxed);
        self.queue_bytes
            .fetch_add(sign * bytes as i64, Ordering::Relaxed);
    }

    /// The queue's budget.
    pub fn set_queue_budget(&self, bytes: usize) {
        self.queue_budget.store(bytes as u64, Ordering::Relaxed);
    }

    /// A SIGHUP reload was applied (`ok`) or refused.
    pub fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reload_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// From now on, render the uploader's counters too.
    pub fn set_upload(&self, stats: Arc<UploadStats>, keep_local: bool) {
        let _ = self.upload.set(UploadView { stats, keep_local });
    }

    /// The text exposition: the counters, plus what `storage` and the data
    /// dir hold right now.
    pub fn render(&self, storage: &Storage) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let table_family = |out: &mut String, name: &str, help: &str, values: &[AtomicU64]| {
            family(out, name, "counter", help);
            for (table, value) in TABLES.iter().zip(values) {
                let _ = writeln!(
                    out,
                    "{name}{{table=\"{}\"}} {}",
                    table.name,
                    value.load(Ordering::Relaxed)
                );
            }
        };
        table_family(
            &mut out,
            "sluice_events_in_total",
            "Rows the sources handed to the pipeline, after the gates.",
            &self.events_in,
        );
        table_family(
            &mut out,
            "sluice_events_out_total",
            "Rows storage acknowledged (durable in the write-ahead log).",
            &self.events_out,
        );
        family(
            &mut out,
            "sluice_events_dropped_total",
            "counter",
            "Rows not stored, by table and reason.",
        );
        for (table, reasons) in TABLES.iter().zip(&self.dropped) {
            for (reason, value) in DropReason::ALL.iter().zip(reasons) {
                let _ = writeln!(
                    out,
                    "sluice_events_dropped_total{{table=\"{}\",reason=\"{}\"}} {}",
                    table.name,
                    reason.name(),
                    value.load(Ordering::Relaxed)
                );
            }
        }
        gauge(
            &mut out,
            "sluice_queue_batches",
            "Batches waiting between the sources and storage.",
            self.queue_batches.load(Ordering::Relaxed).max(0) as f64,
        );
        gauge(
            &mut out,
            "sluice_queue_bytes",
            "Arrow bytes waiting between the sources and storage.",
            self.queue_bytes.load(Ordering::Relaxed).max(0) as f64,
        );
        gauge(
            &mut out,
            "sluice_queue_budget_bytes",
            "The queue's memory budget; beyond it live sources drop batches.",
            self.queue_budget.load(Ordering::Relaxed) as f64,
        );

        let stats = storage.stats();
        gauge(
            &mut out,
            "sluice_hot_tail_bytes",
            "Arrow bytes held in memory, not yet rolled to Parquet.",
            stats.hot_bytes as f64,
        );
        counter(
            &mut out,
            "sluice_parquet_files_published_total",
            "Parquet files published by rolls.",
            stats.files_published,
        );
        counter(
            &mut out,
            "sluice_storage_failed_rolls_total",
            "Rolls to Parquet that failed and will be retried.",
            stats.failed_rolls,
        );
        counter(
            &mut out,
            "sluice_storage_refused_rows_total",
            "Rows storage refused (full disk, full hot tail).",
            stats.refused_rows,
        );
        let disk = DiskFigures::measure(storage.data_dir(), self.upload.get());
        gauge(
            &mut out,
            "sluice_wal_bytes",
            "Bytes of write-ahead log segments on disk.",
            disk.wal_bytes as f64,
        );
        family(
            &mut out,
            "sluice_parquet_bytes",
            "gauge",
            "Bytes of published Parquet files in the data dir, per table.",
        );
        for (table, bytes) in &disk.parquet_bytes {
            let _ = writeln!(out, "sluice_parquet_bytes{{table=\"{table}\"}} {bytes}");
        }
        if let Some(upload) = self.upload.get() {
            let s = &upload.stats;
            counter(
                &mut out,
                "sluice_upload_files_total",
                "Files the object store confirmed.",
                s.files_uploaded.load(Ordering::Relaxed),
            );
            counter(
                &mut out,
                "sluice_upload_bytes_total",
                "Bytes the object store confirmed.",
                s.bytes_uploaded.load(Ordering::Relaxed),
            );
            counter(
                &mut out,
                "sluice_upload_failed_attempts_total",
                "Upload attempts that failed and will be retried.",
                s.failed_attempts.load(Ordering::Relaxed),
            );
            gauge(
                &mut out,
                "sluice_upload_pending_files",
                "Published files not yet confirmed by the object store.",
                disk.pending_files as f64,
            );
            gauge(
                &mut out,
                "sluice_upload_pending_bytes",
                "Bytes of published files not yet confirmed by the object store.",
                disk.pending_bytes as f64,
            );
            gauge(
                &mut out,
                "sluice_upload_lag_seconds",
                "Age of the oldest file waiting for upload (0 when none waits).",
                disk.oldest_pending_age.as_secs_f64(),
            );
        }
        let sources = [
            ("file_events", &self.file_events),
            ("eslogger", &self.eslogger),
        ];
        type Pick = fn(&SourceGauges) -> &AtomicU64;
        let source_families: [(&str, &str, &str, Pick); 4] = [
            (
                "sluice_source_up",
                "gauge",
                "1 while the source collects, 0 while stopped or waiting to restart.",
                |g| &g.up,
            ),
            (
                "sluice_source_restarts_total",
                "counter",
                "Times the source was started again after it ended.",
                |g| &g.restarts,
            ),
            (
                "sluice_source_errors_total",
                "counter",
                "Errors the source reported (start failures, OS queue overflows).",
                |g| &g.errors,
            ),
            (
                "sluice_source_skipped_lines_total",
                "counter",
                "Input lines that could not become rows.",
                |g| &g.skipped_lines,
            ),
        ];
        for (name, kind, help, pick) in source_families {
            family(&mut out, name, kind, help);
            for (source, gauges) in sources {
                let _ = writeln!(
                    out,
                    "{name}{{source=\"{source}\"}} {}",
                    pick(gauges).load(Ordering::Relaxed)
                );
            }
        }
        counter(
            &mut out,
            "sluice_config_reloads_total",
            "SIGHUP reloads applied.",
            self.reloads.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "sluice_config_reload_failures_total",
            "SIGHUP reloads refused (the old config stays).",
            self.reload_failures.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "sluice_start_time_seconds",
            "When the daemon started, seconds since the epoch.",
            self.start_unix,
        );
        gauge(
            &mut out,
            "sluice_uptime_seconds",
            "Seconds since the daemon started.",
            self.started.elapsed().as_secs_f64(),
        );
        let process = ProcessFigures::measure();
        gauge(
            &mut out,
            "sluice_process_cpu_seconds_total",
            "User and system CPU time of the daemon.",
            process.cpu_seconds,
        );
        if let Some(rss) = process.resident_bytes {
            gauge(
                &mut out,
                "sluice_process_resident_memory_bytes",
                "Resident memory of the daemon.",
                rss as f64,
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// What the data dir holds, measured by walking it.
#[derive(Debug, Default)]
struct DiskFigures {
    wal_bytes: u64,
    parquet_bytes: Vec<(String, u64)>,
    pending_files: u64,
    pending_bytes: u64,
    oldest_pending_age: Duration,
}

impl DiskFigures {
    fn measure(data_dir: &Path, upload: Option<&UploadView>) -> DiskFigures {
        let mut figures = DiskFigures {
            wal_bytes: dir_bytes(&data_dir.join(sluice_sinks::storage::WAL_DIR)),
            ..DiskFigures::default()
        };
        let now = SystemTime::now();
        for table in TABLES {
            let mut bytes = 0;
            let mut stack: Vec<PathBuf> = vec![data_dir.join(table.name)];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_dir() {
                        if !name.starts_with('.') {
                            stack.push(entry.path());
                        }
                        continue;
                    }
                    if name.starts_with('.') || !name.ends_with(".parquet") {
                        continue;
                    }
                    bytes += meta.len();
                    let Some(upload) = upload else { continue };
                    let uploaded =
                        upload.keep_local && dir.join(format!(".{name}.uploaded")).exists();
                    if !uploaded {
                        figures.pending_files += 1;
                        figures.pending_bytes += meta.len();
                        let age = meta
                            .modified()
                            .ok()
                            .and_then(|m| now.duration_since(m).ok())
                            .unwrap_or_default();
                        figures.oldest_pending_age = figures.oldest_pending_age.max(age);
                    }
                }
            }
            figures.parquet_bytes.push((table.name.to_string(), bytes));
        }
        figures
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// CPU time and resident memory of this process.
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: Option<u64>,
}

impl ProcessFigures {
    fn measure() -> ProcessFigures {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let cpu_seconds = if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            secs(usage.ru_utime) + secs(usage.ru_stime)
        } else {
            0.0
        };
        // Linux only; elsewhere the series is left out rather than guessed.
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            });
        ProcessFigures {
            cpu_seconds,
            resident_bytes,
        }
    }
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve metrics on {0} without a token: only loopback addresses may go \
         unauthenticated; set metrics.token_file or listen on 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    /// The token file could not be read, or holds no usable token.
    #[error("metrics token file {path}: {reason}")]
    Token {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The address could not be bound.
    #[error("cannot serve metrics on {listen}: {source}")]
    Bind {
        /// The address.
        listen: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Reads a bearer token file: at least 16 printable ASCII characters.
pub fn read_token(path: &Path) -> Result<String, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| MetricsError::Token {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let token = text.trim().to_string();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MetricsError::Token {
            path: path.to_path_buf(),
            reason: "the token must be 16 or more printable ASCII characters without spaces".into(),
        });
    }
    Ok(token)
}

/// Binds `listen` (refusing a non-loopback address without a token).
pub async fn bind(
    listen: SocketAddr,
    token: Option<&str>,
) -> Result<tokio::net::TcpListener, MetricsError> {
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(MetricsError::TokenRequired(listen));
    }
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| MetricsError::Bind { listen, source })
}

/// Answers `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    storage: Arc<Storage>,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let token: Option<Arc<str>> = token.map(Arc::from);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.as_mut() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (metrics, storage, token) = (metrics.clone(), storage.clone(), token.clone());
        tokio::spawn(async move {
            // A slow or silent client gets a few seconds, not a task forever.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                answer(stream, &metrics, storage, token.as_deref()),
            )
            .await;
        });
    }
}

/// Reads one request and writes one response.
async fn answer(
    mut stream: tokio::net::TcpStream,
    metrics: &Arc<Metrics>,
    storage: Arc<Storage>,
    token: Option<&str>,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
        if request.len() > 16 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&request);
    let (status, body) = route(&text, token, || {
        // Walking the data dir is blocking work: keep it off the async workers.
        let metrics = metrics.clone();
        move || metrics.render(&storage)
    });
    let body = match body {
        Body::Text(text) => text,
        Body::Render(render) => tokio::task::spawn_blocking(render)
            .await
            .unwrap_or_else(|_| String::new()),
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

enum Body<F> {
    Text(String),
    Render(F),
}

/// Decides the response to a request: the status line and what to send.
fn route<F: FnOnce() -> String + Send + 'static>(
    request: &str,
    token: Option<&str>,
    render: impl FnOnce() -> F,
) -> (&'static str, Body<F>) {
    let mut lines = request.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    if let Some(token) = token {
        let presented = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| value.trim().strip_prefix("Bearer "))
            .map(str::trim);
        if !presented.is_some_and(|p| same_bytes(p.as_bytes(), token.as_bytes())) {
            return (
                "401 Unauthorized",
                Body::Text("bearer token required\n".into()),
            );
        }
    }
    match (method, path) {
        ("GET", "/metrics") | ("GET", "/") => ("200 OK", Body::Render(render())),
        ("GET", _) => ("404 Not Found", Body::Text("try /metrics\n".into())),
        _ => (
            "405 Method Not Allowed",
            Body::Text("only GET /metrics\n".into()),
        ),
    }
}

/// Compares without an early exit, so timing does not tell how much of a
/// guessed token was right.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_schemas::{ES_PROCESS_EVENTS, FILE_EVENTS};

    fn storage() -> (tempfile::TempDir, Arc<Storage>) {
        let dir = tempfile::tempdir().unwrap();
        let (storage, _) =
            Storage::open(dir.path(), sluice_sinks::StorageOptions::default()).unwrap();
        (dir, Arc::new(storage))
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn counters_and_drop_deltas_show_in_the_exposition() {
        let (_dir, storage) = storage();
        let metrics = Metrics::new();
        metrics.add_in(&FILE_EVENTS, 5);
        metrics.add_out(&FILE_EVENTS, 4);
        metrics.add_dropped(&FILE_EVENTS, DropReason::Backpressure, 1);
        let before = DropCounters::default();
        let mut now = DropCounters::default();
        now.drop_n(table_slot(&ES_PROCESS_EVENTS), DropReason::Muted, 3);
        metrics.add_drop_delta(&before, &now);
        metrics.add_drop_delta(&now, &now);
        metrics.queue_moved(1, 100);
        metrics.queue_moved(1, 50);
        metrics.queue_moved(-1, 100);
        let text = metrics.render(&storage);
        assert_eq!(
            value(&text, "sluice_events_in_total{table=\"file_events\"}"),
            5.0
        );
        assert_eq!(
            value(&text, "sluice_events_out_total{table=\"file_events\"}"),
            4.0
        );
        assert_eq!(
            value(
                &text,
                "sluice_events_dropped_total{table=\"es_process_events\",reason=\"muted\"}"
            ),
            3.0
        );
        assert_eq!(value(&text, "sluice_queue_batches"), 1.0);
        assert_eq!(value(&text, "sluice_queue_bytes"), 50.0);
        assert!(value(&text, "sluice_wal_bytes") >= 0.0);
        assert!(value(&text, "sluice_process_cpu_seconds_total") > 0.0);
        // No uploader, no upload series.
        assert!(!text.contains("sluice_upload_lag_seconds"));
        // Every sample line is `name{labels} number` or `name number`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, number) = line.rsplit_once(' ').expect(line);
            number.parse::<f64>().expect(line);
        }
    }

    #[test]
    fn the_router_checks_the_token_and_the_path() {
        let render = || || "body".to_string();
        let req = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
        assert_eq!(route(req, None, render).0, "200 OK");
        assert_eq!(
            route(req, Some("0123456789abcdef"), render).0,
            "401 Unauthorized"
        );
        let authed = "GET /metrics HTTP/1.1\r\nauthorization: Bearer 0123456789abcdef\r\n\r\n";
        assert_eq!(route(authed, Some("0123456789abcdef"), render).0, "200 OK");
        assert_eq!(
            route(authed, Some("0123456789abcdeX"), render).0,
            "401 Unauthorized"
        );
        assert_eq!(
            route("GET /x HTTP/1.0\r\n\r\n", None, render).0,
            "404 Not Found"
        );
        assert_eq!(
            route("POST /metrics HTTP/1.0\r\n\r\n", None, render).0,
            "405 Method Not Allowed"
        );
    }

    #[tokio::test]
    async fn a_non_loopback_address_needs_a_token() {
        let err = bind("0.0.0.0:0".parse().unwrap(), None).await.unwrap_err();
        assert!(matches!(err, MetricsError::TokenRequired(_)), "{err}");
        assert!(bind("127.0.0.1:0".parse().unwrap(), None).await.is_ok());
    }
}
