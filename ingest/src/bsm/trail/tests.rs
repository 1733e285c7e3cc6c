//! Rotation, crash recovery and restarts of a trail directory, with real
//! files in a temporary directory.

use std::io::Write;

use super::*;
use crate::bsm::encode::RecordWriter;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "sluice-trail-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&path).unwrap();
    TempDir(path)
}

/// A record whose header time identifies it.
fn record(n: u32) -> Vec<u8> {
    RecordWriter::new(23, n, 0)
        .exec_args([format!("cmd{n}")])
        .finish()
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn point_current(dir: &Path, trail: &str) {
    let link = dir.join("current");
    let _ = std::fs::remove_file(&link);
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join(trail), &link).unwrap();
}

fn poll(f: &mut TrailFollower) -> (Vec<String>, Vec<String>) {
    let mut seen = Vec::new();
    let result = f
        .poll(&mut |trail, frame| {
            seen.push(match frame {
                Frame::Record(r) => format!("{}:{}", &trail[..14], r.header.seconds),
                Frame::Corrupt(c) if c.is_truncation() => format!("{}:cut", &trail[..14]),
                Frame::Corrupt(c) => format!("{}:damage {c}", &trail[..14]),
                Frame::FileToken { .. } => format!("{}:file", &trail[..14]),
            });
            Ok::<(), io::Error>(())
        })
        .unwrap();
    (seen, result.finished)
}

const A: &str = "20240101000000";
const B: &str = "20240101010000";
const C: &str = "20240101020000";

#[test]
fn names_parse_and_sort_in_time_order() {
    let dir = tempdir();
    for name in [
        format!("{B}.not_terminated"),
        format!("{A}.{B}"),
        "current".to_string(),
        "audit_control".to_string(),
        format!("{C}.crash_recovery"),
        "20240101.short".to_string(),
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let names: Vec<String> = list_trails(dir.path())
        .unwrap()
        .into_iter()
        .map(|(t, _)| t.file_name)
        .collect();
    assert_eq!(
        names,
        [
            format!("{A}.{B}"),
            format!("{B}.not_terminated"),
            format!("{C}.crash_recovery")
        ]
    );
    assert_eq!(
        TrailName::parse(&format!("{A}.{B}")).unwrap().end,
        TrailEnd::Terminated(B.to_string())
    );
}

#[test]
fn follows_appends_rotation_and_crash_recovery_without_loss() {
    let dir = tempdir();
    let d = dir.path();
    let a_open = d.join(format!("{A}.not_terminated"));
    let r3 = record(3);
    let mut first = record(1);
    first.extend(record(2));
    first.extend_from_slice(&r3[..10]);
    append(&a_open, &first);
    point_current(d, &format!("{A}.not_terminated"));

    let mut f = TrailFollower::new(d, StartAt::Oldest);
    assert_eq!(
        poll(&mut f),
        (vec![format!("{A}:1"), format!("{A}:2")], vec![])
    );
    // Nothing new: nothing happens, the half record waits.
    assert_eq!(poll(&mut f), (vec![], vec![]));

    // The rest of record 3 arrives, then record 4.
    append(&a_open, &r3[10..]);
    append(&a_open, &record(4));
    assert_eq!(
        poll(&mut f),
        (vec![format!("{A}:3"), format!("{A}:4")], vec![])
    );

    // auditd writes a last record, closes A and opens B.
    append(&a_open, &record(5));
    let a_done = format!("{A}.{B}");
    std::fs::rename(&a_open, d.join(&a_done)).unwrap();
    let b_open = d.join(format!("{B}.not_terminated"));
    append(&b_open, &record(6));
    point_current(d, &format!("{B}.not_terminated"));
    assert_eq!(
        poll(&mut f),
        (vec![format!("{A}:5"), format!("{B}:6")], vec![a_done])
    );

    // A crash cuts B in the middle of record 7; auditd restarts, recovers B
    // and opens C.
    let r7 = record(7);
    append(&b_open, &r7[..r7.len() - 3]);
    let b_recovered = format!("{B}.crash_recovery");
    std::fs::rename(&b_open, d.join(&b_recovered)).unwrap();
    append(&d.join(format!("{C}.not_terminated")), &record(8));
    point_current(d, &format!("{C}.not_terminated"));
    assert_eq!(
        poll(&mut f),
        (
            vec![format!("{B}:cut"), format!("{C}:8")],
            vec![b_recovered]
        )
    );
    assert_eq!(
        f.current_trail(),
        Some(format!("{C}.not_terminated").as_str())
    );
}

#[test]
fn a_new_trail_finishes_the_old_one_even_before_it_is_renamed() {
    let dir = tempdir();
    let d = dir.path();
    append(&d.join(format!("{A}.not_terminated")), &record(1));
    let mut f = TrailFollower::new(d, StartAt::Oldest);
    assert_eq!(poll(&mut f).0, [format!("{A}:1")]);
    append(&d.join(format!("{B}.not_terminated")), &record(2));
    let (seen, finished) = poll(&mut f);
    assert_eq!(seen, [format!("{B}:2")]);
    assert_eq!(finished, [format!("{A}.not_terminated")]);
    // The old trail is not read again when it is renamed later.
    std::fs::rename(
        d.join(format!("{A}.not_terminated")),
        d.join(format!("{A}.{B}")),
    )
    .unwrap();
    assert_eq!(poll(&mut f), (vec![], vec![]));
}

#[test]
fn start_at_current_skips_older_trails() {
    let dir = tempdir();
    let d = dir.path();
    append(&d.join(format!("{A}.{B}")), &record(1));
    append(&d.join(format!("{B}.not_terminated")), &record(2));
    point_current(d, &format!("{B}.not_terminated"));
    let mut f = TrailFollower::new(d, StartAt::Current);
    assert_eq!(poll(&mut f).0, [format!("{B}:2")]);
    let mut f = TrailFollower::new(d, StartAt::Oldest);
    assert_eq!(poll(&mut f).0, [format!("{A}:1"), format!("{B}:2")]);
}

#[test]
fn an_empty_or_missing_directory_is_quiet_or_an_error() {
    let dir = tempdir();
    let mut f = TrailFollower::new(dir.path(), StartAt::Oldest);
    assert_eq!(poll(&mut f), (vec![], vec![]));
    let mut f = TrailFollower::new(dir.path().join("nope"), StartAt::Oldest);
    let err = f.poll(&mut |_, _| Ok::<(), io::Error>(())).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
