//! `sluice run`: the long-running daemon.
//!
//! The data's path through the daemon:
//!
//! ```text
//! file_events (notify) ─┐                              ┌─▶ Flight SQL server (queries)
//! eslogger (child)  ────┼─▶ Pipeline ─▶ writer thread ─▶ Storage: WAL → hot tail → Parquet
//!                       │   (bounded,                  └─▶ uploader (object store)
//!                       │    drops counted)
//!                       └── Metrics (every stage counts) ─▶ /metrics ─▶ `sluice status`
//! ```
//!
//! Each source runs on its own thread and never waits for storage: it
//! [offers](pipeline::Pipeline::offer) batches, and a full queue drops and
//! counts them. One writer thread appends to [`Storage`], which acknowledges
//! a batch once it is in the write-ahead log; a maintenance thread rolls
//! old batches to Parquet once a second and runs retention and compaction.
//! The query server, the metrics endpoint, the uploader and the signal
//! handlers run on a small tokio runtime.
//!
//! # Signals
//!
//! - **SIGTERM, SIGINT**: stop the sources (each hands on what it holds),
//!   drain the queue into storage, roll everything to Parquet and fsync the
//!   WAL, then stop the servers. Nothing acknowledged is lost, and a batch
//!   that could not be acknowledged was counted as dropped.
//! - **SIGHUP**: read the config file again. `[gates]` and
//!   `[sources.file_events]` (and the eslogger command line) take effect at
//!   once; every other section needs a restart, and a reload that changes
//!   one says so in the log. A config that does not parse is refused and
//!   the old one stays.
//!
//! # Where it listens
//!
//! Once everything is up the daemon prints
//! `sluice: serving Flight SQL on grpc://ADDR` and
//! `sluice: metrics on http://ADDR/metrics` on standard error, and writes the
//! same addresses (and its pid) to `DATA_DIR/.daemon`, which `sluice status`
//! reads; the file is removed at a clean exit.

pub mod eslogger;
pub mod file_events;
pub mod macos;
pub mod metrics;
pub mod pipeline;
pub mod status;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_ingest::gates::{GateConfigError, Gates};
use sluice_sinks::object_store::StoreLocation;
use sluice_sinks::object_store::upload::{AfterUpload, UploadOptions, Uploader};
use sluice_sinks::{CompactionPolicy, Storage, StorageError, StorageOptions, WalOptions};

use crate::cli::DataDirArg;
use crate::config::{Config, ConfigError, SourceKind};
use crate::flight::{ServeConfig, ServeError, SessionFactory};
use crate::query::QueryError;

use eslogger::{Backoff, CommandSpec, EsloggerSource};
use file_events::FileEventsSource;
use metrics::{Metrics, MetricsError};
use pipeline::Pipeline;

/// The name of the file, in the data dir, that says where a running daemon
/// listens.
pub const STATE_FILE: &str = ".daemon";

/// How often the maintenance thread rolls old batches and fsyncs the WAL
/// under an interval policy.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// Arguments of `sluice run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Where the tables are kept (wins over `storage.data_dir`).
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// The TOML config (see deploy/sluice.example.toml); without it, the
    /// platform's defaults. SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How a source batches rows before handing them on.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Hand on once this many rows are buffered.
    pub rows: usize,
    /// ... or once the oldest buffered row is this old.
    pub flush: Duration,
}

/// Why the daemon could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config's values do not work together.
    #[error("config: {0}")]
    Invalid(String),
    /// The gates cannot be built.
    #[error(transparent)]
    Gates(#[from] GateConfigError),
    /// The `file_events` paths are not valid.
    #[error("sources.file_events: {0}")]
    FileEventsConfig(#[source] GateConfigError),
    /// The OS would not watch a `file_events` directory.
    #[error("file_events: {0}")]
    FileEventsWatch(#[source] sluice_ingest::fim::WatchError),
    /// Storage could not be opened or flushed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The query server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The object store URL could not be opened.
    #[error("upload.url: {0}")]
    Store(#[from] sluice_sinks::object_store::StoreError),
    /// A thread or the async runtime could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The state file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// What the signal task tells the main thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Reload,
    Stop,
}

/// Nanoseconds since the epoch, now.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The data dir: `--data-dir`, else `storage.data_dir`, else the default.
fn resolve_data_dir(args: &RunArgs, config: &Config) -> PathBuf {
    match (args.data_dir.flag(), &config.storage.data_dir) {
        (Some(flag), _) => flag.to_path_buf(),
        (None, Some(configured)) => configured.clone(),
        (None, None) => args.data_dir.resolve(),
    }
}

fn storage_options(config: &Config) -> Result<StorageOptions, DaemonError> {
    let s = &config.storage;
    Ok(StorageOptions {
        wal: WalOptions {
            fsync: s.fsync_policy().map_err(DaemonError::Invalid)?,
            ..WalOptions::default()
        },
        roll_bytes: s.roll_mib.saturating_mul(1 << 20),
        roll_age: Duration::from_secs(s.roll_seconds),
        hot_budget_bytes: s.hot_budget_mib.saturating_mul(1 << 20),
        retention: config.retention.policy(),
        compaction: CompactionPolicy {
            enabled: s.compaction,
            ..CompactionPolicy::default()
        },
        ..StorageOptions::default()
    })
}

/// The eslogger command line the config asks for.
fn eslogger_spec(config: &Config) -> CommandSpec {
    let eslogger = &config.sources.eslogger;
    let mut args = eslogger.args.clone();
    args.extend(eslogger.event_names(config.gates.open_events));
    CommandSpec {
        program: eslogger.program.clone(),
        args,
    }
}

/// The SQL sessions the query server hands each statement: every event
/// table is the storage's hot tail plus the data dir's Parquet files, so a
/// row is queryable as soon as storage acknowledged it.
fn sessions(data_dir: &Path, storage: &Arc<Storage>) -> SessionFactory {
    let (data_dir, storage) = (data_dir.to_path_buf(), storage.clone());
    let caches = crate::catalog::FooterCaches::new();
    Arc::new(move || {
        crate::catalog::open_catalog_live(&data_dir, storage.clone(), &caches)
            .map_err(QueryError::from)
    })
}

/// The running sources.
#[derive(Debug, Default)]
struct Sources {
    file_events: Option<FileEventsSource>,
    eslogger: Option<EsloggerSource>,
}

impl Sources {
    fn start(
        config: &Config,
        data_dir: &Path,
        pipeline: &Arc<Pipeline>,
        metrics: &Arc<Metrics>,
    ) -> Result<Sources, DaemonError> {
        let batching = Batching {
            rows: config.sources.batch_rows,
            flush: Duration::from_millis(config.sources.flush_ms),
        };
        let mut sources = Sources::default();
        for kind in config.sources.enabled() {
            let started = match kind {
                SourceKind::FileEvents if sources.file_events.is_none() => {
                    let fim = file_events::effective_config(
                        config.sources.file_events.as_ref(),
                        data_dir,
                    );
                    FileEventsSource::start(
                        &fim,
                        config.sources.file_events_queue,
                        batching,
                        pipeline.clone(),
                        metrics.clone(),
                    )
                    .map(|s| sources.file_events = Some(s))
                }
                SourceKind::Eslogger if sources.eslogger.is_none() => {
                    let e = &config.sources.eslogger;
                    Gates::new(&config.gates)
                        .map_err(DaemonError::from)
                        .and_then(|gates| {
                            EsloggerSource::start(
                                eslogger_spec(config),
                                Backoff {
                                    min: Duration::from_millis(e.restart_min_ms),
                                    max: Duration::from_millis(e.restart_max_ms),
                                },
                                gates,
                                batching,
                                pipeline.clone(),
                                metrics.clone(),
                            )
                        })
                        .map(|s| sources.eslogger = Some(s))
                }
                _ => Ok(()),
            };
            if let Err(err) = started {
                sources.stop();
                return Err(err);
            }
            eprintln!("sluice: collecting {}", kind.name());
        }
        Ok(sources)
    }

    /// Applies what of a new config can change while running.
    fn reload(&self, config: &Config, data_dir: &Path) -> Result<(), DaemonError> {
        // Check everything first, so a reload applies wholly or not at all.
        let gates = Gates::new(&config.gates)?;
        let fim = file_events::effective_config(config.sources.file_events.as_ref(), data_dir);
        sluice_ingest::fim::FimRules::new(&fim).map_err(DaemonError::FileEventsConfig)?;
        if let Some(source) = &self.file_events {
            source.reload(fim);
        }
        if let Some(source) = &self.eslogger {
            source.reload(gates, eslogger_spec(config));
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(source) = self.file_events.take() {
            source.stop();
        }
        if let Some(source) = self.eslogger.take() {
            source.stop();
        }
    }
}

/// The sections a running daemon cannot change, named when a reload
/// changes them.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let (o, n) = (&old.sources, &new.sources);
    if o.enabled() != n.enabled()
        || o.batch_rows != n.batch_rows
        || o.flush_ms != n.flush_ms
        || o.file_events_queue != n.file_events_queue
        || o.eslogger.restart_min_ms != n.eslogger.restart_min_ms
        || o.eslogger.restart_max_ms != n.eslogger.restart_max_ms
    {
        changed.push("[sources] (enabled, batching, queue, restart delays)");
    }
    if old.storage != new.storage {
        changed.push("[storage]");
    }
    if old.retention != new.retention {
        changed.push("[retention]");
    }
    if old.upload != new.upload {
        changed.push("[upload]");
    }
    if old.server != new.server {
        changed.push("[server]");
    }
    if old.metrics != new.metrics {
        changed.push("[metrics]");
    }
    changed
}

/// Writes `DATA_DIR/.daemon` (0600, replaced atomically).
fn write_state_file(
    data_dir: &Path,
    flight: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
) -> Result<PathBuf, DaemonError> {
    let path = data_dir.join(STATE_FILE);
    let tmp = data_dir.join(format!("{STATE_FILE}.tmp"));
    let mut text = format!("pid {}\n", std::process::id());
    if let Some(addr) = flight {
        text.push_str(&format!("flight grpc://{addr}\n"));
    }
    if let Some(addr) = metrics {
        text.push_str(&format!("metrics http://{addr}/metrics\n"));
    }
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| DaemonError::StateFile {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: &RunArgs) -> Result<(), DaemonError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if config.gates.open_events {
        tracing::warn!("open events are on: expect the firehose");
    }
    let data_dir = resolve_data_dir(args, &config);
    let (storage, recovery) = Storage::open(&data_dir, storage_options(&config)?)?;
    let storage = Arc::new(storage);
    for cut in &recovery.torn {
        tracing::warn!("write-ahead log: {cut}");
    }
    if recovery.replayed_rows > 0 {
        eprintln!(
            "sluice: recovered {} rows from the write-ahead log",
            recovery.replayed_rows
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-run")
        .enable_all()
        .build()
        .map_err(DaemonError::Thread)?;
    let metrics = Arc::new(Metrics::new());
    let pipeline = Arc::new(Pipeline::new(
        config.storage.queue_mib.saturating_mul(1 << 20),
        metrics.clone(),
    ));
    let writer = pipeline
        .spawn_writer(storage.clone())
        .map_err(DaemonError::Thread)?;
    let (stop_maintenance, maintenance_stopped) = std::sync::mpsc::channel::<()>();
    let maintenance = {
        let storage = storage.clone();
        std::thread::Builder::new()
            .name("sluice-maintain".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    maintenance_stopped.recv_timeout(MAINTAIN_EVERY)
                {
                    if let Err(err) = storage.maintain() {
                        tracing::warn!(error = %err, "storage maintenance failed");
                    }
                }
            })
            .map_err(DaemonError::Thread)?
    };

    // From here on a failure must still stop what started and flush.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut rx = shutdown_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let (control_tx, control_rx) = std::sync::mpsc::channel::<Control>();
    let mut tasks = Vec::new();
    let started = (|| -> Result<(Sources, Option<PathBuf>), DaemonError> {
        // Signals first: a SIGTERM during start-up still flushes.
        let signals = install_signals(&runtime, control_tx.clone())?;
        tasks.push(signals);

        let metrics_addr = if config.metrics.enabled {
            let token = config
                .metrics
                .token_file
                .as_deref()
                .map(metrics::read_token)
                .transpose()?;
            let listener =
                runtime.block_on(metrics::bind(config.metrics.listen, token.as_deref()))?;
            let addr = listener.local_addr().ok();
            tasks.push(runtime.spawn(metrics::serve(
                listener,
                metrics.clone(),
                storage.clone(),
                token,
                shutdown(),
            )));
            if let Some(addr) = addr {
                eprintln!("sluice: metrics on http://{addr}/metrics");
            }
            addr
        } else {
            None
        };

        let flight_addr = if config.server.enabled {
            let serve_config = ServeConfig {
                listen: config.server.listen,
                token: crate::flight::load_token(config.server.token_file.as_deref())?,
            };
            serve_config.validate()?;
            let (bound_tx, bound_rx) = std::sync::mpsc::channel();
            let server = runtime.spawn(crate::flight::serve(
                serve_config,
                sessions(&data_dir, &storage),
                move |addr| {
                    let _ = bound_tx.send(addr);
                },
                shutdown(),
            ));
            match bound_rx.recv() {
                Ok(addr) => {
                    eprintln!("sluice: serving Flight SQL on grpc://{addr}");
                    tasks.push(runtime.spawn(async move {
                        if let Ok(Err(err)) = server.await {
                            tracing::error!(error = %err, "the Flight SQL server stopped");
                        }
                    }));
                    Some(addr)
                }
                // The server ended before binding: say why.
                Err(_) => {
                    return Err(match runtime.block_on(server) {
                        Ok(Err(err)) => err.into(),
                        _ => DaemonError::Invalid("the Flight SQL server did not start".into()),
                    });
                }
            }
        } else {
            None
        };

        if let Some(url) = &config.upload.url {
            let location = StoreLocation::parse(url)?;
            let uploader = Uploader::new(
                &data_dir,
                location,
                UploadOptions {
                    after_upload: if config.upload.keep_local {
                        AfterUpload::KeepLocal
                    } else {
                        AfterUpload::DeleteLocal
                    },
                    spool_limit_bytes: config.upload.spool_limit_mib.saturating_mul(1 << 20),
                    poll_interval: Duration::from_secs(config.upload.interval_seconds),
                    ..UploadOptions::default()
                },
            );
            metrics.set_upload(uploader.stats(), config.upload.keep_local);
            let stop = shutdown();
            tasks.push(runtime.spawn(async move { uploader.run(stop).await }));
            eprintln!("sluice: uploading to {url}");
        }

        let sources = Sources::start(&config, &data_dir, &pipeline, &metrics)?;
        let state = write_state_file(&data_dir, flight_addr, metrics_addr)?;
        Ok((sources, Some(state)))
    })();

    let outcome = match started {
        Ok((mut sources, state_file)) => {
            eprintln!("sluice: running (data dir {})", data_dir.display());
            while let Ok(Control::Reload) = control_rx.recv() {
                let Some(path) = &args.config else {
                    tracing::warn!("SIGHUP: no --config file to read again; nothing changed");
                    continue;
                };
                let applied = Config::load(path)
                    .map_err(DaemonError::from)
                    .and_then(|new| sources.reload(&new, &data_dir).map(|()| new));
                match applied {
                    Ok(new) => {
                        for section in restart_needed(&config, &new) {
                            tracing::warn!(
                                section,
                                "SIGHUP: this section changed and needs a restart; the running value stays"
                            );
                        }
                        eprintln!("sluice: reloaded {}", path.display());
                        metrics.reloaded(true);
                        // Keep the sections that did not apply as they run.
                        config.gates = new.gates;
                        config.sources.file_events = new.sources.file_events;
                        config.sources.eslogger.program = new.sources.eslogger.program;
                        config.sources.eslogger.args = new.sources.eslogger.args;
                        config.sources.eslogger.events = new.sources.eslogger.events;
                    }
                    Err(err) => {
                        metrics.reloaded(false);
                        tracing::error!(error = %err, "SIGHUP: config refused; the old one stays");
                        eprintln!("sluice: reload refused: {err}");
                    }
                }
            }
            eprintln!("sluice: stopping");
            sources.stop();
            if let Some(state) = state_file {
                let _ = std::fs::remove_file(state);
            }
            Ok(())
        }
        Err(err) => Err(err),
    };

    // Drain: the sources have handed on their last rows; the writer
    // appends what is queued, then everything goes to Parquet.
    pipeline.close();
    let _ = writer.join();
    let _ = stop_maintenance.send(());
    let _ = maintenance.join();
    let flushed = storage.flush();
    let _ = shutdown_tx.send(true);
    runtime.block_on(async {
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome?;
    flushed?;
    let stats = storage.stats();
    eprintln!(
        "sluice: stopped; {} rows stored, {} Parquet files written",
        stats.appended_rows, stats.files_published
    );
    Ok(())
}

/// SIGHUP → reload; SIGTERM, SIGINT → stop.
fn install_signals(
    runtime: &tokio::runtime::Runtime,
    control: std::sync::mpsc::Sender<Control>,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let _guard = runtime.enter();
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    Ok(runtime.spawn(async move {
        loop {
            let what = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
            };
            if control.send(what).is_err() || what == Control::Stop {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_names_the_sections_that_need_a_restart() {
        let old = Config::default();
        let mut new = Config::default();
        new.gates.open_events = true;
        new.sources.file_events = Some(Default::default());
        assert!(restart_needed(&old, &new).is_empty());
        new.storage.roll_seconds = 5;
        new.server.enabled = false;
        assert_eq!(restart_needed(&old, &new), ["[storage]", "[server]"]);
    }

    #[test]
    fn the_eslogger_command_asks_for_open_only_when_open_events_are_on() {
        let mut config = Config::default();
        let spec = eslogger_spec(&config);
        assert_eq!(spec.program, PathBuf::from("eslogger"));
        assert!(spec.args.contains(&"exec".to_string()));
        assert!(!spec.args.contains(&"open".to_string()));
        config.gates.open_events = true;
        assert!(eslogger_spec(&config).args.contains(&"open".to_string()));
    }

    #[test]
    fn the_data_dir_flag_wins_over_the_config() {
        let mut config = Config::default();
        config.storage.data_dir = Some(PathBuf::from("/from/config"));
        let mut args = RunArgs {
            data_dir: DataDirArg::default(),
            config: None,
        };
        assert_eq!(
            resolve_data_dir(&args, &config),
            PathBuf::from("/from/config")
        );
        args.data_dir.data_dir = Some(PathBuf::from("/from/flag"));
        assert_eq!(
            resolve_data_dir(&args, &config),
            PathBuf::from("/from/flag")
        );
    }
}
