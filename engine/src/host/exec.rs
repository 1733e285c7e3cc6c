//! The scan of a host table: reads the host when the query *runs*, not when
//! it is planned, so `EXPLAIN` reads nothing and each execution sees the host
//! as it is then.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use super::Producer;

/// Produces one host table's rows (one batch) at execution time, projected.
pub struct HostScanExec {
    table: &'static str,
    full_schema: SchemaRef,
    projection: Option<Vec<usize>>,
    producer: Producer,
    properties: Arc<PlanProperties>,
}

impl HostScanExec {
    /// A scan of `table` (whose rows have `full_schema`), keeping the columns
    /// of `projection` (all when `None`).
    pub fn try_new(
        table: &'static str,
        full_schema: SchemaRef,
        projection: Option<Vec<usize>>,
        producer: Producer,
    ) -> Result<Self> {
        let projected = match &projection {
            Some(indices) => Arc::new(full_schema.project(indices)?),
            None => full_schema.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(HostScanExec {
            table,
            full_schema,
            projection,
            producer,
            properties: Arc::new(properties),
        })
    }
}

impl fmt::Debug for HostScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostScanExec")
            .field("table", &self.table)
            .field("projection", &self.projection)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for HostScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "HostScanExec: table={}", self.table)
    }
}

impl ExecutionPlan for HostScanExec {
    fn name(&self) -> &str {
        "HostScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch = (self.producer)()?;
        debug_assert_eq!(batch.schema().fields(), self.full_schema.fields());
        Ok(Box::pin(MemoryStream::try_new(
            vec![batch],
            self.full_schema.clone(),
            self.projection.clone(),
        )?))
    }
}
