//! The `[gates]` section of sluice's TOML config.
//!
//! ```toml
//! [gates]
//! open_events = false          # NOTIFY_OPEN and open events from any source
//! default_mutes = true         # mute file events of the noisiest macOS daemons
//!
//! [gates.global.mute.process]  # by the acting process's executable
//! prefixes = ["/System/Library/PrivateFrameworks/SkyLight.framework/"]
//!
//! [gates.global.mute.target]   # by the paths an event names
//! prefixes = ["/private/var/folders/"]
//!
//! [gates.global.rate]          # token bucket over everything
//! per_second = 50000
//! burst = 100000
//!
//! [gates.tables.es_process_file_events]
//! sample = 10                  # keep 1 in 10
//! per_process = { per_second = 2000, burst = 5000, key = "path" }
//!
//! [gates.tables.es_process_file_events.osquery]   # an osquery FIM config, as is
//! file_paths = { homes = ["/Users/%/Documents/%%"] }
//! exclude_paths = { homes = ["/Users/%/Documents/Cache/%%"] }
//! ```
//!
//! Every key is optional; an empty config keeps everything except open
//! events and the default mutes. Unknown keys are errors, so a typo cannot
//! silently turn a rule off.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole `[gates]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatesConfig {
    /// Collect open events (ES `NOTIFY_OPEN`, and open events from any
    /// source). Off by default: on a busy Mac they are most of the stream.
    pub open_events: bool,
    /// Mute the file events of the noisy macOS daemons listed in
    /// [`super::DEFAULT_MUTED_PROCESSES`]. On by default.
    pub default_mutes: bool,
    /// Rules for every table.
    pub global: GateRules,
    /// Rules for one table each, keyed by table name; they apply after the
    /// global ones.
    pub tables: BTreeMap<String, GateRules>,
}

impl Default for GatesConfig {
    fn default() -> Self {
        Self {
            open_events: false,
            default_mutes: true,
            global: GateRules::default(),
            tables: BTreeMap::new(),
        }
    }
}

impl GatesConfig {
    /// A config that keeps every event: open events on, no default mutes,
    /// no rules. What the library uses unless told otherwise.
    pub fn keep_everything() -> Self {
        Self {
            open_events: true,
            default_mutes: false,
            ..Self::default()
        }
    }
}

/// The rules of one scope (global, or one table).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GateRules {
    /// What to mute.
    pub mute: MuteRules,
    /// Target allow-list ("inverted muting"): when it has any rule, an event
    /// is kept only if one of its target paths matches.
    pub allow: AllowRules,
    /// osquery FIM syntax: `file_paths` joins the allow-list and
    /// `exclude_paths` the target mutes.
    pub osquery: OsqueryPaths,
    /// A token bucket over the scope's events.
    pub rate: Option<BucketConfig>,
    /// One token bucket per process.
    pub per_process: Option<ProcessBucketConfig>,
    /// Keep 1 event in N (N ≥ 1).
    pub sample: Option<u32>,
}

/// Mute rules by acting process and by target path.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MuteRules {
    /// Mute every event of a process whose executable matches (ES's
    /// `mute_path` for processes).
    pub process: PathRules,
    /// Mute an event when every path it names matches (ES target muting).
    pub target: PathRules,
}

/// Allow-list rules by target path.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AllowRules {
    /// Keep an event only when one of the paths it names matches.
    pub target: PathRules,
}

/// Paths matched literally, by prefix, or by glob (`*` and `?` stay within
/// one path component, `**` crosses them).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PathRules {
    /// Exact paths.
    pub paths: Vec<String>,
    /// Path prefixes.
    pub prefixes: Vec<String>,
    /// Glob patterns.
    pub globs: Vec<String>,
}

impl PathRules {
    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.prefixes.is_empty() && self.globs.is_empty()
    }
}

/// The two path sections of an osquery FIM config, category → patterns.
/// `%` matches within one level, `%%` recursively (osquery's wildcard rules).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OsqueryPaths {
    /// Paths to keep events for.
    pub file_paths: BTreeMap<String, Vec<String>>,
    /// Paths to mute among those.
    pub exclude_paths: BTreeMap<String, Vec<String>>,
}

/// A token bucket: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Events per second, sustained.
    pub per_second: f64,
    /// Events allowed at once after a quiet spell; defaults to one second's
    /// worth.
    pub burst: Option<f64>,
}

/// How per-process buckets tell processes apart.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProcessKey {
    /// By executable path: all instances of a program share a bucket.
    #[default]
    Path,
    /// By pid: each process has its own.
    Pid,
}

/// A token bucket per process.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessBucketConfig {
    /// Events per second, sustained, per process.
    pub per_second: f64,
    /// Burst per process; defaults to one second's worth.
    pub burst: Option<f64>,
    /// Whether processes are told apart by path (default) or pid.
    #[serde(default)]
    pub key: ProcessKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Root {
        gates: GatesConfig,
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n")
            .collect();
        let root: Root = toml::from_str(&example).expect("example parses");
        let g = root.gates;
        assert!(!g.open_events && g.default_mutes);
        assert_eq!(g.global.mute.target.prefixes, vec!["/private/var/folders/"]);
        let files = &g.tables["es_process_file_events"];
        assert_eq!(files.sample, Some(10));
        assert_eq!(files.per_process.unwrap().key, ProcessKey::Path);
        assert_eq!(
            files.osquery.file_paths["homes"],
            vec!["/Users/%/Documents/%%"]
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<Root>("[gates]\nopen_event = true\n")
            .err()
            .expect("a typo is refused");
        assert!(err.to_string().contains("open_event"), "{err}");
    }
}
