//! `sluice serve` with a real Flight SQL client (arrow-flight's
//! `FlightSqlServiceClient`) over gRPC on 127.0.0.1: statements, prepared
//! statements, table listing, refusals, and the token rule off loopback.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::CommandGetTables;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightInfo, Ticket};
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/eslogger/sample.jsonl"
);
const TOKEN: &str = "test-token-0123456789abcdef";

/// A `sluice serve` child, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sluice serve` and waits for the line that says where it listens.
fn serve(data_dir: &Path, listen: &str, token: Option<&str>) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", listen])
        .env_remove("SLUICE_FLIGHT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("SLUICE_FLIGHT_TOKEN", token);
    }
    let mut child = command.spawn().expect("spawn sluice serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("sluice serve ended before listening")
            .expect("read stderr");
        if let Some(addr) = line.strip_prefix("sluice: serving Flight SQL on grpc://") {
            break addr.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

fn ingested_data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("data dir");
    let out = common::run(
        &["ingest", "--data-dir", dir.path().to_str().unwrap(), SAMPLE],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

async fn client(addr: &str) -> FlightSqlServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    FlightSqlServiceClient::new(channel)
}

/// Every batch behind every endpoint of `info`.
async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, String> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket: Ticket = endpoint.ticket.expect("ticket");
        let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
        batches.extend(
            stream
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(batches)
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b
                .column_by_name(column)
                .expect("column")
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone();
            (0..array.len())
                .map(|i| array.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flight_sql_client_runs_statements_and_prepared_statements() {
    let dir = ingested_data_dir();
    let server = serve(dir.path(), "127.0.0.1:0", None);
    let mut client = client(&server.addr).await;

    // A statement, in the SQLite dialect osquery users write.
    let info = client
        .execute(
            "SELECT event_type, count(*) AS n FROM es_process_events \
             GROUP BY event_type ORDER BY event_type"
                .to_string(),
            None,
        )
        .await
        .expect("execute");
    let batches = fetch(&mut client, info).await.expect("fetch");
    assert_eq!(strings(&batches, "event_type"), ["exec", "exit", "fork"]);
    let counts: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("n")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    let local = common::stdout_of(&common::run(
        &[
            "query",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--format",
            "csv",
            "SELECT count(*) AS n FROM es_process_events",
        ],
        None,
    ));
    assert_eq!(
        local,
        format!("n\n{}\n", counts.iter().sum::<i64>()),
        "the server sees what `sluice query` sees"
    );

    // A prepared statement, as JDBC sends every query.
    let mut prepared = client
        .prepare(
            "SELECT filename FROM es_process_file_events ORDER BY filename".to_string(),
            None,
        )
        .await
        .expect("prepare");
    assert_eq!(
        prepared.dataset_schema().expect("schema").field(0).name(),
        "filename"
    );
    let info = prepared.execute().await.expect("execute prepared");
    let files = strings(&fetch(&mut client, info).await.expect("fetch"), "filename");
    assert!(!files.is_empty(), "the sample has file events");
    prepared.close().await.expect("close");

    // The table browser of a GUI client.
    let info = client
        .get_tables(CommandGetTables {
            include_schema: false,
            ..Default::default()
        })
        .await
        .expect("get_tables");
    let tables = strings(
        &fetch(&mut client, info).await.expect("fetch"),
        "table_name",
    );
    for table in [
        "es_process_events",
        "es_process_file_events",
        "osquery_events",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }

    // Writes are refused, with the CLI's one-line reason.
    for sql in [
        "CREATE TABLE x (a INT)",
        "INSERT INTO es_process_events (pid) VALUES (1)",
        "COPY es_process_events TO '/tmp/x.parquet'",
    ] {
        let err = client
            .execute(sql.to_string(), None)
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains("refused"), "{sql}: {err}");
    }
    // A mistake is a clear error too, and the server carries on.
    let err = client
        .execute("SELECT nope FROM es_process_events".to_string(), None)
        .await
        .expect_err("unknown column")
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let info = client
        .execute("SELECT 1 AS one".to_string(), None)
        .await
        .expect("still serving");
    assert_eq!(
        fetch(&mut client, info).await.expect("fetch")[0].num_rows(),
        1
    );
}

#[test]
fn a_non_loopback_bind_without_a_token_does_not_start() {
    let dir = tempfile::tempdir().expect("data dir");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .env_remove("SLUICE_FLIGHT_TOKEN")
        .output()
        .expect("run sluice serve");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to serve on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_unauthenticated_calls_are_refused() {
    let dir = ingested_data_dir();
    let server = serve(dir.path(), "0.0.0.0:0", Some(TOKEN));
    let port = server.addr.rsplit(':').next().expect("port");
    let addr = format!("127.0.0.1:{port}");

    // No token: refused, before any SQL is looked at.
    let mut anonymous = client(&addr).await;
    let err = anonymous
        .execute("SELECT 1".to_string(), None)
        .await
        .expect_err("no token")
        .to_string();
    assert!(
        err.contains("Unauthenticated") || err.contains("bearer token"),
        "{err}"
    );
    let err = anonymous
        .get_tables(CommandGetTables::default())
        .await
        .expect_err("no token for metadata either")
        .to_string();
    assert!(err.contains("bearer token"), "{err}");

    // A wrong token, and wrong Basic credentials: refused.
    let mut wrong = client(&addr).await;
    wrong.set_token("not-the-token-at-all".to_string());
    assert!(wrong.execute("SELECT 1".to_string(), None).await.is_err());
    assert!(wrong.handshake("analyst", "wrong password").await.is_err());

    // The bearer token works.
    let mut bearer = client(&addr).await;
    bearer.set_token(TOKEN.to_string());
    let info = bearer
        .execute(
            "SELECT count(*) AS n FROM es_process_events".to_string(),
            None,
        )
        .await
        .expect("authorized");
    assert_eq!(
        fetch(&mut bearer, info).await.expect("fetch")[0].num_rows(),
        1
    );

    // So does the handshake JDBC makes with user and password; the client
    // keeps the bearer header the server answers with.
    let mut basic = client(&addr).await;
    basic.handshake("analyst", TOKEN).await.expect("handshake");
    assert_eq!(basic.token().map(String::as_str), Some(TOKEN));
    let info = basic
        .execute("SELECT 1 AS one".to_string(), None)
        .await
        .expect("authorized after the handshake");
    assert_eq!(
        fetch(&mut basic, info).await.expect("fetch")[0].num_rows(),
        1
    );
}
