//! Path muting, compiled once and matched without looping over rules.
//!
//! Every rule that starts with literal bytes (exact paths, prefixes, and the
//! literal directory in front of a glob's first wildcard) goes into one
//! anchored Aho-Corasick automaton: a DFA (one table lookup per byte) while
//! its tables stay small, or a trie with its transitions packed together
//! for very large rule sets. Matching a path walks that trie once, byte by byte, and stops as
//! soon as the path leaves it, which for an unmuted path is usually a few
//! bytes in:
//!
//! - a state reached at the end of the path that carries an exact-path rule
//!   means the path is that rule;
//! - any state on the way that carries a prefix rule means the path starts
//!   with it;
//! - a state that carries a glob root means the path is under a glob's
//!   literal directory, and only then does the rooted glob set run.
//!
//! Globs that start with a wildcard (`**/*.tmp`, `**/.DS_Store`) cannot be in
//! the trie. The common shapes are answered with one hash lookup of the
//! path's extension or file name; anything else goes to one `GlobSet`.
//!
//! The cost per path is therefore the length of the walk plus at most two
//! hash lookups, and hardly grows with the number of rules.

use std::collections::HashSet;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::GateConfigError;
use super::config::PathRules;
use super::osquery_paths::TranslatedRule;

type ByteSet = HashSet<Box<[u8]>, foldhash::fast::RandomState>;

/// What a pattern in the trie stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrieRule {
    /// The whole path must equal the pattern.
    Exact,
    /// The path must start with the pattern.
    Prefix,
    /// The literal directory in front of a rooted glob: the path may match
    /// one of the rooted globs.
    GlobRoot,
}

/// Globs that start with a wildcard, split by how cheaply they can be told.
#[derive(Debug, Clone, Default)]
struct FloatingGlobs {
    /// `**/*.ext`: the file name's extension (after its last `.`).
    extensions: SuffixSet,
    /// `**/name`: the whole file name.
    file_names: SuffixSet,
    /// Every other shape.
    others: Option<GlobSet>,
}

/// Path endings of a few distinct lengths, each preceded by a separator
/// byte (`.` before an extension, `/` before a file name).
///
/// Neither extensions nor file names contain a `/` or (for extensions) a
/// `.`, so an ending that follows the separator and is in the set is exactly
/// the path's file name or extension: no scan for the last `/` or `.` is
/// needed. For each distinct length the check is one byte compare, and only
/// a path with the separator in the right place is hashed.
#[derive(Debug, Clone, Default)]
struct SuffixSet {
    separator: u8,
    lengths: Vec<usize>,
    endings: ByteSet,
}

impl SuffixSet {
    fn new(separator: u8) -> Self {
        Self {
            separator,
            ..Self::default()
        }
    }

    fn insert(&mut self, ending: &str) {
        if !self.lengths.contains(&ending.len()) {
            self.lengths.push(ending.len());
        }
        self.endings.insert(ending.as_bytes().into());
    }

    fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    #[inline]
    fn matches(&self, path: &[u8], separator_optional_at_start: bool) -> bool {
        self.lengths.iter().any(|&len| {
            let Some(at) = path.len().checked_sub(len) else {
                return false;
            };
            let separated = match at.checked_sub(1) {
                Some(before) => path[before] == self.separator,
                // A relative path that is only a file name.
                None => separator_optional_at_start,
            };
            separated && self.endings.contains(&path[at..])
        })
    }
}

impl FloatingGlobs {
    fn new(globs: &[&String]) -> Result<Self, GateConfigError> {
        let mut floating = FloatingGlobs {
            extensions: SuffixSet::new(b'.'),
            file_names: SuffixSet::new(b'/'),
            others: None,
        };
        let mut others = Vec::new();
        for glob in globs {
            // Validate every glob the same way, even the ones answered by a
            // hash lookup, so a typo is a config error either way.
            glob_set(&[glob])?;
            match glob.strip_prefix("**/") {
                Some(name) if is_plain_file_name(name) => floating.file_names.insert(name),
                Some(name)
                    if name.starts_with("*.")
                        && is_plain_file_name(&name[2..])
                        && !name[2..].contains('.') =>
                {
                    floating.extensions.insert(&name[2..])
                }
                _ => others.push(*glob),
            }
        }
        floating.others = glob_set(&others)?;
        Ok(floating)
    }

    fn is_empty(&self) -> bool {
        self.extensions.is_empty() && self.file_names.is_empty() && self.others.is_none()
    }

    #[inline]
    fn matches(&self, path: &[u8]) -> bool {
        self.file_names.matches(path, true)
            || self.extensions.matches(path, false)
            || self
                .others
                .as_ref()
                .is_some_and(|set| glob_matches(set, path))
    }
}

/// Whether `name` is a non-empty file name with no glob syntax in it.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['*', '?', '[', ']', '{', '}', '\\', '/'])
}

/// A compiled set of path rules.
#[derive(Debug, Clone, Default)]
pub struct PathMatcher {
    /// Exact paths, prefixes and glob roots, in one anchored trie.
    trie: Option<Trie>,
    /// What each trie pattern stands for, by pattern id.
    trie_rules: Vec<TrieRule>,
    /// Globs that start with a literal directory (`/Applications/*.app/…`),
    /// run only when the trie says the path is under one of those
    /// directories.
    rooted_globs: Option<GlobSet>,
    /// Globs that start with a wildcard.
    floating_globs: FloatingGlobs,
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
        let (rooted, floating): (Vec<&String>, Vec<&String>) =
            globs.iter().partition(|g| literal_root(g).len() > 1);

        let mut patterns: Vec<&[u8]> = Vec::new();
        let mut trie_rules = Vec::new();
        for (rule, texts) in [
            (
                TrieRule::Exact,
                literals.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
            (
                TrieRule::Prefix,
                prefixes.iter().map(String::as_str).collect(),
            ),
            (
                TrieRule::GlobRoot,
                rooted.iter().map(|g| literal_root(g)).collect(),
            ),
        ] {
            for text in texts {
                patterns.push(text.as_bytes());
                trie_rules.push(rule);
            }
        }
        let trie = if patterns.is_empty() {
            None
        } else {
            Some(Trie::new(&patterns)?)
        };
        Ok(Self {
            trie,
            trie_rules,
            rooted_globs: glob_set(&rooted)?,
            floating_globs: FloatingGlobs::new(&floating)?,
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
        if let Some(trie) = &self.trie {
            let walk = match trie {
                Trie::Dfa(dfa) => self.walk(dfa, path),
                Trie::Nfa(nfa) => self.walk(nfa, path),
            };
            match walk {
                Walk::Muted => return true,
                Walk::UnderGlobRoot => {
                    if self
                        .rooted_globs
                        .as_ref()
                        .is_some_and(|set| glob_matches(set, path))
                    {
                        return true;
                    }
                }
                Walk::NoMatch => {}
            }
        }
        !self.floating_globs.is_empty() && self.floating_globs.matches(path)
    }

    /// Walks `path` through the trie: one transition per byte, stopping as
    /// soon as no rule can match any more.
    #[inline]
    fn walk(&self, trie: &impl Automaton, path: &[u8]) -> Walk {
        let Ok(mut state) = trie.start_state(Anchored::Yes) else {
            return Walk::NoMatch;
        };
        let mut under_glob_root = false;
        // The start state matches only an empty pattern (an empty prefix
        // rule mutes everything).
        if trie.is_match(state)
            && self.state_mutes(trie, state, path.is_empty(), &mut under_glob_root)
        {
            return Walk::Muted;
        }
        for (i, &byte) in path.iter().enumerate() {
            state = trie.next_state(Anchored::Yes, state, byte);
            if trie.is_special(state) {
                if trie.is_dead(state) {
                    break;
                }
                if trie.is_match(state)
                    && self.state_mutes(trie, state, i + 1 == path.len(), &mut under_glob_root)
                {
                    return Walk::Muted;
                }
            }
        }
        if under_glob_root {
            Walk::UnderGlobRoot
        } else {
            Walk::NoMatch
        }
    }

    /// Whether a match state mutes the path: a prefix always does, an exact
    /// path only at the path's end. Glob roots are noted for later.
    #[inline]
    fn state_mutes(
        &self,
        trie: &impl Automaton,
        state: StateID,
        at_end: bool,
        under_glob_root: &mut bool,
    ) -> bool {
        for index in 0..trie.match_len(state) {
            match self.trie_rules[trie.match_pattern(state, index).as_usize()] {
                TrieRule::Prefix => return true,
                TrieRule::Exact if at_end => return true,
                TrieRule::Exact => {}
                TrieRule::GlobRoot => *under_glob_root = true,
            }
        }
        false
    }
}

/// The automaton behind the trie.
#[derive(Debug, Clone)]
enum Trie {
    Dfa(DFA),
    Nfa(NFA),
}

/// The DFA's tables grow with patterns × byte classes; past this many
/// pattern bytes the packed trie is used instead, so that 10,000 rules do
/// not cost tens of megabytes per matcher.
const DFA_MAX_PATTERN_BYTES: usize = 64 * 1024;

impl Trie {
    fn new(patterns: &[&[u8]]) -> Result<Self, GateConfigError> {
        let error = |e: aho_corasick::BuildError| GateConfigError::Rule {
            rule: "paths and prefixes".into(),
            reason: e.to_string(),
        };
        // Standard semantics keep walking after a match, so a prefix rule
        // does not hide a longer exact path, and the walk sees every rule
        // along the path.
        let pattern_bytes: usize = patterns.iter().map(|p| p.len()).sum();
        if pattern_bytes <= DFA_MAX_PATTERN_BYTES {
            let dfa = DFA::builder()
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Anchored)
                .byte_classes(true)
                .build(patterns)
                .map_err(error)?;
            Ok(Trie::Dfa(dfa))
        } else {
            let nfa = NFA::builder()
                .match_kind(MatchKind::Standard)
                .build(patterns)
                .map_err(error)?;
            Ok(Trie::Nfa(nfa))
        }
    }
}

/// What walking a path through the trie found.
enum Walk {
    /// An exact-path or prefix rule matched.
    Muted,
    /// No rule matched, but the path is under a rooted glob's directory.
    UnderGlobRoot,
    /// No rule can match.
    NoMatch,
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
    fn exact_paths_prefixes_and_glob_roots_share_one_trie() {
        let m = PathMatcher::new(
            &rules(
                &["/a", "/var/db/x"],
                &["/a/b/", "/var/"],
                &["/a/b/*.log", "/a/*/c"],
            ),
            [],
        )
        .unwrap();
        assert!(matches!(m.trie, Some(Trie::Dfa(_))));
        assert!(m.matches(b"/a"), "exact");
        assert!(!m.matches(b"/ab"), "an exact rule is not a prefix");
        assert!(m.matches(b"/a/b/anything"), "prefix");
        assert!(m.matches(b"/a/z/c"), "rooted glob under /a/");
        assert!(!m.matches(b"/a/z/d"));
        assert!(m.matches(b"/var/db/x/y"), "prefix /var/ wins over exact");
        assert!(!m.matches(b"/va"));
        assert!(!m.matches(b""));
    }

    #[test]
    fn large_rule_sets_use_the_packed_trie_with_the_same_answers() {
        let paths: Vec<String> = (0..3000)
            .map(|i| format!("/usr/libexec/daemon{i}/bin/tool{i}"))
            .collect();
        let prefixes: Vec<String> = (0..3000)
            .map(|i| format!("/Users/shared/Library/Caches/com.vendor{i}.app/"))
            .collect();
        let rules = PathRules {
            paths,
            prefixes,
            globs: vec!["/Applications/*/x".into()],
        };
        let m = PathMatcher::new(&rules, []).unwrap();
        assert!(
            matches!(m.trie, Some(Trie::Nfa(_))),
            "over the DFA's size limit"
        );
        assert!(m.matches(b"/usr/libexec/daemon2999/bin/tool2999"));
        assert!(!m.matches(b"/usr/libexec/daemon2999/bin/tool299"));
        assert!(m.matches(b"/Users/shared/Library/Caches/com.vendor7.app/a/b"));
        assert!(!m.matches(b"/Users/shared/Library/Caches/com.vendor7.apps"));
        assert!(m.matches(b"/Applications/Safari.app/x"));
        assert!(!m.matches(b"/Applications/Safari.app/y"));
    }

    #[test]
    fn an_empty_prefix_mutes_everything() {
        let m = PathMatcher::new(&rules(&[], &[""], &[]), []).unwrap();
        assert!(m.matches(b"/anything"));
        assert!(m.matches(b""));
    }

    #[test]
    fn floating_globs_by_name_extension_and_shape() {
        let m = PathMatcher::new(
            &rules(
                &[],
                &[],
                &["**/.DS_Store", "**/*.swp", "**/*.tar.gz", "**/*~", "*.rel"],
            ),
            [],
        )
        .unwrap();
        assert!(m.matches(b"/Users/a/.DS_Store"));
        assert!(!m.matches(b"/Users/a/.DS_Store2"));
        assert!(m.matches(b"/Users/a/.x.swp"));
        assert!(m.matches(b"/Users/a/.swp"), "* matches an empty name");
        assert!(
            !m.matches(b"/Users/a.swp/x"),
            "the extension is the file name's"
        );
        assert!(m.matches(b"/tmp/b.tar.gz"));
        assert!(!m.matches(b"/tmp/b.gz"));
        assert!(m.matches(b"/tmp/notes~"));
        assert!(m.matches(b"x.rel"));
        assert!(!m.matches(b"/d/x.rel"), "a relative glob does not cross /");
        assert_eq!(m.rules(), 5);
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
