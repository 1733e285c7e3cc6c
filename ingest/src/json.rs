//! A small pull parser for one line of JSON, over borrowed bytes.
//!
//! eslogger prints one large JSON object a line, and sluice needs perhaps a
//! third of what it says. A tree parser would allocate a node for every key of
//! every `stat` block only to throw it away; this cursor instead lets the
//! decoder walk the keys it wants and skip the rest without allocating.
//!
//! - Keys are returned as the raw bytes between the quotes. The keys sluice
//!   looks for contain no escapes, so a key that does is simply one it does
//!   not know.
//! - Strings are unescaped into a buffer the caller owns and reuses.
//!   Invalid UTF-8 inside a string is kept as it is, byte for byte, because
//!   paths are bytes; a lone surrogate escape `\uDC80`–`\uDCFF` becomes the
//!   byte 0x80–0xFF (the "surrogateescape" convention) so encoders that use it
//!   round-trip too.
//! - Integers are read as `u64`/`i64` directly, never through `f64`, so values
//!   above 2^53 (seen in `st_ino`) survive.
//! - Skipping is iterative, so deeply nested input cannot exhaust the stack.

use memchr::memchr2;

/// What went wrong, and where (a byte offset into the line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// The byte offset in the line at which the problem was found.
    pub offset: usize,
    /// The kind of problem.
    pub kind: JsonErrorKind,
}

/// The kinds of JSON problems the cursor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// The input ended inside a value: the line was cut short.
    UnexpectedEnd,
    /// A byte that cannot start or continue what was expected.
    Unexpected {
        /// What the parser was looking for.
        expected: &'static str,
        /// The byte it found instead.
        found: u8,
    },
    /// An integer that does not fit, or a fraction where an integer belongs.
    BadNumber,
    /// A malformed backslash escape inside a string.
    BadEscape,
}

impl std::fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonErrorKind::UnexpectedEnd => {
                write!(f, "line cut short (input ended inside a value)")
            }
            JsonErrorKind::Unexpected { expected, found } => {
                write!(f, "expected {expected}, found {}", ShowByte(*found))
            }
            JsonErrorKind::BadNumber => write!(f, "not an integer in range"),
            JsonErrorKind::BadEscape => write!(f, "bad escape sequence in string"),
        }
    }
}

/// Shows a byte as a character when it is printable ASCII, else as hex.
struct ShowByte(u8);

impl std::fmt::Display for ShowByte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "byte 0x{:02x}", self.0)
        }
    }
}

/// The result type of cursor operations.
pub type JsonResult<T> = Result<T, JsonError>;

/// A cursor over one JSON text.
pub struct JsonCursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> JsonCursor<'a> {
    /// Starts a cursor at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The current byte offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            offset: self.pos,
            kind,
        }
    }

    fn unexpected(&self, expected: &'static str) -> JsonError {
        match self.buf.get(self.pos) {
            Some(&found) => self.err(JsonErrorKind::Unexpected { expected, found }),
            None => self.err(JsonErrorKind::UnexpectedEnd),
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline]
    pub fn peek_byte(&mut self) -> Option<u8> {
        self.peek()
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.buf.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                return Some(b);
            }
        }
        None
    }

    #[inline]
    fn expect_byte(&mut self, want: u8, expected: &'static str) -> JsonResult<()> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Checks that nothing but whitespace is left.
    pub fn finish(&mut self) -> JsonResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("end of line")),
        }
    }

    /// Consumes a `null` if one is next, and says whether it did.
    #[inline]
    pub fn take_null(&mut self) -> JsonResult<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    fn literal(&mut self, word: &'static [u8]) -> JsonResult<()> {
        let end = self.pos + word.len();
        match self.buf.get(self.pos..end) {
            Some(s) if s == word => {
                self.pos = end;
                Ok(())
            }
            Some(_) => Err(self.unexpected("a JSON value")),
            None if word.starts_with(&self.buf[self.pos..]) => {
                self.pos = self.buf.len();
                Err(self.err(JsonErrorKind::UnexpectedEnd))
            }
            None => Err(self.unexpected("a JSON value")),
        }
    }

    /// Enters an object: consumes its `{`.
    #[inline]
    pub fn begin_object(&mut self) -> JsonResult<()> {
        self.expect_byte(b'{', "'{'")
    }

    /// Returns the next key of the current object, with its `:` consumed, or
    /// `None` when the object's `}` has been consumed. `first` must start as
    /// `true` for each object.
    #[inline]
    pub fn next_key(&mut self, first: &mut bool) -> JsonResult<Option<&'a [u8]>> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.unexpected("',' or '}'")),
        }
        *first = false;
        self.expect_byte(b'"', "a key")?;
        let key = self.raw_string_body()?;
        self.expect_byte(b':', "':'")?;
        Ok(Some(key))
    }

    /// Enters an array: consumes its `[`.
    #[inline]
    pub fn begin_array(&mut self) -> JsonResult<()> {
        self.expect_byte(b'[', "'['")
    }

    /// Moves to the next element of the current array and says whether there
    /// is one; `false` means the array's `]` has been consumed.
    #[inline]
    pub fn next_element(&mut self, first: &mut bool) -> JsonResult<bool> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.unexpected("',' or ']'")),
        }
        *first = false;
        Ok(true)
    }

    /// Returns the bytes between the quotes of a string whose opening quote
    /// has been consumed, escapes left as they are.
    #[inline]
    fn raw_string_body(&mut self) -> JsonResult<&'a [u8]> {
        let start = self.pos;
        loop {
            match find_quote_or_backslash(&self.buf[self.pos..]) {
                Some(i) if self.buf[self.pos + i] == b'"' => {
                    let end = self.pos + i;
                    self.pos = end + 1;
                    return Ok(&self.buf[start..end]);
                }
                // A backslash: step over it and the byte it escapes.
                Some(i) => self.pos += i + 2,
                None => {
                    self.pos = self.buf.len();
                    return Err(self.err(JsonErrorKind::UnexpectedEnd));
                }
            }
            if self.pos > self.buf.len() {
                self.pos = self.buf.len();
                return Err(self.err(JsonErrorKind::UnexpectedEnd));
            }
        }
    }

    /// Reads a string and appends its unescaped bytes to `out`.
    #[inline]
    pub fn string_into(&mut self, out: &mut Vec<u8>) -> JsonResult<()> {
        self.expect_byte(b'"', "a string")?;
        loop {
            let rest = &self.buf[self.pos..];
            match find_quote_or_backslash(rest) {
                Some(i) if rest[i] == b'"' => {
                    out.extend_from_slice(&rest[..i]);
                    self.pos += i + 1;
                    return Ok(());
                }
                Some(i) => {
                    out.extend_from_slice(&rest[..i]);
                    self.pos += i;
                    self.escape_into(out)?;
                }
                None => {
                    self.pos = self.buf.len();
                    return Err(self.err(JsonErrorKind::UnexpectedEnd));
                }
            }
        }
    }

    /// Decodes one escape sequence at the cursor (which is on the backslash).
    fn escape_into(&mut self, out: &mut Vec<u8>) -> JsonResult<()> {
        let Some(&c) = self.buf.get(self.pos + 1) else {
            self.pos = self.buf.len();
            return Err(self.err(JsonErrorKind::UnexpectedEnd));
        };
        let simple = match c {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(self.err(JsonErrorKind::BadEscape)),
        };
        if let Some(b) = simple {
            out.push(b);
            self.pos += 2;
            return Ok(());
        }
        let first = self.hex4(self.pos + 2)?;
        self.pos += 6;
        let code = if (0xD800..0xDC00).contains(&first) {
            // A high surrogate: a low one should follow to make a pair.
            let low = if self.buf.get(self.pos..self.pos + 2) == Some(b"\\u") {
                Some(self.hex4(self.pos + 2)?)
            } else {
                None
            };
            match low {
                Some(low) if (0xDC00..0xE000).contains(&low) => {
                    self.pos += 6;
                    0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
                }
                _ => {
                    push_wtf8(out, first);
                    return Ok(());
                }
            }
        } else if (0xDC80..0xDD00).contains(&first) {
            // surrogateescape: a lone low surrogate carries one raw byte.
            out.push((first - 0xDC00) as u8);
            return Ok(());
        } else if (0xDC00..0xE000).contains(&first) {
            push_wtf8(out, first);
            return Ok(());
        } else {
            first
        };
        match char::from_u32(code) {
            Some(ch) => {
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                Ok(())
            }
            None => Err(self.err(JsonErrorKind::BadEscape)),
        }
    }

    fn hex4(&self, at: usize) -> JsonResult<u32> {
        let Some(digits) = self.buf.get(at..at + 4) else {
            return Err(JsonError {
                offset: self.buf.len(),
                kind: JsonErrorKind::UnexpectedEnd,
            });
        };
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => {
                    return Err(JsonError {
                        offset: at,
                        kind: JsonErrorKind::BadEscape,
                    });
                }
            };
            v = v * 16 + u32::from(n);
        }
        Ok(v)
    }

    /// Reads a non-negative integer.
    #[inline]
    pub fn u64(&mut self) -> JsonResult<u64> {
        if self.peek().is_none() {
            return Err(self.err(JsonErrorKind::UnexpectedEnd));
        }
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(&b) = self.buf.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or(JsonError {
                    offset: start,
                    kind: JsonErrorKind::BadNumber,
                })?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected("an integer"));
        }
        match self.buf.get(self.pos) {
            Some(b'.' | b'e' | b'E') => Err(JsonError {
                offset: start,
                kind: JsonErrorKind::BadNumber,
            }),
            _ => Ok(v),
        }
    }

    /// Reads a signed integer.
    #[inline]
    pub fn i64(&mut self) -> JsonResult<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let magnitude = self.u64()?;
        let bad = JsonError {
            offset: start,
            kind: JsonErrorKind::BadNumber,
        };
        if negative {
            if magnitude == 1 << 63 {
                Ok(i64::MIN)
            } else {
                i64::try_from(magnitude).map(|v| -v).map_err(|_| bad)
            }
        } else {
            i64::try_from(magnitude).map_err(|_| bad)
        }
    }

    /// Reads `true` or `false`.
    #[inline]
    pub fn bool(&mut self) -> JsonResult<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(self.unexpected("true or false")),
        }
    }

    /// Skips one value of any kind, however deeply nested, without recursion.
    ///
    /// Scalars are checked as usual. Objects and arrays are skipped by
    /// counting brackets and jumping over strings, which is several times
    /// faster than tokenising them: their strings must end and their brackets
    /// must balance (so a cut line is still caught), but what lies between is
    /// not validated, because nothing in it will be read.
    pub fn skip_value(&mut self) -> JsonResult<()> {
        match self.peek() {
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(b'{' | b'[') => self.skip_container(),
            Some(b'"') => {
                self.pos += 1;
                self.raw_string_body().map(drop)
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                while let Some(&b) = self.buf.get(self.pos) {
                    if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Ok(())
            }
            Some(_) => Err(self.unexpected("a JSON value")),
        }
    }

    /// Skips an object or array starting at the cursor (on its opening
    /// bracket).
    fn skip_container(&mut self) -> JsonResult<()> {
        // 1 marks the bytes the skipper must look at: quotes and brackets.
        static STRUCTURAL: [u8; 256] = {
            let mut table = [0u8; 256];
            table[b'"' as usize] = 1;
            table[b'{' as usize] = 1;
            table[b'[' as usize] = 1;
            table[b'}' as usize] = 1;
            table[b']' as usize] = 1;
            table
        };
        let buf = self.buf;
        let mut i = self.pos + 1;
        let mut depth: usize = 1;
        loop {
            while i < buf.len() && STRUCTURAL[buf[i] as usize] == 0 {
                i += 1;
            }
            let Some(&b) = buf.get(i) else {
                self.pos = buf.len();
                return Err(self.err(JsonErrorKind::UnexpectedEnd));
            };
            i += 1;
            match b {
                b'"' => {
                    self.pos = i;
                    self.raw_string_body()?;
                    i = self.pos;
                }
                b'{' | b'[' => depth += 1,
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i;
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The index of the first `"` or `\\` in `bytes`.
///
/// Most strings in eslogger lines are short keys and numbers-as-text, for
/// which setting up a vectorised search costs more than it saves; look at
/// the first few bytes eight at a time in a register, and hand longer
/// strings (paths) to memchr.
#[inline(always)]
fn find_quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const SHORT: usize = 24;
    let mut at = 0;
    while at < SHORT {
        let Some(word) = bytes.get(at..at + 8) else {
            // Fewer than eight bytes left: the end of the line.
            return bytes[at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .map(|i| at + i);
        };
        let found =
            quote_or_backslash_lanes(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr2(b'"', b'\\', &bytes[SHORT..]).map(|i| i + SHORT)
}

/// The high bit of each byte lane of `word` that holds `"` or `\\`, and
/// possibly of lanes above the first such lane (a borrow can carry into
/// them), never below it: the lowest set bit marks the first match.
#[inline(always)]
fn quote_or_backslash_lanes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A lane of `x` is zero exactly where `word` held the byte.
    let zero_lanes = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    zero_lanes(word ^ (ONES * u64::from(b'"'))) | zero_lanes(word ^ (ONES * u64::from(b'\\')))
}

/// Appends a lone surrogate as its three-byte generalised UTF-8 form. The
/// result is not valid UTF-8, so it lands in the raw-bytes sidecar rather than
/// being silently replaced.
fn push_wtf8(out: &mut Vec<u8>, code: u32) {
    out.push(0xE0 | (code >> 12) as u8);
    out.push(0x80 | ((code >> 6) & 0x3F) as u8);
    out.push(0x80 | (code & 0x3F) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(input: &str) -> JsonResult<Vec<u8>> {
        let mut out = Vec::new();
        JsonCursor::new(input.as_bytes()).string_into(&mut out)?;
        Ok(out)
    }

    /// The word-at-a-time scan finds what a byte-by-byte scan finds, at
    /// every position and length, among bytes of every kind (ASCII,
    /// UTF-8 continuation and lead bytes, the two it looks for).
    #[test]
    fn quote_search_matches_a_byte_scan() {
        let alphabet = [
            b'a', b'"', b'\\', 0x00, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..80 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1);
                        // Mostly plain bytes, so matches land late as well as early.
                        let pick = (state >> 33) as usize % (alphabet.len() * 4);
                        alphabet.get(pick).copied().unwrap_or(b'x')
                    })
                    .collect();
                let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\');
                assert_eq!(find_quote_or_backslash(&bytes), expected, "{bytes:?}");
            }
        }
    }

    #[test]
    fn unescapes_slashes_and_unicode() {
        assert_eq!(string(r#""\/usr\/bin\/ls""#).unwrap(), b"/usr/bin/ls");
        assert_eq!(string(r#""a\"b\\c\n\t""#).unwrap(), b"a\"b\\c\n\t");
        assert_eq!(
            string(r#""caf\u00e9 \ud83d\ude00""#).unwrap(),
            "café 😀".as_bytes()
        );
    }

    #[test]
    fn keeps_raw_bytes_and_surrogate_escapes() {
        let mut out = Vec::new();
        JsonCursor::new(b"\"/tmp/\xff\xfe\"")
            .string_into(&mut out)
            .unwrap();
        assert_eq!(out, b"/tmp/\xff\xfe");
        assert_eq!(string(r#""\/tmp\/\udcff""#).unwrap(), b"/tmp/\xff");
        assert_eq!(string(r#""\ud800x""#).unwrap(), b"\xed\xa0\x80x");
    }

    #[test]
    fn integers_do_not_go_through_f64() {
        let mut c = JsonCursor::new(b"1152921500312525701");
        assert_eq!(c.u64().unwrap(), 1152921500312525701);
        let mut c = JsonCursor::new(b"-2147483646");
        assert_eq!(c.i64().unwrap(), -2147483646);
        let mut c = JsonCursor::new(b"18446744073709551616");
        assert_eq!(c.u64().unwrap_err().kind, JsonErrorKind::BadNumber);
        let mut c = JsonCursor::new(b"1.5");
        assert_eq!(c.u64().unwrap_err().kind, JsonErrorKind::BadNumber);
        let mut c = JsonCursor::new(b"-9223372036854775808");
        assert_eq!(c.i64().unwrap(), i64::MIN);
    }

    #[test]
    fn walks_objects_and_skips_what_it_does_not_need() {
        let input = br#"{"skip":{"a":[1,2,{"b":null}],"c":"x\"y"},"want":42, "t":true}"#;
        let mut c = JsonCursor::new(input);
        c.begin_object().unwrap();
        let mut first = true;
        let mut seen = Vec::new();
        while let Some(key) = c.next_key(&mut first).unwrap() {
            match key {
                b"want" => seen.push(c.u64().unwrap()),
                b"t" => assert!(c.bool().unwrap()),
                _ => c.skip_value().unwrap(),
            }
        }
        c.finish().unwrap();
        assert_eq!(seen, vec![42]);
    }

    #[test]
    fn truncation_is_reported_as_unexpected_end() {
        let whole = br#"{"a":{"b":[1,"xyz\/",true]}}"#;
        for cut in 0..whole.len() {
            let mut c = JsonCursor::new(&whole[..cut]);
            assert_eq!(
                c.skip_value().unwrap_err().kind,
                JsonErrorKind::UnexpectedEnd,
                "cut at {cut}"
            );
        }
        assert!(JsonCursor::new(whole).skip_value().is_ok());
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let deep = "[".repeat(1_000_000);
        let mut c = JsonCursor::new(deep.as_bytes());
        assert_eq!(
            c.skip_value().unwrap_err().kind,
            JsonErrorKind::UnexpectedEnd
        );
    }
}
