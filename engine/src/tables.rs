//! One event table as SQL sees it: the hot tail in memory, then the Parquet
//! files, pruned by time before any file is opened.
//!
//! The storage layer files each row under the UTC hour of its `time`
//! (`<table>/date=YYYY-MM-DD/hour=HH/*.parquet`, see
//! `sluice_sinks::layout`). An analyst's query nearly always names a time
//! window (`time > strftime('%s','now') - 600`), so [`EventTable::scan`]
//! first reads the window off the query's filters ([`TimeWindow`]), then
//! lists only the date and hour directories that overlap it: a week of
//! history is 168 hour directories, and a ten-minute query opens the files of
//! one or two of them. Inside the surviving files DataFusion's Parquet reader
//! prunes row groups and pages on their `time` statistics, and evaluates the
//! other filters while decoding.
//!
//! When the table is served by a running daemon, the rows not yet rolled
//! into Parquet live in the storage's hot tail. The scan takes the tail's
//! snapshot and lists the files under the tail's read lock
//! (`HotTail::with_snapshot`), and a roll publishes its files and drops its
//! batches under the write lock; so every row is read exactly once, from
//! memory or from a file.
//!
//! Filters are reported to DataFusion as `Inexact`: pruning only skips what
//! cannot match, and DataFusion still applies each filter to the rows read,
//! so a window read conservatively never changes a result. The exception is
//! a filter that is exactly a window on `time` (`time BETWEEN a AND b`,
//! `time >= a`, with whole numbers: [`exact_window`]). The scan applies
//! those itself, and only to the files of hours the window does not cover
//! and to the hot tail: every row of an hour inside the window passes them,
//! so a query over days of history does not decode and compare `time` on
//! every row (about 15 % of such a scan). This trusts the layout as pruning
//! already does: a file under `hour=HH` holds only rows of that hour, and
//! NULL times only in the epoch's hour, which is never taken as covered.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::common::{Result, ScalarValue};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::cache::cache_manager::FileStatisticsCache;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::union::UnionExec;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use sluice_schemas::TableDef;
use sluice_sinks::Storage;
use sluice_sinks::layout::PartitionKey;

use crate::catalog::PARQUET_EXTENSION;

/// The column the storage layer partitions by: unix seconds.
const TIME: &str = "time";
/// The same instant as a UTC nanosecond timestamp.
const TIME_NS: &str = sluice_schemas::TIME_NS;

/// An inclusive range of unix seconds that every row a query can return
/// lies in. `i64::MIN..=i64::MAX` when the filters say nothing about time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// The earliest second a matching row can have.
    pub first: i64,
    /// The latest second a matching row can have.
    pub last: i64,
}

impl TimeWindow {
    /// Every second: nothing is pruned.
    pub const ALL: TimeWindow = TimeWindow {
        first: i64::MIN,
        last: i64::MAX,
    };

    /// The window implied by a conjunction of filters (DataFusion hands a
    /// scan its `WHERE` already split at `AND`).
    ///
    /// Only forms that bound `time` or `time_ns` are read: comparisons with a
    /// literal on either side (after constant folding, so
    /// `strftime('%s','now') - 600` has become a number), `BETWEEN`, casts
    /// of the column to a wider number, and `OR` of such forms (their hull).
    /// Anything else leaves the window as it is, which is always safe.
    pub fn from_filters(filters: &[Expr]) -> TimeWindow {
        filters.iter().fold(TimeWindow::ALL, |window, filter| {
            window.intersect(bound_of(filter))
        })
    }

    /// True when no second can match (e.g. `time > 10 AND time < 5`).
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }

    /// Whether any second of the UTC hour `key` lies in the window.
    ///
    /// The first and last partitions the layout can name also hold every
    /// time before or after them (`PartitionKey::from_unix_seconds`
    /// saturates), so they are open-ended here.
    pub fn overlaps_hour(&self, key: PartitionKey) -> bool {
        let (start, end) = hour_span(key);
        start <= self.last && self.first <= end
    }

    /// Whether every second of the UTC hour `key` lies in the window, so
    /// that every row filed under it has a `time` in the window.
    ///
    /// Never true of [`PartitionKey::EPOCH`]: rows whose `time` is NULL are
    /// filed there too, and a NULL is in no window.
    pub fn covers_hour(&self, key: PartitionKey) -> bool {
        let (start, end) = hour_span(key);
        key != PartitionKey::EPOCH && self.first <= start && end <= self.last
    }

    /// Whether any hour of the UTC day (`year`, `month`, `day`) overlaps.
    fn overlaps_day(&self, year: i32, month: u32, day: u32) -> bool {
        (0..24).any(|hour| {
            self.overlaps_hour(PartitionKey {
                year,
                month,
                day,
                hour,
            })
        })
    }

    fn intersect(self, other: TimeWindow) -> TimeWindow {
        TimeWindow {
            first: self.first.max(other.first),
            last: self.last.min(other.last),
        }
    }

    fn hull(self, other: TimeWindow) -> TimeWindow {
        TimeWindow {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        }
    }

    fn at_least(first: i64) -> TimeWindow {
        TimeWindow {
            first,
            last: i64::MAX,
        }
    }

    fn at_most(last: i64) -> TimeWindow {
        TimeWindow {
            first: i64::MIN,
            last,
        }
    }
}

/// The seconds of the UTC hour `key`, first and last. The first and last
/// partitions the layout can name also hold every time before or after them
/// (`PartitionKey::from_unix_seconds` saturates), so they are open-ended.
fn hour_span(key: PartitionKey) -> (i64, i64) {
    let start = key.start_unix_seconds();
    let end = start + 3_599;
    let start = if start <= sluice_sinks::layout::MIN_PARTITION_SECONDS {
        i64::MIN
    } else {
        start
    };
    let end = if end >= sluice_sinks::layout::MAX_PARTITION_SECONDS {
        i64::MAX
    } else {
        end
    };
    (start, end)
}

/// The window of a filter that keeps exactly the rows whose `time` lies in
/// it: `time` compared with a whole number (`=`, `<`, `<=`, `>`, `>=`, either
/// way round) or `BETWEEN` two whole numbers, after constant folding.
///
/// [`bound_of`] reads more forms, but only as bounds: it rounds a float or a
/// nanosecond literal outward and takes the hull of an `OR`, so a row inside
/// its window may still fail the filter. For the forms read here the window
/// *is* the filter (for non-NULL `time`), so a scan may skip evaluating it on
/// an hour partition the window covers.
fn exact_window(filter: &Expr) -> Option<TimeWindow> {
    let seconds = |expr: &Expr| matches!(expr, Expr::Column(column) if column.name == TIME);
    let whole = |expr: &Expr| literal(expr).filter(|l| matches!(l, Literal::Integer(_)));
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = match op {
                Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => *op,
                _ => return None,
            };
            if seconds(left) {
                Some(comparison(op, Unit::Seconds, whole(right)?))
            } else if seconds(right) {
                Some(comparison(op.swap()?, Unit::Seconds, whole(left)?))
            } else {
                None
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if seconds(expr) => Some(
            comparison(Operator::GtEq, Unit::Seconds, whole(low)?).intersect(comparison(
                Operator::LtEq,
                Unit::Seconds,
                whole(high)?,
            )),
        ),
        _ => None,
    }
}

/// The window one filter implies.
fn bound_of(filter: &Expr) -> TimeWindow {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => bound_of(left).intersect(bound_of(right)),
            Operator::Or => bound_of(left).hull(bound_of(right)),
            _ => {
                if let (Some(unit), Some(value)) = (time_column(left), literal(right)) {
                    comparison(*op, unit, value)
                } else if let (Some(value), Some(unit)) = (literal(left), time_column(right)) {
                    match op.swap() {
                        Some(op) => comparison(op, unit, value),
                        None => TimeWindow::ALL,
                    }
                } else {
                    TimeWindow::ALL
                }
            }
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => match (time_column(expr), literal(low), literal(high)) {
            (Some(unit), Some(low), Some(high)) => comparison(Operator::GtEq, unit, low)
                .intersect(comparison(Operator::LtEq, unit, high)),
            _ => TimeWindow::ALL,
        },
        _ => TimeWindow::ALL,
    }
}

/// How many of a column's units make one second.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Seconds,
    Nanoseconds,
}

/// `time` or `time_ns`, possibly under casts that keep every value exact
/// (to `BIGINT`, `DOUBLE` or a decimal), as DataFusion's type coercion
/// leaves them when a literal of another type is compared. A cast to a
/// narrower type (`FLOAT`, `INT`) could round a row across the bound, so it
/// bounds nothing.
fn time_column(expr: &Expr) -> Option<Unit> {
    let exact = |data_type: &DataType| {
        matches!(
            data_type,
            DataType::Int64
                | DataType::Float64
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        )
    };
    match expr {
        Expr::Column(column) if column.name == TIME => Some(Unit::Seconds),
        Expr::Column(column) if column.name == TIME_NS => Some(Unit::Nanoseconds),
        Expr::Cast(cast) if exact(cast.field.data_type()) => time_column(&cast.expr),
        Expr::TryCast(cast) if exact(cast.field.data_type()) => time_column(&cast.expr),
        _ => None,
    }
}

/// A literal as a number of the column's unit, or of seconds for
/// timestamps (converted by the caller). Floats are kept as floats so
/// `time > 99.5` rounds the right way.
#[derive(Debug, Clone, Copy)]
enum Literal {
    Integer(i128),
    Float(f64),
    /// An instant, in nanoseconds since the epoch.
    Instant(i128),
}

fn literal(expr: &Expr) -> Option<Literal> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    Some(match value {
        ScalarValue::Int8(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::Int16(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::Int32(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::Int64(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::UInt8(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::UInt16(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::UInt32(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::UInt64(Some(v)) => Literal::Integer(i128::from(*v)),
        ScalarValue::Float64(Some(v)) if v.is_finite() => Literal::Float(*v),
        ScalarValue::Float32(Some(v)) if v.is_finite() => Literal::Float(f64::from(*v)),
        ScalarValue::TimestampSecond(Some(v), _) => {
            Literal::Instant(i128::from(*v) * 1_000_000_000)
        }
        ScalarValue::TimestampMillisecond(Some(v), _) => {
            Literal::Instant(i128::from(*v) * 1_000_000)
        }
        ScalarValue::TimestampMicrosecond(Some(v), _) => Literal::Instant(i128::from(*v) * 1_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => Literal::Instant(i128::from(*v)),
        _ => return None,
    })
}

/// The window of `column op value`, widened to whole seconds.
fn comparison(op: Operator, unit: Unit, value: Literal) -> TimeWindow {
    // The literal as a closed range of possible column values, in seconds:
    // `floor` and `ceil` of its exact value. Rounding outward can only keep
    // an hour that a precise bound would have dropped, never the reverse.
    let (floor, ceil) = match (unit, value) {
        (Unit::Seconds, Literal::Integer(v)) => (v, v),
        (Unit::Seconds, Literal::Float(v)) => (v.floor() as i128, v.ceil() as i128),
        (Unit::Nanoseconds, Literal::Integer(v)) | (_, Literal::Instant(v)) => (
            v.div_euclid(1_000_000_000),
            (v + 999_999_999).div_euclid(1_000_000_000),
        ),
        (Unit::Nanoseconds, Literal::Float(v)) => {
            let seconds = v / 1e9;
            (seconds.floor() as i128, seconds.ceil() as i128)
        }
    };
    // A strict comparison of whole seconds with a whole number excludes the
    // number itself.
    let exact = matches!((unit, value), (Unit::Seconds, Literal::Integer(_)));
    let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    match op {
        Operator::Eq => TimeWindow {
            first: clamp(floor),
            last: clamp(ceil),
        },
        Operator::Gt if exact => TimeWindow::at_least(clamp(floor + 1)),
        Operator::Lt if exact => TimeWindow::at_most(clamp(ceil - 1)),
        Operator::Gt | Operator::GtEq => TimeWindow::at_least(clamp(floor)),
        Operator::Lt | Operator::LtEq => TimeWindow::at_most(clamp(ceil)),
        _ => TimeWindow::ALL,
    }
}

/// Where a table's Parquet files are.
#[derive(Clone)]
pub enum TableFiles {
    /// `DATA_DIR/<table>/` on this host.
    Local {
        /// The table's directory.
        dir: PathBuf,
    },
    /// `<prefix>/<table>/` in an object store.
    Store {
        /// The store, also registered with the session under `root`.
        store: Arc<dyn ObjectStore>,
        /// The store's URL (`s3://bucket/`), which DataFusion resolves the
        /// file URLs against.
        root: String,
        /// The table's key prefix in the store.
        prefix: StorePath,
    },
}

impl fmt::Debug for TableFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableFiles::Local { dir } => f.debug_struct("Local").field("dir", dir).finish(),
            TableFiles::Store { root, prefix, .. } => f
                .debug_struct("Store")
                .field("root", root)
                .field("prefix", prefix)
                .finish(),
        }
    }
}

/// An event table over its Parquet files and, in a daemon, its hot tail.
pub struct EventTable {
    def: &'static TableDef,
    schema: SchemaRef,
    files: TableFiles,
    live: Option<Arc<Storage>>,
    parquet_options: TableParquetOptions,
    statistics_cache: Option<Arc<FileStatisticsCache>>,
}

impl fmt::Debug for EventTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventTable")
            .field("table", &self.def.name)
            .field("files", &self.files)
            .field("live", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl EventTable {
    /// The table `def` over `files`, reading the hot tail of `live` too
    /// when given. `parquet_options` and `statistics_cache` are the
    /// session's, so its pushdown settings and footer cache reach the scans.
    pub fn new(
        def: &'static TableDef,
        files: TableFiles,
        live: Option<Arc<Storage>>,
        parquet_options: TableParquetOptions,
        statistics_cache: Option<Arc<FileStatisticsCache>>,
    ) -> EventTable {
        EventTable {
            def,
            schema: scan_schema(def),
            files,
            live,
            parquet_options,
            statistics_cache,
        }
    }

    /// The URLs to read for `window`, and the hot tail's batches taken at
    /// the same instant.
    async fn sources(&self, window: TimeWindow) -> Result<(Vec<Listed>, Vec<RecordBatch>)> {
        match &self.files {
            TableFiles::Local { dir } => {
                let list = || list_local(dir, window);
                match &self.live {
                    // Listing under the tail's read lock: see the module docs.
                    Some(storage) => {
                        let (listed, batches) =
                            storage.hot_tail().with_snapshot(self.def.name, list);
                        Ok((listed?, batches))
                    }
                    None => Ok((list()?, Vec::new())),
                }
            }
            TableFiles::Store {
                store,
                root,
                prefix,
            } => Ok((list_store(store, root, prefix, window).await?, Vec::new())),
        }
    }
}

#[async_trait]
impl TableProvider for EventTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // A filter that is exactly a window on `time` is the scan's to apply
        // (it skips it where a whole hour lies inside the window); every
        // other filter prunes what it can, and DataFusion checks it.
        Ok(filters
            .iter()
            .map(|filter| match exact_window(filter) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let window = TimeWindow::from_filters(filters);
        let (listed, hot) = if window.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.sources(window).await?
        };
        // The filters this scan promised to apply (see
        // `supports_filters_pushdown`), and the rest.
        let (mut exact, mut inexact) = (Vec::new(), Vec::new());
        let mut exact_span = TimeWindow::ALL;
        for filter in filters {
            match exact_window(filter) {
                Some(span) => {
                    exact_span = exact_span.intersect(span);
                    exact.push(filter.clone());
                }
                None => inexact.push(filter.clone()),
            }
        }
        let exact = conjunction(exact);
        // Files of an hour inside the window hold only rows that pass the
        // exact filters: they are read without them, which spares decoding
        // and comparing `time` on every row of a wide query. They are also
        // read without the page index: rows are sorted by time, so `time`
        // is the column whose pages it tells apart, and there is no time
        // filter left to prune with; on other columns every page spans
        // most values, and weighing each filter against each page of each
        // file cost 6 % of a whole-history join of 80 hourly files.
        let (covered, partial): (Vec<Listed>, Vec<Listed>) = listed.into_iter().partition(|file| {
            exact.is_some() && file.hour.is_some_and(|hour| exact_span.covers_hour(hour))
        });
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::with_capacity(3);
        // DataFusion passes a limit only when no filter is left for it to
        // apply; a scan must not stop early before a filter is applied.
        let unfiltered_limit = limit.filter(|_| inexact.is_empty());
        if !covered.is_empty() {
            inputs.push(
                self.scan_files(
                    state,
                    &covered,
                    projection,
                    &inexact,
                    unfiltered_limit,
                    PageIndex::Skip,
                )
                .await?,
            );
        }
        // Everything else is read with a projection that keeps `time`, and
        // filtered here.
        let wide = match exact {
            Some(_) => with_time(&self.schema, projection),
            None => projection.cloned(),
        };
        // `wide` is `projection` with at most `time` appended, so the
        // columns asked for are the first ones of what it reads.
        let cut_back: Option<Vec<usize>> = match (projection, &wide) {
            (Some(asked), Some(wide)) if asked.len() < wide.len() => {
                Some((0..asked.len()).collect())
            }
            _ => None,
        };
        if !partial.is_empty() {
            // With exact filters, `filtered` applies the limit after them.
            let scan_limit = if exact.is_some() {
                None
            } else {
                unfiltered_limit
            };
            let files = self
                .scan_files(
                    state,
                    &partial,
                    wide.as_ref(),
                    filters,
                    scan_limit,
                    PageIndex::Use,
                )
                .await?;
            inputs.push(filtered(
                state,
                files,
                exact.as_ref(),
                cut_back.clone(),
                unfiltered_limit,
            )?);
        }
        if !hot.is_empty() {
            let hot = hot
                .iter()
                .map(|batch| as_scan_batch(batch, &self.schema))
                .collect::<Result<Vec<_>>>()?;
            let memory =
                MemorySourceConfig::try_new_exec(&[hot], self.schema.clone(), wide.clone())?;
            inputs.push(filtered(
                state,
                memory,
                exact.as_ref(),
                cut_back,
                unfiltered_limit,
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(columns) => Arc::new(self.schema.project(columns)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

impl EventTable {
    /// A Parquet scan of `files`, pruned and filtered by `filters`.
    async fn scan_files(
        &self,
        state: &dyn Session,
        files: &[Listed],
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        page_index: PageIndex,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let paths = files
            .iter()
            .map(|file| ListingTableUrl::parse(&file.url))
            .collect::<Result<Vec<_>>>()?;
        let mut parquet_options = self.parquet_options.clone();
        parquet_options.global.pushdown_filters =
            decodes_beyond_filters(&self.schema, projection, filters);
        parquet_options.global.enable_page_index = page_index == PageIndex::Use;
        let format = ParquetFormat::default().with_options(parquet_options);
        let options = ListingOptions::new(Arc::new(format)).with_file_extension(PARQUET_EXTENSION);
        let config = ListingTableConfig::new_with_multi_paths(paths)
            .with_listing_options(options)
            .with_schema(self.schema.clone());
        let table = ListingTable::try_new(config)?.with_cache(self.statistics_cache.clone());
        table.scan(state, projection, filters, limit).await
    }
}

/// Whether a Parquet scan prunes pages by the files' page index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageIndex {
    /// Read it and prune pages by the filters.
    Use,
    /// Do not read it.
    Skip,
}

/// Whether a scan reading `projection` under `filters` reads a text column
/// that no filter reads: only then is evaluating the filters inside the
/// Parquet reader worth it (`pushdown_filters`).
///
/// Pushed-down filters are evaluated first, on their own columns, and the
/// other columns are then decoded only for the rows that passed; that is
/// what makes `SELECT * … WHERE cmdline LIKE '%curl%'` cheap. But the
/// reader keeps the rows selected as runs, and walking those runs costs
/// more than decoding an integer column outright when the passing rows are
/// scattered: 15 % of a parent/child join (`c.parent = p.pid` over exec
/// rows, two in five of every file's rows) went on it. When every column
/// read is a filter's (`count(*)`, a `GROUP BY` on the filtered column),
/// there is nothing to skip at all: 12 % of a whole-history
/// `filename LIKE '/Users/%'` count, whose filter keeps every other row.
/// Page-index and row-group pruning use the filters either way.
fn decodes_beyond_filters(
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
) -> bool {
    if filters.is_empty() {
        return false;
    }
    let filtered: HashSet<usize> = filters
        .iter()
        .flat_map(|filter| filter.column_refs())
        .filter_map(|column| schema.index_of(&column.name).ok())
        .collect();
    let costly = |c: &usize| !filtered.contains(c) && !schema.field(*c).data_type().is_primitive();
    match projection {
        Some(columns) => columns.iter().any(costly),
        None => (0..schema.fields().len()).any(|c| costly(&c)),
    }
}

/// `projection` with the `time` column added when it lacks it (DataFusion
/// leaves out a column that only an exact filter reads); `None` reads every
/// column already.
fn with_time(schema: &SchemaRef, projection: Option<&Vec<usize>>) -> Option<Vec<usize>> {
    let mut columns = projection?.clone();
    if let Ok(time) = schema.index_of(TIME)
        && !columns.contains(&time)
    {
        columns.push(time);
    }
    Some(columns)
}

/// `input` filtered by `exact` and cut back to the columns `cut_back`
/// keeps: the scan's own application of the filters it reported as exact.
fn filtered(
    state: &dyn Session,
    input: Arc<dyn ExecutionPlan>,
    exact: Option<&Expr>,
    cut_back: Option<Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(exact) = exact else {
        return Ok(input);
    };
    let schema = DFSchema::try_from(input.schema().as_ref().clone())?;
    let predicate = state.create_physical_expr(exact.clone(), &schema)?;
    let filter = FilterExecBuilder::new(predicate, input)
        .apply_projection(cut_back)?
        .with_fetch(limit)
        .build()?;
    Ok(Arc::new(filter))
}

/// The schema the scans produce: `def`'s, with every text column read as
/// `Utf8View`.
///
/// The persister dictionary-encodes paths, and Parquet's reader decodes a
/// dictionary page into views that point into the dictionary, where plain
/// `Utf8` copies every row's bytes out of it: most of the cost of a query
/// over `filename` or `path`. DataFusion's filters, joins and aggregates
/// work on views directly. Results still leave the engine as plain `Utf8`
/// (see `sql::PlainStrings`), so no client sees the difference.
fn scan_schema(def: &TableDef) -> SchemaRef {
    Arc::new(crate::sql::retype(
        &def.schema(),
        &DataType::Utf8,
        &DataType::Utf8View,
    ))
}

/// A hot-tail batch (built with plain `Utf8`) in the scan schema. The cast
/// makes a 16-byte view per string and copies no text, so it costs a query
/// about what reading the same rows from a file would.
fn as_scan_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    Ok(sluice_sinks::cast_to_schema(batch, schema)?)
}

/// The file URLs of a local table directory that can hold rows of
/// `window`. Hour directories outside the window are not even listed.
///
/// Anything that is not a `date=…/hour=…` directory (a file moved in by
/// hand, an older layout) is read whole: pruning must never hide rows.
fn list_local(dir: &Path, window: TimeWindow) -> Result<Vec<Listed>> {
    let mut listed = Vec::new();
    collect_local(dir, Level::Table, window, &mut listed)?;
    listed.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(listed)
}

/// A file (or, in an object store, an hour prefix) a scan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    /// What DataFusion is given to read.
    url: String,
    /// The hour partition it is filed under; `None` outside the layout.
    hour: Option<PartitionKey>,
}

/// Which directory of the layout is being listed.
#[derive(Debug, Clone, Copy)]
enum Level {
    Table,
    Date(i32, u32, u32),
    Hour(PartitionKey),
    /// Below the layout, or outside it: everything counts.
    Other,
}

fn collect_local(
    dir: &Path,
    level: Level,
    window: TimeWindow,
    listed: &mut Vec<Listed>,
) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No table directory yet (or a partition removed by retention while
        // we list): no rows.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Temporary files (`.x.parquet.tmp`) and hidden directories are not
        // data.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            let next = match level {
                Level::Table => match parse_date(name) {
                    Some((y, m, d)) if !window.overlaps_day(y, m, d) => continue,
                    Some((y, m, d)) => Level::Date(y, m, d),
                    None => Level::Other,
                },
                Level::Date(year, month, day) => match parse_hour(name) {
                    Some(hour) => {
                        let key = PartitionKey {
                            year,
                            month,
                            day,
                            hour,
                        };
                        if !window.overlaps_hour(key) {
                            continue;
                        }
                        Level::Hour(key)
                    }
                    None => Level::Other,
                },
                Level::Hour(_) | Level::Other => Level::Other,
            };
            collect_local(&path, next, window, listed)?;
        } else if name.ends_with(PARQUET_EXTENSION) {
            listed.push(Listed {
                url: crate::catalog::file_url(&path)?,
                hour: match level {
                    Level::Hour(key) => Some(key),
                    _ => None,
                },
            });
        }
    }
    Ok(())
}

/// `date=YYYY-MM-DD`.
fn parse_date(name: &str) -> Option<(i32, u32, u32)> {
    let date = name.strip_prefix("date=")?;
    let bytes = date.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = date[..4].parse().ok()?;
    let month = date[5..7].parse().ok()?;
    let day = date[8..].parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((year, month, day))
}

/// `hour=HH`.
fn parse_hour(name: &str) -> Option<u32> {
    let hour: u32 = name.strip_prefix("hour=")?.parse().ok()?;
    (hour < 24).then_some(hour)
}

/// The URLs to read of a table in an object store: the hour prefixes that
/// overlap `window` (DataFusion lists each), and any object outside the
/// layout.
async fn list_store(
    store: &Arc<dyn ObjectStore>,
    root: &str,
    prefix: &StorePath,
    window: TimeWindow,
) -> Result<Vec<Listed>> {
    let root = root.trim_end_matches('/');
    let url_of = |path: &StorePath, directory: bool| Listed {
        url: format!("{root}/{path}{}", if directory { "/" } else { "" }),
        hour: None,
    };
    let mut urls = Vec::new();
    let top = store.list_with_delimiter(Some(prefix)).await?;
    for object in &top.objects {
        if object.location.as_ref().ends_with(PARQUET_EXTENSION) {
            urls.push(url_of(&object.location, false));
        }
    }
    for date_dir in &top.common_prefixes {
        let Some((year, month, day)) = date_dir.filename().and_then(parse_date) else {
            urls.push(url_of(date_dir, true));
            continue;
        };
        if !window.overlaps_day(year, month, day) {
            continue;
        }
        let hours = store.list_with_delimiter(Some(date_dir)).await?;
        for object in &hours.objects {
            if object.location.as_ref().ends_with(PARQUET_EXTENSION) {
                urls.push(url_of(&object.location, false));
            }
        }
        for hour_dir in &hours.common_prefixes {
            match hour_dir.filename().and_then(parse_hour) {
                Some(hour) => {
                    let key = PartitionKey {
                        year,
                        month,
                        day,
                        hour,
                    };
                    if window.overlaps_hour(key) && has_objects(store, hour_dir).await? {
                        urls.push(Listed {
                            hour: Some(key),
                            ..url_of(hour_dir, true)
                        });
                    }
                }
                None => urls.push(url_of(hour_dir, true)),
            }
        }
    }
    urls.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(urls)
}

/// Whether anything is stored under `prefix`. A prefix can vanish between
/// two listings (retention), and a directory URL with nothing under it is
/// an empty table, so this only saves DataFusion a listing.
async fn has_objects(store: &Arc<dyn ObjectStore>, prefix: &StorePath) -> Result<bool> {
    Ok(store.list(Some(prefix)).try_next().await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{cast, col, lit};

    fn window(filters: Vec<Expr>) -> TimeWindow {
        TimeWindow::from_filters(&filters)
    }

    #[test]
    fn comparisons_bound_the_window_both_ways_round() {
        assert_eq!(
            window(vec![col("time").gt(lit(100i64))]),
            TimeWindow::at_least(101)
        );
        assert_eq!(
            window(vec![lit(100i64).lt(col("time"))]),
            TimeWindow::at_least(101)
        );
        assert_eq!(
            window(vec![col("time").lt_eq(lit(7i32))]),
            TimeWindow::at_most(7)
        );
        assert_eq!(
            window(vec![
                col("time").gt_eq(lit(10i64)),
                col("time").lt(lit(20i64))
            ]),
            TimeWindow {
                first: 10,
                last: 19
            }
        );
        assert_eq!(
            window(vec![col("time").eq(lit(5i64))]),
            TimeWindow { first: 5, last: 5 }
        );
        assert_eq!(
            window(vec![col("time").between(lit(3i64), lit(9i64))]),
            TimeWindow { first: 3, last: 9 }
        );
        // NOT BETWEEN and other columns say nothing.
        assert_eq!(
            window(vec![col("time").not_between(lit(3i64), lit(9i64))]),
            TimeWindow::ALL
        );
        assert_eq!(window(vec![col("pid").gt(lit(3i64))]), TimeWindow::ALL);
        assert_eq!(window(vec![col("time").not_eq(lit(3i64))]), TimeWindow::ALL);
    }

    #[test]
    fn or_takes_the_hull_and_floats_round_outward() {
        assert_eq!(
            window(vec![
                col("time").lt(lit(5i64)).or(col("time").gt(lit(50i64)))
            ]),
            TimeWindow::ALL
        );
        assert_eq!(
            window(vec![
                col("time")
                    .between(lit(1i64), lit(2i64))
                    .or(col("time").between(lit(8i64), lit(9i64)))
            ]),
            TimeWindow { first: 1, last: 9 }
        );
        assert_eq!(
            window(vec![col("time").gt(lit(99.5f64))]),
            TimeWindow::at_least(99)
        );
        assert_eq!(
            window(vec![col("time").lt(lit(99.5f64))]),
            TimeWindow::at_most(100)
        );
        // An OR with an unrelated branch bounds nothing.
        assert_eq!(
            window(vec![col("time").gt(lit(5i64)).or(col("pid").eq(lit(1i64)))]),
            TimeWindow::ALL
        );
    }

    #[test]
    fn nanosecond_timestamps_become_seconds() {
        let ts = |ns: i64| {
            lit(ScalarValue::TimestampNanosecond(
                Some(ns),
                Some("UTC".into()),
            ))
        };
        assert_eq!(
            window(vec![col("time_ns").gt_eq(ts(1_500_000_000))]),
            TimeWindow::at_least(1)
        );
        assert_eq!(
            window(vec![col("time_ns").lt(ts(1_500_000_000))]),
            TimeWindow::at_most(2)
        );
        assert_eq!(
            window(vec![col("time_ns").gt(ts(-1))]),
            TimeWindow::at_least(-1)
        );
    }

    #[test]
    fn contradictions_are_empty_and_hours_overlap_exactly() {
        assert!(window(vec![col("time").gt(lit(10i64)), col("time").lt(lit(5i64))]).is_empty());
        assert!(window(vec![col("time").gt(lit(10i64)), col("time").lt(lit(11i64))]).is_empty());
        let hour = PartitionKey::from_unix_seconds(3_600);
        assert!(TimeWindow::at_least(7_199).overlaps_hour(hour));
        assert!(!TimeWindow::at_least(7_200).overlaps_hour(hour));
        assert!(TimeWindow::at_most(3_600).overlaps_hour(hour));
        assert!(!TimeWindow::at_most(3_599).overlaps_hour(hour));
        // The saturating partitions at either end hold every earlier or
        // later time.
        let first = PartitionKey::from_unix_seconds(i64::MIN);
        assert!(TimeWindow::at_most(i64::MIN / 2).overlaps_hour(first));
        let last = PartitionKey::from_unix_seconds(i64::MAX);
        assert!(TimeWindow::at_least(i64::MAX / 2).overlaps_hour(last));
    }

    #[test]
    fn filters_are_pushed_into_the_reader_only_when_other_text_is_read() {
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", DataType::Int64, true),
            Field::new("filename", DataType::Utf8View, true),
            Field::new("pid", DataType::Int64, true),
            Field::new("cmdline", DataType::Utf8View, true),
        ]));
        let like = col("filename").like(lit("/Users/%"));
        let window = col("time").gt(lit(10i64));
        let pushes = |projection: Option<Vec<usize>>, filters: &[Expr]| {
            decodes_beyond_filters(&schema, projection.as_ref(), filters)
        };
        // count(*) and GROUP BY on the filtered column: nothing to skip.
        assert!(!pushes(Some(vec![1]), std::slice::from_ref(&like)));
        assert!(!pushes(Some(vec![]), std::slice::from_ref(&like)));
        assert!(!pushes(Some(vec![1, 0]), &[like.clone(), window.clone()]));
        // Other text is decoded only for the rows that pass.
        assert!(pushes(Some(vec![1, 3]), std::slice::from_ref(&like)));
        assert!(pushes(Some(vec![2, 3]), std::slice::from_ref(&like)));
        assert!(pushes(None, &[like.clone(), window]));
        // An integer is cheaper to decode than to select rows for.
        assert!(!pushes(Some(vec![1, 2]), std::slice::from_ref(&like)));
        // No filter, nothing to push.
        assert!(!pushes(Some(vec![2]), &[]));
    }

    #[test]
    fn only_whole_second_comparisons_are_exact_windows() {
        let time = || col("time");
        let exact = |filter: Expr| exact_window(&filter);
        assert_eq!(
            exact(time().between(lit(3_600i64), lit(7_199i64))),
            Some(TimeWindow {
                first: 3_600,
                last: 7_199
            })
        );
        assert_eq!(exact(time().gt(lit(10i64))), Some(TimeWindow::at_least(11)));
        assert_eq!(exact(lit(10i64).gt(time())), Some(TimeWindow::at_most(9)));
        assert_eq!(
            exact(time().lt_eq(lit(10i32))),
            Some(TimeWindow::at_most(10))
        );
        // Bounds, not windows: a float rounds outward, an OR takes the
        // hull, a nanosecond literal rounds to seconds, a cast may round.
        for filter in [
            time().gt(lit(10.5f64)),
            time().lt(lit(5i64)).or(time().gt(lit(10i64))),
            col(TIME_NS).gt(lit(ScalarValue::TimestampNanosecond(Some(1), None))),
            cast(time(), DataType::Float64).gt(lit(10f64)),
            time().not_eq(lit(10i64)),
            time().between(lit(1i64), lit(2.5f64)),
            col("pid").gt(lit(10i64)),
        ] {
            assert_eq!(exact(filter.clone()), None, "{filter}");
        }
    }

    #[test]
    fn a_window_covers_whole_hours_only_and_never_the_null_partition() {
        let hour = PartitionKey::from_unix_seconds(1_704_085_200);
        let start = hour.start_unix_seconds();
        let window = |first, last| TimeWindow { first, last };
        assert!(window(start, start + 3_599).covers_hour(hour));
        assert!(!window(start + 1, start + 3_599).covers_hour(hour));
        assert!(!window(start, start + 3_598).covers_hour(hour));
        // Rows with a NULL `time` are filed under the epoch's hour.
        assert!(!TimeWindow::at_least(0).covers_hour(PartitionKey::EPOCH));
        assert!(TimeWindow::at_least(0).covers_hour(PartitionKey::from_unix_seconds(3_600)));
        // The saturating partitions are open-ended.
        let last = PartitionKey::from_unix_seconds(i64::MAX);
        assert!(!TimeWindow::at_most(i64::MAX - 1).covers_hour(last));
        assert!(TimeWindow::at_least(last.start_unix_seconds()).covers_hour(last));
    }

    #[test]
    fn directory_names_parse_strictly() {
        assert_eq!(parse_date("date=2026-11-23"), Some((2026, 11, 23)));
        assert_eq!(parse_date("date=2026-13-01"), None);
        assert_eq!(parse_date("date=2026-1-01"), None);
        assert_eq!(parse_date("hour=01"), None);
        assert_eq!(parse_hour("hour=00"), Some(0));
        assert_eq!(parse_hour("hour=24"), None);
        assert_eq!(parse_hour("hour=x"), None);
    }

    #[test]
    fn local_listing_skips_hours_outside_the_window_and_keeps_strays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let touch = |relative: &str| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, b"").expect("write");
        };
        touch("date=1970-01-01/hour=00/a.parquet");
        touch("date=1970-01-01/hour=01/b.parquet");
        touch("date=1970-01-01/hour=01/.c.parquet.tmp");
        touch("date=1970-01-02/hour=00/d.parquet");
        touch("elsewhere/e.parquet");
        let names = |window: TimeWindow| -> Vec<String> {
            list_local(dir.path(), window)
                .expect("list")
                .iter()
                .map(|file| file.url.rsplit('/').next().expect("name").to_string())
                .collect()
        };
        // Files directly in an hour directory carry its key; strays none.
        let hours: Vec<Option<PartitionKey>> = list_local(dir.path(), TimeWindow::ALL)
            .expect("list")
            .iter()
            .map(|file| file.hour)
            .collect();
        let hour = |day, hour| {
            Some(PartitionKey {
                year: 1970,
                month: 1,
                day,
                hour,
            })
        };
        assert_eq!(hours, [hour(1, 0), hour(1, 1), hour(2, 0), None]);
        assert_eq!(
            names(TimeWindow::ALL),
            ["a.parquet", "b.parquet", "d.parquet", "e.parquet"]
        );
        assert_eq!(
            names(TimeWindow {
                first: 3_600,
                last: 3_700
            }),
            ["b.parquet", "e.parquet"]
        );
        assert_eq!(
            names(TimeWindow::at_least(86_400)),
            ["d.parquet", "e.parquet"]
        );
        assert_eq!(
            list_local(&dir.path().join("missing"), TimeWindow::ALL).expect("list"),
            Vec::<Listed>::new()
        );
    }
}
