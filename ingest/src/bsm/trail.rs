//! A directory of audit trails, such as `/var/audit`, read in order and
//! followed as auditd rotates it.
//!
//! auditd writes one trail at a time, named `START.not_terminated` while it
//! is open (`START` is `YYYYMMDDhhmmss`, UTC) and renamed `START.END` when
//! it is closed; a `current` symlink points at the open one. A trail left
//! open by a crash is renamed `START.crash_recovery` when auditd starts
//! again, and may end in the middle of a record. Because names start with
//! their start time, name order is time order.
//!
//! [`list_trails`] gives the trails of a directory in that order, for a
//! one-shot read (`sluice ingest DIR`). [`TrailFollower`] follows the
//! directory the way `tail -F` follows a file: it reads the trail it has
//! open to its current end, keeps a half-written record until the rest
//! arrives, and once the trail is finished (renamed to `START.END` or
//! `.crash_recovery`, or a newer trail has appeared, or `current` points
//! elsewhere) it drains it, reports a record the crash cut short, and moves
//! on to the next trail by name. The open file handle survives the rename,
//! so nothing written before rotation is lost.

use std::cmp::Ordering;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::frame::Frame;
use super::stream::{RecordStream, StreamError};

/// How a trail's name ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailEnd {
    /// Closed by auditd at this time (`YYYYMMDDhhmmss`).
    Terminated(String),
    /// Still being written (`.not_terminated`).
    NotTerminated,
    /// Left open by a crash and recovered (`.crash_recovery`).
    CrashRecovery,
}

/// A trail file's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailName {
    /// The file name.
    pub file_name: String,
    /// When the trail was opened (`YYYYMMDDhhmmss`).
    pub start: String,
    /// How it ends.
    pub end: TrailEnd,
}

impl TrailName {
    /// Parses a trail file name; `None` for anything else (`current`,
    /// `audit_control`, stray files).
    ///
    /// ```
    /// use sluice_ingest::bsm::trail::{TrailEnd, TrailName};
    ///
    /// let t = TrailName::parse("20240501120000.not_terminated").unwrap();
    /// assert_eq!(t.start, "20240501120000");
    /// assert_eq!(t.end, TrailEnd::NotTerminated);
    /// assert!(TrailName::parse("current").is_none());
    /// ```
    pub fn parse(file_name: &str) -> Option<Self> {
        let (start, end) = file_name.split_once('.')?;
        let stamp = |s: &str| s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit());
        if !stamp(start) {
            return None;
        }
        let end = match end {
            "not_terminated" => TrailEnd::NotTerminated,
            "crash_recovery" => TrailEnd::CrashRecovery,
            end if stamp(end) => TrailEnd::Terminated(end.to_string()),
            _ => return None,
        };
        Some(Self {
            file_name: file_name.to_string(),
            start: start.to_string(),
            end,
        })
    }

    /// Whether auditd is done with the trail.
    pub fn is_finished(&self) -> bool {
        self.end != TrailEnd::NotTerminated
    }
}

impl PartialOrd for TrailName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TrailName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.file_name.cmp(&other.file_name)
    }
}

/// The trails of `dir`, in name (and so time) order, with their paths.
pub fn list_trails(dir: &Path) -> io::Result<Vec<(TrailName, PathBuf)>> {
    let mut trails = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(TrailName::parse) else {
            continue;
        };
        // `current` is a symlink and does not parse; a trail is a file.
        if entry.file_type()?.is_dir() {
            continue;
        }
        trails.push((name, entry.path()));
    }
    trails.sort();
    Ok(trails)
}

/// The trail `dir/current` points at, if it is a symlink to a trail.
fn current_link(dir: &Path) -> Option<TrailName> {
    let target = std::fs::read_link(dir.join("current")).ok()?;
    TrailName::parse(target.file_name()?.to_str()?)
}

/// Where a follower starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At the beginning of the oldest trail: everything on disk.
    Oldest,
    /// At the beginning of the trail `current` points at (or the newest).
    Current,
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError<E: std::error::Error + 'static> {
    /// The directory or a trail could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The receiver of the frames gave up.
    #[error(transparent)]
    Sink(E),
}

/// What one [`TrailFollower::poll`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Poll {
    /// Bytes read.
    pub bytes: u64,
    /// Trails read to their end and closed, in order.
    pub finished: Vec<String>,
}

struct OpenTrail {
    name: TrailName,
    path: PathBuf,
    file: File,
    stream: RecordStream,
}

/// Follows a trail directory across rotations. Call [`poll`](Self::poll)
/// whenever new records may have arrived (a daemon polls on a timer).
///
/// ```no_run
/// use sluice_ingest::bsm::trail::{StartAt, TrailFollower};
///
/// let mut follower = TrailFollower::new("/var/audit", StartAt::Current);
/// loop {
///     follower.poll(&mut |trail, frame| {
///         println!("{trail}: {frame:?}");
///         Ok::<(), std::io::Error>(())
///     })?;
///     std::thread::sleep(std::time::Duration::from_secs(1));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TrailFollower {
    dir: PathBuf,
    start_at: StartAt,
    current: Option<OpenTrail>,
    /// Start stamp of the last trail read to its end.
    last_done: Option<String>,
}

impl TrailFollower {
    /// A follower of `dir`; nothing is opened until the first poll.
    pub fn new(dir: impl Into<PathBuf>, start_at: StartAt) -> Self {
        Self {
            dir: dir.into(),
            start_at,
            current: None,
            last_done: None,
        }
    }

    /// The trail being read, by its file name when it was opened.
    pub fn current_trail(&self) -> Option<&str> {
        self.current.as_ref().map(|t| t.name.file_name.as_str())
    }

    fn io_error<E: std::error::Error>(&self, path: &Path, source: io::Error) -> FollowError<E> {
        FollowError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Reads whatever has been written since the last poll, across as many
    /// rotations as happened, handing each frame to `emit` with the name of
    /// its trail.
    pub fn poll<E>(
        &mut self,
        emit: &mut impl FnMut(&str, Frame<'_>) -> Result<(), E>,
    ) -> Result<Poll, FollowError<E>>
    where
        E: std::error::Error + 'static,
    {
        let mut poll = Poll::default();
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(poll);
            }
            let Some(trail) = self.current.as_mut() else {
                return Ok(poll);
            };
            poll.bytes += drain(trail, emit)?;
            // Judge whether the trail is finished only after reading to its
            // end, then read once more: whatever auditd wrote before it
            // rotated is in the file by the time the rotation is visible.
            let Some(final_name) = self.finished_name()? else {
                return Ok(poll);
            };
            let Some(mut trail) = self.current.take() else {
                return Ok(poll);
            };
            poll.bytes += drain(&mut trail, emit)?;
            let name = trail.name.file_name.as_str();
            trail
                .stream
                .finish(&mut |frame| emit(name, frame))
                .map_err(FollowError::Sink)?;
            self.last_done = Some(trail.name.start.clone());
            poll.finished.push(final_name);
        }
    }

    /// Opens the next trail to read. Returns false when there is none yet.
    fn open_next<E: std::error::Error>(&mut self) -> Result<bool, FollowError<E>> {
        let trails = list_trails(&self.dir).map_err(|e| self.io_error(&self.dir, e))?;
        let next = match (&self.last_done, self.start_at) {
            (Some(done), _) => trails.into_iter().find(|(t, _)| t.start > *done),
            (None, StartAt::Oldest) => trails.into_iter().next(),
            (None, StartAt::Current) => {
                let current = current_link(&self.dir);
                match current {
                    Some(c) => trails.into_iter().find(|(t, _)| t.start == c.start),
                    None => trails.into_iter().last(),
                }
            }
        };
        let Some((name, path)) = next else {
            return Ok(false);
        };
        match File::open(&path) {
            Ok(file) => {
                self.current = Some(OpenTrail {
                    name,
                    path,
                    file,
                    stream: RecordStream::new(),
                });
                Ok(true)
            }
            // Renamed between listing and opening: look again next poll.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io_error(&path, e)),
        }
    }

    /// If auditd is done with the open trail, its name now (which differs
    /// from the name it was opened by when auditd renamed it).
    fn finished_name<E: std::error::Error>(&self) -> Result<Option<String>, FollowError<E>> {
        let Some(trail) = &self.current else {
            return Ok(None);
        };
        let trails = list_trails(&self.dir).map_err(|e| self.io_error(&self.dir, e))?;
        let now = trails.iter().find(|(t, _)| t.start == trail.name.start);
        let newer = trails.iter().any(|(t, _)| t.start > trail.name.start);
        let current_moved = current_link(&self.dir).is_some_and(|c| c.start > trail.name.start);
        let finished = match now {
            Some((t, _)) => t.is_finished() || newer || current_moved,
            // Deleted under us: nothing more will be written to it.
            None => true,
        };
        Ok(finished.then(|| {
            now.map_or_else(
                || trail.name.file_name.clone(),
                |(t, _)| t.file_name.clone(),
            )
        }))
    }
}

/// Reads `trail` to its current end.
fn drain<E: std::error::Error + 'static>(
    trail: &mut OpenTrail,
    emit: &mut impl FnMut(&str, Frame<'_>) -> Result<(), E>,
) -> Result<u64, FollowError<E>> {
    let name = trail.name.file_name.as_str();
    let mut total = 0;
    loop {
        let n = trail
            .stream
            .read_from(&mut trail.file, &mut |frame| emit(name, frame))
            .map_err(|e| match e {
                StreamError::Read { source, .. } => FollowError::Io {
                    path: trail.path.clone(),
                    source,
                },
                StreamError::Sink(e) => FollowError::Sink(e),
            })?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests;
