//! Builders for the four tables fed by OpenBSM: `process_events`,
//! `process_file_events`, `socket_events` and `user_events`.
//!
//! The rows carry numbers and addresses as numbers; the builders render the
//! ones osquery declares as `TEXT` (the ids of `process_file_events`, socket
//! addresses, the file mode in octal) into a reused buffer, so a row costs no
//! allocation. Columns that BSM cannot fill (`uptime`, `fsuid`, file times)
//! are in the rows anyway, so that another source of the same table means the
//! same thing by them.

use std::fmt::{Display, Write as _};
use std::net::IpAddr;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::{PROCESS_EVENTS, PROCESS_FILE_EVENTS, SOCKET_EVENTS, USER_EVENTS};

use super::{EventIds, FinishPresized, digits};
use crate::text::{append_text, append_text_with_bytes};

/// Splits nanoseconds into osquery's whole-second `time`.
#[inline]
fn unix_seconds(time_ns: i64) -> i64 {
    time_ns.div_euclid(1_000_000_000)
}

fn timestamp_builder() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone("UTC")
}

/// Appends `value` rendered with `Display`, through the reused `buf`.
#[inline]
fn append_display<T: Display>(out: &mut StringBuilder, buf: &mut String, value: Option<T>) {
    match value {
        None => out.append_null(),
        Some(v) => {
            buf.clear();
            // Writing to a String cannot fail.
            let _ = write!(buf, "{v}");
            out.append_value(buf.as_str());
        }
    }
}

/// Appends a decimal number (or NULL) to a text column.
#[inline]
fn append_decimal(out: &mut StringBuilder, value: Option<i64>) {
    match value {
        None => out.append_null(),
        Some(v) if v < 0 => out.append_value(v.to_string()),
        Some(v) => out.append_value(digits(&mut [0; 24], v as u64, 10, 1)),
    }
}

/// A column builder that defers NULLs. BSM leaves many columns NULL in
/// nearly every row (file times, uptime, saved ids, the `_bytes` sidecars),
/// and appending them one by one was a tenth of decoding; here a run of
/// NULLs costs a counter increment per row and is written in one call when
/// a value arrives or the batch is finished.
#[derive(Default)]
struct Lazy<B> {
    builder: B,
    nulls: usize,
}

/// Builders that can append a run of NULLs at once.
trait NullRun {
    fn append_nulls(&mut self, n: usize);
}

impl NullRun for Int64Builder {
    fn append_nulls(&mut self, n: usize) {
        Int64Builder::append_nulls(self, n)
    }
}

impl NullRun for Int32Builder {
    fn append_nulls(&mut self, n: usize) {
        Int32Builder::append_nulls(self, n)
    }
}

impl NullRun for StringBuilder {
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n)
    }
}

impl NullRun for BinaryBuilder {
    fn append_nulls(&mut self, n: usize) {
        BinaryBuilder::append_nulls(self, n)
    }
}

impl<B: NullRun> Lazy<B> {
    /// The builder, with the NULLs deferred so far written.
    #[inline]
    fn get(&mut self) -> &mut B {
        if self.nulls > 0 {
            self.builder.append_nulls(self.nulls);
            self.nulls = 0;
        }
        &mut self.builder
    }
}

impl Lazy<Int64Builder> {
    #[inline]
    fn push(&mut self, value: Option<i64>) {
        match value {
            None => self.nulls += 1,
            Some(v) => self.get().append_value(v),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.get().finish_presized()
    }
}

impl Lazy<Int32Builder> {
    #[inline]
    fn push(&mut self, value: Option<i32>) {
        match value {
            None => self.nulls += 1,
            Some(v) => self.get().append_value(v),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.get().finish_presized()
    }
}

impl Lazy<StringBuilder> {
    /// Text without a sidecar (see [`append_text`]).
    #[inline]
    fn push(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.nulls += 1,
            Some(v) => append_text(self.get(), Some(v)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.get().finish_presized()
    }
}

impl Lazy<BinaryBuilder> {
    fn finish(&mut self) -> ArrayRef {
        self.get().finish_presized()
    }
}

/// Text with its `_bytes` sidecar (see [`append_text_with_bytes`]); the
/// sidecar is NULL unless the value is not UTF-8, so it stays lazy.
#[inline]
fn push_text_with_bytes(
    text: &mut StringBuilder,
    raw: &mut Lazy<BinaryBuilder>,
    value: Option<&[u8]>,
) {
    match value.map(std::str::from_utf8) {
        None => {
            text.append_null();
            raw.nulls += 1;
        }
        Some(Ok(s)) => {
            text.append_value(s);
            raw.nulls += 1;
        }
        Some(Err(_)) => append_text_with_bytes(text, raw.get(), value),
    }
}

/// One row of `process_events`, borrowed from the decoder's buffers.
#[derive(Debug, Default, Clone)]
pub struct ProcessEventRow<'a> {
    /// The process described: the exec'ing process, the exiting one, or the
    /// child of a fork or spawn.
    pub pid: Option<i64>,
    /// The executable, as the kernel resolved it.
    pub path: Option<&'a [u8]>,
    /// The executable's mode (rendered in octal, as osquery does).
    pub mode: Option<u32>,
    /// Arguments joined the osquery way (see [`crate::text::push_osquery_arg`]).
    pub cmdline: Option<&'a [u8]>,
    /// Length of `cmdline` in bytes.
    pub cmdline_size: Option<i64>,
    /// Environment joined the osquery way.
    pub env: Option<&'a [u8]>,
    /// Number of environment entries.
    pub env_count: Option<i64>,
    /// Length of `env` in bytes.
    pub env_size: Option<i64>,
    /// Working directory.
    pub cwd: Option<&'a [u8]>,
    /// Audit user id.
    pub auid: Option<i64>,
    /// Real user id.
    pub uid: Option<i64>,
    /// Effective user id.
    pub euid: Option<i64>,
    /// Real group id.
    pub gid: Option<i64>,
    /// Effective group id.
    pub egid: Option<i64>,
    /// Owner of the executable.
    pub owner_uid: Option<i64>,
    /// Group of the executable.
    pub owner_gid: Option<i64>,
    /// Executable access time.
    pub atime: Option<i64>,
    /// Executable modification time.
    pub mtime: Option<i64>,
    /// Executable change time.
    pub ctime: Option<i64>,
    /// Executable birth time.
    pub btime: Option<i64>,
    /// Which values were cut short.
    pub overflows: Option<&'a [u8]>,
    /// Parent process id.
    pub parent: Option<i64>,
    /// Host uptime at the event, in seconds.
    pub uptime: Option<i64>,
    /// The system call's status (a BSM error number, 0 on success), or the
    /// exit status of an exit.
    pub status: Option<i64>,
    /// File-system user id.
    pub fsuid: Option<i64>,
    /// Saved user id.
    pub suid: Option<i64>,
    /// File-system group id.
    pub fsgid: Option<i64>,
    /// Saved group id.
    pub sgid: Option<i64>,
    /// The system call (`execve`, `posix_spawn`, `fork`, `exit`…).
    pub syscall: &'static str,
    /// Event time, nanoseconds since the epoch (UTC).
    pub time_ns: i64,
}

/// Text and sidecar columns that are NULL in most rows.
#[inline]
fn push_lazy_text_with_bytes(
    text: &mut Lazy<StringBuilder>,
    raw: &mut Lazy<BinaryBuilder>,
    value: Option<&[u8]>,
) {
    match value {
        None => {
            text.nulls += 1;
            raw.nulls += 1;
        }
        Some(_) => push_text_with_bytes(text.get(), raw, value),
    }
}

/// Builds `process_events` batches.
#[derive(Default)]
pub struct ProcessEventsBuilder {
    pid: Int64Builder,
    path: StringBuilder,
    mode: Lazy<StringBuilder>,
    cmdline: Lazy<StringBuilder>,
    cmdline_size: Lazy<Int64Builder>,
    env: Lazy<StringBuilder>,
    env_count: Lazy<Int64Builder>,
    env_size: Lazy<Int64Builder>,
    cwd: Lazy<StringBuilder>,
    auid: Int64Builder,
    uid: Int64Builder,
    euid: Int64Builder,
    gid: Int64Builder,
    egid: Int64Builder,
    owner_uid: Lazy<Int64Builder>,
    owner_gid: Lazy<Int64Builder>,
    atime: Lazy<Int64Builder>,
    mtime: Lazy<Int64Builder>,
    ctime: Lazy<Int64Builder>,
    btime: Lazy<Int64Builder>,
    overflows: Lazy<StringBuilder>,
    parent: Lazy<Int64Builder>,
    time: Int64Builder,
    uptime: Lazy<Int64Builder>,
    status: Int64Builder,
    fsuid: Lazy<Int64Builder>,
    suid: Lazy<Int64Builder>,
    fsgid: Lazy<Int64Builder>,
    sgid: Lazy<Int64Builder>,
    syscall: StringBuilder,
    time_ns: TimestampNanosecondBuilder,
    path_bytes: Lazy<BinaryBuilder>,
    cmdline_bytes: Lazy<BinaryBuilder>,
    env_bytes: Lazy<BinaryBuilder>,
    cwd_bytes: Lazy<BinaryBuilder>,
    rows: usize,
    event_ids: EventIds,
}

impl ProcessEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            time_ns: timestamp_builder(),
            ..Self::default()
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row has been appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event.
    pub fn append(&mut self, row: &ProcessEventRow<'_>) {
        self.pid.append_option(row.pid);
        push_text_with_bytes(&mut self.path, &mut self.path_bytes, row.path);
        match row.mode {
            None => self.mode.nulls += 1,
            Some(mode) => self
                .mode
                .get()
                .append_value(digits(&mut [0; 24], u64::from(mode), 8, 1)),
        }
        push_lazy_text_with_bytes(&mut self.cmdline, &mut self.cmdline_bytes, row.cmdline);
        self.cmdline_size.push(row.cmdline_size);
        push_lazy_text_with_bytes(&mut self.env, &mut self.env_bytes, row.env);
        self.env_count.push(row.env_count);
        self.env_size.push(row.env_size);
        push_lazy_text_with_bytes(&mut self.cwd, &mut self.cwd_bytes, row.cwd);
        self.auid.append_option(row.auid);
        self.uid.append_option(row.uid);
        self.euid.append_option(row.euid);
        self.gid.append_option(row.gid);
        self.egid.append_option(row.egid);
        self.owner_uid.push(row.owner_uid);
        self.owner_gid.push(row.owner_gid);
        self.atime.push(row.atime);
        self.mtime.push(row.mtime);
        self.ctime.push(row.ctime);
        self.btime.push(row.btime);
        self.overflows.push(row.overflows);
        self.parent.push(row.parent);
        self.time.append_value(unix_seconds(row.time_ns));
        self.uptime.push(row.uptime);
        self.event_ids.append_next();
        self.status.append_option(row.status);
        self.fsuid.push(row.fsuid);
        self.suid.push(row.suid);
        self.fsgid.push(row.fsgid);
        self.sgid.push(row.sgid);
        self.syscall.append_value(row.syscall);
        self.time_ns.append_value(row.time_ns);
        self.rows += 1;
    }

    /// Takes the rows appended so far as a batch with the table's schema and
    /// leaves the builder empty (its buffers ready for reuse).
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            self.pid.finish_presized(),
            self.path.finish_presized(),
            self.mode.finish(),
            self.cmdline.finish(),
            self.cmdline_size.finish(),
            self.env.finish(),
            self.env_count.finish(),
            self.env_size.finish(),
            self.cwd.finish(),
            self.auid.finish_presized(),
            self.uid.finish_presized(),
            self.euid.finish_presized(),
            self.gid.finish_presized(),
            self.egid.finish_presized(),
            self.owner_uid.finish(),
            self.owner_gid.finish(),
            self.atime.finish(),
            self.mtime.finish(),
            self.ctime.finish(),
            self.btime.finish(),
            self.overflows.finish(),
            self.parent.finish(),
            self.time.finish_presized(),
            self.uptime.finish(),
            self.event_ids.finish()?,
            self.status.finish_presized(),
            self.fsuid.finish(),
            self.suid.finish(),
            self.fsgid.finish(),
            self.sgid.finish(),
            self.syscall.finish_presized(),
            self.time_ns.finish_presized(),
            self.path_bytes.finish(),
            self.cmdline_bytes.finish(),
            self.env_bytes.finish(),
            self.cwd_bytes.finish(),
        ];
        RecordBatch::try_new(PROCESS_EVENTS.schema(), columns)
    }
}

/// One row of `process_file_events`, borrowed from the decoder's buffers.
///
/// osquery declares the ids of this table as `TEXT`; they are numbers here
/// and rendered in decimal.
#[derive(Debug, Default, Clone)]
pub struct ProcessFileEventRow<'a> {
    /// What was done: `open`, `rename`, `unlink`, `link`, `chmod`, `chown`
    /// or `truncate`.
    pub operation: &'static str,
    /// The acting process.
    pub pid: Option<i64>,
    /// Its parent.
    pub ppid: Option<i64>,
    /// Its executable.
    pub executable: Option<&'a [u8]>,
    /// Whether the process started before sluice did (osquery's "partial").
    pub partial: Option<&'a [u8]>,
    /// Its working directory.
    pub cwd: Option<&'a [u8]>,
    /// The file acted on.
    pub path: Option<&'a [u8]>,
    /// The destination of a rename or link.
    pub dest_path: Option<&'a [u8]>,
    /// Real user id.
    pub uid: Option<i64>,
    /// Real group id.
    pub gid: Option<i64>,
    /// Audit user id.
    pub auid: Option<i64>,
    /// Effective user id.
    pub euid: Option<i64>,
    /// Effective group id.
    pub egid: Option<i64>,
    /// File-system user id.
    pub fsuid: Option<i64>,
    /// File-system group id.
    pub fsgid: Option<i64>,
    /// Saved user id.
    pub suid: Option<i64>,
    /// Saved group id.
    pub sgid: Option<i64>,
    /// Host uptime at the event, in seconds.
    pub uptime: Option<i64>,
    /// How an open opened the file (`O_RDWR|O_CREAT`).
    pub flags: Option<&'a str>,
    /// Event time, nanoseconds since the epoch (UTC).
    pub time_ns: i64,
}

/// Builds `process_file_events` batches.
#[derive(Default)]
pub struct ProcessFileEventsBuilder {
    operation: StringBuilder,
    pid: Int64Builder,
    ppid: Lazy<Int64Builder>,
    time: Int64Builder,
    executable: Lazy<StringBuilder>,
    partial: Lazy<StringBuilder>,
    cwd: Lazy<StringBuilder>,
    path: StringBuilder,
    dest_path: Lazy<StringBuilder>,
    uid: StringBuilder,
    gid: StringBuilder,
    auid: StringBuilder,
    euid: StringBuilder,
    egid: StringBuilder,
    fsuid: Lazy<StringBuilder>,
    fsgid: Lazy<StringBuilder>,
    suid: Lazy<StringBuilder>,
    sgid: Lazy<StringBuilder>,
    uptime: Lazy<Int64Builder>,
    time_ns: TimestampNanosecondBuilder,
    flags: Lazy<StringBuilder>,
    path_bytes: Lazy<BinaryBuilder>,
    dest_path_bytes: Lazy<BinaryBuilder>,
    rows: usize,
    event_ids: EventIds,
}

/// A decimal id into a text column that is NULL in most rows.
#[inline]
fn push_lazy_decimal(out: &mut Lazy<StringBuilder>, value: Option<i64>) {
    match value {
        None => out.nulls += 1,
        Some(_) => append_decimal(out.get(), value),
    }
}

impl ProcessFileEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            time_ns: timestamp_builder(),
            ..Self::default()
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row has been appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event.
    pub fn append(&mut self, row: &ProcessFileEventRow<'_>) {
        self.operation.append_value(row.operation);
        self.pid.append_option(row.pid);
        self.ppid.push(row.ppid);
        self.time.append_value(unix_seconds(row.time_ns));
        self.executable.push(row.executable);
        self.partial.push(row.partial);
        self.cwd.push(row.cwd);
        push_text_with_bytes(&mut self.path, &mut self.path_bytes, row.path);
        push_lazy_text_with_bytes(
            &mut self.dest_path,
            &mut self.dest_path_bytes,
            row.dest_path,
        );
        append_decimal(&mut self.uid, row.uid);
        append_decimal(&mut self.gid, row.gid);
        append_decimal(&mut self.auid, row.auid);
        append_decimal(&mut self.euid, row.euid);
        append_decimal(&mut self.egid, row.egid);
        push_lazy_decimal(&mut self.fsuid, row.fsuid);
        push_lazy_decimal(&mut self.fsgid, row.fsgid);
        push_lazy_decimal(&mut self.suid, row.suid);
        push_lazy_decimal(&mut self.sgid, row.sgid);
        self.uptime.push(row.uptime);
        self.event_ids.append_next();
        self.time_ns.append_value(row.time_ns);
        self.flags.push(row.flags.map(str::as_bytes));
        self.rows += 1;
    }

    /// Takes the rows appended so far as a batch with the table's schema and
    /// leaves the builder empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            self.operation.finish_presized(),
            self.pid.finish_presized(),
            self.ppid.finish(),
            self.time.finish_presized(),
            self.executable.finish(),
            self.partial.finish(),
            self.cwd.finish(),
            self.path.finish_presized(),
            self.dest_path.finish(),
            self.uid.finish_presized(),
            self.gid.finish_presized(),
            self.auid.finish_presized(),
            self.euid.finish_presized(),
            self.egid.finish_presized(),
            self.fsuid.finish(),
            self.fsgid.finish(),
            self.suid.finish(),
            self.sgid.finish(),
            self.uptime.finish(),
            self.event_ids.finish()?,
            self.time_ns.finish_presized(),
            self.flags.finish(),
            self.path_bytes.finish(),
            self.dest_path_bytes.finish(),
        ];
        RecordBatch::try_new(PROCESS_FILE_EVENTS.schema(), columns)
    }
}

/// One row of `socket_events`, borrowed from the decoder's buffers.
#[derive(Debug, Default, Clone)]
pub struct SocketEventRow<'a> {
    /// `connect`, `bind` or `accept`.
    pub action: &'static str,
    /// The acting process.
    pub pid: Option<i64>,
    /// Its executable.
    pub path: Option<&'a [u8]>,
    /// The socket's file descriptor (rendered in decimal).
    pub fd: Option<i64>,
    /// Audit user id.
    pub auid: Option<i64>,
    /// Protocol family.
    pub family: Option<i32>,
    /// Protocol.
    pub protocol: Option<i32>,
    /// Local address.
    pub local_address: Option<IpAddr>,
    /// Remote address.
    pub remote_address: Option<IpAddr>,
    /// Local port.
    pub local_port: Option<i32>,
    /// Remote port.
    pub remote_port: Option<i32>,
    /// The path of a UNIX-domain socket.
    pub socket: Option<&'a [u8]>,
    /// Host uptime at the event, in seconds.
    pub uptime: Option<i64>,
    /// 1 if the call succeeded, else 0.
    pub success: Option<i32>,
    /// `succeeded`, `failed`, `in_progress` or `no_client`.
    pub status: Option<&'static str>,
    /// Event time, nanoseconds since the epoch (UTC).
    pub time_ns: i64,
}

/// Builds `socket_events` batches.
pub struct SocketEventsBuilder {
    action: StringBuilder,
    pid: Int64Builder,
    path: Lazy<StringBuilder>,
    fd: StringBuilder,
    auid: Int64Builder,
    family: Int32Builder,
    protocol: Lazy<Int32Builder>,
    local_address: StringBuilder,
    remote_address: StringBuilder,
    local_port: Int32Builder,
    remote_port: Int32Builder,
    socket: Lazy<StringBuilder>,
    time: Int64Builder,
    uptime: Lazy<Int64Builder>,
    success: Int32Builder,
    status: StringBuilder,
    time_ns: TimestampNanosecondBuilder,
    socket_bytes: Lazy<BinaryBuilder>,
    rows: usize,
    event_ids: EventIds,
    buf: String,
}

impl Default for SocketEventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SocketEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            action: StringBuilder::new(),
            pid: Int64Builder::new(),
            path: Lazy::default(),
            fd: StringBuilder::new(),
            auid: Int64Builder::new(),
            family: Int32Builder::new(),
            protocol: Lazy::default(),
            local_address: StringBuilder::new(),
            remote_address: StringBuilder::new(),
            local_port: Int32Builder::new(),
            remote_port: Int32Builder::new(),
            socket: Lazy::default(),
            time: Int64Builder::new(),
            uptime: Lazy::default(),
            success: Int32Builder::new(),
            status: StringBuilder::new(),
            time_ns: timestamp_builder(),
            socket_bytes: Lazy::default(),
            rows: 0,
            event_ids: EventIds::default(),
            buf: String::with_capacity(48),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row has been appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event.
    pub fn append(&mut self, row: &SocketEventRow<'_>) {
        let buf = &mut self.buf;
        self.action.append_value(row.action);
        self.pid.append_option(row.pid);
        self.path.push(row.path);
        append_decimal(&mut self.fd, row.fd);
        self.auid.append_option(row.auid);
        self.family.append_option(row.family);
        self.protocol.push(row.protocol);
        append_display(&mut self.local_address, buf, row.local_address);
        append_display(&mut self.remote_address, buf, row.remote_address);
        self.local_port.append_option(row.local_port);
        self.remote_port.append_option(row.remote_port);
        push_lazy_text_with_bytes(&mut self.socket, &mut self.socket_bytes, row.socket);
        self.time.append_value(unix_seconds(row.time_ns));
        self.uptime.push(row.uptime);
        self.event_ids.append_next();
        self.success.append_option(row.success);
        self.status.append_option(row.status);
        self.time_ns.append_value(row.time_ns);
        self.rows += 1;
    }

    /// Takes the rows appended so far as a batch with the table's schema and
    /// leaves the builder empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            self.action.finish_presized(),
            self.pid.finish_presized(),
            self.path.finish(),
            self.fd.finish_presized(),
            self.auid.finish_presized(),
            self.family.finish_presized(),
            self.protocol.finish(),
            self.local_address.finish_presized(),
            self.remote_address.finish_presized(),
            self.local_port.finish_presized(),
            self.remote_port.finish_presized(),
            self.socket.finish(),
            self.time.finish_presized(),
            self.uptime.finish(),
            self.event_ids.finish()?,
            self.success.finish_presized(),
            self.status.finish_presized(),
            self.time_ns.finish_presized(),
            self.socket_bytes.finish(),
        ];
        RecordBatch::try_new(SOCKET_EVENTS.schema(), columns)
    }
}

/// One row of `user_events`, borrowed from the decoder's buffers.
#[derive(Debug, Default, Clone)]
pub struct UserEventRow<'a> {
    /// Real user id.
    pub uid: Option<i64>,
    /// Audit user id.
    pub auid: Option<i64>,
    /// The process that reported the event.
    pub pid: Option<i64>,
    /// What happened, in the reporter's words.
    pub message: Option<&'a [u8]>,
    /// The event type (for BSM, the event number).
    pub event_type: Option<i32>,
    /// A path named by the event.
    pub path: Option<&'a [u8]>,
    /// The remote (or terminal) address.
    pub address: Option<IpAddr>,
    /// The terminal.
    pub terminal: Option<&'a [u8]>,
    /// Host uptime at the event, in seconds.
    pub uptime: Option<i64>,
    /// Event time, nanoseconds since the epoch (UTC).
    pub time_ns: i64,
}

/// Builds `user_events` batches.
pub struct UserEventsBuilder {
    uid: Int64Builder,
    auid: Int64Builder,
    pid: Int64Builder,
    message: StringBuilder,
    event_type: Int32Builder,
    path: Lazy<StringBuilder>,
    address: StringBuilder,
    terminal: StringBuilder,
    time: Int64Builder,
    uptime: Lazy<Int64Builder>,
    time_ns: TimestampNanosecondBuilder,
    message_bytes: Lazy<BinaryBuilder>,
    path_bytes: Lazy<BinaryBuilder>,
    rows: usize,
    event_ids: EventIds,
    buf: String,
}

impl Default for UserEventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl UserEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            uid: Int64Builder::new(),
            auid: Int64Builder::new(),
            pid: Int64Builder::new(),
            message: StringBuilder::new(),
            event_type: Int32Builder::new(),
            path: Lazy::default(),
            address: StringBuilder::new(),
            terminal: StringBuilder::new(),
            time: Int64Builder::new(),
            uptime: Lazy::default(),
            time_ns: timestamp_builder(),
            message_bytes: Lazy::default(),
            path_bytes: Lazy::default(),
            rows: 0,
            event_ids: EventIds::default(),
            buf: String::with_capacity(48),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row has been appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event.
    pub fn append(&mut self, row: &UserEventRow<'_>) {
        let buf = &mut self.buf;
        self.uid.append_option(row.uid);
        self.auid.append_option(row.auid);
        self.pid.append_option(row.pid);
        push_text_with_bytes(&mut self.message, &mut self.message_bytes, row.message);
        self.event_type.append_option(row.event_type);
        push_lazy_text_with_bytes(&mut self.path, &mut self.path_bytes, row.path);
        append_display(&mut self.address, buf, row.address);
        append_text(&mut self.terminal, row.terminal);
        self.time.append_value(unix_seconds(row.time_ns));
        self.uptime.push(row.uptime);
        self.event_ids.append_next();
        self.time_ns.append_value(row.time_ns);
        self.rows += 1;
    }

    /// Takes the rows appended so far as a batch with the table's schema and
    /// leaves the builder empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            self.uid.finish_presized(),
            self.auid.finish_presized(),
            self.pid.finish_presized(),
            self.message.finish_presized(),
            self.event_type.finish_presized(),
            self.path.finish(),
            self.address.finish_presized(),
            self.terminal.finish_presized(),
            self.time.finish_presized(),
            self.uptime.finish(),
            self.event_ids.finish()?,
            self.time_ns.finish_presized(),
            self.message_bytes.finish(),
            self.path_bytes.finish(),
        ];
        RecordBatch::try_new(USER_EVENTS.schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builder_makes_its_table_schema() {
        let mut p = ProcessEventsBuilder::new();
        p.append(&ProcessEventRow {
            pid: Some(1),
            mode: Some(0o100755),
            syscall: "execve",
            ..Default::default()
        });
        let batch = p.finish().unwrap();
        assert_eq!(batch.schema(), PROCESS_EVENTS.schema());
        let mode = batch
            .column_by_name("mode")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .value(0)
            .to_string();
        assert_eq!(mode, "100755");

        let mut f = ProcessFileEventsBuilder::new();
        f.append(&ProcessFileEventRow {
            operation: "open",
            uid: Some(501),
            ..Default::default()
        });
        assert_eq!(f.finish().unwrap().schema(), PROCESS_FILE_EVENTS.schema());

        let mut s = SocketEventsBuilder::new();
        s.append(&SocketEventRow {
            action: "connect",
            remote_address: Some(IpAddr::from([10, 0, 0, 1])),
            ..Default::default()
        });
        assert_eq!(s.finish().unwrap().schema(), SOCKET_EVENTS.schema());

        let mut u = UserEventsBuilder::new();
        u.append(&UserEventRow::default());
        assert_eq!(u.finish().unwrap().schema(), USER_EVENTS.schema());
    }
}
