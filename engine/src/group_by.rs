//! Grouping by a text column without hashing its text once per row.
//!
//! An analyst's most common question of an event table is "which process,
//! which path, how many": `GROUP BY path`. The event tables scan text as
//! `Utf8View` (see `tables::scan_schema`), and the Parquet reader decodes a
//! dictionary-encoded column into views that all point into the one
//! dictionary buffer of their column chunk: every row of `/usr/bin/ssh` in a
//! row group carries the very same 16-byte view. DataFusion's partial
//! aggregate does not know this. It hashes each row's whole string (an
//! 86-byte executable path in the benchmark) and compares it with the
//! group's, so grouping 9.5M rows into 10 groups cost more than reading
//! them.
//!
//! [`ViewGroupBy`], a physical optimizer rule, replaces each eligible
//! partial `AggregateExec` by a [`ViewGroupedAggregateExec`]. It runs the
//! same `GroupsAccumulator`s over the same input, and assigns group ids with
//! [`ViewGroupValues`]: a map from each row's 16-byte views (and the values
//! of any primitive group columns beside them, `GROUP BY path, uid`) to the
//! group id, in front of DataFusion's own group table, which is asked only
//! about keys the map has not seen. A long string's view names a buffer and
//! an offset, so it only means the same text while the batch's buffers are
//! the same ones: the map of keys with long views holds those buffers (so
//! that their memory cannot be reused under it) and is emptied when a batch
//! comes with other buffers. A short string (12 bytes or fewer) is inlined
//! in its view and is valid anywhere.
//!
//! The output is exactly the partial aggregate's: the group values then each
//! accumulator's state, in the same schema, for DataFusion's final aggregate
//! to merge. Only the plain case is taken: one to four group columns, each
//! `Utf8View` or a primitive of at most 8 bytes, at least one of them
//! `Utf8View` ([`keyable`]); no grouping sets, no `DISTINCT` or `ORDER BY`
//! inside an aggregate, no limit pushed into the aggregate, unordered input.
//! Anything else keeps DataFusion's operator.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::buffer::Buffer;
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::distribution_requirements::InputDistributionRequirements;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

/// After this many rows, a grouping whose views keep missing the map (most
/// rows a new group, or plain-encoded pages whose every view points
/// elsewhere) stops consulting it.
const PROBATION_ROWS: usize = 65_536;

/// The physical optimizer rule that puts [`ViewGroupedAggregateExec`] in
/// place of each eligible partial aggregate (see the module doc).
#[derive(Debug, Default)]
pub struct ViewGroupBy;

impl PhysicalOptimizerRule for ViewGroupBy {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match node.downcast_ref::<AggregateExec>() {
            Some(aggregate) if groups_by_views(aggregate) => {
                Ok(Transformed::yes(Arc::new(ViewGroupedAggregateExec {
                    aggregate: aggregate.clone(),
                    metrics: Default::default(),
                }) as _))
            }
            _ => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "view_group_by"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `aggregate` is the plain partial aggregate this module runs:
/// group columns that [`keyable`] takes, and accumulators that take group
/// ids.
fn groups_by_views(aggregate: &AggregateExec) -> bool {
    let group_by = aggregate.group_expr();
    let input = aggregate.input_schema();
    let types: Option<Vec<DataType>> = group_by
        .expr()
        .iter()
        .map(|(expr, _)| expr.data_type(&input).ok())
        .collect();
    group_by.is_single()
        && group_by.null_expr().is_empty()
        && types.is_some_and(|types| keyable(&types))
        && *aggregate.mode() == AggregateMode::Partial
        && aggregate.limit_options().is_none()
        && aggregate.dynamic_expressions_produced().is_empty()
        && *aggregate.input_order_mode() == InputOrderMode::Linear
        && aggregate.aggr_expr().iter().all(|a| {
            a.groups_accumulator_supported() && !a.is_distinct() && a.order_bys().is_empty()
        })
}

/// A partial aggregate grouped by `Utf8View` columns (and perhaps
/// primitive ones), with group ids from
/// [`ViewGroupValues`]; it wraps the `AggregateExec` it stands for, whose
/// schema, properties and expressions it keeps.
#[derive(Debug)]
pub struct ViewGroupedAggregateExec {
    /// The replaced partial aggregate.
    aggregate: AggregateExec,
    metrics: ExecutionPlanMetricsSet,
}

impl DisplayAs for ViewGroupedAggregateExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        // The wrapped aggregate's own line ("mode=Partial, gby=…, aggr=…").
        struct Wrapped<'a>(&'a AggregateExec, DisplayFormatType);
        impl fmt::Display for Wrapped<'_> {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                self.0.fmt_as(self.1, f)
            }
        }
        let line = Wrapped(&self.aggregate, t).to_string();
        let line = line.strip_prefix("AggregateExec: ").unwrap_or(&line);
        write!(f, "ViewGroupedAggregateExec: {line}")
    }
}

impl ExecutionPlan for ViewGroupedAggregateExec {
    fn name(&self) -> &str {
        "ViewGroupedAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.aggregate.input()]
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.aggregate.input_distribution_requirements()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.aggregate.maintains_input_order()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
        let replaced = Arc::new(self.aggregate.clone()).replace_children(children, options)?;
        let Some(aggregate) = replaced.downcast_ref::<AggregateExec>() else {
            return Err(DataFusionError::Internal(
                "an AggregateExec with new children is still one".into(),
            ));
        };
        Ok(Arc::new(Self {
            aggregate: aggregate.clone(),
            metrics: Default::default(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let aggregate = &self.aggregate;
        let input = aggregate.input().execute(partition, Arc::clone(&context))?;
        let group_by = aggregate.group_expr();
        // The group columns as the partial aggregate's output has them.
        let group_schema = group_by.group_schema(&aggregate.input_schema())?;
        let group_types: Vec<DataType> = group_schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let strings = new_group_values(group_schema, &GroupOrdering::None)?;
        let accumulators = aggregate
            .aggr_expr()
            .iter()
            .map(|a| a.create_groups_accumulator())
            .collect::<Result<Vec<_>>>()?;
        let state = Grouping {
            input,
            group_exprs: group_by.expr().iter().map(|(e, _)| Arc::clone(e)).collect(),
            arguments: aggregate
                .aggr_expr()
                .iter()
                .map(|a| a.expressions())
                .collect(),
            filters: aggregate.filter_expr().to_vec(),
            groups: view_group_values(&group_types, strings)?,
            accumulators,
            group_ids: Vec::new(),
            schema: aggregate.schema(),
            batch_size: context.session_config().batch_size(),
            reservation: MemoryConsumer::new(format!("ViewGroupedAggregateExec[{partition}]"))
                .with_can_spill(true)
                .register(context.memory_pool()),
            ready: VecDeque::new(),
            input_done: false,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let schema = aggregate.schema();
        let batches = futures::stream::try_unfold(state, |mut state| async move {
            let next = state.next_batch().await?;
            Ok(next.map(|batch| (batch, state)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            batches.boxed(),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's running aggregation.
struct Grouping {
    input: SendableRecordBatchStream,
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Each accumulator's argument expressions.
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Each accumulator's `FILTER (WHERE …)`, if it has one.
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    groups: Box<dyn GroupValues>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// The current batch's group id per row (kept to reuse its allocation).
    group_ids: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
    reservation: MemoryReservation,
    /// Output batches waiting to be returned.
    ready: VecDeque<RecordBatch>,
    input_done: bool,
    metrics: BaselineMetrics,
}

impl Grouping {
    /// The next output batch, `None` once the input is done and all groups
    /// have been returned.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                self.metrics.record_output(batch.num_rows());
                return Ok(Some(batch));
            }
            if self.input_done {
                self.metrics.done();
                return Ok(None);
            }
            match self.input.next().await {
                Some(batch) => {
                    let elapsed = self.metrics.elapsed_compute().clone();
                    let timer = elapsed.timer();
                    self.aggregate(&batch?)?;
                    // A partial aggregate may hand its groups on early (the
                    // final aggregate merges duplicates), which frees the
                    // memory; only a single batch that does not fit fails.
                    if self.reservation.try_resize(self.memory_used()).is_err() {
                        self.emit()?;
                        self.reservation.try_resize(self.memory_used())?;
                    }
                    timer.done();
                }
                None => {
                    self.input_done = true;
                    self.emit()?;
                }
            }
        }
    }

    fn memory_used(&self) -> usize {
        self.groups.size()
            + self.group_ids.capacity() * size_of::<usize>()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    fn aggregate(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let groups = self
            .group_exprs
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        self.groups.intern(&groups, &mut self.group_ids)?;
        let total_groups = self.groups.len();
        for ((accumulator, arguments), filter) in self
            .accumulators
            .iter_mut()
            .zip(&self.arguments)
            .zip(&self.filters)
        {
            let values = arguments
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(rows))
                .collect::<Result<Vec<_>>>()?;
            let filter = match filter {
                Some(f) => Some(f.evaluate(batch)?.into_array(rows)?),
                None => None,
            };
            let filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
            accumulator.update_batch(&values, &self.group_ids, filter, total_groups)?;
        }
        Ok(())
    }

    /// Moves every group so far, as partial state, to `ready`.
    fn emit(&mut self) -> Result<()> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let mut columns = self.groups.emit(EmitTo::All)?;
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        let all = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let size = self.batch_size.max(1);
        let mut offset = 0;
        while offset < all.num_rows() {
            let len = size.min(all.num_rows() - offset);
            self.ready.push_back(all.slice(offset, len));
            offset += len;
        }
        self.groups.clear_shrink(0);
        Ok(())
    }
}

/// The most group columns [`ViewGroupValues`] takes; more keep DataFusion's
/// own table.
pub const MAX_KEY_COLUMNS: usize = 4;

/// How one group column enters a row's [`Key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyColumn {
    /// A `Utf8View` column: its 16-byte view.
    View,
    /// A fixed-width primitive column of this many bytes (at most 8): its
    /// value's bytes.
    Fixed(usize),
}

impl KeyColumn {
    fn of(data_type: &DataType) -> Option<KeyColumn> {
        match data_type {
            DataType::Utf8View => Some(KeyColumn::View),
            t if t.is_primitive() => t
                .primitive_width()
                .filter(|w| *w <= 8)
                .map(KeyColumn::Fixed),
            _ => None,
        }
    }
}

/// Whether group columns of these types can be keyed by view: at most
/// [`MAX_KEY_COLUMNS`], each `Utf8View` or a primitive of at most 8 bytes,
/// and at least one `Utf8View` (without one DataFusion's tables are as
/// cheap).
pub fn keyable(types: &[DataType]) -> bool {
    (1..=MAX_KEY_COLUMNS).contains(&types.len())
        && types.iter().all(|t| KeyColumn::of(t).is_some())
        && types.contains(&DataType::Utf8View)
}

/// A row's `N` group columns as bits: each view or value, or
/// [`NULL_PART`]. Equal keys are equal groups as long as the long views in
/// them point into the same buffers (see [`ViewGroupValues`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key<const N: usize> {
    parts: [u128; N],
}

/// A NULL's part of a [`Key`]. No value is all ones: a primitive of at most
/// 8 bytes leaves the upper 64 bits zero, and a view of all ones would be a
/// string of 4 GiB in the 4-billionth buffer.
const NULL_PART: u128 = u128::MAX;

impl<const N: usize> Default for Key<N> {
    fn default() -> Self {
        Key { parts: [0; N] }
    }
}

impl<const N: usize> Hash for Key<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for part in self.parts {
            state.write_u128(part);
        }
    }
}

/// [`ViewGroupValues`] for group columns of `types` (see [`keyable`]), with
/// `strings` (DataFusion's table for those columns) behind its maps.
pub fn view_group_values(
    types: &[DataType],
    strings: Box<dyn GroupValues>,
) -> Result<Box<dyn GroupValues>> {
    Ok(match types.len() {
        1 => Box::new(ViewGroupValues::<1>::new(types, strings)?),
        2 => Box::new(ViewGroupValues::<2>::new(types, strings)?),
        3 => Box::new(ViewGroupValues::<3>::new(types, strings)?),
        _ => Box::new(ViewGroupValues::<MAX_KEY_COLUMNS>::new(types, strings)?),
    })
}

/// Group ids for `N` (at most [`MAX_KEY_COLUMNS`]) group columns, at least
/// one of them `Utf8View`: a map from each row's views and values (a `Key`) to its
/// group, in front of DataFusion's own table, which is asked only about
/// keys the map has not seen (see the module doc for when a view can stand
/// for its text).
pub struct ViewGroupValues<const N: usize> {
    /// How each group column enters the key.
    columns: [KeyColumn; N],
    /// DataFusion's table of distinct groups; it numbers them and emits
    /// their values.
    strings: Box<dyn GroupValues>,
    /// Keys whose views are all short (inlined: the text is the view) or
    /// NULL.
    short: KeyMap<N>,
    /// Keys with a long view, valid only over `held`.
    long: KeyMap<N>,
    /// Per group column, the data buffers the long views in `long` point
    /// into; held so that they stay allocated (and so unchanged) while
    /// `long` names them.
    held: [Vec<Buffer>; N],
    /// Rows seen, and distinct keys per batch that the maps did not know,
    /// over the probation.
    rows: usize,
    misses: usize,
    /// Set when the maps missed too often to pay for themselves.
    bypass: bool,
    /// Reused per batch: each row's key, the first row of each key the maps
    /// did not know, their groups, each such key's index in `missed_rows`,
    /// and every row whose group waits on `missed_groups`.
    keys: Vec<Key<N>>,
    missed_rows: Vec<u32>,
    missed_groups: Vec<usize>,
    pending: KeyMap<N>,
    unresolved: Vec<u32>,
}

type KeyMap<const N: usize> = HashMap<Key<N>, usize, BuildHasherDefault<ViewHasher>>;

impl<const N: usize> ViewGroupValues<N> {
    /// Group ids for group columns of `types` (see [`keyable`]), with
    /// `strings` (DataFusion's table for those columns) behind the maps.
    pub fn new(types: &[DataType], strings: Box<dyn GroupValues>) -> Result<Self> {
        let cannot = || {
            DataFusionError::Internal(format!(
                "ViewGroupValues<{N}> cannot key group columns of types {types:?}"
            ))
        };
        if !keyable(types) {
            return Err(cannot());
        }
        let columns: Vec<KeyColumn> = types.iter().filter_map(KeyColumn::of).collect();
        Ok(ViewGroupValues {
            columns: columns.try_into().map_err(|_| cannot())?,
            strings,
            short: KeyMap::default(),
            long: KeyMap::default(),
            held: std::array::from_fn(|_| Vec::new()),
            rows: 0,
            misses: 0,
            bypass: false,
            keys: Vec::new(),
            missed_rows: Vec::new(),
            missed_groups: Vec::new(),
            pending: KeyMap::default(),
            unresolved: Vec::new(),
        })
    }

    fn forget_keys(&mut self) {
        self.short.clear();
        self.long.clear();
        for held in &mut self.held {
            held.clear();
        }
    }

    /// Fills `self.keys` with each row's key, and returns whether any
    /// column's data buffers differ from those `long` was built over.
    fn make_keys(&mut self, cols: &[ArrayRef]) -> Result<bool> {
        let rows = cols.first().map_or(0, |c| c.len());
        self.keys.clear();
        self.keys.resize(rows, Key::default());
        let mut new_buffers = false;
        for (index, ((column, kind), held)) in cols
            .iter()
            .zip(&self.columns)
            .zip(&mut self.held)
            .enumerate()
        {
            if column.len() != rows {
                return Err(DataFusionError::Internal(
                    "group columns of different lengths".into(),
                ));
            }
            let nulls = column.logical_nulls();
            match kind {
                KeyColumn::View => {
                    let Some(array) = column.as_string_view_opt() else {
                        return Err(DataFusionError::Internal(format!(
                            "group column {index} is {}, keyed as Utf8View",
                            column.data_type()
                        )));
                    };
                    let buffers = array.data_buffers();
                    let same = buffers.len() == held.len()
                        && buffers.iter().zip(held.iter()).all(|(a, b)| a.ptr_eq(b));
                    if !same {
                        new_buffers = true;
                        held.clear();
                        held.extend_from_slice(buffers);
                    }
                    for (key, &view) in self.keys.iter_mut().zip(array.views()) {
                        key.parts[index] = view;
                    }
                }
                KeyColumn::Fixed(width) => {
                    let data = column.to_data();
                    let values = data.buffers().first().map(|b| b.as_slice()).unwrap_or(&[]);
                    let start = data.offset() * width;
                    let Some(values) = values.get(start..start + rows * width) else {
                        return Err(DataFusionError::Internal(format!(
                            "group column {index} is shorter than its length"
                        )));
                    };
                    for (key, value) in self.keys.iter_mut().zip(values.chunks_exact(*width)) {
                        let mut bytes = [0u8; 16];
                        bytes[..*width].copy_from_slice(value);
                        key.parts[index] = u128::from_le_bytes(bytes);
                    }
                }
            }
            if let Some(nulls) = nulls.filter(|n| n.null_count() > 0) {
                for row in nulls
                    .iter()
                    .enumerate()
                    .filter(|(_, valid)| !valid)
                    .map(|(r, _)| r)
                {
                    // A NULL's slot may hold anything.
                    self.keys[row].parts[index] = NULL_PART;
                }
            }
        }
        Ok(new_buffers)
    }

    /// Whether `key` holds a view of a string longer than 12 bytes (its
    /// length is the view's low 32 bits), which names a buffer and an offset
    /// rather than the text.
    fn is_long(&self, key: &Key<N>) -> bool {
        (0..N).any(|i| {
            self.columns[i] == KeyColumn::View
                && key.parts[i] != NULL_PART
                && (key.parts[i] as u32) > 12
        })
    }
}

impl<const N: usize> GroupValues for ViewGroupValues<N> {
    fn intern(&mut self, cols: &[ArrayRef], groups: &mut Vec<usize>) -> Result<()> {
        if self.bypass {
            return self.strings.intern(cols, groups);
        }
        if cols.len() != N {
            return Err(DataFusionError::Internal(format!(
                "ViewGroupValues keys {N} columns, got {}",
                cols.len()
            )));
        }
        if self.make_keys(cols)? {
            self.long.clear();
        }

        let keys = std::mem::take(&mut self.keys);
        groups.clear();
        groups.resize(keys.len(), 0);
        // A key the maps do not know is asked about once per batch: its
        // first row goes to `missed_rows`, and every row with it (the first
        // included) to `unresolved`, holding the index of that first row in
        // `missed_rows` until DataFusion's table has numbered it.
        self.missed_rows.clear();
        self.unresolved.clear();
        self.pending.clear();
        for (row, (key, group)) in keys.iter().zip(groups.iter_mut()).enumerate() {
            let map = if !self.is_long(key) {
                &self.short
            } else {
                &self.long
            };
            let known = map.get(key);
            if let Some(&g) = known {
                *group = g;
                continue;
            }
            let next = self.missed_rows.len();
            let first = *self.pending.entry(*key).or_insert(next);
            if first == next {
                self.missed_rows.push(row as u32);
            }
            *group = first;
            self.unresolved.push(row as u32);
        }

        if !self.missed_rows.is_empty() {
            let rows = UInt32Array::from_iter_values(self.missed_rows.iter().copied());
            let missed = cols
                .iter()
                .map(|column| take(column, &rows, None))
                .collect::<Result<Vec<_>, _>>()?;
            self.strings.intern(&missed, &mut self.missed_groups)?;
            for (&row, &group) in self.missed_rows.iter().zip(&self.missed_groups) {
                let key = keys[row as usize];
                if !self.is_long(&key) {
                    self.short.insert(key, group);
                } else {
                    self.long.insert(key, group);
                }
            }
            for &row in &self.unresolved {
                let group = &mut groups[row as usize];
                *group = self.missed_groups[*group];
            }
            self.misses += rows.len();
        }

        self.rows += keys.len();
        self.keys = keys;
        if self.rows >= PROBATION_ROWS && self.misses * 2 > self.rows {
            // Most rows are new groups (or their views never repeat): the
            // maps only double the work. DataFusion's table has every group.
            self.bypass = true;
            self.forget_keys();
        }
        Ok(())
    }

    fn size(&self) -> usize {
        let entry = size_of::<(Key<N>, usize)>() + 1;
        self.strings.size()
            + (self.short.capacity() + self.long.capacity() + self.pending.capacity()) * entry
            + self.keys.capacity() * size_of::<Key<N>>()
            + ((self.missed_rows.capacity() + self.unresolved.capacity()) * size_of::<u32>())
            + (self.missed_groups.capacity() * size_of::<usize>())
    }

    fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    fn len(&self) -> usize {
        self.strings.len()
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        // Emitting renumbers the groups that remain.
        self.forget_keys();
        self.strings.emit(emit_to)
    }

    fn clear_shrink(&mut self, num_rows: usize) {
        self.forget_keys();
        self.pending.clear();
        self.keys.clear();
        self.missed_rows.clear();
        self.missed_groups.clear();
        self.unresolved.clear();
        self.short.shrink_to_fit();
        self.long.shrink_to_fit();
        self.pending.shrink_to_fit();
        self.keys.shrink_to(num_rows);
        self.missed_rows.shrink_to(num_rows);
        self.missed_groups.shrink_to(num_rows);
        self.unresolved.shrink_to(num_rows);
        self.strings.clear_shrink(num_rows);
    }
}

/// A hasher for 16-byte views: one folded multiply. A view is already its
/// string's length, prefix and place, so it needs mixing, not a keyed hash;
/// the group table behind it is DataFusion's, with its own hashing.
#[derive(Default)]
struct ViewHasher(u64);

impl Hasher for ViewHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used by the maps; this keeps the trait whole.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * 0x9E37_79B9_7F4A_7C15_u128;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write_u128(&mut self, view: u128) {
        self.write_u64(view as u64);
        self.write_u64((view >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Int64Array, StringViewArray};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use arrow::datatypes::{Field, Schema};

    use super::*;

    /// A small deterministic generator, so that failures repeat.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// Short (inlined) and long texts, some sharing their first 4 bytes.
    fn pool(distinct: usize) -> Vec<String> {
        (0..distinct)
            .map(|i| match i % 3 {
                0 => format!("s{i}"),
                1 => format!("/Users/alice/Library/Caches/item-{i}"),
                _ => format!("/usr/libexec/a-rather-long-executable-name-{i}"),
            })
            .collect()
    }

    fn column(rng: &mut Lcg, texts: &[String], rows: usize) -> StringViewArray {
        (0..rows)
            .map(|_| {
                let pick = rng.below(texts.len() as u64 + 1) as usize;
                texts.get(pick).map(String::as_str) // one in n+1 is NULL
            })
            .collect()
    }

    fn strings_table() -> Box<dyn GroupValues> {
        let schema = Arc::new(Schema::new(vec![Field::new("g", DataType::Utf8View, true)]));
        new_group_values(schema, &GroupOrdering::None).unwrap()
    }

    /// Records that the row with `value` got group `id`: equal values must
    /// share a group and different values must not (DataFusion numbers a
    /// batch's new groups in its own order, not the rows').
    fn same_group<V: std::fmt::Debug + Eq + std::hash::Hash + Clone>(
        ids_of: &mut HashMap<V, usize>,
        values_of: &mut HashMap<usize, V>,
        value: V,
        id: usize,
    ) {
        let known = *ids_of.entry(value.clone()).or_insert(id);
        assert_eq!(known, id, "{value:?}");
        let holder = values_of.entry(id).or_insert_with(|| value.clone());
        assert_eq!(*holder, value, "group {id}");
    }

    /// Interns `arrays` in turn and checks every row's group against the
    /// text: equal texts share a group, other texts do not, and the emitted
    /// values are the texts.
    fn check_groups(arrays: &[StringViewArray]) {
        let mut groups = ViewGroupValues::<1>::new(&[DataType::Utf8View], strings_table()).unwrap();
        let mut expected: HashMap<Option<String>, usize> = HashMap::new();
        let mut values = HashMap::new();
        let mut ids = Vec::new();
        for array in arrays {
            let column: ArrayRef = Arc::new(array.clone());
            groups.intern(&[column], &mut ids).unwrap();
            assert_eq!(ids.len(), array.len());
            for (row, &id) in ids.iter().enumerate() {
                let text = array.is_valid(row).then(|| array.value(row).to_string());
                same_group(&mut expected, &mut values, text, id);
            }
            assert_eq!(groups.len(), expected.len());
        }
        let emitted = groups.emit(EmitTo::All).unwrap();
        let values = emitted[0].as_string_view();
        for (text, id) in expected {
            assert_eq!(
                values.is_valid(id).then(|| values.value(id).to_string()),
                text
            );
        }
    }

    #[test]
    fn views_group_like_their_text_across_shared_and_new_buffers() {
        let mut rng = Lcg(7);
        let texts = pool(40);
        let whole = column(&mut rng, &texts, 20_000);
        let mut arrays = Vec::new();
        // Slices share their buffers, as batches from one column chunk do.
        for start in (0..whole.len()).step_by(4096) {
            arrays.push(whole.slice(start, 4096.min(whole.len() - start)));
        }
        // Another array with the same texts in other buffers, then a taken
        // one (other views over the first buffers).
        arrays.push(column(&mut rng, &texts, 5_000));
        let rows = UInt32Array::from_iter_values((0..3_000).map(|i| (i * 7) % 20_000));
        arrays.push(take(&whole, &rows, None).unwrap().as_string_view().clone());
        check_groups(&arrays);
    }

    #[test]
    fn several_columns_group_like_their_values() {
        let mut rng = Lcg(5);
        let texts = pool(12);
        let types = [DataType::Int32, DataType::Utf8View, DataType::Utf8View];
        let mut groups = ViewGroupValues::<3>::new(&types, {
            let fields: Vec<Field> = types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true))
                .collect();
            new_group_values(Arc::new(Schema::new(fields)), &GroupOrdering::None).unwrap()
        })
        .unwrap();
        type Row = (Option<i32>, Option<String>, Option<String>);
        let mut expected: HashMap<Row, usize> = HashMap::new();
        let mut values = HashMap::new();
        let mut ids = Vec::new();
        let first = column(&mut rng, &texts, 6_000);
        for batch in 0..6 {
            // One text column keeps its buffers (slices), the other is new
            // each time; the numbers repeat, with NULLs.
            let numbers: arrow::array::Int32Array = (0..1_000)
                .map(|_| Some(rng.below(4) as i32).filter(|n| *n != 3))
                .collect();
            let kept = first.slice(batch * 1_000, 1_000);
            let fresh = column(&mut rng, &texts, 1_000);
            let cols: Vec<ArrayRef> = vec![
                Arc::new(numbers.clone()),
                Arc::new(kept.clone()),
                Arc::new(fresh.clone()),
            ];
            groups.intern(&cols, &mut ids).unwrap();
            for (row, &id) in ids.iter().enumerate() {
                let text = |a: &StringViewArray| a.is_valid(row).then(|| a.value(row).to_string());
                let value = (
                    numbers.is_valid(row).then(|| numbers.value(row)),
                    text(&kept),
                    text(&fresh),
                );
                same_group(&mut expected, &mut values, value, id);
            }
        }
        let emitted = groups.emit(EmitTo::All).unwrap();
        let numbers = emitted[0].as_primitive::<arrow::datatypes::Int32Type>();
        let (kept, fresh) = (emitted[1].as_string_view(), emitted[2].as_string_view());
        for ((n, k, f), id) in expected {
            let text = |a: &StringViewArray| a.is_valid(id).then(|| a.value(id).to_string());
            assert_eq!(
                (
                    numbers.is_valid(id).then(|| numbers.value(id)),
                    text(kept),
                    text(fresh)
                ),
                (n, k, f)
            );
        }
    }

    #[test]
    fn equal_views_over_other_buffers_are_other_groups() {
        // Same length, same 4-byte prefix, buffer 0 at offset 0: the views
        // are bit-identical, the texts are not.
        let a = StringViewArray::from(vec!["/Applications/Alpha.app"]);
        let b = StringViewArray::from(vec!["/Applications/Gamma.app"]);
        assert_eq!(a.views()[0], b.views()[0]);
        check_groups(&[a, b.clone(), b]);
    }

    #[test]
    fn mostly_new_groups_stop_consulting_the_views() {
        let texts = pool(150_000);
        let mut rng = Lcg(11);
        let arrays: Vec<StringViewArray> =
            (0..10).map(|_| column(&mut rng, &texts, 8_192)).collect();
        let mut groups = ViewGroupValues::<1>::new(&[DataType::Utf8View], strings_table()).unwrap();
        let mut ids = Vec::new();
        for array in &arrays {
            groups
                .intern(&[Arc::new(array.clone()) as ArrayRef], &mut ids)
                .unwrap();
        }
        assert!(
            groups.bypass,
            "{} misses of {} rows",
            groups.misses, groups.rows
        );
        check_groups(&arrays);
    }

    /// A session over `t(s Utf8View, x Int64)`: 3 partitions of 8,000 rows
    /// with `distinct` texts, with or without the rule, under `pool_bytes`
    /// of memory if given.
    fn session(with_rule: bool, distinct: usize, pool_bytes: Option<usize>) -> SessionContext {
        let mut rng = Lcg(3);
        let texts = pool(distinct);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("x", DataType::Int64, true),
        ]));
        let partitions: Vec<Vec<RecordBatch>> = (0..3)
            .map(|_| {
                (0..4)
                    .map(|_| {
                        let s = column(&mut rng, &texts, 2_000);
                        let x: Int64Array = (0..2_000)
                            .map(|i| (i % 11 != 0).then(|| rng.below(1000) as i64))
                            .collect();
                        RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(s), Arc::new(x)])
                            .unwrap()
                    })
                    .collect()
            })
            .collect();
        let mut runtime = RuntimeEnvBuilder::new();
        let mut config = SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(1024);
        if let Some(bytes) = pool_bytes {
            runtime = runtime.with_memory_limit(bytes, 1.0);
            // The final sort reserves 10 MB for its merge by default.
            config = config.with_sort_spill_reservation_bytes(bytes / 8);
        }
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime.build_arc().unwrap());
        if with_rule {
            state = state.with_physical_optimizer_rule(Arc::new(ViewGroupBy));
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, partitions).unwrap()),
        )
        .unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let plan = displayable(plan.as_ref()).indent(true).to_string();
        let batches = frame.collect().await.unwrap();
        (pretty_format_batches(&batches).unwrap().to_string(), plan)
    }

    #[tokio::test]
    async fn answers_as_datafusion_does_and_only_where_it_applies() {
        let with = session(true, 300, None);
        let without = session(false, 300, None);
        // (query, whether the rule takes its partial aggregate)
        let queries = [
            (
                "SELECT s, count(*), count(x), sum(x), min(x), max(x), avg(x) FROM t GROUP BY s ORDER BY s",
                true,
            ),
            (
                "SELECT s, count(*) FILTER (WHERE x > 500) AS big FROM t GROUP BY s HAVING count(*) > 70 ORDER BY s",
                true,
            ),
            ("SELECT DISTINCT s FROM t ORDER BY s", true),
            (
                "SELECT s, min(s), max(s), count(*) FROM t WHERE x < 300 GROUP BY s ORDER BY 4 DESC, 1 LIMIT 7",
                true,
            ),
            // DataFusion plans this as GROUP BY s, x under a GROUP BY s
            // that counts x: the upper partial aggregate is taken.
            (
                "SELECT s, count(DISTINCT x) FROM t GROUP BY s ORDER BY s",
                true,
            ),
            (
                "SELECT s, x, count(*) FROM t GROUP BY s, x ORDER BY s, x LIMIT 50",
                true,
            ),
            (
                "SELECT x % 3 AS r, s, sum(x) FROM t GROUP BY x % 3, s, s ORDER BY 1, 2",
                true,
            ),
            (
                "SELECT s, x > 500 AS big, count(*) FROM t GROUP BY s, x > 500 ORDER BY 1, 2",
                false,
            ),
            ("SELECT x, count(*) FROM t GROUP BY x ORDER BY x", false),
        ];
        for (sql, applies) in queries {
            let (expected, plain) = run(&without, sql).await;
            let (got, plan) = run(&with, sql).await;
            assert_eq!(got, expected, "{sql}");
            assert!(!plain.contains("ViewGroupedAggregateExec"));
            assert_eq!(
                plan.contains("ViewGroupedAggregateExec: mode=Partial"),
                applies,
                "{sql}\n{plan}"
            );
        }
    }

    #[tokio::test]
    async fn under_a_small_memory_limit_groups_are_handed_on_early() {
        // Per group: rows and the sum of x, as DataFusion counts them.
        let sql = "SELECT s, count(*), sum(x) FROM t GROUP BY s";
        let mut expected: HashMap<Option<String>, (i64, i64)> = HashMap::new();
        for batch in session(false, GROUPS, None)
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
        {
            add_partial_rows(&mut expected, &batch);
        }

        // The partial aggregate alone, with memory for fewer groups than
        // each partition has: it hands them on more than once, and the
        // partial rows still add up to the groups.
        let limited = session(true, GROUPS, Some(POOL_BYTES));
        let plan = limited
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let mut partial = None;
        plan.apply(|node| {
            if node.name() == "ViewGroupedAggregateExec" {
                partial = Some(Arc::clone(node));
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        let partial = partial.expect("the rule took the partial aggregate");
        let mut got = HashMap::new();
        let mut rows = 0;
        for partition in 0..partial.properties().output_partitioning().partition_count() {
            let stream = partial.execute(partition, limited.task_ctx()).unwrap();
            for batch in datafusion::physical_plan::common::collect(stream)
                .await
                .unwrap()
            {
                rows += batch.num_rows();
                add_partial_rows(&mut got, &batch);
            }
        }
        assert_eq!(got, expected);
        assert!(
            rows > 3 * expected.len(),
            "{rows} partial rows for {} groups",
            expected.len()
        );
    }

    /// Adds rows of (s, count, sum) to per-group totals.
    fn add_partial_rows(totals: &mut HashMap<Option<String>, (i64, i64)>, batch: &RecordBatch) {
        let texts = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let texts = texts.as_string::<i32>();
        let counts = batch
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let sums = batch
            .column(2)
            .as_primitive::<arrow::datatypes::Int64Type>();
        for row in 0..batch.num_rows() {
            let text = texts.is_valid(row).then(|| texts.value(row).to_string());
            let total = totals.entry(text).or_default();
            total.0 += counts.value(row);
            total.1 += if sums.is_valid(row) {
                sums.value(row)
            } else {
                0
            };
        }
    }

    /// Texts in the memory test: each partition of 8,000 rows has about
    /// 2,400 groups, which do not fit in `POOL_BYTES` (a batch's do).
    const GROUPS: usize = 3_000;
    const POOL_BYTES: usize = 256 * 1024;
}
