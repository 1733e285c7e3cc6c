//! `hash` and `file`: digests and metadata of named files on this host.
//!
//! Neither table can be listed whole (that would be the whole disk), so, as
//! in osquery, each needs a constraint naming what to read:
//!
//! - `WHERE path = '/bin/ls'`, `path IN (…)` or `directory = '/etc'` (a
//!   directory's entries, not recursive): [`PathTable`] accepts these through
//!   filter pushdown and reads exactly those paths when the query runs;
//! - a join, `LEFT JOIN hash ON e.path = hash.path`: [`super::lookup`]
//!   replaces the join with a lookup that reads only the distinct paths that
//!   reach it;
//! - anything else is refused with an error saying how to add one.
//!
//! **Digests are cached** across queries of one session, keyed by path and
//! checked against (inode, device, mtime, size) from a fresh `stat`, so an
//! unchanged file is hashed once and a rewritten one again. **Each query may
//! hash at most a byte budget** (1 GiB by default, `SLUICE_HASH_BUDGET_BYTES`
//! to change it): a file that would take the query past it is not read, its
//! row keeps `path` and `directory` with NULL digests, and a warning says how
//! many files were skipped. A query over events stays answerable when one
//! of them names a 50 GiB disk image; osquery similarly skips files above its
//! `read_max`.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::Kind::{BigInt, Integer, Text};
use super::{HostScanExec, schema_of};

/// Bytes one query may hash unless `SLUICE_HASH_BUDGET_BYTES` says otherwise.
pub const DEFAULT_HASH_BUDGET_BYTES: u64 = 1 << 30;

/// The environment variable that overrides [`DEFAULT_HASH_BUDGET_BYTES`].
pub const HASH_BUDGET_ENV: &str = "SLUICE_HASH_BUDGET_BYTES";

/// Cached digests kept per session; past this, the cache starts over.
const MAX_CACHED_DIGESTS: usize = 100_000;

/// Which of the two path tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum PathTableKind {
    /// `hash`: md5, sha1 and sha256 of a file's contents.
    Hash,
    /// `file`: a file's metadata (`stat`).
    File,
}

impl PathTableKind {
    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            PathTableKind::Hash => "hash",
            PathTableKind::File => "file",
        }
    }
}

/// osquery's `hash` columns.
pub fn hash_schema() -> SchemaRef {
    schema_of(&[
        ("path", Text),
        ("directory", Text),
        ("md5", Text),
        ("sha1", Text),
        ("sha256", Text),
    ])
}

/// osquery's `file` columns (the POSIX ones).
pub fn file_schema() -> SchemaRef {
    schema_of(&[
        ("path", Text),
        ("directory", Text),
        ("filename", Text),
        ("inode", BigInt),
        ("uid", BigInt),
        ("gid", BigInt),
        ("mode", Text),
        ("device", BigInt),
        ("size", BigInt),
        ("block_size", Integer),
        ("atime", BigInt),
        ("mtime", BigInt),
        ("ctime", BigInt),
        ("btime", BigInt),
        ("hard_links", Integer),
        ("symlink", Integer),
        ("type", Text),
    ])
}

/// What a file looked like when its digests were computed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileVersion {
    inode: u64,
    device: u64,
    mtime_ns: i128,
    size: u64,
}

impl FileVersion {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileVersion {
            inode: meta.ino(),
            device: meta.dev(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            size: meta.len(),
        }
    }
}

/// A file's digests, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// MD5.
    pub md5: String,
    /// SHA-1.
    pub sha1: String,
    /// SHA-256.
    pub sha256: String,
}

/// How many bytes one query may still hash, and how many files it skipped
/// for lack of them.
#[derive(Debug)]
pub struct HashBudget {
    remaining: AtomicU64,
    skipped: AtomicU64,
}

impl HashBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        HashBudget {
            remaining: AtomicU64::new(bytes),
            skipped: AtomicU64::new(0),
        }
    }

    /// Takes `bytes` from the budget, or returns false (taking nothing) when
    /// fewer remain.
    fn take(&self, bytes: u64) -> bool {
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    /// Files left unhashed because the budget was spent.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Logs the warning for the skipped files, if any.
    pub fn warn_if_exceeded(&self, table: &str, budget: u64) {
        let skipped = self.skipped();
        if skipped > 0 {
            tracing::warn!(
                table,
                skipped_files = skipped,
                budget_bytes = budget,
                "the query reached its hashing budget; {skipped} file(s) have NULL digests \
                 (raise {HASH_BUDGET_ENV} to hash them)"
            );
        }
    }
}

/// The `hash` or `file` table. See the module docs. Clones share the digest
/// cache and the counters.
#[derive(Clone)]
pub struct PathTable {
    kind: PathTableKind,
    schema: SchemaRef,
    budget_bytes: u64,
    digests: Arc<Mutex<HashMap<String, (FileVersion, Digests)>>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    files_hashed: AtomicU64,
    bytes_hashed: AtomicU64,
    cache_hits: AtomicU64,
}

impl fmt::Debug for PathTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathTable")
            .field("kind", &self.kind)
            .field("budget_bytes", &self.budget_bytes)
            .field("files_hashed", &self.files_hashed())
            .finish_non_exhaustive()
    }
}

impl PathTable {
    /// The `hash` table, with the budget from the environment.
    pub fn hash() -> Self {
        Self::new(PathTableKind::Hash, budget_from_env())
    }

    /// The `file` table.
    pub fn file() -> Self {
        Self::new(PathTableKind::File, budget_from_env())
    }

    /// A table of `kind` whose queries may each hash `budget_bytes`.
    pub fn new(kind: PathTableKind, budget_bytes: u64) -> Self {
        PathTable {
            kind,
            schema: match kind {
                PathTableKind::Hash => hash_schema(),
                PathTableKind::File => file_schema(),
            },
            budget_bytes,
            digests: Arc::new(Mutex::new(HashMap::new())),
            counters: Arc::new(Counters::default()),
        }
    }

    /// The table's full schema.
    pub fn schema_ref(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Which table this is.
    pub fn kind(&self) -> PathTableKind {
        self.kind
    }

    /// The byte budget of each query.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Files whose contents were read and hashed (cache misses), since the
    /// table was created.
    pub fn files_hashed(&self) -> u64 {
        self.counters.files_hashed.load(Ordering::Relaxed)
    }

    /// Bytes read for hashing since the table was created.
    pub fn bytes_hashed(&self) -> u64 {
        self.counters.bytes_hashed.load(Ordering::Relaxed)
    }

    /// Digests served from the cache since the table was created.
    pub fn cache_hits(&self) -> u64 {
        self.counters.cache_hits.load(Ordering::Relaxed)
    }

    /// The error for a query that gives no constraint.
    pub(crate) fn missing_constraint(&self) -> DataFusionError {
        let name = self.kind.name();
        DataFusionError::Plan(format!(
            "{name} needs a path or directory constraint, as in osquery: \
             add WHERE {name}.path = '/bin/ls' (or path IN (…), or directory = '/etc'), \
             or join on the path: LEFT JOIN {name} ON e.path = {name}.path"
        ))
    }

    /// The table's rows (full schema) for `paths`, at most one row per path,
    /// and for each path the index of its row (`None`: no such file, or not
    /// one `hash` reads).
    pub(crate) fn rows_for_paths(
        &self,
        paths: &[&str],
        budget: &HashBudget,
    ) -> Result<(RecordBatch, Vec<Option<usize>>)> {
        match self.kind {
            PathTableKind::Hash => {
                let mut rows = Vec::new();
                let mut index = Vec::with_capacity(paths.len());
                for path in paths {
                    let row = self.hash_row(path, budget);
                    index.push(row.is_some().then_some(rows.len()));
                    rows.extend(row);
                }
                Ok((hash_batch(&self.schema, &rows)?, index))
            }
            PathTableKind::File => {
                let mut rows = Vec::new();
                let mut index = Vec::with_capacity(paths.len());
                for path in paths {
                    let row = file_row(path, None);
                    index.push(row.is_some().then_some(rows.len()));
                    rows.extend(row);
                }
                Ok((file_batch(&self.schema, &rows)?, index))
            }
        }
    }

    /// Rows for every path and every entry of every directory of `constraint`.
    fn rows_for_constraint(&self, constraint: &Constraint) -> Result<RecordBatch> {
        let budget = HashBudget::new(self.budget_bytes);
        // (path, directory): a path named alone belongs to its parent, an
        // entry to the directory that was listed. The same pair named twice
        // (`directory = d OR path = 'd/x'`) is one row.
        let mut paths: Vec<(String, String)> = constraint
            .paths
            .iter()
            .map(|p| (p.clone(), parent_of(p)))
            .collect();
        for dir in &constraint.directories {
            // A directory that cannot be listed has no rows, as in osquery.
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.path().to_string_lossy().into_owned())
                .collect();
            names.sort();
            paths.extend(names.into_iter().map(|p| (p, dir.clone())));
        }
        let mut seen = std::collections::HashSet::new();
        paths.retain(|pair| seen.insert(pair.clone()));
        let batch = match self.kind {
            PathTableKind::Hash => {
                let rows: Vec<HashRow> = paths
                    .iter()
                    .filter_map(|(p, d)| {
                        let mut row = self.hash_row(p, &budget)?;
                        row.directory = d.clone();
                        Some(row)
                    })
                    .collect();
                hash_batch(&self.schema, &rows)?
            }
            PathTableKind::File => {
                let rows: Vec<FileRow> = paths
                    .iter()
                    .filter_map(|(p, d)| file_row(p, Some(d)))
                    .collect();
                file_batch(&self.schema, &rows)?
            }
        };
        budget.warn_if_exceeded(self.kind.name(), self.budget_bytes);
        Ok(batch)
    }

    /// The `hash` row of one path: `None` when it is not a regular file that
    /// can be read.
    fn hash_row(&self, path: &str, budget: &HashBudget) -> Option<HashRow> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let version = FileVersion::of(&meta);
        let directory = parent_of(path);
        let cached = {
            let cache = self.digests.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(path)
                .filter(|(v, _)| *v == version)
                .map(|(_, d)| d.clone())
        };
        if let Some(digests) = cached {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Some(HashRow {
                path: path.to_string(),
                directory,
                digests: Some(digests),
            });
        }
        if !budget.take(version.size) {
            budget.skipped.fetch_add(1, Ordering::Relaxed);
            return Some(HashRow {
                path: path.to_string(),
                directory,
                digests: None,
            });
        }
        let (digests, read) = match hash_file(Path::new(path)) {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(path, error = %e, "hash: cannot read file");
                return None;
            }
        };
        self.counters.files_hashed.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_hashed
            .fetch_add(read, Ordering::Relaxed);
        let mut cache = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_DIGESTS {
            cache.clear();
        }
        cache.insert(path.to_string(), (version, digests.clone()));
        Some(HashRow {
            path: path.to_string(),
            directory,
            digests: Some(digests),
        })
    }
}

fn budget_from_env() -> u64 {
    match std::env::var(HASH_BUDGET_ENV) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(value = %text, "{HASH_BUDGET_ENV} is not a number of bytes; using the default");
            DEFAULT_HASH_BUDGET_BYTES
        }),
        Err(_) => DEFAULT_HASH_BUDGET_BYTES,
    }
}

fn parent_of(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads `path` once, feeding the three digests; returns them and the bytes
/// read.
pub fn hash_file(path: &Path) -> std::io::Result<(Digests, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5::new();
    let mut sha1 = Sha1::new();
    let mut sha256 = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        md5.update(&buf[..n]);
        sha1.update(&buf[..n]);
        sha256.update(&buf[..n]);
        total += n as u64;
    }
    Ok((
        Digests {
            md5: hex(&md5.finalize()),
            sha1: hex(&sha1.finalize()),
            sha256: hex(&sha256.finalize()),
        },
        total,
    ))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

struct HashRow {
    path: String,
    directory: String,
    digests: Option<Digests>,
}

fn hash_batch(schema: &SchemaRef, rows: &[HashRow]) -> Result<RecordBatch> {
    let digest = |f: fn(&Digests) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.digests.as_ref().map(f)),
        ))
    };
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.path.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.directory.as_str()),
            )),
            digest(|d| &d.md5),
            digest(|d| &d.sha1),
            digest(|d| &d.sha256),
        ],
    )?)
}

struct FileRow {
    path: String,
    directory: String,
    filename: String,
    meta: std::fs::Metadata,
    btime: i64,
    symlink: bool,
}

/// The `file` row of one path: `lstat` says whether it is a symlink, `stat`
/// (falling back to `lstat` for a dangling link) gives the rest, as osquery
/// does. `None` when nothing is there.
fn file_row(path: &str, directory: Option<&str>) -> Option<FileRow> {
    let link_meta = std::fs::symlink_metadata(path).ok()?;
    let symlink = link_meta.file_type().is_symlink();
    let meta = if symlink {
        std::fs::metadata(path).unwrap_or(link_meta)
    } else {
        link_meta
    };
    let btime = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let filename = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(FileRow {
        path: path.to_string(),
        directory: directory.map_or_else(|| parent_of(path), str::to_string),
        filename,
        meta,
        btime,
        symlink,
    })
}

fn file_type_name(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "regular"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_char_device() {
        "character"
    } else if t.is_block_device() {
        "block"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

fn file_batch(schema: &SchemaRef, rows: &[FileRow]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&FileRow) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let big = |f: &dyn Fn(&FileRow) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
    };
    let int = |f: &dyn Fn(&FileRow) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(rows.iter().map(f)))
    };
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            text(&|r| r.path.clone()),
            text(&|r| r.directory.clone()),
            text(&|r| r.filename.clone()),
            big(&|r| r.meta.ino() as i64),
            big(&|r| i64::from(r.meta.uid())),
            big(&|r| i64::from(r.meta.gid())),
            text(&|r| format!("{:04o}", r.meta.mode() & 0o7777)),
            big(&|r| r.meta.rdev() as i64),
            big(&|r| r.meta.size() as i64),
            int(&|r| r.meta.blksize() as i32),
            big(&|r| r.meta.atime()),
            big(&|r| r.meta.mtime()),
            big(&|r| r.meta.ctime()),
            big(&|r| r.btime),
            int(&|r| r.meta.nlink() as i32),
            int(&|r| i32::from(r.symlink)),
            text(&|r| file_type_name(&r.meta).to_string()),
        ],
    )?)
}

/// The paths and directories a query names, from its filters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Constraint {
    paths: Vec<String>,
    directories: Vec<String>,
}

impl Constraint {
    /// The constraint `expr` states on its own: `path = 'x'`, `path IN
    /// ('x', 'y')`, `directory = 'd'`, or an OR of those. `None` for any
    /// other filter.
    pub(crate) fn of(expr: &Expr) -> Option<Constraint> {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::Eq => {
                    let (column, value) = match (column_name(left), text_literal(right)) {
                        (Some(c), Some(v)) => (c, v),
                        _ => (column_name(right)?, text_literal(left)?),
                    };
                    Constraint::default().with(column, vec![value])
                }
                Operator::Or => {
                    let mut a = Constraint::of(left)?;
                    let b = Constraint::of(right)?;
                    a.paths.extend(b.paths);
                    a.directories.extend(b.directories);
                    Some(a)
                }
                _ => None,
            },
            Expr::InList(list) if !list.negated => {
                let column = column_name(&list.expr)?;
                let values = list
                    .list
                    .iter()
                    .map(text_literal)
                    .collect::<Option<Vec<_>>>()?;
                Constraint::default().with(column, values)
            }
            _ => None,
        }
    }

    fn with(mut self, column: &str, values: Vec<String>) -> Option<Constraint> {
        match column {
            "path" => self.paths.extend(values),
            "directory" => self.directories.extend(values),
            _ => return None,
        }
        Some(self)
    }
}

/// The column `expr` names, looking through casts (type coercion wraps
/// `path` in one when the other side is a `Utf8View`).
pub(crate) fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(cast) => column_name(&cast.expr),
        Expr::TryCast(cast) => column_name(&cast.expr),
        _ => None,
    }
}

fn text_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Cast(cast) => text_literal(&cast.expr),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for PathTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the scan reads the union of what each constraint names,
        // and DataFusion filters again, which keeps `path = 'a' AND
        // directory = 'b'` (or any AND) correct.
        Ok(filters
            .iter()
            .map(|f| match Constraint::of(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut constraint = Constraint::default();
        for filter in filters {
            if let Some(c) = Constraint::of(filter) {
                constraint.paths.extend(c.paths);
                constraint.directories.extend(c.directories);
            }
        }
        if constraint == Constraint::default() {
            return Err(self.missing_constraint());
        }
        // The scan outlives `&self`; the clone shares the cache and counters.
        let table = self.clone();
        Ok(Arc::new(HostScanExec::try_new(
            self.kind.name(),
            self.schema.clone(),
            projection.cloned(),
            Arc::new(move || table.rows_for_constraint(&constraint)),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn digests_match_known_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").expect("write");
        let (d, n) = hash_file(&path).expect("hash");
        assert_eq!(n, 3);
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constraints_are_recognised() {
        let c = Constraint::of(&col("path").eq(lit("/a"))).expect("eq");
        assert_eq!(c.paths, ["/a"]);
        let c = Constraint::of(&lit("/b").eq(col("path"))).expect("reversed");
        assert_eq!(c.paths, ["/b"]);
        let c =
            Constraint::of(&col("path").in_list(vec![lit("/a"), lit("/b")], false)).expect("in");
        assert_eq!(c.paths, ["/a", "/b"]);
        let c = Constraint::of(&col("path").eq(lit("/a")).or(col("directory").eq(lit("/d"))))
            .expect("or");
        assert_eq!((c.paths.len(), c.directories.len()), (1, 1));
        assert!(Constraint::of(&col("path").like(lit("/a%"))).is_none());
        assert!(Constraint::of(&col("md5").eq(lit("x"))).is_none());
        assert!(Constraint::of(&col("path").in_list(vec![lit("/a")], true)).is_none());
    }

    #[test]
    fn budget_leaves_big_files_unhashed_and_counts_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = dir.path().join("small");
        let big = dir.path().join("big");
        std::fs::write(&small, vec![1u8; 10]).expect("write");
        std::fs::write(&big, vec![2u8; 100]).expect("write");
        let table = PathTable::new(PathTableKind::Hash, 50);
        let budget = HashBudget::new(table.budget_bytes());
        let paths = [small.to_str().expect("utf8"), big.to_str().expect("utf8")];
        let (batch, index) = table.rows_for_paths(&paths, &budget).expect("rows");
        assert_eq!(index, [Some(0), Some(1)]);
        let sha = batch
            .column(4)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("sha256");
        assert!(!arrow::array::Array::is_null(sha, 0));
        assert!(arrow::array::Array::is_null(sha, 1));
        assert_eq!((table.files_hashed(), budget.skipped()), (1, 1));
    }

    #[test]
    fn rewritten_file_is_hashed_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").expect("write");
        let table = PathTable::new(PathTableKind::Hash, u64::MAX);
        let p = path.to_str().expect("utf8");
        let budget = HashBudget::new(u64::MAX);
        table.rows_for_paths(&[p], &budget).expect("first");
        table.rows_for_paths(&[p], &budget).expect("cached");
        assert_eq!((table.files_hashed(), table.cache_hits()), (1, 1));
        std::fs::write(&path, b"two!").expect("rewrite");
        table.rows_for_paths(&[p], &budget).expect("changed");
        assert_eq!(table.files_hashed(), 2);
    }
}
