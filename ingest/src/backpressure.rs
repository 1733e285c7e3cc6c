//! A bounded queue of batches between decoding and storage, with one memory
//! budget.
//!
//! The budget counts the Arrow memory of the batches waiting in the queue.
//! What happens when it is full depends on who is producing:
//!
//! - A **replay** (a file or stdin) must lose nothing, so it waits
//!   ([`BatchQueue::push_blocking`]).
//! - A **live** source (an ES callback, the auditpipe reader, a pipe from
//!   `eslogger`) must never block its producer, or the kernel drops events
//!   where nobody can count them. It drops the batch instead and counts its
//!   rows as `backpressure` ([`BatchQueue::try_push`]).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use arrow::record_batch::RecordBatch;
use sluice_schemas::TableDef;

/// A batch and the table it belongs to.
pub type TableBatch = (&'static TableDef, RecordBatch);

#[derive(Default)]
struct State {
    queue: VecDeque<(TableBatch, usize)>,
    bytes: usize,
    high_water: usize,
    closed: bool,
}

/// A bounded multi-producer, multi-consumer queue of batches.
pub struct BatchQueue {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    budget_bytes: usize,
}

/// What [`BatchQueue::try_push`] gives back when the budget is full.
#[derive(Debug)]
pub struct Full(pub TableBatch);

impl BatchQueue {
    /// A queue that holds at most `budget_bytes` of batches (one batch larger
    /// than the whole budget is still let through when the queue is empty,
    /// so that it cannot wait forever).
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            budget_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the queue half-updated (each
        // critical section is a few assignments), so carry on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fits(&self, state: &State, size: usize) -> bool {
        state.queue.is_empty() || state.bytes + size <= self.budget_bytes
    }

    fn enqueue(&self, state: &mut State, item: TableBatch, size: usize) {
        state.bytes += size;
        state.high_water = state.high_water.max(state.bytes);
        state.queue.push_back((item, size));
        self.not_empty.notify_one();
    }

    /// Adds a batch, waiting while the budget is full (replays).
    pub fn push_blocking(&self, item: TableBatch) {
        let size = item.1.get_array_memory_size();
        let mut state = self.lock();
        while !self.fits(&state, size) && !state.closed {
            state = self.not_full.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        self.enqueue(&mut state, item, size);
    }

    /// Adds a batch if the budget allows, or hands it back (live sources).
    pub fn try_push(&self, item: TableBatch) -> Result<(), Full> {
        let size = item.1.get_array_memory_size();
        let mut state = self.lock();
        if !self.fits(&state, size) {
            return Err(Full(item));
        }
        self.enqueue(&mut state, item, size);
        Ok(())
    }

    /// Takes the oldest batch, waiting for one; `None` once the queue is
    /// closed and empty.
    pub fn pop(&self) -> Option<TableBatch> {
        let mut state = self.lock();
        loop {
            if let Some((item, size)) = state.queue.pop_front() {
                state.bytes -= size;
                self.not_full.notify_all();
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state = self
                .not_empty
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Says no more batches will come; consumers drain what is left.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// The most bytes the queue ever held at once.
    pub fn high_water_bytes(&self) -> usize {
        self.lock().high_water
    }

    /// The budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::time::Duration;

    use super::*;
    use crate::eslogger::EsloggerDecoder;
    use crate::replay::{ReplayOptions, replay_eslogger};
    use crate::synthetic::{EsloggerFirehose, EventMix};

    fn capture(lines: usize) -> Vec<u8> {
        let mut firehose = EsloggerFirehose::new(5, &EventMix::default());
        let mut out = Vec::new();
        for _ in 0..lines {
            firehose.next_line(&mut out);
        }
        out
    }

    /// Runs a replay of `lines` events into a queue drained by a slow sink
    /// (2 ms per batch; in live mode it also starts only once the source is
    /// done, the slowest sink there is, so that the outcome does not depend
    /// on timing). Returns (rows stored, rows dropped, high water).
    fn through_slow_sink(lines: usize, live: bool, budget: usize) -> (u64, u64, usize) {
        let input = capture(lines);
        let queue = BatchQueue::new(budget);
        let source_done = std::sync::Barrier::new(2);
        let options = ReplayOptions {
            batch_rows: 256,
            ..ReplayOptions::default()
        };
        std::thread::scope(|scope| {
            let sink = scope.spawn(|| {
                if live {
                    source_done.wait();
                }
                let mut stored = 0u64;
                while let Some((_, batch)) = queue.pop() {
                    std::thread::sleep(Duration::from_millis(2));
                    stored += batch.num_rows() as u64;
                }
                stored
            });
            let mut decoder = EsloggerDecoder::new();
            let mut dropped = 0u64;
            replay_eslogger(
                Cursor::new(&input),
                &mut decoder,
                &options,
                |table, batch| {
                    if live {
                        if let Err(Full((_, batch))) = queue.try_push((table, batch)) {
                            dropped += batch.num_rows() as u64;
                        }
                    } else {
                        queue.push_blocking((table, batch));
                    }
                    Ok::<(), std::convert::Infallible>(())
                },
            )
            .expect("replay");
            if live {
                source_done.wait();
            }
            queue.close();
            let stored = sink.join().expect("sink thread");
            (stored, dropped, queue.high_water_bytes())
        })
    }

    #[test]
    fn a_replay_through_a_slow_sink_loses_nothing() {
        let (stored, dropped, high_water) = through_slow_sink(20_000, false, 1 << 20);
        assert_eq!((stored, dropped), (20_000, 0));
        assert!(high_water <= 1 << 20, "{high_water}");
    }

    #[test]
    fn a_live_run_through_a_slow_sink_drops_counts_and_stays_in_budget() {
        let budget = 1 << 20;
        let (stored, dropped, high_water) = through_slow_sink(20_000, true, budget);
        assert!(dropped > 0, "the sink is slower than the source");
        assert_eq!(stored + dropped, 20_000, "every event is stored or counted");
        assert!(
            high_water <= budget,
            "high water {high_water} over budget {budget}"
        );
    }
}
