//! `sluice bench firehose --upload URL`: each sluice run's Parquet files
//! also go to an object store, the way the daemon's `[upload]` sends them.
//!
//! Data teams keep the events in a lake, so what a host can take includes
//! shipping the files. During a run sluice's own [`Uploader`] copies every
//! published file to `URL/<run>/` (the run's data-dir name, e.g.
//! `sluice-0-rows`), and its CPU counts in the run's like any other
//! thread's. When the run is over, the uploader is drained: the report says
//! how many files and bytes the store confirmed, how many attempts failed
//! and were retried, and how long after the run, and with how much more
//! CPU, the store held the last file. The local copies stay (marked
//! uploaded), so the analyst queries still read the data dir.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_sinks::object_store::{AfterUpload, StoreLocation, UploadOptions, Uploader};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::firehose::BenchError;
use super::report::{UploadReport, process_cpu};

/// How long the store may take to hold the last file after a run before
/// the bench gives up on it.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// How often the uploader looks for new files during a run: a roll every
/// few seconds at the bench's settings, so this costs nothing and keeps the
/// store close behind.
const POLL: Duration = Duration::from_millis(250);

/// The uploader of one run, copying in the background.
pub(crate) struct RunUpload {
    uploader: Arc<Uploader>,
    /// Dropping it (or sending) stops the background copying.
    stop: Option<oneshot::Sender<()>>,
    background: tokio::task::JoinHandle<()>,
    url: String,
}

impl RunUpload {
    /// Starts copying the files `dir` publishes to `<store>/<run>/`.
    pub(crate) fn start(runtime: &Runtime, store: &StoreLocation, run: &str, dir: &Path) -> Self {
        let location = StoreLocation::new(
            store.store().clone(),
            store.root_url().clone(),
            store.prefix().clone().join(run),
        );
        let url = location.to_string();
        let uploader = Arc::new(Uploader::new(
            dir,
            location,
            UploadOptions {
                after_upload: AfterUpload::KeepLocal,
                poll_interval: POLL,
                ..UploadOptions::default()
            },
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let background = runtime.spawn({
            let uploader = uploader.clone();
            async move {
                uploader
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
            }
        });
        RunUpload {
            uploader,
            stop: Some(stop),
            background,
            url,
        }
    }

    /// Stops the background copying, uploads whatever is left, and reports.
    /// Call it once the run's storage is closed (every file published).
    pub(crate) fn finish(mut self, runtime: &Runtime) -> Result<UploadReport, BenchError> {
        let run_ended = Instant::now();
        let cpu_before = process_cpu();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let uploader = self.uploader.clone();
        let left = runtime.block_on(async {
            let _ = (&mut self.background).await;
            uploader.drain(tokio::time::sleep(DRAIN_LIMIT)).await?;
            uploader.scan()
        });
        let left = left.map_err(|source| BenchError::Io {
            path: self.url.clone().into(),
            source,
        })?;
        let stats = self.uploader.stats();
        let failed = stats.failed_attempts.load(Ordering::Relaxed);
        if !left.is_empty() {
            return Err(BenchError::Upload(format!(
                "{}: {} files were still not in the store {} s after the run ({failed} attempts failed; the warnings above say why)",
                self.url,
                left.len(),
                DRAIN_LIMIT.as_secs()
            )));
        }
        Ok(UploadReport {
            url: self.url.clone(),
            files: stats.files_uploaded.load(Ordering::Relaxed),
            bytes: stats.bytes_uploaded.load(Ordering::Relaxed),
            failed_attempts: failed,
            secs_after_run: run_ended.elapsed().as_secs_f64(),
            cpu_secs_after_run: process_cpu().saturating_sub(cpu_before).as_secs_f64(),
        })
    }
}
