//! The uploader against a real S3-compatible server on 127.0.0.1, over HTTP,
//! with the server taken away in the middle of a multipart upload.
//!
//! Rows are published by the real Parquet persister into a spool dir, uploaded
//! through `s3://` with object_store's AmazonS3 client, and read back from the
//! store: every row must be there exactly once, whatever the outage did.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, RetryConfig};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_sinks::ParquetPersister;
use sluice_sinks::object_store::{AfterUpload, StoreLocation, UploadOptions, Uploader};

use common::s3_server::{ACCESS_KEY, REGION, S3TestServer, SECRET_KEY};

const BUCKET: &str = "lake";
const PREFIX: &str = "sluice/host-a";
const MIB: usize = 1024 * 1024;

/// An S3 client for the test server: path-style, plain HTTP, static
/// credentials, and short retries so an outage surfaces to the uploader.
fn s3_client(endpoint: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_bucket_name(BUCKET)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(2),
        })
        .build()
        .expect("s3 client");
    Arc::new(store)
}

/// `rows` rows with ids `first..first+rows` in hour 0 of 2024-03-01 (or
/// spread over hours 0–2), with a `payload` of `payload_len` pseudo-random hex characters
/// (so a big batch makes a big file despite zstd).
fn batch(first: i64, rows: i64, payload_len: usize, spread_hours: bool) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("time", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let base = 1_709_251_200; // 2024-03-01T00:00:00Z
    let ids = first..first + rows;
    let mut state = (first as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let payloads = ids.clone().map(|_| {
        let mut s = String::with_capacity(payload_len);
        while s.len() < payload_len {
            // xorshift64: cheap, and zstd cannot shrink it much.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            s.push_str(&format!("{state:016x}"));
        }
        s.truncate(payload_len);
        s
    });
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(Int64Array::from_iter_values(ids.clone().map(|id| {
            base + if spread_hours { (id % 3) * 3600 } else { 0 } + id % 3600
        }))),
        Arc::new(StringArray::from_iter_values(payloads)),
    ];
    RecordBatch::try_new(schema, columns).expect("batch")
}

fn spool_parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out
}

/// Every id in every Parquet object under the prefix.
async fn ids_in_store(store: &Arc<dyn ObjectStore>) -> (usize, Vec<i64>) {
    let objects: Vec<_> = store
        .list(Some(&StorePath::from(PREFIX)))
        .try_collect()
        .await
        .expect("list");
    let mut ids = Vec::new();
    for meta in &objects {
        assert!(
            meta.location.as_ref().ends_with(".parquet"),
            "unexpected object {}",
            meta.location
        );
        let bytes = store
            .get(&meta.location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet footer")
            .build()
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("read");
        for b in batches {
            let column = b.column_by_name("id").expect("id column");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("Int64");
            ids.extend(column.values().iter().copied());
        }
    }
    (objects.len(), ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_arrives_exactly_once_across_a_server_outage_and_an_uploader_restart() {
    let server_root = tempfile::tempdir().expect("server root");
    let spool = tempfile::tempdir().expect("spool");
    let mut server = S3TestServer::start(server_root.path(), BUCKET).await;
    let store = s3_client(&server.endpoint());
    let location = StoreLocation::new(
        store.clone(),
        url::Url::parse(&format!("s3://{BUCKET}/")).expect("url"),
        StorePath::from(PREFIX),
    );

    // Small files, then one big file (> 3 parts) in hour 0 that goes up as a
    // multipart upload.
    let persister = ParquetPersister::new(spool.path());
    let mut total = 0;
    for _ in 0..3 {
        persister
            .persist("t", &batch(total, 1000, 16, true))
            .expect("persist");
        total += 1000;
    }
    // ~13 MB after zstd: three parts of 5 MiB (S3's smallest).
    let big_rows = 200_000;
    let hour0 = batch(total, big_rows, 128, false);
    let big_ids: Vec<i64> = (total..total + big_rows).collect();
    let big_paths = persister.persist("t", &hour0).expect("persist big");
    assert_eq!(big_paths.len(), 1);
    let big_size = std::fs::metadata(&big_paths[0]).expect("big").len() as usize;
    assert!(big_size > 2 * 5 * MIB, "big file only {big_size} bytes");
    let files = spool_parquet_files(spool.path());
    let mut expected: Vec<i64> = (0..total).collect();
    expected.extend(&big_ids);
    expected.sort_unstable();

    let options = UploadOptions {
        multipart_threshold: 5 * MIB as u64,
        part_size: 5 * MIB,
        max_concurrent_parts: 1,
        after_upload: AfterUpload::DeleteLocal,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        poll_interval: Duration::from_millis(100),
        ..UploadOptions::default()
    };
    let first = Arc::new(Uploader::new(
        spool.path(),
        location.clone(),
        options.clone(),
    ));
    let (stop_first, stopped) = tokio::sync::oneshot::channel::<()>();
    let first_task = {
        let first = first.clone();
        tokio::spawn(async move {
            first
                .run(async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    // Take the server away as soon as a part of the big file is on the wire.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.requests().iter().any(|r| r.contains("partNumber=")) {
        assert!(Instant::now() < deadline, "no multipart upload started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.stop().await;
    // The uploader notices: attempts fail and are retried with backoff.
    while first.stats().failed_attempts.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the outage went unnoticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !spool_parquet_files(spool.path()).is_empty(),
        "the big file must still be in the spool"
    );
    // Restart the uploader too while the store is down (a daemon restart):
    // the new one finds what is left by scanning the spool.
    let _ = stop_first.send(());
    first_task.await.expect("first uploader");
    let second = Arc::new(Uploader::new(spool.path(), location, options));
    let pending = second.scan().expect("scan");
    assert!(
        pending.iter().any(|f| f.path == big_paths[0]),
        "{pending:?}"
    );
    server.restart().await;
    let (stop_second, stopped) = tokio::sync::oneshot::channel::<()>();
    let second_task = {
        let second = second.clone();
        tokio::spawn(async move {
            second
                .run(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    while !spool_parquet_files(spool.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the spool never drained: {:?}, {} failed attempts, last requests {:?}",
            spool_parquet_files(spool.path()),
            second.stats().failed_attempts.load(Ordering::Relaxed),
            server.requests().iter().rev().take(8).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_second.send(());
    second_task.await.expect("second uploader");
    assert!(second.stats().multipart_uploads.load(Ordering::Relaxed) >= 1);

    let (objects, mut ids) = ids_in_store(&store).await;
    assert_eq!(objects, files.len(), "one object per published file");
    ids.sort_unstable();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "some row arrived twice");
    assert_eq!(ids, expected, "rows lost or invented");
    // The keys are the local layout under the prefix.
    let keys: Vec<String> = store
        .list(Some(&StorePath::from(PREFIX)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    for key in keys {
        assert!(
            key.starts_with(&format!("{PREFIX}/t/date=2024-03-01/hour=0")),
            "{key}"
        );
    }
}
