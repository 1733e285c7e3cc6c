//! Making a file appear in the data dir only when it is whole.
//!
//! Readers (the query engine, an uploader, a user's `ls`) find data by listing
//! `*.parquet`. A file is therefore written under a hidden temporary name
//! that does not end in `.parquet`, flushed and fsynced, and only then renamed
//! to its final name; the rename is atomic within a directory, and fsyncing
//! the directory afterwards makes the new name itself survive a power cut.
//!
//! Files are private to the daemon's user (0o600, directories 0o700 on unix):
//! they hold who ran what and opened which file, which other local users must
//! not read.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Permissions of data directories: owner only.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// Permissions of data files: owner read/write only.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Distinguishes files named in the same nanosecond by the same process.
static NEXT_FILE_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new, unique file stem: `<unix_nanos>-<pid>-<seq>`.
///
/// The clock alone can repeat (coarse clocks, many calls per tick), the pid
/// tells processes sharing a data dir apart, and the counter tells calls in
/// one process apart. The nanoseconds are zero-padded so names sort by
/// creation time.
pub(crate) fn unique_file_stem() -> String {
    // A clock before 1970 only costs name ordering, never uniqueness.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seq = NEXT_FILE_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:020}-{}-{seq}", std::process::id())
}

/// The temporary name `final_name` is written under while incomplete:
/// hidden (leading dot) and not ending in `.parquet`, so no reader lists it.
pub(crate) fn temp_name(final_name: &str) -> String {
    format!(".{final_name}.tmp")
}

/// Creates `dir` and any missing parents with owner-only permissions.
///
/// When a directory is created, its parents are fsynced up to `root` (a newly
/// created partition directory is itself a directory entry that must survive
/// a crash, or the files published into it are lost with it).
pub(crate) fn create_private_dir_all(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    let mut parent = dir.parent();
    while let Some(p) = parent {
        sync_dir(p)?;
        if p == root || !p.starts_with(root) {
            break;
        }
        parent = p.parent();
    }
    Ok(())
}

/// Fsyncs a directory so that renames and creations in it are durable.
///
/// Only unix can open a directory as a file; elsewhere this is a no-op.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        // A bare relative name (`--data-dir data`) has the empty path as
        // its parent: that is the current directory.
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates a new private file; fails rather than clobber an existing one.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options.open(path)
}

/// Removes a temporary file when dropped, unless it was published.
///
/// Every early return on the write path (a Parquet error, a full disk, a
/// failed fsync) then leaves no `.tmp` debris behind.
pub(crate) struct TempFileGuard {
    path: PathBuf,
    /// False once the file has been renamed to its final name.
    armed: bool,
}

impl TempFileGuard {
    /// Guards `path`, which the caller has just created.
    pub(crate) fn new(path: PathBuf) -> Self {
        TempFileGuard { path, armed: true }
    }

    /// The guarded temporary path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary file to `final_path` and fsyncs the directory.
    ///
    /// After a successful rename the guard no longer removes anything, even
    /// if the directory fsync fails: the file is complete and visible, and
    /// deleting it would lose data that readers may already have seen.
    pub(crate) fn publish(mut self, final_path: &Path) -> io::Result<()> {
        fs::rename(&self.path, final_path)?;
        self.armed = false;
        match final_path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }
}

impl Drop for TempFileGuard {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the write already failed, and that error is the
            // one worth reporting.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn stems_are_unique_within_a_process() {
        let stems: HashSet<String> = (0..10_000).map(|_| unique_file_stem()).collect();
        assert_eq!(stems.len(), 10_000);
    }

    #[test]
    fn temp_names_are_hidden_and_not_parquet() {
        let name = temp_name("x.parquet");
        assert!(name.starts_with('.'));
        assert!(!name.ends_with(".parquet"));
    }

    #[test]
    fn dropped_guard_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(".a.parquet.tmp");
        create_private_file(&temp).unwrap();
        drop(TempFileGuard::new(temp.clone()));
        assert!(!temp.exists());
    }

    #[test]
    fn published_file_is_renamed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(".a.parquet.tmp");
        let done = dir.path().join("a.parquet");
        create_private_file(&temp).unwrap();
        TempFileGuard::new(temp.clone()).publish(&done).unwrap();
        assert!(!temp.exists());
        assert!(done.exists());
    }
}
