//! The rewriter: a SQLite-syntax query, reshaped so that DataFusion gives
//! SQLite's answer.
//!
//! The statement arrives parsed by sqlparser's `SQLiteDialect`. Three passes
//! then run over it, each on the AST, before DataFusion plans anything:
//!
//! 1. **Names.** A `"double quoted"` word that names no column, alias, table
//!    or CTE anywhere in the statement is a string literal, as SQLite reads it.
//! 2. **Scopes**, one `SELECT` at a time, innermost first: comma joins next to
//!    explicit joins are folded into one left-to-right join chain; `*` over a
//!    sluice table becomes osquery's visible columns in osquery's order
//!    (hidden columns and sluice's own stay selectable by name); a `SELECT`
//!    alias used in `WHERE`, `GROUP BY` or `HAVING` is replaced by its
//!    expression when no column has that name; a bare column next to
//!    aggregates becomes `first_value(column)` (ordered by the argument of a
//!    lone `min`/`max`, which is the row SQLite picks); a number used as a
//!    condition is compared with zero.
//! 3. **Expressions**: `LIKE` ignores ASCII case unless told otherwise,
//!    `REGEXP` becomes `regexp_like`, arithmetic reads text operands as
//!    numbers, SQLite's function names and shapes (`ifnull`, `iif`, scalar
//!    `min`/`max`, `group_concat`) become DataFusion's, and a scalar subquery
//!    returning a plain column keeps its first row.
//!
//! What cannot be made to work is refused with an error naming the construct.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, GroupByExpr, Ident, Join, JoinConstraint, JoinOperator, ObjectName,
    OrderByKind, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    TableFactor, TableWithJoins, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::SQLiteDialect;
use datafusion::sql::sqlparser::parser::Parser;
use sluice_schemas::{ColumnOrigin, TableDef};

use super::functions::{NUMERIC_HELPER, TRUTHY_HELPER};
use super::like::LIKE_FUNCTION;

/// Table functions that only generate numbers and read nothing.
const ALLOWED_TABLE_FUNCTIONS: [&str; 2] = ["range", "generate_series"];

/// Aggregate functions the rewriter knows besides the session's own.
const EXTRA_AGGREGATES: [&str; 2] = ["group_concat", "total"];

/// How a statement is rewritten.
#[derive(Debug, Clone)]
pub struct RewriteOptions {
    /// `LIKE` compares ASCII letters case-sensitively (SQLite's
    /// `PRAGMA case_sensitive_like = ON`).
    pub case_sensitive_like: bool,
    /// The aggregate functions of the session, lower-case.
    pub aggregates: HashSet<String>,
}

/// Rewrites a parsed statement in place. Only queries (and the query of an
/// `EXPLAIN`) are touched; other statements are left for the read-only check.
pub fn rewrite_statement(
    statement: &mut Statement,
    options: &RewriteOptions,
) -> Result<(), String> {
    match statement {
        Statement::Query(query) => rewrite_query(query, options),
        Statement::Explain { statement, .. } => rewrite_statement(statement, options),
        _ => Ok(()),
    }
}

/// Rewrites one top-level query: the three passes of the module docs.
pub fn rewrite_query(query: &mut Query, options: &RewriteOptions) -> Result<(), String> {
    let names = collect_names(query);
    quoted_words_to_literals(query, &names.known);

    let mut scopes = ScopePass {
        options,
        ctes: names.ctes,
        error: None,
    };
    let _ = query.visit(&mut scopes);
    if let Some(error) = scopes.error {
        return Err(error);
    }

    let mut expressions = ExpressionPass {
        options,
        error: None,
    };
    let _ = query.visit(&mut expressions);
    match expressions.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Parses one expression written in SQLite syntax. The rewriter builds its
/// replacements as text, which sqlparser's `Display` makes exact.
fn parse_expr(sql: &str) -> Result<Expr, String> {
    Parser::new(&SQLiteDialect {})
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| format!("internal rewrite error on `{sql}`: {e}"))
}

fn function_name(function: &Function) -> String {
    function
        .name
        .0
        .last()
        .map(|part| {
            part.to_string()
                .trim_matches(['"', '`'])
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn argument_exprs(function: &Function) -> Vec<&Expr> {
    match &function.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn argument_count(function: &Function) -> usize {
    match &function.args {
        FunctionArguments::List(list) => list.args.len(),
        _ => 0,
    }
}

/// Whether `function` is an aggregate call (not a window, not SQLite's
/// two-or-more-argument scalar `min`/`max`).
fn is_aggregate(function: &Function, options: &RewriteOptions) -> bool {
    let name = function_name(function);
    if function.over.is_some() {
        return false;
    }
    if (name == "min" || name == "max") && argument_count(function) >= 2 {
        return false;
    }
    options.aggregates.contains(&name) || EXTRA_AGGREGATES.contains(&name.as_str())
}

fn last_object_part(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|part| {
            part.to_string()
                .trim_matches(['"', '`', '[', ']'])
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Pass 1: names

/// Every name a statement defines or reads, for telling a quoted column from
/// a quoted string.
struct Names {
    /// Lower-case columns of referenced tables, aliases, table and CTE names.
    known: HashSet<String>,
    /// Lower-case CTE name to its output column names.
    ctes: HashMap<String, Vec<String>>,
}

fn collect_names(query: &mut Query) -> Names {
    struct Collector {
        names: Names,
    }
    impl VisitorMut for Collector {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    let name = cte.alias.name.value.to_ascii_lowercase();
                    let mut columns: Vec<String> = cte
                        .alias
                        .columns
                        .iter()
                        .map(|c| c.name.value.to_ascii_lowercase())
                        .collect();
                    if columns.is_empty() {
                        columns = output_names(&cte.query, &self.names.ctes);
                    }
                    self.names.known.insert(name.clone());
                    self.names.known.extend(columns.iter().cloned());
                    self.names.ctes.insert(name, columns);
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
            for item in &select.projection {
                if let SelectItem::ExprWithAlias { alias, .. } = item {
                    self.names.known.insert(alias.value.to_ascii_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let alias = match factor {
                TableFactor::Table { name, alias, .. } => {
                    let table = last_object_part(name);
                    if let Some(def) = sluice_schemas::table(&table) {
                        self.names
                            .known
                            .extend(def.columns.iter().map(|c| c.name.to_string()));
                    }
                    self.names.known.insert(table);
                    alias
                }
                TableFactor::Derived { alias, .. } | TableFactor::NestedJoin { alias, .. } => alias,
                _ => return ControlFlow::Continue(()),
            };
            if let Some(alias) = alias {
                self.names
                    .known
                    .insert(alias.name.value.to_ascii_lowercase());
                for column in &alias.columns {
                    self.names
                        .known
                        .insert(column.name.value.to_ascii_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut collector = Collector {
        names: Names {
            known: HashSet::new(),
            ctes: HashMap::new(),
        },
    };
    let _ = query.visit(&mut collector);
    collector.names
}

/// The output column names of a query, lower-case, as far as the text tells.
fn output_names(query: &Query, ctes: &HashMap<String, Vec<String>>) -> Vec<String> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(inner) => body = &inner.body,
            _ => break,
        }
    }
    let SetExpr::Select(select) = body else {
        return Vec::new();
    };
    let sources = sources_of(&select.from, ctes);
    let mut names = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                names.push(ident.value.to_ascii_lowercase())
            }
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                names.extend(parts.last().map(|i| i.value.to_ascii_lowercase()))
            }
            SelectItem::UnnamedExpr(expr) => names.push(expr.to_string().to_ascii_lowercase()),
            SelectItem::ExprWithAlias { alias, .. } => names.push(alias.value.to_ascii_lowercase()),
            SelectItem::ExprWithAliases { aliases, .. } => {
                names.extend(aliases.iter().map(|a| a.value.to_ascii_lowercase()))
            }
            SelectItem::Wildcard(_) => {
                for source in &sources {
                    names.extend(source.star_columns());
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let qualifier = match kind {
                    SelectItemQualifiedWildcardKind::ObjectName(name) => last_object_part(name),
                    SelectItemQualifiedWildcardKind::Expr(expr) => expr.to_string(),
                };
                for source in sources.iter().filter(|s| s.qualifier == qualifier) {
                    names.extend(source.star_columns());
                }
            }
        }
    }
    names
}

/// `"word"` → `'word'` when nothing in the statement is called `word`.
fn quoted_words_to_literals(query: &mut Query, known: &HashSet<String>) {
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(query, |expr| {
        if let Expr::Identifier(ident) = expr
            && ident.quote_style == Some('"')
            && !known.contains(&ident.value.to_ascii_lowercase())
        {
            *expr = Expr::Value(Value::SingleQuotedString(ident.value.clone()).into());
        }
        ControlFlow::<()>::Continue(())
    });
}

// ---------------------------------------------------------------------------
// Pass 2: scopes

/// A relation in a `FROM` clause.
struct Source {
    /// The name a column is qualified with: the alias, else the table name.
    qualifier: String,
    kind: SourceKind,
}

enum SourceKind {
    /// One of sluice's tables.
    Table(&'static TableDef),
    /// A CTE or subquery with these output columns.
    Derived(Vec<String>),
    /// Something whose columns the rewriter cannot tell (a table function).
    Opaque,
}

impl Source {
    /// The columns `*` stands for: osquery's visible columns for a sluice
    /// table, every column otherwise.
    fn star_columns(&self) -> Vec<String> {
        match &self.kind {
            SourceKind::Table(def) => visible_columns(def).map(str::to_string).collect(),
            SourceKind::Derived(columns) => columns.clone(),
            SourceKind::Opaque => Vec::new(),
        }
    }

    fn has_column(&self, name: &str) -> bool {
        match &self.kind {
            SourceKind::Table(def) => def.column_index(name).is_some(),
            SourceKind::Derived(columns) => columns.iter().any(|c| c == name),
            SourceKind::Opaque => false,
        }
    }
}

/// osquery's `SELECT *` columns of a table: not hidden, not sluice's own.
pub fn visible_columns(def: &TableDef) -> impl Iterator<Item = &'static str> {
    def.columns
        .iter()
        .filter(|c| {
            matches!(
                c.origin,
                ColumnOrigin::Osquery | ColumnOrigin::OsqueryAdditional
            )
        })
        .map(|c| c.name)
}

fn sources_of(from: &[TableWithJoins], ctes: &HashMap<String, Vec<String>>) -> Vec<Source> {
    let mut sources = Vec::new();
    fn visit(factor: &TableFactor, ctes: &HashMap<String, Vec<String>>, sources: &mut Vec<Source>) {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let table = last_object_part(name);
                let qualifier = alias
                    .as_ref()
                    .map_or_else(|| table.clone(), |a| a.name.value.to_ascii_lowercase());
                let kind = if args.is_some() {
                    SourceKind::Opaque
                } else if let Some(columns) = ctes.get(&table) {
                    SourceKind::Derived(columns.clone())
                } else if let Some(def) = sluice_schemas::table(&table) {
                    SourceKind::Table(def)
                } else {
                    SourceKind::Opaque
                };
                sources.push(Source { qualifier, kind });
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => sources.push(Source {
                qualifier: alias
                    .as_ref()
                    .map(|a| a.name.value.to_ascii_lowercase())
                    .unwrap_or_default(),
                kind: SourceKind::Derived(output_names(subquery, ctes)),
            }),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                visit(&table_with_joins.relation, ctes, sources);
                for join in &table_with_joins.joins {
                    visit(&join.relation, ctes, sources);
                }
            }
            _ => sources.push(Source {
                qualifier: String::new(),
                kind: SourceKind::Opaque,
            }),
        }
    }
    for item in from {
        visit(&item.relation, ctes, &mut sources);
        for join in &item.joins {
            visit(&join.relation, ctes, &mut sources);
        }
    }
    sources
}

struct ScopePass<'a> {
    options: &'a RewriteOptions,
    ctes: HashMap<String, Vec<String>>,
    error: Option<String>,
}

impl VisitorMut for ScopePass<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
        {
            let function = last_object_part(name);
            if !ALLOWED_TABLE_FUNCTIONS.contains(&function.as_str()) {
                self.error = Some(format!(
                    "refused: table function {function}() is not available; sluice's SQL reads only its own tables"
                ));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        if let Err(error) = self.rewrite_select(select) {
            self.error = Some(error);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Err(error) = self.rewrite_order_by(query) {
            self.error = Some(error);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl ScopePass<'_> {
    fn rewrite_select(&mut self, select: &mut Select) -> Result<(), String> {
        if select.into.is_some() {
            return Err("refused: SELECT … INTO writes a table; sluice's SQL is read-only".into());
        }
        fold_comma_joins(select);
        let sources = sources_of(&select.from, &self.ctes);
        expand_wildcards(select, &sources);
        substitute_aliases(select, &sources)?;
        wrap_bare_columns_in_select(select, self.options)?;
        if let Some(selection) = &mut select.selection {
            as_condition(selection)?;
        }
        if let Some(having) = &mut select.having {
            as_condition(having)?;
        }
        for item in &mut select.from {
            for join in &mut item.joins {
                if let Some(JoinConstraint::On(on)) = join_constraint_mut(&mut join.join_operator) {
                    as_condition(on)?;
                }
            }
        }
        Ok(())
    }

    /// ORDER BY of an aggregate query: bare columns (not aliases, not
    /// positions) become `first_value`, as in the projection.
    fn rewrite_order_by(&mut self, query: &mut Query) -> Result<(), String> {
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Ok(());
        };
        let Some(order_by) = &mut query.order_by else {
            return Ok(());
        };
        let OrderByKind::Expressions(items) = &mut order_by.kind else {
            return Ok(());
        };
        let Some(grouping) = Grouping::of(select, self.options) else {
            return Ok(());
        };
        let aliases: HashSet<String> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        for item in items {
            if let Expr::Identifier(ident) = &item.expr
                && aliases.contains(&ident.value.to_ascii_lowercase())
            {
                continue;
            }
            grouping.wrap_bare_columns(&mut item.expr, self.options)?;
        }
        Ok(())
    }
}

fn join_constraint_mut(operator: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c) => Some(c),
        _ => None,
    }
}

/// `FROM a, b JOIN c ON c.x = a.y`: SQLite joins left to right, so `c`'s
/// condition may name `a`. DataFusion plans each comma item on its own, so
/// the items become one chain `a CROSS JOIN b JOIN c ON …`; the optimizer
/// still turns the cross join plus conditions into an equi-join.
fn fold_comma_joins(select: &mut Select) {
    if select.from.len() < 2 || select.from.iter().all(|item| item.joins.is_empty()) {
        return;
    }
    let mut items = std::mem::take(&mut select.from).into_iter();
    let Some(mut chain) = items.next() else {
        return;
    };
    for item in items {
        chain.joins.push(Join {
            relation: item.relation,
            global: false,
            join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
        });
        chain.joins.extend(item.joins);
    }
    select.from = vec![chain];
}

/// `*` and `t.*` over sluice tables become osquery's visible columns.
fn expand_wildcards(select: &mut Select, sources: &[Source]) {
    let expandable = |source: &Source| matches!(source.kind, SourceKind::Table(_));
    if !select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    }) || !sources.iter().any(expandable)
    {
        return;
    }
    let qualify = sources.len() > 1;
    let columns_of = |source: &Source| -> Vec<SelectItem> {
        source
            .star_columns()
            .into_iter()
            .map(|column| {
                let column = Ident::new(column);
                let expr = if qualify {
                    Expr::CompoundIdentifier(vec![Ident::new(source.qualifier.clone()), column])
                } else {
                    Expr::Identifier(column)
                };
                SelectItem::UnnamedExpr(expr)
            })
            .collect()
    };
    let mut projection = Vec::with_capacity(select.projection.len());
    for item in std::mem::take(&mut select.projection) {
        match item {
            SelectItem::Wildcard(options)
                if sources
                    .iter()
                    .all(|s| !s.qualifier.is_empty() || expandable(s))
                    && options.opt_exclude.is_none()
                    && options.opt_except.is_none()
                    && options.opt_replace.is_none()
                    && options.opt_rename.is_none()
                    && options.opt_ilike.is_none() =>
            {
                for source in sources {
                    if expandable(source) {
                        projection.extend(columns_of(source));
                    } else {
                        projection.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![
                                Ident::new(source.qualifier.clone()),
                            ])),
                            options.clone(),
                        ));
                    }
                }
            }
            SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                options,
            ) if options.opt_exclude.is_none() => {
                let qualifier = last_object_part(&name);
                match sources
                    .iter()
                    .find(|s| s.qualifier == qualifier && expandable(s))
                {
                    Some(source) => {
                        projection.extend(source.star_columns().into_iter().map(|column| {
                            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                                Ident::new(source.qualifier.clone()),
                                Ident::new(column),
                            ]))
                        }))
                    }
                    None => projection.push(SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(name),
                        options,
                    )),
                }
            }
            other => projection.push(other),
        }
    }
    select.projection = projection;
}

/// Runs `f` on every expression of `expr` that is not inside a subquery,
/// children before parents.
fn for_each_in_scope(
    expr: &mut Expr,
    f: impl FnMut(&mut Expr) -> Result<(), String>,
) -> Result<(), String> {
    struct InScope<F> {
        depth: usize,
        f: F,
    }
    impl<F: FnMut(&mut Expr) -> Result<(), String>> VisitorMut for InScope<F> {
        type Break = String;
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<String> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<String> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<String> {
            if self.depth == 0
                && let Err(e) = (self.f)(expr)
            {
                return ControlFlow::Break(e);
            }
            ControlFlow::Continue(())
        }
    }
    match expr.visit(&mut InScope { depth: 0, f }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// A `SELECT` alias named in `WHERE`, `GROUP BY` or `HAVING` stands for its
/// expression, unless a column of the `FROM` clause has that name (SQLite
/// looks at columns first).
fn substitute_aliases(select: &mut Select, sources: &[Source]) -> Result<(), String> {
    let aliases: HashMap<String, Expr> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => {
                let name = alias.value.to_ascii_lowercase();
                (!sources.iter().any(|s| s.has_column(&name))).then(|| (name, expr.clone()))
            }
            _ => None,
        })
        .collect();
    if aliases.is_empty() {
        return Ok(());
    }
    let replace = |expr: &mut Expr| -> Result<(), String> {
        if let Expr::Identifier(ident) = expr
            && let Some(replacement) = aliases.get(&ident.value.to_ascii_lowercase())
        {
            *expr = Expr::Nested(Box::new(replacement.clone()));
        }
        Ok(())
    };
    if let Some(selection) = &mut select.selection {
        for_each_in_scope(selection, replace)?;
    }
    if let Some(having) = &mut select.having {
        for_each_in_scope(having, replace)?;
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        for expr in exprs {
            // `GROUP BY alias` is also DataFusion's own; replacing keeps one rule.
            for_each_in_scope(expr, replace)?;
        }
    }
    Ok(())
}

/// What an aggregate `SELECT` groups by, for finding its bare columns.
struct Grouping {
    /// The GROUP BY expressions, as lower-case text.
    keys: HashSet<String>,
    /// The last part of GROUP BY column names (`e.pid` and `pid` match).
    key_columns: HashSet<String>,
    /// `Some((argument, descending))` when the only aggregate is `min`/`max`.
    min_max: Option<(String, bool)>,
}

impl Grouping {
    /// `None` when `select` does not aggregate.
    fn of(select: &Select, options: &RewriteOptions) -> Option<Self> {
        let group_exprs: Vec<&Expr> = match &select.group_by {
            GroupByExpr::Expressions(exprs, _) => exprs.iter().collect(),
            GroupByExpr::All(_) => return None,
        };
        let mut aggregates = Vec::new();
        for item in &select.projection {
            if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
                collect_aggregates(expr, options, &mut aggregates);
            }
        }
        if let Some(having) = &select.having {
            collect_aggregates(having, options, &mut aggregates);
        }
        if group_exprs.is_empty() && aggregates.is_empty() {
            return None;
        }
        let min_max = match aggregates.as_slice() {
            [(name, argument)] if name == "min" || name == "max" => {
                argument.clone().map(|a| (a, name == "max"))
            }
            _ => None,
        };
        let mut key_columns = HashSet::new();
        for expr in &group_exprs {
            match expr {
                Expr::Identifier(i) => {
                    key_columns.insert(i.value.to_ascii_lowercase());
                }
                Expr::CompoundIdentifier(parts) => {
                    key_columns.extend(parts.last().map(|i| i.value.to_ascii_lowercase()));
                }
                _ => {}
            }
        }
        // A GROUP BY on an alias or position groups by that projection item.
        let mut keys: HashSet<String> = group_exprs
            .iter()
            .map(|e| e.to_string().to_ascii_lowercase())
            .collect();
        for (position, item) in select.projection.iter().enumerate() {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(expr) => (expr, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                _ => continue,
            };
            let by_alias = alias.is_some_and(|a| keys.contains(&a.value.to_ascii_lowercase()));
            let by_position = keys.contains(&(position + 1).to_string());
            if by_alias || by_position {
                keys.insert(expr.to_string().to_ascii_lowercase());
            }
        }
        Some(Self {
            keys,
            key_columns,
            min_max,
        })
    }

    fn is_key(&self, expr: &Expr) -> bool {
        if self.keys.contains(&expr.to_string().to_ascii_lowercase()) {
            return true;
        }
        match expr {
            Expr::Identifier(i) => self.key_columns.contains(&i.value.to_ascii_lowercase()),
            Expr::CompoundIdentifier(parts) => parts
                .last()
                .is_some_and(|i| self.key_columns.contains(&i.value.to_ascii_lowercase())),
            _ => false,
        }
    }

    /// Wraps every column of `expr` that is neither grouped on nor inside an
    /// aggregate in `first_value(…)`.
    fn wrap_bare_columns(&self, expr: &mut Expr, options: &RewriteOptions) -> Result<(), String> {
        struct Wrapper<'a> {
            grouping: &'a Grouping,
            options: &'a RewriteOptions,
            /// Nodes (by address) under which nothing is wrapped.
            shielded: Vec<*const Expr>,
            depth: usize,
            error: Option<String>,
        }
        impl VisitorMut for Wrapper<'_> {
            type Break = ();
            fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
                self.depth += 1;
                ControlFlow::Continue(())
            }
            fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
                self.depth -= 1;
                ControlFlow::Continue(())
            }
            fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                if self.depth > 0 {
                    return ControlFlow::Continue(());
                }
                let shield = match &*expr {
                    Expr::Function(f) => is_aggregate(f, self.options) || f.over.is_some(),
                    other => self.grouping.is_key(other),
                };
                if shield {
                    self.shielded.push(expr as *const Expr);
                }
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                if self.depth > 0 {
                    return ControlFlow::Continue(());
                }
                if self.shielded.last() == Some(&(expr as *const Expr)) {
                    self.shielded.pop();
                    return ControlFlow::Continue(());
                }
                if !self.shielded.is_empty()
                    || !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                {
                    return ControlFlow::Continue(());
                }
                let order = match &self.grouping.min_max {
                    Some((argument, true)) => format!(" ORDER BY {argument} DESC NULLS LAST"),
                    Some((argument, false)) => format!(" ORDER BY {argument} ASC NULLS LAST"),
                    None => String::new(),
                };
                match parse_expr(&format!("first_value({expr}{order})")) {
                    Ok(wrapped) => *expr = wrapped,
                    Err(e) => {
                        self.error = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut wrapper = Wrapper {
            grouping: self,
            options,
            shielded: Vec::new(),
            depth: 0,
            error: None,
        };
        let _ = expr.visit(&mut wrapper);
        match wrapper.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The aggregate calls in `expr` outside subqueries: name and, for one
/// argument, its text.
fn collect_aggregates(
    expr: &Expr,
    options: &RewriteOptions,
    out: &mut Vec<(String, Option<String>)>,
) {
    let mut expr = expr.clone();
    let _ = for_each_in_scope(&mut expr, |e| {
        if let Expr::Function(f) = e
            && is_aggregate(f, options)
        {
            let args = argument_exprs(f);
            let argument = (args.len() == 1).then(|| args[0].to_string());
            out.push((function_name(f), argument));
        }
        Ok(())
    });
}

fn wrap_bare_columns_in_select(
    select: &mut Select,
    options: &RewriteOptions,
) -> Result<(), String> {
    let Some(grouping) = Grouping::of(select, options) else {
        return Ok(());
    };
    for item in &mut select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                // A wrapped bare column keeps its own name on the result.
                let name = match expr {
                    Expr::Identifier(ident) => Some(ident.value.clone()),
                    Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
                    _ => None,
                };
                grouping.wrap_bare_columns(expr, options)?;
                if let Some(name) = name
                    && matches!(expr, Expr::Function(_))
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new(name),
                    };
                }
            }
            SelectItem::ExprWithAlias { expr, .. } => grouping.wrap_bare_columns(expr, options)?,
            _ => {}
        }
    }
    if let Some(having) = &mut select.having {
        grouping.wrap_bare_columns(having, options)?;
    }
    Ok(())
}

/// Whether an expression is a condition already (a comparison, `AND`,
/// `LIKE`…), as opposed to a value SQLite would test against zero.
fn is_boolean(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryOp { op, .. } => matches!(
            op,
            BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::And
                | BinaryOperator::Or
                | BinaryOperator::Xor
                | BinaryOperator::Regexp
                | BinaryOperator::Spaceship
        ),
        Expr::Nested(inner) => is_boolean(inner),
        Expr::Value(v) => matches!(v.value, Value::Boolean(_)),
        Expr::UnaryOp { op, .. } => {
            matches!(op, datafusion::sql::sqlparser::ast::UnaryOperator::Not)
        }
        Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::RLike { .. }
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::InUnnest { .. }
        | Expr::Between { .. }
        | Expr::Exists { .. } => true,
        Expr::Function(f) => function_name(f) == LIKE_FUNCTION,
        _ => false,
    }
}

/// Makes `expr` a condition the way SQLite reads one: `AND`/`OR`/`NOT`
/// operands too, and a value is true when it is a non-zero number.
fn as_condition(expr: &mut Expr) -> Result<(), String> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And | BinaryOperator::Or,
            right,
        } => {
            as_condition(left)?;
            as_condition(right)
        }
        Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
            expr: inner,
        } => as_condition(inner),
        Expr::Nested(inner) => as_condition(inner),
        e if is_boolean(e) => Ok(()),
        e => {
            *e = parse_expr(&format!("{TRUTHY_HELPER}({e})"))?;
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Pass 3: expressions

struct ExpressionPass<'a> {
    options: &'a RewriteOptions,
    error: Option<String>,
}

impl VisitorMut for ExpressionPass<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Err(error) = self.rewrite(expr) {
            self.error = Some(error);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

fn is_number_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Value(v) => matches!(v.value, Value::Number(..)),
        Expr::UnaryOp { expr, .. } => is_number_literal(expr),
        Expr::Nested(inner) => is_number_literal(inner),
        _ => false,
    }
}

/// An arithmetic operand as SQLite reads it: a text literal becomes its
/// number, `strftime('%s', …)` an integer, anything else passes through
/// [`NUMERIC_HELPER`] (which disappears for numeric operands).
fn numeric_operand(expr: &Expr) -> Result<Option<Expr>, String> {
    if is_number_literal(expr) {
        return Ok(None);
    }
    if let Expr::Value(v) = expr
        && let Value::SingleQuotedString(text) = &v.value
    {
        let number = match super::functions::text_to_real(text) {
            Some((value, true)) => format!("{}", value as i64),
            Some((value, false)) => format!("{value:?}"),
            None => "0".to_string(),
        };
        return parse_expr(&number).map(Some);
    }
    if let Expr::Function(f) = expr
        && function_name(f) == "strftime"
        && argument_exprs(f).first().is_some_and(|first| {
            matches!(first, Expr::Value(v) if matches!(&v.value, Value::SingleQuotedString(s) if s == "%s"))
        })
    {
        return parse_expr(&format!("CAST({expr} AS BIGINT)")).map(Some);
    }
    if let Expr::Function(f) = expr
        && function_name(f) == NUMERIC_HELPER
    {
        return Ok(None);
    }
    parse_expr(&format!("{NUMERIC_HELPER}({expr})")).map(Some)
}

impl ExpressionPass<'_> {
    fn rewrite(&mut self, expr: &mut Expr) -> Result<(), String> {
        match expr {
            Expr::Like {
                negated,
                any: false,
                expr: subject,
                pattern,
                escape_char,
            } => {
                // SQLite's rules (ASCII-only folding, no default escape):
                // see `sql::like`.
                let escape = match escape_char {
                    Some(escape) => format!(", {escape}"),
                    None => String::new(),
                };
                let call = format!(
                    "{LIKE_FUNCTION}({subject}, {pattern}, {}{escape})",
                    self.options.case_sensitive_like
                );
                *expr = if *negated {
                    parse_expr(&format!("(NOT {call})"))?
                } else {
                    parse_expr(&call)?
                };
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Regexp,
                right,
            } => {
                *expr = parse_expr(&format!("regexp_like({left}, {right})"))?;
            }
            Expr::BinaryOp {
                op: BinaryOperator::Match,
                ..
            } => {
                return Err(
                    "unsupported SQL: the MATCH operator (full-text search) is not available"
                        .into(),
                );
            }
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide
                    | BinaryOperator::Modulo,
                right,
            } => {
                if let Some(new_left) = numeric_operand(left)? {
                    **left = new_left;
                }
                if let Some(new_right) = numeric_operand(right)? {
                    **right = new_right;
                }
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::StringConcat,
                right,
            } => {
                // SQLite's `||` renders numbers as text.
                for side in [left, right] {
                    if !matches!(side.as_ref(), Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
                        && !matches!(
                            side.as_ref(),
                            Expr::BinaryOp {
                                op: BinaryOperator::StringConcat,
                                ..
                            }
                        )
                        && !matches!(side.as_ref(), Expr::Cast { .. })
                    {
                        **side = parse_expr(&format!("CAST({side} AS VARCHAR)"))?;
                    }
                }
            }
            Expr::Case {
                operand: None,
                conditions,
                ..
            } => {
                for CaseWhen { condition, .. } in conditions {
                    as_condition(condition)?;
                }
            }
            Expr::Subquery(query) => first_row_of_scalar_subquery(query)?,
            Expr::Substring {
                expr: subject,
                substring_from,
                substring_for,
                ..
            } => {
                // sqlparser reads `substr(…)` as SUBSTRING, which DataFusion
                // plans as its own (PostgreSQL) substr; SQLite's is a call.
                let mut args = vec![subject.to_string()];
                args.extend(substring_from.as_ref().map(|e| e.to_string()));
                args.extend(substring_for.as_ref().map(|e| e.to_string()));
                let mut call = parse_expr(&format!("sluice_call({})", args.join(", ")))?;
                if let Expr::Function(function) = &mut call {
                    function.name = ObjectName::from(vec![Ident::new("substr")]);
                }
                *expr = call;
            }
            Expr::Function(function) => {
                if let Some(replacement) = self.rewrite_function(function)? {
                    *expr = replacement;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn rewrite_function(&mut self, function: &mut Function) -> Result<Option<Expr>, String> {
        let name = function_name(function);
        let args: Vec<String> = argument_exprs(function)
            .iter()
            .map(|a| a.to_string())
            .collect();
        let plain_args = argument_count(function) == args.len();
        let replacement = match name.as_str() {
            "ifnull" if plain_args && args.len() == 2 => {
                format!("coalesce({}, {})", args[0], args[1])
            }
            "iif" if plain_args && args.len() == 3 => {
                let mut condition = parse_expr(&args[0])?;
                as_condition(&mut condition)?;
                format!(
                    "CASE WHEN {condition} THEN {} ELSE {} END",
                    args[1], args[2]
                )
            }
            "min" | "max" if plain_args && args.len() >= 2 && function.over.is_none() => {
                // SQLite's scalar min/max are NULL when any argument is.
                let any_null = args
                    .iter()
                    .map(|a| format!("({a}) IS NULL"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let pick = if name == "min" { "least" } else { "greatest" };
                format!(
                    "CASE WHEN {any_null} THEN NULL ELSE {pick}({}) END",
                    args.join(", ")
                )
            }
            "group_concat" => {
                let FunctionArguments::List(list) = &mut function.args else {
                    return Err("group_concat() needs an argument".into());
                };
                let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) =
                    list.args.first_mut()
                else {
                    return Err("group_concat() needs an argument".into());
                };
                let original = first.to_string();
                *first = parse_expr(&format!("CAST({first} AS VARCHAR)"))?;
                let cast = first.clone();
                // DataFusion wants a DISTINCT aggregate's ORDER BY to be its
                // argument, so ordering by the argument orders by the cast.
                for clause in &mut list.clauses {
                    if let FunctionArgumentClause::OrderBy(items) = clause {
                        for item in items {
                            if item.expr.to_string() == original {
                                item.expr = cast.clone();
                            }
                        }
                    }
                }
                if list.args.len() == 1 {
                    list.args
                        .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(parse_expr(
                            "','",
                        )?)));
                }
                function.name = ObjectName::from(vec![Ident::new("string_agg")]);
                return Ok(None);
            }
            "glob" => {
                return Err("unsupported SQL: GLOB; use LIKE or regex_match()".into());
            }
            _ => return Ok(None),
        };
        parse_expr(&replacement).map(Some)
    }
}

/// `(SELECT path FROM t WHERE …)`: SQLite answers with the first row.
/// DataFusion insists a correlated scalar subquery aggregate, so a single
/// plain column becomes `first_value(column ORDER BY …)`.
fn first_row_of_scalar_subquery(query: &mut Query) -> Result<(), String> {
    let limit_is_one_or_none = match &query.limit_clause {
        None => true,
        Some(limit) => limit.to_string().trim().eq_ignore_ascii_case("LIMIT 1"),
    };
    if !limit_is_one_or_none || query.with.is_some() {
        return Ok(());
    }
    let order = match &query.order_by {
        Some(order_by) => match &order_by.kind {
            OrderByKind::Expressions(items) if !items.is_empty() => format!(
                " ORDER BY {}",
                items
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        },
        None => String::new(),
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Ok(());
    };
    if select.distinct.is_some()
        || select.projection.len() != 1
        || select.having.is_some()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return Ok(());
    }
    let (expr, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return Ok(()),
    };
    let mut aggregates = false;
    let mut probe = expr.clone();
    let _ = for_each_in_scope(&mut probe, |e| {
        if matches!(e, Expr::Function(f) if f.over.is_none() && matches!(function_name(f).as_str(),
            "count" | "sum" | "avg" | "min" | "max" | "total" | "group_concat" | "string_agg" | "first_value" | "last_value" | "array_agg"))
        {
            aggregates = true;
        }
        Ok(())
    });
    if aggregates {
        return Ok(());
    }
    let wrapped = parse_expr(&format!("first_value({expr}{order})"))?;
    select.projection[0] = match alias {
        Some(alias) => SelectItem::ExprWithAlias {
            expr: wrapped,
            alias,
        },
        None => SelectItem::UnnamedExpr(wrapped),
    };
    query.order_by = None;
    query.limit_clause = None;
    Ok(())
}
