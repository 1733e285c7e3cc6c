//! osquery's event ids (`eid`): a counter per table from 1, zero-padded to
//! ten digits as osquery formats it, one digit wider on each carry past
//! that.
//!
//! The builders make one per row, and the WAL writes a batch of them as its
//! first id alone and counts them out again on replay. Both count the
//! digits up in place, like an odometer, because turning a number into
//! digits (ten divisions) was a visible share of a file event's cost at a
//! million events a second.

/// The longest id: a u64's 20 digits.
pub const MAX_EID_DIGITS: usize = 20;

/// Decimal ids counted up in place.
#[derive(Debug, Clone)]
pub struct EventIdCounter {
    /// The current id is `digits[start..]`.
    digits: [u8; MAX_EID_DIGITS],
    start: usize,
}

impl Default for EventIdCounter {
    /// Before the first id: [`advance`](Self::advance) then gives
    /// `0000000001`.
    fn default() -> Self {
        EventIdCounter {
            digits: [b'0'; MAX_EID_DIGITS],
            start: MAX_EID_DIGITS - 10,
        }
    }
}

impl EventIdCounter {
    /// A counter whose current id is `id`: 1 to 20 ASCII digits, or `None`.
    pub fn at(id: &str) -> Option<EventIdCounter> {
        let id = id.as_bytes();
        if id.is_empty() || id.len() > MAX_EID_DIGITS || !id.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = [b'0'; MAX_EID_DIGITS];
        let start = MAX_EID_DIGITS - id.len();
        digits[start..].copy_from_slice(id);
        Some(EventIdCounter { digits, start })
    }

    /// Counts up by one and returns the new id (ASCII digits), or `None`
    /// past twenty nines.
    #[inline]
    pub fn advance(&mut self) -> Option<&[u8]> {
        let mut at = MAX_EID_DIGITS;
        loop {
            if at == 0 {
                return None;
            }
            at -= 1;
            if self.digits[at] == b'9' {
                self.digits[at] = b'0';
            } else {
                self.digits[at] += 1;
                break;
            }
        }
        self.start = self.start.min(at);
        Some(&self.digits[self.start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_like_osquery_formats_them() {
        let mut ids = EventIdCounter::default();
        for n in 1..=12_345u64 {
            assert_eq!(ids.advance().unwrap(), format!("{n:010}").as_bytes());
        }
        // Past ten digits the id grows, as `{:010}` does.
        let mut ids = EventIdCounter::at("9999999998").unwrap();
        assert_eq!(ids.advance().unwrap(), b"9999999999");
        assert_eq!(ids.advance().unwrap(), b"10000000000");
        assert_eq!(ids.advance().unwrap(), b"10000000001");
        // Twenty nines are the last.
        let mut ids = EventIdCounter::at("99999999999999999998").unwrap();
        assert_eq!(ids.advance().unwrap(), b"99999999999999999999");
        assert_eq!(ids.advance(), None);
        for bad in ["", "12a", "123456789012345678901", "-1"] {
            assert!(EventIdCounter::at(bad).is_none(), "{bad:?}");
        }
    }
}
