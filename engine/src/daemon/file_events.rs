//! The `file_events` source: the notify watcher (inotify on Linux, FSEvents
//! on macOS) feeding the FIM collector, on a thread of its own.
//!
//! The OS callback only queues events (see `sluice_ingest::fim`); this
//! thread turns them into `file_events` rows (stat, hashes, category) and
//! hands a batch to the pipeline once it holds `batch_rows` rows or its
//! oldest row is `flush` old. When nothing happens it sleeps on the event
//! queue, waking once a second to look for a reload or a stop.
//!
//! A reload (SIGHUP) brings a new FIM config: the new watcher is started
//! before the old one is dropped, so no change is missed; a change that
//! happens in that instant may be reported by both.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_ingest::fim::{FimCollector, FimConfig, FimWatcher};
use sluice_ingest::gates::DropReason;
use sluice_schemas::FILE_EVENTS;

use super::metrics::Metrics;
use super::pipeline::Pipeline;
use super::{Batching, DaemonError, now_ns};

/// How long the thread sleeps at most when idle, between checks for a
/// reload or a stop.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// The default `file_paths` for this platform and user, osquery-style.
///
/// On Linux: `/etc` (recursively when running as root; only its top level
/// otherwise, since an unprivileged watch cannot enter `/etc/ssl/private`
/// and the like), the system binary directories, and the user's home (its
/// top level: shell start-up files) and `~/.ssh`. On macOS: the launchd
/// job directories, `/private/etc` and the home's LaunchAgents.
pub fn default_config() -> FimConfig {
    let home = std::env::var("HOME")
        .ok()
        .filter(|h| h.starts_with('/') && h.len() > 1);
    let mut config = FimConfig::default();
    let mut add = |category: &str, patterns: Vec<String>| {
        config.file_paths.insert(category.to_string(), patterns);
    };
    if cfg!(target_os = "macos") {
        add("etc", vec!["/private/etc/%%".into()]);
        add(
            "launchd",
            vec![
                "/Library/LaunchDaemons/%".into(),
                "/Library/LaunchAgents/%".into(),
            ],
        );
        add("binaries", vec!["/usr/local/bin/%".into()]);
        if let Some(home) = &home {
            add(
                "home",
                vec![
                    format!("{home}/Library/LaunchAgents/%"),
                    format!("{home}/.ssh/%%"),
                ],
            );
        }
    } else {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        add("etc", vec![if root { "/etc/%%" } else { "/etc/%" }.into()]);
        add(
            "binaries",
            vec![
                "/usr/bin/%".into(),
                "/usr/sbin/%".into(),
                "/usr/local/bin/%".into(),
            ],
        );
        if let Some(home) = &home {
            add("home", vec![format!("{home}/%"), format!("{home}/.ssh/%%")]);
        }
    }
    config
}

/// The FIM config the daemon runs: the configured one (or the default),
/// with the data dir excluded from every category, so that sluice never
/// watches its own writes (which would feed on themselves).
pub fn effective_config(configured: Option<&FimConfig>, data_dir: &Path) -> FimConfig {
    let mut config = configured.cloned().unwrap_or_else(default_config);
    let data_dir = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let pattern = format!(
        "{}/%%",
        data_dir.display().to_string().trim_end_matches('/')
    );
    let categories: Vec<String> = config.file_paths.keys().cloned().collect();
    for category in categories {
        config
            .exclude_paths
            .entry(category)
            .or_default()
            .push(pattern.clone());
    }
    config
}

/// A running `file_events` source.
#[derive(Debug)]
pub struct FileEventsSource {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    reload: Sender<FimConfig>,
}

struct Watch {
    collector: FimCollector,
    watcher: FimWatcher,
    /// The watcher's drop and error counts already added to the metrics.
    published_dropped: u64,
    published_errors: u64,
}

impl Watch {
    fn start(config: &FimConfig, queue: usize) -> Result<Watch, DaemonError> {
        let collector = FimCollector::new(config).map_err(DaemonError::FileEventsConfig)?;
        let watcher =
            FimWatcher::start(collector.rules(), queue).map_err(DaemonError::FileEventsWatch)?;
        Ok(Watch {
            collector,
            watcher,
            published_dropped: 0,
            published_errors: 0,
        })
    }

    fn publish_counts(&mut self, metrics: &Metrics) {
        let dropped = self.watcher.dropped();
        if dropped > self.published_dropped {
            metrics.add_dropped(
                &FILE_EVENTS,
                DropReason::Backpressure,
                dropped - self.published_dropped,
            );
            self.published_dropped = dropped;
        }
        let errors = self.watcher.errors();
        if errors > self.published_errors {
            metrics
                .file_events
                .errors
                .fetch_add(errors - self.published_errors, Ordering::Relaxed);
            tracing::warn!(
                errors = errors - self.published_errors,
                "the file watcher reported errors (events may have been lost in the OS queue)"
            );
            self.published_errors = errors;
        }
    }
}

impl FileEventsSource {
    /// Starts watching per `config` (errors, such as a bad pattern or a
    /// directory the OS will not watch, are returned here, before the
    /// thread starts).
    pub fn start(
        config: &FimConfig,
        queue: usize,
        batching: Batching,
        pipeline: Arc<Pipeline>,
        metrics: Arc<Metrics>,
    ) -> Result<FileEventsSource, DaemonError> {
        let watch = Watch::start(config, queue)?;
        let roots = watch.collector.rules().roots().len();
        let stop = Arc::new(AtomicBool::new(false));
        let (reload, reloads) = std::sync::mpsc::channel();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-file-events".into())
            .spawn(move || {
                metrics.file_events.up.store(1, Ordering::Relaxed);
                collect(
                    watch,
                    queue,
                    batching,
                    &pipeline,
                    &metrics,
                    &thread_stop,
                    &reloads,
                );
                metrics.file_events.up.store(0, Ordering::Relaxed);
            })
            .map_err(DaemonError::Thread)?;
        tracing::info!(roots, "file_events: watching");
        Ok(FileEventsSource {
            thread: Some(thread),
            stop,
            reload,
        })
    }

    /// Applies a new FIM config (already checked by the caller).
    pub fn reload(&self, config: FimConfig) {
        let _ = self.reload.send(config);
    }

    /// Stops watching, hands the last rows to the pipeline, and waits for
    /// the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The source's loop; returns once `stop` is set, after a last flush.
fn collect(
    mut watch: Watch,
    queue: usize,
    batching: Batching,
    pipeline: &Pipeline,
    metrics: &Metrics,
    stop: &AtomicBool,
    reloads: &Receiver<FimConfig>,
) {
    let mut first_row_at: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Ok(config) = reloads.try_recv() {
            match Watch::start(&config, queue) {
                Ok(new) => {
                    // The old watcher is dropped only now: nothing was missed.
                    watch.watcher.drain(&mut watch.collector, now_ns);
                    watch.publish_counts(metrics);
                    flush(&mut watch.collector, pipeline);
                    first_row_at = None;
                    watch = new;
                    tracing::info!(
                        roots = watch.collector.rules().roots().len(),
                        "file_events: reloaded"
                    );
                }
                Err(err) => {
                    metrics.file_events.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %err, "file_events: reload failed; the old paths stay watched");
                }
            }
        }
        let wait = match first_row_at {
            Some(at) => batching.flush.saturating_sub(at.elapsed()).min(IDLE_WAKE),
            None => IDLE_WAKE,
        };
        if watch.watcher.wait(&mut watch.collector, wait, now_ns) {
            watch.watcher.drain(&mut watch.collector, now_ns);
        }
        watch.publish_counts(metrics);
        let buffered = watch.collector.buffered_rows();
        if buffered > 0 && first_row_at.is_none() {
            first_row_at = Some(Instant::now());
        }
        let due = first_row_at.is_some_and(|at| at.elapsed() >= batching.flush);
        if buffered >= batching.rows || (buffered > 0 && due) {
            flush(&mut watch.collector, pipeline);
            first_row_at = None;
        }
    }
    watch.watcher.drain(&mut watch.collector, now_ns);
    watch.publish_counts(metrics);
    flush(&mut watch.collector, pipeline);
}

fn flush(collector: &mut FimCollector, pipeline: &Pipeline) {
    match collector.take_batch() {
        Ok(Some(batch)) => {
            pipeline.offer(&FILE_EVENTS, batch);
        }
        Ok(None) => {}
        // Rows always fit their schema; this would be a bug in the builder.
        Err(err) => tracing::error!(error = %err, "file_events: building a batch failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_is_excluded_from_every_category() {
        let dir = tempfile::tempdir().unwrap();
        let mut configured = FimConfig::default();
        configured
            .file_paths
            .insert("all".into(), vec![format!("{}/%%", dir.path().display())]);
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir).unwrap();
        let config = effective_config(Some(&configured), &data_dir);
        let rules = sluice_ingest::fim::FimRules::new(&config).unwrap();
        let watched = dir.path().canonicalize().unwrap().join("x.txt");
        let own = data_dir
            .canonicalize()
            .unwrap()
            .join("file_events/a.parquet");
        assert_eq!(
            rules.category(watched.to_str().unwrap().as_bytes()),
            Some("all")
        );
        assert_eq!(rules.category(own.to_str().unwrap().as_bytes()), None);
    }

    #[test]
    fn the_default_paths_compile_and_are_absolute() {
        let config = default_config();
        assert!(config.file_paths.contains_key("etc"));
        assert!(sluice_ingest::fim::FimRules::new(&config).is_ok());
    }

    #[test]
    fn changes_in_a_watched_directory_become_batches() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mut config = FimConfig::default();
        config
            .file_paths
            .insert("tmp".into(), vec![format!("{}/%%", root.display())]);
        let metrics = Arc::new(Metrics::new());
        let pipeline = Arc::new(Pipeline::new(1 << 20, metrics.clone()));
        let batching = Batching {
            rows: 1000,
            flush: Duration::from_millis(50),
        };
        let source =
            FileEventsSource::start(&config, 1024, batching, pipeline.clone(), metrics.clone())
                .unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while metrics.events_in(&FILE_EVENTS) == 0 {
            assert!(Instant::now() < deadline, "no file_events row arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
        source.stop();
        assert!(metrics.events_in(&FILE_EVENTS) >= 1);
    }
}
