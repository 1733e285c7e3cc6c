//! Kernel drops, read from gaps in ES sequence numbers.
//!
//! EndpointSecurity numbers each client's messages twice: `seq_num` per event
//! type and `global_seq_num` over all types, both consecutive. A gap of `n`
//! means the kernel dropped `n` messages for a client that fell behind. A
//! number that goes backwards means the client restarted, which is not a
//! loss.
//!
//! A line sluice itself could not read also leaves a gap. The tracker is told
//! about such lines and does not blame the kernel for them in the global
//! count (the per-type count cannot know the lost line's type).

/// Tracks the last sequence numbers seen.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    last_global: Option<u64>,
    /// Last `seq_num` per event type number (ES numbers are small).
    last_by_type: Vec<Option<u64>>,
    lost_locally: u64,
}

/// The gaps one message revealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gaps {
    /// Messages of any type lost before this one (locally unreadable lines
    /// excluded).
    pub global: u64,
    /// Messages of this one's type lost before it.
    pub same_type: u64,
}

impl SeqTracker {
    /// Notes that an input line could not be read, so that its gap is not
    /// blamed on the kernel.
    pub fn lost_line(&mut self) {
        self.lost_locally += 1;
    }

    /// Observes one message's numbers and returns the gaps before it.
    pub fn observe(
        &mut self,
        event_type: Option<i64>,
        seq_num: Option<i64>,
        global_seq_num: Option<i64>,
    ) -> Gaps {
        let mut gaps = Gaps::default();
        if let Some(global) = global_seq_num.and_then(|g| u64::try_from(g).ok()) {
            if let Some(last) = self.last_global
                && global > last + 1
            {
                gaps.global = (global - last - 1).saturating_sub(self.lost_locally);
            }
            self.last_global = Some(global);
            self.lost_locally = 0;
        }
        if let (Some(t), Some(seq)) = (
            event_type.and_then(|t| usize::try_from(t).ok()),
            seq_num.and_then(|s| u64::try_from(s).ok()),
        ) && t < 1024
        {
            if self.last_by_type.len() <= t {
                self.last_by_type.resize(t + 1, None);
            }
            if let Some(last) = self.last_by_type[t]
                && seq > last + 1
            {
                gaps.same_type = seq - last - 1;
            }
            self.last_by_type[t] = Some(seq);
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_lost_messages_and_restarts_do_not() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(Some(10), Some(1), Some(1)), Gaps::default());
        assert_eq!(t.observe(Some(10), Some(2), Some(2)), Gaps::default());
        // Three opens and one other message lost.
        assert_eq!(
            t.observe(Some(10), Some(6), Some(7)),
            Gaps {
                global: 4,
                same_type: 3
            }
        );
        // Another type starts its own numbering.
        assert_eq!(t.observe(Some(9), Some(1), Some(8)), Gaps::default());
        // A restart: numbers go back to 1.
        assert_eq!(t.observe(Some(10), Some(1), Some(1)), Gaps::default());
    }

    #[test]
    fn locally_unreadable_lines_are_not_kernel_drops() {
        let mut t = SeqTracker::default();
        t.observe(Some(10), Some(1), Some(1));
        t.lost_line();
        assert_eq!(t.observe(Some(10), Some(3), Some(3)).global, 0);
    }
}
