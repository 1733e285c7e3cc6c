//! The SQL catalog: every sluice table over its Parquet files (and, in the
//! daemon, its hot tail).
//!
//! The persister writes `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/<file>.parquet`.
//! [`open_catalog`] registers one [`EventTable`] per table of
//! [`sluice_schemas::TABLES`] over `DATA_DIR/<table>/`:
//!
//! - The schema is the table's own ([`TableDef::schema`]), never inferred from
//!   the files: a table with no files yet still has all its columns, and a
//!   stray file cannot change what a query sees.
//! - The `date=`/`hour=` directories are not turned into partition columns, so
//!   the columns are exactly osquery's plus sluice's. A filter on `time` or
//!   `time_ns` skips the hour directories outside its window before listing
//!   them, then row groups and pages through the Parquet statistics
//!   ([`crate::tables`]).
//! - Only names ending in `.parquet` are read, so the persister's temporary
//!   `.*.tmp` files stay invisible until they are renamed into place.
//! - A missing table directory, or a missing data dir, is an empty table:
//!   querying never creates anything on disk.
//! - Files are listed again for every query, so a long-running shell sees
//!   files persisted after it started.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::TableScopedPath;
use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, CachedFileMetadata, CachedFileMetadataEntry,
    DEFAULT_FILE_STATISTICS_MEMORY_LIMIT, DEFAULT_METADATA_CACHE_LIMIT, FileMetadataCache,
    FileStatisticsCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use sluice_schemas::TableDef;

use crate::tables::{EventTable, TableFiles};

/// The extension of the files the catalog reads.
pub const PARQUET_EXTENSION: &str = ".parquet";

/// Why the catalog could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The data dir exists but is a file (or something else) rather than a
    /// directory.
    #[error("data dir {} is not a directory", path.display())]
    NotADirectory {
        /// The data dir.
        path: PathBuf,
    },
    /// The data dir could not be inspected or made absolute.
    #[error("cannot read data dir {}: {source}", path.display())]
    Inspect {
        /// The data dir.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The data dir's path is not valid UTF-8, which DataFusion's file URLs
    /// need.
    #[error("data dir {} is not valid UTF-8; choose a UTF-8 path with --data-dir", path.display())]
    NonUtf8Path {
        /// The data dir.
        path: PathBuf,
    },
    /// DataFusion's runtime (caches, object stores) could not be built.
    #[error("cannot set up the query runtime: {0}")]
    Runtime(#[source] DataFusionError),
    /// The host tables (`processes`, `hash`, …) could not be registered.
    #[error("cannot register the host tables: {0}")]
    HostTables(#[source] DataFusionError),
    /// The object store URL of `--store` could not be opened.
    #[error(transparent)]
    Store(#[from] sluice_sinks::object_store::StoreError),
    /// A table could not be registered.
    #[error("cannot register table {table} over {url}: {source}")]
    Register {
        /// The table.
        table: &'static str,
        /// The directory the table reads, as a URL.
        url: String,
        /// What DataFusion said.
        source: DataFusionError,
    },
}

/// Builds a [`SessionContext`] that serves every sluice table from
/// `data_dir`. See the module docs for what the tables read.
///
/// Nothing is created on disk; a missing `data_dir` only logs a warning (a
/// mistyped `--data-dir` would otherwise look like an empty history).
pub fn open_catalog(data_dir: &Path) -> Result<SessionContext, CatalogError> {
    open_catalog_inner(data_dir, None, None)
}

/// The parsed Parquet footers and file statistics of one process, shared by
/// the catalogs it opens one after another (the Flight SQL server opens one
/// per request, so that each sees the files persisted since).
///
/// Each entry is checked against the file's size and modification time
/// before use, and files are only ever written whole under new names, so a
/// shared entry is never stale; what the caches save is reading and parsing
/// every footer of a wide query again for every request (about 40 ms over
/// 200 files). The file list itself is never cached.
#[derive(Clone)]
pub struct FooterCaches {
    statistics: Option<Arc<FileStatisticsCache>>,
    metadata: Arc<FileMetadataCache>,
}

impl FooterCaches {
    /// Empty caches with DataFusion's default memory limits.
    pub fn new() -> FooterCaches {
        FooterCaches {
            statistics: Some(Arc::new(
                DefaultCache::<TableScopedPath, CachedFileMetadata>::new(
                    DEFAULT_FILE_STATISTICS_MEMORY_LIMIT,
                ),
            )),
            metadata: Arc::new(DefaultCache::<
                object_store::path::Path,
                CachedFileMetadataEntry,
            >::new(DEFAULT_METADATA_CACHE_LIMIT)),
        }
    }
}

impl Default for FooterCaches {
    fn default() -> Self {
        FooterCaches::new()
    }
}

impl std::fmt::Debug for FooterCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FooterCaches").finish_non_exhaustive()
    }
}

/// Like [`open_catalog`], reusing `caches` from the catalogs before it.
pub fn open_catalog_cached(
    data_dir: &Path,
    caches: &FooterCaches,
) -> Result<SessionContext, CatalogError> {
    open_catalog_inner(data_dir, None, Some(caches))
}

/// Like [`open_catalog`], for a process that also writes `data_dir`
/// through `storage` (the daemon): each event table reads the storage's hot
/// tail as well as its Parquet files, so a row can be queried as soon as
/// it is appended, and is read exactly once (see [`crate::tables`]).
///
/// `caches` carries parsed footers over from the catalogs opened before
/// (see [`FooterCaches`]).
pub fn open_catalog_live(
    data_dir: &Path,
    storage: Arc<sluice_sinks::Storage>,
    caches: &FooterCaches,
) -> Result<SessionContext, CatalogError> {
    open_catalog_inner(data_dir, Some(storage), Some(caches))
}

fn open_catalog_inner(
    data_dir: &Path,
    live: Option<Arc<sluice_sinks::Storage>>,
    caches: Option<&FooterCaches>,
) -> Result<SessionContext, CatalogError> {
    match std::fs::metadata(data_dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(CatalogError::NotADirectory {
                path: data_dir.to_path_buf(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(data_dir = %data_dir.display(), "data dir does not exist; every table is empty");
        }
        Err(source) => {
            return Err(CatalogError::Inspect {
                path: data_dir.to_path_buf(),
                source,
            });
        }
    }

    // Without this, DataFusion caches each table's file list forever and a
    // shell would never see files persisted after its first query.
    // The memory pool bounds every query (sorts and joins spill, the rest fail
    // cleanly); see `sql::QueryLimits`.
    let limits = crate::sql::QueryLimits::from_env();
    let mut cache_config = CacheManagerConfig::default().with_list_files_cache_limit(0);
    if let Some(caches) = caches {
        cache_config = cache_config
            .with_file_statistics_cache(caches.statistics.clone())
            .with_file_metadata_cache(Some(caches.metadata.clone()));
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(limits.memory_pool())
        .with_cache_manager(cache_config)
        .build_arc()
        .map_err(CatalogError::Runtime)?;
    let ctx = SessionContext::new_with_config_rt(session_config(), runtime);
    // SQLite's and osquery's functions, the dialect options and the limits.
    crate::sql::install(&ctx, limits);

    let data_dir = std::path::absolute(data_dir).map_err(|source| CatalogError::Inspect {
        path: data_dir.to_path_buf(),
        source,
    })?;
    // Checked here so that the per-query file URLs cannot fail later.
    directory_url(&data_dir)?;
    register_event_tables(
        &ctx,
        |def| TableFiles::Local {
            dir: data_dir.join(def.name),
        },
        live,
    )?;
    // Live tables of this host (processes, users, hash, …); see `host`.
    let ctx = crate::host::register(ctx).map_err(CatalogError::HostTables)?;
    // Group-bys on a text column assign groups by view, not by hashing the
    // text of every row; see `group_by`.
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_physical_optimizer_rule(Arc::new(crate::group_by::ViewGroupBy))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// Like [`open_catalog`], but the event tables read the Parquet files under
/// an object store URL (`s3://bucket/prefix`, `gs://…`, `az://…`,
/// `file:///…`) instead of the data dir: the layout the uploader
/// (`sluice_sinks::object_store`) writes, `<prefix>/<table>/date=…/hour=…/`.
/// Credentials come from the store's usual environment variables. The other
/// tables (host tables, functions, limits) are `open_catalog`'s.
pub fn open_catalog_with_store(
    data_dir: &Path,
    location: &sluice_sinks::object_store::StoreLocation,
) -> Result<SessionContext, CatalogError> {
    let ctx = open_catalog(data_dir)?;
    ctx.register_object_store(location.root_url(), location.store().clone());
    for def in sluice_schemas::TABLES {
        ctx.deregister_table(def.name)
            .map_err(|source| CatalogError::Register {
                table: def.name,
                url: location.directory_url(def.name),
                source,
            })?;
    }
    register_event_tables(
        &ctx,
        |def| TableFiles::Store {
            store: location.store().clone(),
            root: location.root_url().to_string(),
            prefix: location.key(def.name),
        },
        None,
    )?;
    Ok(ctx)
}

/// Registers every table of [`sluice_schemas::TABLES`] as an
/// [`EventTable`] over the files `files_of` names.
fn register_event_tables(
    ctx: &SessionContext,
    files_of: impl Fn(&'static TableDef) -> TableFiles,
    live: Option<Arc<sluice_sinks::Storage>>,
) -> Result<(), CatalogError> {
    // ParquetFormat carries its own copy of the Parquet read options; take the
    // session's so that the pushdown settings reach the scans.
    let state = ctx.state();
    let parquet_options = state.default_table_options().parquet;
    let statistics_cache = state.runtime_env().cache_manager.get_file_statistic_cache();
    for def in sluice_schemas::TABLES {
        let files = files_of(def);
        let url = format!("{files:?}");
        let table = EventTable::new(
            def,
            files,
            live.clone(),
            parquet_options.clone(),
            statistics_cache.clone(),
        );
        ctx.register_table(def.name, Arc::new(table))
            .map_err(|source| CatalogError::Register {
                table: def.name,
                url,
                source,
            })?;
    }
    Ok(())
}

/// The CREATE TABLE statement osquery's shell prints for `.schema`, e.g.
/// ``CREATE TABLE t(`a` INTEGER, `eid` TEXT HIDDEN);``.
pub fn create_table_statement(def: &TableDef) -> String {
    let columns: Vec<String> = def
        .columns
        .iter()
        .map(|c| {
            let hidden = if c.origin == sluice_schemas::ColumnOrigin::OsqueryHidden {
                " HIDDEN"
            } else {
                ""
            };
            format!("`{}` {}{hidden}", c.name, c.sql_type.name())
        })
        .collect();
    format!("CREATE TABLE {}({});", def.name, columns.join(", "))
}

/// Session settings for read-mostly, time-ranged queries over Parquet.
fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    let options = config.options_mut();
    // The persister writes page statistics and sorts rows by time, so the
    // page index skips most pages of a narrow time range. Whether filters are
    // also evaluated while decoding (cheapest first) is decided per scan, by
    // the event table (`tables::decodes_beyond_filters`); this is off so that
    // the scan's choice is the one that holds.
    options.execution.parquet.pushdown_filters = false;
    options.execution.parquet.reorder_filters = true;
    options.execution.parquet.enable_page_index = true;
    // The persister writes no bloom filters; looking for them is work for
    // every row group of every file opened.
    options.execution.parquet.bloom_filter_on_read = false;
    options.execution.parquet.pruning = true;
    options.execution.collect_statistics = true;
    // Files live two directories below the table (date=/hour=); do not rely on
    // DataFusion's special case for `key=value` directory names.
    options.execution.listing_table_ignore_subdirectory = false;
    config
}

/// `dir` as a `file://` directory URL, percent-encoded by hand.
///
/// `ListingTableUrl::parse` on a bare path would read `?`, `*` and `[` as a
/// glob and could not tell a missing directory from a file; a URL ending in
/// `/` is always a directory.
fn directory_url(dir: &Path) -> Result<String, CatalogError> {
    let mut url = path_url(dir)?;
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}

/// `file` (a Parquet file found by listing) as a `file://` URL; see
/// [`directory_url`] for why by hand.
pub(crate) fn file_url(file: &Path) -> datafusion::common::Result<String> {
    path_url(file).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn path_url(path: &Path) -> Result<String, CatalogError> {
    let absolute = std::path::absolute(path).map_err(|source| CatalogError::Inspect {
        path: path.to_path_buf(),
        source,
    })?;
    let text = absolute.to_str().ok_or_else(|| CatalogError::NonUtf8Path {
        path: path.to_path_buf(),
    })?;
    let mut url = String::with_capacity(text.len() + 8);
    url.push_str("file://");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(url)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::Array;
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::DataType;

    /// Writes `rows` (pid, path, time) as a Parquet file of `es_process_events`
    /// at `dir/es_process_events/<relative>`, every other column NULL.
    pub(crate) fn write_process_events(dir: &Path, relative: &str, rows: &[(i64, &str, i64)]) {
        let rows: Vec<_> = rows
            .iter()
            .map(|&(pid, path, time)| (pid, path, Some(time)))
            .collect();
        write_process_events_timed(dir, relative, &rows);
    }

    /// [`write_process_events`] with times that may be NULL.
    pub(crate) fn write_process_events_timed(
        dir: &Path,
        relative: &str,
        rows: &[(i64, &str, Option<i64>)],
    ) {
        let batch = process_events_batch(rows);
        let path = dir.join("es_process_events").join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let file = std::fs::File::create(&path).expect("create");
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
    }

    /// `rows` (pid, path, time) as a batch of `es_process_events`, every
    /// other column NULL.
    fn process_events_batch(rows: &[(i64, &str, Option<i64>)]) -> RecordBatch {
        let def = sluice_schemas::table("es_process_events").expect("table");
        let schema = def.schema();
        let n = rows.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "pid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                    "path" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                    "time" => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                    "time_ns" => Arc::new(
                        TimestampNanosecondArray::from_iter(
                            rows.iter().map(|r| r.2.map(|t| t * 1_000_000_000)),
                        )
                        .with_timezone("UTC"),
                    ),
                    _ => arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    async fn count(ctx: &SessionContext, sql: &str) -> i64 {
        let batches = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let column = batches[0].column(0);
        assert_eq!(column.len(), 1);
        column
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("count is Int64")
            .value(0)
    }

    #[tokio::test]
    async fn every_table_has_exactly_its_schema_and_is_empty_without_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = open_catalog(dir.path()).expect("catalog");
        for def in sluice_schemas::TABLES {
            let df = ctx.table(def.name).await.expect("table registered");
            let scanned = df.schema().as_arrow();
            // Text is scanned as views (see `tables::scan_schema`) …
            for field in scanned.fields() {
                assert_ne!(field.data_type(), &DataType::Utf8, "{}", def.name);
            }
            // … and is otherwise exactly the table's schema.
            assert_eq!(
                &crate::sql::plain_schema(scanned),
                def.schema().as_ref(),
                "{}",
                def.name
            );
            assert_eq!(
                count(&ctx, &format!("SELECT count(*) FROM {}", def.name)).await,
                0
            );
        }
        // Querying did not create table directories.
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
    }

    #[tokio::test]
    async fn missing_data_dir_is_empty_and_stays_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("not here");
        let ctx = open_catalog(&missing).expect("catalog");
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM es_process_events").await,
            0
        );
        assert!(!missing.exists());
    }

    #[test]
    fn data_dir_that_is_a_file_is_an_error() {
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        let Err(err) = open_catalog(file.path()) else {
            panic!("a file is not a data dir")
        };
        assert!(matches!(err, CatalogError::NotADirectory { .. }), "{err}");
    }

    #[tokio::test]
    async fn reads_nested_files_ignores_tmp_and_prunes_on_time() {
        // Spaces and glob characters in the path must not confuse the URL.
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a [b] c?");
        write_process_events(
            &dir,
            "date=1970-01-01/hour=00/a.parquet",
            &[(1, "/bin/ls", 100), (2, "/bin/cat", 200)],
        );
        write_process_events(
            &dir,
            "date=1970-01-01/hour=01/b.parquet",
            &[(3, "/bin/sh", 3700)],
        );
        write_process_events(
            &dir,
            "date=1970-01-01/hour=02/c.parquet.tmp",
            &[(4, "/bin/zsh", 7300)],
        );
        let ctx = open_catalog(&dir).expect("catalog");
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM es_process_events").await,
            3
        );
        assert_eq!(
            count(
                &ctx,
                "SELECT count(*) FROM es_process_events \
                 WHERE time_ns >= TIMESTAMP '1970-01-01T00:02:30Z' AND path LIKE '/bin/%'"
            )
            .await,
            2
        );
        assert_eq!(
            count(
                &ctx,
                "SELECT count(*) FROM es_process_events WHERE time > 3600"
            )
            .await,
            1
        );
    }

    #[tokio::test]
    async fn hours_outside_the_time_window_are_never_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_process_events(
            dir.path(),
            "date=2024-01-01/hour=05/good.parquet",
            &[(1, "/bin/ls", 1_704_085_200 + 10)],
        );
        // Not Parquet at all: any attempt to read it fails the query.
        let poisoned = dir
            .path()
            .join("es_process_events/date=2024-01-01/hour=04/poisoned.parquet");
        std::fs::create_dir_all(poisoned.parent().expect("parent")).expect("mkdir");
        std::fs::write(&poisoned, b"not parquet").expect("write");
        let ctx = open_catalog(dir.path()).expect("catalog");
        // 2024-01-01T05:00:00Z = 1704085200; hour 04 lies wholly before it.
        for window in [
            "time >= 1704085200",
            "time BETWEEN 1704085200 AND 1704088799",
            "time_ns >= TIMESTAMP '2024-01-01T05:00:00Z'",
            "time >= strftime('%s', '2024-01-01 05:00:00')",
            "time > strftime('%s', '2024-01-01 06:00:00') - 3601",
        ] {
            // Through the dialect front end, as `sluice query` runs it.
            let sql = format!("SELECT count(*) AS n FROM es_process_events WHERE {window}");
            let mut out = Vec::new();
            crate::query::run(&ctx, &sql, crate::output::OutputFormat::Jsonl, &mut out)
                .await
                .unwrap_or_else(|e| panic!("{window}: {e}"));
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                "{\"n\":1}\n",
                "{window}"
            );
        }
        // Without a window the poisoned file is read, and the query says so.
        let unpruned = ctx
            .sql("SELECT count(*) FROM es_process_events")
            .await
            .expect("plan")
            .collect()
            .await;
        assert!(unpruned.is_err(), "the poisoned file was not read");
    }

    #[tokio::test]
    async fn sees_files_written_after_the_first_query() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = open_catalog(dir.path()).expect("catalog");
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM es_process_events").await,
            0
        );
        write_process_events(
            dir.path(),
            "date=2024-01-01/hour=00/a.parquet",
            &[(1, "/bin/ls", 1)],
        );
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM es_process_events").await,
            1
        );
    }

    #[tokio::test]
    async fn information_schema_lists_the_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = open_catalog(dir.path()).expect("catalog");
        let n = count(
            &ctx,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .await;
        assert_eq!(
            n,
            (sluice_schemas::TABLES.len() + crate::host::HOST_TABLES.len()) as i64
        );
    }

    #[tokio::test]
    async fn time_filters_are_pushed_into_the_parquet_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_process_events(
            dir.path(),
            "date=2024-01-01/hour=00/a.parquet",
            &[(1, "/bin/ls", 100)],
        );
        let ctx = open_catalog(dir.path()).expect("catalog");
        let sql = "EXPLAIN SELECT path FROM es_process_events WHERE time_ns > TIMESTAMP '1970-01-01T00:02:30Z'";
        let batches = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let plan = arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string();
        // Row groups and pages are pruned on statistics, and the filter is
        // evaluated while decoding rather than by a FilterExec afterwards,
        // so that `path` is decoded only where it passes.
        assert!(plan.contains("pruning_predicate="), "{plan}");
        assert!(!plan.contains("FilterExec"), "{plan}");
    }

    #[tokio::test]
    async fn exact_time_filters_are_skipped_only_on_covered_hours() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 1970-01-01 hours 00..=03; the epoch's hour also holds NULL times.
        let rows = |hour: i64| -> Vec<(i64, &str, Option<i64>)> {
            [0, 1, 1_800, 3_599]
                .iter()
                .map(|offset| {
                    (
                        hour * 10_000 + offset,
                        "/bin/ls",
                        Some(hour * 3_600 + offset),
                    )
                })
                .collect()
        };
        let mut epoch = rows(0);
        epoch.push((99, "/bin/null", None));
        write_process_events_timed(dir.path(), "date=1970-01-01/hour=00/a.parquet", &epoch);
        for hour in 1..=3 {
            write_process_events_timed(
                dir.path(),
                &format!("date=1970-01-01/hour={hour:02}/a.parquet"),
                &rows(hour),
            );
        }
        let ctx = open_catalog(dir.path()).expect("catalog");
        let pids = |sql: String| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx
                    .sql(&sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run");
                let mut pids: Vec<i64> = batches
                    .iter()
                    .flat_map(|b| {
                        let column = b
                            .column(0)
                            .as_any()
                            .downcast_ref::<Int64Array>()
                            .expect("pid");
                        column.values().to_vec()
                    })
                    .collect();
                pids.sort();
                pids
            }
        };
        // Whole hours 01 and 02, read without the filter; `time` is not
        // even selected.
        let whole = "time BETWEEN 3600 AND 10799";
        assert_eq!(
            pids(format!("SELECT pid FROM es_process_events WHERE {whole}")).await,
            [
                10_000, 10_001, 11_800, 13_599, 20_000, 20_001, 21_800, 23_599
            ]
        );
        // Hour 01 only in part: filtered there, not in hour 02.
        let part = "time >= 3601 AND time < 10800";
        assert_eq!(
            pids(format!(
                "SELECT pid FROM es_process_events WHERE {part} AND path LIKE '/bin/%'"
            ))
            .await,
            [10_001, 11_800, 13_599, 20_000, 20_001, 21_800, 23_599]
        );
        // Every hour from the epoch's: NULL times still never match.
        let all = pids("SELECT pid FROM es_process_events WHERE time >= 0".into()).await;
        assert_eq!(all.len(), 16);
        assert!(!all.contains(&99));
        // A limit still counts filtered rows.
        assert_eq!(
            pids(
                "SELECT pid FROM es_process_events WHERE time > 3599 AND time < 3602 LIMIT 5"
                    .into()
            )
            .await,
            [10_000, 10_001]
        );
        // The plan: one scan without the time predicate (hour 02), one with
        // it (hour 01; DataFusion moves the scan's own filter into it).
        let plan = ctx
            .sql(&format!("SELECT pid FROM es_process_events WHERE {part}"))
            .await
            .expect("plan")
            .create_physical_plan()
            .await
            .expect("physical plan");
        let plan = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        let scans: Vec<&str> = plan
            .lines()
            .filter(|l| l.contains("DataSourceExec"))
            .collect();
        assert_eq!(scans.len(), 2, "{plan}");
        let (covered, partial): (Vec<&str>, Vec<&str>) =
            scans.iter().partition(|l| l.contains("hour=02"));
        assert!(!covered[0].contains("predicate="), "{plan}");
        assert!(
            partial[0].contains("hour=01") && partial[0].contains("predicate="),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn shared_footer_caches_fill_and_never_serve_a_replaced_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let relative = "date=1970-01-01/hour=01/a.parquet";
        write_process_events(dir.path(), relative, &[(1, "/bin/ls", 3_600)]);
        let caches = FooterCaches::new();
        let sql = "SELECT sum(pid) FROM es_process_events WHERE time >= 3601";
        let first = open_catalog_cached(dir.path(), &caches).expect("catalog");
        assert_eq!(count(&first, sql).await, 0);
        // The next catalog reuses what the first one parsed …
        assert!(
            !caches.metadata.is_empty()
                || caches.statistics.as_ref().is_some_and(|c| !c.is_empty())
        );
        // … but not for a file that changed since (sluice never rewrites one
        // in place; a hand-made copy might).
        write_process_events(
            dir.path(),
            relative,
            &[
                (2, "/bin/sh", 3_700),
                (3, "/bin/zsh", 3_701),
                (4, "/bin/csh", 3_702),
            ],
        );
        let second = open_catalog_cached(dir.path(), &caches).expect("catalog");
        assert_eq!(count(&second, sql).await, 9);
    }

    #[tokio::test]
    async fn exact_time_filters_are_applied_to_the_hot_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, _) =
            sluice_sinks::Storage::open(dir.path(), sluice_sinks::StorageOptions::default())
                .expect("storage");
        let storage = Arc::new(storage);
        storage
            .append(
                "es_process_events",
                process_events_batch(&[
                    (1, "/bin/ls", Some(3_600)),
                    (2, "/bin/ls", Some(7_199)),
                    (3, "/bin/ls", Some(7_200)),
                    (4, "/bin/ls", None),
                ]),
            )
            .expect("append");
        let ctx = open_catalog_live(dir.path(), storage, &FooterCaches::new()).expect("catalog");
        for (window, expected) in [
            ("time BETWEEN 3600 AND 7199", 2),
            ("time >= 0", 3),
            ("time > 7199", 1),
        ] {
            let sql = format!("SELECT count(*) FROM es_process_events WHERE {window}");
            assert_eq!(count(&ctx, &sql).await, expected, "{window}");
            // With `time` left out of the projection, and a limit.
            let sql = format!("SELECT pid FROM es_process_events WHERE {window} LIMIT 5");
            let rows: usize = ctx
                .sql(&sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run")
                .iter()
                .map(RecordBatch::num_rows)
                .sum();
            assert_eq!(rows as i64, expected, "{window}");
        }
    }

    #[test]
    fn create_table_statement_is_osquery_style() {
        let def = sluice_schemas::table("es_process_file_events").expect("table");
        let sql = create_table_statement(def);
        assert!(
            sql.starts_with(
                "CREATE TABLE es_process_file_events(`version` INTEGER, `seq_num` BIGINT,"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("`eid` TEXT HIDDEN, `time_ns` TIMESTAMP"),
            "{sql}"
        );
        assert!(sql.ends_with("`dest_filename_bytes` BLOB);"), "{sql}");
    }

    #[test]
    fn directory_url_escapes_and_ends_in_slash() {
        let url = directory_url(Path::new("/tmp/a b/[x]")).expect("url");
        assert_eq!(url, "file:///tmp/a%20b/%5Bx%5D/");
    }
}
