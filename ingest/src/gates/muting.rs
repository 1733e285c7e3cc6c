//! Path muting, compiled once and matched without looping over rules.
//!
//! Literal paths go into a hash set, prefixes into one anchored
//! Aho-Corasick automaton, and globs into one `GlobSet`. Matching a path is
//! a hash lookup plus one pass of each automaton over the path's bytes, so
//! the cost per event hardly grows with the number of rules.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, Anchored, Input, MatchKind, StartKind};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::GateConfigError;
use super::config::PathRules;
use super::osquery_paths::TranslatedRule;

/// A compiled set of path rules.
#[derive(Debug, Clone, Default)]
pub struct PathMatcher {
    literals: HashSet<Box<[u8]>, foldhash::fast::RandomState>,
    prefixes: Option<AhoCorasick>,
    /// Globs that start with a literal directory (`/Applications/*.app/…`):
    /// the glob set runs only when a path starts with one of those
    /// directories, which the automaton tells in one anchored pass.
    rooted_globs: Option<(AhoCorasick, GlobSet)>,
    /// Globs that start with a wildcard (`**/*.tmp`); globset answers most
    /// of these with a hash lookup on the file name or extension.
    floating_globs: Option<GlobSet>,
    rules: usize,
}

/// The literal text of a glob before its first wildcard, cut back to the
/// last `/`, so that it is a directory prefix that every match starts with.
fn literal_root(glob: &str) -> &str {
    let wildcard = glob.find(['*', '?', '[', '{', '\\']).unwrap_or(glob.len());
    match glob[..wildcard].rfind('/') {
        Some(slash) => &glob[..=slash],
        None => "",
    }
}

fn glob_set(globs: &[&String]) -> Result<Option<GlobSet>, GateConfigError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in globs {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| GateConfigError::Rule {
                rule: pattern.to_string(),
                reason: e.to_string(),
            })?;
        set.add(glob);
    }
    let set = set.build().map_err(|e| GateConfigError::Rule {
        rule: "globs".into(),
        reason: e.to_string(),
    })?;
    Ok(Some(set))
}

fn anchored_prefixes<I: AsRef<[u8]>>(
    prefixes: impl IntoIterator<Item = I>,
) -> Result<AhoCorasick, GateConfigError> {
    AhoCorasick::builder()
        .start_kind(StartKind::Anchored)
        .match_kind(MatchKind::LeftmostFirst)
        .build(prefixes)
        .map_err(|e| GateConfigError::Rule {
            rule: "prefixes".into(),
            reason: e.to_string(),
        })
}

impl PathMatcher {
    /// Compiles `rules` plus any already-translated ones (from osquery
    /// syntax or the default mute set).
    pub fn new(
        rules: &PathRules,
        translated: impl IntoIterator<Item = TranslatedRule>,
    ) -> Result<Self, GateConfigError> {
        let mut literals: Vec<String> = rules.paths.clone();
        let mut prefixes: Vec<String> = rules.prefixes.clone();
        let mut globs: Vec<String> = rules.globs.clone();
        for rule in translated {
            match rule {
                TranslatedRule::Literal(p) => literals.push(p),
                TranslatedRule::Prefix(p) => prefixes.push(p),
                TranslatedRule::Glob(p) => globs.push(p),
            }
        }
        let rules_count = literals.len() + prefixes.len() + globs.len();
        let prefixes = if prefixes.is_empty() {
            None
        } else {
            Some(anchored_prefixes(&prefixes)?)
        };
        let (rooted, floating): (Vec<&String>, Vec<&String>) =
            globs.iter().partition(|g| literal_root(g).len() > 1);
        let rooted_globs = match glob_set(&rooted)? {
            Some(set) => Some((
                anchored_prefixes(rooted.iter().map(|g| literal_root(g)))?,
                set,
            )),
            None => None,
        };
        Ok(Self {
            literals: literals
                .into_iter()
                .map(|s| s.into_bytes().into_boxed_slice())
                .collect(),
            prefixes,
            rooted_globs,
            floating_globs: glob_set(&floating)?,
            rules: rules_count,
        })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// How many rules were compiled.
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Whether `path` matches any rule.
    #[inline]
    pub fn matches(&self, path: &[u8]) -> bool {
        if self.rules == 0 {
            return false;
        }
        if self.literals.contains(path) {
            return true;
        }
        let anchored = Input::new(path).anchored(Anchored::Yes);
        if let Some(ac) = &self.prefixes
            && ac.is_match(anchored.clone())
        {
            return true;
        }
        if let Some((roots, set)) = &self.rooted_globs
            && roots.is_match(anchored)
            && glob_matches(set, path)
        {
            return true;
        }
        match &self.floating_globs {
            Some(set) => glob_matches(set, path),
            None => false,
        }
    }
}

#[cfg(unix)]
fn glob_matches(set: &GlobSet, path: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    set.is_match(std::path::Path::new(std::ffi::OsStr::from_bytes(path)))
}

#[cfg(not(unix))]
fn glob_matches(set: &GlobSet, path: &[u8]) -> bool {
    std::str::from_utf8(path).is_ok_and(|p| set.is_match(p))
}

/// The muting rules of one scope: by acting process, by target, and the
/// target allow-list.
#[derive(Debug, Clone, Default)]
pub struct PathMuter {
    /// Rules on the acting process's executable.
    pub process: PathMatcher,
    /// Target mute rules.
    pub target_mute: PathMatcher,
    /// Target allow-list (inverted muting).
    pub target_allow: PathMatcher,
}

impl PathMuter {
    /// Whether no rule of any kind is set.
    pub fn is_empty(&self) -> bool {
        self.process.is_empty() && self.target_mute.is_empty() && self.target_allow.is_empty()
    }

    /// Whether an event is muted.
    ///
    /// - A process rule mutes every event of a matching process.
    /// - Target rules follow ES target muting: with no allow-list, an event
    ///   is muted only when *all* its target paths are muted; with an
    ///   allow-list, it is kept when *any* target matches the allow-list
    ///   (and is not itself muted).
    /// - Target rules do not apply to events that name no target.
    #[inline]
    pub fn is_muted(&self, process_path: Option<&[u8]>, targets: &[&[u8]]) -> bool {
        if let Some(path) = process_path
            && self.process.matches(path)
        {
            return true;
        }
        if targets.is_empty() || (self.target_mute.is_empty() && self.target_allow.is_empty()) {
            return false;
        }
        let allow_all = self.target_allow.is_empty();
        !targets
            .iter()
            .any(|t| (allow_all || self.target_allow.matches(t)) && !self.target_mute.matches(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(paths: &[&str], prefixes: &[&str], globs: &[&str]) -> PathRules {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        PathRules {
            paths: own(paths),
            prefixes: own(prefixes),
            globs: own(globs),
        }
    }

    #[test]
    fn literal_prefix_and_glob_rules() {
        let m = PathMatcher::new(
            &rules(
                &["/etc/hosts"],
                &["/private/var/folders/"],
                &["/Users/*/Library/Caches/**", "**/*.tmp"],
            ),
            [],
        )
        .unwrap();
        assert!(m.matches(b"/etc/hosts"));
        assert!(!m.matches(b"/etc/hosts.bak"));
        assert!(m.matches(b"/private/var/folders/7x/abc/T/x"));
        assert!(!m.matches(b"/private/var/log/x"));
        assert!(m.matches(b"/Users/alice/Library/Caches/com.apple.Safari/x.db"));
        assert!(
            !m.matches(b"/Users/alice/extra/Library/Caches/x"),
            "* stays within one component"
        );
        assert!(m.matches(b"/opt/build/a.tmp"));
        assert!(!m.matches(b"/opt/build/a.txt"));
        assert_eq!(m.rules(), 4);
    }

    #[test]
    fn a_rename_with_one_muted_path_is_kept_in_normal_mode() {
        let muter = PathMuter {
            target_mute: PathMatcher::new(&rules(&[], &["/tmp/"], &[]), []).unwrap(),
            ..Default::default()
        };
        assert!(!muter.is_muted(None, &[b"/tmp/a", b"/Users/alice/a"]));
        assert!(muter.is_muted(None, &[b"/tmp/a", b"/tmp/b"]));
        assert!(!muter.is_muted(None, &[]), "no targets, no target muting");
    }

    #[test]
    fn a_rename_with_one_allowed_path_is_kept_in_inverted_mode() {
        let muter = PathMuter {
            target_allow: PathMatcher::new(&rules(&[], &["/tmp/"], &[]), []).unwrap(),
            ..Default::default()
        };
        assert!(!muter.is_muted(None, &[b"/tmp/a", b"/Users/alice/a"]));
        assert!(muter.is_muted(None, &[b"/var/a", b"/Users/alice/a"]));
    }

    #[test]
    fn process_rules_mute_everything_the_process_does() {
        let muter = PathMuter {
            process: PathMatcher::new(&rules(&["/usr/sbin/cfprefsd"], &[], &[]), []).unwrap(),
            ..Default::default()
        };
        assert!(muter.is_muted(Some(b"/usr/sbin/cfprefsd"), &[b"/Users/alice/x"]));
        assert!(!muter.is_muted(Some(b"/bin/zsh"), &[b"/Users/alice/x"]));
    }

    #[test]
    fn glob_roots_are_directory_prefixes() {
        assert_eq!(literal_root("/Applications/*.app/x"), "/Applications/");
        assert_eq!(
            literal_root("/Users/alice/Library/Caches/**"),
            "/Users/alice/Library/Caches/"
        );
        assert_eq!(literal_root("/var/log/sys*.log"), "/var/log/");
        assert_eq!(literal_root("**/*.tmp"), "");
        assert_eq!(literal_root("/*/x"), "/");
    }

    #[test]
    fn bad_globs_are_config_errors() {
        let err = PathMatcher::new(&rules(&[], &[], &["/a/[b"]), []).unwrap_err();
        assert!(err.to_string().contains("/a/[b"), "{err}");
    }
}
