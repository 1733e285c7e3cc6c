//! A real S3-compatible server on 127.0.0.1, for timing
//! `sluice bench firehose --upload s3://…` by hand where no S3 is at hand.
//!
//! It is the tests' in-process server (`sinks/tests/common/s3_server.rs`:
//! the S3 protocol and SigV4 authentication of `s3s` over the directories
//! of `s3s-fs`), run on its own so that a release build of sluice can send
//! it a long run's files over HTTP. It shares the host's cores with the
//! bench, so the upload's figures are an upper bound on what a remote store
//! would cost the host.
//!
//! ```text
//! cargo run --release -p sluice --example s3_stand_in -- /tmp/s3-root lake
//! ```
//!
//! It prints the environment a `sluice` process needs to reach it (the
//! endpoint and the stand-in's fixed test credentials, which guard nothing
//! but this loopback server) and serves until it is killed.

#[path = "../../sinks/tests/common/s3_server.rs"]
mod s3_server;

use std::path::PathBuf;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(root), Some(bucket)) = (args.next(), args.next()) else {
        eprintln!("usage: s3_stand_in ROOT_DIR BUCKET");
        std::process::exit(2);
    };
    let server = s3_server::S3TestServer::start(&PathBuf::from(root), &bucket).await;
    for (name, value) in server.client_env() {
        println!("export {name}={value}");
    }
    std::future::pending::<()>().await;
    drop(server);
}
