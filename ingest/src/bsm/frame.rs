//! Records out of a byte stream: framing, damage and resynchronisation.
//!
//! A trail is records laid end to end with nothing between them. A record
//! starts with a header token whose length field gives the whole record's
//! length, and ends with a trailer token that repeats that length after the
//! magic 0xB105. [`RecordSplitter`] checks both ends before it hands a record
//! out, so a record it yields is well framed; its body is read later, and only
//! if some table wants it.
//!
//! When the bytes at a record boundary are not a well-framed record (a bad
//! length, a flipped bit, a record cut short by a crash, garbage), the
//! splitter reports the damaged span once, with its byte offset, and looks
//! for the next *plausible header*: a header id, a supported version, a
//! length within bounds, and a matching trailer where that length says it
//! ends. Every good record after the damage is kept.
//!
//! The splitter works on whatever part of the stream is in memory. It does
//! not consume an incomplete record at the end of the buffer unless told the
//! stream has ended, so a reader can append more bytes and call again; a
//! trail that ends in the middle of a record is then reported as truncated.
//!
//! Solaris trails begin and end with a stand-alone `file` token; one found at
//! a record boundary is handed out as [`Frame::FileToken`]. (The search
//! after damage looks for headers only, so a `file` token right after damage
//! is part of the damaged span.)

use std::fmt;

use super::token::{Header, TRAILER_LEN, TRAILER_MAGIC, Token, id, parse_token};

/// The largest record the splitter accepts. Kernels cap records far below
/// this (an exec with every argument is tens of kilobytes), so a larger
/// length is damage, and waiting for it to arrive would only hold memory.
pub const MAX_RECORD_LEN: u32 = 4 << 20;

/// Header versions sluice reads: 1 (old Darwin), 2 (Solaris), 10 (OpenBSM
/// 1.0) and 11 (OpenBSM 1.1 and later: FreeBSD and macOS today).
pub const SUPPORTED_VERSIONS: [u8; 4] = [1, 2, 10, 11];

/// A well-framed record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Byte offset of the record in the stream.
    pub offset: u64,
    /// The whole record, header and trailer included.
    pub bytes: &'a [u8],
    /// Its header.
    pub header: Header,
    /// Length of the header token, where the body starts.
    pub header_len: usize,
}

impl<'a> Record<'a> {
    /// The body tokens' bytes: between the header and the trailer.
    pub fn body(&self) -> &'a [u8] {
        let end = self.bytes.len().saturating_sub(TRAILER_LEN);
        self.bytes.get(self.header_len..end).unwrap_or_default()
    }
}

/// What was wrong with a damaged span of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The byte at a record boundary is not a header (or file) token.
    NotAHeader {
        /// The byte found.
        found: u8,
    },
    /// A header whose version sluice does not read.
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// A header whose record length is too small to hold a header and a
    /// trailer, or larger than [`MAX_RECORD_LEN`].
    BadLength {
        /// The length the header claims.
        claimed: u32,
    },
    /// A header whose record does not end in a trailer with the same length.
    TrailerMismatch {
        /// The length the header claims.
        claimed: u32,
    },
    /// A record cut short: the stream ends, or the next record begins,
    /// before the length its header claims.
    CutShort {
        /// The length the header claims, if the header was complete enough
        /// to say.
        claimed: Option<u32>,
        /// The bytes there were.
        available: u64,
    },
    /// A header token that cannot be read (a bad host address type).
    BadHeader,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Damage::NotAHeader { found } => {
                write!(f, "expected a header token, found byte {found:#04x}")
            }
            Damage::UnsupportedVersion { version } => {
                write!(f, "header version {version} is not one of 1, 2, 10, 11")
            }
            Damage::BadLength { claimed } => write!(f, "bad record length {claimed}"),
            Damage::TrailerMismatch { claimed } => write!(
                f,
                "no trailer matching the record length {claimed} where the record should end"
            ),
            Damage::CutShort {
                claimed: Some(claimed),
                available,
            } => write!(
                f,
                "record of {claimed} bytes cut short after {available} bytes"
            ),
            Damage::CutShort {
                claimed: None,
                available,
            } => write!(f, "record cut short after {available} bytes"),
            Damage::BadHeader => f.write_str("unreadable header token"),
        }
    }
}

/// A damaged span: reported once, however long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// Byte offset in the stream where the damage starts.
    pub offset: u64,
    /// How many bytes were skipped.
    pub len: u64,
    /// What was wrong at `offset`.
    pub damage: Damage,
}

impl Corruption {
    /// Whether the damage is a record cut short (rather than bytes that are
    /// wrong).
    pub fn is_truncation(&self) -> bool {
        matches!(self.damage, Damage::CutShort { .. })
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes skipped)", self.damage, self.len)
    }
}

/// What the splitter hands out.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// A well-framed record.
    Record(Record<'a>),
    /// A stand-alone `file` token between records.
    FileToken {
        /// Byte offset in the stream.
        offset: u64,
        /// The token's bytes.
        bytes: &'a [u8],
    },
    /// A damaged span that was skipped.
    Corrupt(Corruption),
}

/// What is at one offset of the buffer.
enum Probe<'a> {
    Record(Record<'a>),
    FileToken(usize),
    /// Not enough bytes to tell; `claimed` is the record length if the
    /// header got that far.
    NeedMore {
        claimed: Option<u32>,
    },
    Invalid(Damage),
}

/// Checks whether a well-framed record (or a stand-alone file token) starts
/// at `buf[at]`.
fn probe(buf: &[u8], at: usize, base: u64) -> Probe<'_> {
    let Some(&first) = buf.get(at) else {
        return Probe::NeedMore { claimed: None };
    };
    if first == id::FILE {
        return match parse_token(buf, at) {
            // A file name is a C string: it ends with its NUL.
            Ok((Token::File { name, .. }, len)) if name.last() == Some(&0) => Probe::FileToken(len),
            Ok(_) => Probe::Invalid(Damage::NotAHeader { found: first }),
            Err(_) => Probe::NeedMore { claimed: None },
        };
    }
    if !id::is_header(first) {
        return Probe::Invalid(Damage::NotAHeader { found: first });
    }
    // Length and version come first in every header form.
    let Some(&[l0, l1, l2, l3, version]) = buf.get(at + 1..at + 6) else {
        return Probe::NeedMore { claimed: None };
    };
    let claimed = u32::from_be_bytes([l0, l1, l2, l3]);
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Probe::Invalid(Damage::UnsupportedVersion { version });
    }
    if claimed > MAX_RECORD_LEN || (claimed as usize) < 18 + TRAILER_LEN {
        return Probe::Invalid(Damage::BadLength { claimed });
    }
    let len = claimed as usize;
    let Some(bytes) = buf.get(at..at + len) else {
        return Probe::NeedMore {
            claimed: Some(claimed),
        };
    };
    let (header, header_len) = match parse_token(bytes, 0) {
        Ok((Token::Header(h), n)) => (h, n),
        _ => return Probe::Invalid(Damage::BadHeader),
    };
    if header_len + TRAILER_LEN > len {
        return Probe::Invalid(Damage::BadLength { claimed });
    }
    match bytes.get(len - TRAILER_LEN..) {
        Some(&[tid, m0, m1, c0, c1, c2, c3])
            if tid == id::TRAILER
                && u16::from_be_bytes([m0, m1]) == TRAILER_MAGIC
                && u32::from_be_bytes([c0, c1, c2, c3]) == claimed => {}
        _ => return Probe::Invalid(Damage::TrailerMismatch { claimed }),
    }
    Probe::Record(Record {
        offset: base + at as u64,
        bytes,
        header,
        header_len,
    })
}

/// Where the search for the next plausible header ended.
enum Resync {
    /// A well-framed record starts here.
    Found(usize),
    /// A header starts here that cannot be judged until more bytes arrive.
    Undecided(usize),
    /// No record starts anywhere in the rest of the buffer.
    NotFound,
}

/// Looks for the next well-framed record in `buf[from..]`.
fn resync(buf: &[u8], base: u64, from: usize, at_eof: bool) -> Resync {
    let mut at = from;
    while let Some(rest) = buf.get(at..) {
        let Some(skip) = rest.iter().position(|&b| id::is_header(b)) else {
            break;
        };
        at += skip;
        match probe(buf, at, base) {
            Probe::Record(_) => return Resync::Found(at),
            Probe::NeedMore { .. } if !at_eof => return Resync::Undecided(at),
            _ => at += 1,
        }
    }
    Resync::NotFound
}

/// Cuts a byte stream into records, reporting and skipping damage.
///
/// ```
/// use sluice_ingest::bsm::encode::RecordWriter;
/// use sluice_ingest::bsm::frame::{Frame, RecordSplitter};
///
/// let mut trail = RecordWriter::new(23, 1_700_000_000, 250).text("hello").finish();
/// let first = trail.len();
/// trail.extend_from_slice(b"garbage");
/// trail.extend(RecordWriter::new(23, 1_700_000_001, 0).finish());
/// let mut seen = Vec::new();
/// RecordSplitter::new()
///     .split(&trail, 0, true, &mut |frame| {
///         seen.push(match frame {
///             Frame::Record(r) => ("record", r.offset),
///             Frame::Corrupt(c) => ("damage", c.offset),
///             Frame::FileToken { offset, .. } => ("file", offset),
///         });
///         Ok::<(), ()>(())
///     })
///     .unwrap();
/// let first = first as u64;
/// assert_eq!(seen, [("record", 0), ("damage", first), ("record", first + 7)]);
/// ```
#[derive(Debug, Default)]
pub struct RecordSplitter {
    /// A damaged span whose end has not been found yet (the buffer ended
    /// while looking for the next record).
    pending: Option<Corruption>,
}

impl RecordSplitter {
    /// A splitter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands every complete frame of `buf` to `emit`, in stream order, and
    /// returns how many bytes of `buf` were consumed. The rest must be passed
    /// again, with more bytes after it, in the next call. `base` is the
    /// stream offset of `buf[0]`. When `at_eof` is true everything is
    /// consumed: an incomplete record at the end is reported as cut short.
    pub fn split<'a, E>(
        &mut self,
        buf: &'a [u8],
        base: u64,
        at_eof: bool,
        emit: &mut impl FnMut(Frame<'a>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut at = 0;
        if self.pending.is_some() {
            // Still inside a damaged span: look for its end first.
            match self.skip_damage(buf, base, 0, at_eof, emit)? {
                Skip::Resume(next) => at = next,
                Skip::Consumed(n) => return Ok(n),
            }
        }
        while at < buf.len() {
            let damage = match probe(buf, at, base) {
                Probe::Record(record) => {
                    at += record.bytes.len();
                    emit(Frame::Record(record))?;
                    continue;
                }
                Probe::FileToken(len) => {
                    let bytes = buf.get(at..at + len).unwrap_or_default();
                    emit(Frame::FileToken {
                        offset: base + at as u64,
                        bytes,
                    })?;
                    at += len;
                    continue;
                }
                Probe::NeedMore { .. } if !at_eof => return Ok(at),
                Probe::NeedMore { claimed } => Damage::CutShort {
                    claimed,
                    available: (buf.len() - at) as u64,
                },
                Probe::Invalid(damage) => damage,
            };
            self.pending = Some(Corruption {
                offset: base + at as u64,
                len: 0,
                damage,
            });
            match self.skip_damage(buf, base, at + 1, at_eof, emit)? {
                Skip::Resume(next) => at = next,
                Skip::Consumed(n) => return Ok(n),
            }
        }
        Ok(at)
    }

    /// Searches `buf[from..]` for the end of the pending damage.
    fn skip_damage<'a, E>(
        &mut self,
        buf: &'a [u8],
        base: u64,
        from: usize,
        at_eof: bool,
        emit: &mut impl FnMut(Frame<'a>) -> Result<(), E>,
    ) -> Result<Skip, E> {
        Ok(match resync(buf, base, from, at_eof) {
            Resync::Found(next) => {
                self.close_damage(base + next as u64, emit)?;
                Skip::Resume(next)
            }
            // Everything before the undecided header is damage; the header
            // itself is judged when more bytes arrive.
            Resync::Undecided(next) => Skip::Consumed(next),
            Resync::NotFound if at_eof => {
                self.close_damage(base + buf.len() as u64, emit)?;
                Skip::Consumed(buf.len())
            }
            Resync::NotFound => Skip::Consumed(buf.len()),
        })
    }

    /// Ends the pending damage at stream offset `end` and emits it.
    fn close_damage<'a, E>(
        &mut self,
        end: u64,
        emit: &mut impl FnMut(Frame<'a>) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(mut c) = self.pending.take() else {
            return Ok(());
        };
        c.len = end.saturating_sub(c.offset);
        // A header whose record would end past the start of the next good
        // record was cut short (a crash mid-write), not overwritten.
        if let Damage::TrailerMismatch { claimed } = c.damage
            && c.offset + u64::from(claimed) > end
        {
            c.damage = Damage::CutShort {
                claimed: Some(claimed),
                available: c.len,
            };
        }
        emit(Frame::Corrupt(c))
    }
}

/// What `skip_damage` decided.
enum Skip {
    /// The damage is closed; carry on at this offset.
    Resume(usize),
    /// The damage goes on past what can be judged now; this many bytes are
    /// consumed.
    Consumed(usize),
}
