//! sluice's TOML config file.
//!
//! One file configures everything; each part has its own section, and a
//! missing section (or a missing file) means that part's defaults, so
//! `sluice run` needs no config at all. Every key is documented, with its
//! default, in `deploy/sluice.example.toml`, and unknown keys are errors (a
//! typo must not silently turn a rule off).
//!
//! | section | read by | what |
//! |---|---|---|
//! | `[gates]` | `ingest`, `run` | muting, sampling, rate limits (`sluice_ingest::gates::config`) |
//! | `[sources]` | `run` | which live sources run, how rows are batched |
//! | `[sources.file_events]` | `run` | osquery FIM keys (`sluice_ingest::fim::FimConfig`) |
//! | `[sources.eslogger]` | `run` | the `eslogger` command and its restarts |
//! | `[storage]` | `run` | data dir, WAL fsync, roll size and age, memory budgets |
//! | `[retention]` | `run` | how long and how much history is kept |
//! | `[upload]` | `run` | object-store upload of the published Parquet files |
//! | `[server]` | `run` | the Flight SQL query server |
//! | `[metrics]` | `run`, `status` | the Prometheus endpoint |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_ingest::fim::FimConfig;
use sluice_ingest::gates::GatesConfig;
use sluice_sinks::FsyncPolicy;

/// The whole config.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Muting, sampling and rate limits.
    pub gates: GatesConfig,
    /// The live sources of `sluice run`.
    pub sources: SourcesConfig,
    /// Where and how batches are stored.
    pub storage: StorageConfig,
    /// How much history is kept.
    pub retention: RetentionConfig,
    /// Upload to an object store.
    pub upload: UploadConfig,
    /// The Flight SQL query server.
    pub server: ServerConfig,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsConfig,
}

/// A live source `sluice run` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// `file_events` through the notify crate (inotify, FSEvents).
    FileEvents,
    /// EndpointSecurity through a spawned `eslogger` (macOS 13+), or any
    /// command that prints eslogger JSON lines.
    Eslogger,
}

impl SourceKind {
    /// The name used in the config, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::FileEvents => "file_events",
            SourceKind::Eslogger => "eslogger",
        }
    }
}

/// `[sources]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// The sources to run; unset means the platform's default (`eslogger`
    /// on macOS, `file_events` elsewhere).
    pub enabled: Option<Vec<SourceKind>>,
    /// A source hands its rows on once it holds this many.
    pub batch_rows: usize,
    /// ... or once its oldest row is this many milliseconds old, so a quiet
    /// source's rows still reach storage (and queries) promptly. The default,
    /// 500 ms, keeps an event queryable within 1 s of being decoded: the
    /// window plus the WAL append (a few ms with fsync per batch).
    pub flush_ms: u64,
    /// The most file-system events waiting between the OS watcher and the
    /// collector; beyond it events are dropped as `backpressure`.
    pub file_events_queue: usize,
    /// osquery's FIM keys; unset means the platform's default paths.
    pub file_events: Option<FimConfig>,
    /// The `eslogger` child process.
    pub eslogger: EsloggerConfig,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            enabled: None,
            batch_rows: 8192,
            flush_ms: 500,
            file_events_queue: 65536,
            file_events: None,
            eslogger: EsloggerConfig::default(),
        }
    }
}

impl SourcesConfig {
    /// The sources to run: the configured ones, or the platform's default.
    pub fn enabled(&self) -> Vec<SourceKind> {
        match &self.enabled {
            Some(list) => list.clone(),
            None if cfg!(target_os = "macos") => vec![SourceKind::Eslogger],
            None => vec![SourceKind::FileEvents],
        }
    }
}

/// The ES events `eslogger` is asked for by default: every event the two ES
/// tables map, except `open` (added when `gates.open_events` is on).
pub const DEFAULT_ESLOGGER_EVENTS: &[&str] = &[
    "exec",
    "fork",
    "exit",
    "create",
    "rename",
    "unlink",
    "write",
    "truncate",
    "link",
    "clone",
    "close",
    "exchangedata",
    "copyfile",
];

/// `[sources.eslogger]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EsloggerConfig {
    /// The program to run (looked up on `PATH` unless absolute).
    pub program: PathBuf,
    /// Arguments before the event names.
    pub args: Vec<String>,
    /// The event names, appended to `args`; unset means
    /// [`DEFAULT_ESLOGGER_EVENTS`], plus `open` when open events are on.
    pub events: Option<Vec<String>>,
    /// The first wait before restarting a program that exited or could not
    /// start; it doubles on every failure in a row.
    pub restart_min_ms: u64,
    /// The longest wait between restarts.
    pub restart_max_ms: u64,
}

impl Default for EsloggerConfig {
    fn default() -> Self {
        EsloggerConfig {
            program: PathBuf::from("eslogger"),
            args: Vec::new(),
            events: None,
            restart_min_ms: 1000,
            restart_max_ms: 60_000,
        }
    }
}

impl EsloggerConfig {
    /// The event names to subscribe to.
    pub fn event_names(&self, open_events: bool) -> Vec<String> {
        match &self.events {
            Some(events) => events.clone(),
            None => {
                let mut events: Vec<String> = DEFAULT_ESLOGGER_EVENTS
                    .iter()
                    .map(|e| e.to_string())
                    .collect();
                if open_events {
                    events.push("open".to_string());
                }
                events
            }
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The data dir; unset means `--data-dir`, else `$SLUICE_DATA_DIR`, else
    /// the platform's default. (`--data-dir` wins over this key.)
    pub data_dir: Option<PathBuf>,
    /// When the write-ahead log is fsynced: `batch`, `interval:<ms>`, `off`.
    pub wal_fsync: String,
    /// Roll a table to Parquet once its oldest in-memory batch is this old.
    pub roll_seconds: u64,
    /// ... or once its in-memory batches hold this many MiB of Arrow memory.
    pub roll_mib: usize,
    /// Arrow memory the in-memory tail may hold over all tables.
    pub hot_budget_mib: usize,
    /// Memory for batches waiting between the sources and storage; beyond
    /// it live sources drop (and count) batches.
    pub queue_mib: usize,
    /// Merge an hour's small Parquet files into one.
    pub compaction: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: None,
            wal_fsync: "batch".to_string(),
            roll_seconds: 30,
            roll_mib: 128,
            hot_budget_mib: 512,
            queue_mib: 256,
            compaction: true,
        }
    }
}

impl StorageConfig {
    /// The parsed `wal_fsync`.
    pub fn fsync_policy(&self) -> Result<FsyncPolicy, String> {
        self.wal_fsync
            .parse()
            .map_err(|e| format!("storage.wal_fsync: {e}"))
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete hour partitions older than this many days; unset keeps all.
    pub max_age_days: Option<u64>,
    /// Keep each table under this many MiB of Parquet, oldest deleted first.
    pub max_mib_per_table: Option<u64>,
}

impl RetentionConfig {
    /// As the storage layer's policy.
    pub fn policy(&self) -> sluice_sinks::RetentionPolicy {
        sluice_sinks::RetentionPolicy {
            max_age: self
                .max_age_days
                .map(|d| Duration::from_secs(d.saturating_mul(86_400))),
            max_bytes_per_table: self.max_mib_per_table.map(|m| m.saturating_mul(1 << 20)),
        }
    }
}

/// `[upload]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Where published files go (`s3://bucket/prefix`, `gs://…`, `az://…`,
    /// `file:///dir`); unset means no upload.
    pub url: Option<String>,
    /// How often the uploader looks for new files.
    pub interval_seconds: u64,
    /// Keep local copies after upload (for local queries) instead of
    /// deleting them.
    pub keep_local: bool,
    /// The most MiB of files waiting for upload.
    pub spool_limit_mib: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            url: None,
            interval_seconds: 60,
            keep_local: false,
            spool_limit_mib: 10 * 1024,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Serve Flight SQL.
    pub enabled: bool,
    /// Where; port 0 picks a free port. Off loopback a token is required.
    pub listen: SocketAddr,
    /// A file holding the bearer token (else `$SLUICE_FLIGHT_TOKEN`).
    pub token_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: true,
            listen: crate::flight::DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 50051))),
            token_file: None,
        }
    }
}

/// The metrics endpoint's default address: loopback only.
pub const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9730,
));

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Where; port 0 picks a free port. Off loopback a token is required.
    pub listen: SocketAddr,
    /// A file holding the bearer token scrapers must send.
    pub token_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: DEFAULT_METRICS_LISTEN,
            token_file: None,
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid, or has a key sluice does not know.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where (line and column).
        message: String,
    },
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks config text; the error says what is wrong and
    /// where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        config.check()?;
        Ok(config)
    }

    /// The checks a type cannot express: values that parse but make no
    /// sense.
    fn check(&self) -> Result<(), String> {
        self.storage.fsync_policy()?;
        let positive = [
            ("sources.batch_rows", self.sources.batch_rows as u64),
            ("sources.flush_ms", self.sources.flush_ms),
            (
                "sources.file_events_queue",
                self.sources.file_events_queue as u64,
            ),
            ("storage.roll_seconds", self.storage.roll_seconds),
            ("storage.roll_mib", self.storage.roll_mib as u64),
            ("storage.hot_budget_mib", self.storage.hot_budget_mib as u64),
            ("storage.queue_mib", self.storage.queue_mib as u64),
            ("upload.interval_seconds", self.upload.interval_seconds),
            (
                "sources.eslogger.restart_min_ms",
                self.sources.eslogger.restart_min_ms,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        let eslogger = &self.sources.eslogger;
        if eslogger.restart_max_ms < eslogger.restart_min_ms {
            return Err("sources.eslogger.restart_max_ms is less than restart_min_ms".into());
        }
        if let Some(url) = &self.upload.url {
            sluice_sinks::object_store::StoreLocation::parse(url)
                .map_err(|e| format!("upload.url: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sluice.example.toml");
        let config = Config::load(&path).expect("deploy/sluice.example.toml is valid");
        assert!(!config.gates.open_events);
        assert!(sluice_ingest::gates::Gates::new(&config.gates).is_ok());
    }

    #[test]
    fn unknown_sections_and_keys_say_where() {
        let err = Config::parse("[gates]\nopen_events = true\n[gatez]\n").unwrap_err();
        assert!(err.contains("gatez") && err.contains("line 3"), "{err}");
        let err = Config::parse("[storage]\nroll_secs = 5\n").unwrap_err();
        assert!(err.contains("roll_secs") && err.contains("line 2"), "{err}");
        let err = Config::parse("[sources.file_events]\nfile_path = {}\n").unwrap_err();
        assert!(err.contains("file_path"), "{err}");
    }

    #[test]
    fn an_empty_config_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn values_that_parse_but_cannot_work_are_refused() {
        for (text, key) in [
            (
                "[storage]\nwal_fsync = \"sometimes\"\n",
                "storage.wal_fsync",
            ),
            ("[storage]\nroll_seconds = 0\n", "storage.roll_seconds"),
            ("[sources]\nbatch_rows = 0\n", "sources.batch_rows"),
            ("[upload]\nurl = \"ftp://x/y\"\n", "upload.url"),
            (
                "[sources.eslogger]\nrestart_min_ms = 10\nrestart_max_ms = 5\n",
                "restart_max_ms",
            ),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn daemon_sections_parse() {
        let config = Config::parse(
            r#"
            [sources]
            enabled = ["file_events", "eslogger"]
            [sources.file_events]
            file_paths = { etc = ["/etc/%%"] }
            [sources.eslogger]
            program = "/usr/bin/eslogger"
            [storage]
            wal_fsync = "interval:100"
            [retention]
            max_age_days = 7
            [server]
            listen = "127.0.0.1:0"
            [metrics]
            enabled = false
            "#,
        )
        .expect("valid");
        assert_eq!(
            config.sources.enabled(),
            [SourceKind::FileEvents, SourceKind::Eslogger]
        );
        assert_eq!(
            config.retention.policy().max_age,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(config.server.listen.port(), 0);
        assert!(!config.metrics.enabled);
        assert_eq!(
            config.storage.fsync_policy().unwrap(),
            FsyncPolicy::Interval(Duration::from_millis(100))
        );
        let names = EsloggerConfig::default().event_names(true);
        assert!(names.contains(&"open".to_string()) && names.contains(&"exec".to_string()));
    }
}
