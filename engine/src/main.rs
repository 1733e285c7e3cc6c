//! The `sluice` binary: parses the command line, sets up logging and a tokio
//! runtime, and runs one subcommand. See [`sluice::cli`] for the commands.
//!
//! Exit status: 0 on success, 1 when the command failed (the reason is on
//! standard error), 2 for a usage error (from clap).

use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice::logging::init(cli.log_format);
    match cli.command {
        Command::Ingest { data_dir, args } => {
            // Not inside a runtime: ingest is synchronous and may build its own.
            match sluice::ingest_cmd::run(&args, &data_dir.resolve()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Bsm { command } => match sluice::bsm_cmd::run(&command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Export { data_dir, args } => {
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(sluice::export::run(&args, &data_dir.resolve())) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Serve(args) => {
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(sluice::flight::run(&args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Query(args) => {
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            let data_dir = args.data_dir.resolve();
            let result = match &args.store {
                Some(url) => runtime.block_on(query_store(&data_dir, url, &args.sql, args.format)),
                None => runtime.block_on(sluice::query::run_command(
                    &data_dir,
                    &args.sql,
                    args.format,
                )),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Shell(args) => {
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            match sluice::shell::run(&runtime, &args.data_dir.resolve()) {
                // A script whose statements failed should fail its caller too;
                // at a terminal the user has already seen each error.
                Ok(summary) if !summary.interactive && summary.failures > 0 => ExitCode::FAILURE,
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
    }
}

/// The runtime queries run on. Two workers: sluice shares its host with the
/// users and the pipeline it watches, and one person's query should not claim
/// every core. (Multi-thread rather than current-thread because the shell
/// blocks on queries from outside the runtime, and DataFusion's spawned tasks
/// must keep running meanwhile.)
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-query")
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("sluice: error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// `sluice query --store URL`: the event tables from the object store.
async fn query_store(
    data_dir: &std::path::Path,
    url: &str,
    sql: &str,
    format: sluice::output::OutputFormat,
) -> Result<(), sluice::query::QueryError> {
    let location = sluice_sinks::object_store::StoreLocation::parse(url)
        .map_err(sluice::catalog::CatalogError::from)?;
    let ctx = sluice::catalog::open_catalog_with_store(data_dir, &location)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    sluice::query::run(&ctx, sql, format, &mut out).await
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("sluice: error: {error}");
    ExitCode::FAILURE
}
