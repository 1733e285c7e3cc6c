//! The SQLite and osquery functions sluice adds to DataFusion.
//!
//! A query pasted from osquery calls SQLite's built-ins (`strftime`,
//! `printf`, SQLite's `substr`…) and osquery's own extensions (`regex_match`,
//! `split`, `sha256`, `community_id_v1`…). DataFusion has none of these, or
//! has a namesake that behaves differently, so each is registered here as a
//! scalar UDF that follows SQLite's rules: arguments of any type are read the
//! way SQLite reads them (a number where text is wanted becomes its text, text
//! where a number is wanted becomes its numeric prefix), and anything SQLite
//! would answer with NULL (a bad date, a missing regex group) is NULL.
//!
//! Two helper functions are not meant to be called by hand; the rewriter
//! inserts them: `sqlite_numeric(x)` gives text operands of arithmetic
//! SQLite's numeric value (so `strftime('%s','now') - 600` is a number), and
//! `sqlite_truthy(x)` turns a number into a condition (so `iif(uid, …)` and
//! `WHERE platform_binary` work).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray,
    StringBuilder,
};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::codec;
use super::datetime::{self, TimeArg};

/// Registers every function of this module with `ctx`, replacing
/// DataFusion's `substr` with SQLite's.
pub fn register_functions(ctx: &SessionContext) {
    for function in row_functions() {
        ctx.register_udf(ScalarUDF::new_from_impl(function));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(SqliteNumeric::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(SqliteTruthy::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(super::like::SqliteLike::new()));
}

/// The name of the helper that reads an arithmetic operand as SQLite does.
pub const NUMERIC_HELPER: &str = "sqlite_numeric";
/// The name of the helper that reads a value as a condition.
pub const TRUTHY_HELPER: &str = "sqlite_truthy";

/// One argument value, in SQLite's storage classes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> Val<'a> {
    fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// The value as text, as SQLite's `CAST(x AS TEXT)` gives it.
    pub(super) fn text(&self) -> Option<Cow<'a, str>> {
        match *self {
            Val::Null => None,
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::Real(r) => Some(Cow::Owned(real_to_text(r))),
            Val::Text(t) => Some(Cow::Borrowed(t)),
            Val::Blob(b) => Some(String::from_utf8_lossy(b)),
        }
    }

    /// The value as an integer, text read by its numeric prefix.
    fn int(&self) -> Option<i64> {
        match *self {
            Val::Null => None,
            Val::Int(i) => Some(i),
            Val::Real(r) => Some(r as i64),
            Val::Text(t) => Some(text_to_real(t).map_or(0, |(v, _)| v as i64)),
            Val::Blob(b) => {
                Some(text_to_real(&String::from_utf8_lossy(b)).map_or(0, |(v, _)| v as i64))
            }
        }
    }

    /// The value as a real.
    fn real(&self) -> Option<f64> {
        match *self {
            Val::Null => None,
            Val::Int(i) => Some(i as f64),
            Val::Real(r) => Some(r),
            Val::Text(t) => Some(text_to_real(t).map_or(0.0, |(v, _)| v)),
            Val::Blob(b) => Some(text_to_real(&String::from_utf8_lossy(b)).map_or(0.0, |(v, _)| v)),
        }
    }

    fn time_arg(&self) -> Option<TimeArg<'a>> {
        match *self {
            Val::Int(i) => Some(TimeArg::Int(i)),
            Val::Real(r) => Some(TimeArg::Real(r)),
            Val::Text(t) => Some(TimeArg::Text(t)),
            _ => None,
        }
    }
}

/// A REAL as SQLite prints it (`%!.15g`): `2.0`, `0.1`, `1.5e+20`.
pub(crate) fn real_to_text(value: f64) -> String {
    if value.is_nan() {
        return String::new();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Inf" } else { "-Inf" }.to_string();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.1}");
    }
    let text = format!("{:.14e}", value);
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-5..15).contains(&exponent) {
        let decimals = (14 - exponent).max(0) as usize;
        let mut fixed = format!("{value:.decimals$}");
        if fixed.contains('.') {
            while fixed.ends_with('0') {
                fixed.pop();
            }
            if fixed.ends_with('.') {
                fixed.push('0');
            }
        }
        fixed
    } else {
        let mut mantissa = mantissa.to_string();
        while mantissa.ends_with('0') {
            mantissa.pop();
        }
        if mantissa.ends_with('.') {
            mantissa.push('0');
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// The longest numeric prefix of `text` (after leading spaces), as SQLite
/// reads text in a numeric context, and whether it was an integer.
/// `None` when there is no numeric prefix.
pub(crate) fn text_to_real(text: &str) -> Option<(f64, bool)> {
    let t = text.trim_start();
    let bytes = t.as_bytes();
    let mut end = 0;
    if end < bytes.len() && (bytes[end] == b'+' || bytes[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let mut integer = true;
    if end < bytes.len() && bytes[end] == b'.' {
        integer = false;
        end += 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end == digits_start || (end == digits_start + 1 && !integer) {
        return None;
    }
    if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
        let mut e = end + 1;
        if e < bytes.len() && (bytes[e] == b'+' || bytes[e] == b'-') {
            e += 1;
        }
        if e < bytes.len() && bytes[e].is_ascii_digit() {
            while e < bytes.len() && bytes[e].is_ascii_digit() {
                e += 1;
            }
            end = e;
            integer = false;
        }
    }
    t[..end].parse().ok().map(|v| (v, integer))
}

/// An argument column, converted once to one of the storage classes.
pub(super) enum ArgColumn {
    Null,
    Int(Int64Array),
    Real(Float64Array),
    Text(StringArray),
    Blob(BinaryArray),
}

impl ArgColumn {
    pub(super) fn new(array: &ArrayRef) -> Result<Self> {
        use arrow::compute::cast;
        let column = match array.data_type() {
            DataType::Null => ArgColumn::Null,
            t if t.is_integer() || matches!(t, DataType::Boolean | DataType::Timestamp(..)) => {
                ArgColumn::Int(downcast::<Int64Array>(&cast(array, &DataType::Int64)?)?)
            }
            t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                ArgColumn::Real(downcast::<Float64Array>(&cast(array, &DataType::Float64)?)?)
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                ArgColumn::Blob(downcast::<BinaryArray>(&cast(array, &DataType::Binary)?)?)
            }
            _ => ArgColumn::Text(downcast::<StringArray>(&cast(array, &DataType::Utf8)?)?),
        };
        Ok(column)
    }

    pub(super) fn get(&self, row: usize) -> Val<'_> {
        match self {
            ArgColumn::Null => Val::Null,
            ArgColumn::Int(a) if a.is_valid(row) => Val::Int(a.value(row)),
            ArgColumn::Real(a) if a.is_valid(row) => Val::Real(a.value(row)),
            ArgColumn::Text(a) if a.is_valid(row) => Val::Text(a.value(row)),
            ArgColumn::Blob(a) if a.is_valid(row) => Val::Blob(a.value(row)),
            _ => Val::Null,
        }
    }
}

fn downcast<T: Clone + 'static>(array: &ArrayRef) -> Result<T> {
    match array.as_any().downcast_ref::<T>() {
        Some(a) => Ok(a.clone()),
        None => exec_err!("unexpected array type {}", array.data_type()),
    }
}

/// What a row function needs besides its arguments.
struct RowContext {
    /// The statement's `'now'`, in milliseconds since the epoch.
    now_ms: i64,
    /// Compiled regular expressions, by pattern, for this batch.
    regexes: HashMap<String, Option<regex::Regex>>,
}

impl RowContext {
    fn regex(&mut self, pattern: &str) -> Option<&regex::Regex> {
        self.regexes
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).ok())
            .as_ref()
    }
}

/// What a row function returns.
#[derive(Clone, Copy)]
enum Body {
    Text(fn(&[Val<'_>], &mut RowContext) -> Option<String>),
    Int(fn(&[Val<'_>], &mut RowContext) -> Option<i64>),
}

/// A scalar function computed row by row from SQLite-typed values.
struct RowFunction {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    min_args: usize,
    max_args: usize,
    body: Body,
}

impl std::fmt::Debug for RowFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowFunction")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for RowFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for RowFunction {}
impl Hash for RowFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

fn row_function(
    name: &'static str,
    aliases: &[&str],
    args: std::ops::RangeInclusive<usize>,
    volatility: Volatility,
    body: Body,
) -> RowFunction {
    let mut accepted = Vec::new();
    if *args.start() == 0 {
        accepted.push(TypeSignature::Nullary);
    }
    accepted.push(TypeSignature::VariadicAny);
    RowFunction {
        name,
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        signature: Signature::one_of(accepted, volatility),
        min_args: *args.start(),
        max_args: *args.end(),
        body,
    }
}

impl ScalarUDFImpl for RowFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() < self.min_args || arg_types.len() > self.max_args {
            return plan_err!(
                "wrong number of arguments to function {}(): {} given, {}..={} expected",
                self.name,
                arg_types.len(),
                self.min_args,
                self.max_args
            );
        }
        Ok(match self.body {
            Body::Text(_) => DataType::Utf8,
            Body::Int(_) => DataType::Int64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let columns = arrays
            .iter()
            .map(ArgColumn::new)
            .collect::<Result<Vec<_>>>()?;
        let mut context = RowContext {
            now_ms: now_ms(),
            regexes: HashMap::new(),
        };
        let mut values = Vec::with_capacity(columns.len());
        let result: ArrayRef = match self.body {
            Body::Text(f) => {
                let mut out = StringBuilder::with_capacity(rows, rows * 16);
                for row in 0..rows {
                    values.clear();
                    values.extend(columns.iter().map(|c| c.get(row)));
                    out.append_option(f(&values, &mut context));
                }
                Arc::new(out.finish())
            }
            Body::Int(f) => {
                let mut out = Vec::with_capacity(rows);
                for row in 0..rows {
                    values.clear();
                    values.extend(columns.iter().map(|c| c.get(row)));
                    out.push(f(&values, &mut context));
                }
                Arc::new(Int64Array::from(out))
            }
        };
        Ok(ColumnarValue::Array(result))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn row_functions() -> Vec<RowFunction> {
    use Volatility::{Immutable, Stable};
    vec![
        // Date functions read 'now', which changes between statements.
        row_function(
            "strftime",
            &[],
            1..=usize::MAX,
            Stable,
            Body::Text(strftime),
        ),
        row_function(
            "datetime",
            &[],
            0..=usize::MAX,
            Stable,
            Body::Text(datetime_fn),
        ),
        row_function("date", &[], 0..=usize::MAX, Stable, Body::Text(date_fn)),
        row_function("time", &[], 0..=usize::MAX, Stable, Body::Text(time_fn)),
        row_function(
            "unixepoch",
            &[],
            0..=usize::MAX,
            Stable,
            Body::Int(unixepoch_fn),
        ),
        row_function(
            "printf",
            &["format"],
            1..=usize::MAX,
            Immutable,
            Body::Text(printf),
        ),
        row_function(
            "substr",
            &["substring"],
            2..=3,
            Immutable,
            Body::Text(substr),
        ),
        row_function("instr", &[], 2..=2, Immutable, Body::Int(instr)),
        row_function(
            "regex_match",
            &[],
            3..=3,
            Immutable,
            Body::Text(regex_match),
        ),
        row_function(
            "regex_split",
            &[],
            3..=3,
            Immutable,
            Body::Text(regex_split),
        ),
        row_function("split", &[], 3..=3, Immutable, Body::Text(split)),
        row_function("to_base64", &[], 1..=1, Immutable, Body::Text(to_base64)),
        row_function(
            "from_base64",
            &[],
            1..=1,
            Immutable,
            Body::Text(from_base64),
        ),
        row_function(
            "conditional_to_base64",
            &[],
            1..=1,
            Immutable,
            Body::Text(conditional_to_base64),
        ),
        row_function("sha256", &[], 1..=1, Immutable, Body::Text(sha256)),
        row_function(
            "community_id_v1",
            &[],
            5..=6,
            Immutable,
            Body::Text(community_id),
        ),
    ]
}

/// Reads a date function's time value and modifiers; `None` (NULL) if any is
/// NULL or invalid. With no time value, the time is 'now'.
fn moment(args: &[Val<'_>], context: &RowContext) -> Option<datetime::Moment> {
    let Some((value, modifiers)) = args.split_first() else {
        return datetime::evaluate(TimeArg::Text("now"), &[], context.now_ms);
    };
    let texts: Vec<Cow<'_, str>> = modifiers.iter().map(|m| m.text()).collect::<Option<_>>()?;
    let texts: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
    datetime::evaluate(value.time_arg()?, &texts, context.now_ms)
}

fn strftime(args: &[Val<'_>], context: &mut RowContext) -> Option<String> {
    let format = args[0].text()?;
    let rest = if args.len() == 1 {
        &[Val::Text("now")][..]
    } else {
        &args[1..]
    };
    datetime::strftime(&format, moment(rest, context)?)
}

fn datetime_fn(args: &[Val<'_>], context: &mut RowContext) -> Option<String> {
    moment(args, context).map(datetime::datetime)
}

fn date_fn(args: &[Val<'_>], context: &mut RowContext) -> Option<String> {
    moment(args, context).map(datetime::date)
}

fn time_fn(args: &[Val<'_>], context: &mut RowContext) -> Option<String> {
    moment(args, context).map(datetime::time)
}

fn unixepoch_fn(args: &[Val<'_>], context: &mut RowContext) -> Option<i64> {
    match datetime::unixepoch(moment(args, context)?) {
        datetime::UnixEpoch::Int(i) => Some(i),
        datetime::UnixEpoch::Real(r) => Some(r.floor() as i64),
    }
}

/// SQLite's `substr(X, Y, Z)`: characters from position Y (1-based; negative
/// counts from the end; 0 is just before the first), Z of them (negative
/// means the Z before Y).
fn substr(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    if args.iter().any(Val::is_null) {
        return None;
    }
    let text = args[0].text()?;
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len() as i64;
    // SQLite's func.c substrFunc, step by step.
    let mut p1 = args[1].int()?;
    let mut p2 = match args.get(2) {
        Some(z) => z.int()?,
        None => i64::from(i32::MAX),
    };
    let negative_count = p2 < 0;
    if negative_count {
        p2 = -p2;
    }
    if p1 < 0 {
        p1 += len;
        if p1 < 0 {
            p2 = (p2 + p1).max(0);
            p1 = 0;
        }
    } else if p1 > 0 {
        p1 -= 1;
    } else if p2 > 0 {
        p2 -= 1;
    }
    if negative_count {
        p1 -= p2;
        if p1 < 0 {
            p2 += p1;
            p1 = 0;
        }
    }
    let from = p1.clamp(0, len) as usize;
    let to = p1.saturating_add(p2).clamp(0, len) as usize;
    Some(chars[from..to.max(from)].iter().collect())
}

fn instr(args: &[Val<'_>], _: &mut RowContext) -> Option<i64> {
    let haystack = args[0].text()?;
    let needle = args[1].text()?;
    Some(match haystack.find(needle.as_ref()) {
        Some(byte) => haystack[..byte].chars().count() as i64 + 1,
        None => 0,
    })
}

/// osquery's `regex_match(text, pattern, group)`: the group'th capture of the
/// first match, NULL when nothing matches or the group does not exist.
fn regex_match(args: &[Val<'_>], context: &mut RowContext) -> Option<String> {
    let text = args[0].text()?;
    let pattern = args[1].text()?;
    let group = usize::try_from(args[2].int()?).ok()?;
    let regex = context.regex(&pattern)?;
    let captures = regex.captures(&text)?;
    captures.get(group).map(|m| m.as_str().to_string())
}

/// osquery's `regex_split(text, pattern, index)`: the index'th piece of
/// `text` split on matches of `pattern`.
fn regex_split(args: &[Val<'_>], context: &mut RowContext) -> Option<String> {
    let text = args[0].text()?;
    let pattern = args[1].text()?;
    let index = usize::try_from(args[2].int()?).ok()?;
    let regex = context.regex(&pattern)?;
    regex.split(&text).nth(index).map(str::to_string)
}

/// osquery's `split(text, tokens, index)`: `text` split on any character of
/// `tokens`, empty pieces dropped, the index'th piece.
fn split(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    let text = args[0].text()?;
    let tokens = args[1].text()?;
    let index = usize::try_from(args[2].int()?).ok()?;
    text.split(|c| tokens.contains(c))
        .filter(|piece| !piece.is_empty())
        .nth(index)
        .map(str::to_string)
}

fn bytes_of<'a>(value: &Val<'a>) -> Option<Cow<'a, [u8]>> {
    match *value {
        Val::Blob(b) => Some(Cow::Borrowed(b)),
        Val::Text(t) => Some(Cow::Borrowed(t.as_bytes())),
        other => other
            .text()
            .map(|t| Cow::Owned(t.into_owned().into_bytes())),
    }
}

fn to_base64(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    Some(codec::base64_encode(&bytes_of(&args[0])?))
}

fn from_base64(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    let decoded = codec::base64_decode(args[0].text()?.trim())?;
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

/// osquery's `conditional_to_base64`: Base64 only when the text has a byte
/// that is not printable ASCII.
fn conditional_to_base64(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    let bytes = bytes_of(&args[0])?;
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        Some(codec::base64_encode(&bytes))
    }
}

fn sha256(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    Some(codec::hex(&codec::sha256(&bytes_of(&args[0])?)))
}

fn community_id(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    let port = |v: &Val<'_>| u16::try_from(v.int()?).ok();
    let seed = match args.get(5) {
        Some(v) => port(v)?,
        None => 0,
    };
    codec::community_id_v1(
        &args[0].text()?,
        &args[1].text()?,
        port(&args[2])?,
        port(&args[3])?,
        u8::try_from(args[4].int()?).ok()?,
        seed,
    )
}

/// SQLite's `printf(format, …)`: `%d %i %u %f %e %E %g %G %x %X %o %c %s %z
/// %q %Q %%` with flags, width and precision. Missing arguments read as NULL
/// (0 or empty), as in SQLite.
fn printf(args: &[Val<'_>], _: &mut RowContext) -> Option<String> {
    let format = args[0].text()?;
    let mut next = args[1..].iter().copied();
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut plus = false;
        let mut space = false;
        let mut zero = false;
        let mut alt = false;
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => left = true,
                '+' => plus = true,
                ' ' => space = true,
                '0' => zero = true,
                '#' => alt = true,
                ',' | '!' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = 0usize;
        if chars.peek() == Some(&'*') {
            chars.next();
            width = next
                .next()
                .and_then(|v| v.int())
                .unwrap_or(0)
                .unsigned_abs() as usize;
        }
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = width * 10 + d as usize;
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0usize;
            if chars.peek() == Some(&'*') {
                chars.next();
                p = next.next().and_then(|v| v.int()).unwrap_or(0).max(0) as usize;
            }
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            precision = Some(p);
        }
        // Length modifiers are accepted and ignored.
        while matches!(chars.peek(), Some('l' | 'h')) {
            chars.next();
        }
        let Some(conv) = chars.next() else {
            break;
        };
        let arg = if conv == '%' {
            Val::Null
        } else {
            next.next().unwrap_or(Val::Null)
        };
        let sign = |negative: bool| {
            if negative {
                "-"
            } else if plus {
                "+"
            } else if space {
                " "
            } else {
                ""
            }
        };
        let (body, numeric_sign): (String, &str) = match conv {
            '%' => ("%".to_string(), ""),
            'd' | 'i' | 'u' => {
                let v = arg.int().unwrap_or(0);
                let mut digits = v.unsigned_abs().to_string();
                if let Some(p) = precision {
                    while digits.len() < p {
                        digits.insert(0, '0');
                    }
                }
                (digits, sign(v < 0))
            }
            'x' | 'X' | 'o' => {
                let v = arg.int().unwrap_or(0) as u64;
                let mut digits = match conv {
                    'x' => format!("{v:x}"),
                    'X' => format!("{v:X}"),
                    _ => format!("{v:o}"),
                };
                if let Some(p) = precision {
                    while digits.len() < p {
                        digits.insert(0, '0');
                    }
                }
                if alt && v != 0 {
                    digits.insert_str(
                        0,
                        match conv {
                            'x' => "0x",
                            'X' => "0X",
                            _ => "0",
                        },
                    );
                }
                (digits, "")
            }
            'f' | 'F' => {
                let v = arg.real().unwrap_or(0.0);
                let p = precision.unwrap_or(6);
                (
                    format!("{:.p$}", v.abs()),
                    sign(v.is_sign_negative() && v != 0.0),
                )
            }
            'e' | 'E' => {
                let v = arg.real().unwrap_or(0.0);
                let text = exponent_form(v.abs(), precision.unwrap_or(6), conv == 'E');
                (text, sign(v < 0.0))
            }
            'g' | 'G' => {
                let v = arg.real().unwrap_or(0.0);
                (
                    general_form(v.abs(), precision.unwrap_or(6), conv == 'G', alt),
                    sign(v < 0.0),
                )
            }
            'c' => (
                arg.text()
                    .and_then(|t| t.chars().next())
                    .map(String::from)
                    .unwrap_or_default(),
                "",
            ),
            's' | 'z' => {
                let text = arg.text().map(Cow::into_owned).unwrap_or_default();
                match precision {
                    Some(p) => (text.chars().take(p).collect(), ""),
                    None => (text, ""),
                }
            }
            'q' => (
                arg.text()
                    .map(|t| t.replace('\'', "''"))
                    .unwrap_or_else(|| "(NULL)".into()),
                "",
            ),
            'Q' => (
                arg.text()
                    .map(|t| format!("'{}'", t.replace('\'', "''")))
                    .unwrap_or_else(|| "NULL".into()),
                "",
            ),
            'w' => (
                arg.text()
                    .map(|t| t.replace('"', "\"\""))
                    .unwrap_or_default(),
                "",
            ),
            // SQLite stops formatting at an unknown conversion.
            _ => break,
        };
        let numeric = matches!(
            conv,
            'd' | 'i' | 'u' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'x' | 'X' | 'o'
        );
        let content_len = numeric_sign.chars().count() + body.chars().count();
        let pad = width.saturating_sub(content_len);
        if left {
            out.push_str(numeric_sign);
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', pad));
        } else if zero && numeric {
            out.push_str(numeric_sign);
            out.extend(std::iter::repeat_n('0', pad));
            out.push_str(&body);
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(numeric_sign);
            out.push_str(&body);
        }
    }
    Some(out)
}

/// `%e`: `d.dddddde+XX`.
fn exponent_form(v: f64, precision: usize, upper: bool) -> String {
    let text = format!("{v:.precision$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exponent.abs())
}

/// `%g`: the shorter of `%e` and `%f` at `precision` significant digits.
fn general_form(v: f64, precision: usize, upper: bool, keep_zeros: bool) -> String {
    let p = precision.max(1);
    let exponent = if v == 0.0 {
        0
    } else {
        v.log10().floor() as i32
    };
    let strip = |mut s: String| {
        if !keep_zeros && s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        s
    };
    if exponent < -4 || exponent >= p as i32 {
        let text = exponent_form(v, p - 1, upper);
        let (mantissa, rest) = text.split_at(text.find(['e', 'E']).unwrap_or(text.len()));
        format!("{}{rest}", strip(mantissa.to_string()))
    } else {
        let decimals = (p as i32 - 1 - exponent).max(0) as usize;
        strip(format!("{v:.decimals$}"))
    }
}

/// `sqlite_numeric(x)`: an arithmetic operand as SQLite reads it. Numbers
/// pass through untouched (the call disappears at planning); text becomes
/// the number it starts with (a REAL, since its type is only known per row),
/// and text that is not a number is 0.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SqliteNumeric {
    signature: Signature,
}

impl SqliteNumeric {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric()
        || matches!(
            data_type,
            DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Interval(_)
                | DataType::Duration(_)
        )
}

impl ScalarUDFImpl for SqliteNumeric {
    fn name(&self) -> &str {
        NUMERIC_HELPER
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &arg_types[0] {
            t if is_numeric(t) => t.clone(),
            DataType::Null | DataType::Boolean => DataType::Int64,
            _ => DataType::Float64,
        })
    }
    fn simplify(&self, mut args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        if args.len() == 1 && is_numeric(&info.get_data_type(&args[0])?) {
            return Ok(ExprSimplifyResult::Simplified(args.remove(0)));
        }
        Ok(ExprSimplifyResult::Original(args))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = &ColumnarValue::values_to_arrays(&args.args)?[0];
        let result: ArrayRef = match array.data_type() {
            t if is_numeric(t) => array.clone(),
            DataType::Null | DataType::Boolean => arrow::compute::cast(array, &DataType::Int64)?,
            _ => {
                let column = ArgColumn::new(array)?;
                Arc::new(Float64Array::from_iter(
                    (0..array.len()).map(|row| column.get(row).real()),
                ))
            }
        };
        Ok(ColumnarValue::Array(result))
    }
}

/// `sqlite_truthy(x)`: a value as a condition. Booleans pass through; a
/// number is true when it is not zero; text is read as a number first.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SqliteTruthy {
    signature: Signature,
}

impl SqliteTruthy {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SqliteTruthy {
    fn name(&self) -> &str {
        TRUTHY_HELPER
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn simplify(&self, mut args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        if args.len() == 1 && info.get_data_type(&args[0])? == DataType::Boolean {
            return Ok(ExprSimplifyResult::Simplified(args.remove(0)));
        }
        Ok(ExprSimplifyResult::Original(args))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = &ColumnarValue::values_to_arrays(&args.args)?[0];
        if array.data_type() == &DataType::Boolean {
            return Ok(ColumnarValue::Array(array.clone()));
        }
        let column = ArgColumn::new(array)?;
        let result = BooleanArray::from_iter(
            (0..array.len()).map(|row| column.get(row).real().map(|v| v != 0.0)),
        );
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RowContext {
        RowContext {
            now_ms: 0,
            regexes: HashMap::new(),
        }
    }

    #[test]
    fn substr_follows_sqlite() {
        let s = |a: &[Val<'_>]| substr(a, &mut ctx());
        assert_eq!(
            s(&[Val::Text("abcdef"), Val::Int(2), Val::Int(3)]).unwrap(),
            "bcd"
        );
        assert_eq!(s(&[Val::Text("abcdef"), Val::Int(-2)]).unwrap(), "ef");
        assert_eq!(
            s(&[Val::Text("abcdef"), Val::Int(0), Val::Int(2)]).unwrap(),
            "a"
        );
        assert_eq!(
            s(&[Val::Text("abcdef"), Val::Int(4), Val::Int(-2)]).unwrap(),
            "bc"
        );
        assert_eq!(s(&[Val::Text("abcdef"), Val::Int(10)]).unwrap(), "");
        assert_eq!(
            s(&[Val::Int(12345), Val::Int(2), Val::Int(2)]).unwrap(),
            "23"
        );
        assert!(s(&[Val::Null, Val::Int(1)]).is_none());
    }

    #[test]
    fn printf_follows_sqlite() {
        let p = |a: &[Val<'_>]| printf(a, &mut ctx()).unwrap();
        assert_eq!(
            p(&[
                Val::Text("%d-%5s|%-4d|%05.1f"),
                Val::Int(7),
                Val::Text("ab"),
                Val::Int(3),
                Val::Real(2.25)
            ]),
            "7-   ab|3   |002.2"
        );
        assert_eq!(
            p(&[
                Val::Text("%x %X %o %%"),
                Val::Int(255),
                Val::Int(255),
                Val::Int(8)
            ]),
            "ff FF 10 %"
        );
        assert_eq!(
            p(&[
                Val::Text("%q %Q %Q"),
                Val::Text("it's"),
                Val::Text("a"),
                Val::Null
            ]),
            "it''s 'a' NULL"
        );
        assert_eq!(
            p(&[
                Val::Text("%e %g %g"),
                Val::Real(12345.678),
                Val::Real(0.0001),
                Val::Real(1e20)
            ]),
            "1.234568e+04 0.0001 1e+20"
        );
        assert_eq!(p(&[Val::Text("%s and %d")]), " and 0");
    }

    #[test]
    fn osquery_string_functions() {
        let mut c = ctx();
        let t = |s| Val::Text(s);
        assert_eq!(
            regex_match(
                &[t("/Users/alice/x"), t("^/Users/([^/]+)/"), Val::Int(1)],
                &mut c
            )
            .as_deref(),
            Some("alice")
        );
        assert_eq!(
            regex_match(&[t("/bin/ls"), t("^/Users/([^/]+)/"), Val::Int(1)], &mut c),
            None
        );
        assert_eq!(regex_match(&[t("abc"), t("b"), Val::Int(3)], &mut c), None);
        assert_eq!(
            regex_split(&[t("a1b22c"), t("[0-9]+"), Val::Int(2)], &mut c).as_deref(),
            Some("c")
        );
        assert_eq!(
            split(&[t("/a//b/c"), t("/"), Val::Int(1)], &mut c).as_deref(),
            Some("b")
        );
        assert_eq!(split(&[t("a b"), t(" "), Val::Int(5)], &mut c), None);
        assert_eq!(
            to_base64(&[t("foobar")], &mut c).as_deref(),
            Some("Zm9vYmFy")
        );
        assert_eq!(
            from_base64(&[t("Zm9vYmFy")], &mut c).as_deref(),
            Some("foobar")
        );
        assert_eq!(
            conditional_to_base64(&[t("plain")], &mut c).as_deref(),
            Some("plain")
        );
        assert_eq!(
            conditional_to_base64(&[t("tab\there")], &mut c).as_deref(),
            Some("dGFiCWhlcmU=")
        );
        assert_eq!(instr(&[t("héllo"), t("llo")], &mut c), Some(3));
        assert_eq!(
            community_id(
                &[
                    t("128.232.110.120"),
                    t("66.35.250.204"),
                    Val::Int(34855),
                    Val::Int(80),
                    Val::Int(6)
                ],
                &mut c
            )
            .as_deref(),
            Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        );
    }

    #[test]
    fn numbers_read_and_print_like_sqlite() {
        assert_eq!(text_to_real("  12abc"), Some((12.0, true)));
        assert_eq!(text_to_real("1.5e3x"), Some((1500.0, false)));
        assert_eq!(text_to_real("abc"), None);
        assert_eq!(text_to_real("-"), None);
        assert_eq!(real_to_text(2.0), "2.0");
        assert_eq!(real_to_text(0.1), "0.1");
        assert_eq!(real_to_text(1.5e20), "1.5e+20");
    }
}
