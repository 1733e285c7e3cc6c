//! Per-table Arrow batch builders: the last stop before a `RecordBatch`.
//!
//! A decoder resolves one event into a borrowed row (`…Row<'a>`), and the
//! table's builder appends it column by column into Arrow builders that are
//! reused from batch to batch. Nothing is allocated per event except when a
//! value is not valid UTF-8 (see [`crate::text`]). Every source of a table
//! (eslogger JSON today, the native ES client later) fills the same row type,
//! so the columns mean the same thing whatever the source.
//!
//! A batch for storage can leave with the file events' paths keyed:
//! [`EsProcessFileEventsBuilder::finish_keyed`] hands them over as keys
//! into their distinct values, found while each path was still in cache
//! (see [`crate::text::KeyedTextBuilder`]); `finish` gives every column in
//! its table's type.

mod bsm;
mod es;
mod osquery_events;

pub use bsm::{
    ProcessEventRow, ProcessEventsBuilder, ProcessFileEventRow, ProcessFileEventsBuilder,
    SocketEventRow, SocketEventsBuilder, UserEventRow, UserEventsBuilder,
};
pub(crate) use es::take_es_batches;
pub use es::{
    EsProcessEventRow, EsProcessEventsBuilder, EsProcessFileEventRow, EsProcessFileEventsBuilder,
    codesigning_flags_text,
};
pub use osquery_events::{EventCountersRow, PublisherCounters, counter_rows, osquery_events_batch};

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, GenericByteArray, GenericByteBuilder, NullBufferBuilder,
    PrimitiveArray, PrimitiveBuilder, StringArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ByteArrayType, DataType, FieldRef, Schema, SchemaRef};
use arrow::error::ArrowError;
use sluice_schemas::EventIdCounter;

/// Finishing a column and sizing its next buffers like this batch's, with
/// an eighth to spare: the batches of a stream are alike, so the next one
/// fills without growing (and copying) its buffers again and again. Arrow's
/// `finish` leaves a builder with no capacity at all, and at a million
/// events a second the copies of that regrowth were 2 % of the firehose's
/// CPU. The spare eighth is for the next batch holding a little more: one
/// byte over doubles the buffer, a copy of the whole batch's values, and
/// sized exactly that happened to every other batch (0.7 % of the CPU).
pub(crate) trait FinishPresized {
    /// The finished column; the builder is left empty, with room for as
    /// many values (and bytes) as it held.
    fn finish_presized(&mut self) -> ArrayRef;
}

impl<T: ArrowPrimitiveType> FinishPresized for PrimitiveBuilder<T> {
    fn finish_presized(&mut self) -> ArrayRef {
        let array = self.finish();
        // The same type, time zone included.
        *self = PrimitiveBuilder::<T>::with_capacity(with_room(array.len()))
            .with_data_type(array.data_type().clone());
        Arc::new(array)
    }
}

impl<T: ByteArrayType> FinishPresized for GenericByteBuilder<T> {
    fn finish_presized(&mut self) -> ArrayRef {
        Arc::new(finish_bytes_presized(self))
    }
}

/// `schema` with each field typed as its column in `columns` is, where
/// that is a dictionary over the field's own type (text the builders keyed,
/// see [`crate::text::KeyedTextBuilder`]); `schema` itself when none is.
pub(crate) fn keyed_schema(schema: &SchemaRef, columns: &[ArrayRef]) -> SchemaRef {
    let keyed = |(field, column): (&FieldRef, &ArrayRef)| matches!(column.data_type(), DataType::Dictionary(_, values) if values.as_ref() == field.data_type());
    if !schema.fields().iter().zip(columns).any(keyed) {
        return schema.clone();
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .zip(columns)
        .map(|(field, column)| {
            if keyed((field, column)) {
                Arc::new(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(column.data_type().clone()),
                )
            } else {
                field.clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A column of numbers being built, for the hottest builders: the values
/// in a `Vec`, and a validity bitmap only once a NULL arrives. Arrow's
/// `PrimitiveBuilder` does the same through a call per value that checks
/// and grows an aligned buffer; a file event appends seven numbers, and
/// those calls were 4 % of the firehose's CPU, on the thread that limits
/// it. The `Vec` becomes the array's buffer without a copy.
#[derive(Debug)]
pub(crate) struct NumberColumn<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
    /// The array's type: `T`'s, or a timestamp's with its time zone.
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> NumberColumn<T> {
    /// An empty column of `T`'s own type.
    pub(crate) fn new() -> Self {
        Self::of_type(T::DATA_TYPE)
    }

    /// An empty column of `data_type` (which `T` must store, as a
    /// timestamp with a time zone is stored by its unit's type).
    pub(crate) fn of_type(data_type: DataType) -> Self {
        Self {
            values: Vec::new(),
            nulls: NullBufferBuilder::new(0),
            data_type,
        }
    }

    /// Appends a value.
    #[inline]
    pub(crate) fn append_value(&mut self, value: T::Native) {
        self.values.push(value);
        self.nulls.append_non_null();
    }

    /// Appends a value or a NULL.
    #[inline]
    pub(crate) fn append_option(&mut self, value: Option<T::Native>) {
        match value {
            Some(value) => self.append_value(value),
            None => {
                self.values.push(T::Native::default());
                self.nulls.append_null();
            }
        }
    }
}

impl<T: ArrowPrimitiveType> FinishPresized for NumberColumn<T> {
    fn finish_presized(&mut self) -> ArrayRef {
        let rows = self.values.len();
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(with_room(rows)));
        let nulls = self.nulls.finish();
        Arc::new(
            PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls)
                .with_data_type(self.data_type.clone()),
        )
    }
}

/// [`FinishPresized`] for a byte builder, keeping the array's own type for
/// callers that look at its bytes before they hand it on.
pub(crate) fn finish_bytes_presized<T: ByteArrayType>(
    builder: &mut GenericByteBuilder<T>,
) -> GenericByteArray<T> {
    let array = builder.finish();
    *builder = GenericByteBuilder::<T>::with_capacity(
        with_room(array.len()),
        with_room(array.values().len()),
    );
    array
}

/// `n` and an eighth more: room for a next batch a little larger.
fn with_room(n: usize) -> usize {
    n.saturating_add(n / 8)
}

/// Writes `v` in `radix` (8 or 10) into the end of `buf`, at least
/// `min_digits` digits (zero-padded), and returns the digits. A hand loop:
/// `core::fmt` costs more than the rest of a row.
#[inline]
fn digits(buf: &mut [u8; 24], mut v: u64, radix: u64, min_digits: usize) -> &str {
    let mut at = buf.len();
    while v > 0 || buf.len() - at < min_digits.max(1) {
        at -= 1;
        buf[at] = b'0' + (v % radix) as u8;
        v /= radix;
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// The `eid` column of one table: osquery's event ids, counted from one
/// (see [`EventIdCounter`]).
///
/// A row only counts itself in; the ids are written out when the batch
/// finishes, all at once. Ids are consecutive, so nothing about a row is
/// needed to make its id, and writing them in one loop skips what appending
/// each to a `StringBuilder` cost: a UTF-8 check and a capacity check per
/// row, about 2 % of the firehose's CPU. The batch's digits are checked as
/// UTF-8 once, by arrow, when the column is made.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventIds {
    counter: EventIdCounter,
    /// Rows appended since the last [`finish`](Self::finish).
    pending: usize,
}

impl EventIds {
    /// Gives the next row the next id.
    #[inline]
    pub(crate) fn append_next(&mut self) {
        self.pending += 1;
    }

    /// The ids of the rows appended since the last finish, in order. Past
    /// twenty nines (10^20 events) an id would be empty rather than wrap.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let rows = std::mem::take(&mut self.pending);
        // Ten digits each until the ten-billionth event.
        let mut values = Vec::with_capacity(rows * 10);
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        for _ in 0..rows {
            values.extend_from_slice(self.counter.advance().unwrap_or_default());
            let end = i32::try_from(values.len()).map_err(|_| {
                ArrowError::ComputeError(format!(
                    "eid: {rows} ids in one batch exceed a string column's 2 GiB"
                ))
            })?;
            offsets.push(end);
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        Ok(Arc::new(StringArray::try_new(
            offsets,
            Buffer::from_vec(values),
            None,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn event_ids_count_from_one_in_ten_digits_across_batches() {
        let mut ids = EventIds::default();
        let mut next = 1u64;
        for batch_rows in [1_000, 0, 1, 37] {
            for _ in 0..batch_rows {
                ids.append_next();
            }
            let column = ids.finish().unwrap();
            let column = column.as_string::<i32>();
            assert_eq!(column.len(), batch_rows);
            assert_eq!(column.null_count(), 0);
            for id in column.iter() {
                assert_eq!(id, Some(format!("{next:010}").as_str()));
                next += 1;
            }
        }
    }
}
