//! Every dropped event has a reason and a counter.

use sluice_schemas::{TABLES, TableDef};

/// Why an event was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A mute rule matched (or open events are off).
    Muted,
    /// A token bucket was empty.
    RateLimited,
    /// Sampling kept another event instead.
    Sampled,
    /// The kernel dropped it before sluice saw it (a `seq_num` gap).
    Kernel,
    /// A queue or memory budget was full (live sources only).
    Backpressure,
    /// The input could not be decoded.
    Malformed,
    /// A valid event that no table maps.
    Unmapped,
}

impl DropReason {
    /// Every reason, in the order columns and summaries show them.
    pub const ALL: [DropReason; 7] = [
        DropReason::Muted,
        DropReason::RateLimited,
        DropReason::Sampled,
        DropReason::Kernel,
        DropReason::Backpressure,
        DropReason::Malformed,
        DropReason::Unmapped,
    ];

    /// The reason's name, as a column of `osquery_events` and in summaries.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Muted => "muted",
            DropReason::RateLimited => "rate_limited",
            DropReason::Sampled => "sampled",
            DropReason::Kernel => "kernel",
            DropReason::Backpressure => "backpressure",
            DropReason::Malformed => "malformed",
            DropReason::Unmapped => "unmapped",
        }
    }

    /// The reason's position in [`DropReason::ALL`] (and in per-reason
    /// arrays).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The slot of a table in per-table arrays: its position in
/// [`sluice_schemas::TABLES`].
#[inline]
pub fn table_slot(table: &TableDef) -> usize {
    // Tables are statics, so the address answers at once; the name is for
    // a copy of a definition.
    TABLES
        .iter()
        .position(|t| std::ptr::eq(*t, table))
        .or_else(|| TABLES.iter().position(|t| t.name == table.name))
        .unwrap_or(0)
}

/// Kept and dropped events per table, dropped ones per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    kept: [u64; TABLES.len()],
    dropped: [[u64; DropReason::ALL.len()]; TABLES.len()],
}

impl DropCounters {
    /// Counts one kept event.
    #[inline]
    pub fn keep(&mut self, slot: usize) {
        self.kept[slot] += 1;
    }

    /// Counts `n` dropped events.
    #[inline]
    pub fn drop_n(&mut self, slot: usize, reason: DropReason, n: u64) {
        self.dropped[slot][reason.index()] += n;
    }

    /// Events of `table` that passed the gates.
    pub fn kept(&self, table: &TableDef) -> u64 {
        self.kept[table_slot(table)]
    }

    /// Events of `table` dropped for `reason`.
    pub fn dropped(&self, table: &TableDef, reason: DropReason) -> u64 {
        self.dropped[table_slot(table)][reason.index()]
    }

    /// Events of `table` dropped for any reason.
    pub fn dropped_total(&self, table: &TableDef) -> u64 {
        self.dropped[table_slot(table)].iter().sum()
    }

    /// Adds another set of counters to this one.
    pub fn add(&mut self, other: &DropCounters) {
        for slot in 0..TABLES.len() {
            self.kept[slot] += other.kept[slot];
            for r in 0..DropReason::ALL.len() {
                self.dropped[slot][r] += other.dropped[slot][r];
            }
        }
    }
}
