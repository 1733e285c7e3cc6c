use super::*;
use arrow::array::{AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// 2023-11-14 22:13:20 UTC.
const T0: i64 = 1_700_000_000;

fn batch(ids: std::ops::Range<i64>, time: impl Fn(i64) -> i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("time", DataType::Int64, true),
        Field::new("id", DataType::Int64, false),
        Field::new("path", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = ids.collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids.iter().map(|&i| time(i)))),
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("/Users/a/file{}", i % 7)),
            )),
        ],
    )
    .unwrap()
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if !name.starts_with('.') {
                    stack.push(p);
                }
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every batch stored in Parquet under `data_dir/table`.
fn stored_batches(data_dir: &Path, table: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for path in parquet_files(&data_dir.join(table)) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

/// Every `id` stored in Parquet under `data_dir/table`, sorted.
fn stored_ids(data_dir: &Path, table: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    for b in stored_batches(data_dir, table) {
        let col = b.column_by_name("id").unwrap();
        let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
        ids.extend(col.values().iter().copied());
    }
    ids.sort();
    ids
}

use std::fs::File;
use std::time::UNIX_EPOCH;

fn options() -> StorageOptions {
    StorageOptions {
        wal: WalOptions {
            fsync: crate::FsyncPolicy::Off,
            ..WalOptions::default()
        },
        ..StorageOptions::default()
    }
}

#[test]
fn appended_batches_are_hot_then_parquet_and_the_wal_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, report) = Storage::open(dir.path(), options()).unwrap();
    assert_eq!(report, RecoveryReport::default());
    let a = storage.append("t", batch(0..10, |i| T0 + i)).unwrap();
    let b = storage.append("t", batch(10..20, |i| T0 + i)).unwrap();
    assert_eq!((a.seq, b.seq), (1, 2));
    let hot: usize = storage
        .hot_tail()
        .snapshot("t")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(hot, 20);
    assert!(parquet_files(dir.path()).is_empty());

    storage.flush().unwrap();
    assert!(storage.hot_tail().snapshot("t").is_empty());
    let files = parquet_files(dir.path());
    assert_eq!(files.len(), 1, "two batches of one hour become one file");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        WalRange::from_file_name(&name),
        Some(WalRange { first: 1, last: 2 })
    );
    assert_eq!(stored_ids(dir.path(), "t"), (0..20).collect::<Vec<_>>());
    drop(storage);

    let (storage, report) = Storage::open(dir.path(), options()).unwrap();
    assert_eq!(report.replayed_rows, 0);
    // The WAL segment was trimmed, and numbering continues.
    assert_eq!(
        storage.append("t", batch(20..21, |i| T0 + i)).unwrap().seq,
        3
    );
}

#[test]
fn unflushed_batches_are_replayed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, _) = Storage::open(dir.path(), options()).unwrap();
        storage.append("t", batch(0..5, |i| T0 + i)).unwrap();
        storage.flush().unwrap();
        storage.append("t", batch(5..8, |i| T0 + i)).unwrap();
        storage.append("u", batch(0..4, |i| T0 + i)).unwrap();
        // Dropped without flush: the process "dies" here.
    }
    let (storage, report) = Storage::open(dir.path(), options()).unwrap();
    assert_eq!(report.replayed_batches, 2);
    assert_eq!(report.replayed_rows, 7);
    storage.flush().unwrap();
    assert_eq!(stored_ids(dir.path(), "t"), (0..8).collect::<Vec<_>>());
    assert_eq!(stored_ids(dir.path(), "u"), (0..4).collect::<Vec<_>>());
}

#[test]
fn a_crash_between_publish_and_checkpoint_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let wal_copy = tempfile::tempdir().unwrap();
    {
        let (storage, _) = Storage::open(dir.path(), options()).unwrap();
        // One batch spanning two hours, so the roll writes two files.
        storage.append("t", batch(0..10, |i| T0 + i * 600)).unwrap();
        // Keep the WAL as it was before the roll...
        for e in fs::read_dir(dir.path().join(WAL_DIR)).unwrap() {
            let p = e.unwrap().path();
            fs::copy(&p, wal_copy.path().join(p.file_name().unwrap())).unwrap();
        }
        storage.flush().unwrap();
    }
    assert_eq!(parquet_files(dir.path()).len(), 2);
    // ...and put it back, as if the process died after publishing the files
    // but before the checkpoint; and as if it died between the two renames.
    let restore = || {
        let wal = dir.path().join(WAL_DIR);
        let _ = fs::remove_file(wal.join("checkpoint"));
        for e in fs::read_dir(wal_copy.path()).unwrap() {
            let p = e.unwrap().path();
            fs::copy(&p, wal.join(p.file_name().unwrap())).unwrap();
        }
    };
    restore();
    {
        let (storage, report) = Storage::open(dir.path(), options()).unwrap();
        assert_eq!(report.replayed_rows, 0, "{report:?}");
        assert_eq!(report.skipped_by_file_name, 2);
        storage.flush().unwrap();
    }
    assert_eq!(stored_ids(dir.path(), "t"), (0..10).collect::<Vec<_>>());

    let later_hour = parquet_files(dir.path()).pop().unwrap();
    fs::remove_file(&later_hour).unwrap();
    restore();
    let (storage, report) = Storage::open(dir.path(), options()).unwrap();
    assert_eq!(report.skipped_by_file_name, 1);
    assert!(report.replayed_rows > 0 && report.replayed_rows < 10);
    storage.flush().unwrap();
    assert_eq!(stored_ids(dir.path(), "t"), (0..10).collect::<Vec<_>>());
}

#[test]
fn rolls_by_size_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        roll_bytes: 1,
        ..options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    storage.append("t", batch(0..3, |i| T0 + i)).unwrap();
    storage.wait_for_rolls();
    assert_eq!(
        parquet_files(dir.path()).len(),
        1,
        "over roll_bytes: rolled at once (on the roller thread)"
    );
    assert_eq!(storage.stats().files_published, 1);

    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        roll_age: Duration::ZERO,
        ..super::tests::options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    storage.append("t", batch(0..3, |i| T0 + i)).unwrap();
    assert!(parquet_files(dir.path()).is_empty());
    storage.maintain().unwrap();
    storage.wait_for_rolls();
    assert_eq!(
        parquet_files(dir.path()).len(),
        1,
        "old enough: rolled by maintain"
    );

    // Without the roller thread, the appending thread rolls before
    // append returns.
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        roll_bytes: 1,
        background_rolls: false,
        ..super::tests::options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    storage.append("t", batch(0..3, |i| T0 + i)).unwrap();
    assert_eq!(parquet_files(dir.path()).len(), 1);
    assert!(parquet_files(&dir.path().join(ROLL_DIR)).is_empty());
}

#[test]
fn listener_hears_published_and_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        retention: RetentionPolicy {
            max_age: Some(Duration::from_secs(3_600)),
            max_bytes_per_table: None,
        },
        ..options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    storage.set_listener(Box::new(move |event| {
        let line = match event {
            StorageEvent::Published { table, .. } => format!("published {table}"),
            StorageEvent::Removed { table, .. } => format!("removed {table}"),
        };
        let _ = tx.lock().unwrap().send(line);
    }));
    storage.append("t", batch(0..3, |i| T0 + i)).unwrap();
    storage.flush().unwrap();
    // Three hours after T0's hour ended, it has expired.
    let now = UNIX_EPOCH + Duration::from_secs((T0 + 4 * 3_600) as u64);
    let (retention, _) = storage.housekeeping(now).unwrap();
    assert_eq!(retention.files_removed, 1);
    assert!(parquet_files(dir.path()).is_empty());
    let events: Vec<String> = rx.try_iter().collect();
    assert_eq!(events, vec!["published t", "removed t"]);
}

#[test]
fn retention_by_bytes_removes_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        roll_bytes: 1, // one file per append
        background_rolls: false,
        compaction: CompactionPolicy {
            enabled: false,
            ..CompactionPolicy::default()
        },
        ..options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    for h in 0..4 {
        storage
            .append("t", batch(h * 10..h * 10 + 10, |i| T0 + (i / 10) * 3_600))
            .unwrap();
    }
    let files = parquet_files(dir.path());
    assert_eq!(files.len(), 4);
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .collect();
    let keep_two = sizes[2] + sizes[3];
    drop(storage);
    let options = StorageOptions {
        retention: RetentionPolicy {
            max_age: None,
            max_bytes_per_table: Some(keep_two),
        },
        ..super::tests::options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    let (retention, _) = storage.housekeeping(SystemTime::now()).unwrap();
    assert_eq!(retention.files_removed, 2);
    assert_eq!(stored_ids(dir.path(), "t"), (20..40).collect::<Vec<_>>());
}

#[test]
fn compaction_merges_an_hour_and_keeps_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        roll_bytes: 1, // one file per append
        background_rolls: false,
        ..options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    for k in 0..5 {
        // Out of time order across files: the merged file is sorted.
        storage
            .append("t", batch(k * 4..k * 4 + 4, |i| T0 + 100 - i))
            .unwrap();
    }
    assert_eq!(parquet_files(dir.path()).len(), 5);
    let (_, report) = storage.housekeeping(SystemTime::now()).unwrap();
    assert_eq!(report.hours_compacted, 1);
    assert_eq!(report.files_replaced, 5);
    let files = parquet_files(dir.path());
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        WalRange::from_file_name(&name),
        Some(WalRange { first: 1, last: 5 })
    );
    assert_eq!(stored_ids(dir.path(), "t"), (0..20).collect::<Vec<_>>());
    assert!(!dir.path().join(COMPACT_DIR).exists());

    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&files[0]).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let times: Vec<i64> = reader
        .flat_map(|b| {
            let b = b.unwrap();
            let t = b.column_by_name("time").unwrap();
            t.as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    drop(storage);
    // A replay after compaction still finds the rows claimed.
    let (_, report) = Storage::open(dir.path(), super::tests::options()).unwrap();
    assert_eq!(report.replayed_rows, 0);
}

#[test]
fn file_name_ranges_round_trip() {
    let r = WalRange { first: 7, last: 42 };
    let name = format!("00000000000000000001-12-0-{}.parquet", r.tag());
    assert_eq!(WalRange::from_file_name(&name), Some(r));
    assert_eq!(
        WalRange::from_file_name("00000000000000000001-12-0.parquet"),
        None
    );
    assert_eq!(WalRange::from_file_name("x-w5-3.parquet"), None);
}

/// The roller thread publishes while a writer appends and a reader lists:
/// every snapshot (hot tail + the files listed under its read lock) holds
/// each acknowledged row exactly once, and at the end every row is in
/// Parquet once.
#[test]
fn background_rolls_never_show_a_row_twice_or_lose_one() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        roll_bytes: 4 << 10,
        compaction: CompactionPolicy {
            enabled: false,
            ..CompactionPolicy::default()
        },
        ..options()
    };
    let (storage, _) = Storage::open(dir.path(), options).unwrap();
    let acked = std::sync::atomic::AtomicI64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut checked = 0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for k in 0..200i64 {
                storage
                    .append("t", batch(k * 50..k * 50 + 50, |i| T0 + i))
                    .unwrap();
                acked.store(k * 50 + 50, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        });
        while !done.load(Ordering::SeqCst) {
            let before = acked.load(Ordering::SeqCst);
            let (mut ids, batches) = storage
                .hot_tail()
                .with_snapshot("t", || stored_ids(dir.path(), "t"));
            for b in batches {
                let col = b.column_by_name("id").unwrap();
                let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
                ids.extend(col.values().iter().copied());
            }
            ids.sort();
            let n = ids.len() as i64;
            assert!(n >= before, "rows lost: saw {n}, {before} acknowledged");
            assert_eq!(ids, (0..n).collect::<Vec<_>>(), "a row twice or a gap");
            checked += 1;
        }
    });
    assert!(checked > 0);
    // Nobody called maintain or flush: the roller alone rolled.
    storage.wait_for_rolls();
    assert!(
        storage.stats().files_published >= 1,
        "{:?}",
        storage.stats()
    );
    assert!(storage.hot_tail().table_bytes("t") < 4 << 10);
    // … and the checkpointer alone moved the WAL checkpoint past the rows
    // the roller published.
    let persisted_through = || {
        crate::wal::read_checkpoint(&dir.path().join(WAL_DIR))
            .ok()
            .map(|checkpoint| checkpoint.all_tables)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while persisted_through().unwrap_or(0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        persisted_through().unwrap_or(0) > 0,
        "{:?}",
        persisted_through()
    );
    storage.flush().unwrap();
    assert_eq!(stored_ids(dir.path(), "t"), (0..10_000).collect::<Vec<_>>());
    assert!(storage.hot_tail().snapshot("t").is_empty());
    drop(storage);
    let (_, report) = Storage::open(dir.path(), super::tests::options()).unwrap();
    assert_eq!(report.replayed_rows, 0, "{report:?}");
}

/// A roll cut short after writing its staged files (a crash): reopening
/// drops the staging directory and replays the rows from the WAL, once.
#[test]
fn leftovers_of_a_roll_cut_short_are_dropped_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, _) = Storage::open(dir.path(), options()).unwrap();
        storage.append("t", batch(0..10, |i| T0 + i)).unwrap();
        // What the roller leaves behind when the process dies between
        // staging and moving the files into place.
        let staged = ParquetPersister::new(dir.path().join(ROLL_DIR));
        let batches = storage.hot_tail().snapshot("t");
        staged
            .persist_tagged(
                "t",
                &batches[0],
                Some(&WalRange { first: 1, last: 1 }.tag()),
            )
            .unwrap();
    }
    let (storage, report) = Storage::open(dir.path(), options()).unwrap();
    assert!(!dir.path().join(ROLL_DIR).exists());
    assert_eq!(report.replayed_rows, 10);
    storage.flush().unwrap();
    assert_eq!(stored_ids(dir.path(), "t"), (0..10).collect::<Vec<_>>());
}

/// `append_all` stores each batch as `append` would, in order, and hands
/// back every outcome in order, errors included; what it acknowledged
/// survives a crash.
#[test]
fn append_all_acknowledges_each_batch_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fsync_every_batch = StorageOptions {
        wal: WalOptions::default(),
        ..StorageOptions::default()
    };
    let batches: Vec<(&str, RecordBatch, usize)> = vec![
        ("t", batch(0..100, |i| T0 + i), 0),
        ("u", batch(0..50, |i| T0 + i), 1),
        ("t", batch(100..100, |i| T0 + i), 2), // empty: acknowledged, not stored
        ("../t", batch(0..5, |i| T0 + i), 3),  // a bad table name
        ("t", batch(100..300, |i| T0 + i), 4),
    ];
    let mut acks = Vec::new();
    {
        let (storage, _) = Storage::open(dir.path(), fsync_every_batch.clone()).unwrap();
        storage.append_all(batches.into_iter(), |tag, rows, result| {
            acks.push((
                tag,
                rows,
                result.map(|ack| ack.seq).map_err(|e| e.to_string()),
            ));
            true
        });
        assert_eq!(storage.stats().appended_rows, 350);
        // Dropped without flush: the process "dies" here.
    }
    let seqs: Vec<(usize, usize, Option<u64>)> = acks
        .iter()
        .map(|(tag, rows, r)| (*tag, *rows, r.as_ref().ok().copied()))
        .collect();
    assert_eq!(
        seqs,
        vec![
            (0, 100, Some(1)),
            (1, 50, Some(2)),
            (2, 0, Some(0)),
            (3, 5, None),
            (4, 200, Some(3))
        ]
    );
    let (storage, report) = Storage::open(dir.path(), fsync_every_batch).unwrap();
    assert_eq!(report.replayed_rows, 350);
    storage.flush().unwrap();
    assert_eq!(stored_ids(dir.path(), "t"), (0..300).collect::<Vec<_>>());
    assert_eq!(stored_ids(dir.path(), "u"), (0..50).collect::<Vec<_>>());
}

/// When the caller stops, nothing more is stored, yet the source is taken
/// to its end, so a producer feeding it is never left waiting.
#[test]
fn append_all_stops_storing_but_drains_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = Storage::open(dir.path(), options()).unwrap();
    let taken = std::sync::atomic::AtomicUsize::new(0);
    let source = (0..20i64).map(|i| {
        taken.fetch_add(1, Ordering::Relaxed);
        ("t", batch(i * 10..i * 10 + 10, |j| T0 + j), i)
    });
    let mut acked = Vec::new();
    storage.append_all(source, |tag, _, result| {
        result.unwrap();
        acked.push(tag);
        tag < 2
    });
    assert_eq!(acked, vec![0, 1, 2]);
    assert_eq!(taken.load(Ordering::Relaxed), 20);
    assert_eq!(storage.stats().appended_rows, 30);
}

/// `batch`'s `path` as a dictionary with keys of type `key`, the form the
/// builders hand storage.
fn keyed(batch: &RecordBatch, key: DataType) -> RecordBatch {
    let path_type = DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8));
    let path = arrow::compute::cast(batch.column(2), &path_type).unwrap();
    let schema = batch.schema();
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut fields = fields;
    fields[2] = fields[2].clone().with_data_type(path_type);
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        vec![batch.column(0).clone(), batch.column(1).clone(), path],
    )
    .unwrap()
}

/// Every (`id`, `path`) stored in Parquet under `data_dir/table`, sorted,
/// checking that each file types `path` as text.
fn stored_paths(data_dir: &Path, table: &str) -> Vec<(i64, String)> {
    let mut rows = Vec::new();
    for b in stored_batches(data_dir, table) {
        assert_eq!(b.schema().field(2).data_type(), &DataType::Utf8);
        let ids = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
        let paths = b.column(2).as_string::<i32>();
        rows.extend(
            ids.values()
                .iter()
                .zip(paths.iter())
                .map(|(&i, p)| (i, p.unwrap().to_string())),
        );
    }
    rows.sort();
    rows
}

#[test]
fn text_keyed_by_the_builders_is_served_replayed_and_stored_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let plain = [
        batch(0..100, |i| T0 + i),
        batch(100..200, |i| T0 + i),
        batch(200..300, |i| T0 + i),
    ];
    let expected: Vec<(i64, String)> = (0..300)
        .map(|i| (i, format!("/Users/a/file{}", i % 7)))
        .collect();
    {
        let (storage, _) = Storage::open(dir.path(), options()).unwrap();
        // Keys of two widths and a plain batch, in one table.
        storage
            .append("t", keyed(&plain[0], DataType::UInt8))
            .unwrap();
        storage
            .append("t", keyed(&plain[1], DataType::UInt16))
            .unwrap();
        storage.append("t", plain[2].clone()).unwrap();
        let hot = storage.hot_tail().snapshot("t");
        assert_eq!(hot.len(), 3);
        for (served, appended) in hot.iter().zip(&plain) {
            assert_eq!(served, appended, "queries see the table's text type");
        }
        // Dropped without a flush: the WAL has the batches.
    }
    let (storage, report) = Storage::open(dir.path(), options()).unwrap();
    assert_eq!(report.replayed_rows, 300);
    for (served, appended) in storage.hot_tail().snapshot("t").iter().zip(&plain) {
        assert_eq!(served, appended, "replay gives the text back as text");
    }
    storage
        .append("t", keyed(&batch(300..310, |i| T0 + i), DataType::UInt32))
        .unwrap();
    storage.flush().unwrap();
    let mut expected = expected;
    expected.extend((300..310).map(|i| (i, format!("/Users/a/file{}", i % 7))));
    assert_eq!(stored_paths(dir.path(), "t"), expected);
    assert_eq!(
        parquet_files(dir.path()).len(),
        1,
        "batches keyed differently share a file"
    );
}
