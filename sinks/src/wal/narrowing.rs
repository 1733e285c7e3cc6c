//! Numbers leave the WAL record in as few bytes as their batch needs.
//!
//! After the [dictionary](super::dictionary) pass, most of a file event's
//! record was numbers written at full width: `pid` and `parent` as 8 bytes
//! each though a Mac's pids fit in 17 bits, `time` as 8 bytes though a
//! batch spans a few seconds, and `eid`, osquery's zero-padded event id, as
//! ten digits and an offset though each id is the one before plus one. At a
//! million and a half events a second that was some 150 MB/s of WAL, and
//! the writer thread spent a third of its time waiting for the fsyncs of
//! it. So, just before a record is encoded:
//!
//! - an integer or timestamp column whose values in this batch lie within
//!   2^8, 2^16 or 2^32 of each other is written as offsets from its
//!   smallest value, in 1, 2 or 4 bytes (`offset`);
//! - one that never goes down (times, sequence numbers) may instead be
//!   written as the steps from each value to the next, when those are
//!   narrower still (`delta`): a batch's nanosecond times span seconds,
//!   more than four bytes hold, in steps of microseconds;
//! - a text column of consecutive decimal ids without NULLs is written as
//!   its first id alone, over a column of type Null, which takes no bytes at
//!   all (`counter`).
//!
//! The marks are field metadata, as the dictionary pass's are, and
//! [`unpack`] undoes exactly the marked columns, so replay gives back the
//! batch that was appended, types and time zones included. Only the record
//! is packed: the batch the hot tail keeps, and hands to Parquet, is the
//! dictionary pass's.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, NullArray, PrimitiveArray, StringArray, make_array,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowPrimitiveType, DataType, UInt8Type, UInt16Type, UInt32Type, Utf8Type};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sluice_schemas::EventIdCounter;

use super::dictionary::{ENCODING_KEY, replace_columns, retyped};

/// The encoding of a column written as offsets from a base.
const ENCODING_OFFSET: &str = "offset";
/// The encoding of a column of consecutive decimal ids.
const ENCODING_COUNTER: &str = "counter";
/// The encoding of an ascending column written as steps from a base.
const ENCODING_DELTA: &str = "delta";
/// Field metadata: the offsets' base (`offset`), in decimal.
const BASE_KEY: &str = "sluice.wal.base";
/// Field metadata: the column's first id (`counter`).
const FIRST_KEY: &str = "sluice.wal.first";
/// Field metadata: the type the column had before it was packed, as
/// arrow's `DataType` displays it (and parses it back).
const TYPE_KEY: &str = "sluice.wal.type";
/// Columns shorter than this are written as they are: the marks would cost
/// more than they save.
const MIN_ROWS: usize = 64;

/// `batch` (after the dictionary pass) with its numbers narrowed and its
/// id counters reduced to their first id, marked for [`unpack`]. Returns
/// the batch itself (a cheap clone) when no column pays.
pub(crate) fn pack(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    if batch.num_rows() < MIN_ROWS {
        return Ok(batch.clone());
    }
    replace_columns(batch, |field, column| {
        let packed = match column.data_type() {
            DataType::Int64 | DataType::Timestamp(_, _) => narrowed_of::<i64>(column),
            DataType::Int32 => narrowed_of::<i32>(column),
            DataType::Utf8 => counter_of(column.as_string::<i32>()).map(|first| {
                (
                    counter_marks(first),
                    Arc::new(NullArray::new(column.len())) as _,
                )
            }),
            _ => None,
        };
        Ok(packed.map(|(marks, physical)| {
            let field = retyped(field, physical.data_type().clone(), |metadata| {
                metadata.extend(marks);
                metadata.insert(TYPE_KEY.to_string(), field.data_type().to_string());
            });
            (field, physical)
        }))
    })
}

/// Undoes [`pack`]: every column it marked back to its type and values,
/// its marks removed. Other columns, dictionary marks included, pass as
/// they are.
pub(crate) fn unpack(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    replace_columns(&batch, |field, column| {
        if !is_packed(field) {
            return Ok(None);
        }
        let encoding = field.metadata().get(ENCODING_KEY).map(String::as_str);
        let mark = |key: &str| {
            field.metadata().get(key).ok_or_else(|| {
                ArrowError::InvalidArgumentError(format!(
                    "WAL column {:?} is packed but has no {key:?}",
                    field.name()
                ))
            })
        };
        let original: DataType = mark(TYPE_KEY)?.parse()?;
        let values = if encoding == Some(ENCODING_COUNTER) {
            counted(field.name(), mark(FIRST_KEY)?, column.len(), &original)?
        } else {
            let base: i64 = mark(BASE_KEY)?.parse().map_err(|_| {
                ArrowError::InvalidArgumentError(format!(
                    "WAL column {:?} has a bad base",
                    field.name()
                ))
            })?;
            let steps = encoding == Some(ENCODING_DELTA);
            widen(field.name(), column, base, steps, &original)?
        };
        let field = retyped(field, original, |metadata| {
            for key in [ENCODING_KEY, BASE_KEY, FIRST_KEY, TYPE_KEY] {
                metadata.remove(key);
            }
        });
        Ok(Some((field, values)))
    })
}

/// A native integer a column may be narrowed from.
trait Wide: arrow::datatypes::ArrowNativeType + Ord + Into<i64> {
    /// Bytes per value as it is.
    const WIDTH: usize;
}

impl Wide for i64 {
    const WIDTH: usize = 8;
}

impl Wide for i32 {
    const WIDTH: usize = 4;
}

/// The narrowest unsigned width (1, 2, 4 or 8 bytes) that holds `n`.
fn width_of(n: u64) -> usize {
    match n {
        n if n <= u64::from(u8::MAX) => 1,
        n if n <= u64::from(u16::MAX) => 2,
        n if n <= u64::from(u32::MAX) => 4,
        _ => 8,
    }
}

/// The packed form of an integer column, or `None` when no form is
/// narrower:
/// - `offset`: the valid values' smallest as the base, and each value's
///   distance from it;
/// - `delta`, for a column without NULLs that never goes down (a time, a
///   sequence number): the first value as the base, and each value's
///   distance from the one before. It wins when the column's range is
///   wider than its steps, as a batch's nanosecond times are.
fn narrowed_of<T: Wide>(column: &ArrayRef) -> Option<(Marks, ArrayRef)> {
    let data = column.to_data();
    let values = ScalarBuffer::<T>::new(data.buffers()[0].clone(), data.offset(), data.len());
    let nulls = column.logical_nulls();
    let (min, max) = match &nulls {
        // The common case, without a branch per value, so it vectorizes.
        None => {
            let first = *values.first()?;
            values
                .iter()
                .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v)))
        }
        Some(nulls) => {
            let mut valid = nulls.valid_indices().map(|i| values[i]);
            let first = valid.next().unwrap_or_else(|| values[0]);
            valid.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)))
        }
    };
    let (min, max): (i64, i64) = (min.into(), max.into());
    // At most 2^64 - 1 apart, so u64 holds it.
    let offset_width = width_of(max.wrapping_sub(min) as u64);
    let delta_width = if nulls.is_none() {
        width_of(largest_step(&values))
    } else {
        8
    };
    let (encoding, base, width) = if delta_width < offset_width {
        (ENCODING_DELTA, values[0].into(), delta_width)
    } else {
        (ENCODING_OFFSET, min, offset_width)
    };
    if width >= T::WIDTH {
        return None;
    }
    // In `offset` form a NULL slot's value is whatever the builder left
    // there; its offset wraps harmlessly and is never read back as a value.
    // One pass straight into the narrow type: this runs on the writer
    // thread for every number of every batch.
    let narrowed: ArrayRef = match width {
        1 => Arc::new(PrimitiveArray::<UInt8Type>::new(
            packed_values(&values, encoding, base, |v| v as u8),
            nulls,
        )),
        2 => Arc::new(PrimitiveArray::<UInt16Type>::new(
            packed_values(&values, encoding, base, |v| v as u16),
            nulls,
        )),
        _ => Arc::new(PrimitiveArray::<UInt32Type>::new(
            packed_values(&values, encoding, base, |v| v as u32),
            nulls,
        )),
    };
    let marks = vec![
        (ENCODING_KEY.to_string(), encoding.to_string()),
        (BASE_KEY.to_string(), base.to_string()),
    ];
    Some((marks, narrowed))
}

/// Each value's offset from `base` (or, for `delta`, its step from the
/// value before, the first's from `base`), cut to the narrow type by `cut`.
fn packed_values<T: Wide, N: arrow::datatypes::ArrowNativeType>(
    values: &[T],
    encoding: &str,
    base: i64,
    cut: impl Fn(u64) -> N,
) -> ScalarBuffer<N> {
    if encoding == ENCODING_DELTA {
        let mut previous = base;
        values
            .iter()
            .map(|&v| {
                let v: i64 = v.into();
                let step = v.wrapping_sub(previous) as u64;
                previous = v;
                cut(step)
            })
            .collect()
    } else {
        values
            .iter()
            .map(|&v| {
                let v: i64 = v.into();
                cut(v.wrapping_sub(base) as u64)
            })
            .collect()
    }
}

/// The largest step from one value to the next, as an unsigned number: a
/// step down wraps to more than any narrower width holds, so a column that
/// ever goes down is never written as steps.
fn largest_step<T: Wide>(values: &[T]) -> u64 {
    values
        .windows(2)
        .map(|pair| {
            let (a, b): (i64, i64) = (pair[0].into(), pair[1].into());
            b.wrapping_sub(a) as u64
        })
        .max()
        .unwrap_or(0)
}

/// Field metadata a packed column gains besides its original type.
type Marks = Vec<(String, String)>;

/// The marks of a `counter` column starting at `first`.
fn counter_marks(first: &str) -> Marks {
    vec![
        (ENCODING_KEY.to_string(), ENCODING_COUNTER.to_string()),
        (FIRST_KEY.to_string(), first.to_string()),
    ]
}

/// The first id of a column whose values, with no NULLs, count up by one
/// from it as osquery's event ids do (zero-padded to the first id's width,
/// one digit wider on each carry past it), or `None`.
fn counter_of(column: &StringArray) -> Option<&str> {
    if column.null_count() > 0 || column.is_empty() {
        return None;
    }
    let first = column.value(0);
    let mut ids = EventIdCounter::at(first)?;
    let offsets = column.value_offsets();
    let bytes = column.value_data();
    for row in 1..column.len() {
        // Offsets of a valid array are in bounds and non-decreasing.
        let value = &bytes[offsets[row] as usize..offsets[row + 1] as usize];
        if ids.advance()? != value {
            return None;
        }
    }
    Some(first)
}

/// An `offset` column (or, with `steps`, a `delta` column) widened back
/// to `original`.
fn widen(
    name: &str,
    column: &ArrayRef,
    base: i64,
    steps: bool,
    original: &DataType,
) -> Result<ArrayRef, ArrowError> {
    let values: Vec<i64> = match column.data_type() {
        DataType::UInt8 => added::<UInt8Type>(column, base, steps),
        DataType::UInt16 => added::<UInt16Type>(column, base, steps),
        DataType::UInt32 => added::<UInt32Type>(column, base, steps),
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "WAL column {name:?} is marked as offsets but is {other}"
            )));
        }
    };
    let buffer = match original {
        DataType::Int64 | DataType::Timestamp(_, _) => Buffer::from_vec(values),
        DataType::Int32 => Buffer::from_vec(values.into_iter().map(|v| v as i32).collect()),
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "WAL column {name:?} is marked as offsets of {other}, which is never packed"
            )));
        }
    };
    let data = ArrayData::builder(original.clone())
        .len(column.len())
        .add_buffer(buffer)
        .nulls(column.logical_nulls())
        .build()?;
    Ok(make_array(data))
}

/// `base` plus each offset of `column`, or with `steps`, `base` plus the
/// steps so far.
fn added<T: ArrowPrimitiveType>(column: &ArrayRef, base: i64, steps: bool) -> Vec<i64>
where
    T::Native: Into<i64>,
{
    let packed = column.as_primitive::<T>().values().iter();
    if steps {
        let mut value = base;
        packed
            .map(|&step| {
                value = value.wrapping_add(step.into());
                value
            })
            .collect()
    } else {
        packed.map(|&v| base.wrapping_add(v.into())).collect()
    }
}

/// A `counter` column of `rows` ids from `first`, as `original` (Utf8).
fn counted(
    name: &str,
    first: &str,
    rows: usize,
    original: &DataType,
) -> Result<ArrayRef, ArrowError> {
    let bad = |why: &str| {
        ArrowError::InvalidArgumentError(format!("WAL column {name:?} is a counter {why}"))
    };
    if *original != DataType::Utf8 {
        return Err(bad(&format!("of {original}, which is never packed")));
    }
    let mut ids = EventIdCounter::at(first).ok_or_else(|| bad(&format!("from {first:?}")))?;
    let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    let mut bytes: Vec<u8> = Vec::with_capacity(rows * (first.len() + 1));
    offsets.push(0);
    if rows > 0 {
        bytes.extend_from_slice(first.as_bytes());
        offsets.push(bytes.len() as i32);
    }
    for _ in 1..rows {
        let id = ids.advance().ok_or_else(|| bad("past twenty digits"))?;
        bytes.extend_from_slice(id);
        let end = i32::try_from(bytes.len()).map_err(|_| bad("too long for one batch"))?;
        offsets.push(end);
    }
    let ids = arrow::array::GenericByteArray::<Utf8Type>::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(bytes),
        None,
    )?;
    Ok(Arc::new(ids))
}

/// Whether `field` was packed: its encoding is one of this module's.
fn is_packed(field: &arrow::datatypes::Field) -> bool {
    matches!(
        field.metadata().get(ENCODING_KEY).map(String::as_str),
        Some(ENCODING_OFFSET | ENCODING_DELTA | ENCODING_COUNTER)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Schema};

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, c)| Field::new(*name, c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, c)| c).collect(),
        )
        .unwrap()
    }

    fn round_trip(original: &RecordBatch) -> RecordBatch {
        let packed = pack(original).unwrap();
        let back = unpack(packed.clone()).unwrap();
        assert_eq!(&back, original, "unpack(pack(b)) == b");
        packed
    }

    fn packed_type(packed: &RecordBatch, name: &str) -> DataType {
        packed
            .schema()
            .field_with_name(name)
            .unwrap()
            .data_type()
            .clone()
    }

    #[test]
    fn integers_take_the_narrowest_offsets_that_hold_their_range() {
        let n = 1000i64;
        let original = batch(vec![
            (
                "pid",
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| 40_000 + i % 200),
                )),
            ),
            (
                "seq",
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| -5 + i * 60))),
            ),
            (
                "global",
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| i64::MAX - i * 4_000_000),
                )),
            ),
            (
                "wide",
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * (1 << 40)))),
            ),
            (
                "version",
                Arc::new(Int32Array::from_iter_values((0..n).map(|_| 9))),
            ),
            (
                "big32",
                Arc::new(Int32Array::from_iter_values(
                    (0..n as i32).map(|i| i * 2_000_000 - i32::MAX / 2),
                )),
            ),
            (
                "time_ns",
                Arc::new(
                    TimestampNanosecondArray::from_iter_values(
                        (0..n).map(|i| 1_714_564_800_000_000_000 + i * 1_000),
                    )
                    .with_timezone("UTC"),
                ),
            ),
        ]);
        let packed = round_trip(&original);
        assert_eq!(packed_type(&packed, "pid"), DataType::UInt8);
        // Ascending in steps of 60: one byte a step, where offsets take two.
        assert_eq!(packed_type(&packed, "seq"), DataType::UInt8);
        assert_eq!(
            packed.schema().field_with_name("seq").unwrap().metadata()[ENCODING_KEY],
            ENCODING_DELTA
        );
        assert_eq!(packed_type(&packed, "global"), DataType::UInt32);
        assert_eq!(
            packed_type(&packed, "wide"),
            DataType::Int64,
            "too wide a range"
        );
        assert_eq!(packed_type(&packed, "version"), DataType::UInt8);
        assert_eq!(
            packed_type(&packed, "big32"),
            DataType::Int32,
            "no narrower"
        );
        assert_eq!(packed_type(&packed, "time_ns"), DataType::UInt16);
        // Descending: offsets, not steps.
        assert_eq!(
            packed
                .schema()
                .field_with_name("global")
                .unwrap()
                .metadata()[ENCODING_KEY],
            ENCODING_OFFSET
        );
    }

    #[test]
    fn steps_serve_ascending_columns_and_offsets_the_rest() {
        let n = 4000i64;
        let original = batch(vec![
            // Nanosecond times a batch apart: too wide for offsets of four
            // bytes, steps of two.
            (
                "ascending",
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| i * 2_000_000 + i % 7),
                )),
            ),
            // The same steps, once back down: offsets only, and too wide.
            (
                "once_down",
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| if i == n / 2 { 0 } else { i * 2_000_000 }),
                )),
            ),
            // Ascending with a NULL: offsets.
            (
                "ascending_null",
                Arc::new(Int64Array::from_iter((0..n).map(|i| (i != 9).then_some(i)))),
            ),
            (
                "flat",
                Arc::new(Int32Array::from_iter_values((0..n).map(|_| -7))),
            ),
        ]);
        let packed = round_trip(&original);
        assert_eq!(packed_type(&packed, "ascending"), DataType::UInt32);
        assert_eq!(packed_type(&packed, "once_down"), DataType::Int64);
        assert_eq!(packed_type(&packed, "ascending_null"), DataType::UInt16);
        assert_eq!(packed_type(&packed, "flat"), DataType::UInt8);
        for (offset, len) in [(1, 3000), (1999, 64), (2001, 1999)] {
            round_trip(&original.slice(offset, len));
        }
    }

    /// Random columns of every shape the packer chooses between: ranges
    /// and steps of every width, ascending or not, with and without NULLs,
    /// whole or sliced, each must come back as it was.
    #[test]
    fn random_columns_round_trip() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut packed_columns = 0;
        for round in 0..300 {
            let rows = 64 + (next() % 3000) as usize;
            let scale = 1i64 << (next() % 40);
            let start = (next() as i64) >> (next() % 64);
            let ascending = next() % 2 == 0;
            let null_every = [0, 2, 7, 1000][(next() % 4) as usize];
            let mut value = start;
            let values: Vec<Option<i64>> = (0..rows)
                .map(|i| {
                    let step = (next() as i64).rem_euclid(scale);
                    value = if ascending {
                        value.wrapping_add(step)
                    } else {
                        start.wrapping_add(step)
                    };
                    (null_every == 0 || i % null_every != 1).then_some(value)
                })
                .collect();
            let narrow: Vec<Option<i32>> = values.iter().map(|v| v.map(|v| v as i32)).collect();
            let original = batch(vec![
                ("wide", Arc::new(Int64Array::from(values)) as ArrayRef),
                ("narrow", Arc::new(Int32Array::from(narrow)) as ArrayRef),
            ]);
            let packed = round_trip(&original);
            packed_columns += packed
                .schema()
                .fields()
                .iter()
                .filter(|f| is_packed(f))
                .count();
            let offset = (next() as usize) % (rows - 63);
            let len = 64 + (next() as usize) % (rows - offset - 63);
            let slice = original.slice(offset, len);
            assert_eq!(
                unpack(pack(&slice).unwrap()).unwrap(),
                slice,
                "round {round}"
            );
        }
        assert!(
            packed_columns > 150,
            "only {packed_columns} columns were packed"
        );
    }

    #[test]
    fn extremes_nulls_and_slices_round_trip() {
        let n = 300;
        let with_nulls =
            Int64Array::from_iter((0..n).map(|i| {
                (i % 5 != 0).then_some(if i % 2 == 0 { i64::MIN } else { i64::MIN + 255 })
            }));
        let all_null = Int64Array::from_iter((0..n).map(|_| None::<i64>));
        let extreme = Int64Array::from_iter_values(
            (0..n).map(|i| if i % 2 == 0 { i64::MIN } else { i64::MAX }),
        );
        let original = batch(vec![
            ("with_nulls", Arc::new(with_nulls)),
            ("all_null", Arc::new(all_null)),
            ("extreme", Arc::new(extreme)),
        ]);
        let packed = round_trip(&original);
        assert_eq!(packed_type(&packed, "with_nulls"), DataType::UInt8);
        assert_eq!(packed_type(&packed, "all_null"), DataType::UInt8);
        assert_eq!(packed_type(&packed, "extreme"), DataType::Int64);
        // A slice packs what it shows, not the buffer behind it.
        for (offset, len) in [(1, 200), (64, 236), (17, 64)] {
            round_trip(&original.slice(offset, len));
        }
    }

    #[test]
    fn consecutive_ids_become_their_first_and_others_stay() {
        let ids = |from: u64, n: u64| {
            StringArray::from_iter_values((from..from + n).map(|i| format!("{i:010}")))
        };
        let original = batch(
            vec![
                ("eid", Arc::new(ids(1, 500))),
                // Past ten digits the ids grow one digit, as `{:010}` does.
                ("carry", Arc::new(ids(9_999_999_900, 300))),
                (
                    "gap",
                    Arc::new(StringArray::from_iter_values(
                        (0..300).map(|i| format!("{:010}", i * 2)),
                    )),
                ),
                (
                    "text",
                    Arc::new(StringArray::from_iter_values(
                        (0..300).map(|i| format!("x{i}")),
                    )),
                ),
                (
                    "null",
                    Arc::new(StringArray::from_iter(
                        (0..300).map(|i| (i > 0).then(|| format!("{i:010}"))),
                    )),
                ),
            ]
            .into_iter()
            .map(|(name, c): (&str, Arc<StringArray>)| {
                (name, Arc::new(c.slice(0, 300)) as ArrayRef)
            })
            .collect(),
        );
        let packed = round_trip(&original);
        assert_eq!(packed_type(&packed, "eid"), DataType::Null);
        assert_eq!(packed_type(&packed, "carry"), DataType::Null);
        for name in ["gap", "text", "null"] {
            assert_eq!(packed_type(&packed, name), DataType::Utf8, "{name}");
        }
        // Twenty nines are the last id a counter may hold: a column that
        // would count past them stays text.
        let up_to = |first: &str| {
            let mut ids = EventIdCounter::at(first).unwrap();
            let mut rows = vec![first.to_string()];
            while rows.len() < MIN_ROWS {
                rows.push(ids.advance().map_or_else(
                    || "overflow".to_string(),
                    |id| String::from_utf8(id.to_vec()).unwrap(),
                ));
            }
            batch(vec![(
                "eid",
                Arc::new(StringArray::from_iter_values(rows)) as ArrayRef,
            )])
        };
        let packed = round_trip(&up_to("99999999999999999936"));
        assert_eq!(packed_type(&packed, "eid"), DataType::Null);
        let packed = round_trip(&up_to("99999999999999999937"));
        assert_eq!(packed_type(&packed, "eid"), DataType::Utf8);
    }

    #[test]
    fn short_batches_and_other_types_pass_unchanged() {
        let short = batch(vec![("pid", Arc::new(Int64Array::from_iter_values(0..10)))]);
        assert_eq!(pack(&short).unwrap(), short);
        let floats = batch(vec![(
            "x",
            Arc::new(arrow::array::Float64Array::from_iter_values(
                (0..100).map(f64::from),
            )),
        )]);
        let packed = pack(&floats).unwrap();
        assert!(!packed.schema().fields().iter().any(|f| is_packed(f)));
    }

    #[test]
    fn bad_marks_are_errors_not_guesses() {
        let n = 100;
        let original = batch(vec![("pid", Arc::new(Int64Array::from_iter_values(0..n)))]);
        let packed = pack(&original).unwrap();
        let with_mark = |key: &str, value: Option<&str>| {
            let field = packed.schema().field(0).clone();
            let mut metadata = field.metadata().clone();
            match value {
                Some(v) => metadata.insert(key.to_string(), v.to_string()),
                None => metadata.remove(key),
            };
            let schema = Schema::new(vec![field.with_metadata(metadata)]);
            RecordBatch::try_new(Arc::new(schema), packed.columns().to_vec()).unwrap()
        };
        assert!(unpack(with_mark(BASE_KEY, None)).is_err());
        assert!(unpack(with_mark(BASE_KEY, Some("x"))).is_err());
        assert!(unpack(with_mark(TYPE_KEY, Some("Float64"))).is_err());
        assert!(unpack(with_mark(TYPE_KEY, Some("no such type"))).is_err());
        assert!(unpack(with_mark(ENCODING_KEY, Some(ENCODING_COUNTER))).is_err());
    }
}
