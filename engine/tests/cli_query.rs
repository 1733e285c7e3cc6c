//! Runs the real `sluice` binary against a data dir holding a Parquet file
//! written the way the persister writes them: the table's exact schema, under
//! `<table>/date=YYYY-MM-DD/hour=HH/`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray, new_null_array,
};

/// Two exec events, 2024-01-01 00:00:01 and 00:00:02 UTC.
fn write_fixture(dir: &Path) {
    let def = sluice_schemas::table("es_process_events").expect("table");
    let schema = def.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "pid" => Arc::new(Int64Array::from(vec![101, 102])),
                "path" => Arc::new(StringArray::from(vec!["/bin/ls", "/usr/bin/curl"])),
                "cmdline" => Arc::new(StringArray::from(vec![Some("ls -l"), None])),
                "event_type" => Arc::new(StringArray::from(vec!["exec", "exec"])),
                "time" => Arc::new(Int64Array::from(vec![1_704_067_201, 1_704_067_202])),
                "time_ns" => Arc::new(
                    TimestampNanosecondArray::from(vec![
                        1_704_067_201_000_000_000,
                        1_704_067_202_500_000_000,
                    ])
                    .with_timezone("UTC"),
                ),
                _ => new_null_array(f.data_type(), 2),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
    let hour = dir.join("es_process_events/date=2024-01-01/hour=00");
    std::fs::create_dir_all(&hour).expect("mkdir");
    let file = std::fs::File::create(hour.join("x.parquet")).expect("create");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    // An unfinished file of the persister's must stay invisible.
    std::fs::write(hour.join("y.parquet.tmp"), b"not parquet yet").expect("tmp");
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path());
    dir
}

fn sluice(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let (subcommand, rest) = args.split_first().expect("a subcommand");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg(subcommand)
        .arg("--data-dir")
        .arg(data_dir)
        .args(rest)
        .env_remove("RUST_LOG")
        .env_remove("SLUICE_DATA_DIR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for sluice")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf8 stderr")
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        stderr(output)
    );
}

#[test]
fn query_json_gives_exact_rows() {
    let dir = fixture();
    let out = sluice(
        dir.path(),
        &[
            "query",
            "--format",
            "jsonl",
            "SELECT pid, path, cmdline, time, time_ns FROM es_process_events ORDER BY pid",
        ],
        None,
    );
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        "{\"pid\":101,\"path\":\"/bin/ls\",\"cmdline\":\"ls -l\",\"time\":1704067201,\"time_ns\":\"2024-01-01T00:00:01Z\"}\n\
         {\"pid\":102,\"path\":\"/usr/bin/curl\",\"cmdline\":null,\"time\":1704067202,\"time_ns\":\"2024-01-01T00:00:02.500Z\"}\n"
    );
}

#[test]
fn query_json_filters_on_a_time_range() {
    let dir = fixture();
    let sql = "SELECT pid FROM es_process_events WHERE time_ns >= TIMESTAMP '2024-01-01T00:00:02Z'";
    let out = sluice(dir.path(), &["query", "--format", "jsonl", sql], None);
    assert_success(&out);
    assert_eq!(stdout(&out), "{\"pid\":102}\n");
    let out = sluice(dir.path(), &["query", "--format", "json", sql], None);
    assert_success(&out);
    assert_eq!(stdout(&out), "[{\"pid\":102}]\n");
}

#[test]
fn query_csv_has_a_header() {
    let dir = fixture();
    let sql = "SELECT pid, path, event_type FROM es_process_events ORDER BY pid";
    let out = sluice(dir.path(), &["query", "--format", "csv", sql], None);
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        "pid,path,event_type\n101,/bin/ls,exec\n102,/usr/bin/curl,exec\n"
    );
}

#[test]
fn query_prints_a_table_by_default() {
    let dir = fixture();
    let out = sluice(
        dir.path(),
        &["query", "SELECT count(*) AS n FROM es_process_events"],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "+---+\n| n |\n+---+\n| 2 |\n+---+\n");
}

#[test]
fn empty_table_returns_zero_rows_without_error() {
    let dir = fixture();
    let out = sluice(
        dir.path(),
        &["query", "--format", "jsonl", "SELECT * FROM socket_events"],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");
    let out = sluice(
        dir.path(),
        &[
            "query",
            "--format",
            "csv",
            "SELECT action, pid FROM socket_events",
        ],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "action,pid\n");
    let out = sluice(
        dir.path(),
        &[
            "query",
            "--format",
            "jsonl",
            "SELECT count(*) AS n FROM file_events",
        ],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "{\"n\":0}\n");
    assert!(
        !dir.path().join("socket_events").exists(),
        "querying created a directory"
    );
}

#[test]
fn ddl_and_dml_fail_with_a_message_and_a_non_zero_exit() {
    let dir = fixture();
    let target = dir.path().join("copy.csv");
    let copy = format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display());
    for sql in [
        "CREATE TABLE t (a INT)",
        "INSERT INTO es_process_events SELECT * FROM es_process_events",
        copy.as_str(),
    ] {
        let out = sluice(dir.path(), &["query", sql], None);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        let message = stderr(&out);
        assert!(
            message.contains("refused: sluice's SQL is read-only"),
            "{sql}: {message}"
        );
        assert_eq!(stdout(&out), "", "{sql}");
    }
    assert!(!target.exists());
}

#[test]
fn unknown_table_error_lists_the_tables() {
    let dir = fixture();
    let out = sluice(dir.path(), &["query", "SELECT * FROM no_such_table"], None);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("unknown table 'no_such_table'"),
        "{message}"
    );
    for def in sluice_schemas::TABLES {
        assert!(message.contains(def.name), "{message}");
    }
}

#[test]
fn missing_data_dir_means_empty_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing-yet");
    let out = sluice(
        &missing,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM es_process_events",
        ],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "n\n0\n");
    assert!(!missing.exists(), "querying created the data dir");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = fixture();
    let out = sluice(dir.path(), &["query", "--format", "xml", "SELECT 1"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn piped_shell_prints_tables_schema_and_results() {
    let dir = fixture();
    let out = sluice(
        dir.path(),
        &["shell"],
        Some(".tables\n.schema es_process_events\nSELECT 1;\n.quit\n"),
    );
    assert_success(&out);
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let tables: Vec<String> = sluice_schemas::TABLES
        .iter()
        .map(|t| format!("  => {}", t.name))
        .chain(
            sluice::host::HOST_TABLES
                .iter()
                .map(|t| format!("  => {} {}", t.name, sluice::host::HOST_TABLE_LABEL)),
        )
        .collect();
    assert_eq!(lines[..tables.len()], tables[..], "{text}");
    let schema = lines[tables.len()];
    assert!(
        schema.starts_with("CREATE TABLE es_process_events(`version` INTEGER, `seq_num` BIGINT,"),
        "{schema}"
    );
    assert!(schema.ends_with("`cwd_bytes` BLOB);"), "{schema}");
    assert_eq!(
        lines[tables.len() + 1..],
        [
            "+----------+",
            "| Int64(1) |",
            "+----------+",
            "| 1        |",
            "+----------+"
        ],
        "{text}"
    );
}

#[test]
fn piped_shell_queries_data_and_fails_the_script_on_errors() {
    let dir = fixture();
    let input = ".mode csv\nSELECT pid\n  FROM es_process_events\n  ORDER BY pid;\nSELECT * FROM nope;\nSELECT 3 AS three";
    let out = sluice(dir.path(), &["shell"], Some(input));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "pid\n101\n102\nthree\n3\n");
    assert!(
        stderr(&out).contains("Error: unknown table 'nope'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn parquet_out_file_is_private_complete_and_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fixture();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let target = out_dir.path().join("result.parquet");
    let target_arg = target.to_str().expect("utf8");
    let sql = "SELECT pid, path FROM es_process_events ORDER BY pid";
    let out = sluice(
        dir.path(),
        &["query", "--format", "parquet", "--out", target_arg, sql],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "");
    let mode = std::fs::metadata(&target)
        .expect("out file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "results are event history");
    let file = std::fs::File::open(&target).expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024)
        .expect("a Parquet file");
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
    let pids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("pid is Int64")
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(pids, [101, 102]);

    // A failing query leaves neither the file nor a temporary beside it.
    let failed = out_dir.path().join("failed.csv");
    let out = sluice(
        dir.path(),
        &[
            "query",
            "--format",
            "csv",
            "--out",
            failed.to_str().expect("utf8"),
            "SELECT no_such_column FROM es_process_events",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no_such_column"), "{}", stderr(&out));
    let names: Vec<_> = std::fs::read_dir(out_dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["result.parquet"]);

    // One Parquet file holds one result.
    let out = sluice(
        dir.path(),
        &[
            "query",
            "--format",
            "parquet",
            "--out",
            target_arg,
            "SELECT 1; SELECT 2",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("writes one result"),
        "{}",
        stderr(&out)
    );
}
