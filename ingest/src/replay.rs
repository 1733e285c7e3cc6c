//! Replaying a file or stdin of eslogger lines.
//!
//! A replay must not lose anything, so unlike a live source it blocks when
//! the sink is slow instead of dropping. Lines are read with a bounded
//! length: a line longer than [`ReplayOptions::max_line_bytes`] is skipped
//! as malformed (and reported) rather than read whole into memory.

use std::io::BufRead;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::TableDef;

use crate::eslogger::EsloggerDecoder;
use crate::stats::{LineProblem, SkipReason};

/// How a replay reads and batches.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Hand a batch to the sink once this many rows are buffered (over all
    /// tables). Larger batches make fewer, better-compressed Parquet files.
    pub batch_rows: usize,
    /// Lines longer than this are skipped as malformed.
    pub max_line_bytes: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            batch_rows: 128 * 1024,
            max_line_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why a replay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E: std::error::Error + 'static> {
    /// Reading the input failed.
    #[error("reading the input failed at line {line}: {source}")]
    Read {
        /// The line being read.
        line: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Building a batch failed (a bug: rows always fit their schema).
    #[error("building a batch failed: {0}")]
    Build(#[from] ArrowError),
    /// The sink refused a batch.
    #[error(transparent)]
    Sink(E),
}

/// Reads every line of `reader` into `decoder`, handing full batches to
/// `sink`, and the rest at the end. The batches are in the form storage
/// takes ([`EsloggerDecoder::take_keyed_batches`]): file events' paths as
/// dictionaries.
pub fn replay_eslogger<R, E, S>(
    mut reader: R,
    decoder: &mut EsloggerDecoder,
    options: &ReplayOptions,
    mut sink: S,
) -> Result<(), ReplayError<E>>
where
    R: BufRead,
    E: std::error::Error + 'static,
    S: FnMut(&'static TableDef, RecordBatch) -> Result<(), E>,
{
    let mut line = Vec::with_capacity(64 * 1024);
    let mut line_no: u64 = 0;
    loop {
        line.clear();
        line_no += 1;
        let outcome = read_line_bounded(&mut reader, &mut line, options.max_line_bytes).map_err(
            |source| ReplayError::Read {
                line: line_no,
                source,
            },
        )?;
        match outcome {
            LineRead::Eof => break,
            LineRead::TooLong(len) => decoder.record_problem(LineProblem {
                line: line_no,
                byte: Some(options.max_line_bytes),
                reason: SkipReason::Malformed,
                detail: format!(
                    "line of {len} bytes is longer than the limit of {} bytes",
                    options.max_line_bytes
                ),
            }),
            LineRead::Line => {
                let content = line.strip_suffix(b"\n").unwrap_or(&line);
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                decoder.decode_line(content, line_no);
            }
        }
        if decoder.buffered_rows() >= options.batch_rows {
            for (table, batch) in decoder.take_keyed_batches()? {
                sink(table, batch).map_err(ReplayError::Sink)?;
            }
        }
    }
    for (table, batch) in decoder.take_keyed_batches()? {
        sink(table, batch).map_err(ReplayError::Sink)?;
    }
    Ok(())
}

enum LineRead {
    Eof,
    Line,
    /// The line was longer than allowed; it was consumed, not kept.
    TooLong(u64),
}

/// Reads up to and including the next newline, keeping at most `max` bytes.
fn read_line_bounded<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    let mut total: u64 = 0;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (total, too_long) {
                (0, _) => LineRead::Eof,
                (len, true) => LineRead::TooLong(len),
                (_, false) => LineRead::Line,
            });
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        total += n as u64;
        if !too_long {
            if line.len() + n > max.saturating_add(1) {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(n);
        if done {
            return Ok(if too_long {
                LineRead::TooLong(total)
            } else {
                LineRead::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_and_the_rest_kept() {
        let long = format!("{}\n", "x".repeat(100));
        let input = format!("a\n{long}b\nlast");
        let mut reader = std::io::Cursor::new(input.into_bytes());
        let mut line = Vec::new();
        let mut seen = Vec::new();
        loop {
            line.clear();
            match read_line_bounded(&mut reader, &mut line, 10).unwrap() {
                LineRead::Eof => break,
                LineRead::TooLong(n) => seen.push(format!("too long {n}")),
                LineRead::Line => seen.push(String::from_utf8(line.clone()).unwrap()),
            }
        }
        assert_eq!(seen, vec!["a\n", "too long 101", "b\n", "last"]);
    }
}
