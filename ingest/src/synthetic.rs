//! A seeded generator of realistic eslogger lines.
//!
//! Benchmarks need input shaped like a real Mac's firehose: mostly `open`
//! and `close` of deep paths under `/Users`, `/Library`, `/System` and
//! `/private/var`, cache files with random names, full process objects with
//! both `stat` blocks, and now and then an `exec` with arguments and
//! environment. The same seed always gives the same lines.

use std::io::Write as _;

/// A small, fast, seedable PRNG (SplitMix64); statistical quality is ample
/// for shaping test data.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Starts the sequence at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Relative weights of the event types in the generated stream.
#[derive(Debug, Clone)]
pub struct EventMix {
    /// `open`.
    pub open: u32,
    /// `close`.
    pub close: u32,
    /// `write`.
    pub write: u32,
    /// `create`.
    pub create: u32,
    /// `rename`.
    pub rename: u32,
    /// `unlink`.
    pub unlink: u32,
    /// `exec`.
    pub exec: u32,
    /// `fork`.
    pub fork: u32,
    /// `exit`.
    pub exit: u32,
}

impl Default for EventMix {
    /// The NOTIFY_OPEN firehose: opens and closes dominate.
    fn default() -> Self {
        Self {
            open: 55,
            close: 30,
            write: 5,
            create: 2,
            rename: 1,
            unlink: 2,
            exec: 2,
            fork: 2,
            exit: 1,
        }
    }
}

const KINDS: [&str; 9] = [
    "open", "close", "write", "create", "rename", "unlink", "exec", "fork", "exit",
];

struct SyntheticProcess {
    pid: u32,
    pidversion: u32,
    ppid: u32,
    uid: u32,
    executable: String,
    signing_id: &'static str,
    team_id: Option<&'static str>,
    cdhash: String,
    platform: bool,
}

/// Generates eslogger JSON lines.
pub struct EsloggerFirehose {
    rng: SplitMix64,
    mix_cumulative: [u32; 9],
    processes: Vec<SyntheticProcess>,
    time_ns: i64,
    seq: [u64; 9],
    global_seq: u64,
    version: u32,
}

const EXECUTABLES: [(&str, &str, Option<&str>, bool); 10] = [
    (
        "/System/Library/Frameworks/CoreServices.framework/Versions/A/Frameworks/Metadata.framework/Versions/A/Support/mdworker_shared",
        "com.apple.mdworker_shared",
        None,
        true,
    ),
    ("/usr/libexec/xpcproxy", "com.apple.xpc.proxy", None, true),
    (
        "/System/Library/PrivateFrameworks/CloudKitDaemon.framework/Support/cloudd",
        "com.apple.cloudd",
        None,
        true,
    ),
    (
        "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/131.0.6778.86/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper",
        "com.google.Chrome.helper",
        Some("EQHXZ8M8AV"),
        false,
    ),
    (
        "/Applications/Slack.app/Contents/MacOS/Slack",
        "com.tinyspeck.slackmacgap",
        Some("BQR82RBBHL"),
        false,
    ),
    (
        "/usr/sbin/cfprefsd",
        "com.apple.cfprefsd.xpc.daemon",
        None,
        true,
    ),
    ("/bin/zsh", "com.apple.zsh", None, true),
    ("/usr/bin/git", "com.apple.git", None, true),
    (
        "/System/Library/CoreServices/Spotlight.app/Contents/MacOS/Spotlight",
        "com.apple.Spotlight",
        None,
        true,
    ),
    (
        "/Library/Developer/CommandLineTools/usr/bin/clang",
        "com.apple.clang",
        None,
        true,
    ),
];

const ROOTS: [&str; 6] = [
    "/Users/alice/Library/Caches/com.apple.Safari/WebKitCache/Version 16/Records",
    "/Users/alice/Library/Application Support/Google/Chrome/Default/IndexedDB/https_mail.google.com_0.indexeddb.leveldb",
    "/private/var/folders/7x/k2l1z9xj3qb5v6m0d8w4c2yh0000gn/T/com.apple.mdworker_shared",
    "/System/Library/Frameworks/AppKit.framework/Versions/C/Resources/English.lproj",
    "/Library/Application Support/com.apple.TCC",
    "/Users/alice/src/project/target/debug/.fingerprint",
];

impl EsloggerFirehose {
    /// A generator seeded with `seed`, emitting messages of ES version 9,
    /// starting at 2024-05-01T12:00:00Z.
    pub fn new(seed: u64, mix: &EventMix) -> Self {
        let weights = [
            mix.open, mix.close, mix.write, mix.create, mix.rename, mix.unlink, mix.exec, mix.fork,
            mix.exit,
        ];
        let mut mix_cumulative = [0u32; 9];
        let mut sum = 0;
        for (slot, w) in mix_cumulative.iter_mut().zip(weights) {
            sum += w;
            *slot = sum;
        }
        let mut rng = SplitMix64::new(seed);
        let processes = (0..64)
            .map(|i| {
                let (path, signing_id, team_id, platform) = EXECUTABLES[i % EXECUTABLES.len()];
                let pid = 300 + (rng.below(60_000) as u32);
                let mut cdhash = String::with_capacity(40);
                for _ in 0..5 {
                    cdhash.push_str(&format!("{:08X}", rng.next_u64() as u32));
                }
                SyntheticProcess {
                    pid,
                    pidversion: pid + 7,
                    ppid: 1 + rng.below(300) as u32,
                    uid: if platform { 0 } else { 501 },
                    executable: path.to_string(),
                    signing_id,
                    team_id,
                    cdhash,
                    platform,
                }
            })
            .collect();
        Self {
            rng,
            mix_cumulative,
            processes,
            time_ns: 1_714_564_800_000_000_000,
            seq: [0; 9],
            global_seq: 0,
            version: 9,
        }
    }

    /// Sets the ES message version of the generated lines (10 writes audit
    /// tokens as arrays).
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Appends one line, newline included, to `out`.
    pub fn next_line(&mut self, out: &mut Vec<u8>) {
        let total = self.mix_cumulative[8].max(1);
        let pick = self.rng.below(u64::from(total)) as u32;
        let kind = self
            .mix_cumulative
            .iter()
            .position(|&c| pick < c)
            .unwrap_or(0);
        self.time_ns += 20_000 + self.rng.below(60_000) as i64;
        self.seq[kind] += 1;
        self.global_seq += 1;
        let proc_index = self.rng.below(self.processes.len() as u64) as usize;
        let path = self.random_path();
        let time = format_rfc3339(self.time_ns);
        let event_type = [10, 12, 33, 13, 25, 32, 9, 11, 15][kind];
        // Keys in an order eslogger really uses: not alphabetical, not stable.
        let _ = write!(
            out,
            r#"{{"schema_version":1,"mach_time":{},"event_type":{},"thread":{{"thread_id":{}}},"version":{},"seq_num":{},"event":{{"{}":"#,
            self.time_ns / 41,
            event_type,
            4_000_000 + self.rng.below(100_000),
            self.version,
            self.seq[kind],
            KINDS[kind]
        );
        match kind {
            0 => {
                let _ = write!(out, r#"{{"fflag":{},"file":"#, 1 + self.rng.below(3));
                self.write_file(out, &path);
                out.push(b'}');
            }
            1 => {
                let _ = write!(
                    out,
                    r#"{{"modified":{},"was_mapped_writable":false,"target":"#,
                    self.rng.below(4) == 0
                );
                self.write_file(out, &path);
                out.push(b'}');
            }
            2 | 5 => {
                out.extend_from_slice(br#"{"target":"#);
                self.write_file(out, &path);
                if kind == 5 {
                    out.extend_from_slice(br#","parent_dir":"#);
                    let dir = path
                        .rsplit_once('/')
                        .map(|(d, _)| d.to_string())
                        .unwrap_or_default();
                    self.write_file(out, &dir);
                }
                out.push(b'}');
            }
            3 | 4 => {
                let (dir, name) = path
                    .rsplit_once('/')
                    .map(|(d, n)| (d.to_string(), n.to_string()))
                    .unwrap_or_default();
                if kind == 4 {
                    out.extend_from_slice(br#"{"source":"#);
                    let source = format!("{path}.sb-{:x}", self.rng.next_u64() as u32);
                    self.write_file(out, &source);
                    out.extend_from_slice(
                        br#","destination_type":1,"destination":{"new_path":{"filename":"#,
                    );
                } else {
                    out.extend_from_slice(
                        br#"{"destination_type":1,"destination":{"new_path":{"filename":"#,
                    );
                }
                write_json_str(out, &name);
                out.extend_from_slice(br#","mode":420,"dir":"#);
                self.write_file(out, &dir);
                out.extend_from_slice(b"}}}");
            }
            6 => {
                out.extend_from_slice(br#"{"dyld_exec_path":"#);
                let target = &self.processes[self.rng.below(self.processes.len() as u64) as usize];
                write_json_str(out, &target.executable);
                out.extend_from_slice(br#","script":null,"image_cputype":16777228,"image_cpusubtype":-2147483646,"last_fd":2,"fds":[{"fd":0,"fdtype":1},{"fd":1,"fdtype":1},{"fd":2,"fdtype":1}],"args":["#);
                let argc = 1 + self.rng.below(6);
                for i in 0..argc {
                    if i > 0 {
                        out.push(b',');
                    }
                    if i == 0 {
                        let exe = self.processes[proc_index].executable.clone();
                        write_json_str(out, &exe);
                    } else {
                        write_json_str(out, &format!("--flag-{}={}", i, self.rng.below(1000)));
                    }
                }
                out.extend_from_slice(br#"],"env":["PATH=\/usr\/bin:\/bin:\/usr\/sbin:\/sbin","HOME=\/Users\/alice","LANG=en_US.UTF-8","TMPDIR=\/var\/folders\/7x\/k2l1z9xj3qb5v6m0d8w4c2yh0000gn\/T\/"],"cwd":"#);
                self.write_file(out, "/Users/alice");
                out.extend_from_slice(br#","target":"#);
                let target_index = self.rng.below(self.processes.len() as u64) as usize;
                self.write_process(out, target_index);
                out.push(b'}');
            }
            7 => {
                out.extend_from_slice(br#"{"child":"#);
                let child = self.rng.below(self.processes.len() as u64) as usize;
                self.write_process(out, child);
                out.push(b'}');
            }
            _ => {
                let _ = write!(out, r#"{{"stat":{}}}"#, self.rng.below(2) * 256);
            }
        }
        let _ = write!(
            out,
            r#"}},"time":"{}","action":{{"result":{{"result":{{"auth":0}},"result_type":0}}}},"global_seq_num":{},"process":"#,
            time, self.global_seq
        );
        self.write_process(out, proc_index);
        out.extend_from_slice(b",\"action_type\":1}\n");
    }

    fn random_path(&mut self) -> String {
        let root = ROOTS[self.rng.below(ROOTS.len() as u64) as usize];
        let mut path = String::with_capacity(160);
        path.push_str(root);
        for _ in 0..self.rng.below(4) {
            path.push_str(&format!("/{:08x}", self.rng.next_u64() as u32));
        }
        let ext = ["db", "plist", "json", "lock", "tmp", "dylib", "o"][self.rng.below(7) as usize];
        path.push_str(&format!("/{:016x}.{ext}", self.rng.next_u64()));
        path
    }

    fn write_stat(&mut self, out: &mut Vec<u8>) {
        let t = format_rfc3339(self.time_ns - 86_400_000_000_000);
        let _ = write!(
            out,
            r#"{{"st_blocks":8,"st_blksize":4096,"st_rdev":0,"st_dev":16777232,"st_uid":501,"st_gid":20,"st_ino":{},"st_birthtimespec":"{t}","st_flags":0,"st_nlink":1,"st_mtimespec":"{t}","st_ctimespec":"{t}","st_size":{},"st_gen":0,"st_mode":33188,"st_atimespec":"{t}"}}"#,
            1_152_921_500_312_525_701u64 + self.rng.below(1 << 20),
            self.rng.below(1 << 20)
        );
    }

    fn write_file(&mut self, out: &mut Vec<u8>, path: &str) {
        out.extend_from_slice(br#"{"path":"#);
        write_json_str(out, path);
        out.extend_from_slice(br#","stat":"#);
        self.write_stat(out);
        out.extend_from_slice(br#","path_truncated":false}"#);
    }

    fn write_token(
        &self,
        out: &mut Vec<u8>,
        auid: u32,
        uid: u32,
        gid: u32,
        pid: u32,
        pidversion: u32,
    ) {
        if self.version == 10 {
            let _ = write!(
                out,
                "[{auid},{uid},{gid},{uid},{gid},{pid},100004,{pidversion}]"
            );
        } else {
            let _ = write!(
                out,
                r#"{{"asid":100004,"pidversion":{pidversion},"ruid":{uid},"euid":{uid},"rgid":{gid},"auid":{auid},"egid":{gid},"pid":{pid}}}"#
            );
        }
    }

    fn write_process(&mut self, out: &mut Vec<u8>, index: usize) {
        let p = &self.processes[index];
        let (pid, pidversion, ppid, uid, platform) =
            (p.pid, p.pidversion, p.ppid, p.uid, p.platform);
        let executable = p.executable.clone();
        let signing_id = p.signing_id;
        let team_id = p.team_id;
        let cdhash = p.cdhash.clone();
        out.extend_from_slice(br#"{"signing_id":"#);
        write_json_str(out, signing_id);
        out.extend_from_slice(br#","parent_audit_token":"#);
        self.write_token(out, 501, uid, 20, ppid, ppid + 3);
        let _ = write!(
            out,
            r#","codesigning_flags":{},"executable":"#,
            if platform {
                0x2600_0001u32
            } else {
                0x1_0301u32
            }
        );
        self.write_file(out, &executable);
        let _ = write!(
            out,
            r#","ppid":{ppid},"tty":null,"start_time":"{}","is_platform_binary":{platform},"group_id":{pid},"audit_token":"#,
            format_rfc3339(self.time_ns - 3_600_000_000_000).replace(".000000000Z", ".000000Z")
        );
        self.write_token(out, 501, uid, 20, pid, pidversion);
        out.extend_from_slice(br#","is_es_client":false,"responsible_audit_token":"#);
        self.write_token(out, 501, uid, 20, pid, pidversion);
        let _ = write!(
            out,
            r#","session_id":{ppid},"original_ppid":{ppid},"cdhash":"{cdhash}","team_id":"#
        );
        match team_id {
            Some(t) => write_json_str(out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

/// Writes a JSON string the way eslogger does: `/` escaped as `\/`.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'/' => out.extend_from_slice(b"\\/"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Formats nanoseconds since the epoch as eslogger does: RFC 3339, UTC,
/// nine fractional digits.
pub fn format_rfc3339(time_ns: i64) -> String {
    let secs = time_ns.div_euclid(1_000_000_000);
    let nanos = time_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eslogger::EsloggerDecoder;
    use crate::time::parse_rfc3339_nanos;

    #[test]
    fn same_seed_same_lines() {
        let mut a = EsloggerFirehose::new(7, &EventMix::default());
        let mut b = EsloggerFirehose::new(7, &EventMix::default());
        let (mut la, mut lb) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            a.next_line(&mut la);
            b.next_line(&mut lb);
        }
        assert_eq!(la, lb);
    }

    #[test]
    fn every_generated_line_decodes() {
        for version in [9, 10] {
            let mut firehose = EsloggerFirehose::new(
                42,
                &EventMix {
                    open: 1,
                    close: 1,
                    write: 1,
                    create: 1,
                    rename: 1,
                    unlink: 1,
                    exec: 1,
                    fork: 1,
                    exit: 1,
                },
            )
            .with_version(version);
            let mut decoder = EsloggerDecoder::new();
            let mut buf = Vec::new();
            for i in 0..2000 {
                buf.clear();
                firehose.next_line(&mut buf);
                decoder.decode_line(buf.strip_suffix(b"\n").unwrap(), i + 1);
            }
            assert_eq!(
                decoder.stats().skipped_total(),
                0,
                "{:?}",
                decoder.stats().problems()
            );
            let total: u64 = decoder.events_by_table().iter().map(|(_, n)| n).sum();
            assert_eq!(total, 2000);
        }
    }

    #[test]
    fn time_formatting_round_trips() {
        for t in [0, 1_714_564_800_123_456_789, -1, 951_782_400_000_000_000] {
            assert_eq!(parse_rfc3339_nanos(format_rfc3339(t).as_bytes()), Some(t));
        }
    }
}
