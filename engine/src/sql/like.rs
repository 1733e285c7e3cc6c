//! SQLite's `LIKE`, as the function `sqlite_like(subject, pattern,
//! case_sensitive [, escape])` that the rewrite puts in place of every
//! `x [NOT] LIKE y [ESCAPE z]`.
//!
//! Analysts' path filters (`filename LIKE '/Users/%/Library/%'`) are the
//! most common predicate over the file tables, so this is both a dialect
//! rule and a hot loop. SQLite's rules differ from DataFusion's
//! `LIKE`/`ILIKE` in three ways, all kept here:
//!
//! - case folding, when on (the default), covers ASCII letters only:
//!   `'é' LIKE 'É'` is false;
//! - there is no escape character unless `ESCAPE` names one (DataFusion
//!   treats `\` as one by default);
//! - `_` matches one character, not one byte.
//!
//! Since folding never touches bytes ≥ 0x80, every comparison works on
//! UTF-8 bytes; only `_` and backtracking step by whole characters. A
//! pattern is compiled once per batch, and the common shapes (`abc`,
//! `abc%`, `%abc`, `%abc%`) get a direct comparison. Evaluating ASCII
//! folding byte by byte also spares arrow's `ILIKE` its check that every
//! string of the batch is ASCII, which on `Utf8View` columns read from
//! dictionary pages cost more than the match itself.
//!
//! A `%abc%` pattern is searched for with `memchr`'s vectorised search:
//! the whole literal when case does not matter for it, else one of its
//! less common bytes in both cases, each hit then checked in full
//! ([`Needle`]). A byte-by-byte scan made `filename LIKE '%3be0f548%'`
//! over 9.5M paths take ten times DuckDB's time.
//!
//! On `Utf8View` columns a prefix pattern (`'/Users/%'`, the most common
//! shape) is first tried on each row's view, which holds the string's length
//! and first four bytes: a row too short or starting differently is decided
//! without reading its bytes from the data buffer ([`prefix_over_views`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray, StringViewArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use memchr::memmem;

use super::functions::ArgColumn;

/// The function's name, as the rewrite writes it.
pub const LIKE_FUNCTION: &str = "sqlite_like";

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern {
    shape: Shape,
    case_sensitive: bool,
}

/// What a pattern asks for. Literal bytes are stored lower-cased when the
/// match ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// No wildcards: the whole subject.
    Exact(Vec<u8>),
    /// `abc%`.
    Prefix(Vec<u8>),
    /// `%abc`.
    Suffix(Vec<u8>),
    /// `%abc%`.
    Contains(Box<Needle>),
    /// Anything else: the tokens, and for each literal right after a `%`
    /// its [`Needle`], to find where it next occurs rather than try it at
    /// every character.
    General(Vec<Token>, Vec<Option<Needle>>),
    /// Ends in a lone escape character: SQLite matches nothing.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    /// `_`: one character.
    One,
    /// `%`: any run of characters.
    Many,
}

impl LikePattern {
    /// Compiles `pattern`; `escape` makes the character after it literal.
    pub(crate) fn new(pattern: &str, case_sensitive: bool, escape: Option<char>) -> LikePattern {
        let mut tokens: Vec<Token> = Vec::new();
        let mut chars = pattern.chars();
        let mut dangling_escape = false;
        while let Some(c) = chars.next() {
            let literal = if Some(c) == escape {
                match chars.next() {
                    Some(next) => next,
                    None => {
                        dangling_escape = true;
                        break;
                    }
                }
            } else if c == '%' {
                // `%%` is one `%`.
                if tokens.last() != Some(&Token::Many) {
                    tokens.push(Token::Many);
                }
                continue;
            } else if c == '_' {
                tokens.push(Token::One);
                continue;
            } else {
                c
            };
            let mut buf = [0u8; 4];
            let bytes = literal.encode_utf8(&mut buf).as_bytes();
            let folded = bytes.iter().map(|&b| fold(b, case_sensitive));
            match tokens.last_mut() {
                Some(Token::Literal(run)) => run.extend(folded),
                _ => tokens.push(Token::Literal(folded.collect())),
            }
        }
        let shape = if dangling_escape {
            Shape::Nothing
        } else {
            match tokens.as_slice() {
                [] => Shape::Exact(Vec::new()),
                [Token::Literal(l)] => Shape::Exact(l.clone()),
                [Token::Many] => Shape::Prefix(Vec::new()),
                [Token::Literal(l), Token::Many] => Shape::Prefix(l.clone()),
                [Token::Many, Token::Literal(l)] => Shape::Suffix(l.clone()),
                [Token::Many, Token::Literal(l), Token::Many] => {
                    Shape::Contains(Box::new(Needle::new(l.clone(), case_sensitive)))
                }
                _ => {
                    let needles = (0..tokens.len())
                        .map(
                            |t| match (t.checked_sub(1).map(|p| &tokens[p]), &tokens[t]) {
                                (Some(Token::Many), Token::Literal(l)) => {
                                    Some(Needle::new(l.clone(), case_sensitive))
                                }
                                _ => None,
                            },
                        )
                        .collect();
                    Shape::General(tokens, needles)
                }
            }
        };
        LikePattern {
            shape,
            case_sensitive,
        }
    }

    /// Whether `subject` (UTF-8) matches.
    #[inline]
    pub(crate) fn matches(&self, subject: &[u8]) -> bool {
        let cs = self.case_sensitive;
        match &self.shape {
            Shape::Exact(l) => subject.len() == l.len() && same(subject, l, cs),
            Shape::Prefix(l) => subject.len() >= l.len() && same(&subject[..l.len()], l, cs),
            Shape::Suffix(l) => {
                subject.len() >= l.len() && same(&subject[subject.len() - l.len()..], l, cs)
            }
            Shape::Contains(needle) => needle.is_in(subject),
            Shape::General(tokens, needles) => general(tokens, needles, subject, cs),
            Shape::Nothing => false,
        }
    }
}

#[inline]
fn fold(byte: u8, case_sensitive: bool) -> u8 {
    if case_sensitive {
        byte
    } else {
        byte.to_ascii_lowercase()
    }
}

/// `a` equals the (already folded) literal `l`; same lengths.
#[inline]
fn same(a: &[u8], l: &[u8], case_sensitive: bool) -> bool {
    if case_sensitive {
        a == l
    } else {
        a.iter().zip(l).all(|(&x, &y)| x.to_ascii_lowercase() == y)
    }
}

/// The literal of a `%abc%` pattern, ready to be searched for.
#[derive(Debug, Clone)]
struct Needle {
    /// Lower-cased when the match ignores case.
    literal: Vec<u8>,
    /// Finds the literal byte for byte: when the match is case-sensitive,
    /// or the literal has no ASCII letter for folding to change.
    exact: Option<memmem::Finder<'static>>,
    /// Otherwise, where in the literal the byte searched for first sits.
    anchor: usize,
}

/// Bytes too common in paths and command lines to search for first: a hit
/// on each would mostly be checked in vain.
const COMMON_BYTES: &[u8] = b"/.-_ eaoistrnlcu";

impl Needle {
    fn new(literal: Vec<u8>, case_sensitive: bool) -> Needle {
        let exact = (case_sensitive || !literal.iter().any(u8::is_ascii_alphabetic))
            .then(|| memmem::Finder::new(&literal).into_owned());
        let anchor = literal
            .iter()
            .position(|b| !COMMON_BYTES.contains(b))
            .unwrap_or(0);
        Needle {
            literal,
            exact,
            anchor,
        }
    }

    /// Whether the literal occurs in `subject`, folding ASCII case unless
    /// [`Needle::exact`] applies.
    fn is_in(&self, subject: &[u8]) -> bool {
        self.find(subject).is_some()
    }

    /// Where the literal first occurs in `subject`.
    fn find(&self, subject: &[u8]) -> Option<usize> {
        let l = &self.literal;
        if subject.len() < l.len() {
            return None;
        }
        if let Some(finder) = &self.exact {
            return finder.find(subject);
        }
        // The anchor byte of a match starting at `at` is `subject[at + k]`,
        // so searching the anchor over `subject[k..]` gives starts directly.
        let k = self.anchor;
        let byte = l[k];
        let starts = &subject[k..subject.len() - (l.len() - 1 - k)];
        let mut from = 0;
        while from < starts.len() {
            let rest = &starts[from..];
            let hit = if byte.is_ascii_lowercase() {
                memchr::memchr2(byte, byte.to_ascii_uppercase(), rest)
            } else {
                memchr::memchr(byte, rest)
            };
            let at = from + hit?;
            if same(&subject[at..at + l.len()], l, false) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
}

/// Two needles are the same pattern when their literals are, and both or
/// neither match byte for byte.
impl PartialEq for Needle {
    fn eq(&self, other: &Needle) -> bool {
        self.literal == other.literal && self.exact.is_some() == other.exact.is_some()
    }
}

impl Eq for Needle {}

/// Bytes in the UTF-8 character that starts with `lead`.
#[inline]
fn char_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Wildcard matching with one backtracking point, the latest `%`: when a
/// later token fails, the `%` takes one more character and the tokens after
/// it are tried again. Earlier `%`s never need to give anything back, since
/// the latest one can absorb whatever they would have. A literal right
/// after the latest `%` is searched for (`needles`): the `%` would take
/// characters one by one until it matched, and if it occurs nowhere
/// further on, taking more cannot help.
fn general(tokens: &[Token], needles: &[Option<Needle>], s: &[u8], case_sensitive: bool) -> bool {
    let (mut t, mut i) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    loop {
        // A literal right after a `%`: that `%` is the latest one, since
        // tokens are taken in order and a retry goes back only to the token
        // after the latest `%`.
        let search = needles.get(t).and_then(Option::as_ref);
        let advanced = match tokens.get(t) {
            Some(Token::Many) => {
                resume = Some((t + 1, i));
                t += 1;
                continue;
            }
            Some(Token::Literal(l)) if search.is_some() => {
                match search.and_then(|needle| needle.find(&s[i..])) {
                    Some(at) => {
                        // A later failure resumes after this occurrence.
                        resume = Some((t, i + at));
                        i += at + l.len();
                        true
                    }
                    None => return false,
                }
            }
            Some(Token::One) if i < s.len() => {
                i = (i + char_len(s[i])).min(s.len());
                true
            }
            Some(Token::Literal(l))
                if s.len() - i >= l.len() && same(&s[i..i + l.len()], l, case_sensitive) =>
            {
                i += l.len();
                true
            }
            None if i == s.len() => return true,
            _ => false,
        };
        if advanced {
            t += 1;
            continue;
        }
        match resume {
            Some((after, from)) if from < s.len() => {
                let from = (from + char_len(s[from])).min(s.len());
                resume = Some((after, from));
                t = after;
                i = from;
            }
            _ => return false,
        }
    }
}

/// `sqlite_like(subject, pattern, case_sensitive [, escape])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SqliteLike {
    signature: Signature,
}

impl SqliteLike {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SqliteLike {
    fn name(&self) -> &str {
        LIKE_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !(3..=4).contains(&arg_types.len()) {
            return plan_err!(
                "{LIKE_FUNCTION} takes a subject, a pattern, a case flag and an optional escape"
            );
        }
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let case_sensitive = match &args.args[2] {
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(flag))) => *flag,
            _ => return exec_err!("{LIKE_FUNCTION}: the case flag must be a boolean literal"),
        };
        let escape = match args.args.get(3) {
            None => None,
            Some(ColumnarValue::Scalar(value)) => match scalar_text(value) {
                None => return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None))),
                Some(text) => {
                    let mut chars = text.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Some(c),
                        _ => return exec_err!("ESCAPE expression must be a single character"),
                    }
                }
            },
            Some(_) => return exec_err!("ESCAPE expression must be a constant"),
        };
        let rows = args.number_rows;
        let subject = args.args[0].to_array(rows)?;
        let subject = text_array(&subject)?;
        let result = match &args.args[1] {
            ColumnarValue::Scalar(value) => match scalar_text(value) {
                None => BooleanArray::new_null(rows),
                Some(pattern) => {
                    let pattern = LikePattern::new(&pattern, case_sensitive, escape);
                    match (&pattern.shape, subject.as_string_view_opt()) {
                        (Shape::Prefix(literal), Some(views)) => {
                            prefix_over_views(views, literal, case_sensitive)
                        }
                        (Shape::Contains(_) | Shape::General(..), Some(views)) => {
                            remembered_over_views(views, &pattern)
                        }
                        _ => match_each(&subject, |_| Some(&pattern)),
                    }
                }
            },
            ColumnarValue::Array(patterns) => {
                // A pattern per row (rare): each row's is compiled, read as
                // SQLite reads a value as text.
                let patterns = ArgColumn::new(patterns)?;
                let compiled: Vec<Option<LikePattern>> = (0..rows)
                    .map(|row| {
                        patterns
                            .get(row)
                            .text()
                            .map(|p| LikePattern::new(&p, case_sensitive, escape))
                    })
                    .collect();
                match_each(&subject, |row| compiled[row].as_ref())
            }
        };
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

fn scalar_text(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.clone(),
        v if v.is_null() => None,
        v => Some(v.to_string()),
    }
}

/// `array` as text: string arrays as they are, anything else cast to
/// `Utf8` (SQLite compares a number's text: `pid LIKE '12%'`).
fn text_array(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => array.clone(),
        _ => arrow::compute::cast(array, &DataType::Utf8)?,
    })
}

/// Matches every row of `subject` against `pattern_of(row)`; NULL where
/// either is NULL.
fn match_each<'p>(
    subject: &ArrayRef,
    pattern_of: impl Fn(usize) -> Option<&'p LikePattern>,
) -> BooleanArray {
    match subject.data_type() {
        DataType::Utf8View => matched(subject.as_string_view(), pattern_of),
        DataType::LargeUtf8 => matched(subject.as_string::<i64>(), pattern_of),
        _ => matched(subject.as_string::<i32>(), pattern_of),
    }
}

fn matched<'a, 'p, A>(
    subject: A,
    pattern_of: impl Fn(usize) -> Option<&'p LikePattern>,
) -> BooleanArray
where
    A: ArrayAccessor<Item = &'a str>,
{
    let len = subject.len();
    let mut nulls = subject.logical_nulls();
    let mut pattern_nulls = Vec::new();
    let values = BooleanBuffer::collect_bool(len, |row| {
        // A NULL slot's bytes are not looked at: a view array need not
        // hold a valid view there.
        if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return false;
        }
        match pattern_of(row) {
            Some(pattern) => pattern.matches(subject.value(row).as_bytes()),
            None => {
                pattern_nulls.push(row);
                false
            }
        }
    });
    if !pattern_nulls.is_empty() {
        let mut valid = vec![true; len];
        for row in pattern_nulls {
            valid[row] = false;
        }
        nulls = NullBuffer::union(nulls.as_ref(), Some(&NullBuffer::from(valid)));
    }
    BooleanArray::new(values, nulls)
}

/// `subject LIKE 'literal%'` for every row of a view array; the same
/// answers as [`LikePattern::matches`] with `Shape::Prefix(literal)`.
///
/// A view is 16 bytes: the length (4), then either the whole string (up to
/// 12 bytes) or its first 4 bytes, a buffer index and an offset. Most rows
/// of a path filter fail on the length or the first 4 bytes, which the view
/// has in hand; only the rest go to the data buffer.
fn prefix_over_views(
    subject: &StringViewArray,
    literal: &[u8],
    case_sensitive: bool,
) -> BooleanArray {
    let views = subject.views();
    let buffers = subject.data_buffers();
    let head = literal.len().min(4);
    let values = BooleanBuffer::collect_bool(views.len(), |row| {
        let view = views[row];
        let len = view as u32 as usize;
        if len < literal.len() {
            return false;
        }
        let inline = view.to_le_bytes();
        if !same(&inline[4..4 + head], &literal[..head], case_sensitive) {
            return false;
        }
        if literal.len() <= 4 {
            return true;
        }
        let rest = &literal[4..];
        if len <= 12 {
            return same(&inline[8..4 + literal.len()], rest, case_sensitive);
        }
        // A NULL slot may hold any view: its buffer and offset are looked
        // up, never trusted (its answer is masked by the NULL anyway).
        let (buffer, offset) = ((view >> 64) as u32 as usize, (view >> 96) as u32 as usize);
        buffers
            .get(buffer)
            .and_then(|data| data.get(offset + 4..offset + literal.len()))
            .is_some_and(|bytes| same(bytes, rest, case_sensitive))
    });
    BooleanArray::new(values, subject.logical_nulls())
}

/// `subject LIKE pattern` for every row of a view array, each long
/// string's answer remembered by its view; the same answers as
/// [`LikePattern::matches`] row by row.
///
/// The Parquet reader decodes a dictionary page into views that point into
/// the dictionary, so every row of one path carries the same 16-byte view,
/// and within one array a view names its bytes. A batch of file events
/// holds a few thousand paths, the hot ones many times over; a search
/// (`%abc%`, or a pattern with several wildcards) costs a scan of the whole
/// string, a lookup of its view a hash. The memory is a direct-mapped table
/// of 4,096 views: a collision forgets, it never answers wrong.
fn remembered_over_views(subject: &StringViewArray, pattern: &LikePattern) -> BooleanArray {
    const SLOTS: usize = 4096;
    let views = subject.views();
    let nulls = subject.logical_nulls();
    // A long string's view has a length above 12, so it is never 0, the
    // mark of an empty slot.
    let mut seen: Vec<(u128, bool)> = vec![(0, false); SLOTS];
    let values = BooleanBuffer::collect_bool(views.len(), |row| {
        // A NULL slot's view is not looked at: it need not be valid.
        if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return false;
        }
        let view = views[row];
        if view as u32 <= 12 {
            return pattern.matches(subject.value(row).as_bytes());
        }
        let mixed = ((view >> 64) as u64 ^ view as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut seen[(mixed >> 52) as usize];
        if slot.0 == view {
            return slot.1;
        }
        let answer = pattern.matches(subject.value(row).as_bytes());
        *slot = (view, answer);
        answer
    });
    BooleanArray::new(values, nulls)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's matching, written for clarity rather than speed: recursion
    /// on characters, one case at a time (after `patternCompare` in
    /// SQLite's func.c).
    fn reference(pattern: &[char], subject: &[char], cs: bool, escape: Option<char>) -> bool {
        let eq = |a: char, b: char| {
            if cs || !a.is_ascii() || !b.is_ascii() {
                a == b
            } else {
                a.eq_ignore_ascii_case(&b)
            }
        };
        match pattern.split_first() {
            None => subject.is_empty(),
            Some((&c, rest)) if Some(c) == escape => match rest.split_first() {
                None => false,
                Some((&lit, rest)) => match subject.split_first() {
                    Some((&s, srest)) if eq(s, lit) => reference(rest, srest, cs, escape),
                    _ => false,
                },
            },
            Some(('%', rest)) => {
                (0..=subject.len()).any(|skip| reference(rest, &subject[skip..], cs, escape))
            }
            Some(('_', rest)) => !subject.is_empty() && reference(rest, &subject[1..], cs, escape),
            Some((&c, rest)) => match subject.split_first() {
                Some((&s, srest)) if eq(s, c) => reference(rest, srest, cs, escape),
                _ => false,
            },
        }
    }

    /// A seeded xorshift: each call gives a number below its argument.
    fn below(mut state: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        }
    }

    /// `len` characters of `alphabet`, drawn by `next`.
    fn drawn(next: &mut impl FnMut(usize) -> usize, alphabet: &[char], len: usize) -> String {
        (0..len).map(|_| alphabet[next(alphabet.len())]).collect()
    }

    /// `count` rows, one in eight NULL, the rest of up to `max_len - 1`
    /// characters of `alphabet`.
    fn drawn_rows(
        next: &mut impl FnMut(usize) -> usize,
        alphabet: &[char],
        count: usize,
        max_len: usize,
    ) -> Vec<Option<String>> {
        (0..count)
            .map(|_| {
                (next(8) != 0).then(|| {
                    let len = next(max_len);
                    drawn(next, alphabet, len)
                })
            })
            .collect()
    }

    fn like(subject: &str, pattern: &str) -> bool {
        LikePattern::new(pattern, false, None).matches(subject.as_bytes())
    }

    #[test]
    fn sqlite_rules() {
        assert!(like("/Users/a/x", "/users/%"));
        assert!(!like("/Library/x", "/users/%"));
        assert!(like("ABC", "abc"));
        assert!(like("abc", "%B%"));
        assert!(like("abc", "%C"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        // Only ASCII folds.
        assert!(!like("é", "É"));
        assert!(like("é", "é"));
        // `_` is a character, not a byte.
        assert!(like("é", "_"));
        assert!(!like("é", "__"));
        assert!(like("aéb", "a_b"));
        // No escape character unless named.
        assert!(like("a\\b", "a\\b"));
        assert!(like("a\\xb", "a\\_b"));
        assert!(LikePattern::new("100!%", false, Some('!')).matches(b"100%"));
        assert!(!LikePattern::new("100!%", false, Some('!')).matches(b"1000"));
        assert!(!LikePattern::new("abc!", false, Some('!')).matches(b"abc!"));
        // Case-sensitive mode.
        assert!(!LikePattern::new("/users/%", true, None).matches(b"/Users/a"));
        assert!(like("mississippi", "%iss%ip_i"));
        assert!(!like("mississippi", "%iss%ipx%"));
    }

    /// The view shortcut must answer as the row-by-row match does: for
    /// strings that fit in the view and those that do not, prefixes shorter
    /// and longer than the view's four bytes, case folding on and off, and
    /// NULLs.
    #[test]
    fn prefix_over_views_agrees_with_the_row_by_row_match() {
        // '@' and '`' sit 0x20 from each other like a letter's two cases.
        let alphabet = ['a', 'A', '/', 'U', 'u', 'é', '@', '`', 'z', 'Z'];
        let mut next = below(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            let count = next(40);
            let rows = drawn_rows(&mut next, &alphabet, count, 24);
            let len = next(16);
            let literal = drawn(&mut next, &alphabet, len);
            let cs = next(2) == 0;
            let pattern = LikePattern::new(&format!("{literal}%"), cs, None);
            let Shape::Prefix(folded) = &pattern.shape else {
                panic!("{literal}% is a prefix pattern");
            };
            let views = StringViewArray::from_iter(rows.iter().map(|r| r.as_deref()));
            let expected = match_each(&(Arc::new(views.clone()) as ArrayRef), |_| Some(&pattern));
            let got = prefix_over_views(&views, folded, cs);
            assert_eq!(
                got, expected,
                "{rows:?} LIKE {literal:?}% (case sensitive: {cs})"
            );
        }
    }

    /// Remembering answers by view must answer as the row-by-row match
    /// does: repeated views (as from a dictionary page), short inline
    /// strings, NULLs, `%abc%` and patterns with several wildcards.
    #[test]
    fn remembered_over_views_agrees_with_the_row_by_row_match() {
        let alphabet = ['a', 'A', '/', 'b', 'é', '3', 'x'];
        let mut next = below(0x2f1e_5b3d_a4c7_9e01);
        for _ in 0..2_000 {
            let count = 1 + next(12);
            let distinct = drawn_rows(&mut next, &alphabet, count, 30);
            let base = StringViewArray::from_iter(distinct.iter().map(|r| r.as_deref()));
            // Rows that repeat the same views, as a dictionary page's do.
            let picks: Vec<u32> = (0..next(60)).map(|_| next(distinct.len()) as u32).collect();
            let taken = arrow::compute::take(&base, &arrow::array::UInt32Array::from(picks), None)
                .expect("take");
            let views = taken.as_string_view().clone();
            let len = 1 + next(4);
            let literal = drawn(&mut next, &alphabet, len);
            let text = match next(3) {
                0 => format!("%{literal}%"),
                1 => format!("%{literal}%{literal}_"),
                _ => format!("_%{literal}%"),
            };
            let cs = next(2) == 0;
            let pattern = LikePattern::new(&text, cs, None);
            let expected = match_each(&(Arc::new(views.clone()) as ArrayRef), |_| Some(&pattern));
            let got = remembered_over_views(&views, &pattern);
            assert_eq!(
                got, expected,
                "{distinct:?} LIKE {text:?} (case sensitive: {cs})"
            );
        }
    }

    /// The vectorised `%abc%` search answers as a scan of every position
    /// does, on subjects longer than the reference test's: literals with
    /// and without letters, common and rare anchors, hits near both ends.
    #[test]
    fn contains_agrees_with_a_scan_of_every_position() {
        let scan = |subject: &[u8], l: &[u8], cs: bool| {
            subject.len() >= l.len()
                && (0..=subject.len() - l.len()).any(|at| same(&subject[at..at + l.len()], l, cs))
        };
        let alphabet = ['a', 'A', 'b', 'B', '/', '3', 'é', 'e', 'x', 'X', '.'];
        let mut next = below(0x51_7cc1_b727_220a);
        for _ in 0..20_000 {
            let len = next(100);
            let subject = drawn(&mut next, &alphabet, len);
            let len = next(6);
            let literal = drawn(&mut next, &alphabet, len);
            let cs = next(2) == 0;
            let pattern = LikePattern::new(&format!("%{literal}%"), cs, None);
            let folded: Vec<u8> = literal.bytes().map(|b| fold(b, cs)).collect();
            assert_eq!(
                pattern.matches(subject.as_bytes()),
                scan(subject.as_bytes(), &folded, cs),
                "{subject:?} LIKE %{literal:?}% (case sensitive: {cs})"
            );
        }
    }

    #[test]
    fn agrees_with_the_reference_on_random_patterns() {
        // A small alphabet so that wildcards, escapes, case and multi-byte
        // characters meet often.
        let alphabet = ['a', 'A', 'b', '%', '_', '!', 'é', 'É', '/'];
        let mut next = below(0x2545_f491_4f6c_dd1d);
        for _ in 0..200_000 {
            let len = next(7);
            let pattern: Vec<char> = drawn(&mut next, &alphabet, len).chars().collect();
            // Subjects take no wildcard characters other than literal ones
            // the escape can name.
            let len = next(8);
            let subject: Vec<char> = drawn(&mut next, &alphabet, len).chars().collect();
            let cs = next(2) == 0;
            let escape = if next(2) == 0 { Some('!') } else { None };
            let (p, s): (String, String) = (pattern.iter().collect(), subject.iter().collect());
            assert_eq!(
                LikePattern::new(&p, cs, escape).matches(s.as_bytes()),
                reference(&pattern, &subject, cs, escape),
                "{s:?} LIKE {p:?} (case sensitive: {cs}, escape: {escape:?})"
            );
        }
    }
}
