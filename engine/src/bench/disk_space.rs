//! Whether the disk under the bench's data dir can hold its runs.
//!
//! A long run with the baseline fills disks: osquery's layout keeps every
//! event as a JSON row, 500–1,500 bytes each, so 20M events take about
//! 10 GB. The run that runs out of space stops with a clear error, but only
//! after minutes of work, so before it starts the bench compares a
//! generous estimate of the largest run (every run at once with `--keep`)
//! with the free space and warns when it may not fit.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes on disk per event allowed for a sluice run at its peak: Parquet
/// (11–30 B) and the WAL not yet checkpointed (under 60 B), rounded up.
pub(crate) const SLUICE_BYTES_PER_EVENT: u64 = 128;

/// Bytes on disk per event allowed for a baseline run: the largest the
/// baseline has measured here is 1,526 B for a process event and 890 B
/// averaged over a JSON run's events, before RocksDB compacts.
pub(crate) const BASELINE_BYTES_PER_EVENT: u64 = 1_024;

/// Bytes the runs need at once: the largest run's, or every run's when
/// they are all kept. Each run is (events, bytes per event).
pub(crate) fn bytes_needed(runs: &[(u64, u64)], keep: bool) -> u64 {
    let each = runs.iter().map(|&(events, per)| events.saturating_mul(per));
    if keep {
        each.fold(0, u64::saturating_add)
    } else {
        each.max().unwrap_or(0)
    }
}

/// Bytes an unprivileged user may still write on the filesystem holding
/// `dir`, or on that of its nearest existing ancestor when `dir` is not
/// made yet. `None` when no ancestor can be asked.
pub(crate) fn free_bytes(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let path = CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data, so all zeroes is a valid value,
    // and the call only writes into it.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stats` a valid
    // statvfs, both alive for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    // The field types differ between platforms (u32 or u64).
    #[allow(clippy::unnecessary_cast)]
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// The warning to print when `needed` bytes may not fit in `free`, naming
/// `dir`; `None` when they fit. `baseline` says whether the baseline runs,
/// which is then nearly all of `needed`.
pub(crate) fn shortfall_warning(
    dir: &Path,
    needed: u64,
    free: u64,
    baseline: bool,
) -> Option<String> {
    (needed > free).then(|| {
        let (per_event, fewer) = if baseline {
            (
                format!(
                    "the RocksDB baseline takes up to {BASELINE_BYTES_PER_EVENT} B an event, \
                     sluice up to {SLUICE_BYTES_PER_EVENT}"
                ),
                "fewer --events, --no-baseline",
            )
        } else {
            (
                format!("sluice takes up to {SLUICE_BYTES_PER_EVENT} B an event"),
                "fewer --events",
            )
        };
        format!(
            "sluice bench firehose: these runs may need about {} on {} and it has {} free \
             ({per_event}); a run that fills the disk stops with an error. Use {fewer} or \
             another --data-dir.",
            size_text(needed),
            dir.display(),
            size_text(free),
        )
    })
}

/// `bytes` in GB, or in MB below one GB.
fn size_text(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_run_counts_unless_every_run_is_kept() {
        let runs = [
            (2_000_000, SLUICE_BYTES_PER_EVENT),
            (2_000_000, BASELINE_BYTES_PER_EVENT),
            (83_333, SLUICE_BYTES_PER_EVENT),
        ];
        assert_eq!(
            bytes_needed(&runs, false),
            2_000_000 * BASELINE_BYTES_PER_EVENT
        );
        assert_eq!(
            bytes_needed(&runs, true),
            2_000_000 * (SLUICE_BYTES_PER_EVENT + BASELINE_BYTES_PER_EVENT)
                + 83_333 * SLUICE_BYTES_PER_EVENT
        );
        assert_eq!(bytes_needed(&[], true), 0);
        assert_eq!(bytes_needed(&[(u64::MAX, 2)], false), u64::MAX);
    }

    #[test]
    fn free_space_is_read_for_a_dir_not_made_yet() {
        let root = tempfile::tempdir().unwrap();
        let free = free_bytes(&root.path().join("not/yet/made")).unwrap();
        assert!(free > 0);
    }

    #[test]
    fn the_warning_names_the_dir_and_both_sizes() {
        let dir = Path::new("/data/bench");
        assert_eq!(shortfall_warning(dir, 5, 5, true), None);
        let warning = shortfall_warning(dir, 20_480_000_000, 7_200_000_000, true).unwrap();
        assert!(
            warning.contains("about 20.5 GB on /data/bench"),
            "{warning}"
        );
        assert!(warning.contains("7.2 GB free"), "{warning}");
        assert!(warning.contains("--no-baseline"), "{warning}");
        let small = shortfall_warning(dir, 128_000_000, 62_900_000, false).unwrap();
        assert!(
            small.contains("about 128 MB on /data/bench and it has 63 MB free"),
            "{small}"
        );
        assert!(!small.contains("baseline"), "{small}");
    }
}
