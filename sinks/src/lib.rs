//! Where sluice's Arrow batches go once they leave the ingest pipeline.
//!
//! The data's life here: the engine's router hands [`Storage`] one
//! [`RecordBatch`](arrow::array::RecordBatch) at a time, tagged with its table
//! name. It is appended to the write-ahead log ([`wal`], Arrow IPC, fsync
//! policy) and then to the in-memory hot tail ([`hot_tail`]), where queries
//! see it at once; only then is it acknowledged. The roller ([`storage`])
//! concatenates a table's hot batches and, by size or age, has the
//! [`ParquetPersister`] split them by the UTC hour of `time`, sort them, and
//! write one immutable zstd Parquet file per table-hour under
//! `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/` ([`layout`]), published
//! atomically (the `publish` module); the WAL is then checkpointed and
//! trimmed. [`retention`] deletes what is too old or too big, [`compaction`]
//! merges an hour's small files, and [`object_store`] uploads published
//! files. A reader that lists `*.parquet` under a table never sees a partial
//! file nor a row twice (the rule is in [`storage`]).

pub mod compaction;
pub mod hot_tail;
pub mod layout;
pub mod object_store;
pub mod parquet_persister;
mod publish;
pub mod retention;
pub mod storage;
pub mod wal;

pub use compaction::{CompactionPolicy, CompactionReport};
pub use hot_tail::HotTail;
pub use layout::{PartitionKey, partition_dir};
pub use parquet_persister::{ParquetPersister, PersistError, PersistOptions, cast_to_schema};
pub use retention::{RetentionPolicy, RetentionReport};
pub use storage::{
    AppendAck, PreparedAppend, RecoveryReport, Storage, StorageError, StorageEvent,
    StorageListener, StorageOptions, StorageStats, WalRange,
};
pub use wal::{FsyncPolicy, WalOptions};
