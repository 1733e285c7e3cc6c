//! Text that may not be text: paths and arguments as bytes, stored without loss.
//!
//! Paths are bytes on every OS, but Arrow's `Utf8` must hold valid UTF-8. A
//! value that is valid UTF-8 goes to its text column and its `<column>_bytes`
//! sidecar stays NULL. A value that is not goes to the text column as a
//! readable rendering (each invalid sequence becomes U+FFFD) and to the
//! sidecar exactly as it was. Queries on ordinary paths stay simple, and the
//! original bytes are always there for the rare path that needs them.

use arrow::array::{BinaryBuilder, StringBuilder};

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
}
