//! `processes`: the processes running on this host when the query runs.
//!
//! Detections join events to it for the parent and grandparent of an acting
//! process (`JOIN processes p ON p.pid = e.parent`). On Linux every row comes
//! from `/proc/<pid>/{stat,status,cmdline,exe,cwd,root,io}`; a process that
//! exits while it is being read is left out, and a field the querying user
//! may not read (another user's `cwd`, `io`) is NULL. On macOS the rows come
//! from libproc (`proc_listallpids`, `proc_pidinfo`, `proc_pidpath`); that
//! code is thin and is not compiled or tested on this project's Linux CI.
//!
//! Units follow osquery: sizes in bytes, `user_time`/`system_time` in
//! milliseconds, `start_time` in Unix seconds.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use super::Kind::{BigInt, Integer, Text};
use super::{SnapshotTable, schema_of};

/// osquery's `processes` columns (the POSIX ones; Windows' `is_elevated_token`
/// is left out).
pub fn schema() -> SchemaRef {
    schema_of(&[
        ("pid", BigInt),
        ("name", Text),
        ("path", Text),
        ("cmdline", Text),
        ("state", Text),
        ("cwd", Text),
        ("root", Text),
        ("uid", BigInt),
        ("gid", BigInt),
        ("euid", BigInt),
        ("egid", BigInt),
        ("suid", BigInt),
        ("sgid", BigInt),
        ("on_disk", Integer),
        ("wired_size", BigInt),
        ("resident_size", BigInt),
        ("total_size", BigInt),
        ("user_time", BigInt),
        ("system_time", BigInt),
        ("disk_bytes_read", BigInt),
        ("disk_bytes_written", BigInt),
        ("start_time", BigInt),
        ("parent", BigInt),
        ("pgroup", BigInt),
        ("threads", Integer),
        ("nice", Integer),
    ])
}

/// The `processes` table.
pub fn table() -> SnapshotTable {
    let schema = schema();
    let batch_schema = schema.clone();
    SnapshotTable::new(
        "processes",
        schema,
        Arc::new(move || {
            let rows = read_processes()?;
            to_batch(&batch_schema, &rows)
        }),
    )
}

/// One process, as read from the OS. `None` is NULL.
#[derive(Debug, Default, Clone)]
pub struct ProcessRow {
    /// Process ID.
    pub pid: i64,
    /// Short name (the kernel's `comm`).
    pub name: Option<String>,
    /// Executable path.
    pub path: Option<String>,
    /// Arguments joined by spaces.
    pub cmdline: Option<String>,
    /// State letter (`R`, `S`, `Z`…).
    pub state: Option<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Root directory.
    pub root: Option<String>,
    /// Real, effective and saved user IDs.
    pub uids: Option<[i64; 3]>,
    /// Real, effective and saved group IDs.
    pub gids: Option<[i64; 3]>,
    /// 1 when the executable exists, 0 when deleted, -1 unknown.
    pub on_disk: i32,
    /// Unpageable bytes.
    pub wired_size: Option<i64>,
    /// Resident bytes.
    pub resident_size: Option<i64>,
    /// Virtual size in bytes.
    pub total_size: Option<i64>,
    /// User CPU time in milliseconds.
    pub user_time: Option<i64>,
    /// System CPU time in milliseconds.
    pub system_time: Option<i64>,
    /// Bytes read from storage.
    pub disk_bytes_read: Option<i64>,
    /// Bytes written to storage.
    pub disk_bytes_written: Option<i64>,
    /// Start time, Unix seconds.
    pub start_time: Option<i64>,
    /// Parent PID.
    pub parent: Option<i64>,
    /// Process group.
    pub pgroup: Option<i64>,
    /// Thread count.
    pub threads: Option<i32>,
    /// Nice level.
    pub nice: Option<i32>,
}

fn to_batch(schema: &SchemaRef, rows: &[ProcessRow]) -> Result<RecordBatch> {
    fn text(rows: &[ProcessRow], f: impl Fn(&ProcessRow) -> Option<&str>) -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(f)))
    }
    fn big(rows: &[ProcessRow], f: impl Fn(&ProcessRow) -> Option<i64>) -> ArrayRef {
        Arc::new(Int64Array::from_iter(rows.iter().map(f)))
    }
    fn int(rows: &[ProcessRow], f: impl Fn(&ProcessRow) -> Option<i32>) -> ArrayRef {
        Arc::new(Int32Array::from_iter(rows.iter().map(f)))
    }
    let columns = vec![
        big(rows, |r| Some(r.pid)),
        text(rows, |r| r.name.as_deref()),
        text(rows, |r| r.path.as_deref()),
        text(rows, |r| r.cmdline.as_deref()),
        text(rows, |r| r.state.as_deref()),
        text(rows, |r| r.cwd.as_deref()),
        text(rows, |r| r.root.as_deref()),
        big(rows, |r| r.uids.map(|u| u[0])),
        big(rows, |r| r.gids.map(|g| g[0])),
        big(rows, |r| r.uids.map(|u| u[1])),
        big(rows, |r| r.gids.map(|g| g[1])),
        big(rows, |r| r.uids.map(|u| u[2])),
        big(rows, |r| r.gids.map(|g| g[2])),
        int(rows, |r| Some(r.on_disk)),
        big(rows, |r| r.wired_size),
        big(rows, |r| r.resident_size),
        big(rows, |r| r.total_size),
        big(rows, |r| r.user_time),
        big(rows, |r| r.system_time),
        big(rows, |r| r.disk_bytes_read),
        big(rows, |r| r.disk_bytes_written),
        big(rows, |r| r.start_time),
        big(rows, |r| r.parent),
        big(rows, |r| r.pgroup),
        int(rows, |r| r.threads),
        int(rows, |r| r.nice),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Reads every process of this host.
#[cfg(target_os = "linux")]
pub fn read_processes() -> Result<Vec<ProcessRow>> {
    linux::read_all()
}

/// Reads every process of this host (macOS, libproc).
#[cfg(target_os = "macos")]
pub fn read_processes() -> Result<Vec<ProcessRow>> {
    macos::read_all()
}

/// Reads every process of this host: not available on this OS.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn read_processes() -> Result<Vec<ProcessRow>> {
    Err(super::host_error("processes", "not supported on this OS"))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;
    use std::path::Path;

    use datafusion::error::Result;

    use super::ProcessRow;
    use crate::host::host_error;

    pub(super) fn read_all() -> Result<Vec<ProcessRow>> {
        let entries = fs::read_dir("/proc")
            .map_err(|e| host_error("processes", format!("cannot list /proc: {e}")))?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        let boot_time = boot_time();
        let mut rows = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<i64>().ok()) else {
                continue;
            };
            if let Some(row) = read_one(&entry.path(), pid, ticks, boot_time) {
                rows.push(row);
            }
        }
        rows.sort_by_key(|r| r.pid);
        Ok(rows)
    }

    /// `btime` of /proc/stat: the boot time in Unix seconds.
    fn boot_time() -> Option<i64> {
        let text = fs::read_to_string("/proc/stat").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// One process, or `None` when it exited before its `stat` was read.
    pub(super) fn read_one(
        dir: &Path,
        pid: i64,
        ticks: i64,
        boot_time: Option<i64>,
    ) -> Option<ProcessRow> {
        let stat = fs::read_to_string(dir.join("stat")).ok()?;
        let mut row = ProcessRow {
            pid,
            on_disk: -1,
            wired_size: Some(0),
            ..ProcessRow::default()
        };
        // "pid (comm) state ppid …": comm may itself hold spaces and ')'.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        row.name = Some(stat.get(open + 1..close)?.to_string());
        let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<i64>().ok());
        row.state = fields.first().map(|s| s.to_string());
        row.parent = field(1);
        row.pgroup = field(2);
        row.user_time = field(11).map(|t| t * 1000 / ticks);
        row.system_time = field(12).map(|t| t * 1000 / ticks);
        row.nice = field(16).map(|n| n as i32);
        row.threads = field(17).map(|n| n as i32);
        row.start_time = match (field(19), boot_time) {
            (Some(start), Some(boot)) => Some(boot + start / ticks),
            _ => None,
        };
        if let Ok(status) = fs::read_to_string(dir.join("status")) {
            for line in status.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                let numbers: Vec<i64> = value
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                match key {
                    // Real, effective, saved, filesystem.
                    "Uid" if numbers.len() >= 3 => {
                        row.uids = Some([numbers[0], numbers[1], numbers[2]])
                    }
                    "Gid" if numbers.len() >= 3 => {
                        row.gids = Some([numbers[0], numbers[1], numbers[2]])
                    }
                    "VmRSS" => row.resident_size = numbers.first().map(|k| k * 1024),
                    "VmSize" => row.total_size = numbers.first().map(|k| k * 1024),
                    _ => {}
                }
            }
        }
        if let Ok(cmdline) = fs::read(dir.join("cmdline")) {
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            row.cmdline = Some(args.join(" "));
        }
        if let Ok(exe) = fs::read_link(dir.join("exe")) {
            let exe = exe.to_string_lossy().into_owned();
            // The kernel marks an executable unlinked since exec.
            match exe.strip_suffix(" (deleted)") {
                Some(path) => {
                    row.on_disk = 0;
                    row.path = Some(path.to_string());
                }
                None => {
                    row.on_disk = i32::from(Path::new(&exe).exists());
                    row.path = Some(exe);
                }
            }
        } else {
            // Kernel threads have no executable.
            row.path = Some(String::new());
        }
        let link = |name: &str| {
            fs::read_link(dir.join(name))
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        };
        row.cwd = link("cwd");
        row.root = link("root");
        if let Ok(io) = fs::read_to_string(dir.join("io")) {
            for line in io.lines() {
                if let Some(v) = line.strip_prefix("read_bytes: ") {
                    row.disk_bytes_read = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("write_bytes: ") {
                    row.disk_bytes_written = v.trim().parse().ok();
                }
            }
        }
        Some(row)
    }
}

#[cfg(target_os = "macos")]
mod macos {
    use datafusion::error::Result;

    use super::ProcessRow;
    use crate::host::host_error;

    pub(super) fn read_all() -> Result<Vec<ProcessRow>> {
        // SAFETY: a NULL buffer asks for the number of PIDs.
        let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
        if count <= 0 {
            return Err(host_error(
                "processes",
                std::io::Error::last_os_error().to_string(),
            ));
        }
        // Room for processes started since the count.
        let mut pids = vec![0 as libc::c_int; count as usize + 64];
        let bytes = (pids.len() * std::mem::size_of::<libc::c_int>()) as libc::c_int;
        // SAFETY: `pids` holds `bytes` bytes.
        let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        if n < 0 {
            return Err(host_error(
                "processes",
                std::io::Error::last_os_error().to_string(),
            ));
        }
        pids.truncate(n as usize);
        let mut rows: Vec<ProcessRow> = pids.into_iter().filter_map(read_one).collect();
        rows.sort_by_key(|r| r.pid);
        Ok(rows)
    }

    fn read_one(pid: libc::c_int) -> Option<ProcessRow> {
        // SAFETY: proc_bsdinfo is plain data, and proc_pidinfo writes at most
        // the size it is given.
        let info = unsafe {
            let mut info: libc::proc_bsdinfo = std::mem::zeroed();
            let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
            let n = libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            );
            if n != size {
                return None;
            }
            info
        };
        let mut path_buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
        // SAFETY: `path_buf` holds the size passed.
        let len =
            unsafe { libc::proc_pidpath(pid, path_buf.as_mut_ptr().cast(), path_buf.len() as u32) };
        let path =
            (len > 0).then(|| String::from_utf8_lossy(&path_buf[..len as usize]).into_owned());
        let comm: Vec<u8> = info
            .pbi_comm
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Some(ProcessRow {
            pid: i64::from(pid),
            name: Some(String::from_utf8_lossy(&comm).into_owned()),
            on_disk: match &path {
                Some(p) => i32::from(std::path::Path::new(p).exists()),
                None => -1,
            },
            path,
            uids: Some([
                i64::from(info.pbi_ruid),
                i64::from(info.pbi_uid),
                i64::from(info.pbi_svuid),
            ]),
            gids: Some([
                i64::from(info.pbi_rgid),
                i64::from(info.pbi_gid),
                i64::from(info.pbi_svgid),
            ]),
            start_time: Some(info.pbi_start_tvsec as i64),
            parent: Some(i64::from(info.pbi_ppid)),
            pgroup: Some(i64::from(info.pbi_pgid)),
            nice: Some(info.pbi_nice as i32),
            ..ProcessRow::default()
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_its_parent() {
        let rows = read_processes().expect("processes");
        let me = i64::from(std::process::id());
        let row = rows.iter().find(|r| r.pid == me).expect("this process");
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(row.path.as_deref(), exe.to_str());
        assert_eq!(row.on_disk, 1);
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(row.cwd.as_deref(), cwd.to_str());
        // SAFETY: getuid has no preconditions.
        let uid = i64::from(unsafe { libc::getuid() });
        assert_eq!(row.uids.map(|u| u[0]), Some(uid));
        assert!(row.threads.unwrap_or_default() >= 1);
        assert!(row.start_time.unwrap_or_default() > 1_500_000_000);
        let parent = row.parent.expect("parent");
        assert!(
            rows.iter().any(|r| r.pid == parent),
            "parent {parent} listed"
        );
        let batch = to_batch(&schema(), &rows).expect("batch");
        assert_eq!(batch.num_rows(), rows.len());
    }
}
