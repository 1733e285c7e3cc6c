//! What a decoder kept, what it skipped, and why.
//!
//! Bad input never stops a stream: each skipped line is counted under one
//! reason, and the first few are kept with their line number and byte offset
//! so that a person can go and look.

use std::fmt;

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Not valid JSON, or a field of the wrong type.
    Malformed,
    /// The line ends in the middle of a value: cut short.
    Truncated,
    /// A well-formed message for an event type that no table maps.
    UnmappedEventType,
    /// A field the table needs is absent.
    MissingField,
}

impl SkipReason {
    /// Every reason, in the order summaries print them.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::Malformed,
        SkipReason::Truncated,
        SkipReason::UnmappedEventType,
        SkipReason::MissingField,
    ];

    /// The reason's name in summaries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::Malformed => "malformed",
            SkipReason::Truncated => "truncated",
            SkipReason::UnmappedEventType => "unmapped_event_type",
            SkipReason::MissingField => "missing_field",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One skipped line, as reported to the user.
///
/// Binary inputs (BSM records) have no lines: they report `line` 0 and the
/// byte offset in the whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number in the input; 0 for inputs that are not lines.
    pub line: u64,
    /// Byte offset within the line where the problem was found, if known
    /// (within the whole input when `line` is 0).
    pub byte: Option<usize>,
    /// Why the line was skipped.
    pub reason: SkipReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.byte {
            Some(byte) if self.line == 0 => {
                write!(f, "byte {}: {}: {}", byte, self.reason, self.detail)
            }
            Some(byte) => write!(
                f,
                "line {}, byte {}: {}: {}",
                self.line, byte, self.reason, self.detail
            ),
            None => write!(f, "line {}: {}: {}", self.line, self.reason, self.detail),
        }
    }
}

/// Counters of a decoder's work.
#[derive(Debug, Clone, Default)]
pub struct DecodeStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Input bytes read, newlines included.
    pub bytes: u64,
    skipped: [u64; 4],
    problems: Vec<LineProblem>,
    unmapped: Vec<(String, u64)>,
}

impl DecodeStats {
    /// How many problems are kept with their details; the rest are counted.
    pub const KEPT_PROBLEMS: usize = 10;

    /// Counts one skipped line, keeping its details if it is among the first.
    pub fn record(&mut self, problem: LineProblem) {
        self.skipped[problem.reason.index()] += 1;
        if self.problems.len() < Self::KEPT_PROBLEMS {
            self.problems.push(problem);
        }
    }

    /// Counts a message whose event type no table maps, by event name.
    pub fn record_unmapped(&mut self, line: u64, name: &[u8]) {
        let name = String::from_utf8_lossy(name);
        match self.unmapped.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => self.unmapped.push((name.to_string(), 1)),
        }
        self.skipped[SkipReason::UnmappedEventType.index()] += 1;
        // Unmapped events can be most of a stream; format details only for
        // the few that are kept.
        if self.problems.len() < Self::KEPT_PROBLEMS {
            self.problems.push(LineProblem {
                line,
                byte: None,
                reason: SkipReason::UnmappedEventType,
                detail: format!("event type '{name}' is not mapped to a table"),
            });
        }
    }

    /// Lines skipped for `reason`.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped[reason.index()]
    }

    /// Lines skipped for any reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// The first [`Self::KEPT_PROBLEMS`] problems, in input order.
    pub fn problems(&self) -> &[LineProblem] {
        &self.problems
    }

    /// Unmapped event names with their counts, in order of first appearance.
    pub fn unmapped_event_types(&self) -> &[(String, u64)] {
        &self.unmapped
    }
}
