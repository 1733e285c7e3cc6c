//! Helpers shared by the sinks integration tests.

pub mod s3_server;
