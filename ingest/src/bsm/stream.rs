//! Reading records from a file, a pipe or stdin, a chunk at a time.
//!
//! Records do not line up with reads: a read may end in the middle of one.
//! [`RecordStream`] keeps one growing buffer, hands every complete record in
//! it to the caller as a [`Frame`] borrowed from that buffer, and carries the
//! incomplete tail over to the next read. Only that tail is ever copied.
//! When the input ends, [`RecordStream::finish`] reports a tail that never
//! became a whole record as a record cut short.
//!
//! [`replay_bsm`] is the whole replay: every record into a [`BsmDecoder`],
//! full batches to a sink that may block (a replay loses nothing).

use std::io::{self, Read};

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::TableDef;

use super::decoder::BsmDecoder;
use super::frame::{Frame, RecordSplitter};

/// Why a stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E: std::error::Error + 'static> {
    /// Reading the input failed.
    #[error("reading the input failed at byte {offset}: {source}")]
    Read {
        /// Stream offset where the read was to start.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// Whoever received the frames gave up.
    #[error(transparent)]
    Sink(E),
}

/// A byte stream cut into frames as it arrives.
#[derive(Debug, Default)]
pub struct RecordStream {
    /// Initialised storage; `buf[..filled]` holds data.
    buf: Vec<u8>,
    filled: usize,
    /// The first byte of `buf` not yet handed out.
    start: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    splitter: RecordSplitter,
}

impl RecordStream {
    /// How much one read asks for, at least.
    pub const READ_CHUNK: usize = 256 * 1024;

    /// A stream at offset 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stream offset of the next byte to be read.
    pub fn offset(&self) -> u64 {
        self.base + self.filled as u64
    }

    /// Bytes read but not yet handed out (the start of an incomplete record).
    pub fn pending(&self) -> usize {
        self.filled - self.start
    }

    /// Makes room for a read of at least [`Self::READ_CHUNK`] bytes after
    /// the unread tail, moving the tail to the front.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.base += self.start as u64;
            self.filled -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.filled < Self::READ_CHUNK {
            // Zero only the new part, once: later reads reuse it.
            let len = (self.filled + Self::READ_CHUNK).max(self.buf.len() * 2);
            self.buf.resize(len, 0);
        }
    }

    /// Reads once from `reader` and hands every complete frame to `emit`.
    /// Returns the number of bytes read; 0 means the reader is at its end
    /// (for now: a growing file may have more later).
    pub fn read_from<R, E>(
        &mut self,
        reader: &mut R,
        emit: &mut impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<usize, StreamError<E>>
    where
        R: Read + ?Sized,
        E: std::error::Error + 'static,
    {
        self.make_room();
        let n = loop {
            match reader.read(&mut self.buf[self.filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StreamError::Read {
                        offset: self.offset(),
                        source,
                    });
                }
            }
        };
        self.filled += n;
        if n > 0 {
            self.split(false, emit).map_err(StreamError::Sink)?;
        }
        Ok(n)
    }

    /// The input has ended: hands out what is left, reporting an incomplete
    /// record as cut short. The stream can be reused for a new input after
    /// [`reset`](Self::reset).
    pub fn finish<E>(
        &mut self,
        emit: &mut impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.split(true, emit)
    }

    /// Forgets everything, for a new input starting at offset 0; keeps the
    /// buffer's memory.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.start = 0;
        self.base = 0;
        self.splitter = RecordSplitter::new();
    }

    fn split<E>(
        &mut self,
        at_eof: bool,
        emit: &mut impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let unread = &self.buf[self.start..self.filled];
        let consumed = self
            .splitter
            .split(unread, self.base + self.start as u64, at_eof, emit)?;
        self.start += consumed;
        Ok(())
    }

    /// Reads `reader` to its end, handing every frame to `emit`.
    pub fn read_to_end<R, E>(
        &mut self,
        mut reader: R,
        emit: &mut impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), StreamError<E>>
    where
        R: Read,
        E: std::error::Error + 'static,
    {
        while self.read_from(&mut reader, emit)? > 0 {}
        self.finish(emit).map_err(StreamError::Sink)
    }
}

/// Why a BSM replay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E: std::error::Error + 'static> {
    /// Reading the input failed.
    #[error("reading the input failed at byte {offset}: {source}")]
    Read {
        /// Stream offset where the read was to start.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// Building a batch failed (a bug: rows always fit their schema).
    #[error("building a batch failed: {0}")]
    Build(#[from] ArrowError),
    /// The sink refused a batch.
    #[error(transparent)]
    Sink(E),
}

/// What went wrong inside the frame callback.
#[derive(Debug, thiserror::Error)]
enum EmitError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Build(ArrowError),
    #[error(transparent)]
    Sink(E),
}

impl<E: std::error::Error + 'static> From<StreamError<EmitError<E>>> for ReplayError<E> {
    fn from(e: StreamError<EmitError<E>>) -> Self {
        match e {
            StreamError::Read { offset, source } => ReplayError::Read { offset, source },
            StreamError::Sink(EmitError::Build(e)) => ReplayError::Build(e),
            StreamError::Sink(EmitError::Sink(e)) => ReplayError::Sink(e),
        }
    }
}

/// Decodes every record of `reader` with `decoder`, handing a batch per
/// table to `sink` whenever `batch_rows` rows are buffered. The rows still
/// buffered at the end are left in the decoder, so that several inputs (the
/// trails of a directory) can fill the same batches; take them with
/// [`BsmDecoder::take_batches`].
pub fn replay_bsm<R, E, S>(
    reader: R,
    stream: &mut RecordStream,
    decoder: &mut BsmDecoder,
    batch_rows: usize,
    sink: &mut S,
) -> Result<(), ReplayError<E>>
where
    R: Read,
    E: std::error::Error + 'static,
    S: FnMut(&'static TableDef, RecordBatch) -> Result<(), E>,
{
    let mut emit = |frame: Frame<'_>| -> Result<(), EmitError<E>> {
        decoder.decode_frame(&frame);
        if decoder.buffered_rows() >= batch_rows {
            for (table, batch) in decoder.take_batches().map_err(EmitError::Build)? {
                sink(table, batch).map_err(EmitError::Sink)?;
            }
        }
        Ok(())
    };
    stream.read_to_end(reader, &mut emit)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bsm::encode::RecordWriter;

    /// A reader that returns at most `n` bytes a call, to split records
    /// across reads.
    struct Trickle<'a> {
        data: &'a [u8],
        n: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.n.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn frames(data: &[u8], n: usize) -> Vec<String> {
        let mut stream = RecordStream::new();
        let mut seen = Vec::new();
        stream
            .read_to_end(Trickle { data, n }, &mut |frame: Frame<'_>| {
                seen.push(match frame {
                    Frame::Record(r) => format!("record {} {}", r.offset, r.bytes.len()),
                    Frame::Corrupt(c) => format!("damage {} {} {}", c.offset, c.len, c.damage),
                    Frame::FileToken { offset, .. } => format!("file {offset}"),
                });
                Ok::<(), io::Error>(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn records_split_across_reads_come_out_whole_and_in_order() {
        let mut data = Vec::new();
        for i in 0..20u32 {
            data.extend(
                RecordWriter::new(23, 1_700_000_000 + i, 0)
                    .exec_args((0..i).map(|a| format!("arg{a}")))
                    .finish(),
            );
        }
        data.extend_from_slice(b"\x14\x00\x00"); // a header cut short
        let whole = frames(&data, usize::MAX);
        assert_eq!(whole.len(), 21);
        assert!(whole[20].starts_with("damage"), "{whole:?}");
        for n in [1, 2, 7, 64, 1000] {
            assert_eq!(frames(&data, n), whole, "reads of {n} bytes");
        }
    }

    #[test]
    fn damage_spanning_reads_is_reported_once() {
        let good = RecordWriter::new(23, 1, 0).finish();
        let mut data = good.clone();
        data.extend(std::iter::repeat_n(0xAAu8, 5000));
        data.extend_from_slice(&good);
        for n in [1, 3, 100, 4096, usize::MAX] {
            let seen = frames(&data, n);
            assert_eq!(seen.len(), 3, "reads of {n}: {seen:?}");
            assert!(
                seen[1].starts_with(&format!("damage {} 5000", good.len())),
                "{seen:?}"
            );
        }
    }
}
