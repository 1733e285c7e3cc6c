//! Text that may not be text: paths and arguments as bytes, stored without loss.
//!
//! Paths are bytes on every OS, but Arrow's `Utf8` must hold valid UTF-8. A
//! value that is valid UTF-8 goes to its text column and its `<column>_bytes`
//! sidecar stays NULL. A value that is not goes to the text column as a
//! readable rendering (each invalid sequence becomes U+FFFD) and to the
//! sidecar exactly as it was. Queries on ordinary paths stay simple, and the
//! original bytes are always there for the rare path that needs them.
//!
//! The hot builders do not check each value as it arrives:
//! [`TextWithBytesBuilder`] collects the bytes and checks the whole batch at
//! once when it finishes, which is five times cheaper than a check per path,
//! and sorts out the rare invalid value only then.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, NullBufferBuilder, StringArray, StringBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use sluice_schemas::{DistinctValues, keyed_array};

use crate::builders::finish_bytes_presized;

/// A text column and its raw-bytes sidecar, built together. Values are
/// collected as bytes; [`finish`](Self::finish) checks the batch's bytes as
/// UTF-8 in one pass (with arrow's check that no value splits a character)
/// and only when that fails goes back value by value, as
/// [`append_text_with_bytes`] does.
#[derive(Debug, Default)]
pub struct TextWithBytesBuilder {
    bytes: BinaryBuilder,
}

impl TextWithBytesBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one value; `None` is NULL in both columns.
    #[inline]
    pub fn append(&mut self, value: Option<&[u8]>) {
        match value {
            Some(bytes) => self.bytes.append_value(bytes),
            None => self.bytes.append_null(),
        }
    }

    /// Takes the values appended so far as (text, sidecar) and leaves the
    /// builder empty, with room for as many values and bytes.
    pub fn finish(&mut self) -> (ArrayRef, ArrayRef) {
        // Room left for a batch like this one.
        let bytes = finish_bytes_presized(&mut self.bytes);
        let rows = bytes.len();
        match StringArray::try_from_binary(bytes.clone()) {
            Ok(text) => (Arc::new(text), Arc::new(BinaryArray::new_null(rows))),
            Err(_) => {
                let mut text = StringBuilder::with_capacity(rows, bytes.value_data().len());
                let mut raw = BinaryBuilder::new();
                for row in 0..rows {
                    let value = bytes.is_valid(row).then(|| bytes.value(row));
                    append_text_with_bytes(&mut text, &mut raw, value);
                }
                (Arc::new(text.finish()), Arc::new(raw.finish()))
            }
        }
    }
}

/// A text column and its raw-bytes sidecar, kept as a dictionary while
/// rows are appended: each value is looked up (and, the first time, copied)
/// while its bytes are still in cache, and the batch finishes as keys over
/// its distinct values, the form the WAL logs and Parquet writes.
///
/// Building a plain column cost a copy of every row's text into a fresh
/// buffer (tens of megabytes a batch, each page faulted in), a UTF-8 check
/// of all of it, and then, in the WAL, a second read of all of it, long out
/// of cache, to find the same dictionary. Here only the distinct values are
/// copied and checked. Queries see the column as plain text (storage casts
/// it when the hot tail is read), and so does
/// [`finish_plain`](Self::finish_plain).
#[derive(Debug)]
pub struct KeyedTextBuilder {
    distinct: DistinctValues,
    /// Each row's code; 0 for a NULL row.
    keys: Vec<u32>,
    nulls: NullBufferBuilder,
    /// Set when the batch's distinct text passed 2 GiB, which no Arrow
    /// string array holds; `finish` then fails rather than lose rows
    /// silently.
    overflowed: bool,
}

impl Default for KeyedTextBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyedTextBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            distinct: DistinctValues::new(),
            keys: Vec::new(),
            nulls: NullBufferBuilder::new(0),
            overflowed: false,
        }
    }

    /// Rows appended since the last finish.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no row was appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Appends one value; `None` is NULL in both columns.
    #[inline]
    pub fn append(&mut self, value: Option<&[u8]>) {
        match value {
            Some(bytes) => {
                let code = self.distinct.code(bytes).unwrap_or_else(|| {
                    self.overflowed = true;
                    0
                });
                self.keys.push(code);
                self.nulls.append_non_null();
            }
            None => {
                self.keys.push(0);
                self.nulls.append_null();
            }
        }
    }

    /// Takes the rows appended so far as (text, sidecar) and leaves the
    /// builder empty. The text is a dictionary of UTF-8 values with keys as
    /// narrow as its count of distinct values allows (1, 2 or 4 bytes), and
    /// the sidecar all NULL; when a value is not UTF-8, both are plain
    /// columns, as [`TextWithBytesBuilder`] makes them.
    pub fn finish(&mut self) -> Result<(ArrayRef, ArrayRef), ArrowError> {
        let rows = self.keys.len();
        let keys = std::mem::replace(&mut self.keys, Vec::with_capacity(rows));
        let nulls = self.nulls.finish();
        let (bytes, ends) = self.distinct.take_values();
        if std::mem::take(&mut self.overflowed) {
            return Err(ArrowError::ComputeError(format!(
                "a batch of {rows} rows holds more than 2 GiB of distinct text in one column"
            )));
        }
        let values = BinaryArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(ends)),
            Buffer::from_vec(bytes),
            None,
        )?;
        let Ok(text) = StringArray::try_from_binary(values.clone()) else {
            // Rare: some value is not UTF-8. Plain columns, value by value.
            let mut text = StringBuilder::with_capacity(rows, values.value_data().len());
            let mut raw = BinaryBuilder::new();
            for (row, &key) in keys.iter().enumerate() {
                let valid = nulls.as_ref().is_none_or(|n| n.is_valid(row));
                append_text_with_bytes(
                    &mut text,
                    &mut raw,
                    valid.then(|| values.value(key as usize)),
                );
            }
            return Ok((Arc::new(text.finish()), Arc::new(raw.finish())));
        };
        let keyed = keyed_array(keys, nulls, Arc::new(text))?;
        Ok((keyed, Arc::new(BinaryArray::new_null(rows))))
    }

    /// [`finish`](Self::finish) with the text as a plain column, the type
    /// of the table's schema.
    pub fn finish_plain(&mut self) -> Result<(ArrayRef, ArrayRef), ArrowError> {
        let (text, raw) = self.finish()?;
        let text = match text.data_type() {
            DataType::Dictionary(_, values) => arrow::compute::cast(&text, values)?,
            _ => text,
        };
        Ok((text, raw))
    }
}

/// Appends `value` to a text column that has a raw-bytes sidecar.
#[inline]
pub fn append_text_with_bytes(
    text: &mut StringBuilder,
    raw: &mut BinaryBuilder,
    value: Option<&[u8]>,
) {
    match value {
        None => {
            text.append_null();
            raw.append_null();
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => {
                text.append_value(s);
                raw.append_null();
            }
            Err(_) => {
                // Rare, so the allocation of the lossy copy does not matter.
                text.append_value(String::from_utf8_lossy(bytes));
                raw.append_value(bytes);
            }
        },
    }
}

/// Appends `value` to a text column without a sidecar (identifiers such as
/// `signing_id`, which the kernel guarantees are printable).
#[inline]
pub fn append_text(text: &mut StringBuilder, value: Option<&[u8]>) {
    match value {
        None => text.append_null(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => text.append_value(s),
            Err(_) => text.append_value(String::from_utf8_lossy(bytes)),
        },
    }
}

/// Appends one argument to a command line the way osquery joins `argv` and
/// `env`: separated by a space, and wrapped in double quotes (with `"` and `\`
/// escaped by a backslash, as C++'s `std::quoted` does) when it contains a
/// space or a double quote. Unlike osquery, no separator trails the last
/// argument.
#[inline]
pub fn push_osquery_arg(out: &mut Vec<u8>, first: bool, arg: &[u8]) {
    if !first {
        out.push(b' ');
    }
    if memchr::memchr2(b' ', b'"', arg).is_none() {
        out.extend_from_slice(arg);
        return;
    }
    out.push(b'"');
    for &b in arg {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn quotes_like_osquery() {
        let mut out = Vec::new();
        for (i, arg) in [&b"ls"[..], b"-l", b"My Documents", b"say \"hi\"\\"]
            .iter()
            .enumerate()
        {
            push_osquery_arg(&mut out, i == 0, arg);
        }
        assert_eq!(out, br#"ls -l "My Documents" "say \"hi\"\\""#);
    }

    #[test]
    fn invalid_utf8_goes_to_the_sidecar_unchanged() {
        let mut text = StringBuilder::new();
        let mut raw = BinaryBuilder::new();
        append_text_with_bytes(&mut text, &mut raw, Some(b"/tmp/ok"));
        append_text_with_bytes(&mut text, &mut raw, Some(b"/tmp/\xff"));
        append_text_with_bytes(&mut text, &mut raw, None);
        let (text, raw) = (text.finish(), raw.finish());
        assert_eq!(text.value(0), "/tmp/ok");
        assert!(raw.is_null(0));
        assert_eq!(text.value(1), "/tmp/\u{fffd}");
        assert_eq!(raw.value(1), b"/tmp/\xff");
        assert!(text.is_null(2) && raw.is_null(2));
    }

    /// The batch check must give what the value-by-value rule gives, for
    /// batches with and without invalid values, and for a pair of values
    /// that is valid only when joined (a character split across them).
    #[test]
    fn batch_check_agrees_with_the_value_by_value_rule() {
        let batches: [&[Option<&[u8]>]; 4] = [
            &[
                Some(b"/tmp/a"),
                None,
                Some("/tmp/\u{e9}t\u{e9}".as_bytes()),
                Some(b""),
            ],
            &[
                Some(b"/tmp/a"),
                Some(b"/tmp/\xff"),
                None,
                Some(b"/tmp/\xc3"),
            ],
            &[Some(b"/tmp/\xc3"), Some(b"\xa9")],
            &[],
        ];
        for (n, values) in batches.iter().enumerate() {
            let mut batched = TextWithBytesBuilder::new();
            let (mut text, mut raw) = (StringBuilder::new(), BinaryBuilder::new());
            for value in values.iter() {
                batched.append(*value);
                append_text_with_bytes(&mut text, &mut raw, *value);
            }
            let (batched_text, batched_raw) = batched.finish();
            assert_eq!(batched_text.to_data(), text.finish().to_data(), "batch {n}");
            assert_eq!(batched_raw.to_data(), raw.finish().to_data(), "batch {n}");
        }
        // Finishing empties the builder.
        let mut builder = TextWithBytesBuilder::new();
        builder.append(Some(b"/x"));
        assert_eq!(builder.finish().0.len(), 1);
        assert_eq!(builder.finish().0.len(), 0);
    }

    /// Keyed text must give, as plain text, what the value-by-value rule
    /// gives: for batches with and without invalid values or NULLs, a
    /// character split across two values, a batch of NULLs only, and key
    /// widths of one, two and four bytes.
    #[test]
    fn keyed_text_agrees_with_the_value_by_value_rule() {
        let many: Vec<Vec<u8>> = (0..70_000u32)
            .map(|i| format!("/Users/a/{}", i % 66_000).into_bytes())
            .collect();
        let few: Vec<Vec<u8>> = (0..3_000u32)
            .map(|i| format!("/tmp/{}", i % 300).into_bytes())
            .collect();
        let batches: Vec<Vec<Option<&[u8]>>> = vec![
            vec![
                Some(b"/tmp/a"),
                None,
                Some("/tmp/\u{e9}t\u{e9}".as_bytes()),
                Some(b""),
                Some(b"/tmp/a"),
            ],
            vec![
                Some(b"/tmp/a"),
                Some(b"/tmp/\xff"),
                None,
                Some(b"/tmp/\xc3"),
                Some(b"/tmp/\xff"),
            ],
            vec![Some(b"/tmp/\xc3"), Some(b"\xa9")],
            vec![None, None],
            vec![],
            // Runs, broken by NULLs and by other values.
            vec![
                Some(b"x"),
                Some(b"x"),
                None,
                Some(b"x"),
                Some(b"y"),
                Some(b"y"),
                Some(b"x"),
                Some(b""),
                Some(b""),
                None,
                None,
                Some(b"y"),
            ],
            few.iter().map(|v| Some(v.as_slice())).collect(),
            many.iter().map(|v| Some(v.as_slice())).collect(),
        ];
        let mut keyed = KeyedTextBuilder::new();
        for (n, values) in batches.iter().enumerate() {
            let (mut text, mut raw) = (StringBuilder::new(), BinaryBuilder::new());
            for value in values {
                keyed.append(*value);
                append_text_with_bytes(&mut text, &mut raw, *value);
            }
            assert_eq!(keyed.len(), values.len());
            let (keyed_text, keyed_raw) = keyed.finish().unwrap();
            let valid = values
                .iter()
                .flatten()
                .all(|v| std::str::from_utf8(v).is_ok());
            if valid {
                let DataType::Dictionary(key, _) = keyed_text.data_type() else {
                    panic!(
                        "batch {n}: valid text stays keyed, got {}",
                        keyed_text.data_type()
                    );
                };
                let distinct = values
                    .iter()
                    .flatten()
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                let expected_key = match distinct {
                    d if d <= 256 => DataType::UInt8,
                    d if d <= 65_536 => DataType::UInt16,
                    _ => DataType::UInt32,
                };
                assert_eq!(key.as_ref(), &expected_key, "batch {n}");
            }
            let plain = arrow::compute::cast(&keyed_text, &DataType::Utf8).unwrap();
            assert_eq!(plain.to_data(), text.finish().to_data(), "batch {n}");
            assert_eq!(keyed_raw.to_data(), raw.finish().to_data(), "batch {n}");
        }
        assert!(keyed.is_empty());
        // The plain finish gives the table's type.
        keyed.append(Some(b"/x"));
        let (text, _) = keyed.finish_plain().unwrap();
        assert_eq!(text.data_type(), &DataType::Utf8);
    }
}
