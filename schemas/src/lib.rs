//! # sluice-schemas: the shape of every table sluice serves
//!
//! Events reach sluice from EndpointSecurity, OpenBSM and file notifications,
//! and leave it as rows of osquery's event tables. This crate is the contract
//! between the two ends: for each table it lists osquery's columns, with
//! osquery's names, in osquery's order, followed by sluice's own columns.
//! Decoders build Arrow batches against these schemas, the Parquet files are
//! written with them, and the SQL engine serves them, so a query written for
//! osquery finds every column it expects.
//!
//! Types follow osquery's: `INTEGER` is Arrow `Int32`, `BIGINT` is `Int64`,
//! `TEXT` is `Utf8` and `DOUBLE` is `Float64`. Every table ends with
//! `time_ns`, the event time as a UTC nanosecond timestamp, because osquery's
//! `time` column holds whole seconds only.
//!
//! ```
//! let table = sluice_schemas::table("es_process_events").unwrap();
//! let schema = table.schema();
//! assert_eq!(schema.field(0).name(), "version");
//! assert!(schema.field_with_name("time_ns").is_ok());
//! ```

mod distinct;
mod event_ids;
pub use distinct::{DistinctValues, key_bytes, keyed_array};
pub use event_ids::{EventIdCounter, MAX_EID_DIGITS};

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The SQL type of a column, as osquery declares it, plus the types of the
/// columns sluice adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// osquery `INTEGER`: a 32-bit signed integer.
    Integer,
    /// osquery `BIGINT`: a 64-bit signed integer.
    BigInt,
    /// osquery `TEXT`: UTF-8 text.
    Text,
    /// osquery `DOUBLE`: a 64-bit float.
    Double,
    /// A UTC timestamp in nanoseconds (sluice's `time_ns`).
    TimestampNs,
    /// Raw bytes, for values that are not valid UTF-8 (sluice's `*_bytes`).
    Bytes,
}

impl SqlType {
    /// The Arrow type that stores values of this SQL type.
    pub fn arrow_type(self) -> DataType {
        match self {
            SqlType::Integer => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Text => DataType::Utf8,
            SqlType::Double => DataType::Float64,
            SqlType::TimestampNs => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            SqlType::Bytes => DataType::Binary,
        }
    }

    /// The name osquery gives this type (`INTEGER`, `BIGINT`, `TEXT`,
    /// `DOUBLE`), or sluice's name for the types osquery does not have.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Integer => "INTEGER",
            SqlType::BigInt => "BIGINT",
            SqlType::Text => "TEXT",
            SqlType::Double => "DOUBLE",
            SqlType::TimestampNs => "TIMESTAMP",
            SqlType::Bytes => "BLOB",
        }
    }
}

/// Where a column comes from and how osquery treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnOrigin {
    /// An ordinary osquery column.
    Osquery,
    /// An osquery column marked `hidden` (not in `SELECT *` on osquery; kept
    /// in sluice).
    OsqueryHidden,
    /// An osquery column marked `additional` (a constraint column, such as
    /// `time` on event tables).
    OsqueryAdditional,
    /// A column sluice adds after osquery's.
    Sluice,
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The column name, as osquery spells it.
    pub name: &'static str,
    /// The column's SQL type.
    pub sql_type: SqlType,
    /// Where the column comes from.
    pub origin: ColumnOrigin,
}

impl Column {
    /// Whether the column is one of osquery's (as opposed to sluice's own).
    pub fn is_osquery(&self) -> bool {
        self.origin != ColumnOrigin::Sluice
    }
}

/// A table sluice serves: its name, what it holds and its columns.
#[derive(Debug)]
pub struct TableDef {
    /// The table name, as in osquery.
    pub name: &'static str,
    /// One line on what the table holds and where its rows come from.
    pub description: &'static str,
    /// osquery's columns in osquery's order, then sluice's.
    pub columns: &'static [Column],
    schema: OnceLock<SchemaRef>,
}

impl TableDef {
    /// The table's Arrow schema. Every column is nullable: an event that does
    /// not carry a value stores NULL rather than a made-up default.
    pub fn schema(&self) -> SchemaRef {
        self.schema
            .get_or_init(|| {
                Arc::new(Schema::new(
                    self.columns
                        .iter()
                        .map(|c| Field::new(c.name, c.sql_type.arrow_type(), true))
                        .collect::<Vec<_>>(),
                ))
            })
            .clone()
    }

    /// The position of a column in the schema.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

const INTEGER: SqlType = SqlType::Integer;
const BIGINT: SqlType = SqlType::BigInt;
const TEXT: SqlType = SqlType::Text;
#[allow(dead_code)] // no table of the first set has a DOUBLE column yet
const DOUBLE: SqlType = SqlType::Double;
const TIMESTAMP_NS: SqlType = SqlType::TimestampNs;
const BYTES: SqlType = SqlType::Bytes;

const fn osq(name: &'static str, sql_type: SqlType) -> Column {
    Column {
        name,
        sql_type,
        origin: ColumnOrigin::Osquery,
    }
}
const fn hidden(name: &'static str, sql_type: SqlType) -> Column {
    Column {
        name,
        sql_type,
        origin: ColumnOrigin::OsqueryHidden,
    }
}
const fn additional(name: &'static str, sql_type: SqlType) -> Column {
    Column {
        name,
        sql_type,
        origin: ColumnOrigin::OsqueryAdditional,
    }
}
const fn extra(name: &'static str, sql_type: SqlType) -> Column {
    Column {
        name,
        sql_type,
        origin: ColumnOrigin::Sluice,
    }
}

const fn define(
    name: &'static str,
    description: &'static str,
    columns: &'static [Column],
) -> TableDef {
    TableDef {
        name,
        description,
        columns,
        schema: OnceLock::new(),
    }
}

/// The name of the column every table carries with the event time in UTC
/// nanoseconds.
pub const TIME_NS: &str = "time_ns";

/// The suffix of the sidecar columns that keep text which is not valid UTF-8.
///
/// Paths are bytes on every OS, but Arrow's `Utf8` must hold valid UTF-8. When
/// a value is valid UTF-8 it is stored in its text column and the sidecar is
/// NULL. When it is not, the text column holds a readable rendering (each
/// invalid byte replaced by U+FFFD) and the sidecar `<column>_bytes` holds the
/// exact original bytes, so nothing is lost and ordinary queries stay simple.
pub const RAW_BYTES_SUFFIX: &str = "_bytes";

/// `es_process_events`: EndpointSecurity exec, fork and exit.
pub static ES_PROCESS_EVENTS: TableDef = define(
    "es_process_events",
    "EndpointSecurity process events: exec, fork and exit",
    &[
        osq("version", INTEGER),
        osq("seq_num", BIGINT),
        osq("global_seq_num", BIGINT),
        osq("pid", BIGINT),
        osq("pidversion", BIGINT),
        osq("path", TEXT),
        osq("parent", BIGINT),
        osq("original_parent", BIGINT),
        osq("session_id", BIGINT),
        osq("responsible_pid", BIGINT),
        osq("responsible_pidversion", BIGINT),
        osq("parent_pidversion", BIGINT),
        osq("cmdline", TEXT),
        osq("cmdline_count", BIGINT),
        osq("env", TEXT),
        osq("env_count", BIGINT),
        osq("cwd", TEXT),
        osq("uid", BIGINT),
        osq("euid", BIGINT),
        osq("gid", BIGINT),
        osq("egid", BIGINT),
        osq("username", TEXT),
        osq("signing_id", TEXT),
        osq("team_id", TEXT),
        osq("cdhash", TEXT),
        osq("platform_binary", INTEGER),
        osq("exit_code", INTEGER),
        osq("child_pid", BIGINT),
        additional("time", BIGINT),
        osq("event_type", TEXT),
        hidden("eid", TEXT),
        osq("codesigning_flags", TEXT),
        extra(TIME_NS, TIMESTAMP_NS),
        extra("path_bytes", BYTES),
        extra("cmdline_bytes", BYTES),
        extra("env_bytes", BYTES),
        extra("cwd_bytes", BYTES),
    ],
);

/// `es_process_file_events`: EndpointSecurity file events (create, rename,
/// unlink, write, truncate, link, clone, close, exchangedata, copyfile, open).
pub static ES_PROCESS_FILE_EVENTS: TableDef = define(
    "es_process_file_events",
    "EndpointSecurity file events: create, rename, unlink, write, truncate, link, clone, close, exchangedata, copyfile, open",
    &[
        osq("version", INTEGER),
        osq("seq_num", BIGINT),
        osq("global_seq_num", BIGINT),
        osq("pid", BIGINT),
        osq("parent", BIGINT),
        osq("path", TEXT),
        osq("filename", TEXT),
        osq("dest_filename", TEXT),
        osq("event_type", TEXT),
        additional("time", BIGINT),
        hidden("eid", TEXT),
        extra(TIME_NS, TIMESTAMP_NS),
        extra("path_bytes", BYTES),
        extra("filename_bytes", BYTES),
        extra("dest_filename_bytes", BYTES),
    ],
);

/// `process_events`: OpenBSM process records (execve, posix_spawn, fork, exit).
pub static PROCESS_EVENTS: TableDef = define(
    "process_events",
    "OpenBSM process events: execve, posix_spawn, fork, vfork and exit",
    &[
        osq("pid", BIGINT),
        osq("path", TEXT),
        osq("mode", TEXT),
        osq("cmdline", TEXT),
        hidden("cmdline_size", BIGINT),
        hidden("env", TEXT),
        hidden("env_count", BIGINT),
        hidden("env_size", BIGINT),
        osq("cwd", TEXT),
        osq("auid", BIGINT),
        osq("uid", BIGINT),
        osq("euid", BIGINT),
        osq("gid", BIGINT),
        osq("egid", BIGINT),
        osq("owner_uid", BIGINT),
        osq("owner_gid", BIGINT),
        osq("atime", BIGINT),
        osq("mtime", BIGINT),
        osq("ctime", BIGINT),
        osq("btime", BIGINT),
        hidden("overflows", TEXT),
        osq("parent", BIGINT),
        additional("time", BIGINT),
        osq("uptime", BIGINT),
        hidden("eid", TEXT),
        osq("status", BIGINT),
        osq("fsuid", BIGINT),
        osq("suid", BIGINT),
        osq("fsgid", BIGINT),
        osq("sgid", BIGINT),
        osq("syscall", TEXT),
        extra(TIME_NS, TIMESTAMP_NS),
        extra("path_bytes", BYTES),
        extra("cmdline_bytes", BYTES),
        extra("env_bytes", BYTES),
        extra("cwd_bytes", BYTES),
    ],
);

/// `process_file_events`: OpenBSM file-operation records.
pub static PROCESS_FILE_EVENTS: TableDef = define(
    "process_file_events",
    "OpenBSM file-operation events: open, rename, unlink and the like",
    &[
        osq("operation", TEXT),
        osq("pid", BIGINT),
        osq("ppid", BIGINT),
        additional("time", BIGINT),
        osq("executable", TEXT),
        osq("partial", TEXT),
        osq("cwd", TEXT),
        osq("path", TEXT),
        osq("dest_path", TEXT),
        osq("uid", TEXT),
        osq("gid", TEXT),
        osq("auid", TEXT),
        osq("euid", TEXT),
        osq("egid", TEXT),
        osq("fsuid", TEXT),
        osq("fsgid", TEXT),
        osq("suid", TEXT),
        osq("sgid", TEXT),
        osq("uptime", BIGINT),
        hidden("eid", TEXT),
        extra(TIME_NS, TIMESTAMP_NS),
        // How a file was opened (`O_RDWR|O_CREAT`), for open events: BSM
        // records it in the event number, and osquery has no column for it.
        extra("flags", TEXT),
        extra("path_bytes", BYTES),
        extra("dest_path_bytes", BYTES),
    ],
);

/// `socket_events`: OpenBSM connect, bind and accept records.
pub static SOCKET_EVENTS: TableDef = define(
    "socket_events",
    "OpenBSM socket events: connect, bind and accept",
    &[
        osq("action", TEXT),
        osq("pid", BIGINT),
        osq("path", TEXT),
        osq("fd", TEXT),
        osq("auid", BIGINT),
        osq("family", INTEGER),
        hidden("protocol", INTEGER),
        osq("local_address", TEXT),
        osq("remote_address", TEXT),
        osq("local_port", INTEGER),
        osq("remote_port", INTEGER),
        hidden("socket", TEXT),
        additional("time", BIGINT),
        osq("uptime", BIGINT),
        hidden("eid", TEXT),
        hidden("success", INTEGER),
        osq("status", TEXT),
        extra(TIME_NS, TIMESTAMP_NS),
        extra("socket_bytes", BYTES),
    ],
);

/// `user_events`: OpenBSM login, logout, su, sudo, ssh and authentication.
pub static USER_EVENTS: TableDef = define(
    "user_events",
    "OpenBSM user events: login, logout, su, sudo, ssh and authentication",
    &[
        osq("uid", BIGINT),
        osq("auid", BIGINT),
        osq("pid", BIGINT),
        osq("message", TEXT),
        osq("type", INTEGER),
        osq("path", TEXT),
        osq("address", TEXT),
        osq("terminal", TEXT),
        additional("time", BIGINT),
        osq("uptime", BIGINT),
        hidden("eid", TEXT),
        extra(TIME_NS, TIMESTAMP_NS),
        extra("message_bytes", BYTES),
        extra("path_bytes", BYTES),
    ],
);

/// `file_events`: file integrity events from the notify crate.
pub static FILE_EVENTS: TableDef = define(
    "file_events",
    "File integrity events (inotify, FSEvents, kqueue) for the configured file_paths",
    &[
        osq("target_path", TEXT),
        osq("category", TEXT),
        osq("action", TEXT),
        osq("transaction_id", BIGINT),
        osq("inode", BIGINT),
        osq("uid", BIGINT),
        osq("gid", BIGINT),
        osq("mode", TEXT),
        osq("size", BIGINT),
        osq("atime", BIGINT),
        osq("mtime", BIGINT),
        osq("ctime", BIGINT),
        osq("md5", TEXT),
        osq("sha1", TEXT),
        osq("sha256", TEXT),
        osq("hashed", INTEGER),
        additional("time", BIGINT),
        hidden("eid", TEXT),
        extra(TIME_NS, TIMESTAMP_NS),
    ],
);

/// `osquery_events`: one row per publisher and subscriber, with its counters:
/// osquery's columns, then the time the counters were taken and one column
/// per drop reason.
pub static OSQUERY_EVENTS: TableDef = define(
    "osquery_events",
    "One row per event publisher and subscriber, with live counters",
    &[
        osq("name", TEXT),
        osq("publisher", TEXT),
        osq("type", TEXT),
        osq("subscriptions", INTEGER),
        osq("events", INTEGER),
        osq("refreshes", INTEGER),
        osq("active", INTEGER),
        extra(TIME_NS, TIMESTAMP_NS),
        // When the counters were taken, and what was dropped, by reason.
        extra("time", BIGINT),
        extra("muted", BIGINT),
        extra("rate_limited", BIGINT),
        extra("sampled", BIGINT),
        extra("kernel", BIGINT),
        extra("backpressure", BIGINT),
        extra("malformed", BIGINT),
        extra("unmapped", BIGINT),
    ],
);

/// Every table sluice serves, in a stable order.
pub static TABLES: [&TableDef; 8] = [
    &ES_PROCESS_EVENTS,
    &ES_PROCESS_FILE_EVENTS,
    &PROCESS_EVENTS,
    &PROCESS_FILE_EVENTS,
    &SOCKET_EVENTS,
    &USER_EVENTS,
    &FILE_EVENTS,
    &OSQUERY_EVENTS,
];

/// Looks a table up by name.
pub fn table(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().copied().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every table against osquery's column list in the shared test
    /// data, column by column: name, order, type and hidden/additional flag.
    #[test]
    fn every_table_matches_osquery_column_by_column() {
        let tsv_path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/osquery_tables.tsv"
        );
        let tsv =
            std::fs::read_to_string(tsv_path).expect("read ../shared/data/osquery_tables.tsv");
        // (column, osquery type, options) per table, in file order.
        type OsqueryColumns = Vec<(String, String, String)>;
        let mut expected: Vec<(String, OsqueryColumns)> = Vec::new();
        for (line_no, line) in tsv.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            assert!(fields.len() >= 3, "line {}: too few fields", line_no + 1);
            let (table, column, ty) = (fields[0], fields[1], fields[2]);
            let options = fields.get(3).copied().unwrap_or("").to_string();
            match expected.last_mut() {
                Some((name, cols)) if name == table => {
                    cols.push((column.into(), ty.into(), options))
                }
                _ => expected.push((table.into(), vec![(column.into(), ty.into(), options)])),
            }
        }
        assert_eq!(expected.len(), TABLES.len(), "number of tables");
        for (name, cols) in &expected {
            let def = table(name).unwrap_or_else(|| panic!("table {name} is not defined"));
            let schema = def.schema();
            for (i, (column, ty, options)) in cols.iter().enumerate() {
                let field = schema.field(i);
                assert_eq!(field.name(), column, "{name}: column {i}");
                let want = match ty.as_str() {
                    "INTEGER" => DataType::Int32,
                    "BIGINT" => DataType::Int64,
                    "TEXT" => DataType::Utf8,
                    "DOUBLE" => DataType::Float64,
                    other => panic!("{name}.{column}: unknown osquery type {other}"),
                };
                assert_eq!(field.data_type(), &want, "{name}.{column}: type");
                let origin = match options.as_str() {
                    "hidden" => ColumnOrigin::OsqueryHidden,
                    "additional" => ColumnOrigin::OsqueryAdditional,
                    _ => ColumnOrigin::Osquery,
                };
                assert_eq!(def.columns[i].origin, origin, "{name}.{column}: options");
            }
            // Everything after osquery's columns is sluice's, and time_ns is among it.
            let extras = &def.columns[cols.len()..];
            assert!(
                extras.iter().all(|c| c.origin == ColumnOrigin::Sluice),
                "{name}: extras after osquery's"
            );
            let time_ns = schema.field_with_name(TIME_NS).expect("time_ns");
            assert_eq!(
                time_ns.data_type(),
                &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
            );
        }
    }

    #[test]
    fn column_names_are_unique_and_sidecars_name_a_text_column() {
        for def in TABLES {
            let mut names: Vec<_> = def.columns.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(
                names.len(),
                def.columns.len(),
                "{}: duplicate column",
                def.name
            );
            for c in def.columns.iter().filter(|c| c.sql_type == SqlType::Bytes) {
                let base = c
                    .name
                    .strip_suffix(RAW_BYTES_SUFFIX)
                    .expect("sidecar suffix");
                let idx = def.column_index(base).expect("sidecar names a column");
                assert_eq!(def.columns[idx].sql_type, SqlType::Text);
            }
        }
    }
}
