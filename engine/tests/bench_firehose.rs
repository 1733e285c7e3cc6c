//! `sluice bench firehose`, the real binary, at a tiny size: the report it
//! writes must add up (every generated event is stored or counted as a
//! drop), the files must exist, and the stored rows must be queryable.

mod common;
#[path = "../../sinks/tests/common/s3_server.rs"]
mod s3_server;

use serde_json::Value;

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Checks what every run must satisfy, and returns its mode and source.
fn check_run(run: &Value) -> (String, String) {
    let generated = u(run, "events_generated");
    let stored = u(run, "events_stored");
    let dropped =
        u(run, "dropped_gates") + u(run, "dropped_backpressure") + u(run, "dropped_storage");
    assert!(generated > 0, "{run}");
    assert_eq!(stored + dropped, generated, "events do not add up: {run}");
    assert_eq!(
        run["rows_queryable"].as_u64(),
        Some(stored),
        "stored rows are not all queryable"
    );
    let tables = run["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 2);
    let by_table: u64 = tables.iter().map(|t| u(t, "rows")).sum();
    assert_eq!(by_table, stored);
    for t in tables {
        if u(t, "rows") > 0 {
            assert!(u(t, "bytes") > 0 && u(t, "files") > 0, "{t}");
        }
    }
    assert!(f(run, "bytes_per_event") > 0.0);
    assert!(f(run, "elapsed_secs") > 0.0);
    assert!(f(run, "events_per_sec") > 0.0);
    assert!(f(run, "cpu_secs") > 0.0);
    assert!(u(run, "peak_rss_bytes") > 0);
    assert!(u(&run["visible_ms"], "count") > 0);
    let queries = run["queries"].as_array().expect("queries");
    assert_eq!(queries.len(), 6);
    assert!(queries.iter().all(|q| f(q, "ms") >= 0.0));
    assert!(!run["samples"].as_array().expect("samples").is_empty());
    (
        run["mode"].as_str().unwrap().to_string(),
        run["source"].as_str().unwrap().to_string(),
    )
}

#[test]
fn tiny_run_writes_a_consistent_report_table_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let svg = dir.path().join("chart.svg");
    let data = dir.path().join("data");
    let output = common::run(
        &[
            "bench",
            "firehose",
            "--events",
            "20000",
            "--json-events",
            "4000",
            "--rate-multiples",
            "1",
            "--duration-secs",
            "1",
            "--batch-rows",
            "4096",
            // The max run's final roll (about 19,000 rows) is encoded on
            // three threads.
            "--encoding-threads",
            "3",
            "--no-baseline",
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
        None,
    );
    let stdout = common::stdout_of(&output);
    assert!(stdout.contains("stored/s"), "{stdout}");
    assert!(stdout.contains("es_process_file_events"), "{stdout}");

    assert!(stdout.contains("on 3 encoding threads"), "{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(u(&report["storage"], "encoding_threads"), 3);
    let runs = report["runs"].as_array().expect("runs");
    let kinds: Vec<(String, String)> = runs.iter().map(check_run).collect();
    assert_eq!(
        kinds,
        [
            ("max".into(), "rows".into()),
            ("fixed".into(), "rows".into()),
            ("max".into(), "json".into()),
            ("fixed".into(), "json".into())
        ]
    );
    // Keep-everything gates and a blocking queue: a max run stores it all.
    assert_eq!(u(&runs[0], "events_stored"), 20_000);
    assert_eq!(u(&runs[2], "events_stored"), 4_000);
    // A fixed run is paced: one second at the seed rate.
    let fixed = &runs[1];
    assert!((f(fixed, "offered_rate") - 1e6 / 60.0).abs() < 1.0);
    assert_eq!(u(fixed, "events_generated"), 16_666);
    assert!(f(fixed, "elapsed_secs") >= 0.9, "{fixed}");
    // The data dir was cleaned (no --keep); the chart is an SVG with lines.
    assert!(
        std::fs::read_dir(&data).map_or(0, |d| d.count()) == 0,
        "runs left data behind"
    );
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert_eq!(chart.matches("<polyline").count(), 2 * runs.len());
}

#[test]
fn default_gates_drops_are_counted_and_the_replay_file_ingests() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = common::run(
        &[
            "bench",
            "firehose",
            "--source",
            "json",
            "--events",
            "8000",
            "--json-events",
            "3000",
            "--rate-multiples",
            "0",
            "--default-gates",
            "--no-baseline",
            "--json",
            json.to_str().unwrap(),
        ],
        None,
    );
    common::stdout_of(&output);
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    check_run(&runs[0]);
    // Open events are off by default, and they are most of the stream.
    assert!(u(&runs[0], "dropped_gates") > 3000 / 3, "{}", runs[0]);

    // --write-jsonl writes what the JSON runs decode; `sluice ingest` reads it.
    let lines = dir.path().join("firehose.jsonl");
    let out = common::run(
        &[
            "bench",
            "firehose",
            "--events",
            "1500",
            "--write-jsonl",
            lines.to_str().unwrap(),
        ],
        None,
    );
    assert!(common::stdout_of(&out).contains("wrote 1500 eslogger lines"));
    let data = dir.path().join("ingested");
    let out = common::run(
        &[
            "ingest",
            "--data-dir",
            data.to_str().unwrap(),
            "--open-events",
            "--no-default-mutes",
            lines.to_str().unwrap(),
        ],
        None,
    );
    common::stdout_of(&out);
    let out = common::run(
        &[
            "query",
            "--data-dir",
            data.to_str().unwrap(),
            "--format",
            "csv",
            "SELECT (SELECT count(*) FROM es_process_events) + \
             (SELECT count(*) FROM es_process_file_events) AS n",
        ],
        None,
    );
    assert!(common::stdout_of(&out).contains("1500"));
}

#[test]
fn history_hours_spread_a_max_run_over_hour_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::run(
        &[
            "bench",
            "firehose",
            "--source",
            "rows",
            "--events",
            "20000",
            "--rate-multiples",
            "0",
            "--history-hours",
            "5",
            "--keep",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--no-baseline",
        ],
        None,
    );
    common::stdout_of(&output);
    let data = dir.path().join("sluice-0-rows");
    let query = |sql: &str| -> Value {
        let out = common::run(
            &[
                "query",
                "--data-dir",
                data.to_str().unwrap(),
                "--format",
                "json",
                sql,
            ],
            None,
        );
        serde_json::from_slice::<Value>(common::stdout_of(&out).as_bytes()).unwrap()[0].clone()
    };
    let span = query(
        "SELECT count(*) AS n, max(time) - min(time) AS span, \
         count(DISTINCT time / 3600) AS hours FROM es_process_file_events",
    );
    // Five hours of history, ending at the run: five or six clock hours.
    assert!(u(&span, "span") > 4 * 3600 + 3000, "{span}");
    assert!(u(&span, "hours") >= 5, "{span}");
    let hour_dirs: usize = std::fs::read_dir(data.join("es_process_file_events"))
        .unwrap()
        .map(|date| std::fs::read_dir(date.unwrap().path()).unwrap().count())
        .sum();
    assert!(hour_dirs >= 5, "{hour_dirs} hour directories");
    // A one-hour window holds about a fifth of the rows.
    let window = query(
        "SELECT count(*) AS n FROM es_process_file_events \
         WHERE time >= (SELECT min(time) FROM es_process_file_events) + 3600 \
         AND time < (SELECT min(time) FROM es_process_file_events) + 7200",
    );
    let (all, hour) = (u(&span, "n"), u(&window, "n"));
    assert!(hour > all / 8 && hour < all / 3, "{hour} of {all}");
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["bench", "firehose", "--mix", "opn=1"][..],
        &["bench", "firehose", "--batch-rows", "0"],
        &["bench", "firehose", "--encoding-threads", "0"],
        &["bench", "firehose", "--duration-secs", "0"],
        &["bench", "firehose", "--history-hours", "0"],
        &[
            "bench",
            "firehose",
            "--events",
            "1000",
            "--upload",
            "ftp://host/x",
        ],
    ] {
        let out = common::run(args, None);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Every local file the run published, by its path under `dir`, with its
/// bytes.
fn parquet_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                found.push((relative, std::fs::read(&path).expect("read file")));
            }
        }
    }
    found.sort();
    found
}

/// `--upload s3://…` copies every file of a run to a real S3-compatible
/// server on 127.0.0.1 (credentials and endpoint from the environment, as
/// for the daemon), byte for byte under `<prefix>/<run>/`, and the report
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_puts_every_file_of_a_run_in_the_store() {
    use s3_server::{S3TestServer, SECRET_KEY};

    let server_root = tempfile::tempdir().expect("server root");
    let server = S3TestServer::start(server_root.path(), "lake").await;
    let data = tempfile::tempdir().expect("data dir");
    let report = data.path().join("report.json");
    let data_dir = data.path().join("runs");
    let args: Vec<String> = [
        "bench",
        "firehose",
        "--source",
        "rows",
        "--events",
        "40000",
        "--rate-multiples",
        "0",
        "--no-baseline",
        "--keep",
        "--roll-age-secs",
        "0.2",
        "--upload",
        "s3://lake/bench",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--json".to_string(),
        report.display().to_string(),
    ])
    .collect();
    let client_env = server.client_env();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .envs(client_env)
            .output()
            .expect("run sluice")
    })
    .await
    .expect("bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("copied to the object store (--upload):"),
        "{stdout}"
    );
    assert!(!stdout.contains("SECRET") && !stdout.contains(SECRET_KEY));

    let local = parquet_files(&data_dir.join("sluice-0-rows"));
    assert!(local.len() >= 2, "two tables at least: {local:?}");
    let stored = parquet_files(&server_root.path().join("lake/bench/sluice-0-rows"));
    assert_eq!(
        stored, local,
        "the store holds the run's files, byte for byte"
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let run = &report["runs"][0];
    check_run(run);
    let upload = &run["upload"];
    assert_eq!(u(upload, "files"), local.len() as u64, "{upload}");
    let bytes: usize = local.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(u(upload, "bytes"), bytes as u64);
    assert_eq!(upload["url"], "s3://lake/bench/sluice-0-rows");
    assert!(f(upload, "secs_after_run") >= 0.0);
    drop(server);
}
