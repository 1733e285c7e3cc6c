//! The one-row and small host tables: `uptime`, `time`, `dns_resolvers`.
//!
//! Each is read when the query runs. `FROM uptime, process_events …` is a
//! cross join with one row, so it costs nothing per event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use super::Kind::{BigInt, Integer, Text};
use super::{SnapshotTable, host_error, schema_of};

/// osquery's `uptime` columns.
pub fn uptime_schema() -> SchemaRef {
    schema_of(&[
        ("days", Integer),
        ("hours", Integer),
        ("minutes", Integer),
        ("seconds", Integer),
        ("total_seconds", BigInt),
    ])
}

/// The `uptime` table: one row, time since boot.
pub fn uptime_table() -> SnapshotTable {
    let schema = uptime_schema();
    let batch_schema = schema.clone();
    SnapshotTable::new(
        "uptime",
        schema,
        Arc::new(move || {
            let total = uptime_seconds()?;
            uptime_batch(&batch_schema, total)
        }),
    )
}

fn uptime_batch(schema: &SchemaRef, total: i64) -> Result<RecordBatch> {
    let part = |v: i64| -> ArrayRef { Arc::new(Int32Array::from(vec![v as i32])) };
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            part(total / 86_400),
            part(total % 86_400 / 3_600),
            part(total % 3_600 / 60),
            part(total % 60),
            Arc::new(Int64Array::from(vec![total])),
        ],
    )?)
}

/// Whole seconds since boot.
#[cfg(target_os = "linux")]
pub fn uptime_seconds() -> Result<i64> {
    // /proc/uptime: "<seconds since boot> <idle seconds>", both with decimals.
    let text = std::fs::read_to_string("/proc/uptime")
        .map_err(|e| host_error("uptime", format!("cannot read /proc/uptime: {e}")))?;
    let first = text.split_whitespace().next().unwrap_or_default();
    let whole = first.split('.').next().unwrap_or_default();
    whole
        .parse::<i64>()
        .map_err(|_| host_error("uptime", format!("/proc/uptime: unexpected {text:?}")))
}

/// Whole seconds since boot (macOS: `kern.boottime`; not verified on this
/// project's Linux CI).
#[cfg(target_os = "macos")]
pub fn uptime_seconds() -> Result<i64> {
    let mut boot = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut size = std::mem::size_of::<libc::timeval>();
    let mut mib = [libc::CTL_KERN, libc::KERN_BOOTTIME];
    // SAFETY: `mib` names kern.boottime, whose value is a `timeval`; `boot`
    // and `size` describe a buffer of exactly that size.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&mut boot as *mut libc::timeval).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(host_error(
            "uptime",
            std::io::Error::last_os_error().to_string(),
        ));
    }
    Ok(unix_now() - boot.tv_sec as i64)
}

/// Whole seconds since boot: not available on this OS.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn uptime_seconds() -> Result<i64> {
    Err(host_error("uptime", "not supported on this OS"))
}

/// osquery's `time` columns.
pub fn time_schema() -> SchemaRef {
    schema_of(&[
        ("weekday", Text),
        ("year", Integer),
        ("month", Integer),
        ("day", Integer),
        ("hour", Integer),
        ("minutes", Integer),
        ("seconds", Integer),
        ("timezone", Text),
        ("local_time", Integer),
        ("local_timezone", Text),
        ("unix_time", Integer),
        ("timestamp", Text),
        ("datetime", Text),
        ("iso_8601", Text),
    ])
}

/// The `time` table: one row, now. As in osquery with its default `--utc`,
/// the calendar columns are UTC; `local_time` and `local_timezone` give the
/// host's zone.
pub fn time_table() -> SnapshotTable {
    let schema = time_schema();
    let batch_schema = schema.clone();
    SnapshotTable::new(
        "time",
        schema,
        Arc::new(move || time_batch(&batch_schema, unix_now())),
    )
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn time_batch(schema: &SchemaRef, now: i64) -> Result<RecordBatch> {
    let utc = civil_from_unix(now);
    let (offset, zone) = local_zone(now);
    let int = |v: i64| -> ArrayRef { Arc::new(Int32Array::from(vec![v as i32])) };
    let text = |v: String| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let weekday = WEEKDAYS[utc.weekday as usize];
    let iso = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second
    );
    // osquery's log timestamp: asctime() of the UTC time, then " UTC".
    let timestamp = format!(
        "{} {} {:2} {:02}:{:02}:{:02} {} UTC",
        &weekday[..3],
        MONTHS[(utc.month - 1) as usize],
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.year
    );
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            text(weekday.to_string()),
            int(utc.year),
            int(utc.month),
            int(utc.day),
            int(utc.hour),
            int(utc.minute),
            int(utc.second),
            text("UTC".to_string()),
            int(now + offset),
            text(zone),
            int(now),
            text(timestamp),
            text(iso.clone()),
            text(iso),
        ],
    )?)
}

/// A UTC calendar date and time.
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 = Sunday.
    weekday: i64,
}

/// Splits Unix seconds into a UTC date and time (Howard Hinnant's
/// days-from-civil algorithm, inverted), without the C library's global
/// time zone state.
fn civil_from_unix(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7),
    }
}

/// The host's offset from UTC at `now`, in seconds, and its zone's
/// abbreviation, from the C library (`localtime_r`, which honours `TZ`).
fn local_zone(now: i64) -> (i64, String) {
    let t = now as libc::time_t;
    // SAFETY: `tm` is plain data; localtime_r fills it and returns NULL on
    // failure, and `tm_zone` points into static storage of the C library.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return (0, "UTC".to_string());
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        (tm.tm_gmtoff as i64, zone)
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// osquery's `dns_resolvers` columns.
pub fn dns_resolvers_schema() -> SchemaRef {
    schema_of(&[
        ("id", Integer),
        ("type", Text),
        ("address", Text),
        ("netmask", Text),
        ("options", BigInt),
    ])
}

/// The `dns_resolvers` table over `/etc/resolv.conf`.
pub fn dns_resolvers_table() -> SnapshotTable {
    dns_resolvers_table_from(PathBuf::from("/etc/resolv.conf"))
}

/// The `dns_resolvers` table over a resolv.conf at `path`.
pub fn dns_resolvers_table_from(path: PathBuf) -> SnapshotTable {
    let schema = dns_resolvers_schema();
    let batch_schema = schema.clone();
    SnapshotTable::new(
        "dns_resolvers",
        schema,
        Arc::new(move || dns_resolvers_batch(&batch_schema, &path)),
    )
}

// The resolver's option bits as glibc and macOS's libresolv define them
// (resolv.h); osquery reports the resolver state's `options` word.
const RES_INIT: i64 = 0x1;
const RES_DEBUG: i64 = 0x2;
const RES_USEVC: i64 = 0x8;
const RES_RECURSE: i64 = 0x40;
const RES_DEFNAMES: i64 = 0x80;
const RES_DNSRCH: i64 = 0x200;
const RES_ROTATE: i64 = 0x4000;
const RES_USE_EDNS0: i64 = 0x10_0000;

fn dns_resolvers_batch(schema: &SchemaRef, path: &Path) -> Result<RecordBatch> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // No resolv.conf: no resolvers configured, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(host_error(
                "dns_resolvers",
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let mut options = RES_INIT | RES_RECURSE | RES_DEFNAMES | RES_DNSRCH;
    // (type, address, netmask)
    let mut rows: Vec<(&str, String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(address) = words.next() {
                    rows.push(("nameserver", address.to_string(), None));
                }
            }
            Some(keyword @ ("search" | "domain")) => {
                // A later search or domain line replaces an earlier one.
                rows.retain(|r| r.0 != "search");
                let domains: Vec<&str> = words.collect();
                let domains = if keyword == "domain" {
                    &domains[..domains.len().min(1)]
                } else {
                    &domains[..]
                };
                rows.extend(domains.iter().map(|d| ("search", d.to_string(), None)));
            }
            Some("sortlist") => {
                for pair in words {
                    let (address, netmask) = match pair.split_once('/') {
                        Some((a, m)) => (a.to_string(), Some(m.to_string())),
                        None => (pair.to_string(), None),
                    };
                    rows.push(("sortlist", address, netmask));
                }
            }
            Some("options") => {
                for option in words {
                    options |= match option {
                        "debug" => RES_DEBUG,
                        "use-vc" | "usevc" => RES_USEVC,
                        "rotate" => RES_ROTATE,
                        "edns0" => RES_USE_EDNS0,
                        _ => 0,
                    };
                }
            }
            _ => {}
        }
    }
    // osquery numbers the entries of each type from 0.
    let mut ids = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        ids.push(rows[..i].iter().filter(|r| r.0 == row.0).count() as i32);
    }
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(ids)),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2.as_deref()))),
            Arc::new(Int64Array::from(vec![options; rows.len()])),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn civil_dates_match_known_instants() {
        assert_eq!(
            civil_from_unix(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                weekday: 4
            }
        );
        // 2024-02-29T12:34:56Z, a Thursday in a leap year.
        assert_eq!(
            civil_from_unix(1_709_210_096),
            Civil {
                year: 2024,
                month: 2,
                day: 29,
                hour: 12,
                minute: 34,
                second: 56,
                weekday: 4
            }
        );
    }

    #[test]
    fn time_row_is_osquery_shaped() {
        let batch = time_batch(&time_schema(), 1_714_564_800).expect("batch");
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .expect("text")
                .value(0)
                .to_string()
        };
        assert_eq!(text("weekday"), "Wednesday");
        assert_eq!(text("datetime"), "2024-05-01T12:00:00Z");
        assert_eq!(text("timestamp"), "Wed May  1 12:00:00 2024 UTC");
        assert_eq!(text("timezone"), "UTC");
    }

    #[test]
    fn uptime_splits_total_seconds() {
        let batch =
            uptime_batch(&uptime_schema(), 2 * 86_400 + 3 * 3_600 + 4 * 60 + 5).expect("batch");
        let int = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<Int32Array>()
                .expect("int")
                .value(0)
        };
        assert_eq!((int(0), int(1), int(2), int(3)), (2, 3, 4, 5));
        assert!(uptime_seconds().expect("uptime") > 0);
    }

    #[test]
    fn resolv_conf_becomes_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# comment\nnameserver 10.0.0.1\nnameserver ::1 # local\nsearch a.example b.example\n\
             sortlist 130.155.160.0/255.255.240.0 130.155.0.0\noptions rotate ndots:2\n",
        )
        .expect("write");
        let batch = dns_resolvers_batch(&dns_resolvers_schema(), &path).expect("batch");
        assert_eq!(batch.num_rows(), 6);
        let text = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("text")
                .clone()
        };
        let (types, addresses, netmasks) = (text(1), text(2), text(3));
        assert_eq!(types.value(1), "nameserver");
        assert_eq!(addresses.value(1), "::1");
        assert_eq!(types.value(3), "search");
        assert_eq!(addresses.value(3), "b.example");
        assert_eq!(netmasks.value(4), "255.255.240.0");
        assert!(netmasks.is_null(5));
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int32Array>()
            .expect("ids");
        assert_eq!(ids.values().to_vec(), vec![0, 1, 0, 1, 0, 1]);
        let options = batch
            .column(4)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("options");
        assert_ne!(options.value(0) & RES_ROTATE, 0);
        // A missing file means no resolvers.
        let none = dns_resolvers_batch(&dns_resolvers_schema(), &dir.path().join("missing"))
            .expect("missing is empty");
        assert_eq!(none.num_rows(), 0);
    }
}
