//! The cost of the gates per event: muting at 10 to 10,000 rules, and the
//! token buckets.
//!
//! Events are shaped like the firehose: an acting process's executable and
//! one or two target paths 60–200 bytes long, from the synthetic generator's
//! path distribution. Almost none of them match a rule, which is the costly
//! case: every matcher has to look.
//!
//! The rule mix at N rules: 45% exact paths, 45% prefixes, 10% globs (of
//! which most are `**/*.ext` and `**/name` kinds and 10 need a regex). Half of
//! each kind is on the process, half on targets.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_ingest::gates::config::{
    BucketConfig, GateRules, GatesConfig, ProcessBucketConfig, ProcessKey,
};
use sluice_ingest::gates::{GateEvent, Gates};
use sluice_ingest::synthetic::SplitMix64;
use sluice_schemas::ES_PROCESS_FILE_EVENTS;

const EVENTS: usize = 4096;

fn paths(seed: u64) -> Vec<(String, String, String)> {
    let roots = [
        "/Users/alice/Library/Caches/com.apple.Safari/WebKitCache/Version 16/Records",
        "/private/var/folders/7x/k2l1z9xj3qb5v6m0d8w4c2yh0000gn/T/com.apple.mdworker_shared",
        "/System/Library/Frameworks/AppKit.framework/Versions/C/Resources/English.lproj",
        "/Users/alice/src/project/target/debug/.fingerprint",
    ];
    let exes = [
        "/usr/libexec/xpcproxy",
        "/bin/zsh",
        "/Applications/Slack.app/Contents/MacOS/Slack",
        "/usr/bin/git",
    ];
    let mut rng = SplitMix64::new(seed);
    (0..EVENTS)
        .map(|_| {
            let root = roots[rng.below(roots.len() as u64) as usize];
            let target = format!(
                "{root}/{:08x}/{:016x}.db",
                rng.next_u64() as u32,
                rng.next_u64()
            );
            let dest = format!("{root}/{:016x}.tmp", rng.next_u64());
            (
                exes[rng.below(exes.len() as u64) as usize].to_string(),
                target,
                dest,
            )
        })
        .collect()
}

fn rules(n: usize) -> GatesConfig {
    let mut global = GateRules::default();
    for i in 0..n {
        let (process, target) = (&mut global.mute.process, &mut global.mute.target);
        let to_process = i % 2 == 0;
        match i % 20 {
            0..=8 => {
                let p = format!("/usr/libexec/daemon{i}/bin/tool{i}");
                if to_process {
                    process.paths.push(p)
                } else {
                    target.paths.push(p)
                }
            }
            9..=17 => {
                let p = format!("/Users/shared/Library/Caches/com.vendor{i}.app/");
                if to_process {
                    process.prefixes.push(p)
                } else {
                    target.prefixes.push(p)
                }
            }
            _ => {
                let g = if i < 200 {
                    format!("/Applications/App{i}.app/Contents/*/*.plist")
                } else if i % 40 == 18 {
                    format!("**/*.ext{i}")
                } else {
                    format!("**/lockfile{i}")
                };
                if to_process {
                    process.globs.push(g)
                } else {
                    target.globs.push(g)
                }
            }
        }
    }
    GatesConfig {
        open_events: true,
        default_mutes: false,
        global,
        tables: Default::default(),
    }
}

fn admit_all(gates: &mut Gates, events: &[(String, String, String)]) -> usize {
    let mut kept = 0;
    for (i, (exe, target, dest)) in events.iter().enumerate() {
        let event = GateEvent {
            table: &ES_PROCESS_FILE_EVENTS,
            is_open: false,
            process_path: Some(exe.as_bytes()),
            pid: Some(100 + (i % 64) as i64),
            targets: [
                Some(target.as_bytes()),
                if i % 4 == 0 {
                    Some(dest.as_bytes())
                } else {
                    None
                },
            ],
            time_ns: 1_714_564_800_000_000_000 + i as i64 * 1000,
        };
        kept += usize::from(gates.admit(&event));
    }
    kept
}

fn muting(c: &mut Criterion) {
    let events = paths(1);
    let mut group = c.benchmark_group("gates_muting");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for n in [10, 100, 1_000, 10_000] {
        let mut gates = Gates::new(&rules(n)).expect("rules compile");
        assert!(
            admit_all(&mut gates, &events) > EVENTS * 9 / 10,
            "almost nothing matches"
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(admit_all(&mut gates, black_box(&events))))
        });
    }
    group.finish();
}

fn rate_limiting(c: &mut Criterion) {
    let events = paths(2);
    let mut group = c.benchmark_group("gates_rate_limit");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let mut config = GatesConfig::keep_everything();
    config.global.rate = Some(BucketConfig {
        per_second: 1e9,
        burst: None,
    });
    config.global.per_process = Some(ProcessBucketConfig {
        per_second: 1e9,
        burst: None,
        key: ProcessKey::Path,
    });
    let table = GateRules {
        rate: Some(BucketConfig {
            per_second: 1e9,
            burst: None,
        }),
        ..GateRules::default()
    };
    config
        .tables
        .insert(ES_PROCESS_FILE_EVENTS.name.to_string(), table);
    let mut gates = Gates::new(&config).expect("config");
    group.bench_function("global_table_and_per_process_buckets", |b| {
        b.iter(|| black_box(admit_all(&mut gates, black_box(&events))))
    });
    let mut none = Gates::keep_everything();
    group.bench_function("no_rules_baseline", |b| {
        b.iter(|| black_box(admit_all(&mut none, black_box(&events))))
    });
    group.finish();
}

criterion_group!(benches, muting, rate_limiting);
criterion_main!(benches);
