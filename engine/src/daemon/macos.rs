//! Where the macOS-only live sources go, and why they are not here yet.
//!
//! Two sources need Apple frameworks that this project's Linux build machine
//! cannot compile or run:
//!
//! - **Native EndpointSecurity** (the `endpoint-sec` crate): one ES client,
//!   the single publisher for `es_process_events` and
//!   `es_process_file_events`, subscribing only to the event types the
//!   enabled tables need, pushing muting down into the kernel (`mute_path`
//!   for prefixes and literals, `invert_muting` for allow-lists), clearing
//!   the ES cache and muting itself on start, reporting `seq_num` gaps as
//!   `kernel` drops, with a handler that never blocks. It needs the
//!   `com.apple.developer.endpoint-security.client` entitlement
//!   (`deploy/macos/sluice.entitlements`).
//! - **OpenBSM auditpipe** (`/dev/auditpipe`, macOS and FreeBSD): the BSM
//!   decoder of `sluice ingest --format bsm` reading the live pipe.
//!
//! Neither was written: without a compiler for the target, code against
//! `endpoint-sec` or the auditpipe ioctls could not be checked even for
//! syntax, and the project does not ship code it has never compiled. The
//! `endpoint-sec` dependency is therefore not added.
//!
//! The boundary they will plug into is the one [`super::eslogger`] already
//! uses and tests on Linux: decode into the rows of the shared builders,
//! pass the gates, and [offer](super::pipeline::Pipeline::offer) each batch
//! to the pipeline without ever blocking. On macOS today, `sluice run`
//! collects EndpointSecurity events through `eslogger`, which needs no
//! entitlement (root and Full Disk Access only).

/// Whether this build has the native EndpointSecurity client. Always
/// `false` for now; see the module docs.
pub const NATIVE_ENDPOINT_SECURITY: bool = false;

/// Whether this build reads `/dev/auditpipe` live. Always `false` for now;
/// `sluice ingest --format bsm` reads trails.
pub const LIVE_AUDITPIPE: bool = false;
