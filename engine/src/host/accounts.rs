//! `users` and `groups`: the OS account database as a cached snapshot.
//!
//! Detections join millions of events to `users` (`ON e.auid = users.uid`).
//! Reading the account database for every query, let alone every event,
//! would make that join cost what the database costs; instead each table is
//! served from an [`AccountCache`]: one Arrow batch, rebuilt only
//!
//! - when the file behind the database changed (`/etc/passwd` for `users`,
//!   `/etc/group` for `groups`: its mtime, size or inode), checked with one
//!   `stat` per query, or
//! - when the snapshot is older than its time to live (60 s by default),
//!   which catches changes the file does not show (NSS modules such as LDAP or
//!   sssd on Linux, Directory Services on macOS).
//!
//! The system tables read the database through `getpwent`/`getgrent` (so NSS
//! and Directory Services are honoured); [`PasswdFile`] and [`GroupFile`]
//! read a file in passwd(5)/group(5) format instead, for a chroot or a copied
//! `/etc`, and for tests.

use std::ffi::CStr;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use super::Kind::{BigInt, Text};
use super::{SnapshotTable, host_error, schema_of};

/// How long a snapshot is served before it is read again even though its file
/// did not change.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// osquery's `users` columns (the POSIX ones; macOS' `is_hidden` and Windows'
/// `type` are left out).
pub fn users_schema() -> SchemaRef {
    schema_of(&[
        ("uid", BigInt),
        ("gid", BigInt),
        ("uid_signed", BigInt),
        ("gid_signed", BigInt),
        ("username", Text),
        ("description", Text),
        ("directory", Text),
        ("shell", Text),
        ("uuid", Text),
    ])
}

/// osquery's `groups` columns (the POSIX ones).
pub fn groups_schema() -> SchemaRef {
    schema_of(&[("gid", BigInt), ("gid_signed", BigInt), ("groupname", Text)])
}

/// The `users` table of this host.
pub fn users_table() -> SnapshotTable {
    users_table_with(Arc::new(AccountCache::new(
        Box::new(SystemUsers),
        DEFAULT_TTL,
    )))
}

/// The `groups` table of this host.
pub fn groups_table() -> SnapshotTable {
    groups_table_with(Arc::new(AccountCache::new(
        Box::new(SystemGroups),
        DEFAULT_TTL,
    )))
}

/// A `users` table served from `cache` (whose source must produce
/// [`users_schema`] batches).
pub fn users_table_with(cache: Arc<AccountCache>) -> SnapshotTable {
    SnapshotTable::new("users", users_schema(), Arc::new(move || cache.snapshot()))
}

/// A `groups` table served from `cache` (whose source must produce
/// [`groups_schema`] batches).
pub fn groups_table_with(cache: Arc<AccountCache>) -> SnapshotTable {
    SnapshotTable::new(
        "groups",
        groups_schema(),
        Arc::new(move || cache.snapshot()),
    )
}

/// Where a table's accounts come from.
pub trait AccountSource: Send + Sync + fmt::Debug {
    /// The file whose change means the accounts changed.
    fn watched_file(&self) -> PathBuf;
    /// Reads every account, as one batch of the table's schema.
    fn read(&self) -> Result<RecordBatch>;
}

/// What identifies one version of a file: a change to any of these means
/// the file was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

struct Snapshot {
    taken: Instant,
    stamp: Option<FileStamp>,
    batch: RecordBatch,
}

/// A snapshot of an [`AccountSource`], rebuilt when its file changes or when
/// it is older than its time to live. See the module docs.
pub struct AccountCache {
    source: Box<dyn AccountSource>,
    ttl: Duration,
    current: Mutex<Option<Snapshot>>,
    reads: AtomicU64,
}

impl fmt::Debug for AccountCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountCache")
            .field("source", &self.source)
            .field("ttl", &self.ttl)
            .field("reads", &self.reads())
            .finish_non_exhaustive()
    }
}

impl AccountCache {
    /// A cache over `source` whose snapshots live at most `ttl`.
    pub fn new(source: Box<dyn AccountSource>, ttl: Duration) -> Self {
        AccountCache {
            source,
            ttl,
            current: Mutex::new(None),
            reads: AtomicU64::new(0),
        }
    }

    /// How many times the source has been read (the first snapshot and every
    /// refresh).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The current snapshot, read again first if it is stale.
    pub fn snapshot(&self) -> Result<RecordBatch> {
        let stamp_now = stamp(&self.source.watched_file());
        // A poisoned lock only means another query panicked mid-refresh; the
        // snapshot it guards is replaced whole, so it is still consistent.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(snapshot) = current.as_ref()
            && snapshot.stamp == stamp_now
            && snapshot.taken.elapsed() < self.ttl
        {
            return Ok(snapshot.batch.clone());
        }
        let batch = self.source.read()?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        *current = Some(Snapshot {
            taken: Instant::now(),
            stamp: stamp_now,
            batch: batch.clone(),
        });
        Ok(batch)
    }
}

/// One account of the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserRow {
    uid: u32,
    gid: u32,
    name: String,
    gecos: String,
    dir: String,
    shell: String,
}

/// One group of the group database.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupRow {
    gid: u32,
    name: String,
}

fn users_batch(rows: &[UserRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.uid)),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.gid)),
        )),
        // osquery's *_signed: the ID read as a C int (nobody's 4294967294
        // becomes -2, as Apple tools show it).
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.uid as i32)),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.gid as i32)),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.name.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.gecos.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.dir.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.shell.as_str()),
        )),
        // Only macOS accounts have a UUID (Directory Services); osquery
        // reports it empty elsewhere.
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| ""))),
    ];
    Ok(RecordBatch::try_new(users_schema(), columns)?)
}

fn groups_batch(rows: &[GroupRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.gid)),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.gid as i32)),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.name.as_str()),
        )),
    ];
    Ok(RecordBatch::try_new(groups_schema(), columns)?)
}

/// getpwent and getgrent iterate a process-wide cursor: one reader at a time.
static ACCOUNT_DB: Mutex<()> = Mutex::new(());

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn c_text(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per this function's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// This host's users, through `getpwent` (NSS on Linux, Directory Services on
/// macOS).
#[derive(Debug)]
pub struct SystemUsers;

impl AccountSource for SystemUsers {
    fn watched_file(&self) -> PathBuf {
        PathBuf::from("/etc/passwd")
    }

    fn read(&self) -> Result<RecordBatch> {
        let _cursor = ACCOUNT_DB.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows = Vec::new();
        // SAFETY: the cursor is held exclusively (above); each entry is
        // copied out before the next call overwrites it.
        unsafe {
            libc::setpwent();
            loop {
                let entry = libc::getpwent();
                if entry.is_null() {
                    break;
                }
                let e = &*entry;
                rows.push(UserRow {
                    uid: e.pw_uid,
                    gid: e.pw_gid,
                    name: c_text(e.pw_name),
                    gecos: c_text(e.pw_gecos),
                    dir: c_text(e.pw_dir),
                    shell: c_text(e.pw_shell),
                });
            }
            libc::endpwent();
        }
        dedup_by_name(&mut rows, |r| &r.name);
        users_batch(&rows)
    }
}

/// This host's groups, through `getgrent`.
#[derive(Debug)]
pub struct SystemGroups;

impl AccountSource for SystemGroups {
    fn watched_file(&self) -> PathBuf {
        PathBuf::from("/etc/group")
    }

    fn read(&self) -> Result<RecordBatch> {
        let _cursor = ACCOUNT_DB.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows = Vec::new();
        // SAFETY: as for SystemUsers::read.
        unsafe {
            libc::setgrent();
            loop {
                let entry = libc::getgrent();
                if entry.is_null() {
                    break;
                }
                let e = &*entry;
                rows.push(GroupRow {
                    gid: e.gr_gid,
                    name: c_text(e.gr_name),
                });
            }
            libc::endgrent();
        }
        dedup_by_name(&mut rows, |r| &r.name);
        groups_batch(&rows)
    }
}

/// NSS can list one account twice (files and another module); keep the first.
fn dedup_by_name<T>(rows: &mut Vec<T>, name: impl Fn(&T) -> &String) {
    let mut seen = std::collections::HashSet::new();
    rows.retain(|r| seen.insert(name(r).clone()));
}

/// Users from a file in passwd(5) format (`name:password:uid:gid:gecos:dir:shell`).
#[derive(Debug)]
pub struct PasswdFile(pub PathBuf);

impl AccountSource for PasswdFile {
    fn watched_file(&self) -> PathBuf {
        self.0.clone()
    }

    fn read(&self) -> Result<RecordBatch> {
        let text = std::fs::read_to_string(&self.0)
            .map_err(|e| host_error("users", format!("cannot read {}: {e}", self.0.display())))?;
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(':').collect();
            let parsed = (f.len() == 7)
                .then(|| Some((f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?)))
                .flatten();
            let Some((uid, gid)) = parsed else {
                tracing::warn!(file = %self.0.display(), line = n + 1, "skipping a malformed passwd line");
                continue;
            };
            rows.push(UserRow {
                uid,
                gid,
                name: f[0].to_string(),
                gecos: f[4].to_string(),
                dir: f[5].to_string(),
                shell: f[6].to_string(),
            });
        }
        users_batch(&rows)
    }
}

/// Groups from a file in group(5) format (`name:password:gid:members`).
#[derive(Debug)]
pub struct GroupFile(pub PathBuf);

impl AccountSource for GroupFile {
    fn watched_file(&self) -> PathBuf {
        self.0.clone()
    }

    fn read(&self) -> Result<RecordBatch> {
        let text = std::fs::read_to_string(&self.0)
            .map_err(|e| host_error("groups", format!("cannot read {}: {e}", self.0.display())))?;
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(':').collect();
            let Some(gid) = f.get(2).and_then(|g| g.parse::<u32>().ok()) else {
                tracing::warn!(file = %self.0.display(), line = n + 1, "skipping a malformed group line");
                continue;
            };
            rows.push(GroupRow {
                gid,
                name: f[0].to_string(),
            });
        }
        groups_batch(&rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    fn names(batch: &RecordBatch, column: &str) -> Vec<String> {
        let array = batch
            .column_by_name(column)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .expect("text column");
        (0..array.len())
            .map(|i| array.value(i).to_string())
            .collect()
    }

    #[test]
    fn system_users_include_root_and_the_current_user() {
        let batch = SystemUsers.read().expect("users");
        assert!(names(&batch, "username").contains(&"root".to_string()));
        // SAFETY: getuid has no preconditions.
        let me = i64::from(unsafe { libc::getuid() });
        let uids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("uid");
        assert!(uids.values().contains(&me));
        let groups = SystemGroups.read().expect("groups");
        assert!(names(&groups, "groupname").contains(&"root".to_string()));
    }

    #[test]
    fn signed_ids_wrap_like_a_c_int() {
        let batch = users_batch(&[UserRow {
            uid: 4_294_967_294,
            gid: 4_294_967_294,
            name: "nobody".into(),
            gecos: String::new(),
            dir: "/".into(),
            shell: "/usr/bin/false".into(),
        }])
        .expect("batch");
        let signed = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("uid_signed");
        assert_eq!(signed.value(0), -2);
    }

    #[test]
    fn malformed_passwd_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        std::fs::write(
            &path,
            "root:x:0:0:root:/root:/bin/sh\nbroken line\nbad:x:abc:0::/:/bin/sh\n",
        )
        .expect("write");
        let batch = PasswdFile(path).read().expect("read");
        assert_eq!(names(&batch, "username"), ["root"]);
    }
}
