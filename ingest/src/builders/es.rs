//! Builders for the two EndpointSecurity tables, `es_process_events` and
//! `es_process_file_events`.

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit, TimestampNanosecondType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::{ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS, TableDef};

use super::{EventIds, FinishPresized, NumberColumn, keyed_schema};
use crate::text::{KeyedTextBuilder, TextWithBytesBuilder, append_text};

/// One row of `es_process_events`, borrowed from the decoder's buffers.
///
/// `None` becomes SQL NULL. Text is given as bytes because paths and
/// arguments need not be UTF-8.
#[derive(Debug, Default, Clone)]
pub struct EsProcessEventRow<'a> {
    /// ES message version.
    pub version: Option<i32>,
    /// Per-client, per-event-type sequence number.
    pub seq_num: Option<i64>,
    /// Per-client sequence number over all event types.
    pub global_seq_num: Option<i64>,
    /// Process id (of the exec target for exec, else of the acting process).
    pub pid: Option<i64>,
    /// Process id version from the audit token.
    pub pidversion: Option<i64>,
    /// The kernel's path of the executable, never `argv[0]`.
    pub path: Option<&'a [u8]>,
    /// Parent process id (`ppid`).
    pub parent: Option<i64>,
    /// Original parent process id (`original_ppid`).
    pub original_parent: Option<i64>,
    /// Session id.
    pub session_id: Option<i64>,
    /// Responsible process id, from `responsible_audit_token`.
    pub responsible_pid: Option<i64>,
    /// Responsible process id version.
    pub responsible_pidversion: Option<i64>,
    /// Parent process id version, from `parent_audit_token`.
    pub parent_pidversion: Option<i64>,
    /// Arguments joined the osquery way (see [`crate::text::push_osquery_arg`]).
    pub cmdline: Option<&'a [u8]>,
    /// Number of arguments.
    pub cmdline_count: Option<i64>,
    /// Environment joined the osquery way.
    pub env: Option<&'a [u8]>,
    /// Number of environment entries.
    pub env_count: Option<i64>,
    /// Working directory at exec.
    pub cwd: Option<&'a [u8]>,
    /// Real user id.
    pub uid: Option<i64>,
    /// Effective user id.
    pub euid: Option<i64>,
    /// Real group id.
    pub gid: Option<i64>,
    /// Effective group id.
    pub egid: Option<i64>,
    /// User name of `uid`, only when collected live on the same host.
    pub username: Option<&'a [u8]>,
    /// Code signing identifier.
    pub signing_id: Option<&'a [u8]>,
    /// Team identifier.
    pub team_id: Option<&'a [u8]>,
    /// Code directory hash, in hex.
    pub cdhash: Option<&'a [u8]>,
    /// 1 for an Apple platform binary, else 0.
    pub platform_binary: Option<i32>,
    /// The wait status of an exit event.
    pub exit_code: Option<i32>,
    /// The child's pid of a fork event.
    pub child_pid: Option<i64>,
    /// Event name: `exec`, `fork` or `exit`.
    pub event_type: &'static str,
    /// Raw code signing flags, rendered as osquery's flag names.
    pub codesigning_flags: Option<u32>,
    /// Event time, nanoseconds since the epoch (UTC).
    pub time_ns: i64,
}

/// One row of `es_process_file_events`, borrowed from the decoder's buffers.
#[derive(Debug, Default, Clone)]
pub struct EsProcessFileEventRow<'a> {
    /// ES message version.
    pub version: Option<i32>,
    /// Per-client, per-event-type sequence number.
    pub seq_num: Option<i64>,
    /// Per-client sequence number over all event types.
    pub global_seq_num: Option<i64>,
    /// Process id of the acting process.
    pub pid: Option<i64>,
    /// Parent process id of the acting process.
    pub parent: Option<i64>,
    /// Executable path of the acting process.
    pub path: Option<&'a [u8]>,
    /// The target file.
    pub filename: Option<&'a [u8]>,
    /// The destination of rename, link, clone, copyfile and exchangedata;
    /// empty (as in osquery) for the others.
    pub dest_filename: Option<&'a [u8]>,
    /// Event name, such as `open` or `rename`.
    pub event_type: &'static str,
    /// Event time, nanoseconds since the epoch (UTC).
    pub time_ns: i64,
}

/// Splits nanoseconds into osquery's whole-second `time`.
#[inline]
fn unix_seconds(time_ns: i64) -> i64 {
    time_ns.div_euclid(1_000_000_000)
}

/// Renders code signing flags as osquery does: the unusual states are named,
/// so `NOT_VALID` and `NOT_RUNTIME` are the absence of `CS_VALID` and
/// `CS_RUNTIME`, and the names are joined by `", "`.
pub fn codesigning_flags_text(flags: u32) -> &'static str {
    const CS_VALID: u32 = 0x0000_0001;
    const CS_ADHOC: u32 = 0x0000_0002;
    const CS_INSTALLER: u32 = 0x0000_0008;
    const CS_RUNTIME: u32 = 0x0001_0000;
    // Four independent names give sixteen possible strings; index them by
    // bits so that rendering allocates nothing.
    const TEXT: [&str; 16] = [
        "",
        "NOT_VALID",
        "ADHOC",
        "NOT_VALID, ADHOC",
        "NOT_RUNTIME",
        "NOT_VALID, NOT_RUNTIME",
        "ADHOC, NOT_RUNTIME",
        "NOT_VALID, ADHOC, NOT_RUNTIME",
        "INSTALLER",
        "NOT_VALID, INSTALLER",
        "ADHOC, INSTALLER",
        "NOT_VALID, ADHOC, INSTALLER",
        "NOT_RUNTIME, INSTALLER",
        "NOT_VALID, NOT_RUNTIME, INSTALLER",
        "ADHOC, NOT_RUNTIME, INSTALLER",
        "NOT_VALID, ADHOC, NOT_RUNTIME, INSTALLER",
    ];
    let index = usize::from(flags & CS_VALID == 0)
        | usize::from(flags & CS_ADHOC != 0) << 1
        | usize::from(flags & CS_RUNTIME == 0) << 2
        | usize::from(flags & CS_INSTALLER != 0) << 3;
    TEXT[index]
}

fn timestamp_builder() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_data_type(timestamp_type())
}

/// `time_ns`'s type: nanoseconds, UTC.
fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Builds `es_process_events` batches.
pub struct EsProcessEventsBuilder {
    version: Int32Builder,
    seq_num: Int64Builder,
    global_seq_num: Int64Builder,
    pid: Int64Builder,
    pidversion: Int64Builder,
    path: TextWithBytesBuilder,
    parent: Int64Builder,
    original_parent: Int64Builder,
    session_id: Int64Builder,
    responsible_pid: Int64Builder,
    responsible_pidversion: Int64Builder,
    parent_pidversion: Int64Builder,
    cmdline: TextWithBytesBuilder,
    cmdline_count: Int64Builder,
    env: TextWithBytesBuilder,
    env_count: Int64Builder,
    cwd: TextWithBytesBuilder,
    uid: Int64Builder,
    euid: Int64Builder,
    gid: Int64Builder,
    egid: Int64Builder,
    username: StringBuilder,
    signing_id: StringBuilder,
    team_id: StringBuilder,
    cdhash: StringBuilder,
    platform_binary: Int32Builder,
    exit_code: Int32Builder,
    child_pid: Int64Builder,
    time: Int64Builder,
    event_type: StringBuilder,
    codesigning_flags: StringBuilder,
    time_ns: TimestampNanosecondBuilder,
    rows: usize,
    event_ids: EventIds,
}

impl Default for EsProcessEventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EsProcessEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            version: Int32Builder::new(),
            seq_num: Int64Builder::new(),
            global_seq_num: Int64Builder::new(),
            pid: Int64Builder::new(),
            pidversion: Int64Builder::new(),
            path: TextWithBytesBuilder::new(),
            parent: Int64Builder::new(),
            original_parent: Int64Builder::new(),
            session_id: Int64Builder::new(),
            responsible_pid: Int64Builder::new(),
            responsible_pidversion: Int64Builder::new(),
            parent_pidversion: Int64Builder::new(),
            cmdline: TextWithBytesBuilder::new(),
            cmdline_count: Int64Builder::new(),
            env: TextWithBytesBuilder::new(),
            env_count: Int64Builder::new(),
            cwd: TextWithBytesBuilder::new(),
            uid: Int64Builder::new(),
            euid: Int64Builder::new(),
            gid: Int64Builder::new(),
            egid: Int64Builder::new(),
            username: StringBuilder::new(),
            signing_id: StringBuilder::new(),
            team_id: StringBuilder::new(),
            cdhash: StringBuilder::new(),
            platform_binary: Int32Builder::new(),
            exit_code: Int32Builder::new(),
            child_pid: Int64Builder::new(),
            time: Int64Builder::new(),
            event_type: StringBuilder::new(),
            codesigning_flags: StringBuilder::new(),
            time_ns: timestamp_builder(),
            rows: 0,
            event_ids: EventIds::default(),
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
    pub fn append(&mut self, row: &EsProcessEventRow<'_>) {
        self.version.append_option(row.version);
        self.seq_num.append_option(row.seq_num);
        self.global_seq_num.append_option(row.global_seq_num);
        self.pid.append_option(row.pid);
        self.pidversion.append_option(row.pidversion);
        self.path.append(row.path);
        self.parent.append_option(row.parent);
        self.original_parent.append_option(row.original_parent);
        self.session_id.append_option(row.session_id);
        self.responsible_pid.append_option(row.responsible_pid);
        self.responsible_pidversion
            .append_option(row.responsible_pidversion);
        self.parent_pidversion.append_option(row.parent_pidversion);
        self.cmdline.append(row.cmdline);
        self.cmdline_count.append_option(row.cmdline_count);
        self.env.append(row.env);
        self.env_count.append_option(row.env_count);
        self.cwd.append(row.cwd);
        self.uid.append_option(row.uid);
        self.euid.append_option(row.euid);
        self.gid.append_option(row.gid);
        self.egid.append_option(row.egid);
        append_text(&mut self.username, row.username);
        append_text(&mut self.signing_id, row.signing_id);
        append_text(&mut self.team_id, row.team_id);
        append_text(&mut self.cdhash, row.cdhash);
        self.platform_binary.append_option(row.platform_binary);
        self.exit_code.append_option(row.exit_code);
        self.child_pid.append_option(row.child_pid);
        self.time.append_value(unix_seconds(row.time_ns));
        self.event_type.append_value(row.event_type);
        self.event_ids.append_next();
        self.codesigning_flags
            .append_option(row.codesigning_flags.map(codesigning_flags_text));
        self.time_ns.append_value(row.time_ns);
        self.rows += 1;
    }

    /// Takes the rows appended so far as a batch with the table's schema and
    /// leaves the builder empty (its buffers ready for reuse).
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let (path, path_bytes) = self.path.finish();
        let (cmdline, cmdline_bytes) = self.cmdline.finish();
        let (env, env_bytes) = self.env.finish();
        let (cwd, cwd_bytes) = self.cwd.finish();
        let columns: Vec<ArrayRef> = vec![
            self.version.finish_presized(),
            self.seq_num.finish_presized(),
            self.global_seq_num.finish_presized(),
            self.pid.finish_presized(),
            self.pidversion.finish_presized(),
            path,
            self.parent.finish_presized(),
            self.original_parent.finish_presized(),
            self.session_id.finish_presized(),
            self.responsible_pid.finish_presized(),
            self.responsible_pidversion.finish_presized(),
            self.parent_pidversion.finish_presized(),
            cmdline,
            self.cmdline_count.finish_presized(),
            env,
            self.env_count.finish_presized(),
            cwd,
            self.uid.finish_presized(),
            self.euid.finish_presized(),
            self.gid.finish_presized(),
            self.egid.finish_presized(),
            self.username.finish_presized(),
            self.signing_id.finish_presized(),
            self.team_id.finish_presized(),
            self.cdhash.finish_presized(),
            self.platform_binary.finish_presized(),
            self.exit_code.finish_presized(),
            self.child_pid.finish_presized(),
            self.time.finish_presized(),
            self.event_type.finish_presized(),
            self.event_ids.finish()?,
            self.codesigning_flags.finish_presized(),
            self.time_ns.finish_presized(),
            path_bytes,
            cmdline_bytes,
            env_bytes,
            cwd_bytes,
        ];
        RecordBatch::try_new(ES_PROCESS_EVENTS.schema(), columns)
    }
}

/// Builds `es_process_file_events` batches.
pub struct EsProcessFileEventsBuilder {
    version: NumberColumn<Int32Type>,
    seq_num: NumberColumn<Int64Type>,
    global_seq_num: NumberColumn<Int64Type>,
    pid: NumberColumn<Int64Type>,
    parent: NumberColumn<Int64Type>,
    path: KeyedTextBuilder,
    filename: KeyedTextBuilder,
    dest_filename: KeyedTextBuilder,
    event_type: StringBuilder,
    time: NumberColumn<Int64Type>,
    time_ns: NumberColumn<TimestampNanosecondType>,
    rows: usize,
    event_ids: EventIds,
}

impl Default for EsProcessFileEventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EsProcessFileEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            version: NumberColumn::new(),
            seq_num: NumberColumn::new(),
            global_seq_num: NumberColumn::new(),
            pid: NumberColumn::new(),
            parent: NumberColumn::new(),
            path: KeyedTextBuilder::new(),
            filename: KeyedTextBuilder::new(),
            dest_filename: KeyedTextBuilder::new(),
            event_type: StringBuilder::new(),
            time: NumberColumn::new(),
            time_ns: NumberColumn::of_type(timestamp_type()),
            rows: 0,
            event_ids: EventIds::default(),
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
    pub fn append(&mut self, row: &EsProcessFileEventRow<'_>) {
        self.version.append_option(row.version);
        self.seq_num.append_option(row.seq_num);
        self.global_seq_num.append_option(row.global_seq_num);
        self.pid.append_option(row.pid);
        self.parent.append_option(row.parent);
        self.path.append(row.path);
        self.filename.append(row.filename);
        self.dest_filename.append(row.dest_filename);
        self.event_type.append_value(row.event_type);
        self.time.append_value(unix_seconds(row.time_ns));
        self.event_ids.append_next();
        self.time_ns.append_value(row.time_ns);
        self.rows += 1;
    }

    /// Takes the rows appended so far as a batch with the table's schema and
    /// leaves the builder empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.finish_with(KeyedTextBuilder::finish_plain)
    }

    /// Like [`finish`](Self::finish), with `path`, `filename` and
    /// `dest_filename` as dictionaries over their distinct values (see
    /// [`KeyedTextBuilder`]): the form storage takes without reading the
    /// rows' text again. Its schema is the table's with those three
    /// columns' types changed.
    pub fn finish_keyed(&mut self) -> Result<RecordBatch, ArrowError> {
        self.finish_with(KeyedTextBuilder::finish)
    }

    fn finish_with(
        &mut self,
        finish_text: fn(&mut KeyedTextBuilder) -> Result<(ArrayRef, ArrayRef), ArrowError>,
    ) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let (path, path_bytes) = finish_text(&mut self.path)?;
        let (filename, filename_bytes) = finish_text(&mut self.filename)?;
        let (dest_filename, dest_filename_bytes) = finish_text(&mut self.dest_filename)?;
        let columns: Vec<ArrayRef> = vec![
            self.version.finish_presized(),
            self.seq_num.finish_presized(),
            self.global_seq_num.finish_presized(),
            self.pid.finish_presized(),
            self.parent.finish_presized(),
            path,
            filename,
            dest_filename,
            self.event_type.finish_presized(),
            self.time.finish_presized(),
            self.event_ids.finish()?,
            self.time_ns.finish_presized(),
            path_bytes,
            filename_bytes,
            dest_filename_bytes,
        ];
        RecordBatch::try_new(
            keyed_schema(&ES_PROCESS_FILE_EVENTS.schema(), &columns),
            columns,
        )
    }
}

/// One batch per ES table that has rows, process events first, each
/// builder left empty; `finish_file_events` is
/// [`EsProcessFileEventsBuilder::finish`] or
/// [`finish_keyed`](EsProcessFileEventsBuilder::finish_keyed).
pub(crate) fn take_es_batches(
    process_events: &mut EsProcessEventsBuilder,
    file_events: &mut EsProcessFileEventsBuilder,
    finish_file_events: fn(&mut EsProcessFileEventsBuilder) -> Result<RecordBatch, ArrowError>,
) -> Result<Vec<(&'static TableDef, RecordBatch)>, ArrowError> {
    let mut out = Vec::with_capacity(2);
    if !process_events.is_empty() {
        out.push((&ES_PROCESS_EVENTS, process_events.finish()?));
    }
    if !file_events.is_empty() {
        out.push((&ES_PROCESS_FILE_EVENTS, finish_file_events(file_events)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_carry_the_table_schema() {
        let mut b = EsProcessEventsBuilder::new();
        b.append(&EsProcessEventRow {
            event_type: "exec",
            pid: Some(7),
            time_ns: 1_500_000_000,
            ..Default::default()
        });
        let batch = b.finish().unwrap();
        assert_eq!(batch.schema(), ES_PROCESS_EVENTS.schema());
        assert_eq!(batch.num_rows(), 1);
        assert!(b.is_empty());

        let mut f = EsProcessFileEventsBuilder::new();
        f.append(&EsProcessFileEventRow {
            event_type: "open",
            filename: Some(b"/etc/hosts"),
            ..Default::default()
        });
        let batch = f.finish().unwrap();
        assert_eq!(batch.schema(), ES_PROCESS_FILE_EVENTS.schema());
    }

    #[test]
    fn codesigning_flags_use_osquery_names() {
        // A typical Apple binary: valid, hardened runtime.
        assert_eq!(codesigning_flags_text(0x0001_0001), "");
        assert_eq!(codesigning_flags_text(0), "NOT_VALID, NOT_RUNTIME");
        assert_eq!(
            codesigning_flags_text(0x0000_000B),
            "ADHOC, NOT_RUNTIME, INSTALLER"
        );
    }
}
