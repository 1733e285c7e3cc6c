//! The progress line of `sluice export` on standard error.
//!
//! The work is known up front (rows per unit come from one aggregate query),
//! so the line shows files, rows and bytes written against the total rows, and
//! an ETA from the row rate so far. It is redrawn in place at most four times
//! a second, and only when standard error is a terminal: in a log or a CI run
//! only the final summary is printed.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Counts of an export, as it goes and at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportTotals {
    /// Units (table × partition) written in this run.
    pub units: u64,
    /// Units skipped because a resumed checkpoint had them done.
    pub units_resumed: u64,
    /// Parquet files written.
    pub files: u64,
    /// Rows written.
    pub rows: u64,
    /// Bytes written (Parquet file sizes).
    pub bytes: u64,
    /// Parts of earlier exports replaced (deleted after the new ones were
    /// written).
    pub stale_deleted: u64,
}

/// Draws the progress line.
#[derive(Debug)]
pub struct Progress {
    total_rows: u64,
    started: Instant,
    last_draw: Option<Instant>,
    draw: bool,
}

impl Progress {
    /// A progress line for `total_rows`; `enabled` is false for quiet runs
    /// (it is also off when standard error is not a terminal).
    pub fn new(total_rows: u64, enabled: bool) -> Progress {
        Progress {
            total_rows,
            started: Instant::now(),
            last_draw: None,
            draw: enabled && std::io::stderr().is_terminal(),
        }
    }

    /// Time since the export started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Redraws the line if it is due.
    pub fn update(&mut self, totals: &ExportTotals) {
        if !self.draw {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now - t < Duration::from_millis(250))
        {
            return;
        }
        self.last_draw = Some(now);
        let line = self.line(totals);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Clears the line (before the summary is printed).
    pub fn finish(&mut self) {
        if self.draw && self.last_draw.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }

    /// The text of the line.
    pub fn line(&self, totals: &ExportTotals) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let percent = if self.total_rows == 0 {
            100.0
        } else {
            totals.rows as f64 * 100.0 / self.total_rows as f64
        };
        let eta = if totals.rows == 0 || elapsed <= 0.0 {
            "ETA --".to_string()
        } else {
            let rate = totals.rows as f64 / elapsed;
            let left = self.total_rows.saturating_sub(totals.rows) as f64 / rate;
            format!("ETA {}", format_duration(left))
        };
        format!(
            "export: {:5.1}% {} files, {}/{} rows, {} written, {eta}",
            percent,
            totals.files,
            totals.rows,
            self.total_rows,
            format_bytes(totals.bytes),
        )
    }
}

/// `n` bytes as B/KiB/MiB/GiB.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as `1h02m03s`, `2m03s` or `3s`.
fn format_duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_files_rows_bytes_and_eta() {
        let progress = Progress::new(1000, false);
        let totals = ExportTotals {
            files: 2,
            rows: 500,
            bytes: 3 * 1024 * 1024,
            ..ExportTotals::default()
        };
        let line = progress.line(&totals);
        assert!(line.contains(" 50.0%"), "{line}");
        assert!(
            line.contains("2 files, 500/1000 rows, 3.0 MiB written, ETA "),
            "{line}"
        );
        assert_eq!(format_duration(3723.0), "1h02m03s");
        assert_eq!(format_bytes(12), "12 B");
    }
}
