//! Rows of `osquery_events`: one per publisher and subscriber, with counters.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampNanosecondArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::OSQUERY_EVENTS;

use crate::gates::DropReason;

/// The counters of one publisher or subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCountersRow {
    /// The publisher's or subscriber's name (a subscriber is named by its
    /// table).
    pub name: String,
    /// The publisher it belongs to.
    pub publisher: String,
    /// `publisher` or `subscriber`.
    pub kind: &'static str,
    /// Subscriptions: tables fed, for a publisher; 1 for a subscriber.
    pub subscriptions: i32,
    /// Events handed on (publisher) or stored (subscriber).
    pub events: u64,
    /// Restarts of the publisher.
    pub refreshes: i32,
    /// Whether it is running now.
    pub active: bool,
    /// Events dropped, per reason, in [`DropReason::ALL`] order.
    pub drops: [u64; DropReason::ALL.len()],
    /// When the counters were taken, ns since the epoch.
    pub time_ns: i64,
}

/// Builds an `osquery_events` batch. osquery's `events` column is an
/// INTEGER; a count past its range shows as its largest value.
pub fn osquery_events_batch(rows: &[EventCountersRow]) -> Result<RecordBatch, ArrowError> {
    let saturate = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.name.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.publisher.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.kind))),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.subscriptions),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| saturate(r.events)),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.refreshes),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| i32::from(r.active)),
        )),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.time_ns))
                .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.time_ns.div_euclid(1_000_000_000)),
        )),
    ];
    for (i, _) in DropReason::ALL.iter().enumerate() {
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| as_i64(r.drops[i])),
        )));
    }
    RecordBatch::try_new(OSQUERY_EVENTS.schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_columns_follow_drop_reasons() {
        let schema = OSQUERY_EVENTS.schema();
        let first = schema.index_of("muted").unwrap();
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(schema.field(first + i).name(), reason.name());
        }
        let row = EventCountersRow {
            name: "eslogger".into(),
            publisher: "eslogger".into(),
            kind: "publisher",
            subscriptions: 2,
            events: u64::MAX,
            refreshes: 0,
            active: false,
            drops: [1, 2, 3, 4, 5, 6, 7],
            time_ns: 1_700_000_000_000_000_000,
        };
        let batch = osquery_events_batch(&[row]).unwrap();
        assert_eq!(batch.num_rows(), 1);
    }
}
