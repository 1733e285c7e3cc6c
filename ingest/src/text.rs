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

use arrow::array::{Array, ArrayRef, BinaryArray, BinaryBuilder, StringArray, StringBuilder};

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
}
