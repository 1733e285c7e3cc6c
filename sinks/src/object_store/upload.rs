//! The uploader: published Parquet files from the local spool to the store.
//!
//! The spool is the data dir itself. A file under
//! `<table>/date=…/hour=…/<name>.parquet` that is not marked uploaded is
//! pending; the uploader copies it to the same relative key under the store
//! prefix (one PUT for small files, a multipart upload in parts for large
//! ones), checks with a HEAD that the store holds an object of the same size,
//! and only then retires the local copy: deletes it
//! ([`AfterUpload::DeleteLocal`]) or writes a hidden marker
//! `.<name>.parquet.uploaded` beside it ([`AfterUpload::KeepLocal`]).
//!
//! Why this loses and duplicates nothing:
//! - a store object appears only when whole (a PUT or a completed multipart
//!   upload), so a reader never sees half a file;
//! - keys are the local file names, so uploading a file again after a crash
//!   between "confirmed" and "retired" overwrites the object with the same
//!   bytes instead of adding a copy;
//! - nothing local is removed before the HEAD confirmed the object;
//! - after a restart the scan finds every file still pending, so uploads
//!   resume (an interrupted multipart upload is abandoned and started over).
//!
//! While the store is unreachable, each file is retried with exponential
//! backoff (on top of object_store's own per-request retries), and pending
//! files pile up in the spool. The spool is bounded by a [`SpoolBudget`]:
//! whoever publishes into the data dir asks it for room first and, once the
//! pending bytes exceed the limit, is refused and counts the drop; room comes
//! back as uploads are confirmed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::object_store::path::Path as StorePath;
use ::object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::StoreLocation;

/// The extension of the files that are uploaded.
const PARQUET_EXTENSION: &str = ".parquet";
/// The suffix of the marker of an uploaded file kept locally.
const UPLOADED_MARKER_SUFFIX: &str = ".uploaded";

/// What happens to a local file once the store has confirmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUpload {
    /// Delete it: the store is the archive, the data dir only a spool.
    DeleteLocal,
    /// Keep it for local queries and mark it uploaded (a hidden
    /// `.<name>.uploaded` file beside it, which no reader lists).
    KeepLocal,
}

/// How the uploader behaves.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Files larger than this go up as a multipart upload.
    pub multipart_threshold: u64,
    /// The size of each part of a multipart upload (S3 wants at least 5 MiB
    /// for every part but the last).
    pub part_size: usize,
    /// Parts of one file in flight at once.
    pub max_concurrent_parts: usize,
    /// What to do with a local file once uploaded.
    pub after_upload: AfterUpload,
    /// The most bytes the spool may hold pending before publishers are
    /// refused (see [`SpoolBudget`]).
    pub spool_limit_bytes: u64,
    /// The first wait after a failed upload; it doubles per failure.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How often [`Uploader::run`] looks for new files when idle.
    pub poll_interval: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            multipart_threshold: 32 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            max_concurrent_parts: 4,
            after_upload: AfterUpload::DeleteLocal,
            spool_limit_bytes: 10 * 1024 * 1024 * 1024,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Why one upload attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The local file could not be read or retired.
    #[error("upload of {}: {source}", path.display())]
    Local {
        /// The local file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The store refused or could not be reached.
    #[error("upload of {} to {key}: {source}", path.display())]
    Store {
        /// The local file.
        path: PathBuf,
        /// Its key in the store.
        key: String,
        /// What object_store said.
        source: ::object_store::Error,
    },
    /// The store confirmed an object of another size than the file.
    #[error("upload of {} to {key}: the store holds {stored} bytes, the file has {local}", path.display())]
    SizeMismatch {
        /// The local file.
        path: PathBuf,
        /// Its key in the store.
        key: String,
        /// The file's size.
        local: u64,
        /// The object's size.
        stored: u64,
    },
}

/// Counters of the uploader, readable while it runs (for metrics).
#[derive(Debug, Default)]
pub struct UploadStats {
    /// Files confirmed by the store.
    pub files_uploaded: AtomicU64,
    /// Bytes confirmed by the store.
    pub bytes_uploaded: AtomicU64,
    /// Of those, files sent as multipart uploads.
    pub multipart_uploads: AtomicU64,
    /// Attempts that failed and were retried.
    pub failed_attempts: AtomicU64,
}

/// The bound on the spool: bytes published locally and not yet confirmed by
/// the store.
///
/// Publishers call [`SpoolBudget::try_admit`] before writing a file; the
/// uploader releases the bytes once the store confirms. When the store is
/// unreachable for long, the budget fills, and publishers drop (and count)
/// instead of filling the disk.
#[derive(Debug)]
pub struct SpoolBudget {
    limit: u64,
    pending: AtomicU64,
    dropped_files: AtomicU64,
    dropped_bytes: AtomicU64,
}

impl SpoolBudget {
    /// A budget of `limit` bytes, nothing pending.
    pub fn new(limit: u64) -> SpoolBudget {
        SpoolBudget {
            limit,
            pending: AtomicU64::new(0),
            dropped_files: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
        }
    }

    /// Reserves `bytes` for a file about to be published, or refuses (and
    /// counts a dropped file) when the spool already holds its limit.
    pub fn try_admit(&self, bytes: u64) -> bool {
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                // The first file is always admitted so a single file larger
                // than the limit cannot wedge the pipeline forever.
                (pending == 0 || pending.saturating_add(bytes) <= self.limit)
                    .then(|| pending.saturating_add(bytes))
            })
            .is_ok();
        if !admitted {
            self.dropped_files.fetch_add(1, Ordering::Relaxed);
            self.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        admitted
    }

    /// Bytes pending upload.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Files refused because the spool was full.
    pub fn dropped_files(&self) -> u64 {
        self.dropped_files.load(Ordering::Relaxed)
    }

    /// Bytes of the files refused.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes.load(Ordering::Relaxed)
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(bytes))
            });
    }

    fn set_pending(&self, bytes: u64) {
        self.pending.store(bytes, Ordering::Release);
    }
}

/// A file waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFile {
    /// Its path on disk.
    pub path: PathBuf,
    /// Its path relative to the spool, `/`-separated: its key under the
    /// store prefix.
    pub relative: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Copies the spool's published Parquet files to an object store.
#[derive(Debug)]
pub struct Uploader {
    spool_dir: PathBuf,
    location: StoreLocation,
    options: UploadOptions,
    stats: Arc<UploadStats>,
    budget: Arc<SpoolBudget>,
}

impl Uploader {
    /// An uploader from `spool_dir` (the data dir) to `location`.
    pub fn new(
        spool_dir: impl Into<PathBuf>,
        location: StoreLocation,
        options: UploadOptions,
    ) -> Self {
        let budget = Arc::new(SpoolBudget::new(options.spool_limit_bytes));
        Uploader {
            spool_dir: spool_dir.into(),
            location,
            options,
            stats: Arc::default(),
            budget,
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<UploadStats> {
        self.stats.clone()
    }

    /// The spool's budget, for publishers to ask before writing.
    pub fn spool_budget(&self) -> Arc<SpoolBudget> {
        self.budget.clone()
    }

    /// Lists the files still to upload, oldest partition first, and sets the
    /// spool budget's pending bytes to their total.
    pub fn scan(&self) -> std::io::Result<Vec<PendingFile>> {
        let mut pending = Vec::new();
        match std::fs::metadata(&self.spool_dir) {
            Ok(_) => scan_dir(&self.spool_dir, "", &mut pending)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Relative paths sort by table, then date, then hour, then name
        // (names start with a zero-padded timestamp).
        pending.sort_by(|a, b| a.relative.cmp(&b.relative));
        self.budget
            .set_pending(pending.iter().map(|f| f.size).sum());
        Ok(pending)
    }

    /// Uploads every pending file, retrying failed ones with backoff until
    /// all went up or `give_up` resolves. Returns the number of files
    /// uploaded.
    pub async fn drain(&self, give_up: impl Future<Output = ()>) -> std::io::Result<usize> {
        let mut give_up = std::pin::pin!(give_up);
        self.drain_until(&mut give_up)
            .await
            .map(|(uploaded, _)| uploaded)
    }

    /// [`Uploader::drain`], also saying whether `give_up` resolved (so that
    /// [`Uploader::run`] never polls it again after it did).
    ///
    /// Each pass tries every pending file once, so one file the store keeps
    /// refusing does not hold back the others; a pass with failures is
    /// followed by a backoff that doubles while passes keep failing.
    async fn drain_until<F: Future<Output = ()>>(
        &self,
        give_up: &mut std::pin::Pin<&mut F>,
    ) -> std::io::Result<(usize, bool)> {
        let mut uploaded = 0;
        let mut backoff = self.options.initial_backoff;
        loop {
            let pending = self.scan().map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("scanning spool {}: {e}", self.spool_dir.display()),
                )
            })?;
            let mut failed = 0;
            for file in &pending {
                // Giving up mid-upload drops the attempt: the file stays in
                // the spool and an unfinished multipart upload stays invisible.
                let attempt = tokio::select! {
                    attempt = self.upload(file) => attempt,
                    () = give_up.as_mut() => return Ok((uploaded, true)),
                };
                match attempt {
                    Ok(true) => uploaded += 1,
                    // Gone meanwhile (retention, compaction): nothing to do.
                    Ok(false) => {}
                    Err(e) => {
                        failed += 1;
                        self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "object store upload failed; will retry");
                    }
                }
            }
            if failed == 0 {
                return Ok((uploaded, false));
            }
            tracing::info!(
                failed,
                retry_in_ms = backoff.as_millis() as u64,
                "object store uploads pending"
            );
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = give_up.as_mut() => return Ok((uploaded, true)),
            }
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    /// Uploads pending files until `shutdown` resolves, looking for new ones
    /// every poll interval.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            match self.drain_until(&mut shutdown).await {
                Ok((_, true)) => return,
                Ok((_, false)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "object store uploader cannot scan its spool");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.options.poll_interval) => {}
                () = shutdown.as_mut() => return,
            }
        }
    }

    /// One attempt at one file: upload, confirm, retire. `Ok(false)` when the
    /// file disappeared before it could be read.
    pub async fn upload(&self, file: &PendingFile) -> Result<bool, UploadError> {
        let key = self.location.key(&file.relative);
        let store_err = |source| UploadError::Store {
            path: file.path.clone(),
            key: key.to_string(),
            source,
        };
        let local_err = |source| UploadError::Local {
            path: file.path.clone(),
            source,
        };
        let mut local = match tokio::fs::File::open(&file.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.budget.release(file.size);
                return Ok(false);
            }
            Err(e) => return Err(local_err(e)),
        };
        let size = local.metadata().await.map_err(local_err)?.len();
        let store = self.location.store();
        let on_this_machine = self.local_object_path(&key);
        if let Some(parent) = on_this_machine.as_deref().and_then(Path::parent) {
            create_private_dirs(parent).await.map_err(local_err)?;
        }
        if size > self.options.multipart_threshold {
            self.put_multipart(&mut local, &key, &file.path).await?;
            self.stats.multipart_uploads.fetch_add(1, Ordering::Relaxed);
        } else {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            local.read_to_end(&mut bytes).await.map_err(local_err)?;
            store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(store_err)?;
        }
        if let Some(object) = &on_this_machine {
            make_private(object).await.map_err(local_err)?;
        }
        // The PUT's answer is the store's word; the HEAD makes sure the
        // object that a reader will list is this file, whole.
        let meta = store.head(&key).await.map_err(store_err)?;
        if meta.size != size {
            return Err(UploadError::SizeMismatch {
                path: file.path.clone(),
                key: key.to_string(),
                local: size,
                stored: meta.size,
            });
        }
        self.retire(file).await.map_err(local_err)?;
        self.stats.files_uploaded.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_uploaded.fetch_add(size, Ordering::Relaxed);
        self.budget.release(file.size);
        tracing::debug!(file = %file.path.display(), key = %key, bytes = size, "uploaded");
        Ok(true)
    }

    async fn put_multipart(
        &self,
        local: &mut tokio::fs::File,
        key: &StorePath,
        path: &Path,
    ) -> Result<(), UploadError> {
        let store_err = |source| UploadError::Store {
            path: path.to_path_buf(),
            key: key.to_string(),
            source,
        };
        let upload = self
            .location
            .store()
            .put_multipart(key)
            .await
            .map_err(store_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.options.part_size);
        let mut buffer = vec![0u8; self.options.part_size];
        let result = async {
            loop {
                let n = local
                    .read(&mut buffer)
                    .await
                    .map_err(|source| UploadError::Local {
                        path: path.to_path_buf(),
                        source,
                    })?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(self.options.max_concurrent_parts)
                    .await
                    .map_err(store_err)?;
                writer.write(&buffer[..n]);
            }
        }
        .await;
        match result {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(store_err),
            Err(e) => {
                // Best effort: a store that cannot be reached cannot be told
                // either; S3 lifecycle rules clean up what is left.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Where the object of `key` lands when the store is a directory of
    /// this machine (`file://`). object_store's local store creates files
    /// and directories with the process's umask, world-readable under the
    /// usual 022, while the data dir's files are the owner's only; the
    /// uploader gives the copies the same privacy.
    fn local_object_path(&self, key: &StorePath) -> Option<PathBuf> {
        let root = self.location.root_url();
        if root.scheme() != "file" {
            return None;
        }
        if key.as_ref().contains('%') {
            // A part object_store percent-encoded (a prefix with a space,
            // say): its file name is the decoded text, which this naive
            // mapping would miss. sluice's own names never need it.
            tracing::warn!(key = %key, "cannot tell where this copy lands, so it keeps object_store's permissions");
            return None;
        }
        let mut path = root.to_file_path().ok()?;
        for part in key.parts() {
            path.push(part.as_ref());
        }
        Some(path)
    }

    async fn retire(&self, file: &PendingFile) -> std::io::Result<()> {
        match self.options.after_upload {
            AfterUpload::DeleteLocal => match tokio::fs::remove_file(&file.path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            AfterUpload::KeepLocal => tokio::fs::write(marker_path(&file.path), b"").await,
        }
    }
}

/// Creates `dir` and its missing parents, the owner's only (existing
/// directories keep their mode).
async fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

/// Makes the file at `path` the owner's only.
async fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).await?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// `.<name>.uploaded` beside `path`.
fn marker_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{UPLOADED_MARKER_SUFFIX}"))
}

/// Collects pending `.parquet` files below `dir` (whose path relative to the
/// spool is `relative`). Hidden entries (temporary files, markers, the
/// WAL's or other tools' private directories) are skipped.
fn scan_dir(dir: &Path, relative: &str, out: &mut Vec<PendingFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            // Every name the persister writes is ASCII; anything else is not
            // ours to upload.
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let child_relative = if relative.is_empty() {
            name.to_string()
        } else {
            format!("{relative}/{name}")
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            scan_dir(&entry.path(), &child_relative, out)?;
        } else if file_type.is_file() && name.ends_with(PARQUET_EXTENSION) {
            let path = entry.path();
            if std::fs::metadata(marker_path(&path)).is_ok() {
                continue;
            }
            let size = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(PendingFile {
                path,
                relative: child_relative,
                size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn the_budget_refuses_and_counts_once_full_and_frees_on_release() {
        let budget = SpoolBudget::new(100);
        assert!(budget.try_admit(60));
        assert!(budget.try_admit(40));
        assert!(!budget.try_admit(1));
        assert_eq!((budget.dropped_files(), budget.dropped_bytes()), (1, 1));
        budget.release(60);
        assert!(budget.try_admit(50));
        assert_eq!(budget.pending_bytes(), 90);
        // A file larger than the whole limit still goes when nothing waits.
        let budget = SpoolBudget::new(10);
        assert!(budget.try_admit(1000));
    }

    #[tokio::test]
    async fn uploads_to_a_file_store_keeps_the_layout_and_resumes() {
        let spool = tempfile::tempdir().expect("spool");
        let lake = tempfile::tempdir().expect("lake");
        let a = spool.path().join("t/date=2024-01-01/hour=00/a.parquet");
        let b = spool.path().join("t/date=2024-01-01/hour=01/b.parquet");
        write(&a, b"aaaa");
        write(&b, &vec![7u8; 3000]);
        // Not published yet, and not ours: never uploaded.
        write(
            &spool
                .path()
                .join("t/date=2024-01-01/hour=00/.c.parquet.tmp"),
            b"x",
        );
        write(&spool.path().join("wal/00001.arrow"), b"x");

        let location =
            StoreLocation::parse(lake.path().to_str().expect("utf-8")).expect("location");
        let options = UploadOptions {
            multipart_threshold: 1000,
            part_size: 1024,
            after_upload: AfterUpload::KeepLocal,
            ..UploadOptions::default()
        };
        let uploader = Uploader::new(spool.path(), location.clone(), options.clone());
        assert_eq!(uploader.scan().expect("scan").len(), 2);
        assert_eq!(uploader.spool_budget().pending_bytes(), 3004);
        assert_eq!(
            uploader.drain(std::future::pending()).await.expect("drain"),
            2
        );
        assert_eq!(uploader.spool_budget().pending_bytes(), 0);
        let stats = uploader.stats();
        assert_eq!(stats.multipart_uploads.load(Ordering::Relaxed), 1);
        assert_eq!(
            std::fs::read(lake.path().join("t/date=2024-01-01/hour=01/b.parquet")).expect("b"),
            vec![7u8; 3000]
        );
        assert!(
            !lake
                .path()
                .join("t/date=2024-01-01/hour=00/.c.parquet.tmp")
                .exists()
        );
        assert!(!lake.path().join("wal").exists());
        // The copies are as private as the data dir: a file store on a
        // shared machine must not hand the events to every user.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| {
                std::fs::metadata(lake.path().join(p))
                    .expect("stat")
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode("t/date=2024-01-01/hour=00/a.parquet"), 0o600);
            assert_eq!(
                mode("t/date=2024-01-01/hour=01/b.parquet"),
                0o600,
                "multipart"
            );
            assert_eq!(mode("t/date=2024-01-01/hour=01"), 0o700);
            assert_eq!(mode("t"), 0o700);
        }
        // Kept locally, marked: a new uploader (a restart) has nothing to do.
        assert!(a.exists());
        let restarted = Uploader::new(spool.path(), location.clone(), options);
        assert!(restarted.scan().expect("scan").is_empty());

        // Deleting mode retires the local copy only after the upload.
        std::fs::remove_file(marker_path(&a)).expect("unmark");
        let deleting = Uploader::new(
            spool.path(),
            location,
            UploadOptions {
                after_upload: AfterUpload::DeleteLocal,
                ..UploadOptions::default()
            },
        );
        assert_eq!(
            deleting.drain(std::future::pending()).await.expect("drain"),
            1
        );
        assert!(!a.exists());
        assert_eq!(
            std::fs::read(lake.path().join("t/date=2024-01-01/hour=00/a.parquet")).expect("a"),
            b"aaaa"
        );
    }
}
