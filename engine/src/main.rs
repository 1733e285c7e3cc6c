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
        // Builds its own runtime for the queries it times.
        Command::Bench { command } => match sluice::bench::run(&command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        // Builds its own runtime: the daemon's threads are not all async.
        Command::Run(args) => match sluice::daemon::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Status(args) => match sluice::daemon::status::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
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
            let result =
                runtime.block_on(sluice::query::run_command(sluice::query::QueryCommand {
                    data_dir: &data_dir,
                    store: args.store.as_deref(),
                    sql: &args.sql,
                    format: args.format,
                    out: args.out.as_deref(),
                }));
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

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("sluice: error: {error}");
    ExitCode::FAILURE
}
