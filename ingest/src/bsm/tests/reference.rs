//! Every reference record and every bare token, decoded and printed the
//! praudit way, compared with praudit's own decodes: `-n -l` (names) and
//! `-r -l` (raw numbers). Whole lines are compared, so every field of every
//! token is checked; a mismatch names the first field that differs.

use std::net::IpAddr;

use super::*;
use crate::bsm::frame::{Frame, RecordSplitter};
use crate::bsm::praudit::{PrauditOptions, write_record, write_token};
use crate::bsm::token::{SubjectForm, Token, parse_token};

fn options(raw: bool) -> PrauditOptions {
    PrauditOptions {
        raw,
        ..PrauditOptions::default()
    }
}

/// Splits `bytes` at EOF and checks it is exactly whole records.
fn records(name: &str, bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    RecordSplitter::new()
        .split(bytes, 0, true, &mut |frame| {
            match frame {
                Frame::Record(r) => out.push(r.bytes.to_vec()),
                other => panic!("{name}: unexpected {other:?}"),
            }
            Ok::<(), ()>(())
        })
        .unwrap();
    assert_eq!(
        out.iter().map(Vec::len).sum::<usize>(),
        bytes.len(),
        "{name}"
    );
    out
}

fn render(bytes: &[u8], raw: bool) -> String {
    let mut out = Vec::new();
    for record in records("render", bytes) {
        write_record(&mut out, &record, &options(raw));
    }
    String::from_utf8(out).expect("reference output is UTF-8")
}

/// Equal lines, or a panic naming the first field that differs.
fn assert_same(name: &str, ours: &str, praudit: &str) {
    if ours == praudit {
        return;
    }
    let a: Vec<&str> = ours.split(',').collect();
    let b: Vec<&str> = praudit.split(',').collect();
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    panic!(
        "{name}: field {i} differs: sluice {:?}, praudit {:?}\n sluice: {ours}\npraudit: {praudit}",
        a.get(i),
        b.get(i)
    );
}

#[test]
fn every_reference_record_matches_praudit_names_and_raw() {
    let files = reference_files("_record");
    let named = sections("openbsm-reference/_decoded.records.praudit-nl.txt");
    let raw = sections("openbsm-reference/_decoded.records.praudit-rl.txt");
    let names = |s: &[(String, String)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let mut sorted = names(&named);
    sorted.sort();
    assert_eq!(
        sorted, files,
        "every record file has a decode, and only those"
    );
    assert_eq!(names(&named), names(&raw));
    assert_eq!(files.len(), 56);
    for ((name, n_line), (_, r_line)) in named.iter().zip(&raw) {
        let bytes = read(&format!("openbsm-reference/{name}"));
        assert_eq!(records(name, &bytes).len(), 1, "{name}: one record");
        assert_same(name, render(&bytes, false).trim_end_matches('\n'), n_line);
        assert_same(name, render(&bytes, true).trim_end_matches('\n'), r_line);
    }
}

#[test]
fn every_bare_token_matches_praudit_names_and_raw() {
    let files = reference_files("_token");
    let named = sections("openbsm-reference/_decoded.tokens.noresolve.txt");
    let raw = sections("openbsm-reference/_decoded.tokens.raw.txt");
    let mut listed: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    listed.sort();
    assert_eq!(
        listed, files,
        "every token file has a decode, and only those"
    );
    assert_eq!(files.len(), 27);
    for ((name, n_line), (raw_name, r_line)) in named.iter().zip(&raw) {
        assert_eq!(name, raw_name);
        let bytes = read(&format!("openbsm-reference/{name}"));
        let (token, len) =
            parse_token(&bytes, 0).unwrap_or_else(|e| panic!("{name}: {e} at {}", e.offset));
        assert_eq!(len, bytes.len(), "{name}: the token is the whole file");
        for (line, raw) in [(n_line, false), (r_line, true)] {
            let (head, decoded) = line.split_once(": ").expect("`id=… len=…: decode`");
            assert_eq!(head, format!("id={:#04x} len={len}", token.id()), "{name}");
            let mut ours = Vec::new();
            write_token(&mut ours, &token, &options(raw));
            assert_same(name, &String::from_utf8(ours).expect("utf-8"), decoded);
        }
    }
}

#[test]
fn the_freebsd_trail_matches_praudit_names_and_raw() {
    let trail = execve_trail();
    for (rel, raw) in [
        ("trails/execve-long-args.trail.praudit-n.txt", false),
        ("trails/execve-long-args.trail.praudit-raw.txt", true),
    ] {
        let praudit = String::from_utf8(read(rel)).expect("utf-8");
        assert_same(rel, render(&trail, raw).trim_end(), praudit.trim_end());
    }
}

#[test]
fn subject_and_process_tokens_decode_to_their_numbers() {
    // The reference subject: auid 0x12345678, euid 0x01234567, egid
    // 0x23456789, ruid 0x98765432 (which praudit prints as negative), rgid
    // 0x09876543, pid 0x13243546, sid 0x97863432... and terminal port
    // 374945606 at 127.0.0.1 or fe80::1.
    for (file, form, addr) in [
        ("subject32_token", SubjectForm::Bits32, "127.0.0.1"),
        ("subject32ex_token-IPv4", SubjectForm::Bits32Ex, "127.0.0.1"),
        ("subject32ex_token-IPv6", SubjectForm::Bits32Ex, "fe80::1"),
        ("process64_token", SubjectForm::Bits64, "127.0.0.1"),
        ("process64ex_token-IPv6", SubjectForm::Bits64Ex, "fe80::1"),
    ] {
        let bytes = read(&format!("openbsm-reference/{file}"));
        let (token, _) = parse_token(&bytes, 0).unwrap();
        let (Token::Subject(f, s) | Token::Process(f, s)) = token else {
            panic!("{file}: {token:?}")
        };
        assert_eq!(f, form, "{file}");
        assert_eq!(
            [s.auid, s.euid, s.egid, s.ruid, s.rgid, s.pid, s.sid],
            [
                305419896, 19088743, 591751049, 0x98765432, 159868227, 321140038, 2542171492
            ],
            "{file}"
        );
        assert_eq!(s.tid_port, 374945606, "{file}");
        assert_eq!(s.tid_addr, addr.parse::<IpAddr>().unwrap(), "{file}");
    }
}

#[test]
fn header_time_is_seconds_and_milliseconds() {
    let bytes = read("openbsm-reference/header32_token");
    let (Token::Header(h), 18) = parse_token(&bytes, 0).unwrap() else {
        panic!("not an 18-byte header")
    };
    assert_eq!((h.version, h.event, h.modifier), (11, 3, 17767));
    assert_eq!((h.seconds, h.msec), (74565, 424));
    assert_eq!(h.time_ns(), 74_565_424_000_000);
}
