//! The query server: sluice's tables over Arrow Flight SQL.
//!
//! Analysts who would rather not use a terminal connect a Flight SQL client
//! (DBeaver or any JDBC tool through the Arrow Flight SQL JDBC driver, ADBC,
//! Python's `adbc_driver_flightsql`) to `sluice serve`. The SQL they send goes
//! through exactly the path `sluice query` uses ([`crate::query::plan`]): the
//! osquery/SQLite dialect, then the read-only check, so nothing reachable over
//! the network can write, and an error is the same one line the CLI prints.
//! Results stream back as Arrow record batches, never converted to text.
//!
//! What a client can do:
//! - run a statement (`CommandStatementQuery`), or prepare one and run it
//!   (what JDBC does for every statement); a prepared statement's handle is
//!   its SQL text, so the server keeps no per-client state to leak or expire;
//! - list catalogs, schemas, tables and table types, so that a GUI's table
//!   browser works;
//! - read the server's `SqlInfo` (name, version, read-only).
//!
//! Everything else (updates, bulk ingest, transactions, Substrait) is refused
//! by the Flight SQL defaults with `UNIMPLEMENTED`.
//!
//! # Binding and authentication
//!
//! The server binds 127.0.0.1 by default. A token is optional on a loopback
//! address and required on any other: [`ServeConfig::validate`] refuses to
//! start otherwise. With a token set, every call must carry
//! `authorization: Bearer <token>`, or go through the Flight handshake with
//! HTTP Basic credentials whose password is the token (what the JDBC driver
//! does with `user`/`password`); the handshake answers with the bearer header
//! to use from then on. Tokens are compared in constant time and never
//! logged.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::query::{self, QueryError};

/// The address the server binds unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// The environment variable `sluice serve` reads the bearer token from, when
/// `--token-file` is not given. (A token on the command line would show in
/// `ps` output.)
pub const TOKEN_ENV: &str = "SLUICE_FLIGHT_TOKEN";

/// Makes the SQL session a request runs in. The server calls it once per
/// statement, so a `PRAGMA` one client sends never changes another's
/// session, and a long-running server sees files persisted after it started.
pub type SessionFactory = Arc<dyn Fn() -> Result<SessionContext, QueryError> + Send + Sync>;

/// Arguments of `sluice serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where the tables are kept.
    #[command(flatten)]
    pub data_dir: crate::cli::DataDirArg,
    /// The address to listen on. Any address other than loopback needs a
    /// token.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// A file holding the bearer token clients must send [default: the
    /// SLUICE_FLIGHT_TOKEN environment variable, else no token, which only a
    /// loopback address accepts].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

/// `sluice serve`: serves the data dir until SIGINT or SIGTERM. The line
/// `sluice: serving Flight SQL on grpc://ADDR` on standard error says where,
/// once the address is bound.
pub async fn run(args: &ServeArgs) -> Result<(), ServeError> {
    let config = ServeConfig {
        listen: args.listen,
        token: load_token(args.token_file.as_deref())?,
    };
    let data_dir = args.data_dir.resolve();
    // One catalog per request sees every file persisted since the last;
    // the footers it parsed are kept for the next.
    let caches = crate::catalog::FooterCaches::new();
    let sessions: SessionFactory = Arc::new(move || {
        crate::catalog::open_catalog_cached(&data_dir, &caches).map_err(QueryError::from)
    });
    serve(
        config,
        sessions,
        |bound| eprintln!("sluice: serving Flight SQL on grpc://{bound}"),
        shutdown_signal(),
    )
    .await
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down the Flight SQL server");
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve on {listen} without a token: only loopback addresses may go \
         unauthenticated; set {TOKEN_ENV} or --token-file, or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        listen: SocketAddr,
    },
    /// The token given is empty or not printable ASCII (it travels in an HTTP
    /// header).
    #[error("the Flight SQL token must be 16 or more printable ASCII characters without spaces")]
    BadToken,
    /// The token file could not be read.
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The address could not be bound.
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        /// The address asked for.
        listen: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the Flight SQL server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Where and how the server listens.
#[derive(Clone)]
pub struct ServeConfig {
    /// The address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The bearer token clients must present, if any.
    pub token: Option<String>,
}

impl std::fmt::Debug for ServeConfig {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ServeConfig {
    /// Checks the rules of the module docs: a token is required off
    /// loopback, and must be usable as a header value.
    pub fn validate(&self) -> Result<(), ServeError> {
        if let Some(token) = &self.token
            && (token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ServeError::BadToken);
        }
        if self.token.is_none() && !self.listen.ip().is_loopback() {
            return Err(ServeError::TokenRequired {
                listen: self.listen,
            });
        }
        Ok(())
    }
}

/// Reads the token from `path` (surrounding whitespace dropped), else from
/// [`TOKEN_ENV`], else none.
pub fn load_token(path: Option<&std::path::Path>) -> Result<Option<String>, ServeError> {
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::TokenFile {
            path: path.display().to_string(),
            source,
        })?;
        return Ok(Some(text.trim().to_string()));
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// Binds `config.listen` and serves until `shutdown` completes. `on_bound`
/// is told the address actually bound (useful with port 0) before the first
/// request is accepted.
pub async fn serve(
    config: ServeConfig,
    sessions: SessionFactory,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            listen: config.listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Bind {
        listen: config.listen,
        source,
    })?;
    tracing::info!(listen = %bound, auth = config.token.is_some(), "Flight SQL server listening");
    on_bound(bound);
    let service = SluiceFlightSql {
        sessions,
        token: config.token.map(Arc::from),
    };
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, a reply's last small frame waits for the
            // client's delayed ACK (up to 40 ms on Linux): most of a pruned
            // query's latency as a client sees it.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}

/// The Flight SQL service over sluice's catalog.
#[derive(Clone)]
struct SluiceFlightSql {
    sessions: SessionFactory,
    token: Option<Arc<str>>,
}

/// The stream type of every `DoGet`.
type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// The catalog and schema names sluice's tables live under (DataFusion's
/// defaults, which unqualified names resolve to).
const CATALOG: &str = "datafusion";
const SCHEMA: &str = "public";

impl SluiceFlightSql {
    /// Refuses a call without the right bearer token, when one is set.
    fn authorize(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("a bearer token is required"))?;
        if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("the bearer token is not valid"))
        }
    }

    /// The `FlightInfo` of a catalog listing (catalogs, schemas, tables,
    /// table types, SqlInfo): the command itself is the ticket, answered by
    /// the matching `do_get_*`.
    fn listing_info(
        &self,
        command: &impl ProstMessageExt,
        schema: &Schema,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let info = flight_info(
            schema,
            command.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    fn session(&self) -> Result<SessionContext, Status> {
        (self.sessions)().map_err(|e| Status::internal(e.to_string()))
    }

    /// Plans `sql` as `sluice query` would, and insists on one statement.
    async fn plan_one(&self, ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, Status> {
        let mut plans = query::plan(ctx, sql).await.map_err(query_status)?;
        match plans.len() {
            1 => Ok(plans.remove(0)),
            0 => Err(Status::invalid_argument("no SQL statement given")),
            n => Err(Status::invalid_argument(format!(
                "one statement per request, got {n}"
            ))),
        }
    }

    /// Plans and runs `sql`, streaming its batches as Flight data.
    async fn run(&self, sql: &str) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.session()?;
        let plan = self.plan_one(&ctx, sql).await?;
        let frame = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| query_status(QueryError::Plan(e)))?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame
            .execute_stream()
            .await
            .map_err(|e| query_status(QueryError::Execute(e)))?
            .map_err(|e| FlightError::ExternalError(Box::new(QueryError::Execute(e))));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    /// The schema `sql` would return, without running it.
    async fn schema_of(&self, sql: &str) -> Result<Schema, Status> {
        let ctx = self.session()?;
        let plan = self.plan_one(&ctx, sql).await?;
        Ok(plan.schema().as_arrow().clone())
    }
}

/// A `FlightInfo` whose one endpoint's ticket is `ticket`.
fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

/// One batch as a `DoGet` stream.
fn one_batch(batch: arrow::record_batch::RecordBatch) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

/// A query error as a gRPC status: the caller's mistakes are
/// `INVALID_ARGUMENT` (or `PERMISSION_DENIED` for a write), failures while
/// running are `INTERNAL`; the message is the CLI's one line either way.
fn query_status(err: QueryError) -> Status {
    let message = err.to_string();
    match err {
        QueryError::ReadOnly(_) | QueryError::Refused(_) => Status::permission_denied(message),
        QueryError::Execute(_) | QueryError::Catalog(_) | QueryError::Output(_) => {
            Status::internal(message)
        }
        QueryError::Timeout(_) => Status::deadline_exceeded(message),
        _ => Status::invalid_argument(message),
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, Status> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Status::invalid_argument(format!("{what} is not valid UTF-8")))
}

/// Equal-length byte strings compared without an early exit, so the time
/// taken does not tell how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The password of an HTTP Basic `authorization` value.
fn basic_password(value: &str) -> Option<String> {
    use base64::Engine;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_string())
}

fn sql_info() -> &'static SqlInfoData {
    static INFO: std::sync::OnceLock<SqlInfoData> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let mut builder = SqlInfoDataBuilder::new();
        builder.append(SqlInfo::FlightSqlServerName, "sluice");
        builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        builder.append(SqlInfo::FlightSqlServerReadOnly, true);
        builder.append(SqlInfo::FlightSqlServerSql, true);
        builder.append(SqlInfo::FlightSqlServerSubstrait, false);
        builder.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        builder.append(SqlInfo::FlightSqlServerCancel, false);
        // The info names are a fixed list, so building cannot fail.
        builder.build().expect("static SqlInfo")
    })
}

#[tonic::async_trait]
impl FlightSqlService for SluiceFlightSql {
    type FlightService = SluiceFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let mut bearer = None;
        if let Some(token) = &self.token {
            let header = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let password = basic_password(header);
            let accepted = match &password {
                Some(p) => constant_time_eq(p.as_bytes(), token.as_bytes()),
                None => self.authorize(request.metadata()).is_ok(),
            };
            if !accepted {
                return Err(Status::unauthenticated(
                    "send the token as the password of Basic credentials, or as a bearer token",
                ));
            }
            bearer = Some(format!("Bearer {token}"));
        }
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        let stream: Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>> =
            Box::pin(futures::stream::iter([Ok(reply)]));
        let mut response = Response::new(stream);
        if let Some(bearer) = bearer {
            let value = bearer
                .parse()
                .map_err(|_| Status::internal("the token is not a valid header value"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = self.schema_of(&query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let info = flight_info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let sql = utf8(
            &query.prepared_statement_handle,
            "the prepared statement handle",
        )?;
        let schema = self.schema_of(&sql).await?;
        let info = flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing_info(&query, &schema, request)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing_info(&query, &schema, request)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing_info(&query, &schema, request)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing_info(&query, &schema, request)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info()).schema();
        self.listing_info(&query, &schema, request)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let sql = utf8(&ticket.statement_handle, "the statement handle")?;
        self.run(&sql).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let sql = utf8(
            &query.prepared_statement_handle,
            "the prepared statement handle",
        )?;
        self.run(&sql).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        Ok(one_batch(builder.build()?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG, SCHEMA);
        Ok(one_batch(builder.build()?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let ctx = self.session()?;
        let mut builder = query.into_builder();
        let Some(schema) = ctx.catalog(CATALOG).and_then(|c| c.schema(SCHEMA)) else {
            return Ok(one_batch(builder.build()?));
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            let Ok(Some(table)) = schema.table(&name).await else {
                continue;
            };
            builder
                .append(
                    CATALOG,
                    SCHEMA,
                    &name,
                    "TABLE",
                    &crate::sql::plain_schema(&table.schema()),
                )
                .map_err(Status::from)?;
        }
        Ok(one_batch(builder.build()?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        Ok(one_batch(builder.build()?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let batch = query.into_builder(sql_info()).build()?;
        Ok(one_batch(batch))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.authorize(request.metadata())?;
        let schema = self.schema_of(&query.query).await?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles hold no server state, so closing frees nothing.
        self.authorize(request.metadata())
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        Err(Status::unimplemented(format!(
            "sluice does not serve {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
