//! The hot tail: the newest batches of each table, in memory, queryable at once.
//!
//! A batch enters the tail right after its WAL record is written (so it is
//! both durable and visible within the time it takes to decode it) and
//! leaves when the roller has published it as Parquet. Queries take a
//! [`HotTail::snapshot`], a cheap clone of the table's batches (Arrow arrays
//! are reference counted), and read it next to the Parquet files.
//!
//! A roll holds the tail's write lock from the moment its files are
//! published until its batches are removed ([`HotTail::remove_through`]), and a
//! reader that lists Parquet files while holding the read lock
//! ([`HotTail::with_snapshot`]) therefore sees each row exactly once: in the
//! tail, or in a file, never both and never neither.
//!
//! The tail counts its Arrow memory against a budget; the storage layer
//! rolls early when it is exceeded and refuses appends (counted as drops)
//! when it cannot roll, e.g. on a full disk.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::parquet_persister::cast_to_schema;
use crate::wal::dictionary::plain_schema;

/// One batch in the tail, with the WAL sequence number that made it durable.
#[derive(Debug, Clone)]
pub struct HotBatch {
    /// The WAL record's sequence number.
    pub seq: u64,
    /// The rows. Text columns may be in dictionary form, as the builders
    /// make them; queries see them as [`HotBatch::schema`] says.
    pub batch: RecordBatch,
    /// The rows' schema for queries and Parquet: `batch`'s, with each text
    /// column in dictionary form as its values' type.
    pub schema: SchemaRef,
    /// The same rows as the WAL logged them, repetitive text as dictionaries
    /// (see `wal/dictionary.rs`): the roll writes these, so that Parquet
    /// takes the dictionaries as they are instead of hashing every row's
    /// text again. The same as `batch` for batches replayed from the WAL.
    pub for_parquet: RecordBatch,
    /// Arrow memory of `batch`, and of the dictionaries in `for_parquet`,
    /// as counted against the budget.
    pub bytes: usize,
    /// When it entered the tail.
    pub appended: Instant,
}

/// Size and age of one table's tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Batches held.
    pub batches: usize,
    /// Rows held.
    pub rows: usize,
    /// Arrow memory held.
    pub bytes: usize,
    /// When the oldest batch entered, if any.
    pub oldest: Option<Instant>,
}

#[derive(Debug, Default)]
struct TableTail {
    batches: VecDeque<HotBatch>,
    rows: usize,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Tables {
    by_table: BTreeMap<String, TableTail>,
    bytes: usize,
}

/// The in-memory tail of every table. `Send + Sync`; share it by reference
/// or in an `Arc`.
#[derive(Debug)]
pub struct HotTail {
    tables: RwLock<Tables>,
    budget_bytes: usize,
}

impl HotTail {
    /// An empty tail that may hold `budget_bytes` of Arrow memory.
    pub fn new(budget_bytes: usize) -> Self {
        HotTail {
            tables: RwLock::new(Tables::default()),
            budget_bytes,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        // Each critical section leaves the maps consistent, so a panic in
        // another thread does not make the data unusable.
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The memory budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Arrow memory held over all tables.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Whether adding `extra` bytes would go over the budget.
    pub fn would_exceed(&self, extra: usize) -> bool {
        self.read().bytes.saturating_add(extra) > self.budget_bytes
    }

    /// Adds a batch of `table` that the WAL numbered `seq`.
    pub fn push(&self, table: &str, seq: u64, batch: RecordBatch) {
        self.push_logged(table, seq, batch.clone(), batch);
    }

    /// [`HotTail::push`], with the batch as the WAL logged it (see
    /// [`HotBatch::for_parquet`]); `logged` holds the rows of `batch`.
    pub(crate) fn push_logged(
        &self,
        table: &str,
        seq: u64,
        batch: RecordBatch,
        logged: RecordBatch,
    ) {
        // The columns the WAL replaced are new memory; the rest are shared.
        let dictionaries: usize = logged
            .columns()
            .iter()
            .zip(batch.columns())
            .filter(|(logged, plain)| logged.data_type() != plain.data_type())
            .map(|(logged, _)| logged.get_array_memory_size())
            .sum();
        let bytes = batch.get_array_memory_size() + dictionaries;
        let rows = batch.num_rows();
        let mut tables = self.write();
        tables.bytes += bytes;
        let tail = match tables.by_table.get_mut(table) {
            Some(tail) => tail,
            None => tables.by_table.entry(table.to_string()).or_default(),
        };
        tail.rows += rows;
        tail.bytes += bytes;
        tail.batches.push_back(HotBatch {
            seq,
            schema: plain_schema(&batch.schema()),
            batch,
            for_parquet: logged,
            bytes,
            appended: Instant::now(),
        });
    }

    /// The batches of `table` now in the tail, oldest first (a cheap clone).
    pub fn snapshot(&self, table: &str) -> Vec<RecordBatch> {
        self.with_snapshot(table, || ()).1
    }

    /// Calls `list` while no roll can publish or remove anything, and
    /// returns what it gave with the batches of `table` at that instant, so
    /// `list` can list the table's Parquet files and the caller get a view
    /// in which every row appears exactly once.
    ///
    /// Text columns held in dictionary form are given as their values'
    /// type, the type of the table's schema, made when asked for: queries
    /// of the tail are rare next to appends, which this keeps from building
    /// each batch's text twice. They are made after the lock is released
    /// (the batches are immutable, so the view is the same), because a
    /// 128 Ki-row batch takes milliseconds to make and appends wait for the
    /// lock. A batch that cannot be so made (it cannot happen for
    /// dictionaries of text) is left out with an error logged.
    pub fn with_snapshot<R>(&self, table: &str, list: impl FnOnce() -> R) -> (R, Vec<RecordBatch>) {
        let (listed, held) = {
            let tables = self.read();
            let held: Vec<(u64, RecordBatch, SchemaRef)> = tables
                .by_table
                .get(table)
                .map(|t| {
                    t.batches
                        .iter()
                        .map(|b| (b.seq, b.batch.clone(), b.schema.clone()))
                        .collect()
                })
                .unwrap_or_default();
            (list(), held)
        };
        let batches = held
            .into_iter()
            .filter_map(
                |(seq, batch, schema)| match cast_to_schema(&batch, &schema) {
                    Ok(batch) => Some(batch),
                    Err(err) => {
                        tracing::error!(table, seq, error = %err, "hot batch left out of a query");
                        None
                    }
                },
            )
            .collect();
        (listed, batches)
    }

    /// Size and age of every table's tail, by table name.
    pub fn stats(&self) -> Vec<(String, TailStats)> {
        self.read()
            .by_table
            .iter()
            .map(|(name, tail)| {
                (
                    name.clone(),
                    TailStats {
                        batches: tail.batches.len(),
                        rows: tail.rows,
                        bytes: tail.bytes,
                        oldest: tail.batches.front().map(|b| b.appended),
                    },
                )
            })
            .collect()
    }

    /// The smallest sequence number still held by any table, if any.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.read()
            .by_table
            .values()
            .filter_map(|t| t.batches.front().map(|b| b.seq))
            .min()
    }

    /// The smallest sequence number each table with batches holds.
    pub fn oldest_seq_by_table(&self) -> Vec<(String, u64)> {
        self.read()
            .by_table
            .iter()
            .filter_map(|(name, t)| Some((name.clone(), t.batches.front()?.seq)))
            .collect()
    }

    /// Arrow memory held by `table`.
    pub fn table_bytes(&self, table: &str) -> usize {
        self.read().by_table.get(table).map_or(0, |t| t.bytes)
    }

    /// The batches of `table`, with their sequence numbers, oldest first (a
    /// cheap clone): what a roll writes while appends carry on.
    pub fn batches(&self, table: &str) -> Vec<HotBatch> {
        self.read()
            .by_table
            .get(table)
            .map(|t| t.batches.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Ends a roll written from [`HotTail::batches`]: calls `publish` while
    /// holding the write lock and, if it succeeds, removes the batches of
    /// `table` numbered up to `last_seq` (those appended since stay). On
    /// error nothing is removed, to be rolled again later.
    pub fn remove_through<R, E>(
        &self,
        table: &str,
        last_seq: u64,
        publish: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, E> {
        let mut tables = self.write();
        let published = publish()?;
        let Some(tail) = tables.by_table.get_mut(table) else {
            return Ok(published);
        };
        let mut freed = 0;
        while let Some(front) = tail.batches.front()
            && front.seq <= last_seq
        {
            freed += front.bytes;
            tail.rows -= front.batch.num_rows();
            tail.batches.pop_front();
        }
        tail.bytes -= freed;
        tables.bytes -= freed;
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("time", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).unwrap()
    }

    #[test]
    fn snapshots_see_pushed_batches_until_rolled() {
        let tail = HotTail::new(1 << 20);
        tail.push("t", 1, batch(3));
        tail.push("u", 2, batch(1));
        tail.push("t", 3, batch(2));
        let rows: usize = tail.snapshot("t").iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 5);
        assert_eq!(tail.oldest_seq(), Some(1));

        let rolling = tail.batches("t");
        let failed: Result<(), &str> = tail.remove_through("t", 3, || Err("disk full"));
        assert!(failed.is_err());
        assert_eq!(
            tail.snapshot("t").len(),
            2,
            "a failed roll keeps the batches"
        );

        let (rolled, seqs) = tail
            .remove_through("t", 3, || {
                let rows: usize = rolling.iter().map(|b| b.batch.num_rows()).sum();
                Ok::<_, ()>((rows, rolling.iter().map(|b| b.seq).collect::<Vec<_>>()))
            })
            .unwrap();
        assert_eq!((rolled, seqs), (5, vec![1, 3]));
        assert!(tail.snapshot("t").is_empty());
        assert_eq!(tail.oldest_seq(), Some(2));
        assert_eq!(tail.bytes(), tail.stats()[1].1.bytes);
    }

    #[test]
    fn remove_through_keeps_batches_appended_during_a_roll() {
        let tail = HotTail::new(1 << 20);
        tail.push("t", 1, batch(3));
        tail.push("t", 2, batch(2));
        let rolling = tail.batches("t");
        assert_eq!(rolling.iter().map(|b| b.seq).collect::<Vec<_>>(), [1, 2]);
        // Appended while the roll writes its files.
        tail.push("t", 3, batch(4));

        let failed: Result<(), &str> = tail.remove_through("t", 2, || Err("disk full"));
        assert!(failed.is_err());
        assert_eq!(
            tail.snapshot("t").len(),
            3,
            "a failed publish removes nothing"
        );

        tail.remove_through("t", 2, || Ok::<_, ()>(())).unwrap();
        let left = tail.batches("t");
        assert_eq!(left.iter().map(|b| b.seq).collect::<Vec<_>>(), [3]);
        assert_eq!(tail.stats()[0].1.rows, 4);
        assert_eq!(tail.bytes(), left[0].bytes);
        assert_eq!(tail.table_bytes("t"), left[0].bytes);
        assert_eq!(tail.table_bytes("u"), 0);
    }

    #[test]
    fn budget_is_counted() {
        let tail = HotTail::new(100);
        assert!(!tail.would_exceed(100));
        tail.push("t", 1, batch(1000));
        assert!(tail.bytes() >= 8000);
        assert!(tail.would_exceed(0));
    }
}
