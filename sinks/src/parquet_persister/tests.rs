//! Tests write real files into a temporary data dir and read them back with
//! parquet's own reader.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampNanosecondArray, TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

use super::*;

const TABLE: &str = "es_process_file_events";

/// The nullable UTC `time_ns` column every event table has.
fn time_ns_field() -> Field {
    Field::new(
        "time_ns",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        true,
    )
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("filename", DataType::Utf8, true),
        Field::new("time", DataType::Int64, true),
        time_ns_field(),
    ]))
}

/// One row per `(filename, time, time_ns)`; `time_ns` of `None` means NULL.
fn batch(rows: &[(&str, Option<i64>, Option<i64>)]) -> RecordBatch {
    let mut filename = StringBuilder::new();
    let mut time = Int64Builder::new();
    let mut time_ns = TimestampNanosecondBuilder::new().with_timezone("UTC");
    for (name, t, ns) in rows {
        filename.append_value(name);
        time.append_option(*t);
        time_ns.append_option(*ns);
    }
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(filename.finish()),
            Arc::new(time.finish()),
            Arc::new(time_ns.finish()),
        ],
    )
    .unwrap()
}

/// Reads a file back: its metadata (with the page index) and its rows.
fn read(path: &Path) -> (Arc<ParquetMetaData>, RecordBatch) {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(File::open(path).unwrap(), options)
            .unwrap();
    let metadata = Arc::clone(builder.metadata());
    let file_schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    let rows = arrow::compute::concat_batches(&file_schema, &batches).unwrap();
    (metadata, rows)
}

fn filenames(batch: &RecordBatch) -> Vec<String> {
    let column = batch.column_by_name("filename").unwrap();
    let column = column.as_any().downcast_ref::<StringArray>().unwrap();
    column.iter().map(|v| v.unwrap().to_string()).collect()
}

fn times(batch: &RecordBatch) -> Vec<Option<i64>> {
    let column = batch.column_by_name("time").unwrap();
    let column = column.as_any().downcast_ref::<Int64Array>().unwrap();
    column.iter().collect()
}

/// Every entry under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

// 2023-11-14 22:13:20 UTC, and the two hours after it (23:xx, then 00:xx next day).
const T0: i64 = 1_700_000_000;
const T_NEXT_HOUR: i64 = T0 + 3_600;
const T_NEXT_DAY: i64 = T0 + 2 * 3_600;

#[test]
fn rows_land_in_their_hour_partitions_sorted() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    let input = batch(&[
        (
            "day2-b",
            Some(T_NEXT_DAY + 5),
            Some((T_NEXT_DAY + 5) * 1_000_000_000),
        ),
        ("h22-c", Some(T0 + 10), Some((T0 + 10) * 1_000_000_000 + 2)),
        (
            "h23-a",
            Some(T_NEXT_HOUR),
            Some(T_NEXT_HOUR * 1_000_000_000),
        ),
        ("h22-a", Some(T0), Some(T0 * 1_000_000_000)),
        ("day2-a", Some(T_NEXT_DAY), Some(T_NEXT_DAY * 1_000_000_000)),
        // Same second as h22-c, earlier nanosecond: sorts before it.
        ("h22-b", Some(T0 + 10), Some((T0 + 10) * 1_000_000_000 + 1)),
    ]);

    let published = persister.persist(TABLE, &input).unwrap();

    let root = data.path().join(TABLE);
    let expected_dirs = [
        root.join("date=2023-11-14").join("hour=22"),
        root.join("date=2023-11-14").join("hour=23"),
        root.join("date=2023-11-15").join("hour=00"),
    ];
    assert_eq!(published.len(), 3);
    for (path, dir) in published.iter().zip(&expected_dirs) {
        assert_eq!(path.parent().unwrap(), dir.as_path());
        assert_eq!(path.extension().unwrap(), "parquet");
    }

    let (_, h22) = read(&published[0]);
    assert_eq!(h22.num_rows(), 3);
    assert_eq!(filenames(&h22), ["h22-a", "h22-b", "h22-c"]);
    assert_eq!(times(&h22), [Some(T0), Some(T0 + 10), Some(T0 + 10)]);
    let time_ns = h22.column_by_name("time_ns").unwrap();
    let time_ns = time_ns
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap();
    assert_eq!(time_ns.value(1), (T0 + 10) * 1_000_000_000 + 1);
    assert_eq!(time_ns.timezone(), Some("UTC"));
    // The Arrow schema (including the time zone) round-trips.
    assert_eq!(h22.schema(), schema());

    let (_, h23) = read(&published[1]);
    assert_eq!(filenames(&h23), ["h23-a"]);
    let (_, day2) = read(&published[2]);
    assert_eq!(filenames(&day2), ["day2-a", "day2-b"]);
    assert_eq!(times(&day2), [Some(T_NEXT_DAY), Some(T_NEXT_DAY + 5)]);
}

#[test]
fn equal_times_keep_arrival_order() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    let names: Vec<String> = (0..100).map(|i| format!("row-{i:03}")).collect();
    let rows: Vec<(&str, Option<i64>, Option<i64>)> = names
        .iter()
        .map(|name| (name.as_str(), Some(T0), Some(T0 * 1_000_000_000)))
        .collect();

    let published = persister.persist(TABLE, &batch(&rows)).unwrap();

    assert_eq!(published.len(), 1);
    assert_eq!(filenames(&read(&published[0]).1), names);
}

#[test]
fn files_are_zstd_with_statistics_and_page_index() {
    let data = tempfile::tempdir().unwrap();
    let options = PersistOptions {
        max_row_group_rows: 4,
        ..PersistOptions::default()
    };
    let persister = ParquetPersister::with_options(data.path(), options);
    let rows: Vec<(&str, Option<i64>, Option<i64>)> = (0..10)
        .map(|i| ("/etc/hosts", Some(T0 + i), Some((T0 + i) * 1_000_000_000)))
        .collect();

    let published = persister.persist(TABLE, &batch(&rows)).unwrap();
    assert_eq!(published.len(), 1);
    let (metadata, read_back) = read(&published[0]);

    assert_eq!(read_back.num_rows(), 10);
    // 10 rows at most 4 per row group.
    assert_eq!(metadata.num_row_groups(), 3);
    let time_idx = schema().index_of("time").unwrap();
    for row_group in metadata.row_groups() {
        assert!(row_group.num_rows() <= 4);
        for column in row_group.columns() {
            assert!(
                matches!(column.compression(), Compression::ZSTD(_)),
                "{:?}",
                column.compression()
            );
            assert!(column.statistics().is_some());
            assert!(column.column_index_offset().is_some());
            assert!(column.offset_index_offset().is_some());
        }
        let sorting = row_group.sorting_columns().unwrap();
        assert_eq!(sorting[0].column_idx, time_idx as i32);
        assert!(!sorting[0].descending);
    }
    let first_time = metadata.row_group(0).column(time_idx).statistics().unwrap();
    assert_eq!(first_time.min_bytes_opt().unwrap(), T0.to_le_bytes());
    assert_eq!(first_time.max_bytes_opt().unwrap(), (T0 + 3).to_le_bytes());

    let column_index = metadata.column_index().expect("column index");
    let offset_index = metadata.offset_index().expect("offset index");
    assert_eq!(column_index.len(), 3);
    assert_eq!(offset_index.len(), 3);
    assert!(!matches!(
        column_index[0][time_idx],
        parquet::file::page_index::column_index::ColumnIndexMetaData::NONE
    ));
    assert!(!offset_index[0][time_idx].page_locations().is_empty());

    // The file metadata carries the Arrow schema for exact round trips.
    let key_values = metadata.file_metadata().key_value_metadata().unwrap();
    assert!(key_values.iter().any(|kv| kv.key == "ARROW:schema"));
}

#[test]
fn statistics_are_kept_only_where_they_can_skip() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    let schema = Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("pid", DataType::Int64, true),
        Field::new("username", DataType::Utf8, true),
        Field::new("time", DataType::Int64, true),
        Field::new("path_bytes", DataType::Binary, true),
    ]));
    let rows = 100;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("/Users/alice/{i}")),
            )),
            Arc::new(StringArray::from_iter_values((0..rows).map(|_| "open"))),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| 100 + i * 7))),
            Arc::new(StringArray::from_iter_values((0..rows).map(|_| "alice"))),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| T0 + i))),
            Arc::new(arrow::array::BinaryArray::new_null(rows as usize)),
        ],
    )
    .unwrap();

    let published = persister.persist(TABLE, &batch).unwrap();
    let (metadata, read_back) = read(&published[0]);
    assert_eq!(read_back, batch);
    let chunk = |name: &str| metadata.row_group(0).column(schema.index_of(name).unwrap());
    // Free text and the unordered identifiers have none; the others keep
    // theirs, the sidecar's null count included.
    assert!(chunk("path").statistics().is_none());
    assert!(chunk("event_type").statistics().is_none());
    assert!(chunk("pid").statistics().is_none());
    assert!(chunk("username").statistics().is_some());
    assert!(chunk("time").statistics().is_some());
    let sidecar = chunk("path_bytes").statistics().unwrap();
    assert_eq!(sidecar.null_count_opt(), Some(rows as u64));
}

#[test]
fn repeated_dictionary_values_are_dictionary_encoded() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    let rows: Vec<(&str, Option<i64>, Option<i64>)> = (0..1_000)
        .map(|i| ("/bin/ls", Some(T0 + i % 60), None))
        .collect();

    let published = persister.persist(TABLE, &batch(&rows)).unwrap();
    let (metadata, _) = read(&published[0]);

    let filename = metadata.row_group(0).column(0);
    assert!(filename.dictionary_page_offset().is_some());
}

#[cfg(unix)]
#[test]
fn files_and_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path().join("fresh"));
    let published = persister
        .persist(TABLE, &batch(&[("a", Some(T0), None)]))
        .unwrap();

    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&published[0]), 0o600);
    let mut dir = published[0].parent().unwrap();
    while dir != data.path() {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        dir = dir.parent().unwrap();
    }
}

#[test]
fn no_temporary_files_are_left_behind() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    let mut published = Vec::new();
    for i in 0..20 {
        let rows = batch(&[("a", Some(T0 + i * 1_000), None), ("b", None, None)]);
        published.extend(persister.persist(TABLE, &rows).unwrap());
    }

    let files: Vec<PathBuf> = walk(data.path())
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert!(files.iter().all(|p| p.extension().unwrap() == "parquet"));
    assert!(!files.iter().any(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with('.') || name.ends_with(".tmp")
    }));
    // Every call published new, distinct files.
    published.sort();
    published.dedup();
    assert_eq!(published.len(), files.len());
}

#[test]
fn failed_write_removes_its_temporary_file() {
    use arrow::array::StructArray;
    use arrow::datatypes::Fields;

    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    // Parquet cannot store a struct without fields, so the writer fails after
    // the temporary file exists.
    let unwritable = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("time", DataType::Int64, true),
            Field::new("empty", DataType::Struct(Fields::empty()), true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![T0])),
            Arc::new(StructArray::new_empty_fields(1, None)),
        ],
    )
    .unwrap();

    let err = persister.persist(TABLE, &unwritable).unwrap_err();

    let PersistError::Parquet { path, .. } = &err else {
        panic!("expected a Parquet error, got {err}");
    };
    assert!(path.to_string_lossy().ends_with(".parquet.tmp"), "{err}");
    assert!(err.to_string().contains(&*path.to_string_lossy()));
    assert!(!path.exists());
    assert!(walk(data.path()).iter().all(|p| p.is_dir()));
}

#[test]
fn invalid_zstd_level_is_rejected() {
    let data = tempfile::tempdir().unwrap();
    let options = PersistOptions {
        zstd_level: 99,
        ..PersistOptions::default()
    };
    let persister = ParquetPersister::with_options(data.path(), options);

    let err = persister
        .persist(TABLE, &batch(&[("a", Some(T0), None)]))
        .unwrap_err();

    assert!(matches!(err, PersistError::InvalidOptions { .. }), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
}

#[test]
fn null_time_goes_to_the_epoch_partition() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    let input = batch(&[
        ("timed", Some(T0), None),
        ("untimed-1", None, None),
        ("epoch", Some(0), None),
        ("untimed-2", None, Some(5)),
    ]);

    let published = persister.persist(TABLE, &input).unwrap();

    let epoch_dir = data
        .path()
        .join(TABLE)
        .join("date=1970-01-01")
        .join("hour=00");
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].parent().unwrap(), epoch_dir);
    let (_, epoch) = read(&published[0]);
    // NULLs sort first; among them the NULL `time_ns` sorts first too.
    assert_eq!(filenames(&epoch), ["untimed-1", "untimed-2", "epoch"]);
    assert_eq!(times(&epoch), [None, None, Some(0)]);
    assert_eq!(read(&published[1]).1.num_rows(), 1);
}

#[test]
fn negative_time_is_filed_before_the_epoch() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());

    let published = persister
        .persist(
            TABLE,
            &batch(&[("before", Some(-1), None), ("absurd", Some(i64::MIN), None)]),
        )
        .unwrap();

    let root = data.path().join(TABLE);
    assert_eq!(
        published[0].parent().unwrap(),
        root.join("date=0000-01-01").join("hour=00")
    );
    assert_eq!(
        published[1].parent().unwrap(),
        root.join("date=1969-12-31").join("hour=23")
    );
}

#[test]
fn missing_or_mistyped_time_column_is_an_error() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());

    let no_time = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "filename",
            DataType::Utf8,
            true,
        )])),
        vec![Arc::new(StringArray::from(vec!["a"]))],
    )
    .unwrap();
    let err = persister.persist(TABLE, &no_time).unwrap_err();
    assert!(
        matches!(&err, PersistError::MissingTimeColumn { table } if table == TABLE),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(TABLE) && message.contains("`time`"),
        "{message}"
    );

    let text_time = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("time", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["yesterday"]))],
    )
    .unwrap();
    let err = persister.persist(TABLE, &text_time).unwrap_err();
    assert!(matches!(err, PersistError::TimeColumnType { .. }), "{err}");
    assert!(walk(data.path()).is_empty());
}

#[test]
fn empty_batch_writes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());

    let published = persister.persist(TABLE, &batch(&[])).unwrap();

    assert!(published.is_empty());
    assert!(walk(data.path()).is_empty());
}

#[test]
fn table_names_cannot_escape_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path().join("data"));
    let rows = batch(&[("a", Some(T0), None)]);

    for table in ["", "..", ".hidden", "../escape", "a/b", "a\\b"] {
        let err = persister.persist(table, &rows).unwrap_err();
        assert!(
            matches!(err, PersistError::InvalidTableName { .. }),
            "{table:?}: {err}"
        );
    }
    assert!(walk(data.path()).is_empty());
}

#[test]
fn zero_row_group_size_is_rejected_not_a_panic() {
    let data = tempfile::tempdir().unwrap();
    let options = PersistOptions {
        max_row_group_rows: 0,
        ..PersistOptions::default()
    };
    let persister = ParquetPersister::with_options(data.path(), options);

    let err = persister
        .persist(TABLE, &batch(&[("a", Some(T0), None)]))
        .unwrap_err();

    assert!(matches!(err, PersistError::InvalidOptions { .. }), "{err}");
}

#[test]
fn persister_defaults() {
    let persister = ParquetPersister::new("/tmp/sluice-data");
    assert_eq!(persister.data_dir(), Path::new("/tmp/sluice-data"));
    let options = persister.options();
    assert_eq!(options.zstd_level, 1);
    assert_eq!(options.max_row_group_rows, 128 * 1024);
    assert!(options.dictionary && options.page_statistics && options.delta_encodings);
    assert_eq!(options.dictionary_page_bytes, 8 << 20);
}

#[test]
fn zero_dictionary_page_limit_is_rejected_not_a_panic() {
    let data = tempfile::tempdir().unwrap();
    let options = PersistOptions {
        dictionary_page_bytes: 0,
        ..PersistOptions::default()
    };
    let persister = ParquetPersister::with_options(data.path(), options);

    let err = persister
        .persist(TABLE, &batch(&[("a", Some(T0), None)]))
        .unwrap_err();

    assert!(matches!(err, PersistError::InvalidOptions { .. }), "{err}");
}

/// The encodings each column chunk of `path`'s first row group used.
fn column_encodings(path: &Path) -> Vec<(String, Vec<parquet::basic::Encoding>)> {
    let (metadata, _) = read(path);
    metadata
        .row_group(0)
        .columns()
        .iter()
        .map(|column| {
            let encodings = column.encodings().collect();
            (column.column_path().string(), encodings)
        })
        .collect()
}

/// A batch with the columns that get delta encodings: `time_ns`,
/// `seq_num`, `global_seq_num`, and a zero-padded `eid`.
fn counter_batch(rows: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("time", DataType::Int64, true),
        time_ns_field(),
        Field::new("seq_num", DataType::Int64, true),
        Field::new("global_seq_num", DataType::Int64, true),
        Field::new("eid", DataType::Utf8, true),
        Field::new("filename", DataType::Utf8, true),
    ]));
    let eids: Vec<String> = (0..rows).map(|i| format!("{i:010}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..rows).map(|i| T0 + i / 100),
            )),
            Arc::new(
                TimestampNanosecondArray::from_iter_values(
                    (0..rows).map(|i| T0 * 1_000_000_000 + i * 10_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| 1_000 + i))),
            Arc::new(StringArray::from_iter_values(&eids)),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| ["/etc/hosts", "/bin/ls"][i as usize % 2]),
            )),
        ],
    )
    .unwrap()
}

#[test]
fn counters_are_delta_encoded_and_paths_dictionary_encoded() {
    use parquet::basic::Encoding;
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::new(data.path());
    let batch = counter_batch(1_000);

    let published = persister.persist(TABLE, &batch).unwrap();
    assert_eq!(published.len(), 1);

    for (column, encodings) in column_encodings(&published[0]) {
        let expected = match column.as_str() {
            "time_ns" | "seq_num" | "global_seq_num" => Some(Encoding::DELTA_BINARY_PACKED),
            "eid" => Some(Encoding::DELTA_BYTE_ARRAY),
            _ => None,
        };
        let dictionary = encodings.contains(&Encoding::RLE_DICTIONARY);
        match expected {
            Some(encoding) => {
                assert!(encodings.contains(&encoding), "{column}: {encodings:?}");
                assert!(!dictionary, "{column}: {encodings:?}");
            }
            None => assert!(dictionary, "{column}: {encodings:?}"),
        }
    }
    // The values survive the encodings.
    let (_, read_back) = read(&published[0]);
    assert_eq!(read_back, batch);
}

#[test]
fn delta_encodings_can_be_turned_off() {
    use parquet::basic::Encoding;
    let data = tempfile::tempdir().unwrap();
    let options = PersistOptions {
        delta_encodings: false,
        ..PersistOptions::default()
    };
    let persister = ParquetPersister::with_options(data.path(), options);

    let published = persister.persist(TABLE, &counter_batch(1_000)).unwrap();

    for (column, encodings) in column_encodings(&published[0]) {
        assert!(
            !encodings.contains(&Encoding::DELTA_BINARY_PACKED)
                && !encodings.contains(&Encoding::DELTA_BYTE_ARRAY),
            "{column}: {encodings:?}"
        );
    }
}

/// The rows of every file a persist call wrote, file by file in partition
/// order: `(filename, time)`.
fn persisted_rows(paths: &[PathBuf]) -> Vec<Vec<(String, Option<i64>)>> {
    paths
        .iter()
        .map(|path| {
            let (_, rows) = read(path);
            filenames(&rows).into_iter().zip(times(&rows)).collect()
        })
        .collect()
}

#[test]
fn a_run_in_time_order_is_written_from_slices_with_the_rows_of_its_concatenation() {
    // Two sorted batches, the second starting where the first ends, across
    // two hours: the fast path (no sort, no copy) must give the files the
    // concatenated batch gives.
    let first = batch(&[
        ("a", Some(T0), Some(T0 * 1_000_000_000)),
        ("b", Some(T0 + 5), Some((T0 + 5) * 1_000_000_000)),
        ("c", Some(T_NEXT_HOUR), Some(T_NEXT_HOUR * 1_000_000_000)),
    ]);
    let second = batch(&[
        ("d", Some(T_NEXT_HOUR), Some(T_NEXT_HOUR * 1_000_000_000)),
        (
            "e",
            Some(T_NEXT_HOUR + 1),
            Some((T_NEXT_HOUR + 1) * 1_000_000_000),
        ),
    ]);
    let split =
        split_run_by_hour(TABLE, &first.schema(), &[first.clone(), second.clone()]).unwrap();
    assert_eq!(split.len(), 2, "two hours");
    assert_eq!(
        split[1].1.len(),
        2,
        "the second hour is one slice of each batch"
    );
    let time_values = |b: &RecordBatch| {
        b.column_by_name("time")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .as_ptr()
    };
    assert_eq!(
        time_values(&split[1].1[0]),
        time_values(&first).wrapping_add(2),
        "the slice points into the batch: no row was copied"
    );

    let run_dir = tempfile::tempdir().unwrap();
    let run = ParquetPersister::new(run_dir.path())
        .persist_run_tagged(TABLE, &[first.clone(), second.clone()], None)
        .unwrap();
    let whole_dir = tempfile::tempdir().unwrap();
    let combined = arrow::compute::concat_batches(&schema(), [&first, &second]).unwrap();
    let whole = ParquetPersister::new(whole_dir.path())
        .persist(TABLE, &combined)
        .unwrap();
    assert_eq!(persisted_rows(&run), persisted_rows(&whole));
    assert_eq!(
        persisted_rows(&run)[1],
        [
            ("c".to_string(), Some(T_NEXT_HOUR)),
            ("d".to_string(), Some(T_NEXT_HOUR)),
            ("e".to_string(), Some(T_NEXT_HOUR + 1)),
        ]
    );
}

#[test]
fn a_run_out_of_time_order_is_sorted_as_one_batch() {
    // Each batch is sorted, but the second starts before the first ends,
    // and a third has a NULL time: the run falls back to one sort, which
    // puts the NULL in the epoch partition and interleaves the rest.
    let first = batch(&[
        ("a", Some(T0), Some(T0 * 1_000_000_000)),
        ("c", Some(T0 + 20), Some((T0 + 20) * 1_000_000_000)),
    ]);
    let second = batch(&[("b", Some(T0 + 10), Some((T0 + 10) * 1_000_000_000))]);
    let third = batch(&[("z", None, None)]);
    let dir = tempfile::tempdir().unwrap();
    let paths = ParquetPersister::new(dir.path())
        .persist_run_tagged(TABLE, &[first, second, third], Some("run"))
        .unwrap();
    assert_eq!(
        persisted_rows(&paths),
        [
            vec![("z".to_string(), None)],
            vec![
                ("a".to_string(), Some(T0)),
                ("b".to_string(), Some(T0 + 10)),
                ("c".to_string(), Some(T0 + 20)),
            ],
        ]
    );
    assert!(
        paths
            .iter()
            .all(|p| p.to_string_lossy().ends_with("-run.parquet"))
    );
}

#[test]
fn equal_seconds_out_of_nanosecond_order_are_not_taken_as_sorted() {
    // Sorted by `time` alone but not by `time_ns`: the sort must run.
    let rows = batch(&[
        ("second", Some(T0), Some(T0 * 1_000_000_000 + 2)),
        ("first", Some(T0), Some(T0 * 1_000_000_000 + 1)),
    ]);
    assert!(sorted_batch(&rows).is_none());
    let dir = tempfile::tempdir().unwrap();
    let paths = ParquetPersister::new(dir.path())
        .persist(TABLE, &rows)
        .unwrap();
    assert_eq!(filenames(&read(&paths[0]).1), ["first", "second"]);
}

/// Columns encoded side by side make the same file, byte for byte, as
/// columns encoded one after another, however the parts fall across row
/// groups.
#[test]
fn columns_encoded_side_by_side_make_the_same_file() {
    let (schema, parts) = file_event_parts(&[5_000, 7_000, 3_001]);
    let written = |threads: usize| {
        let data = tempfile::tempdir().unwrap();
        let options = PersistOptions {
            max_row_group_rows: 4_096,
            encoding_threads: threads,
            ..PersistOptions::default()
        };
        let persister = ParquetPersister::with_options(data.path(), options);
        let published = persister.persist_run_tagged(TABLE, &parts, None).unwrap();
        assert_eq!(published.len(), 1);
        let (metadata, rows) = read(&published[0]);
        assert_eq!(
            metadata.num_row_groups(),
            4,
            "15,001 rows in groups of 4,096"
        );
        let all = arrow::compute::concat_batches(&schema, &parts).unwrap();
        assert_eq!(rows, all);
        std::fs::read(&published[0]).unwrap()
    };
    let serial = written(1);
    assert_eq!(written(2), serial);
    assert_eq!(written(3), serial);
    assert_eq!(
        written(9),
        serial,
        "more threads than a row group has columns"
    );
}

/// File events with the columns that the persister treats differently:
/// free text (`filename`, with its sidecar), an unordered kind
/// (`event_type`) and id (`pid`), ordinary text that keeps statistics
/// (`username`), a counter (`eid`) and times. Plain parts of the given
/// sizes, consecutive, in time order; [`shrunk`] logs them as the WAL does.
fn file_event_parts(sizes: &[usize]) -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pid", DataType::Int64, true),
        Field::new("filename", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("username", DataType::Utf8, true),
        Field::new("time", DataType::Int64, true),
        time_ns_field(),
        Field::new("eid", DataType::Utf8, true),
        Field::new("filename_bytes", DataType::Binary, true),
    ]));
    const KINDS: [&str; 4] = ["open", "close", "write", "rename"];
    let mut next = 0usize;
    let parts = sizes
        .iter()
        .map(|&rows| {
            let ids = next..next + rows;
            next += rows;
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        ids.clone().map(|i| (i * 7919 % 5000) as i64),
                    )),
                    // NULL now and then, and wholly NULL over one stretch,
                    // so that some pages have no keys at all.
                    Arc::new(StringArray::from_iter(ids.clone().map(|i| {
                        (i % 13 != 0 && !(2_000..2_100).contains(&i))
                            .then(|| format!("/Users/alice/Library/Caches/{}", i * 31 % 300))
                    }))),
                    Arc::new(StringArray::from_iter_values(
                        ids.clone().map(|i| KINDS[i * 7 % 4]),
                    )),
                    Arc::new(StringArray::from_iter(
                        ids.clone().map(|i| (i % 3 != 0).then_some("alice")),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        ids.clone().map(|i| T0 + (i / 1000) as i64),
                    )),
                    Arc::new(
                        TimestampNanosecondArray::from_iter_values(
                            ids.clone()
                                .map(|i| (T0 + (i / 1000) as i64) * 1_000_000_000 + i as i64),
                        )
                        .with_timezone("UTC"),
                    ),
                    Arc::new(StringArray::from_iter_values(
                        ids.clone().map(|i| format!("{i:010}")),
                    )),
                    Arc::new(arrow::array::BinaryArray::new_null(rows)),
                ],
            )
            .unwrap()
        })
        .collect();
    (schema, parts)
}

/// Persists `parts` as logged by the WAL, with `options`, and returns the
/// one file's rows and bytes.
fn persist_logged(
    schema: &SchemaRef,
    parts: &[RecordBatch],
    options: PersistOptions,
) -> (RecordBatch, Vec<u8>) {
    let data = tempfile::tempdir().unwrap();
    let persister = ParquetPersister::with_options(data.path(), options);
    let published = persister
        .persist_logged_run_tagged(TABLE, schema.clone(), parts, None)
        .unwrap();
    assert_eq!(published.len(), 1);
    let (_, rows) = read(&published[0]);
    (rows, std::fs::read(&published[0]).unwrap())
}

fn shrunk(parts: &[RecordBatch]) -> Vec<RecordBatch> {
    parts
        .iter()
        .map(|part| crate::wal::dictionary::shrink(part).unwrap())
        .collect()
}

/// A run handed over as the WAL logged it (text as dictionaries) makes a
/// file with the table's schema and exactly the run's rows, whether its
/// row groups are one part or several, on one thread or more.
#[test]
fn a_run_as_the_wal_logged_it_reads_back_as_its_rows() {
    let (schema, parts) = file_event_parts(&[5_000, 7_000, 3_001]);
    let logged = shrunk(&parts);
    for name in ["filename", "event_type", "username"] {
        let column = logged[0].column_by_name(name).unwrap();
        assert!(
            dictionary_chunk::is_wal_dictionary(column.as_ref()),
            "{name} is logged as a dictionary, so the test takes that path"
        );
    }
    let all = arrow::compute::concat_batches(&schema, &parts).unwrap();
    let with = |threads: usize, max_row_group_rows: usize| PersistOptions {
        max_row_group_rows,
        encoding_threads: threads,
        ..PersistOptions::default()
    };
    let (rows, one_thread) = persist_logged(&schema, &logged, with(1, 4_096));
    assert_eq!(rows, all);
    let (rows, two_threads) = persist_logged(&schema, &logged, with(2, 4_096));
    assert_eq!(rows, all);
    assert_eq!(one_thread, two_threads, "threads change no byte");
    // Row groups of one part each, and the whole run in one.
    let (rows, _) = persist_logged(&schema, &logged, with(2, 1_000));
    assert_eq!(rows, all);
    let (rows, _) = persist_logged(&schema, &logged, with(2, 1 << 20));
    assert_eq!(rows, all);
}

/// Where the dictionaries cannot be taken as they are (a row group that
/// also holds a part that was not logged, as after a WAL replay, or a
/// dictionary over Parquet's page limit), the values are encoded instead,
/// and the rows are the same.
#[test]
fn logged_and_plain_parts_mix_and_big_dictionaries_fall_back() {
    let (schema, parts) = file_event_parts(&[5_000, 7_000, 3_001]);
    let mut mixed = shrunk(&parts);
    mixed[1] = parts[1].clone();
    let all = arrow::compute::concat_batches(&schema, &parts).unwrap();
    let (rows, _) = persist_logged(&schema, &mixed, PersistOptions::default());
    assert_eq!(rows, all);

    let tiny = PersistOptions {
        dictionary_page_bytes: 64,
        ..PersistOptions::default()
    };
    let logged = shrunk(&parts);
    let path = parquet::schema::types::ColumnPath::from("filename");
    let properties = ParquetPersister::with_options("unused", tiny.clone())
        .writer_properties(&schema)
        .unwrap();
    let filename: Vec<ArrayRef> = logged.iter().map(|p| p.column(1).clone()).collect();
    let descr = parquet::arrow::ArrowSchemaConverter::new()
        .convert(&schema)
        .unwrap()
        .column(1);
    assert_eq!(descr.path(), &path);
    assert!(dictionary_chunk::eligible(&properties, &descr));
    assert!(
        dictionary_chunk::encode(descr, &filename, &properties)
            .unwrap()
            .is_none(),
        "300 paths do not fit a 64-byte dictionary page"
    );
    let (rows, _) = persist_logged(&schema, &logged, tiny);
    assert_eq!(rows, all);
}

/// A logged run out of time order is sorted through plain values.
#[test]
fn a_logged_run_out_of_time_order_is_sorted_through_plain_values() {
    let (schema, parts) = file_event_parts(&[5_000, 7_000]);
    let reversed: Vec<RecordBatch> = shrunk(&parts).into_iter().rev().collect();
    let all = arrow::compute::concat_batches(&schema, &parts).unwrap();
    let (rows, _) = persist_logged(&schema, &reversed, PersistOptions::default());
    assert_eq!(rows, all);
}

/// Only columns Parquet would dictionary-encode without statistics are
/// written by `dictionary_chunk`: free text and the unordered kinds and
/// ids, not text that keeps min/max, nor the columns written as deltas.
#[test]
fn only_dictionary_columns_without_statistics_are_written_from_dictionaries() {
    let (schema, _) = file_event_parts(&[1]);
    let properties = ParquetPersister::new("unused")
        .writer_properties(&schema)
        .unwrap();
    let columns = parquet::arrow::ArrowSchemaConverter::new()
        .convert(&schema)
        .unwrap();
    let eligible: Vec<String> = columns
        .columns()
        .iter()
        .filter(|column| dictionary_chunk::eligible(&properties, column))
        .map(|column| column.name().to_string())
        .collect();
    // `filename_bytes` keeps statistics: its null count tells a reader
    // which files hold text that is not UTF-8.
    assert_eq!(eligible, ["pid", "filename", "event_type"]);
}
