//! Running SQL read-only: `sluice query` and the shell's statements.
//!
//! sluice's tables are history written by the pipeline; SQL only reads them.
//! Every statement is planned, then checked against [`read_only`] (the same
//! check `SessionContext::sql_with_options` makes) before anything runs, so
//! `CREATE`, `INSERT`, `COPY … TO`, `SET` and their kin are refused without a
//! side effect. The check is made here rather than inside `sql_with_options`
//! so that a refusal, an unknown table and a plain SQL mistake each get their
//! own message.
//!
//! A string may hold several statements separated by `;`; they are planned one
//! after the other and run in order.

use std::io::Write;
use std::path::Path;

use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::catalog::{self, CatalogError};
use crate::output::{self, OutputError, OutputFormat};
use crate::sql;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The catalog could not be opened.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The SQL text has no statement in it.
    #[error("no SQL statement given")]
    Empty,
    /// The SQL text does not parse.
    #[error("cannot parse SQL: {}", one_line(.0))]
    Parse(#[source] DataFusionError),
    /// The statement would change something; sluice's SQL only reads.
    #[error("refused: sluice's SQL is read-only (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW): {0}")]
    ReadOnly(#[source] DataFusionError),
    /// The statement would write, or reach past sluice's tables (a file-reading
    /// table function); refused before planning.
    #[error("refused: {0}")]
    Refused(String),
    /// The statement uses SQL the dialect does not support; the message names
    /// the construct.
    #[error("{0}")]
    Dialect(String),
    /// The statement names a table sluice does not serve.
    #[error("unknown table '{table}'; the tables are: {}", available.join(", "))]
    UnknownTable {
        /// The table as written in the statement.
        table: String,
        /// The tables sluice serves.
        available: Vec<&'static str>,
    },
    /// The statement could not be planned (an unknown column, a type error…).
    #[error("cannot plan query: {}", one_line(.0))]
    Plan(#[source] DataFusionError),
    /// The statement failed while running (an unreadable file, the memory
    /// limit…).
    #[error("query failed: {}", one_line(.0))]
    Execute(#[source] DataFusionError),
    /// The statement ran longer than the session's timeout
    /// ([`sql::QueryLimits`]).
    #[error("query failed: timed out after {0:?} (set {env} to allow longer)", env = sql::TIMEOUT_ENV)]
    Timeout(std::time::Duration),
    /// The results could not be printed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The options cannot work together (Parquet to a terminal, several
    /// results in one Parquet file).
    #[error("{0}")]
    Usage(String),
    /// The `--out` file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    OutFile {
        /// The file asked for.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// DataFusion's message on one line: a resources-exhausted error lists the
/// top memory consumers on lines of their own, and a backtrace-less error
/// can still carry newlines from its context.
fn one_line(err: &DataFusionError) -> String {
    let text = err.to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join("; ")
}

/// The options every sluice statement is checked against: no DDL, no DML, no
/// session statements.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Parses `sql` as SQLite (osquery's dialect), rewrites each statement for
/// DataFusion ([`crate::sql`]) and plans it, refusing any that would write.
/// A dialect `PRAGMA` is applied to the session and yields no plan.
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<Vec<LogicalPlan>, QueryError> {
    let statements = sql::parse(sql).map_err(QueryError::Parse)?;
    if statements.is_empty() {
        return Err(QueryError::Empty);
    }
    let options = read_only();
    let mut plans = Vec::with_capacity(statements.len());
    for statement in statements {
        refuse_writes(&statement)?;
        let statement = match sql::prepare(ctx, statement) {
            Ok(sql::Prepared::Plan(statement)) => statement,
            Ok(sql::Prepared::Pragma) => continue,
            Err(message) if message.starts_with("refused: ") => {
                return Err(QueryError::Refused(
                    message["refused: ".len()..].to_string(),
                ));
            }
            Err(message) => return Err(QueryError::Dialect(message)),
        };
        let state = ctx.state();
        let plan = match state.statement_to_plan(statement.clone()).await {
            Ok(plan) => plan,
            Err(err) => return Err(explain_plan_error(ctx, &statement, err)),
        };
        options.verify_plan(&plan).map_err(QueryError::ReadOnly)?;
        plans.push(sql::plain_strings(plan).map_err(QueryError::Plan)?);
    }
    Ok(plans)
}

/// Refuses statements that write before anything else looks at them, so the
/// refusal names the statement rather than whatever planning would trip on
/// first. [`read_only`] checks the plan again afterwards.
fn refuse_writes(statement: &DFStatement) -> Result<(), QueryError> {
    let what = match statement {
        DFStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE",
        DFStatement::CopyTo(_) => "COPY",
        DFStatement::Statement(inner) => match inner.as_ref() {
            SqlStatement::Insert(_) => "INSERT",
            SqlStatement::Update(_) => "UPDATE",
            SqlStatement::Delete(_) => "DELETE",
            SqlStatement::Merge(_) => "MERGE",
            SqlStatement::Copy { .. } => "COPY",
            SqlStatement::CreateTable(_) => "CREATE TABLE",
            SqlStatement::CreateView(_) => "CREATE VIEW",
            SqlStatement::CreateIndex(_) => "CREATE INDEX",
            SqlStatement::CreateVirtualTable { .. } => "CREATE VIRTUAL TABLE",
            SqlStatement::Drop { .. } => "DROP",
            SqlStatement::AlterTable(_) => "ALTER TABLE",
            SqlStatement::AttachDatabase { .. } => "ATTACH",
            SqlStatement::Truncate(_) => "TRUNCATE",
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    Err(QueryError::Refused(format!(
        "sluice's SQL is read-only (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW): {what} would change data"
    )))
}

/// Plans and runs every statement of `sql`, writing each result to `out`.
pub async fn run(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    let timeout = sql::query_limits(ctx).timeout;
    let plans = plan(ctx, sql).await?;
    if format == OutputFormat::Parquet && plans.len() > 1 {
        return Err(QueryError::Usage(format!(
            "--format parquet writes one result, but the SQL has {} statements",
            plans.len()
        )));
    }
    for plan in plans {
        // On its own task, so that the timer fires even while the query's
        // operators are busy, and so that a timed-out query can be aborted.
        let session = ctx.clone();
        let mut task = tokio::spawn(async move {
            let df = session
                .execute_logical_plan(plan)
                .await
                .map_err(QueryError::Execute)?;
            let schema = df.schema().inner().clone();
            // Collected rather than streamed: the output formats need whole
            // batches, and the memory limit bounds what is held.
            let batches = df.collect().await.map_err(QueryError::Execute)?;
            Ok::<_, QueryError>((schema, batches))
        });
        let (schema, batches) = match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join_error)) => {
                return Err(QueryError::Execute(DataFusionError::External(Box::new(
                    join_error,
                ))));
            }
            Err(_) => {
                task.abort();
                return Err(QueryError::Timeout(timeout));
            }
        };
        output::write_batches(format, &schema, &batches, out)?;
    }
    Ok(())
}

/// What `sluice query` reads and where it writes.
#[derive(Debug, Clone, Copy)]
pub struct QueryCommand<'a> {
    /// The data dir (tables, and the host tables' context).
    pub data_dir: &'a Path,
    /// An object store URL to read the event tables from instead.
    pub store: Option<&'a str>,
    /// The SQL.
    pub sql: &'a str,
    /// The output format.
    pub format: OutputFormat,
    /// A file to write instead of standard output.
    pub out: Option<&'a Path>,
}

/// `sluice query`: opens the catalog and runs the SQL, printing to standard
/// output or writing `out`. A reader that stops reading early (`| head`) is
/// not an error.
///
/// `out` is written to a temporary name beside it (mode 0600: results are
/// event history) and renamed into place only when every statement has
/// succeeded, so a failed query never leaves half a file, and a reader never
/// sees one.
pub async fn run_command(command: QueryCommand<'_>) -> Result<(), QueryError> {
    use std::io::IsTerminal;
    if command.format == OutputFormat::Parquet
        && command.out.is_none()
        && std::io::stdout().is_terminal()
    {
        return Err(QueryError::Usage(
            "--format parquet is binary; write it with --out FILE or into a pipe".into(),
        ));
    }
    let ctx = match command.store {
        Some(url) => {
            let location = sluice_sinks::object_store::StoreLocation::parse(url)
                .map_err(CatalogError::from)?;
            catalog::open_catalog_with_store(command.data_dir, &location)?
        }
        None => catalog::open_catalog(command.data_dir)?,
    };
    // A query busy in an operator that never yields cannot be aborted from
    // inside; a one-shot command can still stop on time, by exiting. The
    // in-runtime timeout in `run` fires first whenever the query yields.
    //
    // Once the command has returned, its outcome is the caller's to report:
    // the watchdog then only ends a process whose shutdown hangs on such an
    // operator, silently and with the outcome's exit code. (It used to
    // print the timeout a second time, after the caller had printed it.)
    use std::sync::atomic::{AtomicU8, Ordering};
    static OUTCOME: AtomicU8 = AtomicU8::new(RUNNING);
    const RUNNING: u8 = 0;
    const SUCCEEDED: u8 = 1;
    const FAILED: u8 = 2;
    let timeout = sql::query_limits(&ctx).timeout;
    std::thread::spawn(move || {
        std::thread::sleep(timeout + std::time::Duration::from_millis(250));
        match OUTCOME.load(Ordering::Acquire) {
            RUNNING => {
                eprintln!("sluice: error: {}", QueryError::Timeout(timeout));
                std::process::exit(1);
            }
            outcome => {
                // Time for the caller to print its error, if it has one.
                std::thread::sleep(std::time::Duration::from_secs(2));
                std::process::exit(i32::from(outcome == FAILED));
            }
        }
    });
    let result = match command.out {
        Some(path) => write_out_file(&ctx, command.sql, command.format, path).await,
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match run(&ctx, command.sql, command.format, &mut out).await {
                Err(QueryError::Output(e)) if e.is_broken_pipe() => Ok(()),
                other => other,
            }
        }
    };
    let outcome = if result.is_ok() { SUCCEEDED } else { FAILED };
    OUTCOME.store(outcome, Ordering::Release);
    result
}

/// Runs `sql` into `path`, atomically; see [`run_command`].
async fn write_out_file(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    path: &Path,
) -> Result<(), QueryError> {
    use std::os::unix::fs::OpenOptionsExt;
    let out_error = |source| QueryError::OutFile {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| QueryError::Usage(format!("--out {}: not a file name", path.display())))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(out_error)?;
    let mut writer = std::io::BufWriter::new(file);
    let result = async {
        run(ctx, sql, format, &mut writer).await?;
        let file = writer.into_inner().map_err(|e| out_error(e.into_error()))?;
        file.sync_all().map_err(out_error)?;
        std::fs::rename(&temporary, path).map_err(out_error)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Turns a planning error into [`QueryError::UnknownTable`] when the statement
/// names a table that does not exist, which DataFusion reports with its
/// internal `datafusion.public.` name and without saying what does exist.
fn explain_plan_error(
    ctx: &SessionContext,
    statement: &DFStatement,
    err: DataFusionError,
) -> QueryError {
    let state = ctx.state();
    let references = state
        .resolve_table_references(statement)
        .unwrap_or_default();
    let unknown = references.into_iter().find(|reference| {
        // Table functions (`range(10)`) look like tables to the resolver.
        let is_function =
            reference.schema().is_none() && state.table_functions().contains_key(reference.table());
        !is_function && matches!(ctx.table_exist(reference.clone()), Ok(false))
    });
    match unknown {
        Some(reference) => QueryError::UnknownTable {
            table: reference.to_string(),
            available: sluice_schemas::TABLES.iter().map(|t| t.name).collect(),
        },
        None => QueryError::Plan(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::write_process_events;
    use arrow::datatypes::DataType;

    async fn run_to_string(
        ctx: &SessionContext,
        sql: &str,
        format: OutputFormat,
    ) -> Result<String, QueryError> {
        let mut out = Vec::new();
        run(ctx, sql, format, &mut out).await?;
        Ok(String::from_utf8(out).expect("utf8"))
    }

    fn empty_catalog() -> (tempfile::TempDir, SessionContext) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = catalog::open_catalog(dir.path()).expect("catalog");
        (dir, ctx)
    }

    #[tokio::test]
    async fn create_table_is_refused() {
        let (dir, ctx) = empty_catalog();
        for sql in [
            "CREATE TABLE t (a INT)",
            "CREATE TABLE t AS SELECT 1",
            "CREATE VIEW v AS SELECT 1",
        ] {
            let err = run_to_string(&ctx, sql, OutputFormat::Csv)
                .await
                .expect_err(sql);
            assert!(
                matches!(err, QueryError::ReadOnly(_) | QueryError::Refused(_)),
                "{sql}: {err}"
            );
            assert!(err.to_string().contains("read-only"), "{err}");
        }
        assert!(!ctx.table_exist("t").expect("lookup"));
        drop(dir);
    }

    #[tokio::test]
    async fn insert_is_refused() {
        let (_dir, ctx) = empty_catalog();
        let sql = "INSERT INTO es_process_events SELECT * FROM es_process_events";
        let err = run_to_string(&ctx, sql, OutputFormat::Csv)
            .await
            .expect_err("insert");
        assert!(
            matches!(err, QueryError::ReadOnly(_) | QueryError::Refused(_)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn copy_to_is_refused_and_writes_nothing() {
        let (dir, ctx) = empty_catalog();
        let target = dir.path().join("out.csv");
        let sql = format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display());
        let err = run_to_string(&ctx, &sql, OutputFormat::Csv)
            .await
            .expect_err("copy");
        assert!(
            matches!(err, QueryError::ReadOnly(_) | QueryError::Refused(_)),
            "{err}"
        );
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn set_and_create_external_table_are_refused() {
        let (dir, ctx) = empty_catalog();
        let external = format!(
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{}/'",
            dir.path().display()
        );
        for sql in ["SET datafusion.execution.batch_size = 1", external.as_str()] {
            let err = run_to_string(&ctx, sql, OutputFormat::Csv)
                .await
                .expect_err(sql);
            assert!(
                matches!(err, QueryError::ReadOnly(_) | QueryError::Refused(_)),
                "{sql}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn nothing_runs_when_any_statement_is_refused() {
        let (_dir, ctx) = empty_catalog();
        let mut out = Vec::new();
        let err = run(
            &ctx,
            "SELECT 1; CREATE TABLE t (a INT);",
            OutputFormat::Csv,
            &mut out,
        )
        .await
        .expect_err("refused");
        assert!(
            matches!(err, QueryError::ReadOnly(_) | QueryError::Refused(_)),
            "{err}"
        );
        assert!(out.is_empty(), "nothing ran");
    }

    #[tokio::test]
    async fn unknown_table_lists_the_tables() {
        let (_dir, ctx) = empty_catalog();
        let err = run_to_string(&ctx, "SELECT * FROM no_such_table", OutputFormat::Csv)
            .await
            .expect_err("unknown");
        let message = err.to_string();
        assert!(matches!(err, QueryError::UnknownTable { .. }), "{message}");
        assert!(message.contains("'no_such_table'"), "{message}");
        assert!(
            message.contains("es_process_events, es_process_file_events"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn other_planning_errors_are_not_blamed_on_tables() {
        let (_dir, ctx) = empty_catalog();
        let err = run_to_string(
            &ctx,
            "SELECT nope FROM es_process_events",
            OutputFormat::Csv,
        )
        .await
        .expect_err("bad column");
        assert!(matches!(err, QueryError::Plan(_)), "{err}");
        let err = run_to_string(&ctx, "SELECT nope FROM range(3)", OutputFormat::Csv)
            .await
            .expect_err("bad column");
        assert!(matches!(err, QueryError::Plan(_)), "{err}");
        let err = run_to_string(&ctx, "SELEC 1", OutputFormat::Csv)
            .await
            .expect_err("typo");
        assert!(matches!(err, QueryError::Parse(_)), "{err}");
        let err = run_to_string(&ctx, "  ;", OutputFormat::Csv)
            .await
            .expect_err("empty");
        assert!(matches!(err, QueryError::Empty), "{err}");
    }

    /// A catalog over one file of two process events: `/bin/ls` (pid 7,
    /// time 1) and `/bin/sh` (pid 8, time 2).
    fn two_processes() -> (tempfile::TempDir, SessionContext) {
        let dir = tempfile::tempdir().expect("tempdir");
        write_process_events(
            dir.path(),
            "date=2024-01-01/hour=00/x.parquet",
            &[(7, "/bin/ls", 1), (8, "/bin/sh", 2)],
        );
        let ctx = catalog::open_catalog(dir.path()).expect("catalog");
        (dir, ctx)
    }

    #[tokio::test]
    async fn reads_rows_and_runs_several_statements() {
        let (_dir, ctx) = two_processes();
        let out = run_to_string(
            &ctx,
            "SELECT pid, path FROM es_process_events ORDER BY pid; SELECT count(*) AS n FROM es_process_events;",
            OutputFormat::Csv,
        )
        .await
        .expect("run");
        assert_eq!(out, "pid,path\n7,/bin/ls\n8,/bin/sh\nn\n2\n");
    }

    #[tokio::test]
    async fn text_leaves_the_engine_as_plain_utf8() {
        let (_dir, ctx) = two_processes();
        for sql in [
            "SELECT * FROM es_process_events",
            "SELECT path, count(*) AS n FROM es_process_events GROUP BY path",
            "SELECT c.path, p.path AS earlier FROM es_process_events c \
             JOIN es_process_events p ON c.time = p.time + 1",
            "SELECT upper(path) AS p FROM es_process_events UNION SELECT 'x'",
        ] {
            let plans = plan(&ctx, sql).await.expect("plan");
            let df = ctx
                .execute_logical_plan(plans.into_iter().next().expect("one plan"))
                .await
                .expect("execute");
            let schema = df.schema().as_arrow().clone();
            let batches = df.collect().await.expect("collect");
            for field in schema.fields() {
                assert_ne!(field.data_type(), &DataType::Utf8View, "{sql}");
            }
            for batch in &batches {
                assert_eq!(batch.schema().as_ref(), &schema, "{sql}");
            }
            assert!(
                batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0,
                "{sql}"
            );
        }
    }

    #[tokio::test]
    async fn explain_describe_and_show_are_allowed() {
        let (_dir, ctx) = empty_catalog();
        for sql in [
            "EXPLAIN SELECT * FROM es_process_events",
            "DESCRIBE es_process_events",
            "SHOW TABLES",
            "SHOW COLUMNS FROM es_process_events",
        ] {
            run_to_string(&ctx, sql, OutputFormat::Csv)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}
