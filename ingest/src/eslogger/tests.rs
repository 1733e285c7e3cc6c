//! Decoder tests against the fixture in `testdata/eslogger/sample.jsonl`
//! (made by `make_sample.py` beside it) and hand-written edge cases.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};

use super::*;

const SAMPLE: &[u8] = include_bytes!("../../../testdata/eslogger/sample.jsonl");

fn decode_all(input: &[u8]) -> (EsloggerDecoder, Option<RecordBatch>, Option<RecordBatch>) {
    let mut decoder = EsloggerDecoder::new();
    for (i, line) in input.split(|&b| b == b'\n').enumerate() {
        decoder.decode_line(line, i as u64 + 1);
    }
    let mut process = None;
    let mut file = None;
    for (table, batch) in decoder.take_batches().unwrap() {
        match table.name {
            "es_process_events" => process = Some(batch),
            "es_process_file_events" => file = Some(batch),
            other => panic!("unexpected table {other}"),
        }
    }
    (decoder, process, file)
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap().as_string::<i32>();
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
        .collect()
}

fn int64s(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    let array = batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Int64Type>();
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i)))
        .collect()
}

#[test]
fn sample_rows_land_in_the_right_tables() {
    let (decoder, process, file) = decode_all(SAMPLE);
    let (process, file) = (process.unwrap(), file.unwrap());
    assert_eq!(
        strings(&process, "event_type"),
        ["exec", "fork", "exit", "exec"].map(|s| Some(s.to_string()))
    );
    let file_types: Vec<_> = strings(&file, "event_type").into_iter().flatten().collect();
    assert_eq!(
        file_types,
        [
            "open",
            "close",
            "create",
            "create",
            "rename",
            "rename",
            "unlink",
            "write",
            "truncate",
            "link",
            "clone",
            "exchangedata",
            "copyfile",
            "open"
        ]
    );
    let stats = decoder.stats();
    assert_eq!(stats.skipped(SkipReason::Truncated), 1);
    assert_eq!(stats.skipped(SkipReason::Malformed), 1);
    assert_eq!(stats.skipped(SkipReason::UnmappedEventType), 1);
    assert_eq!(stats.skipped(SkipReason::MissingField), 1);
    assert_eq!(stats.unmapped_event_types(), &[("mmap".to_string(), 1)]);
    let lines: Vec<u64> = stats.problems().iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![18, 19, 20, 21]);
    assert!(
        stats.problems()[0].byte.is_some(),
        "a cut line says where it ends"
    );
}

#[test]
fn exec_is_described_by_its_target_with_osquery_cmdline() {
    let (_, process, _) = decode_all(SAMPLE);
    let process = process.unwrap();
    assert_eq!(strings(&process, "path")[0].as_deref(), Some("/bin/ls"));
    assert_eq!(
        strings(&process, "cmdline")[0].as_deref(),
        Some(r#"ls -la "My Documents""#)
    );
    assert_eq!(int64s(&process, "cmdline_count")[0], Some(3));
    assert_eq!(
        strings(&process, "env")[0].as_deref(),
        Some("PATH=/usr/bin:/bin HOME=/Users/alice")
    );
    assert_eq!(int64s(&process, "env_count")[0], Some(2));
    assert_eq!(strings(&process, "cwd")[0].as_deref(), Some("/Users/alice"));
    assert_eq!(
        strings(&process, "signing_id")[0].as_deref(),
        Some("com.apple.ls")
    );
    assert_eq!(
        strings(&process, "team_id")[0].as_deref(),
        Some(""),
        "null team_id is empty, as in osquery"
    );
    assert_eq!(
        strings(&process, "codesigning_flags")[0].as_deref(),
        Some("NOT_RUNTIME")
    );
    assert_eq!(
        strings(&process, "cdhash")[0].as_deref(),
        Some("0CF06B1B4D8B6E1D2F4B7F0E9D4A3C2B1A0F9E8D")
    );
    assert_eq!(int64s(&process, "pid")[0], Some(500));
    assert_eq!(int64s(&process, "pidversion")[0], Some(1500));
    assert_eq!(int64s(&process, "parent")[0], Some(1));
    assert_eq!(int64s(&process, "parent_pidversion")[0], Some(1001));
    assert_eq!(int64s(&process, "uid")[0], Some(501));
    assert_eq!(int64s(&process, "time")[0], Some(1_714_564_800));
    assert_eq!(
        strings(&process, "username")[0],
        None,
        "no user lookup on a replay"
    );
    let platform = process
        .column_by_name("platform_binary")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(platform.value(0), 1);
    // The version-1 exec has no sequence numbers and no cwd, and quotes an
    // argument with double quotes in it.
    assert_eq!(int64s(&process, "seq_num")[3], None);
    assert_eq!(strings(&process, "cwd")[3], None);
    assert_eq!(
        strings(&process, "cmdline")[3].as_deref(),
        Some(r#"python3 -c "print(\"hi\")""#)
    );
    assert_eq!(strings(&process, "env")[3].as_deref(), Some(""));
}

#[test]
fn fork_and_exit_read_both_audit_token_shapes() {
    let (_, process, _) = decode_all(SAMPLE);
    let process = process.unwrap();
    // Fork (version 10, array tokens): the forking process and the child pid.
    assert_eq!(int64s(&process, "pid")[1], Some(500));
    assert_eq!(int64s(&process, "child_pid")[1], Some(501));
    assert_eq!(int64s(&process, "uid")[1], Some(501));
    assert_eq!(int64s(&process, "gid")[1], Some(20));
    assert_eq!(int64s(&process, "pidversion")[1], Some(1500));
    assert_eq!(strings(&process, "cmdline")[1].as_deref(), Some(""));
    // Exit (version 11): the raw wait status, as osquery stores it.
    let exit_code = process
        .column_by_name("exit_code")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(exit_code.value(2), 256);
    assert!(exit_code.is_null(0) && exit_code.is_null(1));
    assert_eq!(int64s(&process, "child_pid")[2], None);
    let version = process
        .column_by_name("version")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(
        (0..4).map(|i| version.value(i)).collect::<Vec<_>>(),
        vec![9, 10, 11, 1]
    );
}

#[test]
fn file_events_name_target_and_destination() {
    let (_, _, file) = decode_all(SAMPLE);
    let file = file.unwrap();
    let pairs: Vec<(String, String)> = strings(&file, "filename")
        .into_iter()
        .zip(strings(&file, "dest_filename"))
        .map(|(a, b)| (a.unwrap(), b.unwrap()))
        .collect();
    let want = [
        ("/etc/hosts", ""),
        ("/private/var/log/system.log", ""),
        ("/Users/alice/Downloads/report.pdf", ""),
        ("/tmp/existing.txt", ""),
        ("/Users/alice/a.txt", "/Users/alice/Documents/b.txt"),
        ("/tmp/x", "/tmp/y"),
        ("/tmp/y", ""),
        ("/Users/alice/notes.txt", ""),
        ("/Users/alice/notes.txt", ""),
        ("/usr/local/bin/tool", "/usr/local/bin/tool2"),
        ("/Users/alice/big.iso", "/Users/alice/Backup/big-copy.iso"),
        ("/Users/alice/f1", "/Users/alice/f2"),
        ("/Users/alice/src.txt", "/Users/alice/dst/src.txt"),
        ("/tmp/caf\u{fffd}.txt", ""),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(pairs, want);
    assert_eq!(strings(&file, "path")[0].as_deref(), Some("/usr/bin/curl"));
    assert_eq!(int64s(&file, "pid")[0], Some(600));
    assert_eq!(int64s(&file, "parent")[0], Some(500));
}

#[test]
fn a_path_that_is_not_utf8_is_kept_byte_for_byte() {
    let (_, _, file) = decode_all(SAMPLE);
    let file = file.unwrap();
    let raw = file
        .column_by_name("filename_bytes")
        .unwrap()
        .as_binary::<i32>();
    let last = file.num_rows() - 1;
    assert_eq!(raw.value(last), b"/tmp/caf\xe9.txt");
    assert_eq!(
        raw.null_count(),
        file.num_rows() - 1,
        "valid UTF-8 leaves the sidecar NULL"
    );
}

#[test]
fn time_keeps_full_precision_in_time_ns() {
    let (_, process, _) = decode_all(SAMPLE);
    let process = process.unwrap();
    let time_ns = process
        .column_by_name("time_ns")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
    assert_eq!(time_ns.value(0), 1_714_564_800_123_456_789);
}

#[test]
fn every_prefix_of_every_line_is_handled_without_panic() {
    // A cheap, exhaustive cousin of the fuzz target: every truncation point.
    for line in SAMPLE.split(|&b| b == b'\n') {
        let mut decoder = EsloggerDecoder::new();
        for cut in 0..line.len() {
            decoder.decode_line(&line[..cut], 1);
        }
        assert!(decoder.take_batches().is_ok());
    }
}

#[test]
fn messages_with_event_before_event_type_and_mismatched_types() {
    let good = br#"{"event":{"write":{"target":{"path":"\/a"}}},"process":{"executable":{"path":"\/bin\/x"},"audit_token":[0,0,0,0,0,9,0,1]},"time":"2024-01-01T00:00:00Z","event_type":33}"#;
    let mismatched = br#"{"event":{"write":{"target":{"path":"\/a"}}},"process":{"executable":{"path":"\/bin\/x"}},"time":"2024-01-01T00:00:00Z","event_type":10}"#;
    let bad_time =
        br#"{"event":{"write":{"target":{"path":"\/a"}}},"process":{},"time":"yesterday"}"#;
    let short_token = br#"{"event":{"write":{"target":{"path":"\/a"}}},"process":{"audit_token":[1,2,3]},"time":"2024-01-01T00:00:00Z"}"#;
    let mut input = Vec::new();
    for line in [&good[..], mismatched, bad_time, short_token] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let (decoder, _, file) = decode_all(&input);
    assert_eq!(file.unwrap().num_rows(), 1);
    assert_eq!(decoder.stats().skipped(SkipReason::Malformed), 3);
    let details: Vec<&str> = decoder
        .stats()
        .problems()
        .iter()
        .map(|p| p.detail.as_str())
        .collect();
    assert!(
        details[0].contains("event_type 10 does not match"),
        "{details:?}"
    );
    assert!(details[1].contains("RFC 3339"), "{details:?}");
    assert!(details[2].contains("fewer than 8"), "{details:?}");
}
