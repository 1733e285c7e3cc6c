//! A full disk: the storage keeps running, counts what it refuses, loses
//! nothing it acknowledged, and recovers once space returns.
//!
//! The disk is real: a 2 MiB tmpfs mounted for the test (this needs root;
//! without it the test says so on stderr and passes without checking, since
//! no unprivileged way to get a real ENOSPC exists). It is filled with a
//! ballast file while batches keep arriving, then the ballast is deleted.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_sinks::{CompactionPolicy, FsyncPolicy, Storage, StorageOptions, WalOptions};

const T0: i64 = 1_700_000_000;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("time", DataType::Int64, true),
        Field::new("id", DataType::Int64, false),
        Field::new("path", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = ids.collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| T0 + i))),
            Arc::new(Int64Array::from(ids.clone())),
            // Paths that do not compress to nothing, so files have some size.
            Arc::new(StringArray::from_iter_values(ids.iter().map(|i| {
                format!("/Users/alice/Library/Caches/{:x}/{i}", i * 2_654_435_761)
            }))),
        ],
    )
    .unwrap()
}

fn stored_ids(dir: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") {
                let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
                for b in reader {
                    let b = b.unwrap();
                    let col = b.column_by_name("id").unwrap();
                    let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
                    ids.extend(col.values().iter().copied());
                }
            }
        }
    }
    ids.sort_unstable();
    ids
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_err()
        {
            break;
        }
    }
    // Single bytes too, so not even a small record fits.
    while file.write_all(&[0]).and_then(|()| file.sync_all()).is_ok() {}
}

#[test]
fn a_full_disk_refuses_and_counts_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = Tmpfs::mount(&mnt, "2m") else {
        eprintln!("full_disk: cannot mount a tmpfs (not root?); nothing checked");
        return;
    };
    let data_dir = mnt.join("data");
    let options = StorageOptions {
        wal: WalOptions {
            fsync: FsyncPolicy::EveryBatch,
            segment_bytes: 64 * 1024,
        },
        roll_bytes: usize::MAX, // roll only when told (maintain with roll_age 0)
        roll_age: Duration::ZERO,
        retry_after: Duration::ZERO,
        hot_budget_bytes: 8 << 20,
        compaction: CompactionPolicy {
            enabled: false,
            ..CompactionPolicy::default()
        },
        ..StorageOptions::default()
    };
    let (storage, _) = Storage::open(&data_dir, options.clone()).unwrap();

    // Acknowledged before the disk fills; still in memory and the WAL.
    let mut next = 0i64;
    let mut acked = Vec::new();
    for _ in 0..5 {
        storage.append("t", batch(next..next + 50)).unwrap();
        acked.extend(next..next + 50);
        next += 50;
    }

    let ballast = mnt.join("ballast");
    fill(&ballast);

    // The disk is full: rolls fail and are counted, appends are refused and
    // counted, nothing panics or hangs, acknowledged rows stay hot.
    let mut refused_rows = 0;
    for _ in 0..20 {
        match storage.append("t", batch(next..next + 50)) {
            Ok(_) => acked.extend(next..next + 50),
            Err(err) => {
                assert!(err.is_out_of_space(), "unexpected error: {err}");
                refused_rows += 50;
            }
        }
        next += 50;
        storage.maintain().unwrap();
    }
    // maintain hands due rolls to the roller thread; let it try them.
    storage.wait_for_rolls();
    let stats = storage.stats();
    assert!(refused_rows > 0, "the full disk refused nothing");
    assert_eq!(stats.refused_rows, refused_rows as u64);
    assert!(stats.failed_rolls > 0, "{stats:?}");
    let hot_rows: usize = storage
        .hot_tail()
        .snapshot("t")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(
        hot_rows,
        acked.len(),
        "acknowledged rows are still queryable"
    );
    assert!(stats.last_error.is_some());

    // Space returns: the same storage carries on.
    fs::remove_file(&ballast).unwrap();
    for _ in 0..5 {
        storage.append("t", batch(next..next + 50)).unwrap();
        acked.extend(next..next + 50);
        next += 50;
    }
    storage.flush().unwrap();
    assert_eq!(stored_ids(&data_dir), acked, "every acknowledged row, once");
    drop(storage);

    // The failed WAL writes left no garbage behind: a restart replays
    // nothing and cuts nothing.
    let (storage, report) = Storage::open(&data_dir, options).unwrap();
    assert_eq!(report.replayed_rows, 0, "{report:?}");
    assert_eq!(report.torn_bytes, 0, "{report:?}");
    storage.append("t", batch(next..next + 1)).unwrap();
    storage.flush().unwrap();
    acked.push(next);
    assert_eq!(stored_ids(&data_dir), acked);
}
