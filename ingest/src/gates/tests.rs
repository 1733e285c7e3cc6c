//! Gates on events shaped like real ones: eslogger lines through the
//! decoder, with full process objects and `stat` blocks.

// Tests build configs field by field, as a reader would write them in TOML.
#![allow(clippy::field_reassign_with_default)]

use sluice_schemas::{ES_PROCESS_EVENTS, ES_PROCESS_FILE_EVENTS};

use super::config::{BucketConfig, GateRules, ProcessBucketConfig, ProcessKey};
use super::*;
use crate::eslogger::EsloggerDecoder;

const SECOND: i64 = 1_000_000_000;

fn escaped(path: &str) -> String {
    path.replace('/', "\\/")
}

fn file(path: &str) -> String {
    format!(
        r#"{{"path_truncated":false,"stat":{{"st_dev":16777232,"st_ino":1152921500312525701,"st_mode":33188,"st_nlink":1,"st_uid":501,"st_gid":20,"st_size":12,"st_atimespec":"2024-05-01T11:00:00.000000000Z","st_mtimespec":"2024-05-01T11:00:00.000000000Z"}},"path":"{}"}}"#,
        escaped(path)
    )
}

fn process(exe: &str, pid: i64) -> String {
    format!(
        r#"{{"audit_token":{{"auid":501,"euid":501,"egid":20,"ruid":501,"rgid":20,"pid":{pid},"asid":100004,"pidversion":{}}},"ppid":1,"original_ppid":1,"session_id":400,"codesigning_flags":570522385,"is_platform_binary":true,"cdhash":"8A8B4C2D1E0F9A8B7C6D5E4F3A2B1C0D9E8F7A6B","signing_id":"com.example","team_id":null,"executable":{},"tty":null,"start_time":"2024-05-01T11:00:00.000000Z"}}"#,
        pid + 1000,
        file(exe)
    )
}

struct Feed {
    lines: Vec<String>,
    global: i64,
    seq: std::collections::HashMap<&'static str, i64>,
}

impl Feed {
    fn new() -> Self {
        Self {
            lines: Vec::new(),
            global: 0,
            seq: Default::default(),
        }
    }

    fn push(
        &mut self,
        name: &'static str,
        number: i64,
        body: String,
        exe: &str,
        pid: i64,
        t_ns: i64,
    ) {
        self.global += 1;
        let seq = self.seq.entry(name).or_insert(0);
        *seq += 1;
        let time = crate::synthetic::format_rfc3339(t_ns);
        self.lines.push(format!(
            r#"{{"event":{{"{name}":{body}}},"version":9,"event_type":{number},"seq_num":{seq},"global_seq_num":{},"time":"{time}","action_type":1,"process":{}}}"#,
            self.global,
            process(exe, pid)
        ));
    }

    fn open(&mut self, exe: &str, pid: i64, target: &str, t_ns: i64) {
        self.push(
            "open",
            10,
            format!(r#"{{"fflag":1,"file":{}}}"#, file(target)),
            exe,
            pid,
            t_ns,
        );
    }

    fn write(&mut self, exe: &str, pid: i64, target: &str, t_ns: i64) {
        self.push(
            "write",
            33,
            format!(r#"{{"target":{}}}"#, file(target)),
            exe,
            pid,
            t_ns,
        );
    }

    fn rename(&mut self, exe: &str, pid: i64, from: &str, to: &str, t_ns: i64) {
        self.push(
            "rename",
            25,
            format!(
                r#"{{"source":{},"destination_type":0,"destination":{{"existing_file":{}}}}}"#,
                file(from),
                file(to)
            ),
            exe,
            pid,
            t_ns,
        );
    }

    fn exec(&mut self, exe: &str, pid: i64, target: &str, t_ns: i64) {
        self.push(
            "exec",
            9,
            format!(
                r#"{{"target":{},"args":["x"],"env":[]}}"#,
                process(target, pid)
            ),
            exe,
            pid,
            t_ns,
        );
    }

    fn skip_global(&mut self, n: i64) {
        self.global += n;
    }

    fn run(&self, config: &GatesConfig) -> EsloggerDecoder {
        let mut decoder = EsloggerDecoder::with_gates(Gates::new(config).expect("config compiles"));
        for (i, line) in self.lines.iter().enumerate() {
            decoder.decode_line(line.as_bytes(), i as u64 + 1);
        }
        assert_eq!(
            decoder.stats().skipped_total(),
            0,
            "{:?}",
            decoder.stats().problems()
        );
        decoder
    }
}

fn config(global: GateRules) -> GatesConfig {
    GatesConfig {
        open_events: true,
        default_mutes: false,
        global,
        tables: Default::default(),
    }
}

fn kept_files(d: &EsloggerDecoder) -> u64 {
    d.gates().counters().kept(&ES_PROCESS_FILE_EVENTS)
}

fn muted_files(d: &EsloggerDecoder) -> u64 {
    d.gates()
        .counters()
        .dropped(&ES_PROCESS_FILE_EVENTS, DropReason::Muted)
}

#[test]
fn each_kind_of_process_rule() {
    let mut feed = Feed::new();
    feed.write(
        "/usr/sbin/cfprefsd",
        100,
        "/Users/alice/Library/Preferences/a.plist",
        SECOND,
    );
    feed.write(
        "/System/Library/PrivateFrameworks/X.framework/xd",
        101,
        "/tmp/x",
        SECOND,
    );
    feed.write(
        "/Applications/Slack.app/Contents/MacOS/Slack Helper",
        102,
        "/tmp/y",
        SECOND,
    );
    feed.write("/bin/zsh", 103, "/tmp/z", SECOND);
    let mut rules = GateRules::default();
    rules.mute.process = path_rules(
        &["/usr/sbin/cfprefsd"],
        &["/System/Library/PrivateFrameworks/"],
        &["/Applications/*.app/Contents/MacOS/*Helper*"],
    );
    let d = feed.run(&config(rules));
    assert_eq!((kept_files(&d), muted_files(&d)), (1, 3));
}

#[test]
fn each_kind_of_target_rule() {
    let mut feed = Feed::new();
    feed.write("/bin/zsh", 1, "/etc/hosts", SECOND);
    feed.write("/bin/zsh", 1, "/private/var/folders/7x/T/a", SECOND);
    feed.write(
        "/bin/zsh",
        1,
        "/Users/alice/Library/Caches/com.apple.Safari/x.db",
        SECOND,
    );
    feed.write("/bin/zsh", 1, "/Users/alice/Documents/report.pdf", SECOND);
    let mut rules = GateRules::default();
    rules.mute.target = path_rules(
        &["/etc/hosts"],
        &["/private/var/folders/"],
        &["/Users/*/Library/Caches/**"],
    );
    let d = feed.run(&config(rules));
    assert_eq!((kept_files(&d), muted_files(&d)), (1, 3));
}

#[test]
fn rename_with_one_muted_and_one_unmuted_path() {
    let mut feed = Feed::new();
    feed.rename(
        "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
        700,
        "/tmp/a",
        "/Users/alice/a",
        SECOND,
    );
    feed.rename(
        "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
        700,
        "/tmp/b",
        "/tmp/c",
        SECOND,
    );
    feed.rename(
        "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
        700,
        "/var/d",
        "/Users/alice/d",
        SECOND,
    );

    // Normal mode: muted only when every path is muted.
    let mut normal = GateRules::default();
    normal.mute.target = path_rules(&[], &["/tmp/"], &[]);
    let d = feed.run(&config(normal));
    assert_eq!(
        (kept_files(&d), muted_files(&d)),
        (2, 1),
        "only /tmp/b → /tmp/c is muted"
    );

    // Inverted mode: kept when any path matches the allow-list.
    let mut inverted = GateRules::default();
    inverted.allow.target = path_rules(&[], &["/tmp/"], &[]);
    let d = feed.run(&config(inverted));
    assert_eq!(
        (kept_files(&d), muted_files(&d)),
        (2, 1),
        "only /var/d → /Users/alice/d is muted"
    );
}

#[test]
fn osquery_percent_syntax() {
    let mut feed = Feed::new();
    feed.write("/bin/zsh", 1, "/Users/alice/Documents/report.pdf", SECOND);
    feed.write("/bin/zsh", 1, "/Users/alice/Documents/Cache/x", SECOND);
    feed.write("/bin/zsh", 1, "/Users/bob/Documents/deep/er/file", SECOND);
    feed.write("/bin/zsh", 1, "/Users/alice/Desktop/a", SECOND);
    feed.write("/bin/zsh", 1, "/etc/sudoers", SECOND);
    feed.write("/bin/zsh", 1, "/etc/ssh/sshd_config", SECOND);
    let mut rules = GateRules::default();
    rules
        .osquery
        .file_paths
        .insert("homes".into(), vec!["/Users/%/Documents/%%".into()]);
    rules
        .osquery
        .file_paths
        .insert("etc".into(), vec!["/etc/%".into()]);
    rules
        .osquery
        .exclude_paths
        .insert("homes".into(), vec!["/Users/%/Documents/Cache/%%".into()]);
    let d = feed.run(&config(rules));
    // Kept: report.pdf, bob's deep file (%% recurses), /etc/sudoers (% is one level).
    assert_eq!((kept_files(&d), muted_files(&d)), (3, 3));
}

#[test]
fn open_events_are_off_unless_enabled() {
    let mut feed = Feed::new();
    for i in 0..5 {
        feed.open("/usr/bin/curl", 600, &format!("/etc/hosts{i}"), SECOND + i);
    }
    feed.write("/usr/bin/curl", 600, "/tmp/out", 2 * SECOND);
    let off = GatesConfig {
        default_mutes: false,
        ..GatesConfig::default()
    };
    let d = feed.run(&off);
    assert_eq!(
        (kept_files(&d), muted_files(&d), d.gates().open_dropped()),
        (1, 5, 5)
    );
    let on = GatesConfig {
        open_events: true,
        ..off
    };
    let d = feed.run(&on);
    assert_eq!((kept_files(&d), muted_files(&d)), (6, 0));
}

#[test]
fn default_mutes_apply_to_file_events_only() {
    let mut feed = Feed::new();
    feed.write(
        "/usr/sbin/cfprefsd",
        90,
        "/Library/Preferences/x.plist",
        SECOND,
    );
    feed.exec("/usr/sbin/cfprefsd", 90, "/usr/sbin/cfprefsd", SECOND);
    let d = feed.run(&GatesConfig::default());
    assert_eq!(muted_files(&d), 1);
    assert_eq!(d.gates().counters().kept(&ES_PROCESS_EVENTS), 1);
}

#[test]
fn token_bucket_rate_and_burst() {
    let mut feed = Feed::new();
    // 1,000 writes over 10 s of event time; a global bucket of 20/s with a
    // burst of 50 lets the burst through, then 20 a second.
    for i in 0..1000 {
        feed.write("/bin/zsh", 1, "/tmp/x", 100 * SECOND + i * SECOND / 100);
    }
    let mut rules = GateRules::default();
    rules.rate = Some(BucketConfig {
        per_second: 20.0,
        burst: Some(50.0),
    });
    let d = feed.run(&config(rules));
    let kept = kept_files(&d);
    assert!(
        (248..=251).contains(&kept),
        "50 + 20/s × 10 s ≈ 250, kept {kept}"
    );
    let limited = d
        .gates()
        .counters()
        .dropped(&ES_PROCESS_FILE_EVENTS, DropReason::RateLimited);
    assert_eq!(kept + limited, 1000);
}

#[test]
fn per_process_limits_and_sampling() {
    let mut feed = Feed::new();
    for i in 0..100 {
        feed.write("/usr/bin/noisy", 10, "/tmp/a", SECOND + i);
        feed.write("/bin/quiet", 11, "/tmp/b", SECOND + i);
    }
    let mut table = GateRules::default();
    table.per_process = Some(ProcessBucketConfig {
        per_second: 1.0,
        burst: Some(10.0),
        key: ProcessKey::Path,
    });
    let mut cfg = config(GateRules::default());
    cfg.tables.insert("es_process_file_events".into(), table);
    let d = feed.run(&cfg);
    assert_eq!(kept_files(&d), 20, "ten from each program's own bucket");

    let mut sampled = GateRules::default();
    sampled.sample = Some(10);
    let mut cfg = config(GateRules::default());
    cfg.tables.insert("es_process_file_events".into(), sampled);
    let d = feed.run(&cfg);
    assert_eq!(kept_files(&d), 20);
    assert_eq!(
        d.gates()
            .counters()
            .dropped(&ES_PROCESS_FILE_EVENTS, DropReason::Sampled),
        180
    );
}

#[test]
fn seq_num_gaps_are_kernel_drops() {
    let mut feed = Feed::new();
    feed.write("/bin/zsh", 1, "/tmp/a", SECOND);
    feed.write("/bin/zsh", 1, "/tmp/b", SECOND);
    // The kernel drops 3 writes and 2 other messages.
    *feed.seq.get_mut("write").unwrap() += 3;
    feed.skip_global(5);
    feed.write("/bin/zsh", 1, "/tmp/c", SECOND);
    feed.exec("/bin/zsh", 1, "/bin/ls", SECOND);
    let d = feed.run(&config(GateRules::default()));
    assert_eq!(
        d.gates()
            .counters()
            .dropped(&ES_PROCESS_FILE_EVENTS, DropReason::Kernel),
        3
    );
    assert_eq!(d.kernel_drops(), 5);
    assert_eq!(kept_files(&d), 3);
}

#[test]
fn unknown_tables_and_bad_values_are_config_errors() {
    let mut cfg = GatesConfig::default();
    cfg.tables
        .insert("es_proces_events".into(), GateRules::default());
    let err = Gates::new(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("es_proces_events") && err.contains("es_process_events"),
        "{err}"
    );
    let mut rules = GateRules::default();
    rules.sample = Some(0);
    assert!(Gates::new(&config(rules)).is_err());
    let mut rules = GateRules::default();
    rules.rate = Some(BucketConfig {
        per_second: -1.0,
        burst: None,
    });
    assert!(Gates::new(&config(rules)).is_err());
}

/// Global and table rules merge for processes (one walk of the executable)
/// but stay per scope for targets, where "all targets muted" is judged
/// within one scope.
#[test]
fn global_and_table_rules_merge_for_processes_and_not_for_targets() {
    let mut config = GatesConfig::keep_everything();
    config.global.mute.process = path_rules(&["/bin/global"], &[], &[]);
    config.global.mute.target = path_rules(&[], &["/g/"], &[]);
    let mut table = GateRules::default();
    table.mute.process = path_rules(&[], &["/opt/table/"], &[]);
    table.mute.target = path_rules(&[], &["/t/"], &[]);
    config
        .tables
        .insert(ES_PROCESS_FILE_EVENTS.name.to_string(), table);
    let mut gates = Gates::new(&config).unwrap();
    let event = |exe: &'static str, a: &'static str, b: Option<&'static str>| GateEvent {
        table: &ES_PROCESS_FILE_EVENTS,
        is_open: false,
        process_path: Some(exe.as_bytes()),
        pid: Some(1),
        targets: [Some(a.as_bytes()), b.map(str::as_bytes)],
        time_ns: 0,
    };
    assert!(
        !gates.admit(&event("/bin/global", "/x", None)),
        "global process rule"
    );
    assert!(
        !gates.admit(&event("/opt/table/x", "/x", None)),
        "table process rule"
    );
    assert!(gates.admit(&event("/bin/other", "/x", None)));
    assert!(
        !gates.admit(&event("/bin/other", "/g/a", Some("/g/b"))),
        "all muted globally"
    );
    assert!(
        !gates.admit(&event("/bin/other", "/t/a", Some("/t/b"))),
        "all muted by the table"
    );
    assert!(
        gates.admit(&event("/bin/other", "/g/a", Some("/t/b"))),
        "each scope sees one unmuted target"
    );
    // Another table sees only the global rules.
    let other = GateEvent {
        table: &ES_PROCESS_EVENTS,
        ..event("/opt/table/x", "/t/a", None)
    };
    assert!(gates.admit(&other));
    assert_eq!(
        gates
            .counters()
            .dropped(&ES_PROCESS_FILE_EVENTS, DropReason::Muted),
        4
    );
}
