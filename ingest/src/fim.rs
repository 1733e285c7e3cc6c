//! `file_events`: file integrity monitoring through the notify crate
//! (inotify on Linux, FSEvents on macOS), configured the way osquery is.
//!
//! An osquery FIM configuration names categories of paths in `file_paths`
//! (`"homes": ["/home/%/.ssh/%%"]`) and paths to leave out in
//! `exclude_paths`, with `%` for one level and `%%` for everything below.
//! [`FimRules`] compiles both with the gates' path matcher, and works out
//! which directories to ask the OS to watch: each pattern's literal
//! directory, recursively when the pattern reaches below it.
//!
//! The OS tells of a change with a path and a kind. [`FimCollector`] turns
//! each into a row the way osquery's FIM does:
//! - the action is one of `CREATED`, `UPDATED`, `DELETED`, `MOVED_FROM`,
//!   `MOVED_TO`, `ATTRIBUTES_MODIFIED`, and `OPENED`/`ACCESSED` only when
//!   accesses are enabled (they are the firehose of FIM, as opens are of ES);
//! - the category is the first category whose patterns match;
//! - inode, uid, gid, mode, size and the three times come from `lstat` of
//!   the path as it is when the event is handled (a deleted file has none);
//! - md5, sha1 and sha256 are computed when asked for, for regular files
//!   under a size limit and within a byte budget per second, so that one
//!   busy log file cannot turn the collector into a hashing service.
//!   `hashed` is 1 when the digests were computed, 0 when hashing is off or
//!   the file is not a regular file, and -1 when a limit skipped it.
//!
//! [`FimWatcher`] is the live source. The OS's callback never blocks: it
//! hands each event to a bounded queue and, when the queue is full, drops
//! the event and counts it (`backpressure`), as every live source does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use notify::event::{AccessKind, EventKind, ModifyKind, RenameMode};
use serde::Deserialize;
use sluice_schemas::FILE_EVENTS;

use crate::builders::EventIds;
use crate::gates::GateConfigError;
use crate::gates::config::PathRules;
use crate::gates::muting::PathMatcher;
use crate::gates::osquery_paths::{TranslatedRule, translate};

/// The `[sources.file_events]` section of the config: osquery's FIM keys.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FimConfig {
    /// Categories of watched paths, osquery's `file_paths`.
    pub file_paths: BTreeMap<String, Vec<String>>,
    /// Paths to leave out, per category, osquery's `exclude_paths`.
    pub exclude_paths: BTreeMap<String, Vec<String>>,
    /// Whether `OPENED` and `ACCESSED` are collected (off by default: they
    /// outnumber every other action).
    pub accesses: bool,
    /// Which digests to compute, and the limits on hashing.
    pub hash: HashConfig,
}

/// Hashing of changed files.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashConfig {
    /// Compute md5.
    pub md5: bool,
    /// Compute sha1.
    pub sha1: bool,
    /// Compute sha256.
    pub sha256: bool,
    /// Files larger than this are not hashed (`hashed` = -1).
    pub max_file_bytes: u64,
    /// At most this many bytes are hashed per second, over all files; a file
    /// that would go over is not hashed (`hashed` = -1).
    pub max_bytes_per_second: u64,
}

impl Default for HashConfig {
    fn default() -> Self {
        Self {
            md5: false,
            sha1: false,
            sha256: false,
            max_file_bytes: 50 << 20,
            max_bytes_per_second: 100 << 20,
        }
    }
}

impl HashConfig {
    fn any(&self) -> bool {
        self.md5 || self.sha1 || self.sha256
    }
}

/// One category's compiled patterns.
#[derive(Debug, Clone)]
struct Category {
    name: String,
    include: PathMatcher,
    exclude: PathMatcher,
}

/// A directory to watch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchRoot {
    /// The directory.
    pub path: PathBuf,
    /// Whether everything below it is watched too.
    pub recursive: bool,
}

/// Compiled `file_paths` and `exclude_paths`.
#[derive(Debug, Clone)]
pub struct FimRules {
    categories: Vec<Category>,
    roots: Vec<WatchRoot>,
}

impl FimRules {
    /// Compiles `config`. A pattern that is not absolute is an error: the
    /// watcher would resolve it against whatever directory it started in.
    pub fn new(config: &FimConfig) -> Result<Self, GateConfigError> {
        let mut categories = Vec::new();
        let mut roots: Vec<WatchRoot> = Vec::new();
        for (name, patterns) in &config.file_paths {
            for pattern in patterns {
                if !pattern.starts_with('/') {
                    return Err(GateConfigError::Rule {
                        rule: pattern.clone(),
                        reason: "file_paths must be absolute".into(),
                    });
                }
                roots.push(watch_root(pattern));
            }
            let compile = |patterns: &[String]| {
                PathMatcher::new(&PathRules::default(), patterns.iter().map(|p| translate(p)))
            };
            let exclude = config
                .exclude_paths
                .get(name)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            categories.push(Category {
                name: name.clone(),
                include: compile(patterns)?,
                exclude: compile(exclude)?,
            });
        }
        for name in config.exclude_paths.keys() {
            if !config.file_paths.contains_key(name) {
                return Err(GateConfigError::Rule {
                    rule: name.clone(),
                    reason: "exclude_paths names a category that file_paths does not".into(),
                });
            }
        }
        roots.sort();
        roots.dedup();
        // A root at or below a recursive root is already watched.
        let recursive: Vec<PathBuf> = roots
            .iter()
            .filter(|r| r.recursive)
            .map(|r| r.path.clone())
            .collect();
        roots.retain(|r| {
            !recursive
                .iter()
                .any(|top| r.path.starts_with(top) && (r.path != *top || !r.recursive))
        });
        Ok(Self { categories, roots })
    }

    /// The category `path` belongs to: the first (by name) whose patterns
    /// match it and whose exclusions do not.
    pub fn category(&self, path: &[u8]) -> Option<&str> {
        self.categories
            .iter()
            .find(|c| c.include.matches(path) && !c.exclude.matches(path))
            .map(|c| c.name.as_str())
    }

    /// The directories to watch.
    pub fn roots(&self) -> &[WatchRoot] {
        &self.roots
    }
}

/// The directory a pattern's matches all live in, and whether they can be
/// deeper than its direct children.
fn watch_root(pattern: &str) -> WatchRoot {
    match translate(pattern) {
        TranslatedRule::Literal(path) => {
            // A file is watched through its directory, so that replacing it
            // (write a temporary, rename over) is seen.
            let path = PathBuf::from(path);
            let dir = path.parent().map(Path::to_path_buf).unwrap_or(path);
            WatchRoot {
                path: dir,
                recursive: false,
            }
        }
        TranslatedRule::Prefix(prefix) => WatchRoot {
            path: PathBuf::from(prefix.trim_end_matches('/')).max(PathBuf::from("/")),
            recursive: true,
        },
        TranslatedRule::Glob(glob) => {
            let wildcard = glob.find(['*', '?', '[']).unwrap_or(glob.len());
            let slash = glob[..wildcard].rfind('/').unwrap_or(0);
            let dir = if slash == 0 { "/" } else { &glob[..slash] };
            WatchRoot {
                path: PathBuf::from(dir),
                recursive: glob[slash + 1..].contains('/'),
            }
        }
    }
}

/// One `file_events` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileEventRow<'a> {
    /// The path that changed.
    pub target_path: &'a str,
    /// The category from `file_paths`.
    pub category: &'a str,
    /// `CREATED`, `UPDATED`, …
    pub action: &'static str,
    /// Ties the two halves of a move together (the inotify cookie), else 0.
    pub transaction_id: i64,
    /// What `lstat` says, when the path still exists.
    pub stat: Option<FileStat>,
    /// Hex digests, when computed.
    pub md5: Option<&'a str>,
    /// Hex sha1.
    pub sha1: Option<&'a str>,
    /// Hex sha256.
    pub sha256: Option<&'a str>,
    /// 1 hashed, 0 not asked or not a regular file, -1 skipped by a limit.
    pub hashed: i32,
    /// When the event was handled, ns since the epoch.
    pub time_ns: i64,
}

/// The parts of `lstat` that `file_events` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStat {
    /// Inode number.
    pub inode: i64,
    /// Owner.
    pub uid: i64,
    /// Group.
    pub gid: i64,
    /// Permission bits and file type, as osquery prints them (octal, 4
    /// digits).
    pub mode: u32,
    /// Size in bytes.
    pub size: i64,
    /// Last access, seconds since the epoch.
    pub atime: i64,
    /// Last modification.
    pub mtime: i64,
    /// Last status change.
    pub ctime: i64,
    /// Whether it is a regular file.
    pub regular: bool,
}

impl FileStat {
    /// `lstat` of `path`, or `None` when it is gone.
    pub fn of(path: &Path) -> Option<FileStat> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileStat {
                inode: meta.ino() as i64,
                uid: i64::from(meta.uid()),
                gid: i64::from(meta.gid()),
                mode: meta.mode() & 0o7777,
                size: meta.size() as i64,
                atime: meta.atime(),
                mtime: meta.mtime(),
                ctime: meta.ctime(),
                regular: meta.is_file(),
            })
        }
        #[cfg(not(unix))]
        {
            Some(FileStat {
                size: meta.len() as i64,
                regular: meta.is_file(),
                ..FileStat::default()
            })
        }
    }
}

/// Builds `file_events` batches.
#[derive(Debug)]
pub struct FileEventsBuilder {
    target_path: StringBuilder,
    category: StringBuilder,
    action: StringBuilder,
    transaction_id: Int64Builder,
    inode: Int64Builder,
    uid: Int64Builder,
    gid: Int64Builder,
    mode: StringBuilder,
    size: Int64Builder,
    atime: Int64Builder,
    mtime: Int64Builder,
    ctime: Int64Builder,
    md5: StringBuilder,
    sha1: StringBuilder,
    sha256: StringBuilder,
    hashed: Int32Builder,
    time: Int64Builder,
    time_ns: TimestampNanosecondBuilder,
    rows: usize,
    event_ids: EventIds,
    /// Reused for the text column rendered from a number (mode), so a
    /// row costs no allocation.
    buf: String,
}

impl Default for FileEventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FileEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            target_path: StringBuilder::new(),
            category: StringBuilder::new(),
            action: StringBuilder::new(),
            transaction_id: Int64Builder::new(),
            inode: Int64Builder::new(),
            uid: Int64Builder::new(),
            gid: Int64Builder::new(),
            mode: StringBuilder::new(),
            size: Int64Builder::new(),
            atime: Int64Builder::new(),
            mtime: Int64Builder::new(),
            ctime: Int64Builder::new(),
            md5: StringBuilder::new(),
            sha1: StringBuilder::new(),
            sha256: StringBuilder::new(),
            hashed: Int32Builder::new(),
            time: Int64Builder::new(),
            time_ns: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            rows: 0,
            event_ids: EventIds::default(),
            buf: String::with_capacity(16),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row is waiting.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row.
    pub fn append(&mut self, row: &FileEventRow<'_>) {
        self.target_path.append_value(row.target_path);
        self.category.append_value(row.category);
        self.action.append_value(row.action);
        self.transaction_id.append_value(row.transaction_id);
        match &row.stat {
            Some(stat) => {
                self.inode.append_value(stat.inode);
                self.uid.append_value(stat.uid);
                self.gid.append_value(stat.gid);
                self.buf.clear();
                // Writing to a String cannot fail.
                let _ = write!(self.buf, "{:04o}", stat.mode);
                self.mode.append_value(&self.buf);
                self.size.append_value(stat.size);
                self.atime.append_value(stat.atime);
                self.mtime.append_value(stat.mtime);
                self.ctime.append_value(stat.ctime);
            }
            None => {
                for column in [
                    &mut self.inode,
                    &mut self.uid,
                    &mut self.gid,
                    &mut self.size,
                    &mut self.atime,
                    &mut self.mtime,
                    &mut self.ctime,
                ] {
                    column.append_null();
                }
                self.mode.append_null();
            }
        }
        self.md5.append_option(row.md5);
        self.sha1.append_option(row.sha1);
        self.sha256.append_option(row.sha256);
        self.hashed.append_value(row.hashed);
        self.time
            .append_value(row.time_ns.div_euclid(1_000_000_000));
        self.event_ids.append_next();
        self.time_ns.append_value(row.time_ns);
        self.rows += 1;
    }

    /// The rows so far as one batch, leaving the builder empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.target_path.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.transaction_id.finish()),
            Arc::new(self.inode.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.gid.finish()),
            Arc::new(self.mode.finish()),
            Arc::new(self.size.finish()),
            Arc::new(self.atime.finish()),
            Arc::new(self.mtime.finish()),
            Arc::new(self.ctime.finish()),
            Arc::new(self.md5.finish()),
            Arc::new(self.sha1.finish()),
            Arc::new(self.sha256.finish()),
            Arc::new(self.hashed.finish()),
            Arc::new(self.time.finish()),
            self.event_ids.finish()?,
            Arc::new(self.time_ns.finish()),
        ];
        RecordBatch::try_new(FILE_EVENTS.schema(), columns)
    }
}

/// The osquery action for an event kind, with the path's place in the
/// event, or `None` for kinds osquery does not report.
pub fn action(kind: &EventKind, index: usize, accesses: bool) -> Option<&'static str> {
    Some(match kind {
        EventKind::Create(_) => "CREATED",
        EventKind::Remove(_) => "DELETED",
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => "MOVED_FROM",
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => "MOVED_TO",
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            if index == 0 {
                "MOVED_FROM"
            } else {
                "MOVED_TO"
            }
        }
        EventKind::Modify(ModifyKind::Name(_)) => "MOVED_TO",
        EventKind::Modify(ModifyKind::Metadata(_)) => "ATTRIBUTES_MODIFIED",
        EventKind::Modify(_) => "UPDATED",
        EventKind::Access(AccessKind::Open(_)) if accesses => "OPENED",
        EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)) => "UPDATED",
        EventKind::Access(_) if accesses => "ACCESSED",
        _ => return None,
    })
}

/// The byte budget of hashing, refilled every second.
#[derive(Debug)]
struct HashBudget {
    per_second: u64,
    left: u64,
    window_start_ns: i64,
}

impl HashBudget {
    fn take(&mut self, bytes: u64, now_ns: i64) -> bool {
        if now_ns - self.window_start_ns >= 1_000_000_000 {
            self.window_start_ns = now_ns;
            self.left = self.per_second;
        }
        if bytes > self.left {
            return false;
        }
        self.left -= bytes;
        true
    }
}

/// Digests of one file, hex.
#[derive(Debug, Default)]
struct Digests {
    md5: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Reads `path` once and computes the digests `config` asks for.
fn digest_file(path: &Path, config: &HashConfig) -> std::io::Result<Digests> {
    use sha2::Digest as _;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut md5 = config.md5.then(md5::Md5::new);
    let mut sha1 = config.sha1.then(sha1::Sha1::new);
    let mut sha256 = config.sha256.then(sha2::Sha256::new);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if let Some(h) = md5.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = sha1.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = sha256.as_mut() {
            h.update(chunk);
        }
    }
    Ok(Digests {
        md5: md5.map(|h| hex(&h.finalize())),
        sha1: sha1.map(|h| hex(&h.finalize())),
        sha256: sha256.map(|h| hex(&h.finalize())),
    })
}

/// Turns OS change events into `file_events` rows.
#[derive(Debug)]
pub struct FimCollector {
    rules: FimRules,
    accesses: bool,
    hash: HashConfig,
    budget: HashBudget,
    builder: FileEventsBuilder,
    /// Events whose path no category wants (the watch roots are wider
    /// than the patterns), or whose kind osquery does not report.
    ignored: u64,
}

impl FimCollector {
    /// A collector for `config`.
    pub fn new(config: &FimConfig) -> Result<Self, GateConfigError> {
        Ok(Self {
            rules: FimRules::new(config)?,
            accesses: config.accesses,
            budget: HashBudget {
                per_second: config.hash.max_bytes_per_second,
                left: config.hash.max_bytes_per_second,
                window_start_ns: i64::MIN / 2,
            },
            hash: config.hash.clone(),
            builder: FileEventsBuilder::new(),
            ignored: 0,
        })
    }

    /// The compiled rules (for the directories to watch).
    pub fn rules(&self) -> &FimRules {
        &self.rules
    }

    /// Events seen but not stored: outside every category, or of a kind
    /// osquery does not report.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Rows waiting in the builder.
    pub fn buffered_rows(&self) -> usize {
        self.builder.len()
    }

    /// Takes the waiting rows as a batch, if there are any.
    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.builder.is_empty() {
            return Ok(None);
        }
        self.builder.finish().map(Some)
    }

    /// Records one event from the OS, handled at `now_ns`; returns the rows
    /// it added.
    pub fn record(&mut self, event: &notify::Event, now_ns: i64) -> usize {
        let mut added = 0;
        for (index, path) in event.paths.iter().enumerate() {
            let Some(action) = action(&event.kind, index, self.accesses) else {
                self.ignored += 1;
                continue;
            };
            let Some(text) = path.to_str() else {
                // file_events has no byte sidecar for its path; a path that
                // is not UTF-8 is stored with replacement characters.
                let lossy = path.to_string_lossy().into_owned();
                added += self.record_path(&lossy, path, action, event, now_ns);
                continue;
            };
            added += self.record_path(text, path, action, event, now_ns);
        }
        added
    }

    fn record_path(
        &mut self,
        text: &str,
        path: &Path,
        action: &'static str,
        event: &notify::Event,
        now_ns: i64,
    ) -> usize {
        let Some(category) = self.rules.category(text.as_bytes()) else {
            self.ignored += 1;
            return 0;
        };
        let category = category.to_string();
        let stat = if action == "DELETED" || action == "MOVED_FROM" {
            None
        } else {
            FileStat::of(path)
        };
        let (digests, hashed) = match &stat {
            Some(s)
                if s.regular && self.hash.any() && action != "OPENED" && action != "ACCESSED" =>
            {
                let size = s.size.max(0) as u64;
                if size > self.hash.max_file_bytes || !self.budget.take(size, now_ns) {
                    (Digests::default(), -1)
                } else {
                    match digest_file(path, &self.hash) {
                        Ok(d) => (d, 1),
                        // Gone or unreadable between stat and read.
                        Err(_) => (Digests::default(), -1),
                    }
                }
            }
            _ => (Digests::default(), 0),
        };
        let transaction_id = event.attrs.tracker().map_or(0, |t| t as i64);
        self.builder.append(&FileEventRow {
            target_path: text,
            category: &category,
            action,
            transaction_id,
            stat,
            md5: digests.md5.as_deref(),
            sha1: digests.sha1.as_deref(),
            sha256: digests.sha256.as_deref(),
            hashed,
            time_ns: now_ns,
        });
        1
    }
}

/// A live watch: the OS's watcher and the bounded queue its callback fills.
pub struct FimWatcher {
    // Dropping the watcher stops the OS watch.
    _watcher: notify::RecommendedWatcher,
    events: Receiver<notify::Event>,
    dropped: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl std::fmt::Debug for FimWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FimWatcher")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// Why a watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The OS refused to watch a directory.
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What notify said.
        source: notify::Error,
    },
    /// The OS watcher could not be created.
    #[error("cannot start the file watcher: {0}")]
    Start(#[source] notify::Error),
}

impl FimWatcher {
    /// Watches `rules`' roots; at most `queue` events wait for the
    /// collector. A root that does not exist yet is skipped with a warning
    /// (osquery does the same), rather than failing the whole source.
    pub fn start(rules: &FimRules, queue: usize) -> Result<Self, WatchError> {
        use notify::Watcher as _;
        let (sender, events): (SyncSender<notify::Event>, _) = std::sync::mpsc::sync_channel(queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let (dropped_in_callback, errors_in_callback) = (dropped.clone(), errors.clone());
        let mut watcher =
            notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
                match result {
                    Ok(event) => {
                        if let Err(TrySendError::Full(_)) = sender.try_send(event) {
                            dropped_in_callback.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        // Includes the OS queue overflowing (inotify's
                        // IN_Q_OVERFLOW): events were lost before sluice saw them.
                        errors_in_callback.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(WatchError::Start)?;
        for root in rules.roots() {
            if !root.path.exists() {
                tracing::warn!(path = %root.path.display(), "file_paths root does not exist; not watched");
                continue;
            }
            let mode = if root.recursive {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            watcher
                .watch(&root.path, mode)
                .map_err(|source| WatchError::Watch {
                    path: root.path.clone(),
                    source,
                })?;
        }
        Ok(Self {
            _watcher: watcher,
            events,
            dropped,
            errors,
        })
    }

    /// Hands every waiting event to `collector`, stamping each with `now()`;
    /// returns how many events there were.
    pub fn drain(&self, collector: &mut FimCollector, now: impl Fn() -> i64) -> usize {
        let mut n = 0;
        while let Ok(event) = self.events.try_recv() {
            collector.record(&event, now());
            n += 1;
        }
        n
    }

    /// Waits up to `timeout` for the next event and records it.
    pub fn wait(
        &self,
        collector: &mut FimCollector,
        timeout: std::time::Duration,
        now: impl Fn() -> i64,
    ) -> bool {
        match self.events.recv_timeout(timeout) {
            Ok(event) => {
                collector.record(&event, now());
                true
            }
            Err(_) => false,
        }
    }

    /// Events dropped because the queue was full (backpressure).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Errors the OS watcher reported, including its own queue overflowing.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
