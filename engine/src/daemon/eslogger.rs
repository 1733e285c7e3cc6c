//! The `eslogger` source: EndpointSecurity events through Apple's
//! `eslogger` (macOS 13 and later; root and Full Disk Access, but no ES
//! entitlement), restarted with backoff whenever it dies.
//!
//! Two layers, so that everything but the choice of program is tested on
//! Linux:
//!
//! - [`CommandSupervisor`] runs any command, hands each line of its standard
//!   output to a callback, and when the command exits (or cannot start)
//!   starts it again after a delay that doubles on every failure in a row,
//!   from `restart_min_ms` to `restart_max_ms` (a run that lasted a minute
//!   resets it). Stopping sends SIGTERM, then SIGKILL if the child lingers.
//! - [`EsloggerSource`] gives it `eslogger <event names>` and decodes the
//!   lines with the same decoder, gates and builders as `sluice ingest`,
//!   handing batches to the pipeline by size and, through a small flusher
//!   thread, by age, so a quiet Mac's events still show up within
//!   `flush_ms`.
//!
//! The tests run a shell script that prints `testdata/eslogger/sample.jsonl`
//! and exits, so the restart path is exercised on every run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_ingest::eslogger::EsloggerDecoder;
use sluice_ingest::gates::{DropCounters, Gates};
use sluice_ingest::{LineProblem, SkipReason};

use super::metrics::{Metrics, SourceGauges};
use super::pipeline::Pipeline;
use super::{Batching, DaemonError};

/// Lines longer than this are skipped as malformed without being kept.
const MAX_LINE_BYTES: usize = 16 << 20;
/// A run at least this long resets the restart delay to its minimum.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// How long a stopped child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program (looked up on `PATH` unless it has a slash).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Delays between restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
}

struct Control {
    stop: AtomicBool,
    /// Skip the next delay (the command changed, not failed).
    restart_now: AtomicBool,
    /// The running child's pid, 0 when none.
    pid: AtomicU32,
    spec: Mutex<CommandSpec>,
    wake: (Mutex<()>, Condvar),
}

impl Control {
    fn signal_child(&self, signal: libc::c_int) {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid != 0 {
            // SAFETY: kill has no memory preconditions. The pid is cleared
            // before the child is reaped, so it cannot name a reused pid.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// Sleeps `delay`, or less if stopped or told to restart now.
    fn sleep(&self, delay: Duration) {
        let deadline = Instant::now() + delay;
        let (lock, condvar) = &self.wake;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !self.stop.load(Ordering::SeqCst) && !self.restart_now.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = condvar
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn wake(&self) {
        let (lock, condvar) = &self.wake;
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        condvar.notify_all();
    }
}

/// The metrics, and which source's gauges in them a supervisor updates.
pub type GaugePick = (Arc<Metrics>, fn(&Metrics) -> &SourceGauges);

/// Runs a command for as long as it is wanted, restarting it with backoff.
pub struct CommandSupervisor {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CommandSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSupervisor")
            .field("pid", &self.control.pid.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CommandSupervisor {
    /// Starts `spec` on a thread named `sluice-<name>`. Each line of its
    /// standard output (without the newline; `None` for a line longer than
    /// 16 MiB, which is skipped) goes to `on_line` with its line number in
    /// this run; `on_exit` is called each time the output ends. `gauges`
    /// (the metrics and which source's gauges to use) counts restarts and
    /// start failures and says whether the command is up.
    pub fn start(
        name: &str,
        spec: CommandSpec,
        backoff: Backoff,
        gauges: Option<GaugePick>,
        mut on_line: impl FnMut(Option<&[u8]>, u64) + Send + 'static,
        mut on_exit: impl FnMut() + Send + 'static,
    ) -> Result<CommandSupervisor, DaemonError> {
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            restart_now: AtomicBool::new(false),
            pid: AtomicU32::new(0),
            spec: Mutex::new(spec),
            wake: (Mutex::new(()), Condvar::new()),
        });
        let thread_control = control.clone();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-{name}"))
            .spawn(move || {
                let control = thread_control;
                let gauge = |f: &dyn Fn(&SourceGauges)| {
                    if let Some((metrics, pick)) = &gauges {
                        f(pick(metrics));
                    }
                };
                let mut delay = backoff.min;
                let mut runs: u64 = 0;
                let mut line = Vec::with_capacity(64 * 1024);
                while !control.stop.load(Ordering::SeqCst) {
                    let spec = control
                        .spec
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    control.restart_now.store(false, Ordering::SeqCst);
                    let started = Instant::now();
                    let spawned = Command::new(&spec.program)
                        .args(&spec.args)
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::inherit())
                        .spawn();
                    if runs > 0 {
                        gauge(&|g| {
                            g.restarts.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    runs += 1;
                    match spawned {
                        Ok(mut child) => {
                            control.pid.store(child.id(), Ordering::SeqCst);
                            if control.stop.load(Ordering::SeqCst) {
                                control.signal_child(libc::SIGTERM);
                            }
                            gauge(&|g| g.up.store(1, Ordering::Relaxed));
                            tracing::info!(source = %label, pid = child.id(), program = %spec.program.display(), "started");
                            if let Some(stdout) = child.stdout.take() {
                                let mut reader = BufReader::with_capacity(1 << 20, stdout);
                                let mut line_no = 0;
                                loop {
                                    line_no += 1;
                                    match read_line_bounded(&mut reader, &mut line) {
                                        Ok(LineRead::Eof) => break,
                                        Ok(LineRead::Line) => on_line(Some(&line), line_no),
                                        Ok(LineRead::TooLong) => on_line(None, line_no),
                                        Err(err) => {
                                            tracing::warn!(source = %label, error = %err, "reading the output failed");
                                            break;
                                        }
                                    }
                                }
                            }
                            on_exit();
                            // Cleared before reaping: a later kill() cannot
                            // reach a process that reused the pid.
                            control.pid.store(0, Ordering::SeqCst);
                            let status = child.wait();
                            gauge(&|g| g.up.store(0, Ordering::Relaxed));
                            if control.stop.load(Ordering::SeqCst) {
                                break;
                            }
                            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                            tracing::warn!(source = %label, %status, retry_in_ms = delay.as_millis() as u64, "exited; restarting");
                        }
                        Err(err) => {
                            gauge(&|g| {
                                g.errors.fetch_add(1, Ordering::Relaxed);
                            });
                            tracing::error!(source = %label, program = %spec.program.display(), error = %err, retry_in_ms = delay.as_millis() as u64, "cannot start; retrying");
                        }
                    }
                    if started.elapsed() >= STABLE_RUN {
                        delay = backoff.min;
                    }
                    control.sleep(delay);
                    delay = (delay * 2).min(backoff.max);
                }
            })
            .map_err(DaemonError::Thread)?;
        Ok(CommandSupervisor {
            control,
            thread: Some(thread),
        })
    }

    /// Runs `spec` from now on: if it differs from the running command, the
    /// child is stopped and the new one started at once.
    pub fn set_spec(&self, spec: CommandSpec) {
        let mut current = self.control.spec.lock().unwrap_or_else(|p| p.into_inner());
        if *current == spec {
            return;
        }
        *current = spec;
        drop(current);
        self.control.restart_now.store(true, Ordering::SeqCst);
        self.control.signal_child(libc::SIGTERM);
        self.control.wake();
    }

    /// Stops the command (SIGTERM, then SIGKILL after a grace period) and
    /// waits for the thread, which has passed on every line by then.
    pub fn stop(mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        self.control.wake();
        self.control.signal_child(libc::SIGTERM);
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + STOP_GRACE;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !thread.is_finished() {
                self.control.signal_child(libc::SIGKILL);
            }
            let _ = thread.join();
        }
    }
}

enum LineRead {
    Eof,
    Line,
    TooLong,
}

/// Reads the next line into `line` (without its newline), keeping at most
/// [`MAX_LINE_BYTES`]; a longer line is consumed and reported, not kept.
fn read_line_bounded<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> std::io::Result<LineRead> {
    line.clear();
    let mut total = 0usize;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match total {
                0 => LineRead::Eof,
                n if n > MAX_LINE_BYTES => LineRead::TooLong,
                _ => LineRead::Line,
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        total += chunk.len();
        if total <= MAX_LINE_BYTES {
            line.extend_from_slice(chunk);
        }
        let consumed = done.unwrap_or(chunk.len());
        reader.consume(consumed);
        if done.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(if total > MAX_LINE_BYTES {
                line.clear();
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

/// The decoder and what of its counters the metrics already have.
struct DecoderState {
    decoder: EsloggerDecoder,
    published_drops: DropCounters,
    published_skipped: u64,
}

impl DecoderState {
    fn new(gates: Gates) -> Self {
        DecoderState {
            decoder: EsloggerDecoder::with_gates(gates),
            published_drops: DropCounters::default(),
            published_skipped: 0,
        }
    }

    /// Hands the buffered rows to the pipeline and the counters to the
    /// metrics.
    fn flush(&mut self, pipeline: &Pipeline, metrics: &Metrics) {
        match self.decoder.take_keyed_batches() {
            Ok(batches) => {
                for (table, batch) in batches {
                    pipeline.offer(table, batch);
                }
            }
            Err(err) => tracing::error!(error = %err, "eslogger: building a batch failed"),
        }
        let drops = self.decoder.gates().counters();
        metrics.add_drop_delta(&self.published_drops, drops);
        self.published_drops = drops.clone();
        let skipped = self.decoder.stats().skipped_total();
        if skipped > self.published_skipped {
            metrics
                .eslogger
                .skipped_lines
                .fetch_add(skipped - self.published_skipped, Ordering::Relaxed);
            for problem in self.decoder.stats().problems().iter().skip(
                // The decoder keeps the first ten problems; log each once.
                self.published_skipped.min(usize::MAX as u64) as usize,
            ) {
                tracing::warn!(%problem, "eslogger: skipped a line");
            }
            self.published_skipped = skipped;
        }
    }
}

/// The running `eslogger` source.
pub struct EsloggerSource {
    supervisor: CommandSupervisor,
    state: Arc<Mutex<DecoderState>>,
    flusher: Option<(JoinHandle<()>, Sender<()>)>,
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for EsloggerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsloggerSource")
            .field("supervisor", &self.supervisor)
            .finish_non_exhaustive()
    }
}

impl EsloggerSource {
    /// Starts `spec` (normally `eslogger <events>`) and decodes its output
    /// through `gates`.
    pub fn start(
        spec: CommandSpec,
        backoff: Backoff,
        gates: Gates,
        batching: Batching,
        pipeline: Arc<Pipeline>,
        metrics: Arc<Metrics>,
    ) -> Result<EsloggerSource, DaemonError> {
        let state = Arc::new(Mutex::new(DecoderState::new(gates)));
        let (line_state, line_pipeline, line_metrics) =
            (state.clone(), pipeline.clone(), metrics.clone());
        let (exit_state, exit_pipeline, exit_metrics) =
            (state.clone(), pipeline.clone(), metrics.clone());
        let supervisor = CommandSupervisor::start(
            "eslogger",
            spec,
            backoff,
            Some((metrics.clone(), |m: &Metrics| &m.eslogger)),
            move |line, line_no| {
                let mut state = lock(&line_state);
                match line {
                    Some(line) => state.decoder.decode_line(line, line_no),
                    None => state.decoder.record_problem(LineProblem {
                        line: line_no,
                        byte: Some(MAX_LINE_BYTES),
                        reason: SkipReason::Malformed,
                        detail: format!("line longer than the limit of {MAX_LINE_BYTES} bytes"),
                    }),
                }
                if state.decoder.buffered_rows() >= batching.rows {
                    state.flush(&line_pipeline, &line_metrics);
                }
            },
            move || lock(&exit_state).flush(&exit_pipeline, &exit_metrics),
        )?;
        let (stop_flusher, stopped) = std::sync::mpsc::channel::<()>();
        let (flush_state, flush_pipeline, flush_metrics) =
            (state.clone(), pipeline.clone(), metrics.clone());
        let flusher = std::thread::Builder::new()
            .name("sluice-eslogger-flush".into())
            .spawn(move || {
                flush_by_age(&stopped, batching.flush, || {
                    let mut state = lock(&flush_state);
                    if state.decoder.buffered_rows() > 0 {
                        state.flush(&flush_pipeline, &flush_metrics);
                    }
                })
            })
            .map_err(DaemonError::Thread)?;
        Ok(EsloggerSource {
            supervisor,
            state,
            flusher: Some((flusher, stop_flusher)),
            pipeline,
            metrics,
        })
    }

    /// Applies new gates (the buffered rows are handed on under the old
    /// ones first) and a new command (restarted at once if it changed).
    pub fn reload(&self, gates: Gates, spec: CommandSpec) {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.flush(&self.pipeline, &self.metrics);
            *state = DecoderState::new(gates);
        }
        self.supervisor.set_spec(spec);
    }

    /// Stops the command and hands on every row it produced.
    pub fn stop(mut self) {
        self.supervisor.stop();
        if let Some((thread, stop)) = self.flusher.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush(&self.pipeline, &self.metrics);
    }
}

/// Locks the decoder; a panic in it would be a bug, so a poisoned lock
/// keeps its counters rather than losing them.
fn lock(state: &Mutex<DecoderState>) -> std::sync::MutexGuard<'_, DecoderState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Calls `flush` every `every` until `stop` receives (or its sender is
/// dropped).
fn flush_by_age(stop: &Receiver<()>, every: Duration, mut flush: impl FnMut()) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_schemas::{ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS};

    const SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/eslogger/sample.jsonl"
    );

    /// A stand-in for eslogger: prints the sample, then exits.
    fn fake_eslogger(dir: &std::path::Path) -> CommandSpec {
        let script = dir.join("fake-eslogger");
        std::fs::write(&script, format!("#!/bin/sh\ncat '{SAMPLE}'\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        CommandSpec {
            program: script,
            args: vec!["exec".into(), "fork".into()],
        }
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_command_that_exits_is_restarted_with_backoff_and_its_lines_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let pipeline = Arc::new(Pipeline::new(64 << 20, metrics.clone()));
        let source = EsloggerSource::start(
            fake_eslogger(dir.path()),
            Backoff {
                min: Duration::from_millis(20),
                max: Duration::from_millis(80),
            },
            Gates::new(&Default::default()).unwrap(),
            Batching {
                rows: 100_000,
                flush: Duration::from_secs(3600),
            },
            pipeline.clone(),
            metrics.clone(),
        )
        .unwrap();
        // The sample holds 4 process events (after the gates); three runs
        // of the fake command mean at least 12, each run flushed at its end.
        wait_for("three runs", || {
            metrics.eslogger.restarts.load(Ordering::Relaxed) >= 2
                && metrics.events_in(&ES_PROCESS_EVENTS) >= 12
        });
        source.stop();
        let runs = metrics.eslogger.restarts.load(Ordering::Relaxed) + 1;
        assert_eq!(metrics.events_in(&ES_PROCESS_EVENTS), 4 * runs);
        assert_eq!(metrics.events_in(&ES_PROCESS_FILE_EVENTS), 12 * runs);
        // The sample's bad lines are counted per run; open events are muted.
        assert_eq!(
            metrics.eslogger.skipped_lines.load(Ordering::Relaxed),
            4 * runs
        );
        assert_eq!(
            metrics.dropped(
                &ES_PROCESS_FILE_EVENTS,
                sluice_ingest::gates::DropReason::Muted
            ),
            2 * runs
        );
    }

    #[test]
    fn rows_of_a_quiet_command_are_flushed_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("slow");
        // Prints the sample, then stays alive and silent.
        std::fs::write(
            &script,
            format!("#!/bin/sh\ncat '{SAMPLE}'\nexec sleep 600\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let metrics = Arc::new(Metrics::new());
        let pipeline = Arc::new(Pipeline::new(64 << 20, metrics.clone()));
        let source = EsloggerSource::start(
            CommandSpec {
                program: script,
                args: vec![],
            },
            Backoff {
                min: Duration::from_millis(20),
                max: Duration::from_millis(80),
            },
            Gates::new(&Default::default()).unwrap(),
            Batching {
                rows: 100_000,
                flush: Duration::from_millis(50),
            },
            pipeline,
            metrics.clone(),
        )
        .unwrap();
        wait_for("the age flush", || {
            metrics.events_in(&ES_PROCESS_EVENTS) == 4
        });
        assert_eq!(metrics.eslogger.up.load(Ordering::Relaxed), 1);
        let started = Instant::now();
        source.stop();
        // SIGTERM ends `sleep` at once: stopping does not wait for the grace.
        assert!(started.elapsed() < STOP_GRACE, "{:?}", started.elapsed());
        assert_eq!(metrics.eslogger.restarts.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_program_that_cannot_start_is_retried_and_counted() {
        let metrics = Arc::new(Metrics::new());
        let supervisor = CommandSupervisor::start(
            "missing",
            CommandSpec {
                program: PathBuf::from("/nonexistent/eslogger"),
                args: vec![],
            },
            Backoff {
                min: Duration::from_millis(5),
                max: Duration::from_millis(10),
            },
            Some((metrics.clone(), |m: &Metrics| &m.eslogger)),
            |_, _| {},
            || {},
        )
        .unwrap();
        wait_for("three failed starts", || {
            metrics.eslogger.errors.load(Ordering::Relaxed) >= 3
        });
        supervisor.stop();
        assert_eq!(metrics.eslogger.up.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn long_lines_are_skipped_whole() {
        let mut input = Vec::new();
        input.extend_from_slice(b"first\r\n");
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        input.extend_from_slice(b"\nlast");
        let mut reader = std::io::BufReader::with_capacity(4096, &input[..]);
        let mut line = Vec::new();
        assert!(matches!(
            read_line_bounded(&mut reader, &mut line).unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"first");
        assert!(matches!(
            read_line_bounded(&mut reader, &mut line).unwrap(),
            LineRead::TooLong
        ));
        assert!(matches!(
            read_line_bounded(&mut reader, &mut line).unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"last");
        assert!(matches!(
            read_line_bounded(&mut reader, &mut line).unwrap(),
            LineRead::Eof
        ));
    }
}
