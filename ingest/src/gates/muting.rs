//! Path muting, compiled once and matched without looping over rules.
//!
//! Every rule that starts with literal bytes (exact paths, prefixes, and the
//! literal directory in front of a glob's first wildcard) goes into one
//! anchored trie. The trie is compiled to a radix tree: its states are
//! only the places where a rule ends or two rules part, each with one
//! table lookup per branching byte, and the runs of bytes between them are
//! labels compared a slice at a time (the deepest states of very large rule
//! sets are short edge lists, to bound memory). Matching a path walks that
//! trie once and stops as soon as the path leaves it, which for an unmuted
//! path is usually two or three states in. Each state value carries its own
//! flags, so the walk tests one number per state:
//!
//! - a state reached at the end of the path that carries an exact-path rule
//!   means the path is that rule;
//! - any state on the way that carries a prefix rule means the path starts
//!   with it;
//! - a state that carries a glob root means the path is under a glob's
//!   literal directory, and only then does the rooted glob set run.
//!
//! Globs that start with a wildcard (`**/*.tmp`, `**/.DS_Store`) cannot be in
//! that trie. The common shapes are endings (`.tmp`, `/.DS_Store`), so they
//! go into a second trie of reversed endings, walked from the path's last
//! byte, which for an unmuted path usually ends at the first byte. Anything
//! else goes to one `GlobSet`.
//!
//! The cost per path is therefore a few lookups for each of the two walks,
//! and hardly grows with the number of rules.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::GateConfigError;
use super::config::PathRules;
use super::osquery_paths::TranslatedRule;

/// A compiled set of path rules.
#[derive(Debug, Clone, Default)]
pub struct PathMatcher {
    /// Exact paths, prefixes and glob roots, in one anchored trie walked
    /// from the path's first byte.
    trie: Option<Trie>,
    /// Globs that start with a literal directory (`/Applications/*.app/…`),
    /// run only when the trie says the path is under one of those
    /// directories.
    rooted_globs: Option<GlobSet>,
    /// `**/name` and `**/*.ext` globs, as a trie of reversed endings walked
    /// from the path's last byte.
    endings: Option<Trie>,
    /// Every other glob that starts with a wildcard.
    other_globs: Option<GlobSet>,
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

/// Whether `name` is a non-empty file name with no glob syntax in it.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['*', '?', '[', ']', '{', '}', '\\', '/'])
}

impl PathMatcher {
    /// Compiles `rules` plus any already-translated ones (from osquery
    /// syntax, the default mute set, or another scope's rules).
    pub fn new(
        rules: &PathRules,
        translated: impl IntoIterator<Item = TranslatedRule>,
    ) -> Result<Self, GateConfigError> {
        Self::compile(rules, translated, DENSE_MAX_ENTRIES)
    }

    /// [`PathMatcher::new`] with a limit on the dense tables' entries
    /// (tests use a small one to exercise the sparse states).
    fn compile(
        rules: &PathRules,
        translated: impl IntoIterator<Item = TranslatedRule>,
        dense_max_entries: usize,
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

        let mut trie = TrieBuilder::default();
        for p in &literals {
            trie.insert(p.bytes(), EXACT);
        }
        for p in &prefixes {
            trie.insert(p.bytes(), PREFIX);
        }
        for g in &rooted {
            trie.insert(literal_root(g).bytes(), GLOB_ROOT);
        }

        // Floating globs: `**/name` is a path ending in `/name` (or the
        // whole relative path `name`); `**/*.ext` is a path ending in
        // `.ext` where `ext` has no `.` or `/`, so that `.` is the last one
        // of the file name. Both are prefixes of the reversed path.
        let mut endings = TrieBuilder::default();
        let mut others = Vec::new();
        for glob in &floating {
            // Validate every glob the same way, even the ones answered by
            // the endings trie, so a typo is a config error either way.
            glob_set(&[glob])?;
            match glob.strip_prefix("**/") {
                Some(name) if is_plain_file_name(name) => {
                    endings.insert(name.bytes().rev().chain([b'/']), PREFIX);
                    endings.insert(name.bytes().rev(), EXACT);
                }
                Some(name)
                    if name.starts_with("*.")
                        && is_plain_file_name(&name[2..])
                        && !name[2..].contains('.') =>
                {
                    endings.insert(name[2..].bytes().rev().chain([b'.']), PREFIX);
                }
                _ => others.push(*glob),
            }
        }
        Ok(Self {
            trie: trie.build(false, dense_max_entries),
            rooted_globs: glob_set(&rooted)?,
            endings: endings.build(true, dense_max_entries),
            other_globs: glob_set(&others)?,
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
        if let Some(trie) = &self.trie {
            match trie.walk::<false>(path) {
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
        if let Some(endings) = &self.endings
            && matches!(endings.walk::<true>(path), Walk::Muted)
        {
            return true;
        }
        self.other_globs
            .as_ref()
            .is_some_and(|set| glob_matches(set, path))
    }
}

/// A trie state's flags: what a walk that reaches it has matched.
/// An exact pattern ends here (it matches only at the end of the input).
const EXACT: u32 = 1;
/// A prefix pattern ends here: the input matches whatever follows.
const PREFIX: u32 = 2;
/// A rooted glob's literal directory ends here.
const GLOB_ROOT: u32 = 4;
/// The edge into this state carries a label: more bytes that must follow
/// the edge's byte before the state is reached.
const LABELLED: u32 = 8;
/// How many low bits of a state value hold its flags.
const FLAG_BITS: u32 = 4;
/// The state no pattern continues from; its value is 0.
const DEAD: u32 = 0;

/// Past this many transition-table entries (4 MiB) the deeper states are
/// stored as sparse edge lists, so that 10,000 rules do not cost tens of
/// megabytes. Walks of paths that match no rule end a few states in, in the
/// dense part.
const DENSE_MAX_ENTRIES: usize = 1 << 20;

/// An anchored trie compiled to a table, with runs of single-child states
/// collapsed into labels (a radix tree).
///
/// Walking a trie is a chain of dependent loads: each byte's next state is
/// found from the previous one, so a byte-per-state walk costs a load's
/// latency per byte, and most of a path's bytes lie on runs no rule branches
/// from (`/usr/libexec/`, `/Library/Caches/com.vendor`). Here only the
/// states where a rule ends or two rules part are states; the run of bytes
/// in front of each one is its label, compared in one slice comparison.
/// An unmuted path therefore costs a few lookups, however long the rules'
/// shared runs are.
///
/// A state value is `index << FLAG_BITS | flags`; index 0 is the dead
/// state. States are numbered breadth first, so the shallow ones, which
/// every walk visits, are the dense ones. The flags are in the value so a
/// walk tests them without touching other memory, and `LABELLED` says
/// whether there is a label to compare at all.
#[derive(Debug, Clone)]
struct Trie {
    /// The byte's column in the dense table (0: no pattern has it).
    classes: [u8; 256],
    /// Columns per dense row.
    stride: usize,
    /// The root's state value.
    start: u32,
    /// `dense_states` rows of `stride` next-state values.
    dense: Vec<u32>,
    dense_states: usize,
    /// For state index `dense_states + i`, its edges are
    /// `sparse_edges[sparse_offsets[i]..sparse_offsets[i + 1]]`.
    sparse_offsets: Vec<u32>,
    sparse_edges: Vec<(u8, u32)>,
    /// Per state index, its label as `(start, len)` in `label_bytes`, in the
    /// input's own byte order (for a trie walked from the input's end, the
    /// label is stored reversed back, so both compare a plain slice).
    labels: Vec<(u32, u32)>,
    label_bytes: Vec<u8>,
}

/// What walking a path through the trie found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// An exact-path or prefix rule matched.
    Muted,
    /// No rule matched, but the path is under a rooted glob's directory.
    UnderGlobRoot,
    /// No rule can match.
    NoMatch,
}

impl Trie {
    #[inline(always)]
    fn next(&self, state: u32, byte: u8) -> u32 {
        let index = (state >> FLAG_BITS) as usize;
        if index < self.dense_states {
            self.dense[index * self.stride + usize::from(self.classes[usize::from(byte)])]
        } else {
            let i = index - self.dense_states;
            let edges = &self.sparse_edges
                [self.sparse_offsets[i] as usize..self.sparse_offsets[i + 1] as usize];
            edges
                .iter()
                .find(|(b, _)| *b == byte)
                .map_or(DEAD, |&(_, next)| next)
        }
    }

    /// The label in front of `state`.
    #[inline(always)]
    fn label(&self, state: u32) -> &[u8] {
        let (start, len) = self.labels[(state >> FLAG_BITS) as usize];
        &self.label_bytes[start as usize..(start + len) as usize]
    }

    /// Walks `path` from its first byte (or, with `FROM_END`, from its last
    /// byte backwards), stopping as soon as no pattern can match any more.
    #[inline(always)]
    fn walk<const FROM_END: bool>(&self, path: &[u8]) -> Walk {
        let mut state = self.start;
        if state & PREFIX != 0 {
            return Walk::Muted;
        }
        let mut under_glob_root = state & GLOB_ROOT != 0;
        let no_match = |under_glob_root: bool| {
            if under_glob_root {
                Walk::UnderGlobRoot
            } else {
                Walk::NoMatch
            }
        };
        // `path[lo..hi]` is what is left to walk; it shrinks from the front,
        // or from the back when walking from the end. Two indices rather
        // than a shrinking slice: fewer values live across the loop.
        let (mut lo, mut hi) = (0, path.len());
        while lo < hi {
            let byte = if FROM_END {
                hi -= 1;
                path[hi]
            } else {
                lo += 1;
                path[lo - 1]
            };
            state = self.next(state, byte);
            if state == DEAD {
                return no_match(under_glob_root);
            }
            if state & LABELLED != 0 {
                let label = self.label(state);
                // A path that ends inside a label, or leaves it, matches
                // nothing more: no rule ends or parts inside a label.
                if hi - lo < label.len() {
                    return no_match(under_glob_root);
                }
                let head = if FROM_END {
                    hi -= label.len();
                    &path[hi..hi + label.len()]
                } else {
                    lo += label.len();
                    &path[lo - label.len()..lo]
                };
                if !same_bytes(head, label) {
                    return no_match(under_glob_root);
                }
            }
            if state & (PREFIX | GLOB_ROOT) != 0 {
                if state & PREFIX != 0 {
                    return Walk::Muted;
                }
                under_glob_root = true;
            }
        }
        if state & EXACT != 0 {
            Walk::Muted
        } else {
            no_match(under_glob_root)
        }
    }
}

/// Whether two byte strings of the same length are equal, compared a word
/// at a time in line: labels are a few to a few dozen bytes, and for those
/// a call to `memcmp` costs more than the comparison.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // One unaligned load each; the conversion cannot fail (the range is
    // 8 or 4 bytes long), so it compiles to the load alone.
    #[inline(always)]
    fn word(s: &[u8], i: usize) -> u64 {
        <[u8; 8]>::try_from(&s[i..i + 8]).map_or(0, u64::from_ne_bytes)
    }
    #[inline(always)]
    fn half_word(s: &[u8], i: usize) -> u32 {
        <[u8; 4]>::try_from(&s[i..i + 4]).map_or(0, u32::from_ne_bytes)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        if n >= 4 {
            // Two words that overlap when n < 8.
            return half_word(a, 0) == half_word(b, 0)
                && half_word(a, n - 4) == half_word(b, n - 4);
        }
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last word, overlapping the one before when n is not a multiple
    // of 8.
    word(a, n - 8) == word(b, n - 8)
}

/// A trie under construction: nodes with edge lists.
#[derive(Debug, Default)]
struct TrieBuilder {
    /// Node 0 is the root (once anything is inserted).
    nodes: Vec<(Vec<(u8, usize)>, u32)>,
}

impl TrieBuilder {
    fn insert(&mut self, pattern: impl Iterator<Item = u8>, flag: u32) {
        if self.nodes.is_empty() {
            self.nodes.push((Vec::new(), 0));
        }
        let mut node = 0;
        for byte in pattern {
            node = match self.nodes[node].0.iter().find(|(b, _)| *b == byte) {
                Some(&(_, child)) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push((Vec::new(), 0));
                    self.nodes[node].0.push((byte, child));
                    child
                }
            };
        }
        self.nodes[node].1 |= flag;
    }

    /// Whether `node` stays a state of the compiled trie: the root, a node
    /// where a rule ends, and a node where rules part. Every other node has
    /// one child and no flags, so it becomes a byte of a label.
    fn is_kept(&self, node: usize) -> bool {
        let (edges, flags) = &self.nodes[node];
        node == 0 || *flags != 0 || edges.len() != 1
    }

    /// Compiles the trie. `from_end` says the patterns were inserted
    /// reversed, for walks from the input's end, so labels are stored back
    /// in the input's order. Past `dense_max_entries` table entries, states
    /// are sparse.
    fn build(self, from_end: bool, dense_max_entries: usize) -> Option<Trie> {
        if self.nodes.is_empty() {
            return None;
        }
        // The kept nodes' edges: (byte, label, kept child), where the label
        // is the run of collapsed nodes' bytes between them.
        let collapse = |child: usize| -> (Vec<u8>, usize) {
            let mut label = Vec::new();
            let mut node = child;
            while !self.is_kept(node) {
                let (byte, next) = self.nodes[node].0[0];
                label.push(byte);
                node = next;
            }
            if from_end {
                label.reverse();
            }
            (label, node)
        };
        // Breadth-first order of kept nodes; index 0 is the dead state, the
        // root is 1.
        let mut order = vec![0usize];
        let mut label_of: Vec<Vec<u8>> = vec![Vec::new()];
        let mut edges_of: Vec<Vec<(u8, usize)>> = Vec::new();
        let mut head = 0;
        while head < order.len() {
            let node = order[head];
            head += 1;
            let mut edges = Vec::with_capacity(self.nodes[node].0.len());
            for &(byte, child) in &self.nodes[node].0 {
                let (label, kept) = collapse(child);
                edges.push((byte, order.len()));
                order.push(kept);
                label_of.push(label);
            }
            edges_of.push(edges);
        }
        let value = |position: usize| -> u32 {
            let index = u32::try_from(position + 1).expect("fewer than 2^28 trie states");
            assert!(index < 1 << (32 - FLAG_BITS), "fewer than 2^28 trie states");
            let labelled = if label_of[position].is_empty() {
                0
            } else {
                LABELLED
            };
            index << FLAG_BITS | self.nodes[order[position]].1 | labelled
        };
        let mut classes = [0u8; 256];
        let mut stride = 1usize;
        let mut used = [false; 256];
        for edges in &edges_of {
            for &(b, _) in edges {
                used[usize::from(b)] = true;
            }
        }
        for b in 0..256 {
            if used[b] {
                // At most 255 distinct bytes get their own column; the
                // 256th shares column 255 only if every byte is used, which
                // the check below turns into a sparse-only table.
                classes[b] = u8::try_from(stride).unwrap_or(u8::MAX);
                stride += 1;
            }
        }
        let states = order.len() + 1;
        let dense_states = if stride > 256 {
            1
        } else {
            states.min((dense_max_entries / stride).max(2))
        };
        let mut dense = vec![DEAD; dense_states * stride];
        let mut sparse_offsets = vec![0u32];
        let mut sparse_edges = Vec::new();
        for (position, edges) in edges_of.iter().enumerate() {
            let index = position + 1;
            if index < dense_states {
                for &(b, child) in edges {
                    dense[index * stride + usize::from(classes[usize::from(b)])] = value(child);
                }
            } else {
                sparse_edges.extend(edges.iter().map(|&(b, child)| (b, value(child))));
                sparse_offsets
                    .push(u32::try_from(sparse_edges.len()).expect("fewer than 2^32 edges"));
            }
        }
        let mut labels = vec![(0u32, 0u32)];
        let mut label_bytes = Vec::new();
        for label in &label_of {
            let start = u32::try_from(label_bytes.len()).expect("labels under 4 GiB");
            label_bytes.extend_from_slice(label);
            labels.push((start, label.len() as u32));
        }
        Some(Trie {
            classes,
            stride,
            start: value(0),
            dense,
            dense_states,
            sparse_offsets,
            sparse_edges,
            labels,
            label_bytes,
        })
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
        self.process.is_empty() && !self.has_target_rules()
    }

    /// Whether any target mute or allow rule is set.
    pub fn has_target_rules(&self) -> bool {
        !(self.target_mute.is_empty() && self.target_allow.is_empty())
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
        self.targets_muted(targets)
    }

    /// Whether this scope's target rules mute an event naming `targets`
    /// (the target half of [`is_muted`](Self::is_muted)).
    #[inline]
    pub fn targets_muted(&self, targets: &[&[u8]]) -> bool {
        if targets.is_empty() || !self.has_target_rules() {
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
        let trie = m.trie.as_ref().unwrap();
        assert_eq!(trie.sparse_edges.len(), 0, "small rule sets are all dense");
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
        let m = PathMatcher::compile(&rules, [], 4096).unwrap();
        let trie = m.trie.as_ref().unwrap();
        assert!(
            !trie.sparse_edges.is_empty(),
            "over the dense table's size limit"
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

    /// The plain meaning of a rule set: every rule tried in turn, each glob
    /// on its own `GlobSet` (`globs` holds them compiled, in order).
    fn reference_matches(rules: &PathRules, globs: &[GlobSet], path: &[u8]) -> bool {
        rules.paths.iter().any(|p| p.as_bytes() == path)
            || rules
                .prefixes
                .iter()
                .any(|p| path.starts_with(p.as_bytes()))
            || globs.iter().any(|set| glob_matches(set, path))
    }

    #[test]
    fn tries_answer_as_a_rule_by_rule_reference_on_random_rules_and_paths() {
        use crate::synthetic::SplitMix64;
        // Few, overlapping fragments, so that rules share prefixes and
        // endings and paths often run deep into the tries.
        const FRAGMENTS: &[&str] = &[
            "/", "a", "b", "ab", ".", "x.y", "/Users", "/tmp", ".tmp", "~", "lock", "/a/",
        ];
        const NAMES: &[&str] = &["a", "b", "ab", "lock", "x", ".DS_Store", "~"];
        let mut rng = SplitMix64::new(0x5eed_4a7e);
        let pick = |rng: &mut SplitMix64, from: &[&'static str]| -> &'static str {
            from[rng.below(from.len() as u64) as usize]
        };
        let random_path = |rng: &mut SplitMix64| -> String {
            let parts = 1 + rng.below(6);
            (0..parts).map(|_| pick(rng, FRAGMENTS)).collect()
        };
        let mut checked = 0;
        let mut muted = 0;
        for round in 0..300 {
            let mut rules = PathRules::default();
            for _ in 0..1 + rng.below(12) {
                match rng.below(10) {
                    0..=2 => rules.paths.push(random_path(&mut rng)),
                    3..=5 => rules.prefixes.push(random_path(&mut rng)),
                    6 => {
                        let dir = random_path(&mut rng);
                        let tail = pick(&mut rng, &["*", "**", "*.tmp", "*/b", "**/a"]);
                        rules
                            .globs
                            .push(format!("/{}/{tail}", dir.trim_matches('/')));
                    }
                    7 => rules.globs.push(format!("**/{}", pick(&mut rng, NAMES))),
                    8 => rules
                        .globs
                        .push(format!("**/*.{}", pick(&mut rng, &["tmp", "y", "b", "a"]))),
                    _ => rules
                        .globs
                        .push(pick(&mut rng, &["**/a*b", "*.y", "/*/a", "**/lock*"]).into()),
                }
            }
            if round % 50 == 0 {
                rules.prefixes.push(String::new());
            }
            let matcher = PathMatcher::new(&rules, []).unwrap();
            // The same rules with every state but the root sparse.
            let sparse = PathMatcher::compile(&rules, [], 2).unwrap();
            let globs: Vec<GlobSet> = rules
                .globs
                .iter()
                .map(|g| glob_set(&[g]).unwrap().unwrap())
                .collect();
            for _ in 0..200 {
                let path = random_path(&mut rng);
                let expected = reference_matches(&rules, &globs, path.as_bytes());
                assert_eq!(
                    matcher.matches(path.as_bytes()),
                    expected,
                    "path {path:?} against {rules:?}"
                );
                assert_eq!(
                    sparse.matches(path.as_bytes()),
                    expected,
                    "sparse: path {path:?} against {rules:?}"
                );
                checked += 1;
                muted += usize::from(expected);
            }
        }
        // Both answers must be common, or the test says little.
        assert!(
            muted > checked / 10 && muted < checked * 9 / 10,
            "{muted} of {checked}"
        );
    }

    #[test]
    fn deep_states_past_the_dense_table_answer_the_same() {
        // Enough distinct bytes and states that most states are sparse.
        let paths: Vec<String> = (0..40_000)
            .map(|i| format!("/r/{i:x}/{}", i * 7919))
            .collect();
        let rules = PathRules {
            paths: paths.clone(),
            prefixes: vec!["/r/ff/".into()],
            globs: vec![],
        };
        let limit = 1 << 14;
        let m = PathMatcher::compile(&rules, [], limit).unwrap();
        let trie = m.trie.as_ref().unwrap();
        assert!(trie.dense_states * trie.stride <= limit);
        assert!(!trie.sparse_edges.is_empty());
        for p in paths.iter().step_by(97) {
            assert!(m.matches(p.as_bytes()), "{p}");
            assert!(!m.matches(format!("{p}0").as_bytes()), "{p}0");
        }
        assert!(m.matches(b"/r/ff/anything"));
        assert!(!m.matches(b"/r/fg"));
    }

    #[test]
    fn bad_globs_are_config_errors() {
        let err = PathMatcher::new(&rules(&[], &[], &["/a/[b"]), []).unwrap_err();
        assert!(err.to_string().contains("/a/[b"), "{err}");
    }

    #[test]
    fn word_comparison_agrees_with_slice_equality_at_every_length_and_position() {
        let a: Vec<u8> = (0..40u8).collect();
        for n in 0..=40 {
            assert!(same_bytes(&a[..n], &a[..n]));
            for differ in 0..n {
                let mut b = a[..n].to_vec();
                b[differ] ^= 0x20;
                assert!(!same_bytes(&a[..n], &b), "length {n}, byte {differ}");
            }
        }
        assert!(!same_bytes(b"abc", b"abcd"));
    }
}
