//! Any bytes, split into lines, through the eslogger decoder and the Arrow
//! builders. The decoder must never panic, and must account for every
//! non-blank line as either a row or a skipped line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_ingest::eslogger::EsloggerDecoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = EsloggerDecoder::new();
    let mut non_blank = 0u64;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if !line.iter().all(u8::is_ascii_whitespace) {
            non_blank += 1;
        }
        decoder.decode_line(line, i as u64 + 1);
    }
    let rows: u64 = decoder.events_by_table().iter().map(|(_, n)| n).sum();
    assert_eq!(rows + decoder.stats().skipped_total(), non_blank);
    let batches = decoder.take_batches().expect("rows always fit their schema");
    let built: usize = batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(built as u64, rows);
});
