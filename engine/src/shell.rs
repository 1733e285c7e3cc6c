//! `sluice shell`: an osqueryi-like REPL over the catalog.
//!
//! Input is read line by line. A line starting with `.` (outside a statement)
//! is a dot command; anything else is SQL, gathered across lines until a line
//! ends with `;`, then run read-only (see [`crate::query`]).
//!
//! On a terminal the shell uses `rustyline` for line editing and keeps a
//! history file (see [`crate::data_dir::history_file`]). When standard input
//! is not a terminal (a pipe, a file), it reads plain lines, prints no prompts
//! or banner, so standard output carries only results, and stops at the end of
//! input; a statement left without its `;` at the end still runs. Errors go to
//! standard error; in that mode the exit status says whether any statement
//! failed, so scripts can rely on it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use rustyline::error::ReadlineError;
use tokio::runtime::Runtime;

use crate::catalog::{self, CatalogError};
use crate::output::{OutputError, OutputFormat};
use crate::query::{self, QueryError};

/// The help `.help` prints.
const HELP: &str = "\
.exit             Leave the shell
.help             Show this help
.mode [MODE]      Show or set the output mode: table, json, jsonl, csv or line
.quit             Leave the shell
.schema [TABLE]   Show the CREATE TABLE statement of TABLE, or of every table
.tables           List the tables
SQL statements end with ';' and may span lines. SQL is read-only.
";

/// Why the shell stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The catalog could not be opened.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The line editor failed (not end of input, not Ctrl-C).
    #[error("cannot read from the terminal: {0}")]
    Editor(#[from] ReadlineError),
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] std::io::Error),
    /// Results or messages could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Standard output or error could not be written.
    #[error("cannot write to the terminal: {0}")]
    Write(#[source] std::io::Error),
}

/// What the shell should do after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read the next line.
    Continue,
    /// `.quit` or `.exit`: stop.
    Quit,
}

/// The shell's state: the catalog, the output mode and the statement being
/// typed. It does no I/O of its own beyond the writers it is given, so it runs
/// the same from a terminal, a pipe or a test.
pub struct Shell {
    ctx: SessionContext,
    mode: OutputFormat,
    pending: String,
    failures: usize,
}

impl Shell {
    /// A shell over `ctx`, printing tables.
    pub fn new(ctx: SessionContext) -> Self {
        Shell {
            ctx,
            mode: OutputFormat::Table,
            pending: String::new(),
            failures: 0,
        }
    }

    /// The current output mode.
    pub fn mode(&self) -> OutputFormat {
        self.mode
    }

    /// Whether a statement has been started and awaits its `;`.
    pub fn in_statement(&self) -> bool {
        !self.pending.trim().is_empty()
    }

    /// How many statements and commands failed so far.
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// Drops the statement being typed (Ctrl-C at the prompt).
    pub fn cancel_statement(&mut self) {
        self.pending.clear();
    }

    /// Handles one line of input: results go to `out`, errors to `err`.
    pub async fn feed_line(
        &mut self,
        line: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<Step, ShellError> {
        let trimmed = line.trim();
        if !self.in_statement() && trimmed.starts_with('.') {
            return self.dot_command(trimmed, out, err);
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        if trimmed.ends_with(';') {
            self.run_pending(out, err).await?;
        }
        Ok(Step::Continue)
    }

    /// Runs a statement left without its `;` at the end of input.
    pub async fn finish(
        &mut self,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), ShellError> {
        if self.in_statement() {
            self.run_pending(out, err).await?;
        }
        Ok(())
    }

    async fn run_pending(
        &mut self,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), ShellError> {
        let sql = std::mem::take(&mut self.pending);
        match query::run(&self.ctx, &sql, self.mode, out).await {
            Ok(()) => Ok(()),
            // A failed write is the shell's problem, not the statement's.
            Err(QueryError::Output(e)) => Err(e.into()),
            Err(e) => self.report(err, &e),
        }
    }

    fn dot_command(
        &mut self,
        line: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<Step, ShellError> {
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or_default();
        let argument = words.next();
        match (command, argument) {
            (".quit" | ".exit", _) => return Ok(Step::Quit),
            (".help", _) => write!(out, "{HELP}").map_err(ShellError::Write)?,
            (".tables", _) => {
                for def in sluice_schemas::TABLES {
                    writeln!(out, "  => {}", def.name).map_err(ShellError::Write)?;
                }
                // Host tables answer from the machine running the shell, even
                // over a copied data dir: say so on every line.
                for host in crate::host::HOST_TABLES {
                    writeln!(out, "  => {} {}", host.name, crate::host::HOST_TABLE_LABEL)
                        .map_err(ShellError::Write)?;
                }
            }
            (".schema", None) => {
                for def in sluice_schemas::TABLES {
                    writeln!(out, "{}", catalog::create_table_statement(def))
                        .map_err(ShellError::Write)?;
                }
            }
            (".schema", Some(name)) => match sluice_schemas::table(name) {
                Some(def) => writeln!(out, "{}", catalog::create_table_statement(def))
                    .map_err(ShellError::Write)?,
                None => {
                    let tables: Vec<_> = sluice_schemas::TABLES.iter().map(|t| t.name).collect();
                    self.report(
                        err,
                        &format!(
                            "unknown table '{name}'; the tables are: {}",
                            tables.join(", ")
                        ),
                    )?;
                }
            },
            (".mode", None) => {
                writeln!(out, "current output mode: {}", self.mode).map_err(ShellError::Write)?
            }
            (".mode", Some(name)) => match name.parse::<OutputFormat>() {
                Ok(mode) if mode.is_text() => self.mode = mode,
                Ok(mode) => self.report(
                    err,
                    &format!("{mode} is binary; use sluice query --format {mode} --out FILE"),
                )?,
                Err(e) => self.report(err, &e)?,
            },
            (other, _) => self.report(
                err,
                &format!("unknown command {other}; .help lists the commands"),
            )?,
        }
        Ok(Step::Continue)
    }

    fn report(
        &mut self,
        err: &mut dyn Write,
        message: &dyn std::fmt::Display,
    ) -> Result<(), ShellError> {
        self.failures += 1;
        writeln!(err, "Error: {message}").map_err(ShellError::Write)
    }
}

/// How a shell session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellSummary {
    /// Whether input came from a terminal.
    pub interactive: bool,
    /// How many statements and commands failed.
    pub failures: usize,
}

/// `sluice shell`: opens the catalog over `data_dir` and reads statements
/// from standard input until `.quit` or its end. Queries run on `runtime`.
pub fn run(runtime: &Runtime, data_dir: &Path) -> Result<ShellSummary, ShellError> {
    let mut shell = Shell::new(catalog::open_catalog(data_dir)?);
    let interactive = std::io::stdin().is_terminal();
    let result = if interactive {
        run_interactive(
            runtime,
            &mut shell,
            data_dir,
            crate::data_dir::history_file(),
        )
    } else {
        run_piped(runtime, &mut shell)
    };
    match result {
        // Whoever read our output stopped reading: that ends the session.
        Err(ShellError::Output(e)) if e.is_broken_pipe() => {}
        Err(ShellError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(ShellSummary {
        interactive,
        failures: shell.failures(),
    })
}

fn run_piped(runtime: &Runtime, shell: &mut Shell) -> Result<(), ShellError> {
    let mut input = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::stderr();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if input
            .read_until(b'\n', &mut raw)
            .map_err(ShellError::Stdin)?
            == 0
        {
            break;
        }
        // A stray invalid byte should not end a script; SQL text is UTF-8.
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\n', '\r']);
        let step = runtime.block_on(shell.feed_line(line, &mut out, &mut err))?;
        // Keep results and errors in order when both go to one terminal.
        out.flush().map_err(ShellError::Write)?;
        if step == Step::Quit {
            return Ok(());
        }
    }
    runtime.block_on(shell.finish(&mut out, &mut err))?;
    out.flush().map_err(ShellError::Write)
}

fn run_interactive(
    runtime: &Runtime,
    shell: &mut Shell,
    data_dir: &Path,
    history: Option<PathBuf>,
) -> Result<(), ShellError> {
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .max_history_size(10_000)?
        .build();
    let mut editor = rustyline::DefaultEditor::with_config(config)?;
    if let Some(path) = &history
        && path.exists()
        && let Err(e) = editor.load_history(path)
    {
        tracing::warn!(history = %path.display(), error = %e, "cannot load shell history");
    }
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    writeln!(
        out,
        "sluice shell over {}; type .help for help",
        data_dir.display()
    )
    .map_err(ShellError::Write)?;
    loop {
        let prompt = if shell.in_statement() {
            "    ...> "
        } else {
            "sluice> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    editor.add_history_entry(line.as_str())?;
                }
                if runtime.block_on(shell.feed_line(&line, &mut out, &mut err))? == Step::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => shell.cancel_statement(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // rustyline writes the history file with mode 0600: queries can name
    // sensitive paths and users.
    if let Some(path) = &history
        && let Err(e) = editor.save_history(path)
    {
        tracing::warn!(history = %path.display(), error = %e, "cannot save shell history");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Session {
        shell: Shell,
        out: Vec<u8>,
        err: Vec<u8>,
        _dir: tempfile::TempDir,
    }

    impl Session {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            crate::catalog::tests::write_process_events(
                dir.path(),
                "date=2024-01-01/hour=00/x.parquet",
                &[(42, "/bin/ls", 1)],
            );
            let ctx = catalog::open_catalog(dir.path()).expect("catalog");
            Session {
                shell: Shell::new(ctx),
                out: Vec::new(),
                err: Vec::new(),
                _dir: dir,
            }
        }

        async fn feed(&mut self, input: &str) -> Step {
            for line in input.lines() {
                let step = self
                    .shell
                    .feed_line(line, &mut self.out, &mut self.err)
                    .await
                    .expect("feed");
                if step == Step::Quit {
                    return step;
                }
            }
            self.shell
                .finish(&mut self.out, &mut self.err)
                .await
                .expect("finish");
            Step::Continue
        }

        fn take_out(&mut self) -> String {
            String::from_utf8(std::mem::take(&mut self.out)).expect("utf8")
        }

        fn take_err(&mut self) -> String {
            String::from_utf8(std::mem::take(&mut self.err)).expect("utf8")
        }
    }

    #[tokio::test]
    async fn tables_lists_every_table() {
        let mut s = Session::new();
        s.feed(".tables").await;
        let out = s.take_out();
        assert_eq!(
            out.lines().count(),
            sluice_schemas::TABLES.len() + crate::host::HOST_TABLES.len()
        );
        assert!(out.contains("  => es_process_events\n"), "{out}");
        assert!(
            out.contains("  => processes (host table: reads this machine, now)\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn schema_prints_one_or_all_tables() {
        let mut s = Session::new();
        s.feed(".schema es_process_events").await;
        let out = s.take_out();
        assert!(
            out.starts_with("CREATE TABLE es_process_events(`version` INTEGER,"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1);
        s.feed(".schema").await;
        assert_eq!(s.take_out().lines().count(), sluice_schemas::TABLES.len());
        s.feed(".schema nope").await;
        assert!(s.take_err().contains("unknown table 'nope'"));
        assert_eq!(s.shell.failures(), 1);
    }

    #[tokio::test]
    async fn statements_span_lines_until_a_semicolon() {
        let mut s = Session::new();
        s.feed(".mode csv").await;
        for line in ["SELECT pid", "FROM es_process_events"] {
            s.shell
                .feed_line(line, &mut s.out, &mut s.err)
                .await
                .expect("feed");
            assert!(s.shell.in_statement());
        }
        assert!(s.out.is_empty());
        s.shell
            .feed_line(";", &mut s.out, &mut s.err)
            .await
            .expect("feed");
        assert!(!s.shell.in_statement());
        assert_eq!(s.take_out(), "pid\n42\n");
    }

    #[tokio::test]
    async fn dot_at_line_start_inside_a_statement_is_sql() {
        let mut s = Session::new();
        s.feed(".mode csv\nSELECT\n.5 AS x;").await;
        assert_eq!(s.take_out(), "x\n0.5\n", "{}", s.take_err());
    }

    #[tokio::test]
    async fn mode_switches_output_and_rejects_unknown_modes() {
        let mut s = Session::new();
        s.feed(".mode line\nSELECT pid, path FROM es_process_events;")
            .await;
        assert_eq!(s.take_out(), " pid = 42\npath = /bin/ls\n");
        s.feed(".mode json\nSELECT pid FROM es_process_events;")
            .await;
        assert_eq!(s.take_out(), "[{\"pid\":42}]\n");
        s.feed(".mode jsonl\nSELECT pid FROM es_process_events;")
            .await;
        assert_eq!(s.take_out(), "{\"pid\":42}\n");
        s.feed(".mode").await;
        assert_eq!(s.take_out(), "current output mode: jsonl\n");
        s.feed(".mode xml").await;
        assert!(s.take_err().contains("unknown output format"));
        s.feed(".mode parquet").await;
        assert!(s.take_err().contains("parquet is binary"));
        assert_eq!(s.shell.mode(), OutputFormat::Jsonl);
    }

    #[tokio::test]
    async fn errors_go_to_err_and_the_shell_goes_on() {
        let mut s = Session::new();
        s.feed("CREATE TABLE t (a INT);\n.bogus\nSELECT 1 AS one;")
            .await;
        let err = s.take_err();
        assert!(err.contains("Error: refused"), "{err}");
        assert!(err.contains("unknown command .bogus"), "{err}");
        assert!(s.take_out().contains("| one |"));
        assert_eq!(s.shell.failures(), 2);
    }

    #[tokio::test]
    async fn quit_stops_and_eof_runs_an_unterminated_statement() {
        let mut s = Session::new();
        assert_eq!(s.feed(".quit\nSELECT 1;").await, Step::Quit);
        assert!(s.take_out().is_empty());
        assert_eq!(s.feed(".exit").await, Step::Quit);
        s.feed(".mode csv\nSELECT 2 AS two").await;
        assert_eq!(s.take_out(), "two\n2\n");
    }

    #[tokio::test]
    async fn cancel_drops_the_pending_statement() {
        let mut s = Session::new();
        s.shell
            .feed_line("SELECT 1", &mut s.out, &mut s.err)
            .await
            .expect("feed");
        s.shell.cancel_statement();
        assert!(!s.shell.in_statement());
        s.feed(".tables").await;
        assert!(s.take_out().contains("=> file_events"));
    }
}
