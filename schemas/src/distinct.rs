//! The distinct values of a text column, in first-seen order: how a text
//! column becomes a dictionary and keys.
//!
//! Both ends of the pipeline make dictionaries of repetitive text. The
//! builders (`sluice-ingest`) key each path as it is appended, while its
//! bytes are still in cache, and hand storage the dictionary form; the WAL
//! (`sluice-sinks`) does the same for any other text column of a batch
//! before logging it. Both use this table, so a column keyed by either has
//! the same dictionary: its distinct values in the order first seen.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{ArrayRef, ArrowPrimitiveType, DictionaryArray, PrimitiveArray};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowDictionaryKeyType, UInt8Type, UInt16Type, UInt32Type};
use arrow::error::ArrowError;

/// The distinct values of a column in first-seen order, and the table that
/// finds a value's code.
///
/// Each value is copied once, when first seen, into `bytes`, which becomes
/// the dictionary's value buffer as it is. Lookups compare a row against
/// that copy: a few hundred kilobytes that stay in cache. The table is open
/// addressing with linear probing, at most half full, each slot a code
/// plus one (0 for empty) beside the upper half of its value's hash, so
/// that a probe reads one slot and compares bytes only when the hashes
/// agree. Each code's full hash is kept too, so growing never hashes a
/// value again.
#[derive(Debug, Clone)]
pub struct DistinctValues {
    /// The values, back to back.
    bytes: Vec<u8>,
    /// Offsets into `bytes`: value `c` is `bytes[ends[c]..ends[c + 1]]`.
    ends: Vec<i32>,
    /// The hash of each code's value.
    hashes: Vec<u64>,
    /// (code + 1, the hash's upper 32 bits); code + 1 = 0 is empty.
    slots: Vec<(u32, u32)>,
    /// The previous row's code: runs of one value (a process's burst of
    /// events, a column of empty strings) skip hashing.
    last: Option<u32>,
    hasher: foldhash::fast::FixedState,
}

impl Default for DistinctValues {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            ends: vec![0],
            hashes: Vec::new(),
            slots: vec![(0, 0); 256],
            last: None,
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl DistinctValues {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct values so far.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no value has been seen.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The bytes of all distinct values together.
    pub fn value_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Value `code`'s bytes.
    #[inline]
    pub fn value(&self, code: u32) -> &[u8] {
        let code = code as usize;
        &self.bytes[self.ends[code] as usize..self.ends[code + 1] as usize]
    }

    /// The code of `value`, added if new. Codes count up from 0 in the
    /// order values are first seen. At most `i32::MAX` bytes of distinct
    /// values fit (an Arrow array's offsets); past that a value is refused
    /// with `None`.
    #[inline]
    pub fn code(&mut self, value: &[u8]) -> Option<u32> {
        if let Some(last) = self.last
            && same_tail_then_equal(self.value(last), value)
        {
            return Some(last);
        }
        if self.len() * 2 >= self.slots.len() {
            self.grow();
        }
        let hash = self.hasher.hash_one(value);
        let tag = (hash >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut at = slot_of(hash, self.slots.len());
        loop {
            match self.slots[at] {
                (0, _) => {
                    let end = i32::try_from(self.bytes.len() + value.len()).ok()?;
                    let code = self.len() as u32;
                    self.bytes.extend_from_slice(value);
                    self.ends.push(end);
                    self.hashes.push(hash);
                    self.slots[at] = (code + 1, tag);
                    self.last = Some(code);
                    return Some(code);
                }
                (slot, slot_tag) if slot_tag == tag && self.value(slot - 1) == value => {
                    self.last = Some(slot - 1);
                    return Some(slot - 1);
                }
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The values back to back and their offsets (`len() + 1` of them,
    /// from 0), for a dictionary's value array; the set is left empty.
    pub fn take_values(&mut self) -> (Vec<u8>, Vec<i32>) {
        let bytes = std::mem::take(&mut self.bytes);
        let ends = std::mem::replace(&mut self.ends, vec![0]);
        self.hashes.clear();
        self.slots.iter_mut().for_each(|slot| *slot = (0, 0));
        self.last = None;
        (bytes, ends)
    }

    /// Doubles the table and places every code again by its kept hash.
    fn grow(&mut self) {
        self.slots = vec![(0, 0); self.slots.len() * 2];
        let mask = self.slots.len() - 1;
        for (code, &hash) in self.hashes.iter().enumerate() {
            let mut at = slot_of(hash, self.slots.len());
            while self.slots[at].0 != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = (code as u32 + 1, (hash >> 32) as u32);
        }
    }
}

/// Bytes per key of a dictionary of `distinct` values: the narrowest of 1,
/// 2 or 4 that holds every code.
pub fn key_bytes(distinct: usize) -> usize {
    match distinct {
        n if n <= 1 << 8 => 1,
        n if n <= 1 << 16 => 2,
        _ => 4,
    }
}

/// A dictionary array of `codes` (each below `values.len()`; NULL where
/// `nulls` says) over `values`, with keys [`key_bytes`] wide: the form both
/// the builders and the WAL hand on.
pub fn keyed_array(
    codes: Vec<u32>,
    nulls: Option<NullBuffer>,
    values: ArrayRef,
) -> Result<ArrayRef, ArrowError> {
    fn narrowed<K>(
        codes: &[u32],
        nulls: Option<NullBuffer>,
        values: ArrayRef,
    ) -> Result<ArrayRef, ArrowError>
    where
        K: ArrowDictionaryKeyType,
        <K as ArrowPrimitiveType>::Native: TryFrom<u32> + Default,
    {
        let keys: Vec<K::Native> = codes
            .iter()
            .map(|&c| K::Native::try_from(c).unwrap_or_default())
            .collect();
        let keys = PrimitiveArray::<K>::new(ScalarBuffer::from(keys), nulls);
        Ok(Arc::new(DictionaryArray::<K>::try_new(keys, values)?))
    }
    match key_bytes(values.len()) {
        1 => narrowed::<UInt8Type>(&codes, nulls, values),
        2 => narrowed::<UInt16Type>(&codes, nulls, values),
        _ => {
            let keys = PrimitiveArray::<UInt32Type>::new(ScalarBuffer::from(codes), nulls);
            Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(
                keys, values,
            )?))
        }
    }
}

/// Whether `a` and `b` are equal, looking at their last eight bytes first.
/// Paths in a batch share long prefixes (a cache directory, a user's
/// home) and differ at the end, so two paths of one length told apart by a
/// plain comparison from the front read both prefixes first: the previous
/// row's check, which fails for most file names, spent more time there
/// than in the table.
#[inline]
fn same_tail_then_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a[a.len().saturating_sub(8)..] == b[b.len().saturating_sub(8)..] && a == b
}

/// The slot a hash starts probing at, in a power-of-two table of `slots`:
/// its high bits, which foldhash mixes best.
#[inline]
fn slot_of(hash: u64, slots: usize) -> usize {
    (hash >> (64 - slots.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_count_up_in_first_seen_order_and_values_come_back() {
        let mut distinct = DistinctValues::new();
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for row in 0..20_000u32 {
            // Values of every length up to 40, sharing prefixes and
            // suffixes, repeating in runs and at a distance.
            let len = (row * 7 % 41) as usize;
            let value: Vec<u8> = (0..len)
                .map(|i| b'a' + ((row / 3 + i as u32) % 5) as u8)
                .collect();
            let code = distinct.code(&value).unwrap();
            match expected.iter().position(|v| *v == value) {
                Some(at) => assert_eq!(code as usize, at),
                None => {
                    assert_eq!(code as usize, expected.len());
                    expected.push(value);
                }
            }
        }
        assert_eq!(distinct.len(), expected.len());
        let (bytes, ends) = distinct.take_values();
        assert_eq!(ends.len(), expected.len() + 1);
        for (code, value) in expected.iter().enumerate() {
            assert_eq!(
                &bytes[ends[code] as usize..ends[code + 1] as usize],
                value.as_slice()
            );
        }
        assert!(distinct.is_empty());
        assert_eq!(distinct.code(b"again"), Some(0));
    }
}
