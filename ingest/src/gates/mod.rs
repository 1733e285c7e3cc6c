//! Gates: narrow the firehose cheaply, and account for every event dropped.
//!
//! A decoder resolves each event into a row, then asks the gates whether to
//! keep it before the row reaches its table's builder. The gates look at
//! what every source can say about an event ([`GateEvent`]: its table, the
//! acting process, the paths it names, its time) and answer yes or no,
//! counting each no under a [`DropReason`]. In order:
//!
//! 1. **Open events** are dropped unless the config turns them on: on a busy
//!    Mac they are most of the stream (counted as `muted`).
//! 2. **Muting** by the acting process's executable and by target path,
//!    global rules first, then the table's ([`muting`]).
//! 3. **Sampling**: keep 1 in N for a noisy table.
//! 4. **Rate limits**: token buckets over everything, per table, and per
//!    process ([`rate`]). An event passes only if every bucket it meets has
//!    a token, and only then are the tokens spent.
//!
//! Rules are compiled once, when the gates are built; nothing on the
//! per-event path loops over rules or allocates (except the first event of
//! each process under a per-process limit).

pub mod config;
pub mod drops;
pub mod muting;
pub mod osquery_paths;
pub mod rate;
pub mod seq;

pub use config::GatesConfig;
pub use drops::{DropCounters, DropReason, table_slot};

use sluice_schemas::{ES_PROCESS_FILE_EVENTS, FILE_EVENTS, PROCESS_FILE_EVENTS, TABLES, TableDef};

use std::sync::Arc;

use config::{GateRules, PathRules};
use muting::{PathMatcher, PathMuter};
use osquery_paths::{TranslatedRule, translate};
use rate::{ProcessBuckets, Sampler, TokenBucket};

/// The noisiest macOS system daemons, by executable path. With
/// `default_mutes` on (the default) their events are muted in the
/// file-event tables (`es_process_file_events`, `process_file_events`,
/// `file_events`), where they open, write and close thousands of files a
/// minute. Their process events (exec, fork, exit) are rare and are kept.
/// Turn `default_mutes` off, or add your own rules, to change this.
pub const DEFAULT_MUTED_PROCESSES: &[&str] = &[
    "/System/Library/Frameworks/CoreServices.framework/Versions/A/Frameworks/Metadata.framework/Versions/A/Support/mds",
    "/System/Library/Frameworks/CoreServices.framework/Versions/A/Frameworks/Metadata.framework/Versions/A/Support/mds_stores",
    "/System/Library/Frameworks/CoreServices.framework/Versions/A/Frameworks/Metadata.framework/Versions/A/Support/mdworker_shared",
    "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Support/mds",
    "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Support/mds_stores",
    "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Support/mdworker_shared",
    "/usr/libexec/logd",
    "/usr/sbin/cfprefsd",
    "/usr/libexec/trustd",
    "/usr/libexec/syspolicyd",
    "/usr/sbin/distnoted",
    "/usr/sbin/notifyd",
    "/usr/libexec/runningboardd",
    "/usr/libexec/containermanagerd",
    "/usr/libexec/lsd",
    "/usr/libexec/fseventsd",
    "/System/Library/CoreServices/launchservicesd",
    "/System/Library/PrivateFrameworks/SkyLight.framework/Versions/A/Resources/WindowServer",
    "/System/Library/PrivateFrameworks/CloudKitDaemon.framework/Support/cloudd",
    "/usr/libexec/opendirectoryd",
];

/// A config the gates cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum GateConfigError {
    /// A path rule does not compile.
    #[error("gates: rule {rule:?} is not valid: {reason}")]
    Rule {
        /// The rule as written.
        rule: String,
        /// Why it was refused.
        reason: String,
    },
    /// `[gates.tables.X]` names no table.
    #[error("gates: there is no table {name:?}; the tables are: {known}")]
    UnknownTable {
        /// The name as written.
        name: String,
        /// The tables there are.
        known: String,
    },
    /// A rate or sample value out of range.
    #[error("gates: {key} must be {expected}, not {value}")]
    Range {
        /// The key.
        key: String,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        value: String,
    },
}

/// What the gates need to know of one event. Every source can fill it.
#[derive(Debug, Clone, Copy)]
pub struct GateEvent<'a> {
    /// The table the event would go to.
    pub table: &'static TableDef,
    /// Whether it is an open event (off unless enabled).
    pub is_open: bool,
    /// The acting process's executable.
    pub process_path: Option<&'a [u8]>,
    /// The acting process's pid.
    pub pid: Option<i64>,
    /// The paths the event names (target, destination); empty ones are
    /// ignored.
    pub targets: [Option<&'a [u8]>; 2],
    /// Event time, ns since the epoch; drives the token buckets.
    pub time_ns: i64,
}

/// The compiled limits of one scope (its muting goes into [`SlotMuting`]).
#[derive(Debug, Clone, Default)]
struct ScopeGates {
    sampler: Option<Sampler>,
    bucket: Option<TokenBucket>,
    per_process: Option<ProcessBuckets>,
}

impl ScopeGates {
    fn is_limited(&self) -> bool {
        self.sampler.is_some() || self.bucket.is_some() || self.per_process.is_some()
    }
}

/// One scope's compiled rules, before they are merged per table.
struct CompiledScope {
    limits: ScopeGates,
    /// The scope's muter; its process matcher is used on its own only when
    /// the other scope has no process rules.
    muter: PathMuter,
    /// The scope's process rules, to merge with the other scope's.
    process_rules: Vec<TranslatedRule>,
}

/// What muting applies to the events of one table: the global rules and
/// the table's, merged where that keeps their meaning.
///
/// Process rules mute on any match, so the global and the table's go into
/// one matcher and the executable is walked once. Target rules mute only
/// when all of an event's targets are muted within one scope, so the
/// scopes stay apart (most configs have target rules in one scope only).
#[derive(Debug, Clone, Default)]
struct SlotMuting {
    process: Option<Arc<PathMatcher>>,
    targets: Vec<Arc<PathMuter>>,
    /// Whether any sampler or bucket applies to the table.
    limited: bool,
}

/// A scope's [`PathRules`] as translated rules.
fn translated_rules(rules: &PathRules) -> impl Iterator<Item = TranslatedRule> + '_ {
    let literals = rules.paths.iter().cloned().map(TranslatedRule::Literal);
    let prefixes = rules.prefixes.iter().cloned().map(TranslatedRule::Prefix);
    let globs = rules.globs.iter().cloned().map(TranslatedRule::Glob);
    literals.chain(prefixes).chain(globs)
}

impl CompiledScope {
    fn new(
        scope: &str,
        rules: &GateRules,
        default_process_mutes: bool,
    ) -> Result<Self, GateConfigError> {
        let translate_all =
            |sections: &std::collections::BTreeMap<String, Vec<String>>| -> Vec<TranslatedRule> {
                sections.values().flatten().map(|p| translate(p)).collect()
            };
        let defaults: Vec<TranslatedRule> = if default_process_mutes {
            DEFAULT_MUTED_PROCESSES
                .iter()
                .map(|p| TranslatedRule::Literal(p.to_string()))
                .collect()
        } else {
            Vec::new()
        };
        let process_rules: Vec<TranslatedRule> = translated_rules(&rules.mute.process)
            .chain(defaults.iter().cloned())
            .collect();
        let muter = PathMuter {
            process: PathMatcher::new(&PathRules::default(), process_rules.iter().cloned())?,
            target_mute: PathMatcher::new(
                &rules.mute.target,
                translate_all(&rules.osquery.exclude_paths),
            )?,
            target_allow: PathMatcher::new(
                &rules.allow.target,
                translate_all(&rules.osquery.file_paths),
            )?,
        };
        let check_rate =
            |key: &str, per_second: f64, burst: Option<f64>| -> Result<(), GateConfigError> {
                if !(per_second.is_finite() && per_second >= 0.0) {
                    return Err(GateConfigError::Range {
                        key: format!("{scope}.{key}.per_second"),
                        expected: "a number ≥ 0",
                        value: per_second.to_string(),
                    });
                }
                match burst {
                    Some(b) if !(b.is_finite() && b >= 1.0) => Err(GateConfigError::Range {
                        key: format!("{scope}.{key}.burst"),
                        expected: "a number ≥ 1",
                        value: b.to_string(),
                    }),
                    _ => Ok(()),
                }
            };
        if let Some(r) = &rules.rate {
            check_rate("rate", r.per_second, r.burst)?;
        }
        if let Some(r) = &rules.per_process {
            check_rate("per_process", r.per_second, r.burst)?;
        }
        if rules.sample == Some(0) {
            return Err(GateConfigError::Range {
                key: format!("{scope}.sample"),
                expected: "at least 1",
                value: "0".into(),
            });
        }
        Ok(Self {
            limits: ScopeGates {
                sampler: rules.sample.filter(|&n| n > 1).map(Sampler::new),
                bucket: rules.rate.map(TokenBucket::new),
                per_process: rules.per_process.map(ProcessBuckets::new),
            },
            muter,
            process_rules,
        })
    }
}

/// The gates of every table, with their counters.
#[derive(Debug, Clone)]
pub struct Gates {
    open_events: bool,
    global: ScopeGates,
    tables: Vec<ScopeGates>,
    /// Per table slot: the muting that applies to it.
    muting: Vec<SlotMuting>,
    counters: DropCounters,
    open_dropped: u64,
}

impl Default for Gates {
    /// Gates that keep everything (see [`GatesConfig::keep_everything`]).
    fn default() -> Self {
        Self::keep_everything()
    }
}

impl Gates {
    /// Gates that keep every event and only count.
    pub fn keep_everything() -> Self {
        Self {
            open_events: true,
            global: ScopeGates::default(),
            tables: vec![ScopeGates::default(); TABLES.len()],
            muting: vec![SlotMuting::default(); TABLES.len()],
            counters: DropCounters::default(),
            open_dropped: 0,
        }
    }

    /// Compiles a config.
    pub fn new(config: &GatesConfig) -> Result<Self, GateConfigError> {
        for name in config.tables.keys() {
            if sluice_schemas::table(name).is_none() {
                let known: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
                return Err(GateConfigError::UnknownTable {
                    name: name.clone(),
                    known: known.join(", "),
                });
            }
        }
        let mut global = CompiledScope::new("gates.global", &config.global, false)?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for def in TABLES {
            let is_file_table = [&ES_PROCESS_FILE_EVENTS, &PROCESS_FILE_EVENTS, &FILE_EVENTS]
                .iter()
                .any(|t| t.name == def.name);
            let rules = config.tables.get(def.name).cloned().unwrap_or_default();
            tables.push(CompiledScope::new(
                &format!("gates.tables.{}", def.name),
                &rules,
                config.default_mutes && is_file_table,
            )?);
        }
        let muting = merge_muting(&mut global, &mut tables)?;
        if config.open_events {
            tracing::warn!(
                "open events are on: on a busy Mac they are most of the stream (about a million a minute with NOTIFY_OPEN), \
                 and they cost CPU, memory and disk in proportion; mute noisy paths or rate-limit them"
            );
        }
        Ok(Self {
            open_events: config.open_events,
            global: global.limits,
            tables: tables.into_iter().map(|t| t.limits).collect(),
            muting,
            counters: DropCounters::default(),
            open_dropped: 0,
        })
    }

    /// Whether open events are collected.
    pub fn open_events(&self) -> bool {
        self.open_events
    }

    /// Decides whether to keep `event`, and counts the decision.
    #[inline]
    pub fn admit(&mut self, event: &GateEvent<'_>) -> bool {
        let slot = table_slot(event.table);
        match self.verdict(slot, event) {
            None => {
                self.counters.keep(slot);
                true
            }
            Some(reason) => {
                self.counters.drop_n(slot, reason, 1);
                false
            }
        }
    }

    #[inline]
    fn verdict(&mut self, slot: usize, event: &GateEvent<'_>) -> Option<DropReason> {
        if event.is_open && !self.open_events {
            self.open_dropped += 1;
            return Some(DropReason::Muted);
        }
        let muting = &self.muting[slot];
        if let (Some(matcher), Some(path)) = (&muting.process, event.process_path)
            && matcher.matches(path)
        {
            return Some(DropReason::Muted);
        }
        if !muting.targets.is_empty() {
            let mut targets: [&[u8]; 2] = [&[], &[]];
            let mut n = 0;
            for t in event.targets.iter().flatten() {
                if !t.is_empty() {
                    targets[n] = t;
                    n += 1;
                }
            }
            let targets = &targets[..n];
            if muting.targets.iter().any(|m| m.targets_muted(targets)) {
                return Some(DropReason::Muted);
            }
        }
        if muting.limited {
            self.limit(slot, event)
        } else {
            None
        }
    }

    /// Sampling and token buckets, for tables that have any.
    fn limit(&mut self, slot: usize, event: &GateEvent<'_>) -> Option<DropReason> {
        let table = &mut self.tables[slot];
        let global = &mut self.global;
        for sampler in [&mut table.sampler, &mut global.sampler]
            .into_iter()
            .flatten()
        {
            if !sampler.keep() {
                return Some(DropReason::Sampled);
            }
        }
        // Every bucket the event meets must have a token before any is spent,
        // so a refusal by one does not cost the others.
        let now = event.time_ns;
        let mut buckets: [Option<&mut TokenBucket>; 4] = [
            global.bucket.as_mut(),
            table.bucket.as_mut(),
            global
                .per_process
                .as_mut()
                .and_then(|p| p.bucket(event.process_path, event.pid)),
            table
                .per_process
                .as_mut()
                .and_then(|p| p.bucket(event.process_path, event.pid)),
        ];
        if buckets.iter_mut().flatten().any(|b| !b.has_token(now)) {
            return Some(DropReason::RateLimited);
        }
        buckets.iter_mut().flatten().for_each(|b| b.spend());
        None
    }

    /// Counts `n` events of `table` dropped outside the gates (kernel gaps,
    /// backpressure).
    pub fn record_drops(&mut self, table: &TableDef, reason: DropReason, n: u64) {
        self.counters.drop_n(table_slot(table), reason, n);
    }

    /// The counters so far.
    pub fn counters(&self) -> &DropCounters {
        &self.counters
    }

    /// Open events dropped because open events are off (part of `muted`).
    pub fn open_dropped(&self) -> u64 {
        self.open_dropped
    }
}

/// Merges the global muting with each table's into one [`SlotMuting`] per
/// table slot. Matchers are shared, not copied: a table with no process
/// rules of its own uses the global matcher, and tables with the same
/// process rules (the default mutes) share one merged matcher.
fn merge_muting(
    global: &mut CompiledScope,
    tables: &mut [CompiledScope],
) -> Result<Vec<SlotMuting>, GateConfigError> {
    let global_process = Arc::new(std::mem::take(&mut global.muter.process));
    let global_muter = std::mem::take(&mut global.muter);
    let global_targets = global_muter
        .has_target_rules()
        .then(|| Arc::new(global_muter));
    let mut merged: Vec<(Vec<TranslatedRule>, Arc<PathMatcher>)> = Vec::new();
    let mut slots = Vec::with_capacity(tables.len());
    for table in tables.iter_mut() {
        let process = match (
            global.process_rules.is_empty(),
            table.process_rules.is_empty(),
        ) {
            (true, true) => None,
            (false, true) => Some(Arc::clone(&global_process)),
            (true, false) => Some(Arc::new(std::mem::take(&mut table.muter.process))),
            (false, false) => {
                match merged
                    .iter()
                    .find(|(rules, _)| *rules == table.process_rules)
                {
                    Some((_, matcher)) => Some(Arc::clone(matcher)),
                    None => {
                        let matcher = Arc::new(PathMatcher::new(
                            &PathRules::default(),
                            global
                                .process_rules
                                .iter()
                                .chain(&table.process_rules)
                                .cloned(),
                        )?);
                        merged.push((table.process_rules.clone(), Arc::clone(&matcher)));
                        Some(matcher)
                    }
                }
            }
        };
        let mut targets: Vec<Arc<PathMuter>> = global_targets.iter().cloned().collect();
        if table.muter.has_target_rules() {
            let mut muter = std::mem::take(&mut table.muter);
            muter.process = PathMatcher::default();
            targets.push(Arc::new(muter));
        }
        slots.push(SlotMuting {
            process,
            targets,
            limited: global.limits.is_limited() || table.limits.is_limited(),
        });
    }
    Ok(slots)
}

/// Convenience for building [`PathRules`] from string slices.
pub fn path_rules(paths: &[&str], prefixes: &[&str], globs: &[&str]) -> PathRules {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    PathRules {
        paths: own(paths),
        prefixes: own(prefixes),
        globs: own(globs),
    }
}

#[cfg(test)]
mod tests;
