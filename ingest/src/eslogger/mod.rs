//! Apple's `eslogger` JSON lines into the two EndpointSecurity tables.
//!
//! Each line is one ES message. The decoder walks it once with a pull parser
//! ([`crate::json`]), keeping only the fields the tables need in a staged
//! message whose buffers are reused from line to line, then appends one row
//! to `es_process_events` or `es_process_file_events`. Key order is not stable
//! in eslogger's output (the `event` body may come before `event_type` or
//! `process`), which is why the message is staged before it is emitted.
//!
//! A bad line is counted under a [`SkipReason`] and the stream goes on; the
//! rows around it are kept.
//!
//! ```
//! use sluice_ingest::eslogger::EsloggerDecoder;
//!
//! let mut decoder = EsloggerDecoder::new();
//! decoder.decode_line(br#"{"event_type":15,"time":"2024-05-01T12:00:00.5Z","process":{"audit_token":[501,501,20,501,20,4242,100001,7],"executable":{"path":"\/bin\/ls"}},"event":{"exit":{"stat":0}}}"#, 1);
//! decoder.decode_line(b"{not json", 2);
//! let batches = decoder.take_batches().unwrap();
//! assert_eq!(batches[0].0.name, "es_process_events");
//! assert_eq!(batches[0].1.num_rows(), 1);
//! assert_eq!(decoder.stats().skipped_total(), 1);
//! ```

mod event;

pub use event::{EsEventKind, EsTable, unmapped_event_name};

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::{ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS, TableDef};

use crate::builders::{
    EsProcessEventRow, EsProcessEventsBuilder, EsProcessFileEventRow, EsProcessFileEventsBuilder,
    take_es_batches,
};
use crate::builders::{EventCountersRow, PublisherCounters, counter_rows};
use crate::gates::seq::SeqTracker;
use crate::gates::{DropCounters, DropReason, GateEvent, Gates};
use crate::json::{JsonCursor, JsonError, JsonErrorKind};
use crate::stats::{DecodeStats, LineProblem, SkipReason};
use crate::text::push_osquery_arg;
use crate::time::parse_rfc3339_nanos;

/// A byte range in the decoder's arena.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn get(self, arena: &[u8]) -> &[u8] {
        &arena[self.start..self.end]
    }
}

/// The eight fields of an `audit_token_t`, as ES exposes them.
#[derive(Debug, Clone, Copy, Default)]
struct AuditToken {
    auid: Option<i64>,
    euid: Option<i64>,
    egid: Option<i64>,
    ruid: Option<i64>,
    rgid: Option<i64>,
    pid: Option<i64>,
    asid: Option<i64>,
    pidversion: Option<i64>,
}

/// What sluice keeps of an `es_process_t`.
#[derive(Debug, Clone, Copy, Default)]
struct StagedProcess {
    present: bool,
    token: AuditToken,
    parent_pidversion: Option<i64>,
    responsible_pid: Option<i64>,
    responsible_pidversion: Option<i64>,
    ppid: Option<i64>,
    original_ppid: Option<i64>,
    session_id: Option<i64>,
    codesigning_flags: Option<u32>,
    platform_binary: Option<bool>,
    cdhash: Option<Span>,
    signing_id: Option<Span>,
    team_id: Option<Span>,
    executable: Option<Span>,
}

/// What sluice keeps of one message, before it knows which table it feeds.
#[derive(Debug, Clone, Copy, Default)]
struct StagedMessage {
    version: Option<i64>,
    time: Option<(Span, usize)>,
    seq_num: Option<i64>,
    global_seq_num: Option<i64>,
    event_type: Option<i64>,
    process: StagedProcess,
    kind: Option<EsEventKind>,
    unmapped_name: Option<Span>,
    /// The exec target, or the fork child.
    other_process: StagedProcess,
    exit_stat: Option<i64>,
    args: Option<(Span, i64)>,
    env: Option<(Span, i64)>,
    cwd: Option<Span>,
    /// The file acted on: `target`, `source`, `file` or `file1`.
    primary: Option<Span>,
    /// A destination given as a whole file: `existing_file`, `target_file`, `file2`.
    dest_file: Option<Span>,
    /// A destination given as a directory and a name.
    dest_dir: Option<Span>,
    dest_name: Option<Span>,
}

/// Why a line could not become a row.
enum Failure {
    Json(JsonError),
    Missing(&'static str),
    BadValue { offset: usize, detail: &'static str },
    Mismatch { number: i64, body: EsEventKind },
    Unmapped,
}

impl From<JsonError> for Failure {
    fn from(e: JsonError) -> Self {
        Failure::Json(e)
    }
}

type Parse<T> = Result<T, Failure>;

/// Decodes eslogger JSON lines into Arrow batches of the two ES tables.
pub struct EsloggerDecoder {
    process_events: EsProcessEventsBuilder,
    file_events: EsProcessFileEventsBuilder,
    process_rows: u64,
    file_rows: u64,
    stats: DecodeStats,
    gates: Gates,
    seq: SeqTracker,
    kernel_drops: u64,
    message: StagedMessage,
    /// Unescaped strings of the current line; cleared, never freed.
    arena: Vec<u8>,
    /// Room for one argument, or one joined path, at a time.
    scratch: Vec<u8>,
}

impl Default for EsloggerDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl EsloggerDecoder {
    /// A decoder with empty builders that keeps every event.
    pub fn new() -> Self {
        Self::with_gates(Gates::keep_everything())
    }

    /// A decoder whose rows pass through `gates` before they are built.
    pub fn with_gates(gates: Gates) -> Self {
        Self {
            process_events: EsProcessEventsBuilder::new(),
            file_events: EsProcessFileEventsBuilder::new(),
            process_rows: 0,
            file_rows: 0,
            stats: DecodeStats::default(),
            gates,
            seq: SeqTracker::default(),
            kernel_drops: 0,
            message: StagedMessage::default(),
            arena: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(1024),
        }
    }

    /// What has been decoded and skipped so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The gates, with their counters.
    pub fn gates(&self) -> &Gates {
        &self.gates
    }

    /// Messages the kernel dropped, from gaps in `global_seq_num` (lines
    /// this decoder could not read are not counted).
    pub fn kernel_drops(&self) -> u64 {
        self.kernel_drops
    }

    /// The counters as `osquery_events` rows: one for the publisher
    /// (`eslogger`) and one per table it feeds. `outside` holds drops
    /// counted after the decoder (backpressure); a table's `events` are the
    /// rows that passed the gates and were not dropped after them.
    pub fn counter_rows(
        &self,
        outside: &DropCounters,
        time_ns: i64,
        active: bool,
    ) -> Vec<EventCountersRow> {
        let counters = PublisherCounters {
            publisher: "eslogger",
            tables: &[&ES_PROCESS_EVENTS, &ES_PROCESS_FILE_EVENTS],
            gates: &self.gates,
            outside,
            stats: &self.stats,
            kernel_drops: self.kernel_drops,
        };
        counter_rows(counters, time_ns, active)
    }

    /// Events stored so far (that passed the gates), per table.
    pub fn events_by_table(&self) -> [(&'static str, u64); 2] {
        [
            (ES_PROCESS_EVENTS.name, self.process_rows),
            (ES_PROCESS_FILE_EVENTS.name, self.file_rows),
        ]
    }

    /// Counts a problem found outside the decoder (by the line reader).
    pub fn record_problem(&mut self, problem: LineProblem) {
        self.stats.lines += 1;
        self.stats.record(problem);
    }

    /// Rows waiting in the builders.
    pub fn buffered_rows(&self) -> usize {
        self.process_events.len() + self.file_events.len()
    }

    /// Takes the rows decoded so far as one batch per table that has any,
    /// each with its table's schema.
    pub fn take_batches(&mut self) -> Result<Vec<(&'static TableDef, RecordBatch)>, ArrowError> {
        let finish = EsProcessFileEventsBuilder::finish;
        take_es_batches(&mut self.process_events, &mut self.file_events, finish)
    }

    /// [`take_batches`](Self::take_batches) in the form storage takes at
    /// the least cost: file events' paths keyed (see
    /// [`EsProcessFileEventsBuilder::finish_keyed`]).
    pub fn take_keyed_batches(
        &mut self,
    ) -> Result<Vec<(&'static TableDef, RecordBatch)>, ArrowError> {
        let finish = EsProcessFileEventsBuilder::finish_keyed;
        take_es_batches(&mut self.process_events, &mut self.file_events, finish)
    }

    /// Decodes one line (without its newline). `line_no` is 1-based and is
    /// only used to report problems. Blank lines are ignored.
    pub fn decode_line(&mut self, line: &[u8], line_no: u64) {
        self.stats.lines += 1;
        self.stats.bytes += line.len() as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.arena.clear();
        self.message = StagedMessage::default();
        let result = {
            let mut cursor = JsonCursor::new(line);
            parse_message(
                &mut cursor,
                &mut self.message,
                &mut self.arena,
                &mut self.scratch,
            )
            .and_then(|()| cursor.finish().map_err(Failure::from))
        };
        match &result {
            Ok(()) => self.observe_sequence(),
            Err(_) => self.seq.lost_line(),
        }
        let result = result.and_then(|()| self.emit());
        if let Err(failure) = result {
            self.record_failure(failure, line_no);
        }
    }

    /// Reads kernel drops from the message's sequence numbers: the global
    /// gap for the publisher, the per-type gap for the table of that type.
    fn observe_sequence(&mut self) {
        let m = &self.message;
        let event_type = m.event_type.or(m.kind.map(EsEventKind::number));
        let gaps = self.seq.observe(event_type, m.seq_num, m.global_seq_num);
        self.kernel_drops += gaps.global;
        if gaps.same_type > 0
            && let Some(kind) = event_type.and_then(EsEventKind::from_number)
        {
            let table = match kind.table() {
                EsTable::Process => &ES_PROCESS_EVENTS,
                EsTable::File => &ES_PROCESS_FILE_EVENTS,
            };
            self.gates
                .record_drops(table, DropReason::Kernel, gaps.same_type);
        }
    }

    fn record_failure(&mut self, failure: Failure, line: u64) {
        let problem = match failure {
            Failure::Json(e) => LineProblem {
                line,
                byte: Some(e.offset),
                reason: if e.kind == JsonErrorKind::UnexpectedEnd {
                    SkipReason::Truncated
                } else {
                    SkipReason::Malformed
                },
                detail: e.kind.to_string(),
            },
            Failure::Missing(field) => LineProblem {
                line,
                byte: None,
                reason: SkipReason::MissingField,
                detail: format!("no `{field}`"),
            },
            Failure::BadValue { offset, detail } => LineProblem {
                line,
                byte: Some(offset),
                reason: SkipReason::Malformed,
                detail: detail.to_string(),
            },
            Failure::Mismatch { number, body } => LineProblem {
                line,
                byte: None,
                reason: SkipReason::Malformed,
                detail: format!(
                    "event_type {number} does not match the event body `{}`",
                    body.name()
                ),
            },
            Failure::Unmapped => {
                let m = &self.message;
                match (m.unmapped_name, m.event_type) {
                    (Some(span), _) => self.stats.record_unmapped(line, span.get(&self.arena)),
                    (None, Some(n)) => match unmapped_event_name(n) {
                        Some(name) => self.stats.record_unmapped(line, name.as_bytes()),
                        None => self.stats.record_unmapped(line, n.to_string().as_bytes()),
                    },
                    (None, None) => self.stats.record_unmapped(line, b"?"),
                }
                return;
            }
        };
        self.stats.record(problem);
    }

    /// Appends the staged message to its table.
    fn emit(&mut self) -> Parse<()> {
        let m = &self.message;
        let arena = &self.arena[..];
        let Some((time_span, time_offset)) = m.time else {
            return Err(Failure::Missing("time"));
        };
        let time_ns = parse_rfc3339_nanos(time_span.get(arena)).ok_or(Failure::BadValue {
            offset: time_offset,
            detail: "`time` is not an RFC 3339 timestamp",
        })?;
        let kind = match m.kind {
            Some(kind) => kind,
            None if m.unmapped_name.is_some() => return Err(Failure::Unmapped),
            None => match m.event_type.map(EsEventKind::from_number) {
                Some(Some(_)) | None => return Err(Failure::Missing("event")),
                Some(None) => return Err(Failure::Unmapped),
            },
        };
        if let Some(number) = m.event_type
            && number != kind.number()
        {
            return Err(Failure::Mismatch { number, body: kind });
        }
        if !m.process.present {
            return Err(Failure::Missing("process"));
        }
        let version = m.version.and_then(|v| i32::try_from(v).ok());
        let text = |span: Option<Span>| span.map(|s| s.get(arena));
        match kind.table() {
            EsTable::Process => {
                // osquery describes an exec by its target, and a fork or exit
                // by the process that forked or exited.
                let subject = match kind {
                    EsEventKind::Exec if !m.other_process.present => {
                        return Err(Failure::Missing("event.exec.target"));
                    }
                    EsEventKind::Exec => &m.other_process,
                    _ => &m.process,
                };
                let child_pid = match kind {
                    EsEventKind::Fork if !m.other_process.present => {
                        return Err(Failure::Missing("event.fork.child"));
                    }
                    EsEventKind::Fork => m.other_process.token.pid,
                    _ => None,
                };
                let is_exec = kind == EsEventKind::Exec;
                let (cmdline, cmdline_count) = match m.args {
                    Some((span, count)) => (Some(span.get(arena)), Some(count)),
                    None => (Some(&b""[..]), Some(0)),
                };
                let (env, env_count) = match m.env {
                    Some((span, count)) => (Some(span.get(arena)), Some(count)),
                    None => (Some(&b""[..]), Some(0)),
                };
                let gate = GateEvent {
                    table: &ES_PROCESS_EVENTS,
                    is_open: false,
                    process_path: text(m.process.executable),
                    pid: m.process.token.pid,
                    // ES names the exec'd executable as an exec's target.
                    targets: [
                        if is_exec {
                            text(subject.executable)
                        } else {
                            None
                        },
                        None,
                    ],
                    time_ns,
                };
                if !self.gates.admit(&gate) {
                    return Ok(());
                }
                let row = EsProcessEventRow {
                    version,
                    seq_num: m.seq_num,
                    global_seq_num: m.global_seq_num,
                    pid: subject.token.pid,
                    pidversion: subject.token.pidversion,
                    path: text(subject.executable),
                    parent: subject.ppid,
                    original_parent: subject.original_ppid,
                    session_id: subject.session_id,
                    responsible_pid: subject.responsible_pid,
                    responsible_pidversion: subject.responsible_pidversion,
                    parent_pidversion: subject.parent_pidversion,
                    cmdline,
                    cmdline_count,
                    env,
                    env_count,
                    cwd: if is_exec { text(m.cwd) } else { None },
                    uid: subject.token.ruid,
                    euid: subject.token.euid,
                    gid: subject.token.rgid,
                    egid: subject.token.egid,
                    username: None,
                    signing_id: Some(text(subject.signing_id).unwrap_or_default()),
                    team_id: Some(text(subject.team_id).unwrap_or_default()),
                    cdhash: Some(osquery_cdhash(text(subject.cdhash).unwrap_or_default())),
                    platform_binary: subject.platform_binary.map(i32::from),
                    exit_code: if kind == EsEventKind::Exit {
                        m.exit_stat.and_then(|s| i32::try_from(s).ok())
                    } else {
                        None
                    },
                    child_pid,
                    event_type: kind.name(),
                    codesigning_flags: subject.codesigning_flags,
                    time_ns,
                };
                self.process_events.append(&row);
                self.process_rows += 1;
            }
            EsTable::File => {
                let (primary_field, dest_field) = file_fields(kind);
                // A destination is either a whole file or a directory plus a
                // name; the latter is joined in scratch, as osquery does.
                let dest: Option<&[u8]> = match dest_field {
                    None => None,
                    Some(field) => Some(match (m.dest_file, m.dest_dir, m.dest_name) {
                        (Some(file), _, _) => file.get(arena),
                        (None, Some(dir), Some(name)) => {
                            join_dir_name(&mut self.scratch, dir.get(arena), name.get(arena));
                            &self.scratch
                        }
                        _ => return Err(Failure::Missing(field)),
                    }),
                };
                // create names its target the way the others name a destination.
                let (filename, dest_filename) = match (kind, dest) {
                    (EsEventKind::Create, Some(created)) => (created, &b""[..]),
                    _ => (
                        text(m.primary).ok_or(Failure::Missing(primary_field))?,
                        dest.unwrap_or_default(),
                    ),
                };
                let gate = GateEvent {
                    table: &ES_PROCESS_FILE_EVENTS,
                    is_open: kind == EsEventKind::Open,
                    process_path: text(m.process.executable),
                    pid: m.process.token.pid,
                    targets: [Some(filename), Some(dest_filename)],
                    time_ns,
                };
                if !self.gates.admit(&gate) {
                    return Ok(());
                }
                let row = EsProcessFileEventRow {
                    version,
                    seq_num: m.seq_num,
                    global_seq_num: m.global_seq_num,
                    pid: m.process.token.pid,
                    parent: m.process.ppid,
                    path: text(m.process.executable),
                    filename: Some(filename),
                    dest_filename: Some(dest_filename),
                    event_type: kind.name(),
                    time_ns,
                };
                self.file_events.append(&row);
                self.file_rows += 1;
            }
        }
        Ok(())
    }
}

/// For a file event kind: the field that names its target, and the field
/// that names its destination, if it has one.
fn file_fields(kind: EsEventKind) -> (&'static str, Option<&'static str>) {
    match kind {
        EsEventKind::Open => ("event.open.file", None),
        EsEventKind::Close => ("event.close.target", None),
        EsEventKind::Unlink => ("event.unlink.target", None),
        EsEventKind::Write => ("event.write.target", None),
        EsEventKind::Truncate => ("event.truncate.target", None),
        // create's target is its destination; `primary` is unused.
        EsEventKind::Create => ("event.create.destination", Some("event.create.destination")),
        EsEventKind::Rename => ("event.rename.source", Some("event.rename.destination")),
        EsEventKind::Link => ("event.link.source", Some("event.link.target_dir")),
        EsEventKind::Clone => ("event.clone.source", Some("event.clone.target_dir")),
        EsEventKind::CopyFile => ("event.copyfile.source", Some("event.copyfile.target_dir")),
        EsEventKind::ExchangeData => ("event.exchangedata.file1", Some("event.exchangedata.file2")),
        EsEventKind::Exec | EsEventKind::Fork | EsEventKind::Exit => ("event", None),
    }
}

/// osquery shows a cdhash whose digits are all the same (all zeros: no code
/// directory) as empty.
fn osquery_cdhash(hex: &[u8]) -> &[u8] {
    match hex.first() {
        Some(&first) if hex.iter().all(|&b| b == first) => b"",
        _ => hex,
    }
}

/// `dir + "/" + name` into `out`, without doubling a trailing slash.
fn join_dir_name(out: &mut Vec<u8>, dir: &[u8], name: &[u8]) {
    out.clear();
    out.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
}

fn opt_i64(c: &mut JsonCursor<'_>) -> Parse<Option<i64>> {
    if c.take_null()? {
        Ok(None)
    } else {
        Ok(Some(c.i64()?))
    }
}

/// A string (or null) into the arena.
fn opt_string(c: &mut JsonCursor<'_>, arena: &mut Vec<u8>) -> Parse<Option<Span>> {
    if c.take_null()? {
        return Ok(None);
    }
    let start = arena.len();
    c.string_into(arena)?;
    Ok(Some(Span {
        start,
        end: arena.len(),
    }))
}

/// An `es_file_t` (or null): only its `path` is kept.
fn file_path(c: &mut JsonCursor<'_>, arena: &mut Vec<u8>) -> Parse<Option<Span>> {
    if c.take_null()? {
        return Ok(None);
    }
    c.begin_object()?;
    let mut first = true;
    let mut path = None;
    while let Some(key) = c.next_key(&mut first)? {
        match key {
            b"path" => path = opt_string(c, arena)?,
            _ => c.skip_value()?,
        }
    }
    Ok(path)
}

/// An audit token in either of its two shapes: an object keyed by field
/// name (message versions 9 and 11) or an array of eight integers in the
/// order auid, euid, egid, ruid, rgid, pid, asid, pidversion (version 10).
fn audit_token(c: &mut JsonCursor<'_>) -> Parse<AuditToken> {
    let mut t = AuditToken::default();
    match c.peek_byte() {
        Some(b'n') => {
            c.take_null()?;
        }
        Some(b'[') => {
            c.begin_array()?;
            let mut first = true;
            let mut index = 0;
            while c.next_element(&mut first)? {
                let offset = c.offset();
                let value = opt_i64(c)?;
                let slot = match index {
                    0 => &mut t.auid,
                    1 => &mut t.euid,
                    2 => &mut t.egid,
                    3 => &mut t.ruid,
                    4 => &mut t.rgid,
                    5 => &mut t.pid,
                    6 => &mut t.asid,
                    7 => &mut t.pidversion,
                    _ => {
                        return Err(Failure::BadValue {
                            offset,
                            detail: "audit_token array has more than 8 integers",
                        });
                    }
                };
                *slot = value;
                index += 1;
            }
            if index != 8 {
                return Err(Failure::BadValue {
                    offset: c.offset(),
                    detail: "audit_token array has fewer than 8 integers",
                });
            }
        }
        _ => {
            c.begin_object()?;
            let mut first = true;
            while let Some(key) = c.next_key(&mut first)? {
                let slot = match key {
                    b"auid" => &mut t.auid,
                    b"euid" => &mut t.euid,
                    b"egid" => &mut t.egid,
                    b"ruid" => &mut t.ruid,
                    b"rgid" => &mut t.rgid,
                    b"pid" => &mut t.pid,
                    b"asid" => &mut t.asid,
                    b"pidversion" => &mut t.pidversion,
                    _ => {
                        c.skip_value()?;
                        continue;
                    }
                };
                *slot = opt_i64(c)?;
            }
        }
    }
    Ok(t)
}

/// An `es_process_t` (or null).
fn process(c: &mut JsonCursor<'_>, p: &mut StagedProcess, arena: &mut Vec<u8>) -> Parse<()> {
    if c.take_null()? {
        return Ok(());
    }
    c.begin_object()?;
    p.present = true;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        match key {
            b"audit_token" => p.token = audit_token(c)?,
            b"parent_audit_token" => p.parent_pidversion = audit_token(c)?.pidversion,
            b"responsible_audit_token" => {
                let t = audit_token(c)?;
                p.responsible_pid = t.pid;
                p.responsible_pidversion = t.pidversion;
            }
            b"ppid" => p.ppid = opt_i64(c)?,
            b"original_ppid" => p.original_ppid = opt_i64(c)?,
            b"session_id" => p.session_id = opt_i64(c)?,
            b"codesigning_flags" => {
                let offset = c.offset();
                p.codesigning_flags = match opt_i64(c)? {
                    None => None,
                    // The C field is a uint32_t; accept it signed too.
                    Some(v) => Some(
                        u32::try_from(v)
                            .or_else(|_| i32::try_from(v).map(|v| v as u32))
                            .map_err(|_| Failure::BadValue {
                                offset,
                                detail: "codesigning_flags is not a 32-bit integer",
                            })?,
                    ),
                }
            }
            b"is_platform_binary" => {
                p.platform_binary = if c.take_null()? {
                    None
                } else {
                    Some(c.bool()?)
                }
            }
            b"cdhash" => p.cdhash = opt_string(c, arena)?,
            b"signing_id" => p.signing_id = opt_string(c, arena)?,
            b"team_id" => p.team_id = opt_string(c, arena)?,
            b"executable" => p.executable = file_path(c, arena)?,
            _ => c.skip_value()?,
        }
    }
    Ok(())
}

/// An array of strings (argv or env), joined the osquery way into the arena.
fn joined_strings(
    c: &mut JsonCursor<'_>,
    arena: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Parse<Option<(Span, i64)>> {
    if c.take_null()? {
        return Ok(None);
    }
    c.begin_array()?;
    let start = arena.len();
    let mut first = true;
    let mut count = 0i64;
    while c.next_element(&mut first)? {
        scratch.clear();
        if !c.take_null()? {
            c.string_into(scratch)?;
        }
        push_osquery_arg(arena, count == 0, scratch);
        count += 1;
    }
    Ok(Some((
        Span {
            start,
            end: arena.len(),
        },
        count,
    )))
}

/// A create or rename destination: `{"existing_file": file}` or
/// `{"new_path": {"dir": file, "filename": string}}`.
fn destination(c: &mut JsonCursor<'_>, m: &mut StagedMessage, arena: &mut Vec<u8>) -> Parse<()> {
    if c.take_null()? {
        return Ok(());
    }
    c.begin_object()?;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        match key {
            b"existing_file" => m.dest_file = file_path(c, arena)?,
            b"new_path" => {
                if c.take_null()? {
                    continue;
                }
                c.begin_object()?;
                let mut first = true;
                while let Some(key) = c.next_key(&mut first)? {
                    match key {
                        b"dir" => m.dest_dir = file_path(c, arena)?,
                        b"filename" => m.dest_name = opt_string(c, arena)?,
                        _ => c.skip_value()?,
                    }
                }
            }
            _ => c.skip_value()?,
        }
    }
    Ok(())
}

/// The body of one event, whose kind is known from its key.
fn event_body(
    c: &mut JsonCursor<'_>,
    kind: EsEventKind,
    m: &mut StagedMessage,
    arena: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Parse<()> {
    if c.take_null()? {
        return Ok(());
    }
    c.begin_object()?;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        use EsEventKind as K;
        match (kind, key) {
            (K::Exec, b"target") | (K::Fork, b"child") => process(c, &mut m.other_process, arena)?,
            (K::Exec, b"args") => m.args = joined_strings(c, arena, scratch)?,
            (K::Exec, b"env") => m.env = joined_strings(c, arena, scratch)?,
            (K::Exec, b"cwd") => m.cwd = file_path(c, arena)?,
            (K::Exit, b"stat") => m.exit_stat = opt_i64(c)?,
            (K::Open, b"file")
            | (K::Close | K::Unlink | K::Write | K::Truncate, b"target")
            | (K::Rename | K::Link | K::Clone | K::CopyFile, b"source")
            | (K::ExchangeData, b"file1") => m.primary = file_path(c, arena)?,
            (K::Create | K::Rename, b"destination") => destination(c, m, arena)?,
            (K::ExchangeData, b"file2") | (K::CopyFile, b"target_file") => {
                m.dest_file = file_path(c, arena)?
            }
            (K::Link | K::Clone | K::CopyFile, b"target_dir") => m.dest_dir = file_path(c, arena)?,
            (K::Link, b"target_filename") | (K::Clone | K::CopyFile, b"target_name") => {
                m.dest_name = opt_string(c, arena)?
            }
            _ => c.skip_value()?,
        }
    }
    Ok(())
}

/// The `event` object: exactly one key, the event's short name.
fn event(
    c: &mut JsonCursor<'_>,
    m: &mut StagedMessage,
    arena: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Parse<()> {
    if c.take_null()? {
        return Ok(());
    }
    c.begin_object()?;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        // Only the first key counts; ES_JSON.md promises exactly one.
        if m.kind.is_some() || m.unmapped_name.is_some() {
            c.skip_value()?;
            continue;
        }
        match EsEventKind::from_name(key) {
            Some(kind) => {
                m.kind = Some(kind);
                event_body(c, kind, m, arena, scratch)?;
            }
            None => {
                let start = arena.len();
                arena.extend_from_slice(key);
                m.unmapped_name = Some(Span {
                    start,
                    end: arena.len(),
                });
                c.skip_value()?;
            }
        }
    }
    Ok(())
}

/// One whole message.
fn parse_message(
    c: &mut JsonCursor<'_>,
    m: &mut StagedMessage,
    arena: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Parse<()> {
    c.begin_object()?;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        match key {
            b"version" => m.version = opt_i64(c)?,
            b"time" => {
                let offset = c.offset();
                m.time = opt_string(c, arena)?.map(|span| (span, offset));
            }
            b"seq_num" => m.seq_num = opt_i64(c)?,
            b"global_seq_num" => m.global_seq_num = opt_i64(c)?,
            b"event_type" => m.event_type = opt_i64(c)?,
            b"process" => process(c, &mut m.process, arena)?,
            b"event" => event(c, m, arena, scratch)?,
            _ => c.skip_value()?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
