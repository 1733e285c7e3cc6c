//! Damage loses only the damaged record: every reference record and the
//! trail's record is cut at every length and has every bit flipped in turn,
//! between two intact copies of the trail's execve record. The intact
//! records must come out byte for byte, as rows, and the damage must cost
//! at most the one record it hit (reported with its offset).

use super::*;
use crate::SkipReason;
use crate::bsm::BsmDecoder;
use crate::bsm::frame::{Frame, RecordSplitter};

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Record { offset: u64, bytes: Vec<u8> },
    Damage { offset: u64, len: u64, cut: bool },
}

fn frames(stream: &[u8]) -> Vec<Seen> {
    let mut out = Vec::new();
    RecordSplitter::new()
        .split(stream, 0, true, &mut |frame| {
            out.push(match frame {
                Frame::Record(r) => Seen::Record {
                    offset: r.offset,
                    bytes: r.bytes.to_vec(),
                },
                Frame::Corrupt(c) => Seen::Damage {
                    offset: c.offset,
                    len: c.len,
                    cut: c.is_truncation(),
                },
                Frame::FileToken { offset, .. } => panic!("file token at {offset}"),
            });
            Ok::<(), ()>(())
        })
        .unwrap();
    out
}

/// Every reference record, and the trail's record.
fn targets() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = reference_files("_record")
        .into_iter()
        .map(|name| {
            let bytes = read(&format!("openbsm-reference/{name}"));
            (name, bytes)
        })
        .collect();
    out.push(("execve-long-args.trail".into(), execve_trail()));
    out
}

/// Decodes `stream` and checks the damage cost at most one record: both
/// intact execve records are rows, and at most one problem was counted
/// besides records no table maps.
fn check_rows(decoder: &mut BsmDecoder, stream: &[u8], what: &str) {
    let before = decoder.events_by_table()[0].1;
    let problems = |d: &BsmDecoder| {
        d.stats().skipped(SkipReason::Malformed)
            + d.stats().skipped(SkipReason::Truncated)
            + d.stats().skipped(SkipReason::MissingField)
    };
    let problems_before = problems(decoder);
    decoder.decode_bytes(stream);
    let rows = decoder.events_by_table()[0].1 - before;
    assert!((2..=3).contains(&rows), "{what}: {rows} process rows");
    assert!(
        problems(decoder) - problems_before <= 1,
        "{what}: more than one problem"
    );
    if decoder.buffered_rows() > 10_000 {
        decoder.take_batches().expect("rows fit their schema");
    }
}

#[test]
fn truncated_copies_lose_only_the_cut_record() {
    let good = execve_trail();
    let mut decoder = BsmDecoder::new();
    for (name, record) in targets() {
        for cut in 1..record.len() {
            let piece = &record[..cut];
            let what = format!("{name} cut to {cut} bytes");

            // Cut in the middle of a trail: the next record follows.
            let mut stream = good.clone();
            stream.extend_from_slice(piece);
            stream.extend_from_slice(&good);
            let seen = frames(&stream);
            let after = (good.len() + cut) as u64;
            assert_eq!(
                seen,
                [
                    Seen::Record {
                        offset: 0,
                        bytes: good.clone()
                    },
                    Seen::Damage {
                        offset: good.len() as u64,
                        len: cut as u64,
                        cut: matches!(&seen[1], Seen::Damage { cut: true, .. }),
                    },
                    Seen::Record {
                        offset: after,
                        bytes: good.clone()
                    },
                ],
                "{what}"
            );
            check_rows(&mut decoder, &stream, &what);

            // Cut at the end of a trail, as by a crash: reported as cut short.
            let mut stream = good.clone();
            stream.extend_from_slice(piece);
            assert_eq!(
                frames(&stream),
                [
                    Seen::Record {
                        offset: 0,
                        bytes: good.clone()
                    },
                    Seen::Damage {
                        offset: good.len() as u64,
                        len: cut as u64,
                        cut: true
                    },
                ],
                "{what} at the end"
            );
        }
    }
}

#[test]
fn bit_flipped_copies_lose_only_the_flipped_record() {
    let good = execve_trail();
    let mut decoder = BsmDecoder::new();
    let mut kept_as_records = 0u64;
    let mut reported = 0u64;
    for (name, record) in targets() {
        for byte in 0..record.len() {
            for bit in 0..8 {
                let mut flipped = record.clone();
                flipped[byte] ^= 1 << bit;
                let what = format!("{name} with bit {bit} of byte {byte} flipped");
                let mut stream = good.clone();
                stream.extend_from_slice(&flipped);
                stream.extend_from_slice(&good);
                let seen = frames(&stream);
                assert_eq!(seen.len(), 3, "{what}: {seen:?}");
                assert_eq!(
                    seen[0],
                    Seen::Record {
                        offset: 0,
                        bytes: good.clone()
                    },
                    "{what}"
                );
                assert_eq!(
                    seen[2],
                    Seen::Record {
                        offset: (good.len() + record.len()) as u64,
                        bytes: good.clone()
                    },
                    "{what}"
                );
                match &seen[1] {
                    // A flipped value inside a well-framed record cannot be
                    // seen (BSM has no checksum); the record is kept.
                    Seen::Record { bytes, .. } => {
                        assert_eq!(bytes, &flipped, "{what}");
                        kept_as_records += 1;
                    }
                    Seen::Damage { offset, len, .. } => {
                        assert_eq!(*offset, good.len() as u64, "{what}");
                        assert_eq!(*len, record.len() as u64, "{what}");
                        reported += 1;
                    }
                }
                check_rows(&mut decoder, &stream, &what);
            }
        }
    }
    // Both outcomes happen: flips in lengths, ids and trailers are damage,
    // flips in values are not.
    assert!(kept_as_records > 0 && reported > 0);
}
