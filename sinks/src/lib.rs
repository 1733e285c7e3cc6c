//! Where sluice's Arrow batches go once they leave the ingest pipeline.
//!
//! The data's life here: the engine's router hands this crate one
//! [`RecordBatch`](arrow::array::RecordBatch) at a time, tagged with its table
//! name. The [`ParquetPersister`] splits each batch by the UTC hour of its
//! `time` column, sorts each part by time, and writes it as an immutable,
//! zstd-compressed Parquet file under
//! `DATA_DIR/<table>/date=YYYY-MM-DD/hour=HH/` ([`layout`]). A file appears
//! under its `.parquet` name only when complete (the `publish` module), so the query
//! engine, which lists those directories, never reads half a file.
//!
//! This crate will also own the rest of a batch's storage life: the hot
//! in-memory tail (queryable before it is persisted), the write-ahead log
//! that lets unpersisted batches survive `kill -9`, upload to an object
//! store, retention by age and bytes, and compaction of small files. Today it
//! holds the Parquet persister and the layout.

pub mod layout;
pub mod parquet_persister;
mod publish;

pub use layout::{PartitionKey, partition_dir};
pub use parquet_persister::{ParquetPersister, PersistError, PersistOptions};
