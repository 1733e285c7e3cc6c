//! A real S3-compatible server on 127.0.0.1 for tests: `s3s` (the S3 protocol,
//! SigV4 authentication) over `s3s-fs` (buckets are directories) served by
//! hyper.
//!
//! The server can be stopped and started again on the same port over the same
//! directory, which is how the tests take the store away in the middle of an
//! upload. Stopping drops every open connection at once, like a crashed or
//! unplugged server would, not gracefully.
//!
//! Shared by `sinks/tests/s3_upload.rs` and `engine/tests/export.rs` (included
//! there with `#[path]`), so it only uses the dev-dependencies both crates have.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "sluice-test-access";
/// The secret key the server accepts.
pub const SECRET_KEY: &str = "sluice-test-secret-key";
/// The region the test clients sign for.
pub const REGION: &str = "us-east-1";

/// Every request the server has seen, as `METHOD path?query`.
pub type RequestLog = Arc<Mutex<Vec<String>>>;

/// A running (or stopped) in-process S3 server.
pub struct S3TestServer {
    root: PathBuf,
    addr: SocketAddr,
    requests: RequestLog,
    accept_task: Option<tokio::task::JoinHandle<()>>,
}

impl S3TestServer {
    /// Starts a server on a free loopback port over `root`, with `bucket`
    /// created (a directory under `root`).
    pub async fn start(root: &Path, bucket: &str) -> S3TestServer {
        std::fs::create_dir_all(root.join(bucket)).expect("create bucket dir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut server = S3TestServer {
            root: root.to_path_buf(),
            addr,
            requests: RequestLog::default(),
            accept_task: None,
        };
        server.serve(listener);
        server
    }

    /// `http://127.0.0.1:PORT`, the endpoint clients use.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment a `sluice` child process reads to reach this server
    /// as its S3 store: the endpoint over plain HTTP, the keys it accepts
    /// and the region.
    pub fn client_env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
        ]
    }

    /// Every request seen so far (across restarts).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("request log").clone()
    }

    /// Drops the listener and every open connection at once.
    pub async fn stop(&mut self) {
        if let Some(task) = self.accept_task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Serves again on the same port and directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        // The port was ours a moment ago; tokio sets SO_REUSEADDR, so only a
        // very unlucky race with another process could take it.
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind same port");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let service = RecordingService {
            inner: s3_service(&self.root),
            requests: self.requests.clone(),
        };
        self.accept_task = Some(tokio::spawn(async move {
            // Connections live in this set, so aborting the accept task drops
            // them all with it.
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                connections.spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        }));
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
    }
}

fn s3_service(root: &Path) -> S3Service {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over the root dir");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    builder.build()
}

/// The S3 service, logging each request before it is handled.
#[derive(Clone)]
struct RecordingService {
    inner: S3Service,
    requests: RequestLog,
}

impl hyper::service::Service<hyper::Request<Incoming>> for RecordingService {
    type Response = <S3Service as hyper::service::Service<hyper::Request<Incoming>>>::Response;
    type Error = <S3Service as hyper::service::Service<hyper::Request<Incoming>>>::Error;
    type Future = <S3Service as hyper::service::Service<hyper::Request<Incoming>>>::Future;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let line = format!("{} {}", req.method(), req.uri());
        self.requests.lock().expect("request log").push(line);
        hyper::service::Service::call(&self.inner, req)
    }
}
