//! Host tables: osquery's live tables, read from the host the query runs on.
//!
//! Event tables are history: rows written by the pipeline, read back from
//! Parquet. Real detections join that history to the *present* state of the
//! machine: the parent and grandparent in `processes`, the digest of an
//! executable in `hash`, its owner in `file`, the account behind an `auid` in
//! `users`, and `uptime`, `time`, `dns_resolvers`. This module serves those
//! tables with osquery's columns, and each one reads the host running the
//! query, at the moment the query runs:
//!
//! - [`processes`]: `/proc` on Linux (`libproc` on macOS), read at execution.
//! - [`accounts`]: `users` and `groups` from the OS account database
//!   (`getpwent`/`getgrent`), served from a snapshot that is rebuilt when it
//!   is older than its time to live or when `/etc/passwd` (`/etc/group`)
//!   changes, so a join against millions of events reads the database once.
//! - [`files`]: `hash` and `file`. They need a `path` (or `directory`)
//!   constraint, as in osquery; [`lookup`] turns `LEFT JOIN hash ON e.path =
//!   hash.path` into a lookup that hashes only the distinct paths reaching the
//!   join, with a cache keyed by (path, inode, mtime, size) and a byte budget
//!   per query.
//! - [`small`]: `uptime`, `time` and `dns_resolvers`.
//!
//! `sluice query --data-dir` over a copied data dir or a lake still answers
//! these tables from the *current* host, not the host that recorded the
//! events; `.tables` in the shell says so.

pub mod accounts;
mod exec;
pub mod files;
pub mod lookup;
pub mod processes;
pub mod small;

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

pub use exec::HostScanExec;

/// A host table as the shell lists it.
#[derive(Debug, Clone, Copy)]
pub struct HostTableInfo {
    /// The table name, as in osquery.
    pub name: &'static str,
    /// What the table holds.
    pub description: &'static str,
}

/// How `.tables` marks a host table: its rows come from the machine running
/// the query, whatever data dir the query reads.
pub const HOST_TABLE_LABEL: &str = "(host table: reads this machine, now)";

/// Every host table sluice serves, in the order `.tables` lists them.
pub const HOST_TABLES: &[HostTableInfo] = &[
    HostTableInfo {
        name: "dns_resolvers",
        description: "resolvers of this host (/etc/resolv.conf)",
    },
    HostTableInfo {
        name: "file",
        description: "file metadata; needs a path or directory constraint",
    },
    HostTableInfo {
        name: "groups",
        description: "local groups",
    },
    HostTableInfo {
        name: "hash",
        description: "md5/sha1/sha256 of files; needs a path or directory constraint",
    },
    HostTableInfo {
        name: "processes",
        description: "running processes",
    },
    HostTableInfo {
        name: "time",
        description: "current date and time",
    },
    HostTableInfo {
        name: "uptime",
        description: "time since boot",
    },
    HostTableInfo {
        name: "users",
        description: "local user accounts",
    },
];

/// Registers every host table in `ctx`, with the optimizer rule and the
/// physical planner that turn joins to `hash` and `file` into path lookups
/// (see [`lookup`]).
///
/// The query planner is part of a session's state and cannot be swapped in
/// place, so this returns a new context over the same catalog, runtime and
/// settings.
pub fn register(ctx: SessionContext) -> Result<SessionContext> {
    let hash = Arc::new(files::PathTable::hash());
    let file = Arc::new(files::PathTable::file());
    ctx.register_table("processes", Arc::new(processes::table()))?;
    ctx.register_table("users", Arc::new(accounts::users_table()))?;
    ctx.register_table("groups", Arc::new(accounts::groups_table()))?;
    ctx.register_table("uptime", Arc::new(small::uptime_table()))?;
    ctx.register_table("time", Arc::new(small::time_table()))?;
    ctx.register_table("dns_resolvers", Arc::new(small::dns_resolvers_table()))?;
    ctx.register_table("hash", hash)?;
    ctx.register_table("file", file)?;
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_optimizer_rule(Arc::new(lookup::PathLookupRule))
        .with_query_planner(Arc::new(lookup::HostQueryPlanner))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// The `hash` table registered in `ctx`, to read its counters (files hashed,
/// bytes hashed, cache hits).
pub async fn hash_table(ctx: &SessionContext) -> Option<Arc<dyn TableProvider>> {
    let provider = ctx.table_provider("hash").await.ok()?;
    let is_path_table = (provider.as_ref() as &dyn std::any::Any).is::<files::PathTable>();
    is_path_table.then_some(provider)
}

/// Builds a table's full batch from the host; called at execution time.
pub type Producer = Arc<dyn Fn() -> Result<RecordBatch> + Send + Sync>;

/// A host table whose rows are produced whole, at execution time, by a
/// [`Producer`]. DataFusion applies the query's filters afterwards: these
/// tables are small (one row, or a row per process or account).
pub struct SnapshotTable {
    name: &'static str,
    schema: SchemaRef,
    producer: Producer,
}

impl SnapshotTable {
    /// A table called `name` with `schema`, whose rows `producer` reads.
    pub fn new(name: &'static str, schema: SchemaRef, producer: Producer) -> Self {
        SnapshotTable {
            name,
            schema,
            producer,
        }
    }
}

impl fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotTable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(HostScanExec::try_new(
            self.name,
            self.schema.clone(),
            projection.cloned(),
            self.producer.clone(),
        )?))
    }
}

/// The kinds of osquery column the host tables use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// osquery `INTEGER`.
    Integer,
    /// osquery `BIGINT`.
    BigInt,
    /// osquery `TEXT`.
    Text,
}

/// An Arrow schema from osquery's column list (every column nullable, as in
/// the event tables).
pub(crate) fn schema_of(columns: &[(&str, Kind)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| {
                let data_type = match kind {
                    Kind::Integer => DataType::Int32,
                    Kind::BigInt => DataType::Int64,
                    Kind::Text => DataType::Utf8,
                };
                Field::new(*name, data_type, true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Wraps an error reading the host into a DataFusion error that names the
/// table.
pub(crate) fn host_error(table: &str, what: impl fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("{table}: {what}"))
}
