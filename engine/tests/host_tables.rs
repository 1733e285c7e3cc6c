//! Host tables in real-shaped detection queries: event tables (written as
//! Parquet by the persister, or ingested by the real binary) joined to
//! `processes`, `hash`, `file`, `uptime` and `users` of this host.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};
use sluice::catalog::open_catalog;
use sluice::host::accounts::{AccountCache, PasswdFile, users_table_with};
use sluice::host::files::PathTable;
use sluice_sinks::ParquetPersister;

/// One `process_events` row: the columns these queries read.
#[derive(Clone)]
struct Event {
    pid: i64,
    parent: i64,
    auid: i64,
    path: String,
    time: i64,
}

/// Persists `events` as `process_events` Parquet under `data_dir`, every
/// other column NULL, through the pipeline's own persister.
fn persist_process_events(data_dir: &Path, events: &[Event]) {
    let def = sluice_schemas::table("process_events").expect("table");
    let schema = def.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            let int = |get: fn(&Event) -> i64| -> ArrayRef {
                Arc::new(Int64Array::from_iter_values(events.iter().map(get)))
            };
            match f.name().as_str() {
                "pid" => int(|e| e.pid),
                "parent" => int(|e| e.parent),
                "auid" => int(|e| e.auid),
                "time" => int(|e| e.time),
                "path" => Arc::new(StringArray::from_iter_values(
                    events.iter().map(|e| e.path.as_str()),
                )),
                "time_ns" => Arc::new(
                    TimestampNanosecondArray::from_iter_values(
                        events.iter().map(|e| e.time * 1_000_000_000),
                    )
                    .with_timezone("UTC"),
                ),
                _ => arrow::array::new_null_array(f.data_type(), events.len()),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema, columns).expect("batch");
    ParquetPersister::new(data_dir)
        .persist("process_events", &batch)
        .expect("persist");
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("plan {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("run {sql}: {e}"))
}

/// Column `name` of every row, rendered as text (NULL as `None`).
fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(name).expect(name);
        let array = arrow::compute::cast(array, &arrow::datatypes::DataType::Utf8).expect("cast");
        let text = array.as_any().downcast_ref::<StringArray>().expect("text");
        out.extend((0..text.len()).map(|i| text.is_valid(i).then(|| text.value(i).to_string())));
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn plan_text(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .expect("format")
        .to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[tokio::test]
async fn parent_and_grandparent_come_from_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = i64::from(std::process::id());
    // SAFETY: getppid has no preconditions.
    let my_parent = i64::from(unsafe { libc::getppid() });
    persist_process_events(
        dir.path(),
        &[Event {
            pid: 999_999,
            parent: me,
            auid: 0,
            path: "/usr/bin/curl".into(),
            time: now(),
        }],
    );
    let ctx = open_catalog(dir.path()).expect("catalog");
    let batches = rows(
        &ctx,
        "SELECT pe.pid, pe.path, p.pid AS parent_pid, p.path AS parent_path, \
                p.cmdline AS parent_cmdline, gp.pid AS grandparent_pid \
         FROM process_events pe \
         LEFT JOIN processes p ON p.pid = pe.parent \
         LEFT JOIN processes gp ON gp.pid = p.parent",
    )
    .await;
    let exe = std::env::current_exe().expect("exe");
    assert_eq!(column(&batches, "parent_pid"), [Some(me.to_string())]);
    assert_eq!(
        column(&batches, "parent_path"),
        [Some(exe.to_string_lossy().into_owned())]
    );
    assert_eq!(
        column(&batches, "grandparent_pid"),
        [Some(my_parent.to_string())]
    );
    let cmdline = column(&batches, "parent_cmdline")[0]
        .clone()
        .expect("cmdline");
    assert!(cmdline.contains("host_tables"), "{cmdline}");
}

#[tokio::test]
async fn hash_and_file_join_on_path_and_keep_unmatched_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("files");
    let abc = files.path().join("abc");
    std::fs::write(&abc, b"abc").expect("write");
    let missing = files.path().join("missing");
    let t = now();
    let event = |pid: i64, path: &Path| Event {
        pid,
        parent: 1,
        auid: 0,
        path: path.to_string_lossy().into_owned(),
        time: t,
    };
    persist_process_events(
        dir.path(),
        &[event(1, &abc), event(2, &missing), event(3, &abc)],
    );
    let ctx = open_catalog(dir.path()).expect("catalog");
    let sql = "SELECT pe.pid, pe.path, hash.md5, hash.sha256, f.size, f.mode, f.type \
               FROM process_events pe \
               LEFT JOIN hash ON pe.path = hash.path \
               LEFT JOIN file f ON pe.path = f.path \
               ORDER BY pe.pid";
    let batches = rows(&ctx, sql).await;
    let abc_sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(
        column(&batches, "sha256"),
        [Some(abc_sha.to_string()), None, Some(abc_sha.to_string())]
    );
    assert_eq!(
        column(&batches, "md5")[0].as_deref(),
        Some("900150983cd24fb0d6963f7d28e17f72")
    );
    assert_eq!(
        column(&batches, "size"),
        [Some("3".to_string()), None, Some("3".to_string())]
    );
    assert_eq!(column(&batches, "type")[0].as_deref(), Some("regular"));
    let mode = column(&batches, "mode")[0].clone().expect("mode");
    assert_eq!(mode.len(), 4, "{mode}");

    // The joins ran as path lookups, not as scans of the tables.
    let plan = plan_text(&rows(&ctx, &format!("EXPLAIN {sql}")).await);
    assert_eq!(
        plan.matches("PathLookupExec: table=hash").count(),
        1,
        "{plan}"
    );
    assert_eq!(
        plan.matches("PathLookupExec: table=file").count(),
        1,
        "{plan}"
    );
    assert!(!plan.contains("HostScanExec: table=hash"), "{plan}");

    // An inner join (the comma form with WHERE) drops events without a file,
    // and a filter on the table's own columns applies to the looked-up rows.
    let batches = rows(
        &ctx,
        &format!(
            "SELECT pe.pid FROM process_events pe, hash h \
             WHERE h.path = pe.path AND h.sha256 = '{abc_sha}' ORDER BY pe.pid"
        ),
    )
    .await;
    assert_eq!(
        column(&batches, "pid"),
        [Some("1".to_string()), Some("3".to_string())]
    );
}

#[tokio::test]
async fn hash_and_file_without_a_path_are_refused_and_constraints_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("files");
    std::fs::write(files.path().join("a"), b"abc").expect("write");
    std::fs::write(files.path().join("b"), b"").expect("write");
    let ctx = open_catalog(dir.path()).expect("catalog");
    for table in ["hash", "file"] {
        let err = ctx
            .sql(&format!("SELECT * FROM {table}"))
            .await
            .expect("plan")
            .collect()
            .await
            .expect_err("no constraint");
        assert!(
            err.to_string()
                .contains(&format!("{table} needs a path or directory constraint")),
            "{err}"
        );
    }
    let a = files.path().join("a");
    let batches = rows(
        &ctx,
        &format!("SELECT sha256 FROM hash WHERE path = '{}'", a.display()),
    )
    .await;
    assert_eq!(column(&batches, "sha256"), [Some(sha256_hex(b"abc"))]);
    let batches = rows(
        &ctx,
        &format!(
            "SELECT filename, size FROM file WHERE directory = '{}' ORDER BY filename",
            files.path().display()
        ),
    )
    .await;
    assert_eq!(
        column(&batches, "filename"),
        [Some("a".to_string()), Some("b".to_string())]
    );
    // AND of two constraints: only what both name.
    let batches = rows(
        &ctx,
        &format!(
            "SELECT path FROM file WHERE directory = '{}' AND path IN ('{}', '/etc/passwd')",
            files.path().display(),
            a.display()
        ),
    )
    .await;
    assert_eq!(
        column(&batches, "path"),
        [Some(a.to_string_lossy().into_owned())]
    );
}

#[tokio::test]
async fn a_join_over_100k_events_hashes_each_of_its_50_files_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("files");
    let paths: Vec<String> = (0..50)
        .map(|i| {
            let path = files.path().join(format!("bin-{i:02}"));
            std::fs::write(&path, format!("executable {i}\n").repeat(i + 1)).expect("write");
            path.to_string_lossy().into_owned()
        })
        .collect();
    // Other files in the same directory that no event names: never hashed.
    for i in 0..20 {
        std::fs::write(files.path().join(format!("other-{i}")), b"x").expect("write");
    }
    let t = now();
    let events: Vec<Event> = (0..100_000)
        .map(|i| Event {
            pid: i,
            parent: 1,
            auid: 0,
            path: paths[(i as usize * 7) % 50].clone(),
            time: t - (i % 3_600),
        })
        .collect();
    persist_process_events(dir.path(), &events);
    let ctx = open_catalog(dir.path()).expect("catalog");
    let provider = sluice::host::hash_table(&ctx).await.expect("hash table");
    let hash = (provider.as_ref() as &dyn std::any::Any)
        .downcast_ref::<PathTable>()
        .expect("PathTable");
    assert_eq!(hash.files_hashed(), 0);

    let sql = "SELECT pe.path, hash.sha256, count(*) AS events \
               FROM process_events pe LEFT JOIN hash ON pe.path = hash.path \
               GROUP BY pe.path, hash.sha256 ORDER BY pe.path";
    let batches = rows(&ctx, sql).await;
    let got_paths = column(&batches, "path");
    let got_sha = column(&batches, "sha256");
    let counts = column(&batches, "events");
    assert_eq!(got_paths.len(), 50);
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(got_paths[i].as_deref(), Some(path.as_str()));
        let content = format!("executable {i}\n").repeat(i + 1);
        assert_eq!(got_sha[i], Some(sha256_hex(content.as_bytes())), "{path}");
        assert_eq!(counts[i].as_deref(), Some("2000"));
    }
    assert_eq!(hash.files_hashed(), 50, "each distinct file hashed once");
    let total: u64 = (0..50u64)
        .map(|i| (format!("executable {i}\n").len() as u64) * (i + 1))
        .sum();
    assert_eq!(hash.bytes_hashed(), total);

    // The next query finds every digest in the cache.
    let hits = hash.cache_hits();
    rows(&ctx, sql).await;
    assert_eq!(hash.files_hashed(), 50);
    assert_eq!(hash.cache_hits(), hits + 50);

    // A rewritten file is hashed again.
    std::fs::write(&paths[0], b"changed").expect("rewrite");
    let batches = rows(&ctx, sql).await;
    assert_eq!(hash.files_hashed(), 51);
    assert_eq!(column(&batches, "sha256")[0], Some(sha256_hex(b"changed")));
}

#[tokio::test]
async fn uptime_cross_join_and_users_on_auid() {
    let dir = tempfile::tempdir().expect("tempdir");
    // SAFETY: getuid has no preconditions.
    let my_uid = i64::from(unsafe { libc::getuid() });
    let t = now();
    let event = |pid: i64, auid: i64, time: i64| Event {
        pid,
        parent: 1,
        auid,
        path: "/bin/sh".into(),
        time,
    };
    persist_process_events(
        dir.path(),
        &[
            event(1, 0, t - 10),
            event(2, my_uid, t - 20),
            event(3, 4_242_424, t - 30),
            // Before this host booted: filtered out by the uptime condition.
            event(4, 0, 86_400),
        ],
    );
    let ctx = open_catalog(dir.path()).expect("catalog");
    let batches = rows(
        &ctx,
        &format!(
            "SELECT pe.pid, uptime.total_seconds, users.username \
             FROM uptime, process_events pe \
             LEFT JOIN users ON pe.auid = users.uid \
             WHERE pe.time > {t} - uptime.total_seconds \
             ORDER BY pe.pid"
        ),
    )
    .await;
    assert_eq!(
        column(&batches, "pid"),
        [Some("1".into()), Some("2".into()), Some("3".into())]
    );
    let usernames = column(&batches, "username");
    assert_eq!(usernames[0].as_deref(), Some("root"));
    assert!(usernames[1].is_some(), "the current user has an account");
    assert_eq!(usernames[2], None, "an auid with no account");
    let uptime: i64 = column(&batches, "total_seconds")[0]
        .as_deref()
        .expect("uptime")
        .parse()
        .expect("number");
    assert!(uptime > 0);

    // The other small tables answer too.
    let batches = rows(&ctx, "SELECT unix_time, timezone FROM time").await;
    let unix: i64 = column(&batches, "unix_time")[0]
        .as_deref()
        .expect("time")
        .parse()
        .expect("number");
    assert!((unix - now()).abs() < 60);
    rows(&ctx, "SELECT * FROM dns_resolvers").await;
    let batches = rows(&ctx, "SELECT groupname FROM groups WHERE gid = 0").await;
    assert_eq!(column(&batches, "groupname"), [Some("root".to_string())]);
}

#[tokio::test]
async fn users_snapshot_refreshes_on_change_and_on_its_timer() {
    let files = tempfile::tempdir().expect("files");
    let passwd = files.path().join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/sh\nalice:x:501:20:Alice:/Users/alice:/bin/zsh\n",
    )
    .expect("write");
    let ttl = Duration::from_millis(300);
    let cache = Arc::new(AccountCache::new(Box::new(PasswdFile(passwd.clone())), ttl));
    let ctx = SessionContext::new();
    ctx.register_table("users", Arc::new(users_table_with(cache.clone())))
        .expect("register");
    let names = |batches: &[RecordBatch]| column(batches, "username");
    let sql = "SELECT username FROM users ORDER BY uid";

    let first = rows(&ctx, sql).await;
    assert_eq!(names(&first), [Some("root".into()), Some("alice".into())]);
    assert_eq!(cache.reads(), 1);
    // Unchanged and fresh: served from the snapshot.
    rows(&ctx, sql).await;
    assert_eq!(cache.reads(), 1);

    // A changed file is seen by the next query.
    let mut text = std::fs::read_to_string(&passwd).expect("read");
    text.push_str("bob:x:502:20:Bob:/Users/bob:/bin/zsh\n");
    std::fs::write(&passwd, text).expect("rewrite");
    let changed = rows(&ctx, sql).await;
    assert_eq!(
        names(&changed),
        [
            Some("root".into()),
            Some("alice".into()),
            Some("bob".into())
        ]
    );
    assert_eq!(cache.reads(), 2);

    // Past its time to live the snapshot is read again even if the file did
    // not change (NSS and Directory Services changes do not touch it).
    std::thread::sleep(ttl + Duration::from_millis(100));
    rows(&ctx, sql).await;
    assert_eq!(cache.reads(), 3);
}

#[test]
fn binary_joins_ingested_eslogger_events_to_hash_and_labels_host_tables() {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_str().expect("utf8");
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/eslogger/sample.jsonl"
    );
    common::stdout_of(&common::run(
        &["ingest", "--data-dir", data_dir, sample],
        None,
    ));
    // The sample's exec of /bin/ls: this host's /bin/ls gets hashed.
    let out = common::stdout_of(&common::run(
        &[
            "query",
            "--data-dir",
            data_dir,
            "--format",
            "csv",
            "SELECT e.path, h.sha256 FROM es_process_events e \
             LEFT JOIN hash h ON e.path = h.path \
             WHERE e.event_type = 'exec' AND e.path = '/bin/ls'",
        ],
        None,
    ));
    let ls = std::fs::read("/bin/ls").expect("this host has /bin/ls");
    assert_eq!(out, format!("path,sha256\n/bin/ls,{}\n", sha256_hex(&ls)));

    let out = common::stdout_of(&common::run(
        &["shell", "--data-dir", data_dir],
        Some(b".tables\n"),
    ));
    let host_lines: HashSet<&str> = out.lines().filter(|l| l.contains("host table")).collect();
    assert_eq!(host_lines.len(), sluice::host::HOST_TABLES.len(), "{out}");
    assert!(
        out.contains("  => hash (host table: reads this machine, now)"),
        "{out}"
    );
}
