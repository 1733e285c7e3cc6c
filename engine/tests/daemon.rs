//! `sluice run`, the real binary: a notify source on a temporary directory,
//! real file changes, queried back through the daemon's Flight SQL server;
//! SIGTERM flushes to Parquet; a restart after SIGTERM and after SIGKILL
//! resumes with every row exactly once. Also the eslogger source with a
//! stand-in command, and `sluice status` against the running daemon.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

/// Every wait in this file is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(60);

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/eslogger/sample.jsonl"
);

/// A running `sluice run`, killed if the test fails before stopping it.
struct Daemon {
    child: Option<Child>,
    flight: String,
    lines: Receiver<String>,
    stderr: Vec<String>,
}

impl Daemon {
    /// Starts `sluice run` and waits until it says it is running.
    fn start(config: &Path, data_dir: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("SLUICE_FLIGHT_TOKEN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice run");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        // Keeps draining stderr so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            flight: String::new(),
            lines,
            stderr: Vec::new(),
        };
        let line = daemon.wait_for_line("sluice: serving Flight SQL on grpc://");
        daemon.flight = line["sluice: serving Flight SQL on grpc://".len()..].to_string();
        daemon.wait_for_line("sluice: running");
        daemon
    }

    /// Waits for a stderr line starting with `prefix` and returns it.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        if let Some(line) = self.stderr.iter().find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {prefix:?} on stderr within {TIMEOUT:?}:\n{}",
                        self.log()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("sluice run ended before {prefix:?}:\n{}", self.log())
                }
            }
        }
    }

    fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.stderr.push(line);
        }
        self.stderr.join("\n")
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends `signal` and waits for the exit.
    fn stop_with(mut self, signal: i32) -> (ExitStatus, String) {
        // SAFETY: kill has no memory preconditions.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "sluice run did not exit on signal {signal}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipe closes with the process: collect the rest of the log.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push(line);
        }
        (status, self.stderr.join("\n"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, body).expect("write config");
    path
}

/// A config with one notify source on `watched`, servers on free loopback
/// ports, and rolls by age far away, so that Parquet files appear only when
/// the daemon is stopped.
fn notify_config(dir: &Path, watched: &Path) -> PathBuf {
    write_config(
        dir,
        &format!(
            r#"
[sources]
enabled = ["file_events"]
flush_ms = 100

[sources.file_events]
file_paths = {{ test = ["{}/%%"] }}

[storage]
roll_seconds = 3600

[server]
listen = "127.0.0.1:0"

[metrics]
listen = "127.0.0.1:0"
"#,
            watched.display()
        ),
    )
}

async fn client(addr: &str) -> FlightSqlServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    FlightSqlServiceClient::new(channel)
}

async fn query(addr: &str, sql: &str) -> Vec<RecordBatch> {
    let mut client = client(addr).await;
    let info = client.execute(sql.to_string(), None).await.expect(sql);
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("stream"));
    }
    batches
}

/// `(target_path, rows)` of the CREATED rows, as the daemon serves them.
async fn created_over_flight(addr: &str) -> Vec<(String, i64)> {
    let batches = query(addr, CREATED_SQL).await;
    let mut rows = Vec::new();
    for batch in &batches {
        let paths = batch.column(0).as_string::<i32>();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            rows.push((paths.value(i).to_string(), counts.value(i)));
        }
    }
    rows
}

async fn count_over_flight(addr: &str, sql: &str) -> i64 {
    let batches = query(addr, sql).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

const CREATED_SQL: &str = "SELECT target_path, count(*) AS n FROM file_events \
                           WHERE action = 'CREATED' GROUP BY target_path ORDER BY target_path";

/// The same, read from the Parquet files by `sluice query` after the
/// daemon stopped.
fn created_on_disk(data_dir: &Path) -> Vec<(String, i64)> {
    let out = common::stdout_of(&common::run(
        &[
            "query",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--format",
            "csv",
            CREATED_SQL,
        ],
        None,
    ));
    out.lines()
        .skip(1)
        .map(|line| {
            let (path, n) = line.rsplit_once(',').expect(line);
            (path.to_string(), n.parse().expect(line))
        })
        .collect()
}

fn count_on_disk(data_dir: &Path, sql: &str) -> i64 {
    let out = common::stdout_of(&common::run(
        &[
            "query",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--format",
            "csv",
            sql,
        ],
        None,
    ));
    out.lines()
        .nth(1)
        .expect("a row")
        .parse()
        .expect("a number")
}

/// Polls `check` until it returns true, at most [`TIMEOUT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + TIMEOUT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push(path);
            }
        }
    }
    found
}

fn expected(watched: &Path, names: &[&str]) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = names
        .iter()
        .map(|n| (watched.join(n).display().to_string(), 1))
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_are_served_live_flushed_on_sigterm_and_kept_across_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("watched")).unwrap();
    let watched = tmp.path().join("watched").canonicalize().unwrap();
    let data_dir = tmp.path().join("data");
    let config = notify_config(tmp.path(), &watched);
    let file_events_dir = data_dir.join("file_events");

    // Run 1: changes show up over Flight SQL while they are only in memory.
    let daemon = Daemon::start(&config, &data_dir);
    for name in ["a1.txt", "a2.txt", "a3.txt"] {
        std::fs::write(watched.join(name), b"hello").unwrap();
    }
    // The last change is a directory: exactly one CREATED row, handled
    // after every change before it.
    std::fs::create_dir(watched.join("a-done")).unwrap();
    let want = expected(&watched, &["a-done", "a1.txt", "a2.txt", "a3.txt"]);
    let addr = daemon.flight.clone();
    eventually("run 1's changes over Flight SQL", || async {
        created_over_flight(&addr).await == want
    })
    .await;
    assert!(
        parquet_files(&file_events_dir).is_empty(),
        "rows are served from memory before any roll"
    );
    // The stat columns are filled for a file that still exists.
    let sized = count_over_flight(
        &addr,
        &format!(
            "SELECT count(*) FROM file_events WHERE target_path = '{}' AND size = 5 \
             AND category = 'test' AND inode > 0",
            watched.join("a1.txt").display()
        ),
    )
    .await;
    assert!(sized >= 1, "a1.txt has rows with its stat");

    // `sluice status` reads the running daemon's figures.
    let status = common::stdout_of(&common::run(
        &["status", "--data-dir", data_dir.to_str().unwrap()],
        None,
    ));
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("file_events")),
        "{status}"
    );
    assert!(status.contains("source file_events: up"), "{status}");
    let raw = common::stdout_of(&common::run(
        &["status", "--data-dir", data_dir.to_str().unwrap(), "--raw"],
        None,
    ));
    let total_run1 = count_over_flight(&addr, "SELECT count(*) FROM file_events").await;
    let out_line = raw
        .lines()
        .find(|l| l.starts_with("sluice_events_out_total{table=\"file_events\"}"))
        .expect("events_out in the metrics");
    let stored: i64 = out_line.rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!(
        stored >= total_run1,
        "metrics count every row served: {stored} < {total_run1}"
    );

    // SIGTERM: everything in memory goes to Parquet before the exit.
    let (status, log) = daemon.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status}\n{log}");
    assert!(!parquet_files(&file_events_dir).is_empty(), "{log}");
    assert_eq!(created_on_disk(&data_dir), want, "{log}");
    let total_after_run1 = count_on_disk(&data_dir, "SELECT count(*) FROM file_events");
    assert!(total_after_run1 >= total_run1);
    assert!(
        !data_dir.join(".daemon").exists(),
        "the state file is removed"
    );

    // Run 2: a restart serves the old rows (Parquet) with the new ones
    // (memory), each once; then it crashes (SIGKILL) with rows only in
    // the write-ahead log.
    let daemon = Daemon::start(&config, &data_dir);
    std::fs::write(watched.join("b1.txt"), b"world").unwrap();
    std::fs::create_dir(watched.join("b-done")).unwrap();
    let want = expected(
        &watched,
        &["a-done", "a1.txt", "a2.txt", "a3.txt", "b-done", "b1.txt"],
    );
    let addr = daemon.flight.clone();
    eventually("run 2's changes over Flight SQL", || async {
        created_over_flight(&addr).await == want
    })
    .await;
    let total_run2 = count_over_flight(&addr, "SELECT count(*) FROM file_events").await;
    let (status, log) = daemon.stop_with(libc::SIGKILL);
    assert!(!status.success());
    assert_eq!(
        count_on_disk(&data_dir, "SELECT count(*) FROM file_events"),
        total_after_run1,
        "run 2's rows were never rolled: they are only in the WAL\n{log}"
    );

    // Run 3: the WAL is replayed; nothing is lost and nothing doubled.
    let mut daemon = Daemon::start(&config, &data_dir);
    let recovered = daemon.wait_for_line("sluice: recovered ");
    assert!(
        recovered.contains("rows from the write-ahead log"),
        "{recovered}"
    );
    let addr = daemon.flight.clone();
    assert_eq!(created_over_flight(&addr).await, want);
    assert_eq!(
        count_over_flight(&addr, "SELECT count(*) FROM file_events").await,
        total_run2
    );
    std::fs::write(watched.join("c1.txt"), b"again").unwrap();
    std::fs::create_dir(watched.join("c-done")).unwrap();
    let want = expected(
        &watched,
        &[
            "a-done", "a1.txt", "a2.txt", "a3.txt", "b-done", "b1.txt", "c-done", "c1.txt",
        ],
    );
    eventually("run 3's changes over Flight SQL", || async {
        created_over_flight(&addr).await == want
    })
    .await;
    let total_run3 = count_over_flight(&addr, "SELECT count(*) FROM file_events").await;
    let (status, log) = daemon.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status}\n{log}");
    assert_eq!(created_on_disk(&data_dir), want, "{log}");
    assert_eq!(
        count_on_disk(&data_dir, "SELECT count(*) FROM file_events"),
        total_run3,
        "every row served before SIGTERM is in Parquet, once\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eslogger_source_runs_a_command_and_decodes_its_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tmp.path().join("fake-eslogger");
    // Prints the recorded capture, then stays alive like eslogger does.
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat '{SAMPLE}'\nexec sleep 600\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            r#"
[sources]
enabled = ["eslogger"]
flush_ms = 100

[sources.eslogger]
program = "{}"

[server]
listen = "127.0.0.1:0"

[metrics]
listen = "127.0.0.1:0"
"#,
            script.display()
        ),
    );
    let data_dir = tmp.path().join("data");
    let mut daemon = Daemon::start(&config, &data_dir);
    daemon.wait_for_line("sluice: collecting eslogger");
    let addr = daemon.flight.clone();
    // What `sluice ingest` stores from the same capture (README tour).
    eventually("the capture's rows over Flight SQL", || async {
        count_over_flight(&addr, "SELECT count(*) FROM es_process_events").await == 4
            && count_over_flight(&addr, "SELECT count(*) FROM es_process_file_events").await == 12
    })
    .await;
    let status = common::stdout_of(&common::run(
        &["status", "--data-dir", data_dir.to_str().unwrap()],
        None,
    ));
    assert!(status.contains("source eslogger: up"), "{status}");
    assert!(
        status.contains("muted 2"),
        "open events are muted: {status}"
    );
    let (status, log) = daemon.stop_with(libc::SIGINT);
    assert!(status.success(), "{status}\n{log}");
    assert_eq!(
        count_on_disk(&data_dir, "SELECT count(*) FROM es_process_file_events"),
        12
    );
}

#[test]
fn a_bad_config_stops_the_daemon_before_it_starts_with_where() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = write_config(tmp.path(), "[storage]\nroll_secs = 1\n");
    let out = common::run(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("roll_secs") && stderr.contains("line 2"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_watched_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for dir in ["first", "second"] {
        std::fs::create_dir(tmp.path().join(dir)).unwrap();
    }
    let first = tmp.path().join("first").canonicalize().unwrap();
    let second = tmp.path().join("second").canonicalize().unwrap();
    let data_dir = tmp.path().join("data");
    let config = notify_config(tmp.path(), &first);
    let mut daemon = Daemon::start(&config, &data_dir);
    // The new config watches only `second`; a broken one is refused first.
    std::fs::write(&config, "[sources\n").unwrap();
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(daemon.pid(), libc::SIGHUP) }, 0);
    daemon.wait_for_line("sluice: reload refused");
    notify_config(tmp.path(), &second);
    assert_eq!(unsafe { libc::kill(daemon.pid(), libc::SIGHUP) }, 0);
    daemon.wait_for_line("sluice: reloaded");
    let addr = daemon.flight.clone();
    // The reload reaches the source thread within its one-second wake-up;
    // keep creating until a file in `second` shows up.
    let mut n = 0;
    eventually("a change in the newly watched directory", || {
        n += 1;
        std::fs::create_dir(second.join(format!("d{n}"))).unwrap();
        let addr = addr.clone();
        async move { !created_over_flight(&addr).await.is_empty() }
    })
    .await;
    std::fs::create_dir(first.join("unwatched")).unwrap();
    std::fs::create_dir(second.join("done")).unwrap();
    let done = second.join("done").display().to_string();
    eventually("the last change", || async {
        created_over_flight(&addr)
            .await
            .iter()
            .any(|(p, _)| *p == done)
    })
    .await;
    let rows = created_over_flight(&addr).await;
    assert!(
        rows.iter()
            .all(|(p, n)| p.starts_with(second.to_str().unwrap()) && *n == 1),
        "{rows:?}"
    );
    let (status, log) = daemon.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status}\n{log}");
}
