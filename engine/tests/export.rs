//! `sluice export` to a real S3-compatible server on 127.0.0.1 over HTTP, read
//! back through DataFusion listing tables with Hive partition discovery.
//!
//! The source is the eslogger sample, ingested by the real binary.

mod common;
#[path = "../../sinks/tests/common/s3_server.rs"]
mod s3_server;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use serde_json::{Value, json};
use sluice::export::{ExportArgs, ExportPlan, FormatArg, LayoutArg, export};
use sluice_sinks::object_store::StoreLocation;

use s3_server::{ACCESS_KEY, REGION, S3TestServer, SECRET_KEY};

const BUCKET: &str = "lake";
const HOST: &str = "test-host";

fn sample() -> String {
    format!(
        "{}/../testdata/eslogger/sample.jsonl",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Ingests the sample into a new data dir with the real binary.
fn ingested_sample() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("data dir");
    let data_dir = dir.path().to_str().expect("utf-8");
    common::stdout_of(&common::run(
        &["ingest", "--data-dir", data_dir, &sample()],
        None,
    ));
    dir
}

fn s3_client(endpoint: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .expect("s3 client"),
    )
}

fn location(store: &Arc<dyn ObjectStore>, prefix: &str) -> StoreLocation {
    StoreLocation::new(
        store.clone(),
        url::Url::parse(&format!("s3://{BUCKET}/")).expect("url"),
        StorePath::from(prefix),
    )
}

fn args(format: FormatArg, layout: LayoutArg) -> ExportArgs {
    ExportArgs {
        to: "unused: the tests pass a StoreLocation".into(),
        tables: vec![],
        since: None,
        until: None,
        layout,
        format,
        host_identifier: Some(HOST.into()),
        target_file_mb: 256,
        region: Some("us-east-1".into()),
        account_id: Some("123456789012".into()),
        quiet: true,
    }
}

/// A DataFusion session reading `table_url` as a Hive-partitioned listing
/// table named `t`, partitions `partitions` discovered from the paths.
async fn lake_table(
    store: &Arc<dyn ObjectStore>,
    table_url: &str,
    partitions: &[&str],
) -> SessionContext {
    let ctx = SessionContext::new();
    ctx.register_object_store(
        &url::Url::parse(&format!("s3://{BUCKET}")).expect("url"),
        store.clone(),
    );
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            partitions
                .iter()
                .map(|p| (p.to_string(), DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new(ListingTableUrl::parse(table_url).expect("url"))
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await
        .expect("infer schema");
    ctx.register_table("t", Arc::new(ListingTable::try_new(config).expect("table")))
        .expect("register");
    ctx
}

async fn rows_as_json(ctx: &SessionContext, sql: &str) -> Vec<Value> {
    let batches: Vec<RecordBatch> = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs).expect("json");
    writer.finish().expect("json");
    let text = writer.into_inner();
    if text.is_empty() {
        return vec![];
    }
    serde_json::from_slice::<Vec<Value>>(&text).expect("json rows")
}

async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list(Some(&StorePath::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_export_reads_back_with_partition_discovery_and_twice_is_one_copy() {
    let data = ingested_sample();
    let server_root = tempfile::tempdir().expect("server root");
    let server = S3TestServer::start(server_root.path(), BUCKET).await;
    let store = s3_client(&server.endpoint());
    let destination = location(&store, "export");
    let source = sluice::catalog::open_catalog(data.path()).expect("catalog");
    let plan = ExportPlan::from_args(&args(FormatArg::Parquet, LayoutArg::Hive)).expect("plan");

    let first = export(&source, &plan, &destination, false)
        .await
        .expect("export");
    assert_eq!(first.rows, 16, "{first:?}");
    assert_eq!(first.stale_deleted, 0);
    let after_first = keys(&store, "export").await;
    assert!(
        after_first
            .iter()
            .all(|k| k.starts_with("export/table=es_process")),
        "{after_first:?}"
    );
    assert!(after_first.contains(&format!(
        "export/table=es_process_events/host={HOST}/date=2024-05-01/hour=13/{}",
        after_first
            .iter()
            .find(|k| k.contains("hour=13"))
            .and_then(|k| k.rsplit('/').next())
            .expect("hour 13 part")
    )));

    // The same range again: the new parts replace the old ones.
    let second = export(&source, &plan, &destination, false)
        .await
        .expect("export again");
    assert_eq!(second.rows, 16);
    assert_eq!(second.stale_deleted, first.files);
    let after_second = keys(&store, "export").await;
    assert_eq!(after_second.len(), after_first.len(), "{after_second:?}");
    assert!(after_second.iter().all(|k| !after_first.contains(k)));

    for table in ["es_process_events", "es_process_file_events"] {
        let ctx = lake_table(
            &store,
            &format!("s3://{BUCKET}/export/table={table}/"),
            &["host", "date", "hour"],
        )
        .await;
        let counts = rows_as_json(
            &ctx,
            "SELECT host, date, hour, count(*) AS n, count(DISTINCT eid) AS eids, \
             min(host_identifier) AS hid FROM t GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .await;
        let expected_source = rows_as_json(
            &source,
            &format!(
                "SELECT date_part('hour', time_ns) AS h, count(*) AS n FROM {table} \
                 GROUP BY 1 ORDER BY 1"
            ),
        )
        .await;
        assert_eq!(counts.len(), expected_source.len(), "{table}: {counts:?}");
        for (lake, src) in counts.iter().zip(&expected_source) {
            assert_eq!(lake["host"], HOST);
            assert_eq!(lake["hid"], HOST);
            assert_eq!(lake["date"], "2024-05-01");
            assert_eq!(
                lake["hour"].as_str().and_then(|h| h.parse::<f64>().ok()),
                src["h"].as_f64(),
                "{table}"
            );
            assert_eq!(lake["n"], src["n"], "{table}: exactly one copy");
        }
        // Rows are sorted by time within each file.
        let times = rows_as_json(&ctx, "SELECT time FROM t").await;
        let times: Vec<i64> = times.iter().filter_map(|r| r["time"].as_i64()).collect();
        let mut sorted = times.clone();
        sorted.sort_unstable();
        assert_eq!(times.len(), sorted.len());
    }
    drop(server);
}

/// The hand mapping of sample rows to OCSF that the export must match, field
/// by field (NULL fields are absent, as arrow's JSON writer leaves them out).
fn expected_ocsf() -> Vec<Value> {
    let product = json!({"name": "sluice", "vendor_name": "sluice"});
    vec![
        json!({
            "class_uid": 1007, "class_name": "Process Activity",
            "category_uid": 1, "category_name": "System Activity",
            "activity_id": 1, "activity_name": "Launch", "type_uid": 100701,
            "severity_id": 1, "severity": "Informational",
            "time": 1_714_564_800_123_i64,
            "metadata": {"version": "1.1.0", "product": product,
                         "log_name": "es_process_events", "uid": "0000000001"},
            "device": {"hostname": HOST},
            "actor": {"process": {"pid": 1, "file": {}, "parent_process": {"pid": 1}}},
            "process": {"pid": 500, "cmd_line": "ls -la \"My Documents\"",
                        "cwd": "/Users/alice",
                        "file": {"path": "/bin/ls", "name": "ls"},
                        "user": {"uid": "501"}, "parent_process": {"pid": 1}},
        }),
        json!({
            "class_uid": 1007, "class_name": "Process Activity",
            "category_uid": 1, "category_name": "System Activity",
            "activity_id": 2, "activity_name": "Terminate", "type_uid": 100702,
            "severity_id": 1, "severity": "Informational",
            "time": 1_714_564_800_300_i64,
            "metadata": {"version": "1.1.0", "product": product,
                         "log_name": "es_process_events", "uid": "0000000003"},
            "device": {"hostname": HOST},
            "actor": {"process": {"pid": 500, "file": {}, "parent_process": {"pid": 500}}},
            "process": {"pid": 501, "cmd_line": "",
                        "file": {"path": "/bin/zsh", "name": "zsh"},
                        "user": {"uid": "501"}, "parent_process": {"pid": 500}},
            "exit_code": 256,
        }),
        json!({
            "class_uid": 1001, "class_name": "File System Activity",
            "category_uid": 1, "category_name": "System Activity",
            "activity_id": 5, "activity_name": "Rename", "type_uid": 100105,
            "severity_id": 1, "severity": "Informational",
            "time": 1_714_564_805_000_i64,
            "metadata": {"version": "1.1.0", "product": product,
                         "log_name": "es_process_file_events", "uid": "0000000004"},
            "device": {"hostname": HOST},
            "actor": {"process": {"pid": 700,
                "file": {"path": "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
                         "name": "Finder"},
                "parent_process": {"pid": 1}}},
            "file": {"path": "/Users/alice/a.txt", "name": "a.txt"},
            "file_result": {"path": "/Users/alice/Documents/b.txt", "name": "b.txt"},
        }),
        json!({
            "class_uid": 1001, "class_name": "File System Activity",
            "category_uid": 1, "category_name": "System Activity",
            "activity_id": 4, "activity_name": "Delete", "type_uid": 100104,
            "severity_id": 1, "severity": "Informational",
            "time": 1_714_564_807_000_i64,
            "metadata": {"version": "1.1.0", "product": product,
                         "log_name": "es_process_file_events", "uid": "0000000006"},
            "device": {"hostname": HOST},
            "actor": {"process": {"pid": 700,
                "file": {"path": "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
                         "name": "Finder"},
                "parent_process": {"pid": 1}}},
            "file": {"path": "/tmp/y", "name": "y"},
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsf_security_lake_export_matches_the_hand_mapping() {
    let data = ingested_sample();
    let server_root = tempfile::tempdir().expect("server root");
    let server = S3TestServer::start(server_root.path(), BUCKET).await;
    let store = s3_client(&server.endpoint());
    let destination = location(&store, "");
    let source = sluice::catalog::open_catalog(data.path()).expect("catalog");
    let plan =
        ExportPlan::from_args(&args(FormatArg::Ocsf, LayoutArg::SecurityLake)).expect("plan");
    let totals = export(&source, &plan, &destination, false)
        .await
        .expect("export");
    assert_eq!(totals.rows, 16);

    let mut actual = Vec::new();
    for (source_name, uids) in [
        ("sluice_process_activity", "'0000000001', '0000000003'"),
        ("sluice_file_activity", "'0000000004', '0000000006'"),
    ] {
        let ctx = lake_table(
            &store,
            &format!("s3://{BUCKET}/ext/{source_name}/"),
            &["region", "accountId", "eventDay"],
        )
        .await;
        let partitions = rows_as_json(
            &ctx,
            "SELECT DISTINCT region, \"accountId\", \"eventDay\" FROM t",
        )
        .await;
        assert_eq!(
            partitions,
            vec![
                json!({"region": "us-east-1", "accountId": "123456789012", "eventDay": "20240501"})
            ]
        );
        // One OCSF class per source.
        let classes = rows_as_json(&ctx, "SELECT DISTINCT class_uid FROM t").await;
        assert_eq!(classes.len(), 1, "{source_name}: {classes:?}");
        let mut rows = rows_as_json(
            &ctx,
            &format!(
                "SELECT * EXCEPT (region, \"accountId\", \"eventDay\") FROM t \
                 WHERE get_field(metadata, 'uid') IN ({uids}) ORDER BY time"
            ),
        )
        .await;
        actual.append(&mut rows);
    }
    let expected = expected_ocsf();
    assert_eq!(actual.len(), expected.len(), "{actual:#?}");
    for (got, want) in actual.iter().zip(&expected) {
        let (Value::Object(got), Value::Object(want)) = (got, want) else {
            panic!("rows are objects")
        };
        for (field, value) in want {
            assert_eq!(got.get(field), Some(value), "field {field} of {got:#?}");
        }
        for field in got.keys() {
            assert!(
                want.contains_key(field),
                "unexpected field {field}: {got:#?}"
            );
        }
    }
    drop(server);
}

/// The uploader's copy of a data dir answers the same queries as the data
/// dir: `sluice query --store s3://…` (the real binary, credentials and
/// endpoint from the environment) against the in-process server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_the_uploaded_files_from_the_store_url() {
    use sluice_sinks::object_store::{AfterUpload, UploadOptions, Uploader};

    let data = ingested_sample();
    let server_root = tempfile::tempdir().expect("server root");
    let server = S3TestServer::start(server_root.path(), BUCKET).await;
    let store = s3_client(&server.endpoint());
    let uploader = Uploader::new(
        data.path(),
        location(&store, "hosts/a"),
        UploadOptions {
            after_upload: AfterUpload::KeepLocal,
            ..UploadOptions::default()
        },
    );
    let uploaded = uploader.drain(std::future::pending()).await.expect("drain");
    assert!(uploaded >= 3, "{uploaded}");

    let sql = "SELECT (SELECT count(*) FROM es_process_events) AS p, \
               (SELECT count(*) FROM es_process_file_events) AS f, \
               (SELECT max(path) FROM es_process_events) AS m";
    let data_dir = data.path().to_str().expect("utf-8").to_string();
    let empty = tempfile::tempdir().expect("empty data dir");
    let empty_dir = empty.path().to_str().expect("utf-8").to_string();
    let client_env = server.client_env();
    let (local, remote) = tokio::task::spawn_blocking(move || {
        let local = common::stdout_of(&common::run(
            &["query", "--data-dir", &data_dir, "--format", "csv", sql],
            None,
        ));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["query", "--data-dir", &empty_dir, "--format", "csv"])
            .args(["--store", &format!("s3://{BUCKET}/hosts/a"), sql])
            .envs(client_env)
            .output()
            .expect("run sluice");
        (local, common::stdout_of(&output))
    })
    .await
    .expect("queries");
    assert_eq!(local, "p,f,m\n4,12,/usr/bin/python3\n");
    assert_eq!(remote, local);
    drop(server);
}
