use std::time::{Duration, Instant};

use arrow::array::{Array, Int32Array, Int64Array, StringArray};

use super::*;

fn config(dir: &Path, patterns: &[&str], exclude: &[&str]) -> FimConfig {
    let root = dir.to_str().unwrap();
    let own = |v: &[&str]| {
        v.iter()
            .map(|p| p.replace("{root}", root))
            .collect::<Vec<_>>()
    };
    let mut config = FimConfig::default();
    config.file_paths.insert("watched".into(), own(patterns));
    if !exclude.is_empty() {
        config.exclude_paths.insert("watched".into(), own(exclude));
    }
    config
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone();
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
        .collect()
}

/// Waits (bounded) until the watcher has delivered events for which `done`
/// holds, then returns the batch.
fn collect_until(
    watcher: &FimWatcher,
    collector: &mut FimCollector,
    done: impl Fn(&[(String, String)]) -> bool,
) -> RecordBatch {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut batches = Vec::new();
    while Instant::now() < deadline && !done(&seen) {
        watcher.wait(collector, Duration::from_millis(100), || {
            1_714_564_800_000_000_000
        });
        watcher.drain(collector, || 1_714_564_800_000_000_000);
        if let Some(batch) = collector.take_batch().unwrap() {
            let paths = strings(&batch, "target_path");
            let actions = strings(&batch, "action");
            for (p, a) in paths.into_iter().zip(actions) {
                seen.push((p.unwrap(), a.unwrap()));
            }
            batches.push(batch);
        }
    }
    assert!(done(&seen), "events seen: {seen:?}");
    arrow::compute::concat_batches(&FILE_EVENTS.schema(), &batches).unwrap()
}

fn has(seen: &[(String, String)], path: &Path, action: &str) -> bool {
    seen.iter()
        .any(|(p, a)| p == path.to_str().unwrap() && a == action)
}

#[test]
fn osquery_patterns_pick_categories_and_watch_roots() {
    let mut config = FimConfig::default();
    config
        .file_paths
        .insert("ssh".into(), vec!["/home/%/.ssh/%%".into()]);
    config
        .file_paths
        .insert("etc".into(), vec!["/etc/%%".into(), "/etc/hosts".into()]);
    config
        .exclude_paths
        .insert("etc".into(), vec!["/etc/mtab".into()]);
    let rules = FimRules::new(&config).unwrap();
    assert_eq!(
        rules.category(b"/home/alice/.ssh/authorized_keys"),
        Some("ssh")
    );
    assert_eq!(rules.category(b"/home/alice/notes"), None);
    assert_eq!(rules.category(b"/etc/passwd"), Some("etc"));
    assert_eq!(rules.category(b"/etc/mtab"), None, "excluded");
    assert_eq!(
        rules.roots(),
        [
            WatchRoot {
                path: "/etc".into(),
                recursive: true
            },
            WatchRoot {
                path: "/home".into(),
                recursive: true
            },
        ],
        "/etc/hosts is under the recursive /etc root"
    );
}

#[test]
fn bad_configs_are_errors() {
    let mut config = FimConfig::default();
    config
        .file_paths
        .insert("x".into(), vec!["relative/%%".into()]);
    assert!(
        FimRules::new(&config)
            .unwrap_err()
            .to_string()
            .contains("absolute")
    );
    let mut config = FimConfig::default();
    config
        .exclude_paths
        .insert("nope".into(), vec!["/x".into()]);
    assert!(
        FimRules::new(&config)
            .unwrap_err()
            .to_string()
            .contains("nope")
    );
}

#[test]
fn actions_follow_osquery() {
    use notify::event::{AccessMode, CreateKind, DataChange, MetadataKind, RemoveKind};
    let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    assert_eq!(action(&rename, 0, false), Some("MOVED_FROM"));
    assert_eq!(action(&rename, 1, false), Some("MOVED_TO"));
    assert_eq!(
        action(&EventKind::Create(CreateKind::File), 0, false),
        Some("CREATED")
    );
    assert_eq!(
        action(&EventKind::Remove(RemoveKind::File), 0, false),
        Some("DELETED")
    );
    assert_eq!(
        action(
            &EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            0,
            false
        ),
        Some("UPDATED")
    );
    assert_eq!(
        action(
            &EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
            0,
            false
        ),
        Some("ATTRIBUTES_MODIFIED")
    );
    let open = EventKind::Access(AccessKind::Open(AccessMode::Read));
    assert_eq!(action(&open, 0, false), None, "accesses are off by default");
    assert_eq!(action(&open, 0, true), Some("OPENED"));
    assert_eq!(
        action(&EventKind::Access(AccessKind::Read), 0, true),
        Some("ACCESSED")
    );
}

#[test]
fn real_file_changes_become_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &["{root}/%%"], &["{root}/skip/%%"]);
    let mut collector = FimCollector::new(&config).unwrap();
    let watcher = FimWatcher::start(collector.rules(), 1024).unwrap();

    std::fs::create_dir(dir.path().join("skip")).unwrap();
    let file = dir.path().join("a.txt");
    let moved = dir.path().join("b.txt");
    std::fs::write(&file, b"hello").unwrap();
    std::fs::write(dir.path().join("skip").join("x"), b"ignored").unwrap();
    std::fs::rename(&file, &moved).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&moved, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::remove_file(&moved).unwrap();

    let batch = collect_until(&watcher, &mut collector, |seen| {
        has(seen, &file, "CREATED")
            && has(seen, &file, "MOVED_FROM")
            && has(seen, &moved, "MOVED_TO")
            && has(seen, &moved, "DELETED")
    });
    let paths = strings(&batch, "target_path");
    assert!(
        !paths
            .iter()
            .any(|p| p.as_deref().unwrap().contains("/skip/")),
        "excluded paths are not stored: {paths:?}"
    );
    assert!(
        strings(&batch, "category")
            .iter()
            .all(|c| c.as_deref() == Some("watched"))
    );
    assert!(
        collector.ignored() > 0,
        "the excluded write was seen and ignored"
    );
    let tids = batch
        .column_by_name("transaction_id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let actions = strings(&batch, "action");
    let from = actions
        .iter()
        .position(|a| a.as_deref() == Some("MOVED_FROM"))
        .unwrap();
    let to = actions
        .iter()
        .position(|a| a.as_deref() == Some("MOVED_TO"))
        .unwrap();
    assert_eq!(
        tids.value(from),
        tids.value(to),
        "the two halves of a move share an id"
    );
    assert_eq!(watcher.dropped(), 0);
}

#[test]
fn changed_files_are_hashed_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), &["{root}/%"], &[]);
    config.hash = HashConfig {
        md5: true,
        sha1: true,
        sha256: true,
        max_file_bytes: 1024,
        ..HashConfig::default()
    };
    let mut collector = FimCollector::new(&config).unwrap();
    let watcher = FimWatcher::start(collector.rules(), 1024).unwrap();
    let small = dir.path().join("small");
    let big = dir.path().join("big");
    std::fs::write(&small, b"abc").unwrap();
    std::fs::write(&big, vec![b'x'; 4096]).unwrap();
    let batch = collect_until(&watcher, &mut collector, |seen| {
        has(seen, &small, "UPDATED") && has(seen, &big, "UPDATED")
    });
    let paths = strings(&batch, "target_path");
    let md5 = strings(&batch, "md5");
    let sha256 = strings(&batch, "sha256");
    let hashed = batch
        .column_by_name("hashed")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap()
        .clone();
    let actions = strings(&batch, "action");
    let row = |path: &Path| {
        (0..batch.num_rows())
            .rev()
            .find(|&i| {
                paths[i].as_deref() == path.to_str() && actions[i].as_deref() == Some("UPDATED")
            })
            .unwrap()
    };
    let s = row(&small);
    assert_eq!(md5[s].as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
    assert_eq!(
        sha256[s].as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(hashed.value(s), 1);
    let b = row(&big);
    assert_eq!(hashed.value(b), -1, "over max_file_bytes");
    assert_eq!(md5[b], None);
    let sizes = batch
        .column_by_name("size")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(sizes.value(s), 3);
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &["{root}/%"], &[]);
    let collector = FimCollector::new(&config).unwrap();
    let watcher = FimWatcher::start(collector.rules(), 1).unwrap();
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.dropped() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        watcher.dropped() > 0,
        "nothing read the queue, so events were dropped"
    );
}

#[test]
fn the_builder_fills_every_column() {
    let mut builder = FileEventsBuilder::new();
    builder.append(&FileEventRow {
        target_path: "/etc/hosts",
        category: "etc",
        action: "UPDATED",
        transaction_id: 7,
        stat: Some(FileStat {
            inode: 1,
            uid: 0,
            gid: 0,
            mode: 0o644,
            size: 10,
            atime: 1,
            mtime: 2,
            ctime: 3,
            regular: true,
        }),
        hashed: 0,
        time_ns: 1_714_564_800_123_000_000,
        ..FileEventRow::default()
    });
    builder.append(&FileEventRow {
        target_path: "/etc/gone",
        category: "etc",
        action: "DELETED",
        time_ns: 1_714_564_801_000_000_000,
        ..FileEventRow::default()
    });
    let batch = builder.finish().unwrap();
    assert_eq!(batch.schema(), FILE_EVENTS.schema());
    assert_eq!(strings(&batch, "mode"), [Some("0644".into()), None]);
    let time = batch
        .column_by_name("time")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(time.value(0), 1_714_564_800);
    assert!(builder.is_empty());
}
