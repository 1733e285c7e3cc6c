//! The osquery/SQLite dialect: queries written for osquery's SQLite, run by
//! DataFusion with SQLite's answers.
//!
//! An analyst's query arrives as SQLite text. [`parse`] reads it with
//! sqlparser's `SQLiteDialect` (so `==`, `"double quoted"` words and SQLite's
//! `trim(x, chars)` parse); [`prepare`] then rewrites each query's AST
//! ([`rewrite`]) so that DataFusion's planner sees SQL with SQLite's meaning;
//! [`register_functions`] gives the session SQLite's and osquery's functions
//! ([`functions`]) and SQLite's `LIKE` ([`like`]). The caller
//! (`query::plan`) plans the result, refuses anything that is not
//! read-only, and casts the text of the result back to plain `Utf8`
//! ([`plain_strings`]).
//!
//! One SQLite setting is honoured: `PRAGMA case_sensitive_like = ON|OFF`
//! (default OFF: `LIKE` ignores ASCII case), kept per session in
//! [`DialectOptions`].

pub mod codec;
pub mod datetime;
pub mod functions;
pub mod like;
pub mod rewrite;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement, Value};
use datafusion::sql::sqlparser::dialect::SQLiteDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

pub use functions::register_functions;

/// Per-session settings of the dialect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DialectOptions {
    /// `LIKE` compares ASCII letters case-sensitively. Off by default, as in
    /// SQLite; `PRAGMA case_sensitive_like = ON` or `--case-sensitive-like`
    /// turns it on.
    pub case_sensitive_like: bool,
}

/// The session's dialect options (the defaults if none were set).
pub fn dialect_options(ctx: &SessionContext) -> DialectOptions {
    ctx.state()
        .config()
        .get_extension::<DialectOptions>()
        .map(|o| *o)
        .unwrap_or_default()
}

/// Sets the session's dialect options.
pub fn set_dialect_options(ctx: &SessionContext, options: DialectOptions) {
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(options));
}

/// Parses SQLite text into statements. DataFusion's own statements
/// (`COPY`, `CREATE EXTERNAL TABLE`) are recognised too, so that they can be
/// refused by name.
pub fn parse(sql: &str) -> Result<Vec<DFStatement>, DataFusionError> {
    let dialect = SQLiteDialect {};
    let mut parser = DFParserBuilder::new(sql).with_dialect(&dialect).build()?;
    let mut statements = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while parser.parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        if parser.parser.peek_token() == Token::EOF {
            break;
        }
        if expecting_delimiter {
            let found = parser.parser.peek_token();
            return Err(DataFusionError::SQL(
                Box::new(ParserError::ParserError(format!(
                    "Expected: end of statement, found: {found}"
                ))),
                None,
            ));
        }
        // sqlparser wants a literal after `PRAGMA x =`; SQLite takes a word
        // (`ON`, `WAL`) too, so PRAGMA is read here.
        if parser.parser.parse_keyword(Keyword::PRAGMA) {
            statements.push(parse_pragma(&mut parser.parser)?);
        } else {
            statements.push(parser.parse_statement()?);
        }
        expecting_delimiter = true;
    }
    Ok(statements)
}

/// `PRAGMA name`, `PRAGMA name = value` or `PRAGMA name(value)`, the value
/// any single token; kept as sqlparser's `Statement::Pragma` with the value
/// as text.
fn parse_pragma(parser: &mut Parser<'_>) -> Result<DFStatement, DataFusionError> {
    let sql_error = |e: ParserError| DataFusionError::SQL(Box::new(e), None);
    let name = parser.parse_object_name(false).map_err(sql_error)?;
    let token_text = |token: Token| match token {
        Token::Word(word) => word.value,
        Token::Number(number, _) => number,
        Token::SingleQuotedString(text) | Token::DoubleQuotedString(text) => text,
        other => other.to_string(),
    };
    let mut value = None;
    let mut is_eq = false;
    if parser.consume_token(&Token::Eq) {
        is_eq = true;
        value = Some(token_text(parser.next_token().token));
    } else if parser.consume_token(&Token::LParen) {
        value = Some(token_text(parser.next_token().token));
        parser.expect_token(&Token::RParen).map_err(sql_error)?;
    }
    Ok(DFStatement::Statement(Box::new(Statement::Pragma {
        name,
        value: value.map(|v| Value::SingleQuotedString(v).into()),
        is_eq,
    })))
}

/// What [`prepare`] made of one statement.
#[derive(Debug)]
pub enum Prepared {
    /// A statement to plan.
    Plan(DFStatement),
    /// A `PRAGMA` that changed the session's dialect options; nothing to run.
    Pragma,
}

/// Rewrites one parsed statement for DataFusion, or applies it when it is a
/// dialect `PRAGMA`. Errors are one line naming what is not supported.
pub fn prepare(ctx: &SessionContext, statement: DFStatement) -> Result<Prepared, String> {
    let options = dialect_options(ctx);
    let mut statement = statement;
    match &mut statement {
        DFStatement::Statement(inner) => {
            if let Statement::Pragma { name, value, .. } = inner.as_ref() {
                return apply_pragma(
                    ctx,
                    options,
                    &name.to_string(),
                    value.as_ref().map(|v| &v.value),
                )
                .map(|()| Prepared::Pragma);
            }
            rewrite::rewrite_statement(inner, &rewrite_options(ctx, options))?;
        }
        DFStatement::Explain(explain) => {
            if let DFStatement::Statement(inner) = explain.statement.as_mut() {
                rewrite::rewrite_statement(inner, &rewrite_options(ctx, options))?;
            }
        }
        _ => {}
    }
    Ok(Prepared::Plan(statement))
}

fn rewrite_options(ctx: &SessionContext, options: DialectOptions) -> rewrite::RewriteOptions {
    let aggregates: HashSet<String> = ctx
        .state()
        .aggregate_functions()
        .iter()
        .flat_map(|(name, udaf)| {
            std::iter::once(name.to_ascii_lowercase())
                .chain(udaf.aliases().iter().map(|a| a.to_ascii_lowercase()))
        })
        .collect();
    rewrite::RewriteOptions {
        case_sensitive_like: options.case_sensitive_like,
        aggregates,
    }
}

fn apply_pragma(
    ctx: &SessionContext,
    mut options: DialectOptions,
    name: &str,
    value: Option<&Value>,
) -> Result<(), String> {
    if !name.eq_ignore_ascii_case("case_sensitive_like") {
        return Err(format!(
            "unsupported SQL: PRAGMA {name}; the only PRAGMA is case_sensitive_like"
        ));
    }
    let text = match value {
        Some(Value::Number(n, _)) => n.to_string(),
        Some(Value::Boolean(b)) => b.to_string(),
        Some(Value::SingleQuotedString(s) | Value::DoubleQuotedString(s)) => s.clone(),
        Some(Value::Placeholder(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err("PRAGMA case_sensitive_like needs a value: ON or OFF".into()),
    };
    options.case_sensitive_like = match text.to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => true,
        "0" | "off" | "false" | "no" => false,
        other => {
            return Err(format!(
                "PRAGMA case_sensitive_like: '{other}' is not ON or OFF"
            ));
        }
    };
    set_dialect_options(ctx, options);
    Ok(())
}

/// How much a query may use: memory (operators that can spill to disk, such
/// as sorts and hash aggregates, do; others fail with a one-line error) and
/// wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Bytes of memory the session's queries may hold at once.
    pub memory_bytes: usize,
    /// How long one statement may run.
    pub timeout: std::time::Duration,
}

/// The environment variable that sets [`QueryLimits::memory_bytes`]
/// (`512M`, `4G`, or bytes).
pub const MEMORY_LIMIT_ENV: &str = "SLUICE_QUERY_MEMORY_LIMIT";
/// The environment variable that sets [`QueryLimits::timeout`] in seconds.
pub const TIMEOUT_ENV: &str = "SLUICE_QUERY_TIMEOUT";

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 2 << 30,
            timeout: std::time::Duration::from_secs(300),
        }
    }
}

impl QueryLimits {
    /// The defaults (2 GiB, 300 s), overridden by [`MEMORY_LIMIT_ENV`] and
    /// [`TIMEOUT_ENV`]. A value that does not parse is ignored with a warning.
    pub fn from_env() -> Self {
        let mut limits = Self::default();
        if let Ok(text) = std::env::var(MEMORY_LIMIT_ENV) {
            match parse_size(&text) {
                Some(bytes) if bytes > 0 => limits.memory_bytes = bytes,
                _ => {
                    tracing::warn!(value = %text, "ignoring {MEMORY_LIMIT_ENV}: not a size such as 512M or 4G")
                }
            }
        }
        if let Ok(text) = std::env::var(TIMEOUT_ENV) {
            match text.trim().parse::<f64>() {
                Ok(seconds) if seconds > 0.0 && seconds.is_finite() => {
                    limits.timeout = std::time::Duration::from_secs_f64(seconds)
                }
                _ => {
                    tracing::warn!(value = %text, "ignoring {TIMEOUT_ENV}: not a number of seconds")
                }
            }
        }
        limits
    }

    /// The memory pool for a session's runtime: fair between spilling
    /// operators, so one sort cannot starve another.
    pub fn memory_pool(&self) -> Arc<dyn datafusion::execution::memory_pool::MemoryPool> {
        Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(
            self.memory_bytes,
        ))
    }
}

/// `512M`, `4G`, `100k`, `12345` → bytes.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (number, scale) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1usize << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let value: f64 = number.trim().parse().ok()?;
    (value >= 0.0 && value.is_finite()).then_some((value * scale as f64) as usize)
}

/// The session's query limits (the defaults if none were installed).
pub fn query_limits(ctx: &SessionContext) -> QueryLimits {
    ctx.state()
        .config()
        .get_extension::<QueryLimits>()
        .map(|l| *l)
        .unwrap_or_default()
}

/// Sets up a session for the dialect: registers the functions and records the
/// limits the query runner enforces. The memory limit itself lives in the
/// runtime, built with [`QueryLimits::memory_pool`].
pub fn install(ctx: &SessionContext, limits: QueryLimits) {
    register_functions(ctx);
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(limits));
}

/// `plan` with every `Utf8View` column of its result cast to plain `Utf8`.
///
/// The event tables scan text as `Utf8View` (cheaper to decode from
/// Parquet's dictionary pages; see `tables::scan_schema`), but what leaves
/// the engine (the output formats, Flight SQL clients, the export's
/// Parquet) stays the `Utf8` that osquery's TEXT columns have always been.
/// Only the final result is cast, after filters and aggregates have run on
/// views; a plan with no view column is returned unchanged.
pub fn plain_strings(plan: LogicalPlan) -> Result<LogicalPlan, DataFusionError> {
    let schema = plan.schema().clone();
    if !schema
        .fields()
        .iter()
        .any(|field| field.data_type() == &DataType::Utf8View)
    {
        return Ok(plan);
    }
    let columns: Vec<Expr> = schema
        .columns()
        .into_iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if field.data_type() == &DataType::Utf8View {
                let (relation, name) = (column.relation.clone(), column.name.clone());
                cast(Expr::Column(column), DataType::Utf8).alias_qualified(relation, name)
            } else {
                Expr::Column(column)
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

/// `schema` with `Utf8View` fields as `Utf8`: a table's columns as clients
/// see them in results (see [`plain_strings`]).
pub fn plain_schema(schema: &Schema) -> Schema {
    retype(schema, &DataType::Utf8View, &DataType::Utf8)
}

/// `schema` with every field of type `from` retyped to `to`; names,
/// nullability and metadata kept.
pub(crate) fn retype(schema: &Schema, from: &DataType, to: &DataType) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let field = field.as_ref().clone();
            if field.data_type() == from {
                field.with_data_type(to.clone())
            } else {
                field
            }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `ctx.sql(sql)` with [`plain_strings`] results: for sluice's own fixed
/// queries (the export), which use DataFusion's dialect, not the analyst's.
pub async fn plain_dataframe(
    ctx: &SessionContext,
    sql: &str,
) -> Result<DataFrame, DataFusionError> {
    let (state, plan) = ctx.sql(sql).await?.into_parts();
    Ok(DataFrame::new(state, plain_strings(plan)?))
}
