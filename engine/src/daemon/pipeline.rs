//! The middle of the daemon: the queue the sources fill and the writer that
//! empties it into storage.
//!
//! Sources are live, so they never wait: [`Pipeline::offer`] puts a batch in
//! the queue if its memory budget allows and otherwise drops it, counting
//! its rows as `backpressure`. One writer thread takes batches in order and
//! appends each to [`Storage`] (WAL, then hot tail); a batch counts as
//! `events_out` only once storage acknowledged it. At shutdown the queue is
//! closed and the writer drains it before returning, so every batch a
//! source handed on is either acknowledged or counted as dropped.

use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::record_batch::RecordBatch;
use sluice_ingest::backpressure::{BatchQueue, Full};
use sluice_ingest::gates::DropReason;
use sluice_schemas::TableDef;
use sluice_sinks::Storage;

use super::metrics::Metrics;

/// The queue between the sources and the writer.
pub struct Pipeline {
    queue: BatchQueue,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("budget_bytes", &self.queue.budget_bytes())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A queue holding at most `budget_bytes` of Arrow memory.
    pub fn new(budget_bytes: usize, metrics: Arc<Metrics>) -> Self {
        metrics.set_queue_budget(budget_bytes);
        Pipeline {
            queue: BatchQueue::new(budget_bytes),
            metrics,
        }
    }

    /// Hands a source's batch to the writer without waiting: counted as
    /// `events_in` when queued, as `backpressure` when the budget is full.
    /// Returns whether it was queued.
    pub fn offer(&self, table: &'static TableDef, batch: RecordBatch) -> bool {
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return true;
        }
        let bytes = batch.get_array_memory_size();
        match self.queue.try_push((table, batch)) {
            Ok(()) => {
                self.metrics.add_in(table, rows);
                self.metrics.queue_moved(1, bytes);
                true
            }
            Err(Full(_)) => {
                self.metrics
                    .add_dropped(table, DropReason::Backpressure, rows);
                false
            }
        }
    }

    /// No more batches will come; the writer drains what is queued and
    /// stops.
    pub fn close(&self) {
        self.queue.close();
    }

    /// Starts the writer thread.
    pub fn spawn_writer(
        self: &Arc<Self>,
        storage: Arc<Storage>,
    ) -> std::io::Result<JoinHandle<()>> {
        let pipeline = self.clone();
        std::thread::Builder::new()
            .name("sluice-writer".into())
            .spawn(move || pipeline.write_all(&storage))
    }

    /// Appends every queued batch to storage until the queue is closed and
    /// empty. A failed append (a full disk) is counted and the next batch is
    /// tried, so writing resumes once space returns. The next batch is
    /// encoded while the WAL waits for the fsync of this one
    /// ([`Storage::append_all`]).
    fn write_all(&self, storage: &Storage) {
        let mut last_error: Option<String> = None;
        let queued = std::iter::from_fn(|| {
            let (table, batch) = self.queue.pop()?;
            self.metrics.queue_moved(-1, batch.get_array_memory_size());
            Some((table.name, batch, table))
        });
        storage.append_all(queued, |table, rows, result| {
            let rows = rows as u64;
            match result {
                Ok(_) => {
                    self.metrics.add_out(table, rows);
                    if last_error.take().is_some() {
                        tracing::info!("storage accepts batches again");
                    }
                }
                Err(err) => {
                    self.metrics
                        .add_dropped(table, DropReason::Backpressure, rows);
                    let message = err.to_string();
                    // One line per kind of failure, not one per batch.
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::error!(table = table.name, error = %message, "storage refused a batch; its rows are counted as backpressure");
                        last_error = Some(message);
                    }
                }
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use sluice_schemas::FILE_EVENTS;

    /// A `file_events` batch of `n` rows (most columns NULL).
    pub(crate) fn file_events_batch(n: usize) -> RecordBatch {
        let schema = FILE_EVENTS.schema();
        let columns = schema
            .fields()
            .iter()
            .map(|field| match field.name().as_str() {
                "target_path" => Arc::new(StringArray::from(vec!["/x"; n])) as _,
                "time" => Arc::new(Int64Array::from(vec![1_700_000_000; n])) as _,
                "time_ns" => Arc::new(
                    TimestampNanosecondArray::from(vec![1_700_000_000_000_000_000; n])
                        .with_timezone("UTC"),
                ) as _,
                _ => arrow::array::new_null_array(field.data_type(), n),
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn queued_batches_reach_storage_and_a_full_queue_counts_backpressure() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, _) =
            Storage::open(dir.path(), sluice_sinks::StorageOptions::default()).unwrap();
        let storage = Arc::new(storage);
        let metrics = Arc::new(Metrics::new());
        // A budget of one byte: the first batch goes in (an empty queue lets
        // one batch through), the second is dropped until the writer runs.
        let pipeline = Arc::new(Pipeline::new(1, metrics.clone()));
        assert!(pipeline.offer(&FILE_EVENTS, file_events_batch(3)));
        assert!(!pipeline.offer(&FILE_EVENTS, file_events_batch(2)));
        let writer = pipeline.spawn_writer(storage.clone()).unwrap();
        pipeline.close();
        writer.join().unwrap();
        assert_eq!(metrics.events_out(&FILE_EVENTS), 3);
        assert_eq!(metrics.dropped(&FILE_EVENTS, DropReason::Backpressure), 2);
        assert_eq!(storage.stats().appended_rows, 3);
    }
}
