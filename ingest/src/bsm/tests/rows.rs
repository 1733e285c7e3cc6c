//! Records into rows: the FreeBSD trail, and records written with
//! [`RecordWriter`] for each table, each token form the mapping reads, and
//! each way a record can fail to become a row.

use std::net::IpAddr;

use arrow::array::{Array, RecordBatch, TimestampNanosecondArray};
use arrow::util::display::array_value_to_string;

use super::*;
use crate::SkipReason;
use crate::bsm::BsmDecoder;
use crate::bsm::encode::RecordWriter;
use crate::bsm::token::{Attr, HeaderForm, SubjectForm};

/// The batches of one table, as rows of `column → value` (None for NULL).
fn table(decoder: &mut BsmDecoder, name: &str) -> Vec<Vec<(String, Option<String>)>> {
    let batches = decoder.take_batches().expect("batches build");
    let Some((_, batch)) = batches.into_iter().find(|(t, _)| t.name == name) else {
        return Vec::new();
    };
    rows_of(&batch)
}

fn rows_of(batch: &RecordBatch) -> Vec<Vec<(String, Option<String>)>> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, col)| {
                    // Timestamps as nanoseconds: formatting a named time
                    // zone needs chrono-tz, which sluice does not build.
                    let value = (!col.is_null(row)).then(|| {
                        match col.as_any().downcast_ref::<TimestampNanosecondArray>() {
                            Some(ts) => ts.value(row).to_string(),
                            None => array_value_to_string(col, row).expect("displayable"),
                        }
                    });
                    (field.name().clone(), value)
                })
                .collect()
        })
        .collect()
}

fn get<'r>(row: &'r [(String, Option<String>)], column: &str) -> Option<&'r str> {
    row.iter()
        .find(|(c, _)| c == column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .1
        .as_deref()
}

/// Checks `column = value` for each pair (`None` for NULL).
fn expect(row: &[(String, Option<String>)], pairs: &[(&str, Option<&str>)]) {
    for (column, want) in pairs {
        assert_eq!(get(row, column), *want, "{column}");
    }
}

const LOCAL: [u8; 4] = [0, 0, 0, 0];

fn subject(w: RecordWriter, pid: u32) -> RecordWriter {
    w.subject32(501, 0, 20, 501, 20, pid, 100_001, 0, LOCAL)
}

#[test]
fn the_freebsd_trail_is_one_execve_with_all_fifty_arguments_in_order() {
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(&execve_trail());
    assert_eq!(
        decoder.stats().skipped_total(),
        0,
        "{:?}",
        decoder.stats().problems()
    );
    let rows = table(&mut decoder, "process_events");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let praudit = String::from_utf8(read("trails/execve-long-args.trail.praudit-n.txt")).unwrap();
    // The arguments as praudit lists them, between "exec arg" and "path".
    let args: Vec<&str> = praudit
        .split_once(",exec arg,")
        .and_then(|(_, rest)| rest.split_once(",path,"))
        .map(|(args, _)| args.split(',').collect())
        .unwrap();
    assert_eq!(args.len(), 50);
    assert_eq!(args[0], "grep");
    assert_eq!(args[49], "libbsm.la");
    let cmdline = args.join(" ");
    expect(
        row,
        &[
            ("pid", Some("50009")),
            ("path", Some("/usr/bin/grep")),
            ("mode", Some("555")),
            ("cmdline", Some(&cmdline)),
            ("cmdline_size", Some(&cmdline.len().to_string())),
            ("env", None),
            ("env_count", None),
            ("cwd", None),
            ("auid", Some("1000")),
            ("uid", Some("1000")),
            ("euid", Some("1000")),
            ("gid", Some("1000")),
            ("egid", Some("1000")),
            ("owner_uid", Some("0")),
            ("owner_gid", Some("0")),
            ("parent", None),
            ("status", Some("0")),
            ("syscall", Some("execve")),
            ("time", Some("1158613982")),
            ("time_ns", Some("1158613982608000000")),
            ("eid", Some("0000000001")),
        ],
    );
}

#[test]
fn fork_spawn_exec_and_exit_tell_a_process_s_life() {
    let t = 1_700_000_000;
    let mut trail = Vec::new();
    // 100 forks 200 (child named by an argument), vforks 201 (child named
    // only by the return value) and spawns 300.
    trail.extend(
        subject(RecordWriter::new(2, t, 1).arg32(0, 200, "child PID"), 100)
            .return32(0, 200)
            .finish(),
    );
    trail.extend(
        subject(RecordWriter::new(25, t, 2), 100)
            .return32(0, 201)
            .finish(),
    );
    trail.extend(
        subject(
            RecordWriter::new(43190, t, 3)
                .arg32(0, 300, "child PID")
                .exec_args(["/usr/bin/true", "--version"])
                .path("/usr/bin/true")
                .attr(&Attr {
                    bits64: true,
                    mode: 0o100755,
                    uid: 0,
                    gid: 0,
                    fsid: 1,
                    node_id: 2,
                    device: 3,
                }),
            100,
        )
        .return32(0, 0)
        .finish(),
    );
    // 200 execs, as a 64-bit IPv6 subject, with an environment.
    trail.extend(
        RecordWriter::with_header(
            HeaderForm::Bits64Ex,
            11,
            23,
            0,
            Some("fe80::2".parse().unwrap()),
            u64::from(t),
            250,
        )
        .exec_args(["ls", "-l", "My Documents"])
        .exec_env(["A=1", "B=two words"])
        .path("bin/ls")
        .path("/bin/ls")
        .attr(&Attr {
            bits64: false,
            mode: 0o100755,
            uid: 0,
            gid: 80,
            fsid: 1,
            node_id: 2,
            device: 3,
        })
        .subject(
            SubjectForm::Bits64Ex,
            [501, 501, 20, 502, 21, 200, 7],
            9,
            "fe80::1".parse().unwrap(),
        )
        .return64(0, 0)
        .finish(),
    );
    // 200 exits with status 3.
    trail.extend(
        subject(RecordWriter::new(1, t + 1, 0).exit(3, 0), 200)
            .return32(0, 0)
            .finish(),
    );
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(&trail);
    assert_eq!(
        decoder.stats().skipped_total(),
        0,
        "{:?}",
        decoder.stats().problems()
    );
    let rows = table(&mut decoder, "process_events");
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                get(r, "syscall"),
                get(r, "pid"),
                get(r, "parent"),
                get(r, "status"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some("fork"), Some("200"), Some("100"), Some("0")),
            (Some("vfork"), Some("201"), Some("100"), Some("0")),
            (Some("posix_spawn"), Some("300"), Some("100"), Some("0")),
            (Some("execve"), Some("200"), Some("100"), Some("0")),
            (Some("exit"), Some("200"), Some("100"), Some("3")),
        ]
    );
    expect(
        &rows[2],
        &[
            ("path", Some("/usr/bin/true")),
            ("cmdline", Some("/usr/bin/true --version")),
            ("mode", Some("100755")),
        ],
    );
    expect(
        &rows[3],
        &[
            // The resolved path, not the one as given.
            ("path", Some("/bin/ls")),
            ("cmdline", Some(r#"ls -l "My Documents""#)),
            ("cmdline_size", Some("20")),
            ("env", Some(r#"A=1 "B=two words""#)),
            ("env_count", Some("2")),
            ("env_size", Some("17")),
            ("uid", Some("502")),
            ("gid", Some("21")),
            ("euid", Some("501")),
            ("owner_gid", Some("80")),
            ("time_ns", Some("1700000000250000000")),
        ],
    );
    // Fork and exit rows describe no image.
    expect(
        &rows[0],
        &[("path", None), ("cmdline", None), ("mode", None)],
    );
}

#[test]
fn connect_bind_and_accept_fill_socket_events() {
    let t = 1_700_000_000;
    let mut trail = Vec::new();
    trail.extend(
        subject(
            RecordWriter::new(32, t, 0)
                .arg32(1, 5, "fd")
                .sock_inet32(2, 443, [93, 184, 216, 34]),
            10,
        )
        .return32(0, 0)
        .finish(),
    );
    let mut v6 = [0u8; 16];
    v6[15] = 1;
    trail.extend(
        subject(
            RecordWriter::new(34, t, 0)
                .arg32(1, 6, "fd")
                .sock_inet128(26, 8080, v6),
            10,
        )
        .return32(0, 0)
        .finish(),
    );
    trail.extend(
        subject(RecordWriter::new(33, t, 0).arg32(1, 6, "fd"), 10)
            .return32(11, u32::MAX)
            .finish(),
    );
    trail.extend(
        subject(
            RecordWriter::new(32, t, 0)
                .arg32(1, 7, "fd")
                .sock_inet32(2, 80, [10, 0, 0, 1]),
            10,
        )
        .return32(150, u32::MAX)
        .finish(),
    );
    trail.extend(
        subject(
            RecordWriter::new(32, t, 0)
                .arg32(1, 8, "fd")
                .sock_unix(1, "/var/run/syslog"),
            10,
        )
        .return32(2, u32::MAX)
        .finish(),
    );
    let local: IpAddr = "192.168.1.2".parse().unwrap();
    let remote: IpAddr = "192.168.1.3".parse().unwrap();
    trail.extend(
        subject(
            RecordWriter::new(33, t, 0).socket_ex(2, 2, (22, local), (50_000, remote)),
            10,
        )
        .return32(0, 9)
        .finish(),
    );
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(&trail);
    assert_eq!(
        decoder.stats().skipped_total(),
        0,
        "{:?}",
        decoder.stats().problems()
    );
    let rows = table(&mut decoder, "socket_events");
    let cols = [
        "action",
        "fd",
        "family",
        "local_address",
        "local_port",
        "remote_address",
        "remote_port",
        "socket",
        "success",
        "status",
    ];
    let got: Vec<Vec<Option<&str>>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| get(r, c)).collect())
        .collect();
    let s = Some;
    assert_eq!(
        got,
        [
            vec![
                s("connect"),
                s("5"),
                s("2"),
                None,
                None,
                s("93.184.216.34"),
                s("443"),
                None,
                s("1"),
                s("succeeded")
            ],
            vec![
                s("bind"),
                s("6"),
                s("26"),
                s("::1"),
                s("8080"),
                None,
                None,
                None,
                s("1"),
                s("succeeded")
            ],
            vec![
                s("accept"),
                s("6"),
                None,
                None,
                None,
                None,
                None,
                None,
                s("0"),
                s("no_client")
            ],
            vec![
                s("connect"),
                s("7"),
                s("2"),
                None,
                None,
                s("10.0.0.1"),
                s("80"),
                None,
                s("0"),
                s("in_progress")
            ],
            vec![
                s("connect"),
                s("8"),
                s("1"),
                None,
                None,
                None,
                None,
                s("/var/run/syslog"),
                s("0"),
                s("failed")
            ],
            vec![
                s("accept"),
                None,
                s("2"),
                s("192.168.1.2"),
                s("22"),
                s("192.168.1.3"),
                s("50000"),
                None,
                s("1"),
                s("succeeded")
            ],
        ]
    );
    expect(&rows[0], &[("pid", Some("10")), ("auid", Some("501"))]);
}

#[test]
fn file_operations_fill_process_file_events() {
    let t = 1_700_000_000;
    let mut trail = Vec::new();
    trail.extend(
        subject(
            RecordWriter::new(81, t, 0)
                .arg32(2, 0x202, "flags")
                .path("/tmp/new"),
            7,
        )
        .return32(0, 3)
        .finish(),
    );
    trail.extend(
        subject(
            RecordWriter::new(3, t, 0)
                .arg32(2, 0x601, "flags")
                .path("/etc/hosts"),
            7,
        )
        .return32(0, 3)
        .finish(),
    );
    trail.extend(
        subject(
            RecordWriter::new(42, t, 0)
                .path("/tmp/a")
                .attr(&Attr {
                    bits64: false,
                    mode: 0o100644,
                    uid: 501,
                    gid: 20,
                    fsid: 1,
                    node_id: 2,
                    device: 3,
                })
                .path("/tmp/b"),
            7,
        )
        .return32(0, 0)
        .finish(),
    );
    trail.extend(
        subject(
            RecordWriter::new(5, t, 0)
                .path("/tmp/src")
                .path("/tmp/hardlink"),
            7,
        )
        .return32(0, 0)
        .finish(),
    );
    trail.extend(
        subject(RecordWriter::new(286, t, 0).path("x").path("/tmp/x"), 7)
            .return32(0, 0)
            .finish(),
    );
    trail.extend(
        subject(
            RecordWriter::new(10, t, 0)
                .arg32(2, 0o755, "new file mode")
                .path("/tmp/y"),
            7,
        )
        .return32(0, 0)
        .finish(),
    );
    trail.extend(
        subject(RecordWriter::new(284, t, 0).path(b"/tmp/caf\xe9"), 7)
            .return32(0, 0)
            .finish(),
    );
    trail.extend(
        subject(RecordWriter::new(43, t, 0).path("/var/log/z"), 7)
            .return32(0, 0)
            .finish(),
    );
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(&trail);
    assert_eq!(
        decoder.stats().skipped_total(),
        0,
        "{:?}",
        decoder.stats().problems()
    );
    let rows = table(&mut decoder, "process_file_events");
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                get(r, "operation"),
                get(r, "path"),
                get(r, "dest_path"),
                get(r, "flags"),
            )
        })
        .collect();
    let s = Some;
    assert_eq!(
        got,
        [
            (s("open"), s("/tmp/new"), None, s("O_RDWR|O_CREAT")),
            (s("open"), s("/etc/hosts"), None, s("0x601")),
            (s("rename"), s("/tmp/a"), s("/tmp/b"), None),
            (s("link"), s("/tmp/src"), s("/tmp/hardlink"), None),
            (s("unlink"), s("/tmp/x"), None, None),
            (s("chmod"), s("/tmp/y"), None, None),
            (s("chown"), s("/tmp/caf\u{fffd}"), None, None),
            (s("truncate"), s("/var/log/z"), None, None),
        ]
    );
    expect(
        &rows[0],
        &[
            ("pid", Some("7")),
            ("uid", Some("501")),
            ("euid", Some("0")),
            ("auid", Some("501")),
            ("gid", Some("20")),
        ],
    );
    // The path that is not UTF-8 keeps its bytes in the sidecar.
    assert_eq!(get(&rows[6], "path_bytes"), Some("2f746d702f636166e9"));
}

#[test]
fn logins_sudo_and_ssh_fill_user_events() {
    let t = 1_700_000_000;
    let mut trail = Vec::new();
    trail.extend(
        RecordWriter::new(45028, t, 0)
            .subject(
                SubjectForm::Bits32Ex,
                [501, 0, 0, 501, 20, 4000, 12],
                0,
                "0.0.0.0".parse().unwrap(),
            )
            .text("sudo: alice : TTY=ttys000 ; COMMAND=/bin/ls")
            .text("authenticated")
            .return32(0, 0)
            .finish(),
    );
    trail.extend(
        RecordWriter::new(32800, t, 0)
            .subject(
                SubjectForm::Bits32Ex,
                [502, 502, 20, 502, 20, 4100, 13],
                51_234,
                "2001:db8::7".parse().unwrap(),
            )
            .text("successful login bob")
            .return32(0, 0)
            .finish(),
    );
    trail.extend(
        subject(RecordWriter::new(6153, t, 0), 4200)
            .return32(0, 0)
            .finish(),
    );
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(&trail);
    assert_eq!(
        decoder.stats().skipped_total(),
        0,
        "{:?}",
        decoder.stats().problems()
    );
    let rows = table(&mut decoder, "user_events");
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                get(r, "type"),
                get(r, "uid"),
                get(r, "pid"),
                get(r, "message"),
                get(r, "address"),
                get(r, "terminal"),
            )
        })
        .collect();
    let s = Some;
    assert_eq!(
        got,
        [
            (
                s("45028"),
                s("501"),
                s("4000"),
                s("sudo: alice : TTY=ttys000 ; COMMAND=/bin/ls; authenticated"),
                s("0.0.0.0"),
                s("0")
            ),
            (
                s("32800"),
                s("502"),
                s("4100"),
                s("successful login bob"),
                s("2001:db8::7"),
                s("51234")
            ),
            (s("6153"), s("501"), s("4200"), None, s("0.0.0.0"), s("0")),
        ]
    );
}

#[test]
fn records_no_table_wants_are_counted_by_event_name() {
    let mut trail = Vec::new();
    for event in [45000, 45000, 37, 9999] {
        trail.extend(
            subject(RecordWriter::new(event, 1, 0), 1)
                .return32(0, 0)
                .finish(),
        );
    }
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(&trail);
    assert_eq!(decoder.buffered_rows(), 0);
    assert_eq!(decoder.stats().skipped(SkipReason::UnmappedEventType), 4);
    assert_eq!(
        decoder.stats().unmapped_event_types(),
        [
            ("AUE_audit_startup".to_string(), 2),
            ("AUE_SETTIMEOFDAY".to_string(), 1),
            ("event 9999".to_string(), 1)
        ]
    );
    assert_eq!(decoder.stats().lines, 4);
    assert_eq!(decoder.stats().bytes, trail.len() as u64);
}

#[test]
fn unreadable_bodies_are_reported_with_their_offset_and_the_rest_kept() {
    let good = subject(RecordWriter::new(23, 1, 0).path("/bin/ok"), 1)
        .return32(0, 0)
        .finish();
    // Apple's krb5_principal (0xee) has no published layout.
    let unknown = subject(RecordWriter::new(23, 2, 0).path("/bin/x"), 1)
        .raw(&[0xee, 1, 2, 3])
        .finish();
    let no_subject = RecordWriter::new(23, 3, 0)
        .path("/bin/y")
        .return32(0, 0)
        .finish();
    // A path whose length runs past the trailer: well framed, bad inside.
    let overrun = subject(RecordWriter::new(23, 4, 0), 1)
        .raw(&[0x23, 0x7f, 0xff, b'/'])
        .finish();
    // Identity tokens are read, not stumbled over.
    let identity = subject(RecordWriter::new(23, 5, 0).path("/bin/ls"), 1)
        .return32(0, 0)
        .identity(1, "com.apple.ls", "", &[0xab; 20])
        .finish();
    let mut trail = Vec::new();
    let mut offsets = Vec::new();
    for r in [&good, &unknown, &no_subject, &overrun, &identity, &good] {
        offsets.push(trail.len());
        trail.extend_from_slice(r);
    }
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(&trail);
    assert_eq!(decoder.events_by_table()[0].1, 3);
    let problems: Vec<String> = decoder
        .stats()
        .problems()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let unknown_at = offsets[1] + unknown.len() - 7 - 4;
    let overrun_at = offsets[3] + overrun.len() - 7 - 4;
    assert_eq!(
        problems,
        [
            format!("byte {unknown_at}: malformed: unknown token id 0xee"),
            format!(
                "byte {}: missing_field: record of event 23 has no subject token",
                offsets[2]
            ),
            format!("byte {overrun_at}: malformed: token 0x23 runs past the end of its record"),
        ]
    );
}

#[test]
fn damage_between_records_names_its_trail_and_offset() {
    let good = subject(RecordWriter::new(23, 1, 0), 1)
        .return32(0, 0)
        .finish();
    let mut trail = good.clone();
    trail.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    trail.extend_from_slice(&good);
    trail.extend_from_slice(&good[..20]);
    let mut decoder = BsmDecoder::new();
    decoder.set_source("20240101000000.crash_recovery");
    decoder.decode_bytes(&trail);
    let problems: Vec<String> = decoder
        .stats()
        .problems()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let n = good.len();
    assert_eq!(
        problems,
        [
            format!(
                "byte {n}: malformed: 20240101000000.crash_recovery: expected a header token, found byte 0xde (4 bytes skipped)"
            ),
            format!(
                "byte {}: truncated: 20240101000000.crash_recovery: record of {n} bytes cut short after 20 bytes (20 bytes skipped)",
                2 * n + 4
            ),
        ]
    );
    assert_eq!(decoder.events_by_table()[0].1, 2);
}
