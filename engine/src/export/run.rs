//! The export loop: count the units, write each unit's parts, replace the
//! old ones, keep the checkpoint, clean the range. See the module docs of
//! [`crate::export`] for why it is idempotent and resumable.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use sluice_sinks::object_store::StoreLocation;

use super::layout;
use super::progress::{ExportTotals, Progress};
use super::{ExportError, ExportPlan, FormatArg, ocsf};

/// Where checkpoints live, below the export root.
const CHECKPOINT_DIR: &str = "_sluice_export";
/// The in-memory buffer of an object being written; larger parts go up as
/// multipart uploads in pieces of this size.
const UPLOAD_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Rows per row group: large groups scan well in Spark/Trino/DuckDB.
const ROW_GROUP_ROWS: usize = 512 * 1024;

/// One unit of work: a table's rows in one partition window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Unit {
    table: &'static str,
    start: i64,
    rows: u64,
}

/// The checkpoint object: which units of this plan are done, under which run
/// token. Versioned, so a later sluice can still read an older one.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "version")]
enum Checkpoint {
    #[serde(rename = "1")]
    V1 {
        /// The run token the parts are named with.
        run: String,
        /// The plan this checkpoint belongs to, for humans.
        plan: String,
        /// Done units as `table@start`.
        done: BTreeSet<String>,
    },
}

/// Exports `plan` from the tables of `ctx` to `destination`, drawing a
/// progress line when `show_progress`.
pub async fn export(
    ctx: &SessionContext,
    plan: &ExportPlan,
    destination: &StoreLocation,
    show_progress: bool,
) -> Result<ExportTotals, ExportError> {
    let store = destination.store().clone();
    let description = describe(plan);
    let checkpoint_key = checkpoint_key(destination, &description);
    let (run, mut done) = match load_checkpoint(&store, &checkpoint_key).await? {
        Some(Checkpoint::V1 { run, done, .. }) => {
            tracing::info!(run, done = done.len(), "resuming an interrupted export");
            (run, done)
        }
        None => (new_run_token(), BTreeSet::new()),
    };

    let mut units = Vec::new();
    for def in &plan.tables {
        units.extend(count_units(ctx, plan, def.name).await?);
    }
    let unit_id = |u: &Unit| format!("{}@{}", u.table, u.start);
    let total_rows = units
        .iter()
        .filter(|u| !done.contains(&unit_id(u)))
        .map(|u| u.rows)
        .sum();
    let mut progress = Progress::new(total_rows, show_progress);
    let mut totals = ExportTotals::default();
    let properties = writer_properties();

    for unit in &units {
        let id = unit_id(unit);
        if done.contains(&id) {
            totals.units_resumed += 1;
            continue;
        }
        let class = ocsf::class_of(unit.table);
        let dir = format!(
            "{}/{}",
            plan.layout.table_dir(unit.table, class),
            plan.layout.partition_dir(unit.start)
        );
        write_unit(
            ctx,
            plan,
            unit,
            &dir,
            &run,
            destination,
            &properties,
            &mut totals,
            &mut progress,
        )
        .await?;
        totals.stale_deleted +=
            delete_stale_parts(&store, destination, &dir, unit.table, &run).await?;
        totals.units += 1;
        done.insert(id);
        save_checkpoint(&store, &checkpoint_key, &run, &description, &done).await?;
        progress.update(&totals);
    }

    // Partitions of the range that have no rows any more keep no old parts.
    let exported: BTreeSet<(&str, i64)> = units.iter().map(|u| (u.table, u.start)).collect();
    for def in &plan.tables {
        totals.stale_deleted +=
            clean_range(&store, destination, plan, def.name, &run, &exported).await?;
    }
    match store.delete(&checkpoint_key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(source) => {
            return Err(ExportError::Destination {
                what: format!("deleting checkpoint {checkpoint_key}"),
                source,
            });
        }
    }
    progress.finish();
    Ok(totals)
}

/// The `WHERE` condition of the plan's range on `time`, starting with AND.
fn range_condition(plan: &ExportPlan) -> String {
    let mut condition = String::new();
    if let Some(since) = plan.since {
        condition.push_str(&format!(" AND time >= {since}"));
    }
    if let Some(until) = plan.until {
        condition.push_str(&format!(" AND time < {until}"));
    }
    condition
}

/// The units of `table` in the plan's range, with their row counts.
async fn count_units(
    ctx: &SessionContext,
    plan: &ExportPlan,
    table: &'static str,
) -> Result<Vec<Unit>, ExportError> {
    let w = plan.layout.window();
    // Floor division, so negative times land in the partition the persister
    // files them under.
    let sql = format!(
        "SELECT CAST(time AS BIGINT) - ((CAST(time AS BIGINT) % {w}) + {w}) % {w} AS w, \
         count(*) AS n FROM {table} WHERE time IS NOT NULL{} GROUP BY 1 ORDER BY 1",
        range_condition(plan)
    );
    let query_err = |source| ExportError::Query {
        table: table.to_string(),
        source,
    };
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(query_err)?
        .collect()
        .await
        .map_err(query_err)?;
    let mut units = Vec::new();
    for batch in batches {
        let starts = batch.column(0).as_any().downcast_ref::<Int64Array>();
        let counts = batch.column(1).as_any().downcast_ref::<Int64Array>();
        let (Some(starts), Some(counts)) = (starts, counts) else {
            return Err(query_err(DataFusionError::Internal(
                "unit counts are not Int64".into(),
            )));
        };
        for i in 0..batch.num_rows() {
            if starts.is_valid(i) {
                units.push(Unit {
                    table,
                    start: starts.value(i),
                    rows: u64::try_from(counts.value(i)).unwrap_or(0),
                });
            }
        }
    }
    Ok(units)
}

/// Streams one unit's rows, sorted by time, into parts of about the target
/// size under `dir`.
#[allow(clippy::too_many_arguments)]
async fn write_unit(
    ctx: &SessionContext,
    plan: &ExportPlan,
    unit: &Unit,
    dir: &str,
    run: &str,
    destination: &StoreLocation,
    properties: &WriterProperties,
    totals: &mut ExportTotals,
    progress: &mut Progress,
) -> Result<(), ExportError> {
    let table = unit.table;
    let select = match plan.format {
        FormatArg::Parquet => format!("{table}.*, '{}' AS host_identifier", plan.host),
        FormatArg::Ocsf => ocsf::projection(table, &plan.host)
            .ok_or_else(|| ExportError::Usage(format!("no OCSF class maps table {table}")))?,
    };
    let end = unit.start + plan.layout.window();
    let start = unit.start;
    let sql = match plan.format {
        FormatArg::Parquet => format!(
            "SELECT {select} FROM {table} WHERE time >= {start} AND time < {end} \
             ORDER BY {table}.time, {table}.time_ns"
        ),
        // OCSF redefines `time` (milliseconds, from time_ns), so sort on the
        // output's: outside the projection, where the name is unambiguous.
        FormatArg::Ocsf => format!(
            "SELECT * FROM (SELECT {select} FROM {table} \
             WHERE time >= {start} AND time < {end}) ORDER BY time"
        ),
    };
    let query_err = |source| ExportError::Query {
        table: table.to_string(),
        source,
    };
    let mut stream = crate::sql::plain_dataframe(ctx, &sql)
        .await
        .map_err(query_err)?
        .execute_stream()
        .await
        .map_err(query_err)?;

    let mut seq = 0;
    let mut part: Option<(AsyncArrowWriter<BufWriter>, String)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(query_err)?;
        if batch.num_rows() == 0 {
            continue;
        }
        if part.is_none() {
            let key = destination.key(&format!("{dir}/{}", layout::part_name(table, run, seq)));
            seq += 1;
            let sink = BufWriter::with_capacity(
                destination.store().clone(),
                key.clone(),
                UPLOAD_BUFFER_BYTES,
            );
            let writer = AsyncArrowWriter::try_new(sink, batch.schema(), Some(properties.clone()))
                .map_err(|source| ExportError::Write {
                    key: key.to_string(),
                    source,
                })?;
            part = Some((writer, key.to_string()));
        }
        let Some((writer, key)) = part.as_mut() else {
            continue;
        };
        writer
            .write(&batch)
            .await
            .map_err(|source| ExportError::Write {
                key: key.clone(),
                source,
            })?;
        totals.rows += batch.num_rows() as u64;
        let size = (writer.bytes_written() + writer.in_progress_size()) as u64;
        if size >= plan.target_file_bytes {
            close_part(part.take(), totals).await?;
        }
        progress.update(totals);
    }
    close_part(part.take(), totals).await
}

/// Finishes a part (footer, then the upload's completion).
async fn close_part(
    part: Option<(AsyncArrowWriter<BufWriter>, String)>,
    totals: &mut ExportTotals,
) -> Result<(), ExportError> {
    let Some((mut writer, key)) = part else {
        return Ok(());
    };
    writer
        .finish()
        .await
        .map_err(|source| ExportError::Write { key, source })?;
    totals.files += 1;
    totals.bytes += writer.bytes_written() as u64;
    Ok(())
}

/// Deletes `table`'s parts from other runs in partition `dir`; returns how
/// many.
async fn delete_stale_parts(
    store: &Arc<dyn ObjectStore>,
    destination: &StoreLocation,
    dir: &str,
    table: &str,
    run: &str,
) -> Result<u64, ExportError> {
    let prefix = destination.key(dir);
    let listed: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| ExportError::Destination {
            what: format!("listing {prefix}"),
            source,
        })?;
    let mut deleted = 0;
    for meta in listed {
        let Some(name) = meta.location.filename() else {
            continue;
        };
        // Only direct children: a partition never has subdirectories.
        if meta.location.prefix_match(&prefix).map(|p| p.count()) != Some(1) {
            continue;
        }
        if layout::is_stale_part(name, table, run) {
            delete(store, &meta.location).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes `table`'s parts from other runs in partitions of the plan's range
/// that this run did not write (their rows are gone at the source).
async fn clean_range(
    store: &Arc<dyn ObjectStore>,
    destination: &StoreLocation,
    plan: &ExportPlan,
    table: &'static str,
    run: &str,
    exported: &BTreeSet<(&str, i64)>,
) -> Result<u64, ExportError> {
    let table_dir = plan.layout.table_dir(table, ocsf::class_of(table));
    let prefix = destination.key(&table_dir);
    let listed: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| ExportError::Destination {
            what: format!("listing {prefix}"),
            source,
        })?;
    let mut deleted = 0;
    for meta in listed {
        let Some(parts) = meta.location.prefix_match(&prefix) else {
            continue;
        };
        let parts: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
        let Some((name, dirs)) = parts.split_last() else {
            continue;
        };
        let Some(start) = plan.layout.parse_partition_dir(&dirs.join("/")) else {
            continue;
        };
        let in_range =
            plan.since.is_none_or(|s| start >= s) && plan.until.is_none_or(|u| start < u);
        if in_range
            && !exported.contains(&(table, start))
            && layout::is_stale_part(name, table, run)
        {
            delete(store, &meta.location).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

async fn delete(store: &Arc<dyn ObjectStore>, key: &StorePath) -> Result<(), ExportError> {
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(ExportError::Destination {
            what: format!("deleting {key}"),
            source,
        }),
    }
}

async fn load_checkpoint(
    store: &Arc<dyn ObjectStore>,
    key: &StorePath,
) -> Result<Option<Checkpoint>, ExportError> {
    let bytes = match store.get(key).await {
        Ok(result) => result.bytes().await,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => Err(e),
    }
    .map_err(|source| ExportError::Destination {
        what: format!("reading checkpoint {key}"),
        source,
    })?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ExportError::Checkpoint {
            key: key.to_string(),
            reason: e.to_string(),
        })
}

async fn save_checkpoint(
    store: &Arc<dyn ObjectStore>,
    key: &StorePath,
    run: &str,
    plan: &str,
    done: &BTreeSet<String>,
) -> Result<(), ExportError> {
    let checkpoint = Checkpoint::V1 {
        run: run.to_string(),
        plan: plan.to_string(),
        done: done.clone(),
    };
    let json = serde_json::to_vec_pretty(&checkpoint).map_err(|e| ExportError::Checkpoint {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    store
        .put(key, PutPayload::from(json))
        .await
        .map(|_| ())
        .map_err(|source| ExportError::Destination {
            what: format!("writing checkpoint {key}"),
            source,
        })
}

/// The checkpoint object of the plan described by `description`.
fn checkpoint_key(destination: &StoreLocation, description: &str) -> StorePath {
    destination.key(&format!(
        "{CHECKPOINT_DIR}/{:016x}.json",
        fnv1a(description.as_bytes())
    ))
}

/// What identifies a plan across runs (its checkpoint's name is a hash of
/// it): everything that decides which units exist and what they hold.
fn describe(plan: &ExportPlan) -> String {
    let tables: Vec<&str> = plan.tables.iter().map(|t| t.name).collect();
    format!(
        "tables={} since={:?} until={:?} layout={:?} format={:?} host={} target={}",
        tables.join(","),
        plan.since,
        plan.until,
        plan.layout,
        plan.format,
        plan.host,
        plan.target_file_bytes
    )
}

/// A run token: the start time in milliseconds, base 36 (no `-`, sorts by
/// time within the same length).
fn new_run_token() -> String {
    let mut ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(ms % 36) as usize]);
        ms /= 36;
        if ms == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// FNV-1a, 64-bit: a hash that is the same on every build (std's is not
/// promised to be), for checkpoint names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// zstd, page statistics, large row groups.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::write_process_events;
    use crate::export::Layout;

    const H12: i64 = 1_714_564_800; // 2024-05-01T12:00:00Z

    async fn keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
        let mut keys: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list");
        keys.sort();
        keys
    }

    /// An interrupted export resumes: done units are skipped, the rest are
    /// written under the same run token, and old parts in the range, also of
    /// partitions without rows any more, are replaced.
    #[tokio::test]
    async fn resumes_from_the_checkpoint_and_replaces_the_range() {
        let data = tempfile::tempdir().expect("data");
        write_process_events(
            data.path(),
            "date=2024-05-01/hour=12/a.parquet",
            &[(1, "/a", H12 + 1)],
        );
        write_process_events(
            data.path(),
            "date=2024-05-01/hour=13/b.parquet",
            &[(3, "/c", H12 + 3601), (2, "/b", H12 + 3600)],
        );
        let ctx = crate::catalog::open_catalog(data.path()).expect("catalog");
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let destination = StoreLocation::new(
            store.clone(),
            url::Url::parse("memory:///").expect("url"),
            StorePath::from("lake"),
        );
        let plan = ExportPlan {
            tables: vec![sluice_schemas::table("es_process_events").expect("table")],
            since: None,
            until: None,
            layout: Layout::Hive { host: "h".into() },
            format: FormatArg::Parquet,
            host: "h".into(),
            target_file_bytes: 256_000_000,
        };
        let dir = "lake/table=es_process_events/host=h/date=2024-05-01";
        let put = |key: String| {
            let store = store.clone();
            async move {
                store
                    .put(&StorePath::from(key), PutPayload::from_static(b"old"))
                    .await
                    .expect("put");
            }
        };
        // Run r0 finished hour 12 and was interrupted; an older run left
        // parts in hour 13 and in hour 15, which has no rows any more.
        put(format!(
            "{dir}/hour=12/part-es_process_events-r0-00000.parquet"
        ))
        .await;
        put(format!(
            "{dir}/hour=13/part-es_process_events-rold-00000.parquet"
        ))
        .await;
        put(format!(
            "{dir}/hour=15/part-es_process_events-rold-00000.parquet"
        ))
        .await;
        put(format!(
            "{dir}/hour=15/part-es_process_file_events-rold-00000.parquet"
        ))
        .await;
        let key = checkpoint_key(&destination, &describe(&plan));
        let done = BTreeSet::from([format!("es_process_events@{H12}")]);
        save_checkpoint(&store, &key, "r0", "test", &done)
            .await
            .expect("checkpoint");

        let totals = export(&ctx, &plan, &destination, false)
            .await
            .expect("export");
        assert_eq!((totals.units, totals.units_resumed), (1, 1), "{totals:?}");
        assert_eq!(
            (totals.rows, totals.files, totals.stale_deleted),
            (2, 1, 2),
            "{totals:?}"
        );
        assert_eq!(
            keys(&store).await,
            vec![
                format!("{dir}/hour=12/part-es_process_events-r0-00000.parquet"),
                format!("{dir}/hour=13/part-es_process_events-r0-00000.parquet"),
                // Another table's part is not this export's to delete.
                format!("{dir}/hour=15/part-es_process_file_events-rold-00000.parquet"),
            ]
        );
        // The new part holds hour 13's rows, sorted by time, with the host.
        let bytes = store
            .get(&StorePath::from(format!(
                "{dir}/hour=13/part-es_process_events-r0-00000.parquet"
            )))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet")
            .build()
            .expect("reader");
        let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("read");
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
        let pids = batch.column_by_name("pid").expect("pid");
        let pids = pids.as_any().downcast_ref::<Int64Array>().expect("Int64");
        assert_eq!(pids.values().to_vec(), vec![2, 3]);
        let hosts = batch
            .column_by_name("host_identifier")
            .expect("host_identifier");
        let hosts = hosts
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("Utf8");
        assert_eq!(hosts.value(0), "h");
        // Done: the checkpoint is gone, so a new export starts a new run.
        assert!(store.head(&key).await.is_err());
    }
}
