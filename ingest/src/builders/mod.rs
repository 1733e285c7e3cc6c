//! Per-table Arrow batch builders: the last stop before a `RecordBatch`.
//!
//! A decoder resolves one event into a borrowed row (`…Row<'a>`), and the
//! table's builder appends it column by column into Arrow builders that are
//! reused from batch to batch. Nothing is allocated per event except when a
//! value is not valid UTF-8 (see [`crate::text`]). Every source of a table
//! (eslogger JSON today, the native ES client later) fills the same row type,
//! so the columns mean the same thing whatever the source.

mod bsm;
mod es;
mod osquery_events;

pub use bsm::{
    ProcessEventRow, ProcessEventsBuilder, ProcessFileEventRow, ProcessFileEventsBuilder,
    SocketEventRow, SocketEventsBuilder, UserEventRow, UserEventsBuilder,
};
pub use es::{
    EsProcessEventRow, EsProcessEventsBuilder, EsProcessFileEventRow, EsProcessFileEventsBuilder,
    codesigning_flags_text,
};
pub use osquery_events::{EventCountersRow, PublisherCounters, counter_rows, osquery_events_batch};

use arrow::array::StringBuilder;

/// Writes `v` in `radix` (8 or 10) into the end of `buf`, at least
/// `min_digits` digits (zero-padded), and returns the digits. A hand loop:
/// `core::fmt` costs more than the rest of a row.
#[inline]
fn digits(buf: &mut [u8; 24], mut v: u64, radix: u64, min_digits: usize) -> &str {
    let mut at = buf.len();
    while v > 0 || buf.len() - at < min_digits.max(1) {
        at -= 1;
        buf[at] = b'0' + (v % radix) as u8;
        v /= radix;
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// Appends osquery's event id: a per-table counter, zero-padded to ten
/// digits as osquery formats it, without `core::fmt` (see [`digits`]).
#[inline]
fn append_eid(eid: &mut StringBuilder, counter: &mut u64) {
    *counter += 1;
    eid.append_value(digits(&mut [0; 24], *counter, 10, 10));
}
