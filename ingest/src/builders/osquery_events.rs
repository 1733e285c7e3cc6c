//! Rows of `osquery_events`: one per publisher and subscriber, with counters.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampNanosecondArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::{OSQUERY_EVENTS, TableDef};

use crate::gates::{DropCounters, DropReason, Gates};
use crate::stats::{DecodeStats, SkipReason};

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

/// What a publisher's counters are made of, for [`counter_rows`].
#[derive(Debug, Clone, Copy)]
pub struct PublisherCounters<'a> {
    /// The publisher's name (`eslogger`, `openbsm`, …).
    pub publisher: &'a str,
    /// The tables it feeds, one subscriber row each.
    pub tables: &'a [&'static TableDef],
    /// The gates, with what they kept and dropped per table.
    pub gates: &'a Gates,
    /// Drops counted after the decoder (backpressure).
    pub outside: &'a DropCounters,
    /// What the decoder could not read.
    pub stats: &'a DecodeStats,
    /// Messages the kernel dropped (`seq_num` gaps), if the source tells.
    pub kernel_drops: u64,
}

/// The counters of one publisher as `osquery_events` rows: the publisher's
/// own row first, then one per table it feeds.
///
/// A table's `events` are the rows that passed the gates and were not
/// dropped after them (backpressure). The publisher's `events` are what it
/// handed to the gates; its drops are the ones no table owns: kernel gaps,
/// unreadable input (malformed, truncated, missing a field) and event types
/// no table maps.
pub fn counter_rows(
    counters: PublisherCounters<'_>,
    time_ns: i64,
    active: bool,
) -> Vec<EventCountersRow> {
    let mut by_table = counters.gates.counters().clone();
    by_table.add(counters.outside);
    let mut handed_on = 0;
    let mut rows = Vec::with_capacity(counters.tables.len() + 1);
    rows.push(EventCountersRow {
        name: counters.publisher.to_string(),
        publisher: counters.publisher.to_string(),
        kind: "publisher",
        subscriptions: i32::try_from(counters.tables.len()).unwrap_or(i32::MAX),
        events: 0,
        refreshes: 0,
        active,
        drops: [0; DropReason::ALL.len()],
        time_ns,
    });
    for &table in counters.tables {
        let mut drops = [0u64; DropReason::ALL.len()];
        for (slot, reason) in drops.iter_mut().zip(DropReason::ALL) {
            *slot = by_table.dropped(table, reason);
        }
        let gated: u64 = [
            DropReason::Muted,
            DropReason::RateLimited,
            DropReason::Sampled,
        ]
        .iter()
        .map(|&r| by_table.dropped(table, r))
        .sum();
        handed_on += by_table.kept(table) + gated;
        rows.push(EventCountersRow {
            name: table.name.to_string(),
            publisher: counters.publisher.to_string(),
            kind: "subscriber",
            subscriptions: 1,
            events: by_table
                .kept(table)
                .saturating_sub(by_table.dropped(table, DropReason::Backpressure)),
            refreshes: 0,
            active,
            drops,
            time_ns,
        });
    }
    let stats = counters.stats;
    let publisher = &mut rows[0];
    publisher.events = handed_on;
    publisher.drops[DropReason::Kernel.index()] = counters.kernel_drops;
    publisher.drops[DropReason::Malformed.index()] = stats.skipped(SkipReason::Malformed)
        + stats.skipped(SkipReason::Truncated)
        + stats.skipped(SkipReason::MissingField);
    publisher.drops[DropReason::Unmapped.index()] = stats.skipped(SkipReason::UnmappedEventType);
    rows
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
