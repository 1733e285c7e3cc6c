//! Runs the real `sluice` binary on OpenBSM input: `sluice ingest --format
//! bsm` of the FreeBSD trail in `../shared/data/bsm`, of standard input, and
//! of a directory of trails written here the way auditd leaves them (a
//! closed trail, one recovered after a crash with its last record cut short,
//! the open one, and the `current` link); then `sluice query` checks the rows
//! by SQL, and `sluice bsm dump` is compared with praudit's decodes.

mod common;
use common::{run, stdout_of};

use std::path::{Path, PathBuf};

use sluice_ingest::bsm::encode::RecordWriter;
use sluice_ingest::bsm::token::{Attr, SubjectForm};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/bsm")
        .join(rel)
}

fn trail() -> PathBuf {
    shared("trails/execve-long-args.trail")
}

fn ingest(dir: &Path, input: &str, stdin: Option<&[u8]>) -> String {
    let data_dir = dir.to_str().expect("utf-8 temp path");
    let out = run(
        // Open records are kept so that every table is exercised; the gates
        // that drop them by default are tested in cli_ingest.rs.
        &[
            "ingest",
            "--data-dir",
            data_dir,
            "--format",
            "bsm",
            "--open-events",
            input,
        ],
        stdin,
    );
    let summary = stdout_of(&out);
    summary.split_whitespace().collect::<Vec<_>>().join(" ")
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

/// The 50 arguments of the FreeBSD trail's execve, from praudit's decode.
fn grep_cmdline() -> String {
    let praudit =
        std::fs::read_to_string(shared("trails/execve-long-args.trail.praudit-n.txt")).unwrap();
    let (_, rest) = praudit.split_once(",exec arg,").unwrap();
    let (args, _) = rest.split_once(",path,").unwrap();
    assert_eq!(args.split(',').count(), 50);
    args.replace(',', " ")
}

#[test]
fn the_freebsd_trail_is_one_execve_row_with_fifty_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = ingest(dir.path(), trail().to_str().unwrap(), None);
    assert!(summary.contains("process_events 1 events"), "{summary}");
    assert!(summary.contains("skipped records: 0"), "{summary}");
    assert!(summary.contains("1 records"), "{summary}");
    let rows = csv(
        dir.path(),
        "SELECT pid, path, mode, cmdline, cmdline_size, auid, uid, euid, gid, egid, owner_uid, \
         status, syscall, time, CAST(time_ns AS BIGINT) AS ns FROM process_events",
    );
    let cmdline = grep_cmdline();
    assert_eq!(
        rows,
        format!(
            "pid,path,mode,cmdline,cmdline_size,auid,uid,euid,gid,egid,owner_uid,status,syscall,time,ns\n\
             50009,/usr/bin/grep,555,{cmdline},{},1000,1000,1000,1000,1000,0,0,execve,1158613982,1158613982608000000\n",
            cmdline.len()
        )
    );
    // The file lands in the hour of the record's time.
    let partition = dir.path().join("process_events/date=2006-09-18/hour=21");
    assert_eq!(std::fs::read_dir(&partition).expect("partition").count(), 1);
}

#[test]
fn standard_input_replays_like_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(trail()).unwrap();
    let summary = ingest(dir.path(), "-", Some(&bytes));
    assert!(summary.contains("ingested standard input"), "{summary}");
    assert_eq!(
        csv(
            dir.path(),
            "SELECT count(*) AS n FROM process_events WHERE syscall = 'execve'"
        ),
        "n\n1\n"
    );
}

const T: u32 = 1_714_564_800; // 2024-05-01T12:00:00Z

fn subject(w: RecordWriter, pid: u32) -> RecordWriter {
    w.subject32(501, 501, 20, 501, 20, pid, 100_001, 0, [0, 0, 0, 0])
}

/// Writes `/var/audit` as auditd leaves it after a crash and a restart.
fn audit_dir(dir: &Path) -> usize {
    // The closed trail: a shell forks and execs curl, which connects; a
    // file is opened for writing and renamed; a startup record no table
    // wants.
    let mut closed = RecordWriter::new(45000, T, 0)
        .subject32(u32::MAX, 0, 0, 0, 0, 1, 0, 0, [0, 0, 0, 0])
        .text("auditd::Audit startup")
        .return32(0, 0)
        .finish();
    closed.extend(
        subject(RecordWriter::new(2, T, 1).arg32(0, 600, "child PID"), 500)
            .return32(0, 600)
            .finish(),
    );
    closed.extend(
        subject(
            RecordWriter::new(23, T, 2)
                .exec_args(["curl", "-s", "https://example.com/a b"])
                .path("/usr/bin/curl")
                .attr(&Attr {
                    bits64: true,
                    mode: 0o100755,
                    uid: 0,
                    gid: 0,
                    fsid: 1,
                    node_id: 2,
                    device: 3,
                }),
            600,
        )
        .return32(0, 0)
        .finish(),
    );
    closed.extend(
        subject(
            RecordWriter::new(32, T, 3)
                .arg32(1, 5, "fd")
                .sock_inet32(2, 443, [93, 184, 216, 34]),
            600,
        )
        .return32(0, 0)
        .finish(),
    );
    closed.extend(
        subject(
            RecordWriter::new(77, T, 4).path("/Users/alice/notes.txt"),
            600,
        )
        .return32(0, 3)
        .finish(),
    );
    closed.extend(
        subject(
            RecordWriter::new(42, T, 5)
                .path("/Users/alice/notes.txt")
                .path("/Users/alice/old.txt"),
            600,
        )
        .return32(0, 0)
        .finish(),
    );
    std::fs::write(dir.join("20240501120000.20240501130000"), closed).unwrap();

    // The trail a crash left open, recovered: an ssh login, then a sudo
    // record cut short.
    let mut recovered = RecordWriter::new(32800, T + 3600, 0)
        .subject(
            SubjectForm::Bits32Ex,
            [502, 502, 20, 502, 20, 700, 9],
            52_000,
            "2001:db8::7".parse().unwrap(),
        )
        .text("successful login bob")
        .return32(0, 0)
        .finish();
    let sudo = subject(RecordWriter::new(45028, T + 3601, 0).text("sudo"), 701)
        .return32(0, 0)
        .finish();
    let cut_at = recovered.len();
    recovered.extend_from_slice(&sudo[..sudo.len() / 2]);
    std::fs::write(dir.join("20240501130000.crash_recovery"), recovered).unwrap();

    // The open trail, and the link to it.
    let open = subject(RecordWriter::new(1, T + 7200, 0).exit(0, 0), 600)
        .return32(0, 0)
        .finish();
    std::fs::write(dir.join("20240501140000.not_terminated"), open).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        dir.join("20240501140000.not_terminated"),
        dir.join("current"),
    )
    .unwrap();
    cut_at
}

#[test]
fn a_trail_directory_is_read_once_in_name_order_with_every_table() {
    let audit = tempfile::tempdir().expect("audit dir");
    let cut_at = audit_dir(audit.path());
    let dir = tempfile::tempdir().expect("data dir");
    let summary = ingest(dir.path(), audit.path().to_str().unwrap(), None);
    for expected in [
        "process_events 3 events",
        "process_file_events 2 events",
        "socket_events 1 events",
        "user_events 1 events",
        "skipped records: 2 (malformed 0, truncated 1, unmapped_event_type 1 (AUE_audit_startup 1), missing_field 0)",
        &format!("byte {cut_at}: truncated: 20240501130000.crash_recovery: record of"),
        "9 records",
    ] {
        assert!(summary.contains(expected), "{expected:?} not in {summary}");
    }
    assert_eq!(
        csv(
            dir.path(),
            "SELECT syscall, pid, parent, path, cmdline FROM process_events ORDER BY time_ns"
        ),
        "syscall,pid,parent,path,cmdline\n\
         fork,600,500,,\n\
         execve,600,500,/usr/bin/curl,\"curl -s \"\"https://example.com/a b\"\"\"\n\
         exit,600,500,,\n"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT action, pid, fd, family, remote_address, remote_port, status FROM socket_events"
        ),
        "action,pid,fd,family,remote_address,remote_port,status\nconnect,600,5,2,93.184.216.34,443,succeeded\n"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT operation, path, dest_path, flags, uid FROM process_file_events ORDER BY time_ns"
        ),
        "operation,path,dest_path,flags,uid\n\
         open,/Users/alice/notes.txt,,O_WRONLY|O_CREAT,501\n\
         rename,/Users/alice/notes.txt,/Users/alice/old.txt,,501\n"
    );
    assert_eq!(
        csv(
            dir.path(),
            "SELECT type, uid, message, address, terminal FROM user_events"
        ),
        "type,uid,message,address,terminal\n32800,502,successful login bob,2001:db8::7,52000\n"
    );
    // The run's counters: the publisher handed 7 records to the gates, and
    // owns the cut-short record and the one no table maps; each table's
    // row says what it stored.
    assert_eq!(
        csv(
            dir.path(),
            "SELECT name, publisher, type, subscriptions, events, muted, malformed, unmapped \
             FROM osquery_events ORDER BY type, name"
        ),
        "name,publisher,type,subscriptions,events,muted,malformed,unmapped\n\
         openbsm,openbsm,publisher,4,7,0,1,1\n\
         process_events,openbsm,subscriber,1,3,0,0,0\n\
         process_file_events,openbsm,subscriber,1,2,0,0,0\n\
         socket_events,openbsm,subscriber,1,1,0,0,0\n\
         user_events,openbsm,subscriber,1,1,0,0,0\n"
    );
}

#[test]
fn bsm_dump_prints_what_praudit_prints() {
    let path = trail();
    let path = path.to_str().unwrap();
    for (style, decode) in [
        ("l", "trails/execve-long-args.trail.praudit-n.txt"),
        ("raw", "trails/execve-long-args.trail.praudit-raw.txt"),
    ] {
        let ours = stdout_of(&run(&["bsm", "dump", "--style", style, path], None));
        let praudit = std::fs::read_to_string(shared(decode)).unwrap();
        assert_eq!(ours, praudit, "--style {style}");
    }
    // One token per line, like praudit without -l.
    let tokens = stdout_of(&run(&["bsm", "dump", "--style", "n", path], None));
    let lines: Vec<&str> = tokens.lines().collect();
    assert_eq!(lines.len(), 7);
    assert!(lines[0].starts_with("header,714,10,execve(2),0,"));
    assert_eq!(lines[6], "trailer,714");
}

#[test]
fn bsm_dump_reports_damage_on_stderr_and_goes_on() {
    let mut bytes = std::fs::read(trail()).unwrap();
    let good = bytes.clone();
    bytes.extend_from_slice(b"garbage!");
    bytes.extend_from_slice(&good);
    let out = run(&["bsm", "dump", "-"], Some(&bytes));
    let stdout = stdout_of(&out);
    assert_eq!(stdout.lines().count(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "sluice: -: byte 714: expected a header token, found byte 0x67 (8 bytes skipped)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        &[
            "ingest",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--format",
            "bsm",
            "/nonexistent/audit.trail",
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open /nonexistent/audit.trail"),
        "{stderr}"
    );
    let out = run(&["bsm", "dump", "/nonexistent/audit.trail"], None);
    assert!(!out.status.success());
}
