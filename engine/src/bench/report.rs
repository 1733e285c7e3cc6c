//! What a firehose run measured, how it is measured, and how it is shown.
//!
//! Every figure comes from the process itself: CPU time from
//! `getrusage(RUSAGE_SELF)` (all threads: producer, writer, sampler; the
//! generator's and the sampler's own shares are measured apart so the
//! pipeline's cost can be given without them), peak
//! memory from `VmHWM` in `/proc/self/status` (reset before each run by
//! writing `5` to `/proc/self/clear_refs`, so each run has its own peak),
//! bytes on disk by walking the store's directory. The report is plain
//! data: [`FirehoseReport`] serializes to the `--json` file, renders as the
//! table on standard output, and feeds the SVG chart.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// The whole `sluice bench firehose` report.
#[derive(Debug, Clone, Serialize)]
pub struct FirehoseReport {
    /// The `sluice` version that ran.
    pub sluice_version: &'static str,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// The generator's seed.
    pub seed: u64,
    /// The event mix, as `kind=weight,…`.
    pub mix: String,
    /// Processes in the generator's population.
    pub processes: usize,
    /// The seed rate, events per second (1M events a minute).
    pub seed_rate: f64,
    /// The storage settings of the sluice runs.
    pub storage: StorageSettings,
    /// One entry per run, in the order they ran.
    pub runs: Vec<RunReport>,
}

/// How the sluice runs stored their events.
#[derive(Debug, Clone, Serialize)]
pub struct StorageSettings {
    /// The WAL's fsync policy.
    pub wal_fsync: String,
    /// Parquet compression.
    pub compression: String,
    /// Threads encoding one Parquet file's columns.
    pub encoding_threads: usize,
    /// A table is rolled to Parquet once it holds this much Arrow memory.
    pub roll_bytes: usize,
    /// … or once its oldest batch is this old.
    pub roll_age_secs: f64,
    /// Memory budget of the queue between producer and writer.
    pub queue_budget_bytes: usize,
    /// Rows per batch handed to the writer (over both tables).
    pub batch_rows: usize,
}

/// One run: one store, one source, one rate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// `sluice` (WAL + Parquet) or `rocksdb` (osquery's layout).
    pub store: String,
    /// `rows` (decoded rows, no JSON) or `json` (eslogger lines, decoded).
    pub source: String,
    /// `max` (as fast as possible, nothing dropped) or `fixed` (an offered
    /// rate, live: what does not fit is dropped).
    pub mode: String,
    /// The offered rate of a fixed run, events per second.
    pub offered_rate: Option<f64>,
    /// Wall time from the first event to everything durable and flushed.
    pub elapsed_secs: f64,
    /// Events the generator made.
    pub events_generated: u64,
    /// Events stored (acknowledged by the store), over all tables.
    pub events_stored: u64,
    /// Events the gates dropped (muting, sampling, rate limits).
    pub dropped_gates: u64,
    /// Events dropped because the writer fell behind (fixed runs only).
    pub dropped_backpressure: u64,
    /// Events dropped because the store refused them (disk full).
    pub dropped_storage: u64,
    /// Events stored per second of wall time.
    pub events_per_sec: f64,
    /// CPU time (user + system, all threads) of the run.
    pub cpu_secs: f64,
    /// CPU time the generator alone spends making the same events, measured
    /// in a separate pass; it is part of `cpu_secs` but not of the pipeline.
    pub generator_cpu_secs: f64,
    /// `cpu_secs` per million events generated.
    pub cpu_secs_per_million: f64,
    /// CPU time of the bench's own sampler thread (progress and RSS every
    /// 100 ms, for the chart); part of `cpu_secs` but not of the pipeline.
    pub sampler_cpu_secs: f64,
    /// `(cpu_secs - generator_cpu_secs - sampler_cpu_secs)` per million
    /// events: the pipeline's own cost.
    pub pipeline_cpu_secs_per_million: f64,
    /// CPU time over wall time, in % of one core (100 = one core busy).
    pub cpu_percent_of_one_core: f64,
    /// The same without the generator's and the sampler's shares.
    pub pipeline_cpu_percent_of_one_core: f64,
    /// Peak resident memory of the process during the run.
    pub peak_rss_bytes: u64,
    /// How far the producer fell behind the offered schedule at worst.
    pub lag_max_ms: f64,
    /// How far behind it was at the end.
    pub lag_end_ms: f64,
    /// Bytes on disk after the run, by table.
    pub tables: Vec<TableBytes>,
    /// Bytes on disk per stored event, all tables.
    pub bytes_per_event: f64,
    /// From a row's decoding to its batch being acknowledged by the store:
    /// durable, and visible in the hot tail (sluice) or to a `get` (RocksDB).
    pub visible_ms: Latency,
    /// From a row's decoding to its Parquet file being published (sluice
    /// only; includes waiting for the roll).
    pub parquet_visible_ms: Option<Latency>,
    /// The standard analyst queries, run over the result.
    pub queries: Vec<QueryTiming>,
    /// Rows the count queries saw after the run (should be `events_stored`).
    pub rows_queryable: Option<u64>,
    /// Throughput and memory over time, one sample every 100 ms.
    pub samples: Vec<Sample>,
    /// The copy to an object store, with `--upload` (sluice runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadReport>,
}

/// What the object store received from one run (`--upload`).
#[derive(Debug, Clone, Serialize)]
pub struct UploadReport {
    /// Where the run's files went, without credentials.
    pub url: String,
    /// Files the store confirmed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Attempts that failed and were retried.
    pub failed_attempts: u64,
    /// From the end of the run (everything published locally) until the
    /// store held the last file.
    pub secs_after_run: f64,
    /// CPU time spent in that interval (the rest of the uploading is part
    /// of the run's own CPU time).
    pub cpu_secs_after_run: f64,
}

/// Bytes on disk of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableBytes {
    /// The table.
    pub table: String,
    /// Rows stored.
    pub rows: u64,
    /// Bytes of its files.
    pub bytes: u64,
    /// Files.
    pub files: u64,
    /// `bytes / rows`.
    pub bytes_per_event: f64,
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Observations (batches).
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Worst.
    pub max: f64,
}

impl Latency {
    /// The distribution of `samples`.
    pub fn of(samples: &mut [Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[i].as_secs_f64() * 1e3
        };
        Latency {
            count: samples.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// One analyst query and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct QueryTiming {
    /// A short name.
    pub name: String,
    /// What ran (SQL for sluice; a description of the scan for RocksDB).
    pub query: String,
    /// Rows in the result.
    pub rows: u64,
    /// For a count query: the count; lets a reader check it against
    /// `events_stored`.
    pub count: Option<u64>,
    /// Wall time, in milliseconds.
    pub ms: f64,
}

/// A point of the run's time line.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_secs: f64,
    /// Events generated so far.
    pub events: u64,
    /// Resident memory then.
    pub rss_bytes: u64,
}

/// User + system CPU time of the whole process so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a zeroed rusage; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time (user + system) of the calling thread so far.
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime only writes the struct we pass.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer; the thread CPU clock exists on Linux and macOS.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Resident memory now, from `/proc/self/statm`: a few numbers, so reading
/// it ten times a second costs a fraction of `/proc/self/status`. 0 where
/// there is no procfs.
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes; 0 where
/// there is no procfs.
pub fn proc_status_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resets the peak-RSS mark (`VmHWM`) so the next run's peak is its own.
/// Returns false where the kernel does not allow it; the peak is then the
/// process's so far.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Bytes and files under `dir` whose names end in `suffix` (all files when
/// `suffix` is empty), recursively. Missing directories count as empty.
pub fn dir_bytes(dir: &Path, suffix: &str) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (b, f) = dir_bytes(&entry.path(), suffix);
            total.0 += b;
            total.1 += f;
        } else if entry.file_name().to_string_lossy().ends_with(suffix) {
            total.0 += meta.len();
            total.1 += 1;
        }
    }
    total
}

fn si(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

impl FirehoseReport {
    /// The table printed on standard output.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "sluice bench firehose: seed {}, {} processes, mix {}, {} CPUs; seed rate {:.0} events/s (1M/min)",
            self.seed, self.processes, self.mix, self.cpus, self.seed_rate
        );
        let s = &self.storage;
        let _ = writeln!(
            out,
            "storage: WAL fsync {}, Parquet {} on {} encoding thread{}, roll at {} MiB or {:.0} s, queue {} MiB, batches of {} rows",
            s.wal_fsync,
            s.compression,
            s.encoding_threads,
            if s.encoding_threads == 1 { "" } else { "s" },
            s.roll_bytes >> 20,
            s.roll_age_secs,
            s.queue_budget_bytes >> 20,
            s.batch_rows
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<8} {:<5} {:<12} {:>9} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9}",
            "store",
            "src",
            "mode",
            "events",
            "stored/s",
            "dropped",
            "lag ms",
            "cpu %",
            "cpu s/M",
            "pipe s/M",
            "rss MiB",
            "B/event",
            "vis p99ms",
            "pq p99 ms"
        );
        for r in &self.runs {
            let mode = match r.offered_rate {
                Some(rate) => format!("{}/s", si(rate)),
                None => "max".to_string(),
            };
            let dropped = r.dropped_backpressure + r.dropped_storage + r.dropped_gates;
            let _ = writeln!(
                out,
                "{:<8} {:<5} {:<12} {:>9} {:>9} {:>9} {:>8.0} {:>7.1} {:>8.3} {:>8.3} {:>8.0} {:>7.1} {:>9.1} {:>9}",
                r.store,
                r.source,
                mode,
                si(r.events_generated as f64),
                si(r.events_per_sec),
                dropped,
                r.lag_max_ms,
                r.cpu_percent_of_one_core,
                r.cpu_secs_per_million,
                r.pipeline_cpu_secs_per_million,
                r.peak_rss_bytes as f64 / (1u64 << 20) as f64,
                r.bytes_per_event,
                r.visible_ms.p99,
                r.parquet_visible_ms
                    .as_ref()
                    .map_or("-".to_string(), |l| format!("{:.0}", l.p99)),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "bytes on disk per event, by table:");
        for r in &self.runs {
            let tables: Vec<String> = r
                .tables
                .iter()
                .map(|t| {
                    format!(
                        "{} {:.1} B ({} rows, {} files)",
                        t.table, t.bytes_per_event, t.rows, t.files
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "  {:<8} {:<5} {:<12} {}",
                r.store,
                r.source,
                r.offered_rate
                    .map_or("max".to_string(), |x| format!("{}/s", si(x))),
                tables.join("; ")
            );
        }
        if self.runs.iter().any(|r| r.upload.is_some()) {
            let _ = writeln!(out);
            let _ = writeln!(out, "copied to the object store (--upload):");
            for r in &self.runs {
                let Some(u) = &r.upload else { continue };
                let _ = writeln!(
                    out,
                    "  {:<8} {:<5} {:<12} {} files, {:.1} MiB to {}; all there {:.2} s after the run ({:.2} CPU s more), {} failed attempts",
                    r.store,
                    r.source,
                    r.offered_rate
                        .map_or("max".to_string(), |x| format!("{}/s", si(x))),
                    u.files,
                    u.bytes as f64 / (1u64 << 20) as f64,
                    u.url,
                    u.secs_after_run,
                    u.cpu_secs_after_run,
                    u.failed_attempts
                );
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "analyst queries over the result (ms):");
        for r in &self.runs {
            if r.queries.is_empty() {
                continue;
            }
            let q: Vec<String> = r
                .queries
                .iter()
                .map(|q| format!("{} {:.1}", q.name, q.ms))
                .collect();
            let _ = writeln!(
                out,
                "  {:<8} {:<5} {:<12} {}",
                r.store,
                r.source,
                r.offered_rate
                    .map_or("max".to_string(), |x| format!("{}/s", si(x))),
                q.join(", ")
            );
        }
        let comparisons = self.against_baseline();
        if !comparisons.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "sluice against the baseline, same events:");
            for line in comparisons {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = writeln!(
            out,
            "\ncpu %: of one core, generator included; cpu s/M: CPU seconds per million events; \
             pipe s/M: without the bench's own generator and sampler; vis: decode → acknowledged (durable, \
             queryable in the hot tail); pq: decode → in a published Parquet file."
        );
        out
    }
}

impl FirehoseReport {
    /// For each sluice run with a baseline run of the same source and
    /// rate, the ratios the targets are about: events/s (max runs;
    /// a fixed run stores what it is offered), pipeline CPU per event and
    /// bytes per event.
    pub fn against_baseline(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for ours in self.runs.iter().filter(|r| r.store == "sluice") {
            let Some(theirs) = self.runs.iter().find(|r| {
                r.store != "sluice"
                    && r.source == ours.source
                    && r.offered_rate == ours.offered_rate
            }) else {
                continue;
            };
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
            let mut parts = Vec::new();
            if ours.offered_rate.is_none() {
                parts.push(format!(
                    "{:.1}× events/s",
                    ratio(ours.events_per_sec, theirs.events_per_sec)
                ));
            }
            parts.push(format!(
                "{:.1}× less pipeline CPU per event",
                ratio(
                    theirs.pipeline_cpu_secs_per_million,
                    ours.pipeline_cpu_secs_per_million
                )
            ));
            parts.push(format!(
                "{:.0}× fewer bytes per event",
                ratio(theirs.bytes_per_event, ours.bytes_per_event)
            ));
            lines.push(format!(
                "{:<5} {:<12} {}",
                ours.source,
                ours.offered_rate
                    .map_or("max".to_string(), |x| format!("{}/s", si(x))),
                parts.join(", ")
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(store: &str, rate: Option<f64>, per_sec: f64, cpu: f64, bytes: f64) -> RunReport {
        RunReport {
            store: store.to_string(),
            source: "rows".to_string(),
            mode: if rate.is_some() { "fixed" } else { "max" }.to_string(),
            offered_rate: rate,
            events_per_sec: per_sec,
            pipeline_cpu_secs_per_million: cpu,
            bytes_per_event: bytes,
            ..RunReport::default()
        }
    }

    #[test]
    fn sluice_is_compared_with_the_baseline_run_of_the_same_source_and_rate() {
        let report = FirehoseReport {
            runs: vec![
                run("sluice", None, 1_240_000.0, 0.98, 12.1),
                run("sluice", Some(16_666.7), 16_300.0, 1.03, 12.2),
                run("sluice", Some(66_666.7), 65_300.0, 0.83, 11.9),
                run("rocksdb", None, 180_000.0, 8.77, 819.0),
                run("rocksdb", Some(16_666.7), 16_300.0, 8.14, 517.0),
            ],
            sluice_version: "test",
            cpus: 2,
            seed: 1,
            mix: String::new(),
            processes: 64,
            seed_rate: 16_666.7,
            storage: StorageSettings {
                wal_fsync: String::new(),
                compression: String::new(),
                encoding_threads: 2,
                roll_bytes: 0,
                roll_age_secs: 0.0,
                queue_budget_bytes: 0,
                batch_rows: 0,
            },
        };
        assert_eq!(
            report.against_baseline(),
            [
                "rows  max          6.9× events/s, 8.9× less pipeline CPU per event, 68× fewer bytes per event",
                "rows  16.7k/s      7.9× less pipeline CPU per event, 42× fewer bytes per event",
            ]
        );
        assert!(
            report
                .render()
                .contains("sluice against the baseline, same events:")
        );
        // Without a baseline (the build CI runs), no comparison is printed.
        let alone = FirehoseReport {
            runs: report.runs[..3].to_vec(),
            ..report
        };
        assert!(alone.against_baseline().is_empty());
        assert!(!alone.render().contains("against the baseline"));
    }

    #[test]
    fn latency_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&mut samples);
        assert_eq!(l.count, 100);
        assert!((l.max - 100.0).abs() < 1e-9);
        assert!((l.p50 - 51.0).abs() < 1.01);
        assert_eq!(Latency::of(&mut []).count, 0);
    }

    #[test]
    fn procfs_figures_are_read() {
        if Path::new("/proc/self/status").exists() {
            assert!(proc_status_bytes("VmRSS") > 0);
            assert!(proc_status_bytes("VmHWM") >= proc_status_bytes("VmRSS") / 2);
            assert_eq!(proc_status_bytes("NoSuchField"), 0);
            // Both read the same kernel counter, a moment apart.
            let (statm, status) = (resident_bytes(), proc_status_bytes("VmRSS"));
            assert!(
                statm > status / 2 && statm < status * 2,
                "{statm} vs {status}"
            );
        }
        let (before, thread_before) = (process_cpu(), thread_cpu());
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu() >= before);
        assert!(thread_cpu() > thread_before);
    }

    #[test]
    fn dir_bytes_counts_matching_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/x.parquet"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("a/y.parquet"), [0u8; 5]).unwrap();
        std::fs::write(dir.path().join("a/z.tmp"), [0u8; 7]).unwrap();
        assert_eq!(dir_bytes(dir.path(), ".parquet"), (15, 2));
        assert_eq!(dir_bytes(dir.path(), ""), (22, 3));
        assert_eq!(dir_bytes(&dir.path().join("missing"), ""), (0, 0));
    }
}
