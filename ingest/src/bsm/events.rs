//! BSM event numbers: their `AUE_` names, descriptions and audit classes.
//!
//! Every record header carries a 16-bit event number. What it means comes
//! from OpenBSM's `audit_event` table (macOS, FreeBSD and Solaris numbers),
//! which `build.rs` embeds into the crate at build time from
//! `../shared/data/bsm/audit_event`; the class names come from `audit_class`.
//! When a number appears twice in the table (the historic Darwin numbers 6171
//! and 6172 collide with Solaris' `ftpd_logout` and `ssh`), the first entry
//! wins, as it does for OpenBSM's `getauevnum()` and so for praudit.
//!
//! ```
//! use sluice_ingest::bsm::events::{event, class_mask};
//!
//! let execve = event(23).unwrap();
//! assert_eq!(execve.name, "AUE_EXECVE");
//! assert_eq!(execve.description, "execve(2)");
//! assert!(execve.in_classes(class_mask("ex").unwrap()));
//! ```

/// One row of OpenBSM's `audit_event` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventEntry {
    /// The event number, as in record headers.
    pub number: u16,
    /// The `AUE_` constant name (`AUE_EXECVE`).
    pub name: &'static str,
    /// The description praudit prints (`execve(2)`).
    pub description: &'static str,
    /// The audit classes the event belongs to, as a bit mask.
    pub classes: u32,
}

impl EventEntry {
    /// Whether the event belongs to any class of `mask`.
    pub fn in_classes(&self, mask: u32) -> bool {
        self.classes & mask != 0
    }
}

include!(concat!(env!("OUT_DIR"), "/audit_event.rs"));

/// The table entry for an event number, if OpenBSM's table lists it.
pub fn event(number: u16) -> Option<&'static EventEntry> {
    EVENTS
        .binary_search_by_key(&number, |e| e.number)
        .ok()
        .and_then(|i| EVENTS.get(i))
}

/// Every entry of the table, sorted by number.
pub fn all_events() -> &'static [EventEntry] {
    EVENTS
}

/// The bit of an audit class, by its short name (`lo`, `aa`, `ex`, …).
pub fn class_mask(name: &str) -> Option<u32> {
    CLASSES
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, m, _)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_complete() {
        assert!(EVENTS.windows(2).all(|w| w[0].number < w[1].number));
        // Spot checks across the macOS, FreeBSD and Solaris ranges.
        assert_eq!(event(0).unwrap().description, "indir system call");
        assert_eq!(event(3).unwrap().description, "open(2) - attr only");
        assert_eq!(event(43190).unwrap().name, "AUE_POSIX_SPAWN");
        assert_eq!(event(32800).unwrap().name, "AUE_openssh");
        assert_eq!(event(45028).unwrap().name, "AUE_sudo");
        assert!(event(9999).is_none());
    }

    #[test]
    fn duplicate_numbers_keep_the_first_entry_like_getauevnum() {
        assert_eq!(event(6171).unwrap().name, "AUE_ftpd_logout");
        assert_eq!(event(6168).unwrap().name, "AUE_shutdown");
    }

    #[test]
    fn classes_are_resolved_to_bits() {
        let lo = class_mask("lo").unwrap();
        assert_eq!(lo, 0x1000);
        assert!(event(6152).unwrap().in_classes(lo));
        let open_rwtc = event(83).unwrap();
        for class in ["fc", "fd", "fw", "fr", "fa", "fm"] {
            assert!(open_rwtc.in_classes(class_mask(class).unwrap()), "{class}");
        }
    }
}
