//! `kill -9` during `sluice ingest`: nothing acknowledged is lost, nothing is
//! stored twice, no partial Parquet file is ever visible.
//!
//! The test generates a stream of synthetic eslogger process events (exec,
//! fork, exit: every line becomes exactly one `es_process_events` row, told
//! apart by its `global_seq_num`) and, round after round:
//!
//! 1. starts the real `sluice ingest -` as a child process with small
//!    batches and frequent Parquet rolls (or, every other round, batches
//!    large enough for the WAL's dictionary form) and `--ack`, feeds it the lines not yet
//!    stored, and reads its `ack <rows>` lines;
//! 2. kills it with SIGKILL after a random delay (sometimes at once, while it
//!    is still starting or replaying);
//! 3. restarts `sluice ingest` on an empty input, which replays the WAL and
//!    rolls everything to Parquet;
//! 4. reads every `*.parquet` file of the table (each must open and decode:
//!    a partial file would fail here) and checks that the stored rows are
//!    exactly the first *k* lines, each once, with *k* at least the number
//!    acknowledged before the kill.
//!
//! The next round feeds from line *k*.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{Array, Int64Array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_ingest::synthetic::{EsloggerFirehose, EventMix, SplitMix64};

const ROUNDS: usize = 24;
const LINES: usize = 30_000;
/// Lines offered to one run (more than it can take before the kill).
const WINDOW: usize = 3_000;

/// Lines of process events only, and the `global_seq_num` of each.
fn process_event_lines() -> Vec<(i64, Vec<u8>)> {
    let mix = EventMix {
        open: 0,
        close: 0,
        write: 0,
        create: 0,
        rename: 0,
        unlink: 0,
        exec: 3,
        fork: 2,
        exit: 1,
    };
    let mut firehose = EsloggerFirehose::new(7, &mix);
    (0..LINES)
        .map(|_| {
            let mut line = Vec::new();
            firehose.next_line(&mut line);
            let text = std::str::from_utf8(&line).expect("utf-8 line");
            let at = text.find("\"global_seq_num\":").expect("global_seq_num") + 17;
            let digits: String = text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (digits.parse().expect("number"), line)
        })
        .collect()
}

/// `sluice ingest` with batches of `batch_rows` and rolls every `roll_kib`.
fn sluice(data_dir: &Path, (batch_rows, roll_kib): (&str, &str)) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.arg("ingest").arg("--data-dir").arg(data_dir).args([
        "--batch-rows",
        batch_rows,
        "--roll-kib",
        roll_kib,
        "--ack",
        "-",
    ]);
    command
}

/// Even rounds: tiny batches, rolled often, so kills land everywhere.
/// Odd rounds: batches large enough for the WAL to write their text as
/// dictionaries (64 rows or more), held hot for several batches, so that
/// replay decodes that form too.
fn batching(round: usize) -> (&'static str, &'static str) {
    if round.is_multiple_of(2) {
        ("7", "48")
    } else {
        ("96", "512")
    }
}

/// Every `*.parquet` file under `dir` (hidden names are temporary files,
/// which no reader lists).
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") {
                out.push(path);
            }
        }
    }
    out
}

/// The `global_seq_num` of every stored row, in file order; panics if a
/// visible file cannot be read whole.
fn stored_global_seqs(data_dir: &Path) -> Vec<i64> {
    let mut seqs = Vec::new();
    for path in parquet_files(&data_dir.join("es_process_events")) {
        let file = File::open(&path).expect("open parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", path.display()))
            .build()
            .expect("reader");
        for batch in reader {
            let batch =
                batch.unwrap_or_else(|e| panic!("{} cannot be decoded: {e}", path.display()));
            let column = batch.column_by_name("global_seq_num").expect("column");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("Int64");
            assert_eq!(column.null_count(), 0);
            seqs.extend(column.values().iter().copied());
        }
    }
    seqs
}

#[test]
fn sigkill_loses_no_acknowledged_event_and_stores_none_twice() {
    let lines = process_event_lines();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut rng = SplitMix64::new(42);
    let mut stored = 0usize; // lines[..stored] are in Parquet
    let mut kills_with_unflushed_acks = 0;
    let mut dictionary_replays = 0;

    for round in 0..ROUNDS {
        assert!(stored < lines.len(), "the test ran out of input lines");
        let mut child = sluice(&data_dir, batching(round))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sluice");
        let acked = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().expect("stdout");
        let reader = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("ack ") {
                        acked.store(n.parse().expect("ack count"), Ordering::SeqCst);
                    }
                }
            })
        };
        let mut stdin = child.stdin.take().expect("stdin");
        let to_feed: Vec<u8> = lines[stored..(stored + WINDOW).min(lines.len())]
            .iter()
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        // Feed in small slices so the kill lands mid-stream; the pipe's
        // back-pressure paces the writer.
        let writer = std::thread::spawn(move || {
            for chunk in to_feed.chunks(4 * 1024) {
                if stdin.write_all(chunk).is_err() {
                    return; // the child is dead
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // Leave stdin open: the child must be killed, not finish.
            std::thread::sleep(Duration::from_secs(30));
        });

        // A few rounds kill at once, during start-up and WAL replay.
        let delay = if round % 6 == 0 {
            rng.below(15)
        } else {
            20 + rng.below(400)
        };
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL sluice");
        child.wait().expect("reap sluice");
        reader.join().expect("ack reader");
        drop(writer); // detached; it stops at the broken pipe
        let acked = acked.load(Ordering::SeqCst) as usize;

        // Restart on an empty input: replay the WAL, roll it to Parquet.
        let before_recovery = stored_global_seqs(&data_dir).len();
        if stored + acked > before_recovery {
            kills_with_unflushed_acks += 1;
            dictionary_replays += round % 2;
        }
        let output = sluice(&data_dir, batching(round))
            .stdin(Stdio::null())
            .output()
            .expect("run recovery");
        assert!(
            output.status.success(),
            "recovery run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );

        let seqs = stored_global_seqs(&data_dir);
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            seqs.len(),
            "round {round}: an event is stored twice"
        );
        let expected: Vec<i64> = lines[..sorted.len().min(lines.len())]
            .iter()
            .map(|(seq, _)| *seq)
            .collect();
        assert_eq!(
            sorted, expected,
            "round {round}: stored events are not exactly a prefix of the input"
        );
        assert!(
            sorted.len() >= stored + acked,
            "round {round}: {} events acknowledged in total but only {} stored",
            stored + acked,
            sorted.len()
        );
        eprintln!(
            "round {round}: killed after {delay} ms with {acked} acked; \
             {before_recovery} rows in Parquet before restart, {} after",
            sorted.len()
        );
        stored = sorted.len();
    }
    assert!(stored > 0, "nothing was ever stored");
    assert!(
        kills_with_unflushed_acks >= 3,
        "only {kills_with_unflushed_acks} kills left acknowledged rows outside Parquet; \
         the test did not exercise WAL replay"
    );
    assert!(
        dictionary_replays >= 1,
        "no kill with large batches left acknowledged rows outside Parquet; \
         the test did not replay dictionary-encoded WAL records"
    );
}
