//! OpenBSM audit records into `process_events`, `process_file_events`,
//! `socket_events` and `user_events`.
//!
//! The macOS and FreeBSD kernels describe what processes do as BSM audit
//! records: a header with the event number, time and length, body tokens
//! (who acted, on which path, with which arguments, with what result) and a
//! trailer. auditd appends them to trail files in `/var/audit`;
//! `/dev/auditpipe` hands them out live. No crate decodes BSM, so this
//! module does, in the stages data goes through:
//!
//! - [`token`]: one token read in place, borrowing from the input; every
//!   token of `../shared/BSM_TOKENS.md` (32/64-bit and `_ex` forms, IPv4
//!   and IPv6, Apple's identity token).
//! - [`frame`]: records cut out of a byte stream by their header and trailer
//!   lengths; damage (a bad length, garbage, a record cut short by a crash)
//!   is reported once with its byte offset, and reading resumes at the next
//!   plausible header.
//! - [`stream`]: the same over a file, a pipe or stdin read in chunks.
//! - [`events`] and [`mapping`]: what an event number is called (embedded
//!   at build time from OpenBSM's `audit_event`) and which table wants it.
//! - [`decoder`]: a wanted record's body walked once into a row of its
//!   table; an unwanted one counted by name without reading its body.
//! - [`trail`]: a directory of trails read in name order, and followed
//!   across auditd's rotations like `tail -F`.
//! - [`live`]: a reader thread for live sources that drops (and counts)
//!   rather than wait for a slow sink; `auditpipe` opens the device on
//!   macOS and FreeBSD only.
//! - [`praudit`]: records printed the way `praudit` prints them, for
//!   `sluice bsm dump`.
//! - [`encode`]: a record writer for tests and benchmarks.
//!
//! ```
//! use sluice_ingest::bsm::BsmDecoder;
//! use sluice_ingest::bsm::encode::RecordWriter;
//!
//! let mut trail = RecordWriter::new(43190, 1_700_000_000, 5) // posix_spawn
//!     .arg32(0, 777, "child PID")
//!     .exec_args(["/usr/bin/true"])
//!     .path("/usr/bin/true")
//!     .subject32(501, 501, 20, 501, 20, 300, 100001, 0, [0, 0, 0, 0])
//!     .return32(0, 0)
//!     .finish();
//! trail.extend_from_slice(b"\x14\x00\x00\x01"); // a record cut short
//! let mut decoder = BsmDecoder::new();
//! decoder.decode_bytes(&trail);
//! assert_eq!(decoder.events_by_table()[0], ("process_events", 1));
//! assert_eq!(decoder.stats().skipped_total(), 1);
//! ```

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
pub mod auditpipe;
pub mod decoder;
pub mod encode;
pub mod errno;
pub mod events;
pub mod frame;
pub mod live;
pub mod mapping;
pub mod praudit;
pub mod stream;
pub mod token;
pub mod trail;

pub use decoder::BsmDecoder;
pub use frame::{Corruption, Frame, Record, RecordSplitter};
pub use stream::{RecordStream, ReplayError, replay_bsm};

#[cfg(test)]
mod tests;
