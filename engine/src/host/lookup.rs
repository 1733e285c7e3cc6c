//! Joins to `hash` and `file` as lookups over the paths that reach them.
//!
//! A detection writes `LEFT JOIN hash ON pe.path = hash.path`. Planned as an
//! ordinary join, DataFusion would scan `hash` on its own first, and a scan
//! of `hash` with no path is "hash the whole disk". DataFusion's dynamic
//! filters do not help: they are built from one side to prune the other, but
//! the provider would have to wait for and decode them, and on a large build
//! side they become a hash-table probe that no longer lists the values. So
//! the join is rewritten:
//!
//! 1. [`PathLookupRule`], a logical optimizer rule that runs after
//!    DataFusion's own (so `FROM e, hash WHERE e.path = hash.path` has already
//!    become an equi-join), finds a join whose one side is a [`PathTable`]
//!    scan with no constraint of its own (possibly under aliases, column
//!    projections and filters) and whose keys pair that table's `path` with
//!    an expression of the other side. It replaces the join with a
//!    [`PathLookupNode`] over the other side alone. Left joins (table on the
//!    right), right joins (table on the left) and inner joins are rewritten;
//!    extra join conditions of an inner join become a filter above the node.
//! 2. [`HostQueryPlanner`] plans that node as a [`PathLookupExec`]: it streams
//!    the probe side, evaluates the key, and for each path it has not seen
//!    asks the table for that path's row (hashing or `stat`-ing it then, once
//!    per query, through the table's (path, inode, mtime, size) digest cache).
//!    Every probe row is then matched against the rows found, as the join
//!    would have: a left join keeps unmatched rows with NULLs, an inner join
//!    drops them. Filters on the table's own columns that sat under the join
//!    (`… ON e.path = h.path AND h.sha256 <> ''`) are applied to the looked-up
//!    rows.
//!
//! So the files read are exactly the distinct non-NULL paths reaching the
//! join, each at most once per query. Any other use of the tables without a
//! path (a full outer join, a join on another column) reaches
//! [`PathTable`]'s scan, which refuses it with osquery's advice.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray, UInt32Array};
use arrow::compute::{cast, interleave, take};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, JoinType};
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, Extension, Filter, Join, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use super::files::{HashBudget, PathTable, column_name};

/// Which input of the original join the table was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum TableSide {
    /// The table was the join's left input: its columns come first.
    Left,
    /// The table was the join's right input: its columns come last.
    Right,
}

/// The logical form of a join to `hash` or `file` rewritten as a lookup. Its
/// schema is the replaced join's.
#[derive(Debug, Clone)]
pub struct PathLookupNode {
    probe: LogicalPlan,
    key: Expr,
    table: PathTable,
    /// The table's columns the join emitted, as indices of its full schema.
    table_columns: Vec<usize>,
    /// Filters on the table's own columns, unqualified.
    table_filter: Option<Expr>,
    side: TableSide,
    /// Left/right outer join: keep probe rows without a match.
    keep_unmatched: bool,
    schema: DFSchemaRef,
}

impl PathLookupNode {
    fn identity(&self) -> impl PartialEq + '_ {
        (
            &self.probe,
            &self.key,
            self.table.kind(),
            &self.table_columns,
            &self.table_filter,
            self.side,
            self.keep_unmatched,
            &self.schema,
        )
    }
}

impl PartialEq for PathLookupNode {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for PathLookupNode {}

impl PartialOrd for PathLookupNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self == other).then_some(std::cmp::Ordering::Equal)
    }
}

impl Hash for PathLookupNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.probe.hash(state);
        self.key.hash(state);
        self.table.kind().hash(state);
        self.table_columns.hash(state);
        self.table_filter.hash(state);
        self.side.hash(state);
        self.keep_unmatched.hash(state);
    }
}

impl UserDefinedLogicalNodeCore for PathLookupNode {
    fn name(&self) -> &str {
        "PathLookup"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.probe]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![self.key.clone()]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PathLookup: table={}, key={}, keep_unmatched={}",
            self.table.kind().name(),
            self.key,
            self.keep_unmatched
        )?;
        if let Some(filter) = &self.table_filter {
            write!(f, ", table_filter={filter}")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let (Some(key), Some(probe)) = (exprs.pop(), inputs.pop()) else {
            return Err(DataFusionError::Internal(
                "PathLookup takes one expression and one input".into(),
            ));
        };
        Ok(PathLookupNode {
            probe,
            key,
            ..self.clone()
        })
    }
}

/// The optimizer rule that rewrites joins to `hash` and `file` into
/// [`PathLookupNode`]s. See the module docs.
#[derive(Debug)]
pub struct PathLookupRule;

impl OptimizerRule for PathLookupRule {
    fn name(&self) -> &str {
        "host_path_lookup"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match rewrite_join(join)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The `PathTable` at the bottom of `plan`, with the filters met on the way,
/// when `plan` is a chain of aliases, plain column projections and filters
/// over a scan of it that names no path itself.
fn find_table(plan: &LogicalPlan, filters: &mut Vec<Expr>) -> Option<PathTable> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => find_table(&alias.input, filters),
        LogicalPlan::Projection(projection)
            if projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            find_table(&projection.input, filters)
        }
        LogicalPlan::Filter(filter) => {
            filters.push(filter.predicate.clone());
            find_table(&filter.input, filters)
        }
        LogicalPlan::TableScan(scan) if scan.filters.is_empty() && scan.fetch.is_none() => {
            let provider = source_as_provider(&scan.source).ok()?;
            let any = provider.as_ref() as &dyn std::any::Any;
            any.downcast_ref::<PathTable>().cloned()
        }
        _ => None,
    }
}

fn rewrite_join(join: &Join) -> Result<Option<LogicalPlan>> {
    if join.null_aware {
        return Ok(None);
    }
    for side in [TableSide::Right, TableSide::Left] {
        let (table_plan, probe_plan) = match side {
            TableSide::Right => (&join.right, &join.left),
            TableSide::Left => (&join.left, &join.right),
        };
        let keep_unmatched = match (side, join.join_type) {
            (_, JoinType::Inner) => false,
            (TableSide::Right, JoinType::Left) | (TableSide::Left, JoinType::Right) => true,
            _ => continue,
        };
        let mut table_filters = Vec::new();
        let Some(table) = find_table(table_plan, &mut table_filters) else {
            continue;
        };
        // The key: a pair whose table side is the table's `path`.
        let table_expr = |pair: &(Expr, Expr)| match side {
            TableSide::Right => pair.1.clone(),
            TableSide::Left => pair.0.clone(),
        };
        let probe_expr = |pair: &(Expr, Expr)| match side {
            TableSide::Right => pair.0.clone(),
            TableSide::Left => pair.1.clone(),
        };
        let Some(key_index) = join
            .on
            .iter()
            .position(|pair| column_name(&table_expr(pair)) == Some("path"))
        else {
            continue;
        };
        // Other join conditions: a filter above an inner join; an outer join
        // would need them inside the match, which the lookup does not do.
        let mut residual: Vec<Expr> = join
            .on
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != key_index)
            .map(|(_, (l, r))| l.clone().eq(r.clone()))
            .collect();
        residual.extend(join.filter.clone());
        if keep_unmatched && !residual.is_empty() {
            continue;
        }
        let table_schema = table.schema_ref();
        let Some(table_columns) = table_plan
            .schema()
            .fields()
            .iter()
            .map(|f| table_schema.index_of(f.name()).ok())
            .collect::<Option<Vec<usize>>>()
        else {
            continue;
        };
        let table_filter = match conjunction(table_filters) {
            Some(filter) => Some(unqualify(filter)?),
            None => None,
        };
        let node = PathLookupNode {
            probe: probe_plan.as_ref().clone(),
            key: probe_expr(&join.on[key_index]),
            table,
            table_columns,
            table_filter,
            side,
            keep_unmatched,
            schema: join.schema.clone(),
        };
        let lookup = LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        });
        return Ok(Some(match conjunction(residual) {
            Some(predicate) => LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(lookup))?),
            None => lookup,
        }));
    }
    Ok(None)
}

/// `expr` with its columns' qualifiers (`h.`, `hash.`) removed, to evaluate it
/// against the table's own schema.
fn unqualify(expr: Expr) -> Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .data()
}

/// The query planner of a sluice session: DataFusion's, plus
/// [`PathLookupNode`] → [`PathLookupExec`].
#[derive(Debug)]
pub struct HostQueryPlanner;

#[async_trait]
impl QueryPlanner for HostQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(PathLookupPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// Plans [`PathLookupNode`]s.
#[derive(Debug)]
struct PathLookupPlanner;

#[async_trait]
impl ExtensionPlanner for PathLookupPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<PathLookupNode>() else {
            return Ok(None);
        };
        let (Some(probe_logical), Some(probe)) = (logical_inputs.first(), physical_inputs.first())
        else {
            return Err(DataFusionError::Internal("PathLookup without input".into()));
        };
        let key = planner.create_physical_expr(
            &node.key,
            probe_logical.schema(),
            session,
            planning_ctx,
        )?;
        let table_filter = match &node.table_filter {
            Some(filter) => {
                let schema = DFSchema::try_from(node.table.schema_ref().as_ref().clone())?;
                Some(planner.create_physical_expr(filter, &schema, session, planning_ctx)?)
            }
            None => None,
        };
        Ok(Some(Arc::new(PathLookupExec::new(
            probe.clone(),
            key,
            node.table.clone(),
            node.table_columns.clone(),
            table_filter,
            node.side,
            node.keep_unmatched,
            Arc::new(node.schema.as_arrow().clone()),
        ))))
    }
}

/// Executes a [`PathLookupNode`]. See the module docs.
pub struct PathLookupExec {
    probe: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    table: PathTable,
    table_columns: Vec<usize>,
    table_filter: Option<Arc<dyn PhysicalExpr>>,
    side: TableSide,
    keep_unmatched: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl PathLookupExec {
    #[allow(clippy::too_many_arguments)]
    fn new(
        probe: Arc<dyn ExecutionPlan>,
        key: Arc<dyn PhysicalExpr>,
        table: PathTable,
        table_columns: Vec<usize>,
        table_filter: Option<Arc<dyn PhysicalExpr>>,
        side: TableSide,
        keep_unmatched: bool,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        PathLookupExec {
            probe,
            key,
            table,
            table_columns,
            table_filter,
            side,
            keep_unmatched,
            schema,
            properties: Arc::new(properties),
        }
    }
}

impl fmt::Debug for PathLookupExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathLookupExec")
            .field("table", &self.table.kind())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for PathLookupExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PathLookupExec: table={}, key={}, keep_unmatched={}",
            self.table.kind().name(),
            self.key,
            self.keep_unmatched
        )
    }
}

impl ExecutionPlan for PathLookupExec {
    fn name(&self) -> &str {
        "PathLookupExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        // One stream sees every path, so each is read once per query.
        vec![Distribution::SinglePartition]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.probe]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let mut recursion = f(&self.key)?;
        if let Some(filter) = &self.table_filter
            && recursion == TreeNodeRecursion::Continue
        {
            recursion = f(filter)?;
        }
        Ok(recursion)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(probe) = children.pop() else {
            return Err(DataFusionError::Internal(
                "PathLookupExec takes one child".into(),
            ));
        };
        Ok(Arc::new(PathLookupExec::new(
            probe,
            self.key.clone(),
            self.table.clone(),
            self.table_columns.clone(),
            self.table_filter.clone(),
            self.side,
            self.keep_unmatched,
            self.schema.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.probe.execute(partition, context)?;
        let state = Arc::new(Mutex::new(LookupState::new(self)?));
        let stream = input.then(move |batch| {
            let state = state.clone();
            async move {
                let batch = batch?;
                // Hashing reads files: keep it off the async workers.
                tokio::task::spawn_blocking(move || {
                    state.lock().unwrap_or_else(|p| p.into_inner()).join(&batch)
                })
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// What one execution of a [`PathLookupExec`] has looked up so far.
struct LookupState {
    key: Arc<dyn PhysicalExpr>,
    table: PathTable,
    table_columns: Vec<usize>,
    table_filter: Option<Arc<dyn PhysicalExpr>>,
    side: TableSide,
    keep_unmatched: bool,
    schema: SchemaRef,
    budget: HashBudget,
    warned_skips: u64,
    /// Path → (batch, row) of its row in `found`, or `None`: no row.
    seen: HashMap<String, Option<(usize, usize)>>,
    /// Looked-up rows, projected to the join's table columns. Batch 0 is a
    /// single all-NULL row, the "match" of unmatched probe rows.
    found: Vec<RecordBatch>,
}

impl LookupState {
    fn new(exec: &PathLookupExec) -> Result<Self> {
        let projected = Arc::new(exec.table.schema_ref().project(&exec.table_columns)?);
        let nulls: Vec<ArrayRef> = projected
            .fields()
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), 1))
            .collect();
        Ok(LookupState {
            key: exec.key.clone(),
            table: exec.table.clone(),
            table_columns: exec.table_columns.clone(),
            table_filter: exec.table_filter.clone(),
            side: exec.side,
            keep_unmatched: exec.keep_unmatched,
            schema: exec.schema.clone(),
            budget: HashBudget::new(exec.table.budget_bytes()),
            warned_skips: 0,
            seen: HashMap::new(),
            found: vec![RecordBatch::try_new(projected, nulls)?],
        })
    }

    /// Looks up the paths of `batch` not seen yet, then joins the batch.
    fn join(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        let keys = cast(&keys, &DataType::Utf8)?;
        let keys = keys
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal("path key is not text".into()))?;
        self.look_up_new(keys)?;

        let mut matches = Vec::with_capacity(batch.num_rows());
        let mut kept: Vec<u32> = Vec::new();
        for i in 0..keys.len() {
            let found = if keys.is_null(i) {
                None
            } else {
                self.seen.get(keys.value(i)).copied().flatten()
            };
            match found {
                Some(at) => {
                    matches.push(at);
                    kept.push(i as u32);
                }
                None if self.keep_unmatched => matches.push((0, 0)),
                None => {}
            }
        }
        let probe_columns: Vec<ArrayRef> = if self.keep_unmatched {
            batch.columns().to_vec()
        } else {
            let kept = UInt32Array::from(kept);
            batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &kept, None))
                .collect::<std::result::Result<_, _>>()?
        };
        let mut table_columns = Vec::with_capacity(self.table_columns.len());
        for c in 0..self.table_columns.len() {
            let sources: Vec<&dyn Array> =
                self.found.iter().map(|b| b.column(c).as_ref()).collect();
            table_columns.push(interleave(&sources, &matches)?);
        }
        let columns = match self.side {
            TableSide::Right => [probe_columns, table_columns].concat(),
            TableSide::Left => [table_columns, probe_columns].concat(),
        };
        let options = RecordBatchOptions::new().with_row_count(Some(matches.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Reads the rows of the distinct paths in `keys` not seen before.
    fn look_up_new(&mut self, keys: &StringArray) -> Result<()> {
        let mut new: Vec<&str> = Vec::new();
        let mut new_set: HashSet<&str> = HashSet::new();
        for key in keys.iter().flatten() {
            if !self.seen.contains_key(key) && new_set.insert(key) {
                new.push(key);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let (rows, index) = self.table.rows_for_paths(&new, &self.budget)?;
        let passes: Option<arrow::array::BooleanArray> = match &self.table_filter {
            Some(filter) => {
                let mask = filter.evaluate(&rows)?.into_array(rows.num_rows())?;
                Some(
                    mask.as_any()
                        .downcast_ref::<arrow::array::BooleanArray>()
                        .ok_or_else(|| DataFusionError::Internal("filter is not boolean".into()))?
                        .clone(),
                )
            }
            None => None,
        };
        let batch_index = self.found.len();
        self.found.push(rows.project(&self.table_columns)?);
        for (path, row) in new.iter().zip(index) {
            let row = row.filter(|r| {
                passes
                    .as_ref()
                    .is_none_or(|mask| mask.is_valid(*r) && mask.value(*r))
            });
            self.seen
                .insert((*path).to_string(), row.map(|r| (batch_index, r)));
        }
        let skipped = self.budget.skipped();
        if skipped > self.warned_skips {
            self.warned_skips = skipped;
            self.budget
                .warn_if_exceeded(self.table.kind().name(), self.table.budget_bytes());
        }
        Ok(())
    }
}
