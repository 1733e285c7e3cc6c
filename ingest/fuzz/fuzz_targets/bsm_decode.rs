//! Any bytes as a BSM trail: through the record splitter, the decoder and
//! the Arrow builders, the praudit printer, and the same bytes read in small
//! pieces. Nothing may panic; every input byte must be accounted for as a
//! record, a file token or damage; every row counted must be built; and
//! reading in pieces must see exactly what reading at once sees.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use sluice_ingest::bsm::praudit::{PrauditOptions, write_record, write_token};
use sluice_ingest::bsm::token::tokens;
use sluice_ingest::bsm::{BsmDecoder, Frame, RecordSplitter, RecordStream};

/// A reader that hands out at most `n` bytes a call.
struct Pieces<'a> {
    data: &'a [u8],
    n: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.n.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn summary(frame: Frame<'_>) -> (u8, u64, u64) {
    match frame {
        Frame::Record(r) => (0, r.offset, r.bytes.len() as u64),
        Frame::FileToken { offset, bytes } => (1, offset, bytes.len() as u64),
        Frame::Corrupt(c) => (2, c.offset, c.len),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut decoder = BsmDecoder::new();
    decoder.decode_bytes(data);
    assert_eq!(
        decoder.stats().bytes,
        data.len() as u64,
        "every byte accounted for"
    );
    let rows: u64 = decoder.events_by_table().iter().map(|(_, n)| n).sum();
    let batches = decoder
        .take_batches()
        .expect("rows always fit their schema");
    let built: usize = batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(built as u64, rows);

    let mut whole = Vec::new();
    let mut printed = Vec::new();
    let options = PrauditOptions::default();
    RecordSplitter::new()
        .split(data, 0, true, &mut |frame| {
            if let Frame::Record(r) = frame {
                write_record(&mut printed, r.bytes, &options);
            }
            whole.push(summary(frame));
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    // Frames tile the input.
    let mut at = 0;
    for &(_, offset, len) in &whole {
        assert_eq!(offset, at);
        at += len;
    }
    assert_eq!(at, data.len() as u64);

    let n = usize::from(data.first().copied().unwrap_or(1) % 61).max(1);
    let mut pieces = Vec::new();
    RecordStream::new()
        .read_to_end(Pieces { data, n }, &mut |frame| {
            pieces.push(summary(frame));
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
    assert_eq!(pieces, whole, "reads of {n} bytes");

    // Any bytes as bare tokens, printed raw and named.
    let raw = PrauditOptions {
        raw: true,
        ..options
    };
    for (_, token) in tokens(data).flatten() {
        write_token(&mut printed, &token, &options);
        write_token(&mut printed, &token, &raw);
    }
});
