//! A seeded generator of realistic EndpointSecurity traffic, as eslogger
//! JSON lines or as decoded rows.
//!
//! Benchmarks need input shaped like a real Mac's firehose: mostly `open`
//! and `close` of deep paths under `/Users`, `/Library`, `/System` and
//! `/private/var`, cache files with random names and a long tail of
//! directories, full process objects with both `stat` blocks, and now and
//! then an `exec` with arguments and environment, a `fork` or an `exit`.
//! A population of processes (a configurable number, running real macOS
//! executables) does the work. Half of it lives throughout, as daemons and
//! apps do; in the other half processes come and go as on a Mac: a fork
//! gives its child the next free pid (wrapping below 99,999) and an exec
//! gives a process a new image and pidversion, so that a parent/child join
//! over hours of history finds each child's parent, not every process that
//! ever had its pid. Event time moves forward by a configurable mean gap.
//! The same seed always gives the same events.
//!
//! Each event is first *drawn* (every random choice made, in a fixed order)
//! and then *rendered*, either as the line eslogger would print
//! ([`EsloggerFirehose::next_line`]) or as the two ES tables' rows that the
//! decoder would make of that line ([`EsloggerFirehose::next_rows`]), which
//! skips JSON entirely. The two renderings of a seed are the same events:
//! decoding the lines gives the same batches as building the rows (a test
//! below holds them to that), so a benchmark can tell parsing cost from the
//! rest of the pipeline. [`DirectRows`] passes drawn rows through the gates
//! into the builders, as the decoder does with parsed ones.

use std::io::Write as _;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::{ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS, TableDef};

use crate::builders::{
    EsProcessEventRow, EsProcessEventsBuilder, EsProcessFileEventRow, EsProcessFileEventsBuilder,
    take_es_batches,
};
use crate::gates::{GateEvent, Gates};
use crate::text::push_osquery_arg;
use crate::time::civil_from_days;

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

    /// A number in `0..n` (`n` > 0): the high half of a 64×64-bit product
    /// (Lemire's reduction) rather than `%`, because a 64-bit division costs
    /// tens of cycles and an event draws several of these with divisors
    /// only known at run time (the mix, the gap, the population).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
}

/// Relative weights of the event types in the generated stream.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl EventMix {
    /// Every kind equally often.
    pub fn uniform() -> Self {
        Self {
            open: 1,
            close: 1,
            write: 1,
            create: 1,
            rename: 1,
            unlink: 1,
            exec: 1,
            fork: 1,
            exit: 1,
        }
    }

    fn weights(&self) -> [u32; 9] {
        [
            self.open,
            self.close,
            self.write,
            self.create,
            self.rename,
            self.unlink,
            self.exec,
            self.fork,
            self.exit,
        ]
    }

    fn weight_mut(&mut self, kind: &str) -> Option<&mut u32> {
        Some(match kind {
            "open" => &mut self.open,
            "close" => &mut self.close,
            "write" => &mut self.write,
            "create" => &mut self.create,
            "rename" => &mut self.rename,
            "unlink" => &mut self.unlink,
            "exec" => &mut self.exec,
            "fork" => &mut self.fork,
            "exit" => &mut self.exit,
            _ => return None,
        })
    }

    /// Parses `open=55,close=30,exec=2`: kinds not named get weight 0.
    /// `default` is the default mix.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == "default" {
            return Ok(Self::default());
        }
        let mut mix = Self {
            open: 0,
            close: 0,
            write: 0,
            create: 0,
            rename: 0,
            unlink: 0,
            exec: 0,
            fork: 0,
            exit: 0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected KIND=WEIGHT"))?;
            let slot = mix.weight_mut(kind.trim()).ok_or_else(|| {
                format!(
                    "{kind:?} is not an event kind (one of {})",
                    KINDS.join(", ")
                )
            })?;
            *slot = weight
                .trim()
                .parse()
                .map_err(|_| format!("{weight:?} is not a whole number"))?;
        }
        if mix.weights().iter().all(|&w| w == 0) {
            return Err(format!("{text:?}: every weight is 0"));
        }
        Ok(mix)
    }
}

/// The kinds, in the order of [`EventMix`]'s fields.
pub const KINDS: [&str; 9] = [
    "open", "close", "write", "create", "rename", "unlink", "exec", "fork", "exit",
];
const EVENT_TYPE_NUMBERS: [i64; 9] = [10, 12, 33, 13, 25, 32, 9, 11, 15];
const OPEN: usize = 0;
const CLOSE: usize = 1;
const WRITE: usize = 2;
const CREATE: usize = 3;
const RENAME: usize = 4;
const UNLINK: usize = 5;
const EXEC: usize = 6;
const FORK: usize = 7;

/// The environment of every generated exec, unescaped.
const EXEC_ENV: [&str; 4] = [
    "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
    "HOME=/Users/alice",
    "LANG=en_US.UTF-8",
    "TMPDIR=/var/folders/7x/k2l1z9xj3qb5v6m0d8w4c2yh0000gn/T/",
];
const EXEC_CWD: &str = "/Users/alice";

/// One process of the population: who it is, and which image it runs.
#[derive(Debug, Clone, Copy)]
struct SyntheticProcess {
    pid: u32,
    /// The audit token's pidversion: new for each fork and each exec, as
    /// XNU's `p_idversion`, so that `(pid, pidversion)` names one image of
    /// one process even after its pid is reused.
    pidversion: u32,
    ppid: u32,
    /// The parent's pidversion (its audit token's).
    parent_pidversion: u32,
    /// Its index in [`EXECUTABLES`] and in its renderer's `cdhashes`.
    image: usize,
}

impl SyntheticProcess {
    fn executable(&self) -> &'static str {
        EXECUTABLES[self.image].0
    }

    fn signing_id(&self) -> &'static str {
        EXECUTABLES[self.image].1
    }

    fn team_id(&self) -> Option<&'static str> {
        EXECUTABLES[self.image].2
    }

    fn platform(&self) -> bool {
        EXECUTABLES[self.image].3
    }

    fn uid(&self) -> u32 {
        if self.platform() { 0 } else { 501 }
    }

    fn codesigning_flags(&self) -> u32 {
        if self.platform() {
            0x2600_0001
        } else {
            0x1_0301
        }
    }
}

/// XNU's `PID_MAX`: pids stay below it, and after 99,998 they start again
/// from [`FIRST_REUSED_PID`], skipping those still in use.
const PID_MAX: u32 = 99_999;
/// Where XNU starts again after [`PID_MAX`].
const FIRST_REUSED_PID: u32 = 100;

/// Every random choice of one event, drawn before it is rendered so that
/// both renderings consume the generator identically.
#[derive(Debug, Clone, Copy, Default)]
struct Draw {
    kind: usize,
    time_ns: i64,
    seq: u64,
    global_seq: u64,
    thread_id: u64,
    /// The slot of the exec'ing process or of the fork child: always one
    /// of the short-lived half of the population.
    other: usize,
    /// open's `fflag`, close's `modified`, exit's `stat`, exec's argc.
    small: u64,
    /// rename's source suffix; exec's argument values.
    extra: u64,
    /// Seeds the `stat` blocks, which only the JSON shows.
    stat_seed: u64,
}

/// Generates eslogger JSON lines, or the rows they decode into.
pub struct EsloggerFirehose {
    rng: SplitMix64,
    mix_cumulative: [u32; 9],
    /// The population. The first half is long-lived (daemons, apps, shells,
    /// started before the first event); the second half is replaced as
    /// processes fork and exec.
    processes: Vec<SyntheticProcess>,
    /// The acting process of the current event as it was when the event
    /// happened: for an exec, the image before it.
    actor: SyntheticProcess,
    /// The pid the last fork was given.
    last_pid: u32,
    /// How many processes of the population have each pid, so that a fork
    /// finds a free one without scanning the population.
    pids_in_use: Vec<u16>,
    /// The pidversion the last fork or exec was given.
    last_pidversion: u32,
    time_ns: i64,
    mean_gap_ns: i64,
    seq: [u64; 9],
    global_seq: u64,
    draw: Draw,
    /// The target path of the current event, as drawn.
    drawn_path: DrawnPath,
    /// Every path a draw can name except fresh ones, made once.
    paths: &'static PathTable,
    /// The target path of the current event, spelled out for its line.
    path: Vec<u8>,
    /// rename's source path, for the line.
    source: Vec<u8>,
    /// Renders [`next_rows`](Self::next_rows). It also holds what both
    /// renderings show alike, the message version and the cdhashes, which
    /// the lines read from it.
    renderer: RowRenderer,
}

/// The target path of a drawn event: a member of the [`PathTable`], which
/// is its own bytes, or a fresh name in one of its directories, which is
/// spelled out only when the event is rendered.
#[derive(Debug, Clone, Copy)]
enum DrawnPath {
    Member(&'static [u8]),
    Fresh {
        directory: &'static [u8],
        name_bits: u64,
    },
}

impl DrawnPath {
    /// Spells the path out in `out`, in place of what it held.
    fn spell(&self, out: &mut Vec<u8>) {
        out.clear();
        match *self {
            DrawnPath::Member(path) => out.extend_from_slice(path),
            DrawnPath::Fresh {
                directory,
                name_bits,
            } => {
                out.extend_from_slice(directory);
                push_file_name(out, name_bits);
            }
        }
    }

    /// The path's bytes: the table's own for a member, spelled out in
    /// `scratch` for a fresh name.
    #[inline]
    fn bytes<'a>(&self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        match *self {
            DrawnPath::Member(path) => path,
            DrawnPath::Fresh { .. } => {
                self.spell(scratch);
                scratch
            }
        }
    }
}

/// Spells out rename's source path in `out`: the destination with a
/// `.sb-` suffix of eight hex digits, as an atomic save writes it.
fn push_rename_source(out: &mut Vec<u8>, destination: &[u8], extra: u64) {
    out.clear();
    out.extend_from_slice(destination);
    out.extend_from_slice(b".sb-");
    push_hex(out, u64::from(extra as u32), 8);
}

/// One event with every random choice made and the processes it names
/// copied out: what a generator hands to a [`RowRenderer`], which may run
/// on another thread, as the kernel hands a message to an ES client.
/// Member paths are not copied; they point into the generator's path
/// table, as an `es_string_token_t` points into its message.
#[derive(Debug, Clone, Copy)]
pub struct DrawnEvent {
    draw: Draw,
    actor: SyntheticProcess,
    /// The process in the draw's `other` slot after the draw: exec's
    /// target (with its new image), fork's child.
    other: SyntheticProcess,
    path: DrawnPath,
}

/// Renders [`DrawnEvent`]s as the rows the decoder makes of their lines
/// (see [`EsloggerFirehose::next_rows`]). It owns everything a rendering
/// needs, so it can run on a thread of its own, away from the generator.
#[derive(Debug, Clone)]
pub struct RowRenderer {
    /// The ES message version.
    version: u32,
    /// One code directory hash per executable: the same binary has the
    /// same cdhash in every process that runs it.
    cdhashes: Vec<String>,
    /// A fresh name's path, spelled out.
    path: Vec<u8>,
    /// rename's source path.
    source: Vec<u8>,
    /// Joined exec arguments and environment.
    cmdline: Vec<u8>,
    env: Vec<u8>,
    /// One exec argument at a time.
    arg: Vec<u8>,
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

/// Where files live, and how a Mac reuses them.
///
/// A real Mac does not open a new file for every event: the NOTIFY_OPEN
/// firehose is dominated by the same dylibs, plists, localization bundles,
/// caches and databases opened again and again, by many processes, many
/// times a second. Even cache and temporary files, whose names look random,
/// come from a bounded set per directory (cache keys are hashes of a bounded
/// set of URLs; leveldb and tracev3 files rotate through a few dozen names).
/// So every root has a bounded set of directories and of files per
/// directory, with hash-derived names that look random but repeat, and only
/// a small per-root share of events (`fresh_per_mille`) opens a name never
/// seen before (new cache entries, temporary files, build outputs): the long
/// tail.
///
/// Which directory and which file is skewed, not uniform: a few are hot and
/// most are cold, as in measured file-access traces (Zipf-like). The draw is
/// `⌊n · u³⌋` for a uniform `u`: half the draws land in the first eighth of
/// the set and a quarter in the first 64th, yet every member is drawn now
/// and then. That leaves about `log2(n) - 1.3` bits of entropy per choice,
/// e.g. 10 bits for Safari's 8,192 cache records, so paths are repetitive
/// as on a real Mac but far from constant.
struct PathRoot {
    /// The directory every path of this root starts with.
    root: &'static str,
    /// Share of the traffic, out of [`ROOT_WEIGHT_TOTAL`].
    weight: u32,
    /// Directories under the root (each zero to three levels deep).
    dirs: u32,
    /// Files in each directory.
    files: u32,
    /// Events in a thousand that open a never-seen file name instead.
    fresh_per_mille: u32,
}

/// The roots, weighted: caches and temporary folders take most of the
/// traffic; system resources and build trees the rest.
const ROOTS: [PathRoot; 8] = [
    PathRoot {
        root: "/Users/alice/Library/Caches/com.apple.Safari/WebKitCache/Version 16/Records",
        weight: 20,
        dirs: 32,
        files: 256,
        fresh_per_mille: 30,
    },
    PathRoot {
        root: "/Users/alice/Library/Application Support/Google/Chrome/Default/IndexedDB/https_mail.google.com_0.indexeddb.leveldb",
        weight: 15,
        dirs: 1,
        files: 64,
        fresh_per_mille: 10,
    },
    PathRoot {
        root: "/private/var/folders/7x/k2l1z9xj3qb5v6m0d8w4c2yh0000gn/T/com.apple.mdworker_shared",
        weight: 20,
        dirs: 16,
        files: 64,
        fresh_per_mille: 100,
    },
    PathRoot {
        root: "/System/Library/Frameworks/AppKit.framework/Versions/C/Resources/English.lproj",
        weight: 15,
        dirs: 4,
        files: 128,
        fresh_per_mille: 0,
    },
    PathRoot {
        root: "/Library/Application Support/com.apple.TCC",
        weight: 5,
        dirs: 1,
        files: 4,
        fresh_per_mille: 0,
    },
    PathRoot {
        root: "/Users/alice/src/project/target/debug/.fingerprint",
        weight: 10,
        dirs: 512,
        files: 4,
        fresh_per_mille: 20,
    },
    PathRoot {
        root: "/private/var/db/diagnostics/Persist",
        weight: 10,
        dirs: 1,
        files: 128,
        fresh_per_mille: 5,
    },
    PathRoot {
        root: "/Users/alice/Documents",
        weight: 5,
        dirs: 16,
        files: 64,
        fresh_per_mille: 20,
    },
];
const ROOT_WEIGHT_TOTAL: u32 = 100;
/// The root of each pick in `0..ROOT_WEIGHT_TOTAL`, each root taking as
/// many picks as its weight: one load instead of a walk with a branch the
/// CPU cannot predict.
const ROOT_OF_PICK: [u8; ROOT_WEIGHT_TOTAL as usize] = {
    let mut table = [0u8; ROOT_WEIGHT_TOTAL as usize];
    let (mut root, mut pick) = (0, 0);
    while root < ROOTS.len() {
        let mut n = 0;
        while n < ROOTS[root].weight {
            table[pick] = root as u8;
            pick += 1;
            n += 1;
        }
        root += 1;
    }
    assert!(pick == ROOT_WEIGHT_TOTAL as usize, "the weights add up");
    table
};
const EXTENSIONS: [&str; 7] = ["db", "plist", "json", "lock", "tmp", "dylib", "o"];

/// A skewed pick in `0..n`: `⌊n · u³⌋` for a uniform `u` (see [`PathRoot`]).
fn skewed_below(rng: &mut SplitMix64, n: u32) -> u32 {
    // 53 random bits make an exact f64 in [0, 1).
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((f64::from(n) * u * u * u) as u32).min(n.saturating_sub(1))
}

/// A fixed pseudo-random name for member `index` of a bounded set: the
/// same arguments always give the same bits.
fn member_bits(root: usize, dir: u32, file: u32) -> u64 {
    let mut mixer =
        SplitMix64::new(((root as u64) << 48) ^ (u64::from(dir) << 24) ^ u64::from(file));
    mixer.next_u64()
}

/// Every path a generator draws except the fresh names: the directories of
/// every root, and every member file of every directory. They depend on
/// nothing but [`ROOTS`], so one table, made on first use, serves every
/// generator. Making each event's path from its bits (the name's hash, its
/// hex digits, the extension) was most of the generator's path drawing,
/// and the generator stands in for the kernel: its time is not sluice's,
/// but it shares the cores with sluice.
#[derive(Debug)]
struct PathTable {
    /// Directory `dir` of root `r` is the root's path and up to three
    /// levels of hex names drawn from [`member_bits`]`(r, dir, u32::MAX)`.
    directories: Strings,
    /// Member `file` of that directory is the directory, `/`, the 16 hex
    /// digits of [`member_bits`]`(r, dir, file)` and an extension chosen by
    /// those bits (see [`push_file_name`]).
    members: Strings,
    /// The index in `directories` of each root's first directory.
    first_directory: [usize; ROOTS.len()],
    /// The index in `members` of each root's first member.
    first_member: [usize; ROOTS.len()],
}

/// Byte strings back to back.
#[derive(Debug)]
struct Strings {
    bytes: Vec<u8>,
    /// Where each string ends in `bytes`, after a leading 0.
    ends: Vec<usize>,
}

impl Strings {
    fn new() -> Self {
        Self {
            bytes: Vec::new(),
            ends: vec![0],
        }
    }

    /// How many strings have been ended.
    fn len(&self) -> usize {
        self.ends.len() - 1
    }

    /// Ends the string pushed since the last call.
    fn end_one(&mut self) {
        self.ends.push(self.bytes.len());
    }

    #[inline]
    fn get(&self, index: usize) -> &[u8] {
        &self.bytes[self.ends[index]..self.ends[index + 1]]
    }
}

impl PathTable {
    /// The table, made once per process (a few milliseconds, 1.4 MB).
    fn get() -> &'static PathTable {
        static TABLE: std::sync::OnceLock<PathTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(PathTable::new)
    }

    fn new() -> Self {
        let mut directories = Strings::new();
        let mut members = Strings::new();
        let mut first_directory = [0; ROOTS.len()];
        let mut first_member = [0; ROOTS.len()];
        for (index, root) in ROOTS.iter().enumerate() {
            first_directory[index] = directories.len();
            first_member[index] = members.len();
            for dir in 0..root.dirs.max(1) {
                let start = directories.bytes.len();
                directories.bytes.extend_from_slice(root.root.as_bytes());
                let dir_bits = member_bits(index, dir, u32::MAX);
                for level in 0..dir_bits % 4 {
                    directories.bytes.push(b'/');
                    push_hex(
                        &mut directories.bytes,
                        u64::from((dir_bits >> (8 * level + 2)) as u32),
                        8,
                    );
                }
                directories.end_one();
                for file in 0..root.files.max(1) {
                    members.bytes.extend_from_slice(&directories.bytes[start..]);
                    push_file_name(&mut members.bytes, member_bits(index, dir, file));
                    members.end_one();
                }
            }
        }
        Self {
            directories,
            members,
            first_directory,
            first_member,
        }
    }

    /// Directory `dir` (below the root's `dirs`) of root `index`.
    #[inline]
    fn directory(&self, index: usize, dir: u32) -> &[u8] {
        self.directories
            .get(self.first_directory[index] + dir as usize)
    }

    /// Member `file` (below the root's `files`) of directory `dir` of root
    /// `index`.
    #[inline]
    fn member(&self, index: usize, dir: u32, file: u32) -> &[u8] {
        let files = ROOTS[index].files.max(1) as usize;
        self.members
            .get(self.first_member[index] + dir as usize * files + file as usize)
    }
}

/// Appends `/`, a file name made of `name_bits` and its extension. The
/// extension is part of the file's identity (chosen by the same bits), not
/// a draw of its own.
fn push_file_name(out: &mut Vec<u8>, name_bits: u64) {
    let ext = EXTENSIONS[(name_bits % EXTENSIONS.len() as u64) as usize];
    out.push(b'/');
    push_hex(out, name_bits, 16);
    out.push(b'.');
    out.extend_from_slice(ext.as_bytes());
}

/// Appends the low `digits` hex digits of `value`, zero-padded and lower
/// case: `format!("{value:0digits$x}")` without `core::fmt`, which was a
/// tenth of the generator's time (paths are made for every event).
fn push_hex(out: &mut Vec<u8>, value: u64, digits: usize) {
    let digits = digits.min(16);
    let mut text = [0u8; 16];
    // The high half only when its digits are asked for (directory names
    // take eight).
    if digits > 8 {
        text[..8].copy_from_slice(&hex8((value >> 32) as u32));
    }
    text[8..].copy_from_slice(&hex8(value as u32));
    // One capacity check for the whole name instead of one per digit.
    out.extend_from_slice(&text[16 - digits..]);
}

/// The eight lower-case hex digits of `x`, most significant first, made
/// in one register: each nibble is spread to a byte of its own, and bytes
/// above 9 get the distance from `'9' + 1` to `'a'` added. A table lookup
/// per digit was a fifth of the generator's path drawing.
#[inline]
fn hex8(x: u32) -> [u8; 8] {
    let x = u64::from(x);
    // Nibble k (k = 0 the least significant) ends in byte k.
    let mut y = ((x & 0xFFFF_0000) << 16) | (x & 0xFFFF);
    y = ((y & 0x0000_FF00_0000_FF00) << 8) | (y & 0x0000_00FF_0000_00FF);
    y = ((y & 0x00F0_00F0_00F0_00F0) << 4) | (y & 0x000F_000F_000F_000F);
    // Bit 4 of each byte is set when the nibble is 10 or more: 15 + 6 < 32,
    // so no byte carries into the next.
    let letters = ((y + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    let ascii = y + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'9' - 1);
    // Byte 0 holds the least significant digit, which is written last.
    ascii.to_be_bytes()
}

/// The first event's time: 2024-05-01T12:00:00Z.
pub const DEFAULT_START_NS: i64 = 1_714_564_800_000_000_000;

impl EsloggerFirehose {
    /// A generator seeded with `seed`, with 64 processes, emitting messages
    /// of ES version 9 from [`DEFAULT_START_NS`], 50 µs apart on average.
    pub fn new(seed: u64, mix: &EventMix) -> Self {
        Self::with_processes(seed, mix, 64)
    }

    /// Like [`new`](Self::new) with `count` processes (at least 1).
    pub fn with_processes(seed: u64, mix: &EventMix, count: usize) -> Self {
        let mut mix_cumulative = [0u32; 9];
        let mut sum = 0;
        for (slot, w) in mix_cumulative.iter_mut().zip(mix.weights()) {
            sum += w;
            *slot = sum;
        }
        let mut rng = SplitMix64::new(seed);
        let cdhashes = EXECUTABLES
            .iter()
            .map(|_| {
                let mut cdhash = String::with_capacity(40);
                for _ in 0..5 {
                    cdhash.push_str(&format!("{:08X}", rng.next_u64() as u32));
                }
                cdhash
            })
            .collect();
        // The population starts as a process tree: most processes were
        // started by an earlier one (a shell runs tools, an app its
        // helpers), the rest by a system daemon outside the population.
        // Drawn from a stream of its own, so that the events do not depend
        // on the tree's shape.
        let mut tree_rng = SplitMix64::new(seed ^ 0x7472_6565);
        let mut processes: Vec<SyntheticProcess> = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let pid = 300 + (rng.below(60_000) as u32);
            let daemon = 1 + rng.below(300) as u32;
            let (ppid, parent_pidversion) = if i > 0 && tree_rng.below(4) != 0 {
                let parent = &processes[tree_rng.below(i as u64) as usize];
                (parent.pid, parent.pidversion)
            } else {
                (daemon, daemon + 3)
            };
            processes.push(SyntheticProcess {
                pid,
                pidversion: pid + 7,
                ppid,
                parent_pidversion,
                image: i % EXECUTABLES.len(),
            });
        }
        let last_pid = processes.iter().map(|p| p.pid).max().unwrap_or(300);
        let mut pids_in_use = vec![0u16; PID_MAX as usize + 1];
        for p in &processes {
            pids_in_use[p.pid as usize] = pids_in_use[p.pid as usize].saturating_add(1);
        }
        Self {
            rng,
            mix_cumulative,
            actor: processes[0],
            processes,
            last_pid,
            pids_in_use,
            // Above every pidversion of the first population (pid + 7).
            last_pidversion: 100_000,
            time_ns: DEFAULT_START_NS,
            mean_gap_ns: 50_000,
            seq: [0; 9],
            global_seq: 0,
            draw: Draw::default(),
            drawn_path: DrawnPath::Member(b""),
            paths: PathTable::get(),
            path: Vec::with_capacity(256),
            source: Vec::with_capacity(256),
            renderer: RowRenderer {
                version: 9,
                cdhashes,
                path: Vec::with_capacity(256),
                source: Vec::with_capacity(256),
                cmdline: Vec::with_capacity(256),
                env: Vec::with_capacity(256),
                arg: Vec::with_capacity(64),
            },
        }
    }

    /// Sets the ES message version of the generated lines (10 writes audit
    /// tokens as arrays).
    pub fn with_version(mut self, version: u32) -> Self {
        self.renderer.version = version;
        self
    }

    /// Starts event time at `time_ns` (nanoseconds since the epoch).
    pub fn with_start_time_ns(mut self, time_ns: i64) -> Self {
        self.time_ns = time_ns;
        self
    }

    /// Moves event time forward by `gap_ns` on average per event (uniform
    /// in `gap/2 ..= 3·gap/2`), e.g. `1e9 / rate` for a given offered rate.
    pub fn with_mean_gap_ns(mut self, gap_ns: i64) -> Self {
        self.mean_gap_ns = gap_ns.max(2);
        self
    }

    /// Events generated so far.
    pub fn generated(&self) -> u64 {
        self.global_seq
    }

    /// The time of the latest event, nanoseconds since the epoch.
    pub fn time_ns(&self) -> i64 {
        self.time_ns
    }

    /// Makes every random choice of the next event.
    fn draw_next(&mut self) {
        let total = self.mix_cumulative[8].max(1);
        let pick = self.rng.below(u64::from(total)) as u32;
        let kind = self
            .mix_cumulative
            .iter()
            .position(|&c| pick < c)
            .unwrap_or(0);
        let half = self.mean_gap_ns / 2;
        self.time_ns += half + self.rng.below(self.mean_gap_ns as u64 + 1) as i64;
        self.seq[kind] += 1;
        self.global_seq += 1;
        let n = self.processes.len() as u64;
        let process = self.rng.below(n) as usize;
        let settled = n / 2;
        let other = (settled + self.rng.below(n - settled)) as usize;
        let small = self.rng.next_u64();
        let extra = self.rng.next_u64();
        let stat_seed = self.rng.next_u64();
        let thread_id = 4_000_000 + self.rng.below(100_000);
        self.draw = Draw {
            kind,
            time_ns: self.time_ns,
            seq: self.seq[kind],
            global_seq: self.global_seq,
            thread_id,
            other,
            small,
            extra,
            stat_seed,
        };
        self.actor = self.processes[process];
        match kind {
            FORK => {
                let parent = self.actor;
                let child = SyntheticProcess {
                    pid: self.fresh_pid(),
                    pidversion: self.fresh_pidversion(),
                    ppid: parent.pid,
                    parent_pidversion: parent.pidversion,
                    image: parent.image,
                };
                self.replace(other, child);
            }
            EXEC => {
                // The process in `other` runs a new image: the same pid and
                // parent, a new pidversion.
                self.actor = self.processes[other];
                let image = self.rng.below(EXECUTABLES.len() as u64) as usize;
                let pidversion = self.fresh_pidversion();
                let target = &mut self.processes[other];
                target.image = image;
                target.pidversion = pidversion;
            }
            _ => {}
        }
        self.drawn_path = self.random_path();
    }

    /// The pid of a new process: the next one up, as XNU's `forkproc` gives
    /// them, wrapping below [`PID_MAX`] and skipping pids in use, so that
    /// a long history reuses pids as a Mac does.
    fn fresh_pid(&mut self) -> u32 {
        // Bounded, so that a population holding nearly every pid (a
        // `--processes` near 100,000) shares pids rather than loops.
        for _ in 0..PID_MAX {
            self.last_pid = if self.last_pid + 1 >= PID_MAX {
                FIRST_REUSED_PID
            } else {
                self.last_pid + 1
            };
            if self.pids_in_use[self.last_pid as usize] == 0 {
                break;
            }
        }
        self.last_pid
    }

    /// Puts `process` in `slot`, in place of the process there, which is
    /// gone (it exited, unseen) and whose pid is free again.
    fn replace(&mut self, slot: usize, process: SyntheticProcess) {
        let gone = self.processes[slot].pid as usize;
        self.pids_in_use[gone] = self.pids_in_use[gone].saturating_sub(1);
        let pid = process.pid as usize;
        self.pids_in_use[pid] = self.pids_in_use[pid].saturating_add(1);
        self.processes[slot] = process;
    }

    /// A pidversion no process has had yet.
    fn fresh_pidversion(&mut self) -> u32 {
        self.last_pidversion += 1;
        self.last_pidversion
    }

    /// A Mac-like path: a weighted root, one of its directories (zero to
    /// three levels of hash-named folders), and either one of that
    /// directory's files or, rarely, a fresh random name (see [`PathRoot`]).
    fn random_path(&mut self) -> DrawnPath {
        let pick = self.rng.below(u64::from(ROOT_WEIGHT_TOTAL)) as usize;
        let index = usize::from(ROOT_OF_PICK[pick]);
        let root = &ROOTS[index];
        let dir = skewed_below(&mut self.rng, root.dirs);
        let fresh = self.rng.below(1000) < u64::from(root.fresh_per_mille);
        let file = skewed_below(&mut self.rng, root.files);
        let paths: &'static PathTable = self.paths;
        if fresh {
            DrawnPath::Fresh {
                directory: paths.directory(index, dir),
                name_bits: self.rng.next_u64(),
            }
        } else {
            DrawnPath::Member(paths.member(index, dir, file))
        }
    }

    fn exec_argc(draw: &Draw) -> u64 {
        1 + draw.small % 6
    }

    /// Writes the JSON line of the drawn event to `out`, newline included.
    fn render_line(&mut self, out: &mut Vec<u8>) {
        let d = self.draw;
        let mut stat_rng = SplitMix64::new(d.stat_seed);
        let time = Rfc3339::of(d.time_ns);
        // Every stat block of the line shows the same times; format them once.
        let stat_time = Rfc3339::of(d.time_ns - 86_400_000_000_000);
        let stat_time = stat_time.as_bytes();
        // Keys in an order eslogger really uses: not alphabetical, not stable.
        // Numbers go through `push_i64`, not `write!`: core::fmt was a third
        // of the time it takes to make a line.
        out.extend_from_slice(br#"{"schema_version":1,"mach_time":"#);
        push_i64(out, d.time_ns / 41);
        out.extend_from_slice(br#","event_type":"#);
        push_i64(out, EVENT_TYPE_NUMBERS[d.kind]);
        out.extend_from_slice(br#","thread":{"thread_id":"#);
        push_i64(out, d.thread_id as i64);
        out.extend_from_slice(br#"},"version":"#);
        push_i64(out, i64::from(self.renderer.version));
        out.extend_from_slice(br#","seq_num":"#);
        push_i64(out, d.seq as i64);
        out.extend_from_slice(br#","event":{""#);
        out.extend_from_slice(KINDS[d.kind].as_bytes());
        out.extend_from_slice(br#"":"#);
        let path = &self.path;
        let split = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
        let (dir, name) = (&path[..split], &path[split + 1..]);
        match d.kind {
            OPEN => {
                out.extend_from_slice(br#"{"fflag":"#);
                push_i64(out, (1 + d.small % 3) as i64);
                out.extend_from_slice(br#","file":"#);
                write_file(out, path, stat_time, &mut stat_rng);
                out.push(b'}');
            }
            CLOSE => {
                out.extend_from_slice(if d.small.is_multiple_of(4) {
                    br#"{"modified":true,"was_mapped_writable":false,"target":"#
                } else {
                    br#"{"modified":false,"was_mapped_writable":false,"target":"#
                });
                write_file(out, path, stat_time, &mut stat_rng);
                out.push(b'}');
            }
            WRITE | UNLINK => {
                out.extend_from_slice(br#"{"target":"#);
                write_file(out, path, stat_time, &mut stat_rng);
                if d.kind == UNLINK {
                    out.extend_from_slice(br#","parent_dir":"#);
                    write_file(out, dir, stat_time, &mut stat_rng);
                }
                out.push(b'}');
            }
            CREATE | RENAME => {
                if d.kind == RENAME {
                    out.extend_from_slice(br#"{"source":"#);
                    write_file(out, &self.source, stat_time, &mut stat_rng);
                    out.extend_from_slice(
                        br#","destination_type":1,"destination":{"new_path":{"filename":"#,
                    );
                } else {
                    out.extend_from_slice(
                        br#"{"destination_type":1,"destination":{"new_path":{"filename":"#,
                    );
                }
                write_json_str(out, name);
                out.extend_from_slice(br#","mode":420,"dir":"#);
                write_file(out, dir, stat_time, &mut stat_rng);
                out.extend_from_slice(b"}}}");
            }
            EXEC => {
                let target = self.processes[d.other];
                out.extend_from_slice(br#"{"dyld_exec_path":"#);
                write_json_str(out, target.executable().as_bytes());
                out.extend_from_slice(br#","script":null,"image_cputype":16777228,"image_cpusubtype":-2147483646,"last_fd":2,"fds":[{"fd":0,"fdtype":1},{"fd":1,"fdtype":1},{"fd":2,"fdtype":1}],"args":["#);
                for i in 0..Self::exec_argc(&d) {
                    if i > 0 {
                        out.push(b',');
                        out.extend_from_slice(b"\"--flag-");
                        push_i64(out, i as i64);
                        out.push(b'=');
                        push_i64(out, arg_value(d.extra, i) as i64);
                        out.push(b'"');
                    } else {
                        write_json_str(out, target.executable().as_bytes());
                    }
                }
                out.extend_from_slice(br#"],"env":["#);
                for (i, entry) in EXEC_ENV.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(out, entry.as_bytes());
                }
                out.extend_from_slice(br#"],"cwd":"#);
                write_file(out, EXEC_CWD.as_bytes(), stat_time, &mut stat_rng);
                out.extend_from_slice(br#","target":"#);
                self.write_process(out, &target, stat_time, &mut stat_rng);
                out.push(b'}');
            }
            FORK => {
                out.extend_from_slice(br#"{"child":"#);
                let child = self.processes[d.other];
                self.write_process(out, &child, stat_time, &mut stat_rng);
                out.push(b'}');
            }
            _ => {
                out.extend_from_slice(br#"{"stat":"#);
                push_i64(out, ((d.small % 2) * 256) as i64);
                out.push(b'}');
            }
        }
        out.extend_from_slice(br#"},"time":""#);
        out.extend_from_slice(time.as_bytes());
        out.extend_from_slice(
            br#"","action":{"result":{"result":{"auth":0},"result_type":0}},"global_seq_num":"#,
        );
        push_i64(out, d.global_seq as i64);
        out.extend_from_slice(br#","process":"#);
        let actor = self.actor;
        self.write_process(out, &actor, stat_time, &mut stat_rng);
        out.extend_from_slice(b",\"action_type\":1}\n");
    }

    /// Appends one line, newline included, to `out`.
    pub fn next_line(&mut self, out: &mut Vec<u8>) {
        self.draw_next();
        self.drawn_path.spell(&mut self.path);
        if self.draw.kind == RENAME {
            push_rename_source(&mut self.source, &self.path, self.draw.extra);
        }
        self.render_line(out);
    }

    /// Writes `events` lines to `out`, for a replay later (`sluice ingest
    /// FILE`). Returns the bytes written.
    pub fn write_lines(
        &mut self,
        out: &mut impl std::io::Write,
        events: u64,
    ) -> std::io::Result<u64> {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut written = 0u64;
        for _ in 0..events {
            self.next_line(&mut buf);
            if buf.len() >= (1 << 20) - 8192 {
                out.write_all(&buf)?;
                written += buf.len() as u64;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        written += buf.len() as u64;
        out.flush()?;
        Ok(written)
    }

    /// Draws the next event and hands its decoded row to `sink`, exactly
    /// the row [`crate::eslogger::EsloggerDecoder`] makes of the line
    /// [`next_line`](Self::next_line) would have written, without any JSON.
    pub fn next_rows(&mut self, sink: &mut impl RowSink) {
        let event = self.draw();
        self.renderer.render(&event, sink);
    }

    /// Draws the next event for a [`RowRenderer`] (see
    /// [`row_renderer`](Self::row_renderer)): `next_rows` in two halves,
    /// which may run on two threads.
    pub fn draw(&mut self) -> DrawnEvent {
        self.draw_next();
        DrawnEvent {
            draw: self.draw,
            actor: self.actor,
            other: self.processes[self.draw.other],
            path: self.drawn_path,
        }
    }

    /// A renderer of this generator's drawn events.
    pub fn row_renderer(&self) -> RowRenderer {
        self.renderer.clone()
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
        let (auid, uid, gid, pid, pidversion) = (
            i64::from(auid),
            i64::from(uid),
            i64::from(gid),
            i64::from(pid),
            i64::from(pidversion),
        );
        if self.renderer.version == 10 {
            // [auid,uid,gid,uid,gid,pid,100004,pidversion]
            for (i, value) in [auid, uid, gid, uid, gid, pid, 100_004, pidversion]
                .into_iter()
                .enumerate()
            {
                out.push(if i == 0 { b'[' } else { b',' });
                push_i64(out, value);
            }
            out.push(b']');
        } else {
            let fields: [(&[u8], i64); 8] = [
                (br#"{"asid":"#, 100_004),
                (br#","pidversion":"#, pidversion),
                (br#","ruid":"#, uid),
                (br#","euid":"#, uid),
                (br#","rgid":"#, gid),
                (br#","auid":"#, auid),
                (br#","egid":"#, gid),
                (br#","pid":"#, pid),
            ];
            for (key, value) in fields {
                out.extend_from_slice(key);
                push_i64(out, value);
            }
            out.push(b'}');
        }
    }

    fn write_process(
        &self,
        out: &mut Vec<u8>,
        p: &SyntheticProcess,
        stat_time: &[u8],
        stat_rng: &mut SplitMix64,
    ) {
        let time_ns = self.draw.time_ns;
        out.extend_from_slice(br#"{"signing_id":"#);
        write_json_str(out, p.signing_id().as_bytes());
        out.extend_from_slice(br#","parent_audit_token":"#);
        self.write_token(out, 501, p.uid(), 20, p.ppid, p.parent_pidversion);
        out.extend_from_slice(br#","codesigning_flags":"#);
        push_i64(out, i64::from(p.codesigning_flags()));
        out.extend_from_slice(br#","executable":"#);
        write_file(out, p.executable().as_bytes(), stat_time, stat_rng);
        out.extend_from_slice(br#","ppid":"#);
        push_i64(out, i64::from(p.ppid));
        out.extend_from_slice(br#","tty":null,"start_time":""#);
        // eslogger shows a whole second with six zeros, not nine.
        let start = Rfc3339::of(time_ns - 3_600_000_000_000);
        match start.as_bytes().strip_suffix(b".000000000Z") {
            Some(whole) => {
                out.extend_from_slice(whole);
                out.extend_from_slice(b".000000Z");
            }
            None => out.extend_from_slice(start.as_bytes()),
        }
        out.extend_from_slice(if p.platform() {
            br#"","is_platform_binary":true,"group_id":"#
        } else {
            br#"","is_platform_binary":false,"group_id":"#
        });
        push_i64(out, i64::from(p.pid));
        out.extend_from_slice(br#","audit_token":"#);
        self.write_token(out, 501, p.uid(), 20, p.pid, p.pidversion);
        out.extend_from_slice(br#","is_es_client":false,"responsible_audit_token":"#);
        self.write_token(out, 501, p.uid(), 20, p.pid, p.pidversion);
        out.extend_from_slice(br#","session_id":"#);
        push_i64(out, i64::from(p.ppid));
        out.extend_from_slice(br#","original_ppid":"#);
        push_i64(out, i64::from(p.ppid));
        out.extend_from_slice(br#","cdhash":""#);
        out.extend_from_slice(self.renderer.cdhashes[p.image].as_bytes());
        out.extend_from_slice(br#"","team_id":"#);
        match p.team_id() {
            Some(t) => write_json_str(out, t.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

impl RowRenderer {
    /// Hands `event`'s decoded row to `sink` (see
    /// [`EsloggerFirehose::next_rows`]).
    pub fn render(&mut self, event: &DrawnEvent, sink: &mut impl RowSink) {
        let d = event.draw;
        let version = Some(self.version as i32);
        let acting = &event.actor;
        match d.kind {
            EXEC | FORK | 8 => {
                let subject = if d.kind == EXEC { &event.other } else { acting };
                let cdhash = &self.cdhashes[subject.image];
                let (mut cmdline_count, mut env_count) = (0, 0);
                self.cmdline.clear();
                self.env.clear();
                if d.kind == EXEC {
                    let argc = EsloggerFirehose::exec_argc(&d);
                    for i in 0..argc {
                        if i == 0 {
                            push_osquery_arg(
                                &mut self.cmdline,
                                true,
                                subject.executable().as_bytes(),
                            );
                        } else {
                            self.arg.clear();
                            let _ = write!(self.arg, "--flag-{i}={}", arg_value(d.extra, i));
                            push_osquery_arg(&mut self.cmdline, false, &self.arg);
                        }
                    }
                    for (i, entry) in EXEC_ENV.iter().enumerate() {
                        push_osquery_arg(&mut self.env, i == 0, entry.as_bytes());
                    }
                    cmdline_count = argc as i64;
                    env_count = EXEC_ENV.len() as i64;
                }
                let gate = GateEvent {
                    table: &ES_PROCESS_EVENTS,
                    is_open: false,
                    process_path: Some(acting.executable().as_bytes()),
                    pid: Some(i64::from(acting.pid)),
                    targets: [
                        (d.kind == EXEC).then_some(subject.executable().as_bytes()),
                        None,
                    ],
                    time_ns: d.time_ns,
                };
                let row = EsProcessEventRow {
                    version,
                    seq_num: Some(d.seq as i64),
                    global_seq_num: Some(d.global_seq as i64),
                    pid: Some(i64::from(subject.pid)),
                    pidversion: Some(i64::from(subject.pidversion)),
                    path: Some(subject.executable().as_bytes()),
                    parent: Some(i64::from(subject.ppid)),
                    original_parent: Some(i64::from(subject.ppid)),
                    session_id: Some(i64::from(subject.ppid)),
                    responsible_pid: Some(i64::from(subject.pid)),
                    responsible_pidversion: Some(i64::from(subject.pidversion)),
                    parent_pidversion: Some(i64::from(subject.parent_pidversion)),
                    cmdline: Some(&self.cmdline),
                    cmdline_count: Some(cmdline_count),
                    env: Some(&self.env),
                    env_count: Some(env_count),
                    cwd: (d.kind == EXEC).then_some(EXEC_CWD.as_bytes()),
                    uid: Some(i64::from(subject.uid())),
                    euid: Some(i64::from(subject.uid())),
                    gid: Some(20),
                    egid: Some(20),
                    username: None,
                    signing_id: Some(subject.signing_id().as_bytes()),
                    team_id: Some(subject.team_id().unwrap_or_default().as_bytes()),
                    cdhash: Some(cdhash.as_bytes()),
                    platform_binary: Some(i32::from(subject.platform())),
                    exit_code: (d.kind == 8).then_some(((d.small % 2) * 256) as i32),
                    child_pid: (d.kind == FORK).then_some(i64::from(event.other.pid)),
                    event_type: KINDS[d.kind],
                    codesigning_flags: Some(subject.codesigning_flags()),
                    time_ns: d.time_ns,
                };
                sink.process_event(&gate, &row);
            }
            _ => {
                let path = event.path.bytes(&mut self.path);
                let (filename, dest): (&[u8], &[u8]) = match d.kind {
                    RENAME => {
                        push_rename_source(&mut self.source, path, d.extra);
                        (&self.source, path)
                    }
                    _ => (path, b""),
                };
                let gate = GateEvent {
                    table: &ES_PROCESS_FILE_EVENTS,
                    is_open: d.kind == OPEN,
                    process_path: Some(acting.executable().as_bytes()),
                    pid: Some(i64::from(acting.pid)),
                    targets: [Some(filename), Some(dest)],
                    time_ns: d.time_ns,
                };
                let row = EsProcessFileEventRow {
                    version,
                    seq_num: Some(d.seq as i64),
                    global_seq_num: Some(d.global_seq as i64),
                    pid: Some(i64::from(acting.pid)),
                    parent: Some(i64::from(acting.ppid)),
                    path: Some(acting.executable().as_bytes()),
                    filename: Some(filename),
                    dest_filename: Some(dest),
                    event_type: KINDS[d.kind],
                    time_ns: d.time_ns,
                };
                sink.file_event(&gate, &row);
            }
        }
    }
}

/// The value of exec argument `i`, from the event's random bits.
fn arg_value(extra: u64, i: u64) -> u64 {
    (extra >> (i * 10)) % 1000
}

/// Where [`EsloggerFirehose::next_rows`] puts each row, with the
/// [`GateEvent`] the decoder would have asked the gates about.
pub trait RowSink {
    /// A row of `es_process_events`.
    fn process_event(&mut self, gate: &GateEvent<'_>, row: &EsProcessEventRow<'_>);
    /// A row of `es_process_file_events`.
    fn file_event(&mut self, gate: &GateEvent<'_>, row: &EsProcessFileEventRow<'_>);
}

/// Drawn rows through the gates into the two ES tables' builders: the
/// decoder's work minus the JSON.
pub struct DirectRows {
    gates: Gates,
    process_events: EsProcessEventsBuilder,
    file_events: EsProcessFileEventsBuilder,
    process_rows: u64,
    file_rows: u64,
}

impl DirectRows {
    /// Empty builders behind `gates`.
    pub fn new(gates: Gates) -> Self {
        Self {
            gates,
            process_events: EsProcessEventsBuilder::new(),
            file_events: EsProcessFileEventsBuilder::new(),
            process_rows: 0,
            file_rows: 0,
        }
    }

    /// The gates, with their drop counters.
    pub fn gates(&self) -> &Gates {
        &self.gates
    }

    /// Rows that passed the gates so far, per table.
    pub fn events_by_table(&self) -> [(&'static str, u64); 2] {
        [
            (ES_PROCESS_EVENTS.name, self.process_rows),
            (ES_PROCESS_FILE_EVENTS.name, self.file_rows),
        ]
    }

    /// Rows waiting in the builders.
    pub fn buffered_rows(&self) -> usize {
        self.process_events.len() + self.file_events.len()
    }

    /// Takes the rows generated so far as one batch per table that has any,
    /// each with its table's schema.
    pub fn take_batches(&mut self) -> Result<Vec<(&'static TableDef, RecordBatch)>, ArrowError> {
        let finish = EsProcessFileEventsBuilder::finish;
        take_es_batches(&mut self.process_events, &mut self.file_events, finish)
    }

    /// [`take_batches`](Self::take_batches) in the form storage takes at
    /// the least cost: file events' paths keyed (see
    /// [`EsProcessFileEventsBuilder::finish_keyed`]).
    pub fn take_keyed_batches(
        &mut self,
    ) -> Result<Vec<(&'static TableDef, RecordBatch)>, ArrowError> {
        let finish = EsProcessFileEventsBuilder::finish_keyed;
        take_es_batches(&mut self.process_events, &mut self.file_events, finish)
    }
}

impl RowSink for DirectRows {
    fn process_event(&mut self, gate: &GateEvent<'_>, row: &EsProcessEventRow<'_>) {
        if self.gates.admit(gate) {
            self.process_events.append(row);
            self.process_rows += 1;
        }
    }

    fn file_event(&mut self, gate: &GateEvent<'_>, row: &EsProcessFileEventRow<'_>) {
        if self.gates.admit(gate) {
            self.file_events.append(row);
            self.file_rows += 1;
        }
    }
}

/// A file object with its `stat`, as eslogger writes one.
fn write_file(out: &mut Vec<u8>, path: &[u8], t: &[u8], rng: &mut SplitMix64) {
    out.extend_from_slice(br#"{"path":"#);
    write_json_str(out, path);
    out.extend_from_slice(
        br#","stat":{"st_blocks":8,"st_blksize":4096,"st_rdev":0,"st_dev":16777232,"st_uid":501,"st_gid":20,"st_ino":"#,
    );
    // The inode is drawn before the size, as the lines always had them.
    push_i64(
        out,
        (1_152_921_500_312_525_701u64 + rng.below(1 << 20)) as i64,
    );
    out.extend_from_slice(br#","st_birthtimespec":""#);
    out.extend_from_slice(t);
    out.extend_from_slice(br#"","st_flags":0,"st_nlink":1,"st_mtimespec":""#);
    out.extend_from_slice(t);
    out.extend_from_slice(br#"","st_ctimespec":""#);
    out.extend_from_slice(t);
    out.extend_from_slice(br#"","st_size":"#);
    push_i64(out, rng.below(1 << 20) as i64);
    out.extend_from_slice(br#","st_gen":0,"st_mode":33188,"st_atimespec":""#);
    out.extend_from_slice(t);
    out.extend_from_slice(br#""},"path_truncated":false}"#);
}

/// Writes a JSON string the way eslogger does: `/` escaped as `\/`. The
/// runs between escapes are copied whole: paths are mostly such runs.
fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + s.len() / 4 + 2);
    out.push(b'"');
    let mut rest = s;
    while let Some(at) = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'"' | b'\\' | b'\n'))
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(match rest[at] {
            b'/' => b"\\/",
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            _ => b"\\n",
        });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Appends `value` in decimal.
#[inline]
fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A time as eslogger writes it, RFC 3339 in UTC with nine fractional
/// digits, on the stack: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, as
/// `format!("{y:04}-{m:02}-…")` would write it for any year.
struct Rfc3339 {
    /// A 20-digit year, its sign and the 26 fixed bytes fit.
    text: [u8; 48],
    len: usize,
}

impl Rfc3339 {
    fn of(time_ns: i64) -> Rfc3339 {
        let secs = time_ns.div_euclid(1_000_000_000);
        let nanos = time_ns.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut out = Rfc3339 {
            text: [0; 48],
            len: 0,
        };
        out.put(y, 4, b'-');
        out.put(i64::from(m), 2, b'-');
        out.put(i64::from(d), 2, b'T');
        out.put(rem / 3600, 2, b':');
        out.put(rem % 3600 / 60, 2, b':');
        out.put(rem % 60, 2, b'.');
        out.put(nanos, 9, b'Z');
        out
    }

    /// Appends `value` zero-padded to `width` characters, its sign
    /// included (as `{:0width$}` does), then `then`.
    fn put(&mut self, value: i64, width: usize, then: u8) {
        if value < 0 {
            self.text[self.len] = b'-';
            self.len += 1;
        }
        let width = width.saturating_sub(usize::from(value < 0));
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = value.unsigned_abs();
        while rest > 0 || digits.len() - at < width.max(1) {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let end = self.len + digits.len() - at;
        self.text[self.len..end].copy_from_slice(&digits[at..]);
        self.text[end] = then;
        self.len = end + 1;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}
/// Formats nanoseconds since the epoch as eslogger does: RFC 3339, UTC,
/// nine fractional digits.
pub fn format_rfc3339(time_ns: i64) -> String {
    String::from_utf8_lossy(Rfc3339::of(time_ns).as_bytes()).into_owned()
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
        let mut c = EsloggerFirehose::new(8, &EventMix::default());
        let mut lc = Vec::new();
        for _ in 0..100 {
            c.next_line(&mut lc);
        }
        assert_ne!(la, lc);
    }

    #[test]
    fn every_generated_line_decodes() {
        for version in [9, 10] {
            let mut firehose =
                EsloggerFirehose::new(42, &EventMix::uniform()).with_version(version);
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
            assert_eq!(decoder.kernel_drops(), 0);
        }
    }

    /// The rows mode is only a fair stand-in for the JSON mode if it makes
    /// exactly the rows the decoder makes of the same seed's lines.
    #[test]
    fn direct_rows_equal_the_decoded_lines() {
        for mix in [EventMix::uniform(), EventMix::default()] {
            let seed = 99;
            let mut lines = EsloggerFirehose::with_processes(seed, &mix, 17);
            let mut rows = EsloggerFirehose::with_processes(seed, &mix, 17);
            let mut decoder = EsloggerDecoder::new();
            let mut direct = DirectRows::new(Gates::keep_everything());
            let mut buf = Vec::new();
            for i in 0..3000 {
                buf.clear();
                lines.next_line(&mut buf);
                decoder.decode_line(buf.strip_suffix(b"\n").unwrap(), i + 1);
                rows.next_rows(&mut direct);
            }
            assert_eq!(decoder.stats().skipped_total(), 0);
            assert_eq!(decoder.events_by_table(), direct.events_by_table());
            let decoded = decoder.take_batches().unwrap();
            let built = direct.take_batches().unwrap();
            assert_eq!(decoded.len(), 2);
            assert_eq!(decoded.len(), built.len());
            for ((dt, db), (bt, bb)) in decoded.iter().zip(&built) {
                assert_eq!(dt.name, bt.name);
                for (i, field) in db.schema().fields().iter().enumerate() {
                    assert_eq!(
                        db.column(i).as_ref(),
                        bb.column(i).as_ref(),
                        "{}.{}",
                        dt.name,
                        field.name()
                    );
                }
            }
        }
    }

    /// Drawing on one thread and rendering on another (as the firehose
    /// bench does) makes the same rows as `next_rows`, fresh names and
    /// rename sources included.
    #[test]
    fn events_drawn_here_and_rendered_there_are_next_rows() {
        let mix = EventMix::uniform();
        let mut whole = EsloggerFirehose::with_processes(3, &mix, 9).with_version(10);
        let mut halves = EsloggerFirehose::with_processes(3, &mix, 9).with_version(10);
        let mut direct = DirectRows::new(Gates::keep_everything());
        for _ in 0..4000 {
            whole.next_rows(&mut direct);
        }
        let mut renderer = halves.row_renderer();
        let drawn: Vec<DrawnEvent> = (0..4000).map(|_| halves.draw()).collect();
        let rendered = std::thread::spawn(move || {
            let mut rows = DirectRows::new(Gates::keep_everything());
            for event in &drawn {
                renderer.render(event, &mut rows);
            }
            rows.take_batches().unwrap()
        })
        .join()
        .unwrap();
        let expected = direct.take_batches().unwrap();
        assert_eq!(expected.len(), 2);
        for ((et, eb), (rt, rb)) in expected.iter().zip(&rendered) {
            assert_eq!(et.name, rt.name);
            assert_eq!(eb, rb, "{}", et.name);
        }
        let (_, file_events) = expected
            .iter()
            .find(|(table, _)| table.name == ES_PROCESS_FILE_EVENTS.name)
            .unwrap();
        let filenames = file_events
            .column_by_name("filename")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert!(
            filenames.iter().flatten().any(|f| f.contains(".sb-")),
            "renames were drawn"
        );
    }

    #[test]
    fn gates_drop_in_rows_mode_as_in_the_decoder() {
        let mut direct =
            DirectRows::new(Gates::new(&crate::gates::config::GatesConfig::default()).unwrap());
        let mut firehose = EsloggerFirehose::new(5, &EventMix::default());
        for _ in 0..5000 {
            firehose.next_rows(&mut direct);
        }
        // Open events are off by default: more than a third of the stream.
        assert!(direct.gates().open_dropped() > 5000 / 3);
        let kept: u64 = direct.events_by_table().iter().map(|(_, n)| n).sum();
        let counters = direct.gates().counters();
        let dropped = counters.dropped_total(&ES_PROCESS_EVENTS)
            + counters.dropped_total(&ES_PROCESS_FILE_EVENTS);
        assert_eq!(kept + dropped, 5000);
    }

    #[test]
    fn times_and_numbers_match_format() {
        let mut rng = SplitMix64::new(11);
        let edges = [0i64, -1, 1, DEFAULT_START_NS, i64::MAX, i64::MIN];
        let drawn: Vec<i64> = (0..10_000).map(|_| rng.next_u64() as i64).collect();
        for &t in edges.iter().chain(&drawn) {
            let secs = t.div_euclid(1_000_000_000);
            let nanos = t.rem_euclid(1_000_000_000);
            let rem = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let expected = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            );
            assert_eq!(format_rfc3339(t), expected, "{t}");

            let mut out = b"x".to_vec();
            push_i64(&mut out, t);
            assert_eq!(out, format!("x{t}").into_bytes());
        }
    }

    #[test]
    fn push_hex_matches_format() {
        let mut rng = SplitMix64::new(9);
        let edges = [0u64, 1, 0xabc, 0xdead_beef, u64::from(u32::MAX), u64::MAX];
        let drawn: Vec<u64> = (0..10_000).map(|_| rng.next_u64()).collect();
        for &value in edges.iter().chain(&drawn) {
            for digits in 1..=16 {
                let mut out = b"x".to_vec();
                push_hex(&mut out, value, digits);
                let masked = value & (u64::MAX >> (64 - 4 * digits));
                assert_eq!(out, format!("x{masked:0digits$x}").into_bytes());
            }
        }
    }

    #[test]
    fn each_root_takes_as_many_picks_as_its_weight() {
        for (root, candidate) in ROOTS.iter().enumerate() {
            let picks = ROOT_OF_PICK.iter().filter(|&&r| usize::from(r) == root);
            assert_eq!(picks.count() as u32, candidate.weight);
        }
        // In order, as the weighted walk it replaced chose them.
        assert!(ROOT_OF_PICK.is_sorted());
    }

    #[test]
    fn processes_form_a_tree_with_daemon_roots() {
        let firehose = EsloggerFirehose::with_processes(3, &EventMix::default(), 64);
        let procs = &firehose.processes;
        let mut children = 0;
        for (i, p) in procs.iter().enumerate() {
            match procs[..i].iter().find(|parent| parent.pid == p.ppid) {
                Some(parent) => {
                    children += 1;
                    assert_eq!(p.parent_pidversion, parent.pidversion);
                }
                None => {
                    // A root: started by a system daemon outside the
                    // population.
                    assert!(p.ppid <= 300, "{}", p.ppid);
                    assert_eq!(p.parent_pidversion, p.ppid + 3);
                }
            }
        }
        // About three in four have a parent in the population.
        assert!((32..64).contains(&children), "{children} of 64");
    }

    /// What a test needs of each process event: kind, pid, pidversion,
    /// parent and fork child.
    #[derive(Default)]
    struct ProcessRows(Vec<(&'static str, i64, i64, i64, Option<i64>)>);

    impl RowSink for ProcessRows {
        fn process_event(&mut self, _: &GateEvent<'_>, row: &EsProcessEventRow<'_>) {
            self.0.push((
                row.event_type,
                row.pid.unwrap(),
                row.pidversion.unwrap(),
                row.parent.unwrap(),
                row.child_pid,
            ));
        }

        fn file_event(&mut self, _: &GateEvent<'_>, _: &EsProcessFileEventRow<'_>) {}
    }

    #[test]
    fn forks_take_fresh_pids_and_execs_new_pidversions() {
        let mut firehose = EsloggerFirehose::new(9, &EventMix::default());
        let mut alive: std::collections::HashSet<i64> = firehose
            .processes
            .iter()
            .map(|p| i64::from(p.pid))
            .collect();
        let mut rows = ProcessRows::default();
        for _ in 0..200_000 {
            firehose.next_rows(&mut rows);
        }
        let mut pidversions = std::collections::HashSet::new();
        let mut execs_by_pid = std::collections::HashMap::<i64, u64>::new();
        let mut last_child = None;
        for &(kind, pid, pidversion, _, child) in &rows.0 {
            match kind {
                "fork" => {
                    let child = child.unwrap();
                    // The next pid up: no wrap yet in 200,000 events.
                    if let Some(last) = last_child {
                        assert!(child > last, "{child} after {last}");
                    }
                    last_child = Some(child);
                    alive.insert(child);
                }
                "exec" => {
                    // An image of a process that exists, never seen before.
                    assert!(alive.contains(&pid), "{pid}");
                    assert!(pidversions.insert(pidversion), "{pidversion} again");
                    *execs_by_pid.entry(pid).or_default() += 1;
                }
                _ => {}
            }
        }
        let execs: u64 = execs_by_pid.values().sum();
        assert!(execs > 3000, "{execs}");
        // A parent/child self-join of exec rows (`c.parent = p.pid`) finds
        // a few parents per child, not thousands: pids are not reused
        // within this history, and a process execs a handful of times.
        let pairs: u64 = rows
            .0
            .iter()
            .filter(|r| r.0 == "exec")
            .map(|r| execs_by_pid.get(&r.3).copied().unwrap_or(0))
            .sum();
        assert!(
            (execs / 10..execs * 3).contains(&pairs),
            "{pairs} pairs of {execs} execs"
        );
    }

    #[test]
    fn pids_wrap_after_pid_max_and_skip_those_in_use() {
        let mut firehose = EsloggerFirehose::new(4, &EventMix::parse("fork=1").unwrap());
        let mut rows = ProcessRows::default();
        for _ in 0..120_000 {
            firehose.next_rows(&mut rows);
        }
        let children: Vec<i64> = rows.0.iter().filter_map(|r| r.4).collect();
        assert!(children.iter().all(|&pid| (100..99_999).contains(&pid)));
        let wraps = children.windows(2).filter(|w| w[1] < w[0]).count();
        assert_eq!(wraps, 1, "pids wrap once in 120,000 forks");
        let live: Vec<u32> = firehose.processes.iter().map(|p| p.pid).collect();
        let unique: std::collections::HashSet<&u32> = live.iter().collect();
        assert_eq!(unique.len(), live.len(), "two live processes share a pid");
    }

    #[test]
    fn time_moves_forward_at_the_mean_gap() {
        let mut firehose = EsloggerFirehose::new(1, &EventMix::default())
            .with_start_time_ns(1_000_000_000)
            .with_mean_gap_ns(1_000);
        let mut sink = DirectRows::new(Gates::keep_everything());
        let mut last = 0;
        for _ in 0..10_000 {
            firehose.next_rows(&mut sink);
            assert!(firehose.time_ns() > last);
            last = firehose.time_ns();
        }
        let span = firehose.time_ns() - 1_000_000_000;
        assert!((9_000_000..11_000_000).contains(&span), "{span}");
        assert_eq!(firehose.generated(), 10_000);
    }

    #[test]
    fn written_file_replays_line_for_line() {
        let mut out = Vec::new();
        let bytes = EsloggerFirehose::new(3, &EventMix::default())
            .write_lines(&mut out, 500)
            .unwrap();
        assert_eq!(bytes as usize, out.len());
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 500);
        let mut again = EsloggerFirehose::new(3, &EventMix::default());
        let mut expected = Vec::new();
        for _ in 0..500 {
            again.next_line(&mut expected);
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn mix_parses_and_rejects() {
        let mix = EventMix::parse("open=3, exec=1").unwrap();
        assert_eq!((mix.open, mix.exec, mix.close), (3, 1, 0));
        assert_eq!(EventMix::parse("default").unwrap(), EventMix::default());
        assert!(
            EventMix::parse("opn=3")
                .unwrap_err()
                .contains("not an event kind")
        );
        assert!(EventMix::parse("open=x").is_err());
        assert!(EventMix::parse("open=0").is_err());
        let mut only_exec = EsloggerFirehose::new(1, &EventMix::parse("exec=1").unwrap());
        let mut line = Vec::new();
        only_exec.next_line(&mut line);
        assert!(line.windows(8).any(|w| w == b"\"exec\":{"));
    }

    #[test]
    fn time_formatting_round_trips() {
        for t in [0, 1_714_564_800_123_456_789, -1, 951_782_400_000_000_000] {
            assert_eq!(parse_rfc3339_nanos(format_rfc3339(t).as_bytes()), Some(t));
        }
    }
}
