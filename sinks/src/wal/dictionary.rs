//! Repetitive text leaves the WAL record as a dictionary.
//!
//! A WAL record is written, copied into the page cache and flushed to disk
//! for every batch, at the full rate of the source, and read back only
//! after a crash. At maximum rate on a small host the disk, not the CPU, was
//! the limit: a file event was 272 bytes of Arrow IPC, 114 of them its
//! `filename` and 66 the acting process's `path`, which repeats for every
//! event of that process. So before a batch is encoded, each text or binary
//! column that repeats enough is replaced by a dictionary of its distinct
//! values and one small key per row (1, 2 or 4 bytes), and a column that is
//! entirely NULL (the `*_bytes` columns, which hold only text that is not
//! UTF-8) by a dictionary with no values. A file event's record shrinks to
//! about a third.
//!
//! The file events' paths usually arrive keyed already: the builders make
//! the same dictionary while each row's bytes are still in cache (see
//! `sluice_schemas::DistinctValues`), which costs less than reading every
//! row here, megabytes later. Such a column is only marked.
//!
//! Each replaced field carries [`ENCODING_KEY`] in its metadata, and replay
//! turns exactly those columns back into their original type, so a record
//! decodes to the batch that was appended, schema and all (a column the
//! builders keyed comes back as plain text, the table's type). Columns that are
//! mostly distinct (`eid`) are found out within the first [`FIRST_CHECK`]
//! rows and written as they are. Records written before this
//! carry no marker and decode as before.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, GenericByteArray, RecordBatch};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{BinaryType, ByteArrayType, DataType, Field, Schema, SchemaRef, Utf8Type};
use arrow::error::ArrowError;
use sluice_schemas::{DistinctValues, key_bytes, keyed_array};

/// Field metadata key marking a column the WAL dictionary-encoded; its value
/// is [`ENCODING_DICTIONARY`].
pub(crate) const ENCODING_KEY: &str = "sluice.wal.encoding";
/// The only encoding so far.
const ENCODING_DICTIONARY: &str = "dictionary";
/// Columns shorter than this are written as they are: a dictionary's fixed
/// costs would eat what it saves.
const MIN_ROWS: usize = 64;
/// After this many rows the encoder gives up on a column whose values so
/// far are nearly all distinct (an id), so that such a column costs little
/// hashing even in a small batch. Early values of a repetitive column are
/// often distinct too, so only this extreme is judged so soon.
const FIRST_CHECK: usize = 512;
/// How often (in rows) it checks again after that.
const CHECK_EVERY: usize = 1024;

/// `batch` with its repetitive text and binary columns dictionary-encoded
/// and marked, ready to be written to the WAL. Returns the batch itself
/// (a cheap clone) when no column pays.
pub(crate) fn shrink(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    replace_columns(batch, |field, column| {
        let encoded = match column.data_type() {
            DataType::Utf8 => dictionary_encode(column.as_bytes::<Utf8Type>())?,
            DataType::Binary => dictionary_encode(column.as_bytes::<BinaryType>())?,
            // Keyed already, by the builders: only the mark is missing, so
            // that replay gives the column back as its values' type.
            DataType::Dictionary(_, values)
                if is_keyed_text(values) && !field.metadata().contains_key(ENCODING_KEY) =>
            {
                Some(column.clone())
            }
            _ => None,
        };
        Ok(encoded.map(|dictionary| {
            let marked = retyped(field, dictionary.data_type().clone(), |metadata| {
                metadata.insert(ENCODING_KEY.to_string(), ENCODING_DICTIONARY.to_string());
            });
            (marked, dictionary)
        }))
    })
}

/// Whether a dictionary over `values` is a text column in dictionary form:
/// the only dictionaries storage takes, and those it gives back (on replay,
/// to queries) as `values`.
pub(crate) fn is_keyed_text(values: &DataType) -> bool {
    matches!(values, DataType::Utf8 | DataType::Binary)
}

/// The schema queries and Parquet files see for batches of `schema`: each
/// text column in dictionary form as its values' type, the fields'
/// metadata kept. The same `Arc` when there is none.
pub(crate) fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let keyed =
        |field: &Field| matches!(field.data_type(), DataType::Dictionary(_, v) if is_keyed_text(v));
    if !schema.fields().iter().any(|f| keyed(f)) {
        return schema.clone();
    }
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Dictionary(_, values) if is_keyed_text(values) => Arc::new(
                field
                    .as_ref()
                    .clone()
                    .with_data_type(values.as_ref().clone()),
            ),
            _ => field.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Undoes [`shrink`]: every marked column back to its value type, the
/// marker removed. Unmarked columns, and batches without any, pass as they
/// are.
pub(crate) fn restore(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    replace_columns(&batch, |field, column| {
        match field.metadata().get(ENCODING_KEY).map(String::as_str) {
            None => Ok(None),
            Some(ENCODING_DICTIONARY) => {
                let DataType::Dictionary(_, value_type) = column.data_type() else {
                    return Err(ArrowError::InvalidArgumentError(format!(
                        "WAL column {:?} is marked as a dictionary but is {}",
                        field.name(),
                        column.data_type()
                    )));
                };
                let value_type = value_type.as_ref().clone();
                let plain = arrow::compute::cast(column, &value_type)?;
                let field = retyped(field, value_type, |metadata| {
                    metadata.remove(ENCODING_KEY);
                });
                Ok(Some((field, plain)))
            }
            Some(other) => Err(ArrowError::InvalidArgumentError(format!(
                "WAL column {:?} has an unknown encoding {other:?}",
                field.name()
            ))),
        }
    })
}

/// `field` as `data_type`, its metadata changed by `edit`: how a WAL pass
/// marks a column it encodes, and how replay unmarks it.
pub(super) fn retyped(
    field: &Field,
    data_type: DataType,
    edit: impl FnOnce(&mut HashMap<String, String>),
) -> Field {
    let mut metadata = field.metadata().clone();
    edit(&mut metadata);
    field
        .clone()
        .with_data_type(data_type)
        .with_metadata(metadata)
}

/// `batch` with each column for which `replace` returns a new field and
/// column swapped for them, the others and the schema's metadata kept.
/// Returns the batch itself (a cheap clone) when nothing is replaced.
pub(super) fn replace_columns(
    batch: &RecordBatch,
    mut replace: impl FnMut(&Field, &ArrayRef) -> Result<Option<(Field, ArrayRef)>, ArrowError>,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let mut fields: Vec<Arc<Field>> = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    let mut replaced = false;
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match replace(field, column)? {
            Some((field, column)) => {
                fields.push(Arc::new(field));
                columns.push(column);
                replaced = true;
            }
            None => {
                fields.push(Arc::clone(field));
                columns.push(Arc::clone(column));
            }
        }
    }
    if !replaced {
        return Ok(batch.clone());
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
}

/// The dictionary form of `array`, or `None` when it would not be smaller.
fn dictionary_encode<T>(array: &GenericByteArray<T>) -> Result<Option<ArrayRef>, ArrowError>
where
    T: ByteArrayType<Offset = i32>,
{
    let rows = array.len();
    if rows < MIN_ROWS {
        return Ok(None);
    }
    let nulls = array.nulls();
    if array.null_count() == rows {
        // Keys of one byte, all NULL, over no values.
        let values = GenericByteArray::<T>::new(OffsetBuffer::new_empty(), Buffer::default(), None);
        return keyed_array(vec![0; rows], nulls.cloned(), Arc::new(values)).map(Some);
    }
    let offsets = array.value_offsets();
    let data = array.value_data();
    let mut codes: Vec<u32> = Vec::with_capacity(rows);
    let mut distinct = DistinctValues::new();
    for row in 0..rows {
        let code = if nulls.is_some_and(|n| n.is_null(row)) {
            0
        } else {
            // Offsets of a valid array are in bounds and non-decreasing.
            match distinct.code(&data[offsets[row] as usize..offsets[row + 1] as usize]) {
                Some(code) => code,
                // Over 2 GiB of distinct text: no dictionary holds it.
                None => return Ok(None),
            }
        };
        codes.push(code);
        if row + 1 == FIRST_CHECK && distinct.len() * 10 > FIRST_CHECK * 9 {
            return Ok(None);
        }
        if (row + 1) % CHECK_EVERY == 0 {
            let seen = row + 1;
            let plain = (offsets[seen] - offsets[0]) as usize + 4 * seen;
            // Keys of up to 4 bytes, the values and their offsets.
            let encoded = 4 * seen + distinct.value_bytes() + 4 * distinct.len();
            if encoded * 4 > plain * 3 {
                return Ok(None);
            }
        }
    }
    let plain = (offsets[rows] - offsets[0]) as usize + 4 * rows;
    if key_bytes(distinct.len()) * rows + distinct.value_bytes() + 4 * distinct.len() >= plain {
        return Ok(None);
    }
    let (bytes, ends) = distinct.take_values();
    let values = GenericByteArray::<T>::try_new(
        OffsetBuffer::new(ScalarBuffer::from(ends)),
        Buffer::from_vec(bytes),
        None,
    )?;
    keyed_array(codes, nulls.cloned(), Arc::new(values)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, DictionaryArray, Int64Array, StringArray};
    use arrow::datatypes::{UInt8Type, UInt16Type};
    use std::collections::HashMap as StdHashMap;

    fn sample(rows: usize) -> RecordBatch {
        let processes = [
            "/usr/bin/ssh",
            "/Applications/Safari.app/Contents/MacOS/Safari",
        ];
        let path = StringArray::from_iter(
            (0..rows).map(|i| (i % 7 != 3).then(|| processes[i % 2].to_string())),
        );
        let eid = StringArray::from_iter_values((0..rows).map(|i| format!("{i:012x}")));
        let raw = BinaryArray::from_iter((0..rows).map(|_| None::<&[u8]>));
        let time = Int64Array::from_iter_values((0..rows).map(|i| i as i64));
        let mut metadata = StdHashMap::new();
        metadata.insert("hidden".to_string(), "false".to_string());
        let schema = Schema::new_with_metadata(
            vec![
                Field::new("path", DataType::Utf8, true).with_metadata(metadata),
                Field::new("eid", DataType::Utf8, false),
                Field::new("path_bytes", DataType::Binary, true),
                Field::new("time", DataType::Int64, false),
            ],
            [("table".to_string(), "t".to_string())].into(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(path), Arc::new(eid), Arc::new(raw), Arc::new(time)],
        )
        .unwrap()
    }

    #[test]
    fn repetitive_and_null_columns_shrink_and_come_back_exactly() {
        let batch = sample(5000);
        let small = shrink(&batch).unwrap();
        let types: Vec<DataType> = small
            .columns()
            .iter()
            .map(|c| c.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8)),
                // Every eid is distinct: not worth a dictionary.
                DataType::Utf8,
                DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Binary)),
                DataType::Int64,
            ]
        );
        assert!(small.get_array_memory_size() < batch.get_array_memory_size());
        assert_eq!(restore(small).unwrap(), batch);
    }

    #[test]
    fn many_distinct_values_take_wider_keys() {
        let rows = 300_000;
        let names = StringArray::from_iter_values(
            (0..rows)
                .map(|i| format!("/Users/alice/Library/Caches/com.example.app/{:05}", i % 300)),
        );
        // Each of 70,000 names four times in a row: more than 16-bit keys hold.
        let wide = StringArray::from_iter_values((0..rows).map(|i| {
            format!(
                "/Users/alice/Library/Caches/com.example.app/{:06}",
                (i / 4) % 70_000
            )
        }));
        let batch = RecordBatch::try_from_iter([
            ("names", Arc::new(names) as ArrayRef),
            ("wide", Arc::new(wide) as ArrayRef),
        ])
        .unwrap();
        let small = shrink(&batch).unwrap();
        assert_eq!(
            small.column(0).data_type(),
            &DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
        );
        assert_eq!(
            small.column(1).data_type(),
            &DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
        );
        assert_eq!(restore(small).unwrap(), batch);
    }

    #[test]
    fn short_and_unmarked_batches_pass_unchanged() {
        let batch = sample(MIN_ROWS - 1);
        let same = shrink(&batch).unwrap();
        assert_eq!(same.schema(), batch.schema());
        assert_eq!(restore(same).unwrap(), batch);
        // A plain dictionary column without the marker is the caller's own.
        let dict: DictionaryArray<UInt8Type> = vec!["a", "b", "a"].into_iter().collect();
        let own = RecordBatch::try_from_iter([("d", Arc::new(dict) as ArrayRef)]).unwrap();
        assert_eq!(restore(own.clone()).unwrap(), own);
    }

    /// Batches cut from larger ones (non-zero offsets into shared buffers),
    /// NULLs in every position and bytes that are not UTF-8 all come back
    /// as they went in, whatever the keys' width.
    #[test]
    fn slices_nulls_and_raw_bytes_round_trip() {
        let rows = 3000;
        let text = StringArray::from_iter(
            (0..rows)
                .map(|i| (i % 5 != 0).then(|| format!("/private/var/folders/{}/T/file", i % 40))),
        );
        let raw = BinaryArray::from_iter(
            (0..rows).map(|i| (i % 3 == 0).then(|| vec![0xff, 0xfe, (i % 7) as u8])),
        );
        let batch = RecordBatch::try_from_iter([
            ("text", Arc::new(text) as ArrayRef),
            ("raw", Arc::new(raw) as ArrayRef),
        ])
        .unwrap();
        for (offset, len) in [(0, rows), (1, 700), (333, 2000), (2999, 1), (1500, 64)] {
            let slice = batch.slice(offset, len);
            let small = shrink(&slice).unwrap();
            if len >= MIN_ROWS {
                assert!(
                    matches!(small.column(0).data_type(), DataType::Dictionary(..)),
                    "slice {offset}+{len}"
                );
            }
            assert_eq!(restore(small).unwrap(), slice, "slice {offset}+{len}");
        }
    }

    /// Thousands of values of every length from empty up, many sharing
    /// long prefixes or suffixes, in runs and not: each row keeps its own
    /// value, and the dictionary holds each value once, in first-seen order.
    #[test]
    fn distinct_values_are_kept_once_in_first_seen_order() {
        let mut state = 7u64;
        let mut draw = move |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let values: Vec<String> = (0..20_000)
            .map(|_| {
                let n = draw(600);
                match draw(3) {
                    0 => format!("/Users/alice/Library/Caches/{n}"),
                    1 => format!("{n}/a/common/suffix.plist"),
                    _ => "x".repeat(n as usize % 40),
                }
            })
            .collect();
        let column = StringArray::from_iter(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| (i % 11 != 5).then_some(v.as_str())),
        );
        let batch =
            RecordBatch::try_from_iter([("v", Arc::new(column.clone()) as ArrayRef)]).unwrap();
        let small = shrink(&batch).unwrap();
        let dictionary = small.column(0).as_dictionary::<UInt16Type>();
        let mut first_seen: Vec<&str> = Vec::new();
        for value in column.iter().flatten() {
            if !first_seen.contains(&value) {
                first_seen.push(value);
            }
        }
        let stored: Vec<&str> = dictionary
            .values()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(stored, first_seen);
        assert_eq!(restore(small).unwrap(), batch);
    }

    #[test]
    fn an_unknown_encoding_is_an_error_not_a_guess() {
        let batch = sample(100);
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[3] = fields[3]
            .clone()
            .with_metadata([(ENCODING_KEY.to_string(), "delta".to_string())].into());
        let odd =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec()).unwrap();
        let err = restore(odd).unwrap_err().to_string();
        assert!(err.contains("unknown encoding \"delta\""), "{err}");
    }
}
