//! Well-framed records into rows of the four BSM tables.
//!
//! [`BsmDecoder`] looks at a record's header first: the event number says
//! which table wants it ([`super::mapping`]), and a record no table wants is
//! counted by event name and never read further. A wanted record's body is
//! walked once, keeping only what its table needs (the subject, the return
//! status, paths, arguments, a socket address), and becomes one row whose
//! strings borrow from the record. Damage found by the splitter, and bodies
//! that cannot be read, are counted under a [`SkipReason`] with their byte
//! offset; the records around them still become rows.
//!
//! BSM records never name a process's parent. The decoder learns it from the
//! fork and posix_spawn records it sees (the subject is the parent of the
//! child the record names) and fills `parent` of later exec and exit records
//! of that child; a process that forked before the trail began has no known
//! parent, and its `parent` is NULL.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::{PROCESS_EVENTS, PROCESS_FILE_EVENTS, SOCKET_EVENTS, TableDef, USER_EVENTS};

use super::errno;
use super::events;
use super::frame::{Corruption, Frame, Record, RecordSplitter};
use super::mapping::{EventKind, FileOp, ProcessOp, SocketOp, classify};
use super::token::{Attr, Return, Strings, Subject, Token, TokenError, c_string, tokens};
use crate::builders::{
    EventCountersRow, ProcessEventRow, ProcessEventsBuilder, ProcessFileEventRow,
    ProcessFileEventsBuilder, PublisherCounters, SocketEventRow, SocketEventsBuilder, UserEventRow,
    UserEventsBuilder, counter_rows,
};
use crate::gates::{DropCounters, GateEvent, Gates};
use crate::stats::{DecodeStats, LineProblem, SkipReason};
use crate::text::push_osquery_arg;

/// The publisher's name in `osquery_events`, as osquery names its OpenBSM
/// publisher.
pub const BSM_PUBLISHER: &str = "openbsm";

/// A socket address as a record states it.
#[derive(Debug, Clone, Copy)]
enum SockAddr<'a> {
    Inet {
        family: u16,
        addr: IpAddr,
        port: u16,
    },
    Unix {
        family: u16,
        path: &'a [u8],
    },
    /// `socket` and `socket_ex` tokens name both ends.
    Both {
        family: u16,
        local: (IpAddr, u16),
        remote: (IpAddr, u16),
    },
}

/// What the tables need from one record's body.
#[derive(Debug, Default, Clone, Copy)]
struct Staged<'a> {
    subject: Option<Subject>,
    ret: Option<Return>,
    first_path: Option<&'a [u8]>,
    last_path: Option<&'a [u8]>,
    paths: u32,
    exec_args: Option<Strings<'a>>,
    exec_env: Option<Strings<'a>>,
    attr: Option<Attr>,
    exit_status: Option<u32>,
    child_pid: Option<u64>,
    fd: Option<u64>,
    flags: Option<u64>,
    sock: Option<SockAddr<'a>>,
    texts: u32,
}

/// Parents learnt from fork and spawn records: child pid to parent pid.
///
/// Bounded: when full it is cleared, which costs some `parent` values but
/// never memory. A pid reused after its exit is forgotten at the exit.
#[derive(Debug, Default)]
struct ParentTracker {
    parents: HashMap<u32, u32, foldhash::fast::RandomState>,
}

impl ParentTracker {
    const CAPACITY: usize = 1 << 16;

    fn insert(&mut self, child: u32, parent: u32) {
        if self.parents.len() >= Self::CAPACITY {
            self.parents.clear();
        }
        self.parents.insert(child, parent);
    }

    fn get(&self, pid: u32) -> Option<u32> {
        self.parents.get(&pid).copied()
    }

    fn remove(&mut self, pid: u32) -> Option<u32> {
        self.parents.remove(&pid)
    }
}

/// Why a record did not become a row.
enum Failure {
    Token(TokenError),
    Missing(&'static str),
}

/// Decodes BSM records into Arrow batches of `process_events`,
/// `process_file_events`, `socket_events` and `user_events`.
///
/// ```
/// use sluice_ingest::bsm::BsmDecoder;
/// use sluice_ingest::bsm::encode::RecordWriter;
///
/// let trail = RecordWriter::new(23, 1_700_000_000, 250) // execve
///     .exec_args(["ls", "-l"])
///     .path("/bin/ls")
///     .subject32(501, 501, 20, 501, 20, 4242, 100001, 0, [0, 0, 0, 0])
///     .return32(0, 0)
///     .finish();
/// let mut decoder = BsmDecoder::new();
/// decoder.decode_bytes(&trail);
/// let batches = decoder.take_batches().unwrap();
/// assert_eq!(batches[0].0.name, "process_events");
/// assert_eq!(batches[0].1.num_rows(), 1);
/// ```
pub struct BsmDecoder {
    process: ProcessEventsBuilder,
    file: ProcessFileEventsBuilder,
    socket: SocketEventsBuilder,
    user: UserEventsBuilder,
    rows: [u64; 4],
    stats: DecodeStats,
    gates: Gates,
    /// Prefixed to problem details: the trail a stream comes from.
    source: String,
    parents: ParentTracker,
    /// Reused output buffers: joined argv, joined env, a message, a number.
    cmdline: Vec<u8>,
    env: Vec<u8>,
    message: Vec<u8>,
    scratch: String,
}

impl Default for BsmDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BsmDecoder {
    /// A decoder with empty builders that keeps every record.
    pub fn new() -> Self {
        Self::with_gates(Gates::keep_everything())
    }

    /// A decoder whose rows pass through `gates` before they are built.
    pub fn with_gates(gates: Gates) -> Self {
        Self {
            process: ProcessEventsBuilder::new(),
            file: ProcessFileEventsBuilder::new(),
            socket: SocketEventsBuilder::new(),
            user: UserEventsBuilder::new(),
            rows: [0; 4],
            stats: DecodeStats::default(),
            gates,
            source: String::new(),
            parents: ParentTracker::default(),
            cmdline: Vec::with_capacity(4096),
            env: Vec::with_capacity(4096),
            message: Vec::with_capacity(256),
            scratch: String::with_capacity(32),
        }
    }

    /// What has been decoded and skipped so far. `lines` counts records
    /// (and damaged spans), `bytes` the input consumed.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Events decoded so far, per table.
    pub fn events_by_table(&self) -> [(&'static str, u64); 4] {
        [
            (PROCESS_EVENTS.name, self.rows[0]),
            (PROCESS_FILE_EVENTS.name, self.rows[1]),
            (SOCKET_EVENTS.name, self.rows[2]),
            (USER_EVENTS.name, self.rows[3]),
        ]
    }

    /// The gates, with their counters.
    pub fn gates(&self) -> &Gates {
        &self.gates
    }

    /// The counters as `osquery_events` rows: one for the publisher
    /// (`openbsm`, osquery's name for it) and one per table it feeds.
    /// `outside` holds drops counted after the decoder (backpressure). BSM
    /// records carry no sequence number, so kernel drops are not known here.
    pub fn counter_rows(
        &self,
        outside: &DropCounters,
        time_ns: i64,
        active: bool,
    ) -> Vec<EventCountersRow> {
        let counters = PublisherCounters {
            publisher: BSM_PUBLISHER,
            tables: &[
                &PROCESS_EVENTS,
                &PROCESS_FILE_EVENTS,
                &SOCKET_EVENTS,
                &USER_EVENTS,
            ],
            gates: &self.gates,
            outside,
            stats: &self.stats,
            kernel_drops: 0,
        };
        counter_rows(counters, time_ns, active)
    }

    /// Names the stream that follows (a trail file's name), so that problems
    /// say where they are; empty for none.
    pub fn set_source(&mut self, name: &str) {
        self.source.clear();
        self.source.push_str(name);
    }

    /// Rows waiting in the builders.
    pub fn buffered_rows(&self) -> usize {
        self.process.len() + self.file.len() + self.socket.len() + self.user.len()
    }

    /// Takes the rows built so far as one batch per table that has any.
    pub fn take_batches(&mut self) -> Result<Vec<(&'static TableDef, RecordBatch)>, ArrowError> {
        let mut out = Vec::with_capacity(4);
        if !self.process.is_empty() {
            out.push((&PROCESS_EVENTS, self.process.finish()?));
        }
        if !self.file.is_empty() {
            out.push((&PROCESS_FILE_EVENTS, self.file.finish()?));
        }
        if !self.socket.is_empty() {
            out.push((&SOCKET_EVENTS, self.socket.finish()?));
        }
        if !self.user.is_empty() {
            out.push((&USER_EVENTS, self.user.finish()?));
        }
        Ok(out)
    }

    /// Decodes a whole trail held in memory (the stream ends with it).
    pub fn decode_bytes(&mut self, bytes: &[u8]) {
        let mut splitter = RecordSplitter::new();
        let _ = splitter.split(bytes, 0, true, &mut |frame| {
            self.decode_frame(&frame);
            Ok::<(), std::convert::Infallible>(())
        });
    }

    /// Decodes one frame from a [`RecordSplitter`].
    pub fn decode_frame(&mut self, frame: &Frame<'_>) {
        match frame {
            Frame::Record(record) => self.decode_record(record),
            Frame::FileToken { bytes, .. } => self.stats.bytes += bytes.len() as u64,
            Frame::Corrupt(c) => self.record_corruption(c),
        }
    }

    /// Counts a damaged span found by the splitter.
    pub fn record_corruption(&mut self, c: &Corruption) {
        self.stats.lines += 1;
        self.stats.bytes += c.len;
        let reason = if c.is_truncation() {
            SkipReason::Truncated
        } else {
            SkipReason::Malformed
        };
        let detail = self.detail(format_args!("{c}"));
        self.stats.record(LineProblem {
            line: 0,
            byte: usize::try_from(c.offset).ok(),
            reason,
            detail,
        });
    }

    fn detail(&self, what: std::fmt::Arguments<'_>) -> String {
        if self.source.is_empty() {
            what.to_string()
        } else {
            format!("{}: {what}", self.source)
        }
    }

    /// Decodes one well-framed record into a row of its table, or counts it.
    pub fn decode_record(&mut self, record: &Record<'_>) {
        self.stats.lines += 1;
        self.stats.bytes += record.bytes.len() as u64;
        let event = record.header.event;
        let Some(kind) = classify(event) else {
            // Most of a trail can be events no table wants; name them
            // without allocating for the common ones.
            match events::event(event) {
                Some(e) => self.stats.record_unmapped(0, e.name.as_bytes()),
                None => {
                    self.scratch.clear();
                    let _ = write!(self.scratch, "event {event}");
                    let name = std::mem::take(&mut self.scratch);
                    self.stats.record_unmapped(0, name.as_bytes());
                    self.scratch = name;
                }
            }
            return;
        };
        let body_offset = record.header_len;
        let result = stage(record.body(), body_offset).and_then(|staged| {
            let subject = staged.subject.ok_or(Failure::Missing("subject"))?;
            let time_ns = record.header.time_ns();
            match kind {
                EventKind::Process { op, syscall } => {
                    self.process_row(op, syscall, &staged, &subject, time_ns)
                }
                EventKind::File { op, open_flags } => {
                    self.file_row(op, open_flags, &staged, &subject, time_ns)
                }
                EventKind::Socket(op) => self.socket_row(op, &staged, &subject, time_ns),
                EventKind::User => self.user_row(event, record.body(), &staged, &subject, time_ns),
            }
            Ok(())
        });
        if let Err(failure) = result {
            let (reason, byte, detail) = match failure {
                Failure::Token(e) => (
                    SkipReason::Malformed,
                    record.offset + e.offset as u64,
                    self.detail(format_args!("{e}")),
                ),
                Failure::Missing(what) => (
                    SkipReason::MissingField,
                    record.offset,
                    self.detail(format_args!("record of event {event} has no {what} token")),
                ),
            };
            self.stats.record(LineProblem {
                line: 0,
                byte: usize::try_from(byte).ok(),
                reason,
                detail,
            });
        }
    }

    fn process_row(
        &mut self,
        op: ProcessOp,
        syscall: &'static str,
        s: &Staged<'_>,
        subject: &Subject,
        time_ns: i64,
    ) {
        let succeeded = s.ret.is_none_or(|r| r.status == 0);
        // A fork or spawn is told as the child's birth: the row is the
        // child, its parent the subject.
        let (pid, parent) = match op {
            ProcessOp::Exec => (Some(subject.pid), self.parents.get(subject.pid)),
            ProcessOp::Exit => (Some(subject.pid), self.parents.remove(subject.pid)),
            ProcessOp::Fork | ProcessOp::Spawn => {
                let child = s
                    .child_pid
                    .or_else(|| s.ret.filter(|_| succeeded).map(|r| r.value))
                    .and_then(|c| u32::try_from(c).ok())
                    .filter(|&c| c != 0);
                if let Some(child) = child {
                    self.parents.insert(child, subject.pid);
                }
                (child, Some(subject.pid))
            }
        };
        let image = matches!(op, ProcessOp::Exec | ProcessOp::Spawn);
        let (cmdline, cmdline_size) = join(&mut self.cmdline, s.exec_args);
        let (env, env_size) = join(&mut self.env, s.exec_env);
        let attr = s.attr.filter(|_| image);
        let status = match (op, s.exit_status) {
            (ProcessOp::Exit, Some(status)) => Some(i64::from(status)),
            _ => s.ret.map(|r| i64::from(r.status)),
        };
        let row = ProcessEventRow {
            pid: pid.map(i64::from),
            path: if image {
                s.last_path.map(c_string)
            } else {
                None
            },
            mode: attr.map(|a| a.mode),
            cmdline,
            cmdline_size,
            env,
            env_count: s.exec_env.map(|e| i64::from(e.count)),
            env_size,
            cwd: None,
            auid: Some(i64::from(subject.auid)),
            uid: Some(i64::from(subject.ruid)),
            euid: Some(i64::from(subject.euid)),
            gid: Some(i64::from(subject.rgid)),
            egid: Some(i64::from(subject.egid)),
            owner_uid: attr.map(|a| i64::from(a.uid)),
            owner_gid: attr.map(|a| i64::from(a.gid)),
            parent: parent.map(i64::from),
            status,
            syscall,
            time_ns,
            ..Default::default()
        };
        // A BSM subject names no executable; an exec's target is its image.
        let gate = GateEvent {
            table: &PROCESS_EVENTS,
            is_open: false,
            process_path: None,
            pid: row.pid,
            targets: [row.path, None],
            time_ns,
        };
        if !self.gates.admit(&gate) {
            return;
        }
        self.process.append(&row);
        self.rows[0] += 1;
    }

    fn file_row(
        &mut self,
        op: FileOp,
        open_flags: Option<&'static str>,
        s: &Staged<'_>,
        subject: &Subject,
        time_ns: i64,
    ) {
        let (path, dest_path) = if op.has_destination() {
            let dest = if s.paths >= 2 { s.last_path } else { None };
            (s.first_path, dest)
        } else {
            // With both the path as given and the one the kernel resolved,
            // the resolved one comes last.
            (s.last_path, None)
        };
        let flags = match (op, open_flags, s.flags) {
            (FileOp::Open, Some(flags), _) => Some(flags),
            (FileOp::Open, None, Some(raw)) => {
                self.scratch.clear();
                let _ = write!(self.scratch, "{raw:#x}");
                Some(self.scratch.as_str())
            }
            _ => None,
        };
        let row = ProcessFileEventRow {
            operation: op.operation(),
            pid: Some(i64::from(subject.pid)),
            ppid: self.parents.get(subject.pid).map(i64::from),
            path: path.map(c_string),
            dest_path: dest_path.map(c_string),
            uid: Some(i64::from(subject.ruid)),
            gid: Some(i64::from(subject.rgid)),
            auid: Some(i64::from(subject.auid)),
            euid: Some(i64::from(subject.euid)),
            egid: Some(i64::from(subject.egid)),
            flags,
            time_ns,
            ..Default::default()
        };
        let gate = GateEvent {
            table: &PROCESS_FILE_EVENTS,
            is_open: op == FileOp::Open,
            process_path: None,
            pid: row.pid,
            targets: [row.path, row.dest_path],
            time_ns,
        };
        if !self.gates.admit(&gate) {
            return;
        }
        self.file.append(&row);
        self.rows[1] += 1;
    }

    fn socket_row(&mut self, op: SocketOp, s: &Staged<'_>, subject: &Subject, time_ns: i64) {
        let mut row = SocketEventRow {
            action: op.action(),
            pid: Some(i64::from(subject.pid)),
            fd: s.fd.and_then(|fd| i64::try_from(fd).ok()),
            auid: Some(i64::from(subject.auid)),
            time_ns,
            ..Default::default()
        };
        // Older Darwin kernels stored sin_len in the high byte of the
        // family; BSM family numbers all fit in the low byte.
        let family = |f: u16| Some(i32::from(f & 0xff));
        match s.sock {
            Some(SockAddr::Inet {
                family: f,
                addr,
                port,
            }) => {
                row.family = family(f);
                let (address, port) = (Some(addr), Some(i32::from(port)));
                if op == SocketOp::Bind {
                    (row.local_address, row.local_port) = (address, port);
                } else {
                    (row.remote_address, row.remote_port) = (address, port);
                }
            }
            Some(SockAddr::Unix { family: f, path }) => {
                row.family = family(f);
                row.socket = Some(c_string(path));
            }
            Some(SockAddr::Both {
                family: f,
                local,
                remote,
            }) => {
                row.family = family(f);
                row.local_address = Some(local.0);
                row.local_port = Some(i32::from(local.1));
                row.remote_address = Some(remote.0);
                row.remote_port = Some(i32::from(remote.1));
            }
            None => {}
        }
        if let Some(ret) = s.ret {
            row.success = Some(i32::from(ret.status == 0));
            row.status = Some(match (op, ret.status) {
                (_, 0) => "succeeded",
                (SocketOp::Connect, errno::EINPROGRESS) => "in_progress",
                (SocketOp::Accept, errno::EAGAIN) => "no_client",
                _ => "failed",
            });
        }
        let gate = GateEvent {
            table: &SOCKET_EVENTS,
            is_open: false,
            process_path: None,
            pid: row.pid,
            targets: [None, None],
            time_ns,
        };
        if !self.gates.admit(&gate) {
            return;
        }
        self.socket.append(&row);
        self.rows[2] += 1;
    }

    fn user_row(
        &mut self,
        event: u16,
        body: &[u8],
        s: &Staged<'_>,
        subject: &Subject,
        time_ns: i64,
    ) {
        // Several text tokens (sudo writes the command and the result) are
        // joined with "; ".
        self.message.clear();
        if s.texts > 0 {
            for (_, token) in tokens(body).flatten() {
                if let Token::Text(text) = token {
                    if !self.message.is_empty() {
                        self.message.extend_from_slice(b"; ");
                    }
                    self.message.extend_from_slice(c_string(text));
                }
            }
        }
        self.scratch.clear();
        let _ = write!(self.scratch, "{}", subject.tid_port);
        let row = UserEventRow {
            uid: Some(i64::from(subject.ruid)),
            auid: Some(i64::from(subject.auid)),
            pid: Some(i64::from(subject.pid)),
            message: (s.texts > 0).then_some(self.message.as_slice()),
            event_type: Some(i32::from(event)),
            path: s.first_path.map(c_string),
            address: Some(subject.tid_addr),
            terminal: Some(self.scratch.as_bytes()),
            uptime: None,
            time_ns,
        };
        let gate = GateEvent {
            table: &USER_EVENTS,
            is_open: false,
            process_path: None,
            pid: row.pid,
            targets: [row.path, None],
            time_ns,
        };
        if !self.gates.admit(&gate) {
            return;
        }
        self.user.append(&row);
        self.rows[3] += 1;
    }
}

/// Joins argv or env the osquery way into `out`: the joined bytes and their
/// length, or NULLs when the record has no such token.
fn join<'o>(out: &'o mut Vec<u8>, strings: Option<Strings<'_>>) -> (Option<&'o [u8]>, Option<i64>) {
    let Some(strings) = strings else {
        return (None, None);
    };
    out.clear();
    for (i, s) in strings.iter().enumerate() {
        push_osquery_arg(out, i == 0, s);
    }
    (Some(out.as_slice()), i64::try_from(out.len()).ok())
}

/// Walks a record body once, keeping what any table needs. `base` is the
/// body's offset in its record, for error offsets.
fn stage(body: &[u8], base: usize) -> Result<Staged<'_>, Failure> {
    let mut s = Staged::default();
    for item in tokens(body) {
        let (_, token) = item.map_err(|mut e| {
            e.offset += base;
            Failure::Token(e)
        })?;
        match token {
            // The first subject is the actor; later ones do not occur.
            Token::Subject(_, subject) if s.subject.is_none() => s.subject = Some(subject),
            Token::Return(r) => s.ret = Some(r),
            Token::Path(p) => {
                s.first_path.get_or_insert(p);
                s.last_path = Some(p);
                s.paths += 1;
            }
            Token::ExecArgs(a) => s.exec_args = Some(a),
            Token::ExecEnv(e) => s.exec_env = Some(e),
            Token::Attr(a) if s.attr.is_none() => s.attr = Some(a),
            Token::Exit { status, .. } => s.exit_status = Some(status),
            Token::Arg(arg) => match c_string(arg.description) {
                b"child PID" | b"child pid" => s.child_pid = Some(arg.value),
                b"fd" => s.fd = Some(arg.value),
                b"flags" => s.flags = Some(arg.value),
                _ => {}
            },
            Token::SockInet32 { family, port, addr } => {
                s.sock = Some(SockAddr::Inet {
                    family,
                    addr: IpAddr::V4(addr),
                    port,
                })
            }
            Token::SockInet128 { family, port, addr } => {
                s.sock = Some(SockAddr::Inet {
                    family,
                    addr: IpAddr::V6(addr),
                    port,
                })
            }
            Token::SockUnix { family, path } => s.sock = Some(SockAddr::Unix { family, path }),
            Token::SocketEx {
                domain,
                local_port,
                local_addr,
                remote_port,
                remote_addr,
                ..
            } => {
                s.sock = Some(SockAddr::Both {
                    family: domain,
                    local: (local_addr, local_port),
                    remote: (remote_addr, remote_port),
                })
            }
            Token::Socket {
                local_port,
                local_addr,
                remote_port,
                remote_addr,
                ..
            } => {
                s.sock = Some(SockAddr::Both {
                    family: 2,
                    local: (IpAddr::V4(local_addr), local_port),
                    remote: (IpAddr::V4(remote_addr), remote_port),
                })
            }
            Token::Text(_) => s.texts += 1,
            _ => {}
        }
    }
    Ok(s)
}
