//! The cost of joining a million events to `users`, the "materialized view"
//! of the account database (`sluice::host::accounts`).
//!
//! A million `process_events`-shaped rows (pid, auid, path) sit in memory, so
//! the figure is the join and not Parquet decoding. Their `auid`s cycle over
//! this host's real uids, with one in eight an uid that has no account (as
//! for a deleted user). Two queries run through the sluice catalog:
//!
//! - `scan`: the events alone, projected (the baseline);
//! - `left_join_users`: `LEFT JOIN users ON e.auid = users.uid`, returning the
//!   username of every event.
//!
//! The difference is what the join costs; the account database itself is read
//! once and then served from the snapshot.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const EVENTS: usize = 1_000_000;
const BATCH_ROWS: usize = 8_192;

/// The uids of this host's accounts, through the `users` table itself.
fn host_uids(runtime: &tokio::runtime::Runtime, ctx: &SessionContext) -> Vec<i64> {
    let batches = runtime
        .block_on(async { ctx.sql("SELECT uid FROM users").await?.collect().await })
        .expect("users");
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("uid")
                .values()
                .to_vec()
        })
        .collect()
}

fn events(uids: &[i64]) -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pid", DataType::Int64, true),
        Field::new("auid", DataType::Int64, true),
        Field::new("path", DataType::Utf8, true),
    ]));
    let paths = [
        "/bin/zsh",
        "/usr/bin/git",
        "/usr/libexec/xpcproxy",
        "/bin/ls",
    ];
    let batches = (0..EVENTS)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let rows = start..(start + BATCH_ROWS).min(EVENTS);
            let auid = rows.clone().map(|i| {
                if i % 8 == 7 {
                    4_000_000 + i as i64 % 100
                } else {
                    uids[i % uids.len()]
                }
            });
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| i as i64))),
                    Arc::new(Int64Array::from_iter_values(auid)),
                    Arc::new(StringArray::from_iter_values(
                        rows.map(|i| paths[i % paths.len()]),
                    )),
                ],
            )
            .expect("batch")
        })
        .collect();
    (schema, batches)
}

fn users_join(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let data_dir = tempfile::tempdir().expect("data dir");
    let ctx = sluice::catalog::open_catalog(data_dir.path()).expect("catalog");
    let uids = host_uids(&runtime, &ctx);
    assert!(!uids.is_empty(), "this host has accounts");
    let (schema, batches) = events(&uids);
    // Two partitions, as many as this project's build machine has cores.
    let half = batches.len() / 2;
    let partitions = vec![batches[..half].to_vec(), batches[half..].to_vec()];
    let table = MemTable::try_new(schema, partitions).expect("memtable");
    ctx.register_table("events", Arc::new(table))
        .expect("register");

    let run = |sql: &str| -> usize {
        runtime
            .block_on(async { ctx.sql(sql).await?.collect().await })
            .expect("query")
            .iter()
            .map(|b| b.num_rows())
            .sum()
    };
    let join = "SELECT e.pid, e.path, users.username FROM events e \
                LEFT JOIN users ON e.auid = users.uid";
    assert_eq!(run(join), EVENTS, "a left join keeps every event");

    let mut group = c.benchmark_group("users_join");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("scan", |b| {
        b.iter(|| black_box(run("SELECT e.pid, e.path, e.auid FROM events e")))
    });
    group.bench_function("left_join_users", |b| b.iter(|| black_box(run(join))));
    group.finish();
}

criterion_group!(benches, users_join);
criterion_main!(benches);
