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

use std::fmt::Write as _;

use arrow::array::StringBuilder;

/// Appends osquery's event id: a per-table counter, zero-padded to ten digits
/// as osquery formats it. `buf` is reused so that formatting allocates nothing.
#[inline]
fn append_eid(eid: &mut StringBuilder, buf: &mut String, counter: &mut u64) {
    *counter += 1;
    buf.clear();
    // Writing to a String cannot fail.
    let _ = write!(buf, "{:010}", *counter);
    eid.append_value(buf.as_str());
}
