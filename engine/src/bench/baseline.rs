//! The osquery baseline: the same events stored the way osquery stores
//! them, so that the firehose figures have something to stand next to.
//!
//! osquery keeps events in RocksDB. Each event row is serialized as a JSON
//! object of column name to string value and put under the key
//! `data.<publisher>.<subscriber>.<eid>`, and the event's id and time are
//! appended to a per-60-second index under
//! `records.<publisher>.<subscriber>.<bucket>` (a read-modify-write of a
//! comma-separated list), all in the `events` column family, with the
//! write-ahead log off and no compression. A query of an events table reads
//! the index, gets each row and parses its JSON. This module does the same
//! with the batches the firehose producer makes, through the same writer
//! thread, so the CPU, memory, bytes and query figures are comparable.
//!
//! One difference favours RocksDB: each batch is written as one
//! `WriteBatch`, where osquery's older releases `Put` each event.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rocksdb::{
    ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions,
};
use sluice_schemas::{ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS, TableDef};

use super::firehose::{BenchError, EventStore, RunSpec, Settings, set_bytes};
use super::report::{QueryTiming, RunReport, dir_bytes};

/// The column family osquery keeps events in.
const EVENTS_CF: &str = "events";

/// osquery's publisher of a table.
fn publisher(table: &TableDef) -> &'static str {
    if table.name == ES_PROCESS_FILE_EVENTS.name {
        "endpointsecurity_fim"
    } else {
        "endpointsecurity"
    }
}

/// osquery's RocksDB options, for the database and every column family
/// alike: no compression, level compaction, 4 KiB arena blocks, 1 MiB
/// memtables (four at most, flushed one at a time), quiet info log.
/// osquery also calls `OptimizeForSmallDb()`, which has no C API and is
/// left out.
fn osquery_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_log_level(rocksdb::LogLevel::Error);
    options.set_log_file_time_to_roll(0);
    options.set_keep_log_file_num(10);
    options.set_max_log_file_size(1024 * 1024);
    options.set_stats_dump_period_sec(0);
    options.set_max_manifest_file_size(1024 * 500);
    options.set_compression_type(DBCompressionType::None);
    options.set_compaction_style(rocksdb::DBCompactionStyle::Level);
    options.set_arena_block_size(4 * 1024);
    options.set_write_buffer_size(4 * 1024 * 256);
    options.set_max_write_buffer_number(4);
    options.set_min_write_buffer_number_to_merge(1);
    options
}

fn rocks(e: rocksdb::Error) -> BenchError {
    BenchError::Baseline(e.to_string())
}

/// A RocksDB laid out as osquery's event store.
pub struct OsqueryStore {
    db: rocksdb::DB,
    /// Key and value bytes written, per table (for splitting the bytes on
    /// disk between tables).
    raw_bytes: [AtomicU64; 2],
}

impl OsqueryStore {
    /// Opens (creating) the store in `dir`, with the options osquery's
    /// RocksDB plugin sets (`osquery/database/plugins/rocksdb.cpp`).
    pub fn open(dir: &Path) -> Result<OsqueryStore, BenchError> {
        let options = osquery_options();
        let db = rocksdb::DB::open_cf_descriptors(
            &options,
            dir,
            vec![ColumnFamilyDescriptor::new(EVENTS_CF, osquery_options())],
        )
        .map_err(rocks)?;
        Ok(OsqueryStore {
            db,
            raw_bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    fn cf(&self) -> Result<&rocksdb::ColumnFamily, BenchError> {
        self.db
            .cf_handle(EVENTS_CF)
            .ok_or_else(|| BenchError::Baseline("no events column family".into()))
    }

    /// Visits the JSON of every stored row of `table`, as a query does: the
    /// `data.` keys in order.
    fn scan(&self, table: &TableDef, mut f: impl FnMut(&[u8])) -> Result<u64, BenchError> {
        let prefix = format!("data.{}.{}.", publisher(table), table.name);
        let mut n = 0;
        let iter = self.db.iterator_cf(
            self.cf()?,
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(rocks)?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            f(&value);
            n += 1;
        }
        Ok(n)
    }
}

impl EventStore for OsqueryStore {
    fn append(&self, table: &'static TableDef, batch: RecordBatch) -> Result<(), BenchError> {
        let cf = self.cf()?;
        let schema = batch.schema();
        let options = FormatOptions::default().with_null("");
        // osquery's rows are strings of its own columns; the byte twins of
        // text columns are sluice's.
        let columns: Vec<(usize, ArrayFormatter<'_>)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.data_type() != &DataType::Binary)
            .map(|(i, _)| {
                Ok((
                    i,
                    ArrayFormatter::try_new(batch.column(i).as_ref(), &options)?,
                ))
            })
            .collect::<Result<_, arrow::error::ArrowError>>()?;
        let eids = batch
            .column_by_name("eid")
            .map(|c| c.as_string::<i32>().clone())
            .ok_or_else(|| BenchError::Baseline(format!("{} has no eid", table.name)))?;
        let times = batch
            .column_by_name("time")
            .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
            .ok_or_else(|| BenchError::Baseline(format!("{} has no time", table.name)))?;
        let publisher = publisher(table);
        let mut write = WriteBatch::default();
        let mut key = String::with_capacity(96);
        let mut value = String::with_capacity(2048);
        let mut cell = String::with_capacity(256);
        let mut index: HashMap<i64, String> = HashMap::new();
        let mut raw = 0u64;
        for row in 0..batch.num_rows() {
            value.clear();
            value.push('{');
            for (n, (i, formatter)) in columns.iter().enumerate() {
                if n > 0 {
                    value.push(',');
                }
                cell.clear();
                let _ = write!(cell, "{}", formatter.value(row));
                // serde_json escapes exactly as JSON requires.
                value.push_str(&serde_json::to_string(schema.field(*i).name()).unwrap_or_default());
                value.push(':');
                value.push_str(&serde_json::to_string(&cell).unwrap_or_default());
            }
            value.push('}');
            let eid = eids.value(row);
            key.clear();
            let _ = write!(key, "data.{publisher}.{}.{eid}", table.name);
            raw += (key.len() + value.len()) as u64;
            write.put_cf(cf, key.as_bytes(), value.as_bytes());
            let time = times.value(row);
            let list = index.entry(time - time.rem_euclid(60)).or_default();
            if !list.is_empty() {
                list.push(',');
            }
            let _ = write!(list, "{eid}:{time}");
        }
        // The index: osquery reads the bucket's list, appends, writes back.
        for (bucket, ids) in index {
            key.clear();
            let _ = write!(key, "records.{publisher}.{}.{bucket}", table.name);
            let mut list = self
                .db
                .get_cf(cf, key.as_bytes())
                .map_err(rocks)?
                .unwrap_or_default();
            if !list.is_empty() {
                list.push(b',');
            }
            list.extend_from_slice(ids.as_bytes());
            raw += (key.len() + list.len()) as u64;
            write.put_cf(cf, key.as_bytes(), &list);
        }
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db.write_opt(write, &options).map_err(rocks)?;
        self.raw_bytes[usize::from(table.name == ES_PROCESS_FILE_EVENTS.name)]
            .fetch_add(raw, Ordering::Relaxed);
        Ok(())
    }

    fn maintain(&self) {}

    fn pending_batches(&self, _table: &str) -> Option<usize> {
        None
    }

    fn flush(&self) -> Result<(), BenchError> {
        // Memtables to SST files, so the bytes on disk are all counted.
        self.db.flush_cf(self.cf()?).map_err(rocks)
    }
}

/// The analyst queries osquery can answer from this layout: the counts and
/// the top processes, each a scan of the table's rows with a JSON parse per
/// row, as osquery's events tables do.
fn queries(store: &OsqueryStore) -> Result<(Vec<QueryTiming>, u64), BenchError> {
    let mut timings = Vec::new();
    let mut visible = 0;
    for (name, table) in [
        ("count_file_events", &ES_PROCESS_FILE_EVENTS),
        ("count_process_events", &ES_PROCESS_EVENTS),
    ] {
        let started = Instant::now();
        let mut parsed = 0u64;
        let n = store.scan(table, |json| {
            parsed += u64::from(serde_json::from_slice::<serde_json::Value>(json).is_ok());
        })?;
        timings.push(QueryTiming {
            name: name.to_string(),
            query: format!(
                "scan data.{}.{}.*, parse each row",
                publisher(table),
                table.name
            ),
            rows: 1,
            count: Some(parsed),
            ms: started.elapsed().as_secs_f64() * 1e3,
        });
        visible += n.min(parsed);
    }
    let started = Instant::now();
    let mut by_path: HashMap<String, u64> = HashMap::new();
    store.scan(&ES_PROCESS_FILE_EVENTS, |json| {
        if let Ok(serde_json::Value::Object(row)) = serde_json::from_slice(json)
            && let Some(serde_json::Value::String(path)) = row.get("path")
        {
            *by_path.entry(path.clone()).or_default() += 1;
        }
    })?;
    let mut top: Vec<(String, u64)> = by_path.into_iter().collect();
    top.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    top.truncate(10);
    timings.push(QueryTiming {
        name: "top_processes".to_string(),
        query: "scan data.endpointsecurity_fim.es_process_file_events.*, group by path".into(),
        rows: top.len() as u64,
        count: None,
        ms: started.elapsed().as_secs_f64() * 1e3,
    });
    Ok((timings, visible))
}

/// Runs `spec` into a fresh osquery-style store in `dir`.
pub(crate) fn run(
    settings: &Settings,
    spec: &RunSpec,
    dir: &Path,
) -> Result<RunReport, BenchError> {
    let _ = std::fs::remove_dir_all(dir);
    let store = OsqueryStore::open(dir)?;
    let mut report = super::firehose::run(settings, spec, "rocksdb", &store)?;
    let (total, files) = dir_bytes(dir, "");
    let raw = [
        store.raw_bytes[0].load(Ordering::Relaxed),
        store.raw_bytes[1].load(Ordering::Relaxed),
    ];
    let raw_total = (raw[0] + raw[1]).max(1);
    // One store holds both tables; its bytes are split by what each wrote.
    let by_table: Vec<(u64, u64)> = raw
        .iter()
        .map(|&r| ((total as f64 * r as f64 / raw_total as f64) as u64, files))
        .collect();
    set_bytes(&mut report, &by_table);
    let (timings, visible) = queries(&store)?;
    report.queries = timings;
    report.rows_queryable = Some(visible);
    Ok(report)
}
