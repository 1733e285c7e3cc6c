//! Runs the real `sluice` binary end to end: `sluice ingest` replays the
//! eslogger fixture (`testdata/eslogger/sample.jsonl`, made by
//! `make_sample.py`), then `sluice query` checks exact values by SQL.
//!
//! The fixture covers every mapped event type, both audit_token shapes
//! (object in versions 9 and 11, array in version 10), a version-1 message,
//! a path that is not valid UTF-8, and four bad lines: one cut short, one not
//! JSON, one unmapped event type (mmap) and one without a process.

mod common;
use common::{run, stdout_of};

use std::path::{Path, PathBuf};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/eslogger/sample.jsonl")
}

/// Ingests the sample with `extra` flags into a fresh data dir.
fn ingested_with(extra: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8 temp path");
    let sample = sample();
    let mut args = vec!["ingest", "--data-dir", data_dir, "--format", "eslogger"];
    args.extend_from_slice(extra);
    args.push(sample.to_str().expect("path"));
    let summary = stdout_of(&run(&args, None));
    (dir, summary)
}

/// The sample with open events kept, so that every mapped type is stored.
fn ingested() -> (tempfile::TempDir, String) {
    ingested_with(&["--open-events"])
}

fn csv(dir: &Path, sql: &str) -> String {
    stdout_of(&run(
        &[
            "query",
            "--data-dir",
            dir.to_str().expect("path"),
            "--format",
            "csv",
            sql,
        ],
        None,
    ))
}

#[test]
fn summary_counts_events_per_table_and_skipped_lines_per_reason() {
    let (_dir, summary) = ingested();
    let squeezed: String = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(squeezed.contains("es_process_events 4 events"), "{summary}");
    assert!(
        squeezed.contains("es_process_file_events 14 events"),
        "{summary}"
    );
    assert!(
        squeezed.contains("skipped lines: 4 (malformed 1, truncated 1, unmapped_event_type 1 (mmap 1), missing_field 1)"),
        "{summary}"
    );
    assert!(
        squeezed.contains("line 18, byte "),
        "the cut line is reported with its offset: {summary}"
    );
    assert!(squeezed.contains("line 19, byte 0: malformed"), "{summary}");
    assert!(
        squeezed.contains("line 21: missing_field: no `process`"),
        "{summary}"
    );
    assert!(squeezed.contains("events/s"), "{summary}");
}

#[test]
fn event_types_are_counted_by_sql() {
    let (dir, _) = ingested();
    let process = csv(
        dir.path(),
        "SELECT event_type, count(*) AS n FROM es_process_events GROUP BY event_type ORDER BY event_type",
    );
    assert_eq!(process, "event_type,n\nexec,2\nexit,1\nfork,1\n");
    let file = csv(
        dir.path(),
        "SELECT event_type, count(*) AS n FROM es_process_file_events GROUP BY event_type ORDER BY event_type",
    );
    assert_eq!(
        file,
        "event_type,n\nclone,1\nclose,1\ncopyfile,1\ncreate,2\nexchangedata,1\nlink,1\nopen,2\nrename,2\ntruncate,1\nunlink,1\nwrite,1\n"
    );
}

#[test]
fn exec_rows_have_exact_pids_paths_cmdlines_and_times() {
    let (dir, _) = ingested();
    let rows = csv(
        dir.path(),
        "SELECT pid, path, cmdline, cmdline_count, cwd, uid, parent, time, CAST(time_ns AS BIGINT) AS ns, codesigning_flags \
         FROM es_process_events WHERE event_type = 'exec' ORDER BY time",
    );
    assert_eq!(
        rows,
        "pid,path,cmdline,cmdline_count,cwd,uid,parent,time,ns,codesigning_flags\n\
         500,/bin/ls,\"ls -la \"\"My Documents\"\"\",3,/Users/alice,501,1,1714564800,1714564800123456789,NOT_RUNTIME\n\
         900,/usr/bin/python3,\"python3 -c \"\"print(\\\"\"hi\\\"\")\"\"\",3,,501,500,1714570204,1714570204000000000,NOT_RUNTIME\n"
    );
}

#[test]
fn fork_and_exit_from_array_and_object_audit_tokens() {
    let (dir, _) = ingested();
    let rows = csv(
        dir.path(),
        "SELECT event_type, version, pid, child_pid, exit_code, uid, gid, pidversion FROM es_process_events \
         WHERE event_type IN ('fork', 'exit') ORDER BY time",
    );
    assert_eq!(
        rows,
        "event_type,version,pid,child_pid,exit_code,uid,gid,pidversion\nfork,10,500,501,,501,20,1500\nexit,11,501,,256,501,20,1501\n"
    );
}

#[test]
fn file_events_name_the_actor_target_and_destination() {
    let (dir, _) = ingested();
    let rows = csv(
        dir.path(),
        "SELECT event_type, pid, path, filename, dest_filename FROM es_process_file_events \
         WHERE event_type IN ('rename', 'link', 'copyfile') ORDER BY time",
    );
    let finder = "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder";
    assert_eq!(
        rows,
        format!(
            "event_type,pid,path,filename,dest_filename\n\
             rename,700,{finder},/Users/alice/a.txt,/Users/alice/Documents/b.txt\n\
             rename,700,{finder},/tmp/x,/tmp/y\n\
             link,500,/bin/zsh,/usr/local/bin/tool,/usr/local/bin/tool2\n\
             copyfile,700,{finder},/Users/alice/src.txt,/Users/alice/dst/src.txt\n"
        )
    );
    let analyst = csv(
        dir.path(),
        "SELECT count(*) AS n FROM es_process_file_events WHERE filename LIKE '/etc/%'",
    );
    assert_eq!(analyst, "n\n1\n");
}

#[test]
fn a_path_that_is_not_utf8_keeps_its_bytes() {
    let (dir, _) = ingested();
    let rows = csv(
        dir.path(),
        "SELECT filename, filename_bytes FROM es_process_file_events WHERE filename_bytes IS NOT NULL",
    );
    // The text column shows U+FFFD; the sidecar holds the original 0xE9.
    assert_eq!(
        rows,
        "filename,filename_bytes\n/tmp/caf\u{fffd}.txt,2f746d702f636166e92e747874\n"
    );
}

#[test]
fn files_land_in_hour_partitions_and_are_private() {
    let (dir, _) = ingested();
    let mut files = Vec::new();
    for table in ["es_process_events", "es_process_file_events"] {
        for hour in ["hour=12", "hour=13"] {
            let partition = dir.path().join(table).join("date=2024-05-01").join(hour);
            for entry in std::fs::read_dir(&partition)
                .unwrap_or_else(|e| panic!("{}: {e}", partition.display()))
            {
                files.push(entry.expect("entry").path());
            }
        }
    }
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        dir.path().join("osquery_events").is_dir(),
        "the run's counters are stored too"
    );
    #[cfg(unix)]
    for file in &files {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

#[test]
fn stdin_replays_like_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = std::fs::read(sample()).expect("read sample");
    let data_dir = dir.path().to_str().expect("path");
    let out = run(
        &["ingest", "--data-dir", data_dir, "--open-events", "-"],
        Some(&input),
    );
    let summary = stdout_of(&out);
    assert!(summary.contains("standard input"), "{summary}");
    assert_eq!(
        csv(
            dir.path(),
            "SELECT count(*) AS n FROM es_process_file_events"
        ),
        "n\n14\n"
    );
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        &[
            "ingest",
            "--data-dir",
            dir.path().to_str().expect("path"),
            "/nonexistent/eslogger.json",
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open /nonexistent/eslogger.json"),
        "{stderr}"
    );
}

#[test]
fn open_events_are_off_by_default_and_counted() {
    let (dir, summary) = ingested_with(&[]);
    let squeezed: String = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squeezed.contains("es_process_file_events 12 events (dropped: muted 2)"),
        "{summary}"
    );
    assert!(
        squeezed.contains("open events are off: 2 muted (--open-events keeps them)"),
        "{summary}"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT count(*) AS n FROM es_process_file_events WHERE event_type = 'open'"
        ),
        "n\n0\n"
    );
}

#[test]
fn osquery_events_counters_match_what_was_fed_in() {
    // The sample: 4 process events, 14 file events (2 of them opens, off by
    // default), 3 lines unreadable or incomplete, 1 unmapped (mmap).
    let (dir, _) = ingested_with(&[]);
    let rows = csv(
        dir.path(),
        "SELECT name, publisher, type, subscriptions, events, active, muted, rate_limited, sampled, kernel, backpressure, malformed, unmapped \
         FROM osquery_events ORDER BY type, name",
    );
    assert_eq!(
        rows,
        "name,publisher,type,subscriptions,events,active,muted,rate_limited,sampled,kernel,backpressure,malformed,unmapped\n\
         eslogger,eslogger,publisher,2,18,0,0,0,0,0,0,3,1\n\
         es_process_events,eslogger,subscriber,1,4,0,0,0,0,0,0,0,0\n\
         es_process_file_events,eslogger,subscriber,1,12,0,2,0,0,0,0,0,0\n"
    );
    // Every event the publisher handed on is stored or counted as dropped.
    let stored = csv(
        dir.path(),
        "SELECT (SELECT count(*) FROM es_process_events) + (SELECT count(*) FROM es_process_file_events) AS n",
    );
    assert_eq!(stored, "n\n16\n");
}

#[test]
fn gate_flags_mute_and_sample() {
    let (dir, summary) = ingested_with(&[
        "--open-events",
        "--mute-target-prefix",
        "/tmp/",
        "--mute-process",
        "/usr/bin/curl",
        "--sample",
        "es_process_events=2",
    ]);
    let squeezed: String = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    // Muted by target: /tmp/existing.txt, /tmp/x → /tmp/y, /tmp/y; by
    // process: curl's two opens and its close (one of the opens is in /tmp
    // too).
    assert!(
        squeezed.contains("es_process_file_events 8 events (dropped: muted 6)"),
        "{summary}"
    );
    // Sampling 1 in 2 keeps the first and third of four.
    assert!(
        squeezed.contains("es_process_events 2 events (dropped: sampled 2)"),
        "{summary}"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT count(*) AS n FROM es_process_file_events WHERE filename LIKE '/tmp/%' OR path = '/usr/bin/curl'"
        ),
        "n\n0\n"
    );
}

#[test]
fn a_config_file_sets_the_gates_and_a_bad_one_says_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        "[gates]\nopen_events = true\n\n[gates.tables.es_process_file_events.osquery]\nfile_paths = { homes = [\"/Users/%/%%\"] }\n",
    )
    .expect("write config");
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().expect("path");
    let sample = sample();
    let out = run(
        &[
            "ingest",
            "--data-dir",
            data,
            "--config",
            config.to_str().expect("path"),
            sample.to_str().expect("path"),
        ],
        None,
    );
    stdout_of(&out);
    let kept = csv(
        &data_dir,
        "SELECT count(*) AS n FROM es_process_file_events WHERE filename NOT LIKE '/Users/%' AND dest_filename NOT LIKE '/Users/%'",
    );
    assert_eq!(kept, "n\n0\n", "only events naming a home path are kept");
    assert_eq!(
        csv(
            &data_dir,
            "SELECT count(*) AS n FROM es_process_file_events"
        ),
        "n\n7\n"
    );

    std::fs::write(&config, "[gates]\nopen_event = true\n").expect("write config");
    let out = run(
        &[
            "ingest",
            "--data-dir",
            data,
            "--config",
            config.to_str().expect("path"),
            sample.to_str().expect("path"),
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sluice.toml")
            && stderr.contains("open_event")
            && stderr.contains("line 2"),
        "{stderr}"
    );
}

/// A data dir given as a bare relative name (`--data-dir data`) is made in
/// the current directory; its parent is the empty path, which must mean
/// `.` when the new directory entry is fsynced.
#[test]
fn a_bare_relative_data_dir_is_made_in_the_current_directory() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let sample = sample();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(cwd.path())
        .args(["ingest", "--data-dir", "data", "--open-events"])
        .arg(&sample)
        .output()
        .expect("run sluice");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        csv(
            &cwd.path().join("data"),
            "SELECT count(*) AS n FROM es_process_events"
        ),
        "n\n4\n"
    );
}
