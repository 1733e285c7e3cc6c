//! Dictionary-encoded column chunks written without the parquet crate's
//! per-row machinery.
//!
//! Before a batch is logged, the WAL replaces each repetitive text column by
//! a dictionary of its distinct values and one small key per row
//! (`wal/dictionary.rs`), and the roller is handed that form. The parquet
//! crate's writer would hash every row's string again to build the same
//! dictionary for the column chunk: at a firehose's maximum rate, that
//! second hashing was a fifth of all the CPU sluice spent.
//!
//! So for a column that Parquet would write dictionary-encoded and without
//! statistics ([`eligible`]: free text and the unordered columns), this
//! module writes the chunk itself:
//! - text: the WAL dictionaries of the row group's slices are merged (by
//!   hashing distinct values only, and not at all when the row group is
//!   one slice), so no row's string is hashed or copied;
//! - integers (`pid`, `parent`, `version`): each value is looked up in an
//!   open-addressing table of the few hundred distinct values, a multiply
//!   and a compare, where the parquet crate's interner hashes each value
//!   with its general hasher and buffers levels and indices per mini-batch.
//!
//! The dictionary page holds the distinct values PLAIN, and each data page
//! its rows' keys bit-packed (RLE_DICTIONARY) after their definition levels,
//! compressed as the properties say. Pages, offset index and encodings are
//! those a Parquet reader expects of a dictionary column; only the choice
//! of runs differs from the parquet crate's (it also looks for repeated
//! keys, which zstd finds anyway).
//!
//! A column this module cannot write as Parquet would ([`encode`] returns
//! `None`: a dictionary larger than the dictionary page limit, which Parquet
//! would abandon for plain pages, or a column of NULLs only) goes through
//! the parquet crate's writer as before.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, BooleanBufferBuilder};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::datatypes::{
    ArrowDictionaryKeyType, ArrowNativeType, ArrowPrimitiveType, DataType, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type,
};
use arrow::util::bit_chunk_iterator::BitChunks;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, ColumnDescriptor};

/// An encoded column chunk, ready for `SerializedRowGroupWriter::append_column`.
pub(super) struct DictionaryChunk {
    /// The chunk's pages (dictionary page first), headers included.
    pub(super) bytes: Bytes,
    /// Its metadata, with offsets relative to the start of `bytes`.
    pub(super) close: ColumnCloseResult,
}

/// Whether `column` is written by this module when every slice of a row
/// group holds it as a dictionary: Parquet would dictionary-encode it
/// (flat, optional or required, text, binary or integer, no other encoding
/// asked for) and keep no statistics, bloom filter or column index for it,
/// so nothing but its values and their places needs computing.
pub(super) fn eligible(properties: &WriterProperties, column: &ColumnDescriptor) -> bool {
    let path = column.path();
    matches!(
        column.physical_type(),
        PhysicalType::BYTE_ARRAY | PhysicalType::INT32 | PhysicalType::INT64
    ) && column.max_rep_level() == 0
        && column.max_def_level() <= 1
        && properties.dictionary_enabled(path)
        && properties.encoding(path).is_none()
        && properties.statistics_enabled(path) == EnabledStatistics::None
        && properties.bloom_filter_properties(path).is_none()
        && matches!(
            properties.compression(path),
            Compression::ZSTD(_) | Compression::UNCOMPRESSED
        )
}

/// Whether [`encode`] takes `array` for `column` (an [`eligible`] one):
/// for a text or binary column, a WAL dictionary ([`is_wal_dictionary`]);
/// for an integer column, plain Int32 or Int64 values of its width, whose
/// Parquet values are their own bits.
pub(super) fn takes(column: &ColumnDescriptor, array: &dyn Array) -> bool {
    match column.physical_type() {
        PhysicalType::BYTE_ARRAY => is_wal_dictionary(array),
        PhysicalType::INT32 => array.data_type() == &DataType::Int32,
        PhysicalType::INT64 => array.data_type() == &DataType::Int64,
        _ => false,
    }
}

/// Whether `array` is a dictionary of text or binary values keyed by u8,
/// u16 or u32, as the WAL makes them.
pub(super) fn is_wal_dictionary(array: &dyn Array) -> bool {
    match array.data_type() {
        DataType::Dictionary(key, value) => {
            matches!(
                key.as_ref(),
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32
            ) && matches!(value.as_ref(), DataType::Utf8 | DataType::Binary)
        }
        _ => false,
    }
}

/// The chunk of `column` holding `slices` (in order; each one it
/// [`takes`]), or `None` when Parquet would not write it as one dictionary
/// (see the module doc) and the caller should encode it instead. `column`
/// must be [`eligible`] under `properties`.
pub(super) fn encode(
    column: ColumnDescPtr,
    slices: &[ArrayRef],
    properties: &WriterProperties,
) -> Result<Option<DictionaryChunk>, ParquetError> {
    let limit = properties.column_dictionary_page_size_limit(column.path());
    let keyed = match column.physical_type() {
        PhysicalType::BYTE_ARRAY => Merged::of(slices)?.and_then(|merged| merged.keyed(limit)),
        PhysicalType::INT32 => interned::<Int32Type>(slices, limit),
        PhysicalType::INT64 => interned::<Int64Type>(slices, limit),
        _ => None,
    };
    match keyed {
        Some(keyed) => write_chunk(column, keyed, properties).map(Some),
        None => Ok(None),
    }
}

/// A column as a dictionary and keys, ready to be written.
struct Keyed {
    /// The dictionary page's body (PLAIN), uncompressed.
    dictionary_page: Vec<u8>,
    /// Values in the dictionary (at least one).
    distinct: usize,
    /// One key per non-NULL row, in row order.
    keys: Vec<u32>,
    /// Which rows are non-NULL; `None` when all are.
    validity: Option<BooleanBufferBuilder>,
    /// Rows, NULLs included.
    rows: usize,
}

/// Writes `keyed` as the chunk of `column`.
fn write_chunk(
    column: ColumnDescPtr,
    keyed: Keyed,
    properties: &WriterProperties,
) -> Result<DictionaryChunk, ParquetError> {
    let path = column.path();
    let nullable = column.max_def_level() == 1;
    if !nullable && keyed.keys.len() != keyed.rows {
        return Err(ParquetError::General(format!(
            "column {path} is required but {} of its {} values are NULL",
            keyed.rows - keyed.keys.len(),
            keyed.rows
        )));
    }
    let compression = properties.compression(path);
    let mut compressor = match compression {
        Compression::ZSTD(level) => Some(zstd::bulk::Compressor::new(level.compression_level())?),
        _ => None,
    };
    let mut compress = |body: Vec<u8>| -> Result<(Bytes, usize), ParquetError> {
        let plain = body.len();
        let stored = match compressor.as_mut() {
            Some(compressor) => compressor.compress(&body)?,
            None => body,
        };
        Ok((Bytes::from(stored), plain))
    };

    let mut sink = TrackedWrite::new(Vec::new());
    let mut specs: Vec<PageWriteSpec> = Vec::new();
    let mut offset_index = OffsetIndexBuilder::new();
    {
        let mut pages = SerializedPageWriter::new(&mut sink);
        let (buf, plain) = compress(keyed.dictionary_page)?;
        let page = Page::DictionaryPage {
            buf,
            num_values: u32::try_from(keyed.distinct).map_err(too_many)?,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        specs.push(pages.write_page(CompressedPage::new(page, plain))?);

        let bit_width = bits_for(keyed.distinct - 1);
        let page_rows = properties.data_page_row_count_limit().max(1);
        let mut key_start = 0;
        let mut row_start = 0;
        while row_start < keyed.rows {
            let rows = page_rows.min(keyed.rows - row_start);
            let mut body = Vec::new();
            let present = match &keyed.validity {
                Some(validity) if nullable => {
                    write_definition_levels(&mut body, validity, row_start, rows)
                }
                _ => {
                    if nullable {
                        write_all_present_levels(&mut body, rows);
                    }
                    rows
                }
            };
            body.push(bit_width);
            write_bit_packed(
                &mut body,
                &keyed.keys[key_start..key_start + present],
                bit_width,
            );
            key_start += present;
            let (buf, plain) = compress(body)?;
            let page = Page::DataPage {
                buf,
                num_values: u32::try_from(rows).map_err(too_many)?,
                encoding: Encoding::RLE_DICTIONARY,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            };
            let spec = pages.write_page(CompressedPage::new(page, plain))?;
            offset_index.append_offset_and_size(
                i64::try_from(spec.offset).map_err(too_many)?,
                i32::try_from(spec.compressed_size).map_err(too_many)?,
            );
            offset_index.append_row_count(rows as i64);
            specs.push(spec);
            row_start += rows;
        }
        pages.close()?;
    }
    let bytes = Bytes::from(sink.into_inner()?);

    let data_pages = specs.len() - 1;
    let size = |pick: fn(&PageWriteSpec) -> usize| {
        i64::try_from(specs.iter().map(pick).sum::<usize>()).map_err(too_many)
    };
    let metadata = ColumnChunkMetaData::builder(column)
        .set_compression(compression)
        .set_encodings_mask(EncodingMask::new_from_encodings(
            [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
        ))
        .set_page_encoding_stats(vec![
            PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            },
            PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: Encoding::RLE_DICTIONARY,
                count: i32::try_from(data_pages).map_err(too_many)?,
            },
        ])
        .set_total_compressed_size(size(|spec| spec.compressed_size)?)
        .set_total_uncompressed_size(size(|spec| spec.uncompressed_size)?)
        .set_num_values(i64::try_from(keyed.rows).map_err(too_many)?)
        .set_dictionary_page_offset(Some(specs[0].offset as i64))
        .set_data_page_offset(specs.get(1).map_or(0, |spec| spec.offset as i64))
        .build()?;
    let close = ColumnCloseResult {
        bytes_written: bytes.len() as u64,
        rows_written: keyed.rows as u64,
        metadata,
        bloom_filter: None,
        column_index: None,
        offset_index: (!properties.offset_index_disabled()).then(|| offset_index.build()),
    };
    Ok(DictionaryChunk { bytes, close })
}

fn too_many(_: impl std::fmt::Debug) -> ParquetError {
    ParquetError::General("column chunk too large for Parquet's 32-bit counts".into())
}

/// The row group's slices as one dictionary: the values any slice uses,
/// each once, and every non-NULL row's key into them.
struct Merged<'a> {
    /// Distinct values, in order of first use.
    values: Vec<&'a [u8]>,
    /// Bytes of `values`.
    value_bytes: usize,
    /// One key per non-NULL row, in row order.
    keys: Vec<u32>,
    /// Which rows are non-NULL; `None` when all are.
    validity: Option<BooleanBufferBuilder>,
    /// Rows, NULLs included.
    rows: usize,
}

impl<'a> Merged<'a> {
    /// Merges `slices`, or `None` if one is not a WAL dictionary or has
    /// NULL values (which its keys could not say).
    fn of(slices: &'a [ArrayRef]) -> Result<Option<Merged<'a>>, ParquetError> {
        let rows: usize = slices.iter().map(|slice| slice.len()).sum();
        let any_null = slices.iter().any(|slice| slice.null_count() > 0);
        let mut merged = Merged {
            values: Vec::new(),
            value_bytes: 0,
            keys: Vec::with_capacity(rows),
            validity: any_null.then(|| BooleanBufferBuilder::new(rows)),
            rows,
        };
        // Values already taken, once a second slice needs them looked up.
        let mut known: Option<HashMap<&'a [u8], u32, foldhash::fast::RandomState>> = None;
        for (index, slice) in slices.iter().enumerate() {
            if !is_wal_dictionary(slice.as_ref()) {
                return Ok(None);
            }
            if index == 1 {
                let mut map = HashMap::with_capacity_and_hasher(
                    merged.values.len(),
                    foldhash::fast::RandomState::default(),
                );
                for (code, value) in merged.values.iter().enumerate() {
                    map.insert(*value, code as u32);
                }
                known = Some(map);
            }
            let added = match slice.data_type() {
                DataType::Dictionary(key, _) => match key.as_ref() {
                    DataType::UInt8 => merged.add::<UInt8Type>(slice, known.as_mut()),
                    DataType::UInt16 => merged.add::<UInt16Type>(slice, known.as_mut()),
                    _ => merged.add::<UInt32Type>(slice, known.as_mut()),
                },
                _ => false,
            };
            if !added {
                return Ok(None);
            }
        }
        Ok(Some(merged))
    }

    /// Appends one slice's rows; false if its values hold NULLs.
    fn add<K: ArrowDictionaryKeyType>(
        &mut self,
        slice: &'a ArrayRef,
        mut known: Option<&mut HashMap<&'a [u8], u32, foldhash::fast::RandomState>>,
    ) -> bool {
        let dictionary = slice.as_dictionary::<K>();
        let values = dictionary.values();
        if values.null_count() > 0 {
            return false;
        }
        let (offsets, data): (&OffsetBuffer<i32>, &Buffer) = match values.data_type() {
            DataType::Utf8 => {
                let text = values.as_string::<i32>();
                (text.offsets(), text.values())
            }
            _ => {
                let binary = values.as_binary::<i32>();
                (binary.offsets(), binary.values())
            }
        };
        let value = |code: usize| -> &'a [u8] {
            let (start, end) = (offsets[code].as_usize(), offsets[code + 1].as_usize());
            &data.as_slice()[start..end]
        };
        // Each of this slice's dictionary codes, once seen, maps to its
        // merged key, so a value is looked up once per slice, not per row.
        let mut remap = vec![u32::MAX; values.len()];
        let keys = dictionary.keys();
        let mut take = |code: usize, merged: &mut Merged<'a>| -> u32 {
            let mapped = remap[code];
            if mapped != u32::MAX {
                return mapped;
            }
            let bytes = value(code);
            let mapped = match known.as_deref_mut() {
                Some(map) => *map.entry(bytes).or_insert_with(|| merged.push(bytes)),
                None => merged.push(bytes),
            };
            remap[code] = mapped;
            mapped
        };
        match keys.nulls() {
            Some(nulls) => {
                for (code, present) in keys.values().iter().zip(nulls.iter()) {
                    if present {
                        let key = take(code.as_usize(), self);
                        self.keys.push(key);
                    }
                }
                if let Some(validity) = self.validity.as_mut() {
                    validity.append_buffer(nulls.inner());
                }
            }
            None => {
                for code in keys.values().iter() {
                    let key = take(code.as_usize(), self);
                    self.keys.push(key);
                }
                if let Some(validity) = self.validity.as_mut() {
                    validity.append_n(keys.len(), true);
                }
            }
        }
        true
    }

    /// Adds a new distinct value and returns its key.
    fn push(&mut self, value: &'a [u8]) -> u32 {
        self.values.push(value);
        self.value_bytes += value.len();
        (self.values.len() - 1) as u32
    }

    /// Size of the PLAIN dictionary page: a 4-byte length per value, then
    /// its bytes.
    fn dictionary_page_bytes(&self) -> usize {
        4 * self.values.len() + self.value_bytes
    }

    /// The merged column, or `None` if it has no values or its dictionary
    /// page would be over `limit` bytes.
    fn keyed(self, limit: usize) -> Option<Keyed> {
        if self.values.is_empty() || self.dictionary_page_bytes() > limit {
            return None;
        }
        let mut page = Vec::with_capacity(self.dictionary_page_bytes());
        for value in &self.values {
            page.extend_from_slice(&(value.len() as u32).to_le_bytes());
            page.extend_from_slice(value);
        }
        Some(Keyed {
            dictionary_page: page,
            distinct: self.values.len(),
            keys: self.keys,
            validity: self.validity,
            rows: self.rows,
        })
    }
}

/// Integer `slices` (each of type `T`) as a dictionary of their distinct
/// values, in order of first use, and keys; `None` if a slice is of another
/// type, every row is NULL, or the dictionary page would be over `limit`
/// bytes.
fn interned<T>(slices: &[ArrayRef], limit: usize) -> Option<Keyed>
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    let width = std::mem::size_of::<T::Native>();
    let rows: usize = slices.iter().map(|slice| slice.len()).sum();
    let any_null = slices.iter().any(|slice| slice.null_count() > 0);
    let mut keys = Vec::with_capacity(rows);
    let mut validity = any_null.then(|| BooleanBufferBuilder::new(rows));
    let mut table = IntTable::default();
    for slice in slices {
        let values = slice.as_primitive_opt::<T>()?;
        match values.nulls() {
            Some(nulls) => {
                for (value, present) in values.values().iter().zip(nulls.iter()) {
                    if present {
                        keys.push(table.key((*value).into()));
                    }
                }
                if let Some(validity) = validity.as_mut() {
                    validity.append_buffer(nulls.inner());
                }
            }
            None => {
                keys.extend(
                    values
                        .values()
                        .iter()
                        .map(|value| table.key((*value).into())),
                );
                if let Some(validity) = validity.as_mut() {
                    validity.append_n(values.len(), true);
                }
            }
        }
        if table.values.len() * width > limit {
            return None;
        }
    }
    if table.values.is_empty() {
        return None;
    }
    let mut page = Vec::with_capacity(table.values.len() * width);
    for value in &table.values {
        // PLAIN is the value's little-endian bytes, 4 for INT32, 8 for INT64.
        page.extend_from_slice(&value.to_le_bytes()[..width]);
    }
    Some(Keyed {
        dictionary_page: page,
        distinct: table.values.len(),
        keys,
        validity,
        rows,
    })
}

/// The distinct integers of a column chunk and their keys: open addressing
/// with linear probing over a power-of-two table at most half full, each
/// slot the key plus one (0 for empty), hashed by a multiply (Fibonacci
/// hashing), which spreads pids and small counters alike.
#[derive(Default)]
struct IntTable {
    /// Distinct values, in key order.
    values: Vec<i64>,
    slots: Vec<u32>,
    /// The last value looked up and its key: runs of one value (a constant
    /// column, a busy process) skip the table.
    last: Option<(i64, u32)>,
}

impl IntTable {
    /// The key of `value`, added if new.
    #[inline]
    fn key(&mut self, value: i64) -> u32 {
        if let Some((last, key)) = self.last
            && last == value
        {
            return key;
        }
        if self.values.len() * 2 >= self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot_of(value);
        loop {
            match self.slots[at] {
                0 => {
                    self.values.push(value);
                    let key = (self.values.len() - 1) as u32;
                    self.slots[at] = key + 1;
                    self.last = Some((value, key));
                    return key;
                }
                slot if self.values[(slot - 1) as usize] == value => {
                    self.last = Some((value, slot - 1));
                    return slot - 1;
                }
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn slot_of(&self, value: i64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        ((value as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    /// Doubles the table (to 1,024 slots at first) and places every value
    /// again.
    fn grow(&mut self) {
        self.slots = vec![0; (self.slots.len() * 2).max(1024)];
        let mask = self.slots.len() - 1;
        for key in 0..self.values.len() {
            let mut at = self.slot_of(self.values[key]);
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = key as u32 + 1;
        }
    }
}

/// Bits a key needs to reach `max_key` (at least 1).
fn bits_for(max_key: usize) -> u8 {
    (usize::BITS - max_key.leading_zeros()).max(1) as u8
}

/// Appends `value` as an unsigned LEB128 varint (the hybrid encoding's run
/// headers).
fn write_varint(body: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        body.push((value as u8) | 0x80);
        value >>= 7;
    }
    body.push(value as u8);
}

/// Appends the definition levels of `rows` rows that are all present: one
/// RLE run of 1s, after its 4-byte length as data pages v1 have it.
fn write_all_present_levels(body: &mut Vec<u8>, rows: usize) {
    let mut run = Vec::with_capacity(8);
    write_varint(&mut run, (rows as u64) << 1);
    run.push(1);
    body.extend_from_slice(&(run.len() as u32).to_le_bytes());
    body.extend_from_slice(&run);
}

/// Appends the definition levels of rows `start..start + rows` (1 where
/// `validity` has the row, 0 for NULL) as one bit-packed run of width 1,
/// which is the validity bitmap itself, after the run's 4-byte length.
/// Returns how many of the rows are present.
fn write_definition_levels(
    body: &mut Vec<u8>,
    validity: &BooleanBufferBuilder,
    start: usize,
    rows: usize,
) -> usize {
    let groups = rows.div_ceil(8);
    let mut run = Vec::with_capacity(groups + 8);
    write_varint(&mut run, ((groups as u64) << 1) | 1);
    let chunks = BitChunks::new(validity.as_slice(), start, rows);
    let mut present = 0;
    for chunk in chunks.iter() {
        present += chunk.count_ones() as usize;
        run.extend_from_slice(&chunk.to_le_bytes());
    }
    let tail = chunks.remainder_bits();
    present += tail.count_ones() as usize;
    run.extend_from_slice(&tail.to_le_bytes()[..chunks.remainder_len().div_ceil(8)]);
    body.extend_from_slice(&(run.len() as u32).to_le_bytes());
    body.extend_from_slice(&run);
    present
}

/// Appends `keys` as one bit-packed run of `bit_width` bits each (groups of
/// eight, the last padded with zeros), least significant bit first.
fn write_bit_packed(body: &mut Vec<u8>, keys: &[u32], bit_width: u8) {
    if keys.is_empty() {
        return;
    }
    let groups = keys.len().div_ceil(8);
    let width = u32::from(bit_width);
    let end = body.len() + 10 + groups * bit_width as usize;
    body.reserve(end - body.len());
    write_varint(body, ((groups as u64) << 1) | 1);
    let packed_end = body.len() + groups * bit_width as usize;
    let mut acc: u64 = 0;
    let mut bits = 0;
    for &key in keys {
        acc |= u64::from(key) << bits;
        bits += width;
        if bits >= 32 {
            body.extend_from_slice(&(acc as u32).to_le_bytes());
            acc >>= 32;
            bits -= 32;
        }
    }
    body.extend_from_slice(&acc.to_le_bytes()[..bits.div_ceil(8) as usize]);
    body.resize(packed_end, 0);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, DictionaryArray, RecordBatch, StringArray, UInt8Array};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowSchemaConverter;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::basic::ZstdLevel;
    use parquet::file::metadata::PageIndexPolicy;
    use parquet::file::writer::SerializedFileWriter;

    use super::*;

    /// A dictionary array as the WAL makes it: `keys` (NULL where `None`)
    /// into `values`.
    fn logged(keys: Vec<Option<u16>>, values: ArrayRef) -> ArrayRef {
        let keys = arrow::array::UInt16Array::from(keys);
        Arc::new(DictionaryArray::try_new(keys, values).unwrap())
    }

    /// Writes `slices` as one row group of one column `field` through
    /// [`encode`], with pages of `page_rows` rows, and reads it back with
    /// parquet's reader (page index required) as plain values, with the
    /// number of data pages.
    fn round_trip(field: Field, slices: &[ArrayRef], page_rows: usize) -> (ArrayRef, usize) {
        let schema = Arc::new(Schema::new(vec![field]));
        let properties = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::None)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
            .set_data_page_row_count_limit(page_rows)
            .build();
        let columns = ArrowSchemaConverter::new().convert(&schema).unwrap();
        let column = columns.column(0);
        assert!(eligible(&properties, &column));
        let chunk = encode(column, slices, &properties).unwrap().unwrap();
        let mut file =
            SerializedFileWriter::new(Vec::new(), columns.root_schema_ptr(), Arc::new(properties))
                .unwrap();
        let mut group = file.next_row_group().unwrap();
        group.append_column(&chunk.bytes, chunk.close).unwrap();
        group.close().unwrap();
        let bytes = Bytes::from(file.into_inner().unwrap());

        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options).unwrap();
        let pages = reader.metadata().offset_index().unwrap()[0][0]
            .page_locations
            .len();
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let rows = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        (rows.column(0).clone(), pages)
    }

    fn plain(slices: &[ArrayRef], to: &DataType) -> ArrayRef {
        let cast: Vec<ArrayRef> = slices
            .iter()
            .map(|slice| arrow::compute::cast(slice, to).unwrap())
            .collect();
        let refs: Vec<&dyn Array> = cast.iter().map(|a| a.as_ref()).collect();
        arrow::compute::concat(&refs).unwrap()
    }

    /// Slices with their own dictionaries (overlapping, with values no row
    /// uses), NULLs, and a whole page of NULLs, read back as their values.
    #[test]
    fn slices_with_their_own_dictionaries_read_back_as_their_values() {
        let first_values: ArrayRef =
            Arc::new(StringArray::from(vec!["/bin/ls", "/bin/cat", "unused"]));
        let second_values: ArrayRef = Arc::new(StringArray::from(vec![
            "/bin/cat",
            "/usr/bin/vi",
            "/bin/ls",
        ]));
        let first = logged(
            (0..40u16)
                .map(|i| (!(16..32).contains(&i)).then_some(i % 2))
                .collect(),
            first_values,
        );
        let second = logged(
            (0..37u16).map(|i| (i % 5 != 0).then_some(i % 3)).collect(),
            second_values,
        );
        let slices = [first, second.slice(3, 30)];
        let field = Field::new("path", DataType::Utf8, true);
        let (read, pages) = round_trip(field, &slices, 8);
        assert_eq!(read.as_ref(), plain(&slices, &DataType::Utf8).as_ref());
        assert_eq!(
            pages,
            70usize.div_ceil(8),
            "pages of 8 rows, two of them all NULL"
        );
    }

    /// Keys as wide as the dictionary needs (1 to 10 bits here), binary
    /// values, and a column that may not be NULL.
    #[test]
    fn every_key_width_and_binary_and_required_columns_read_back() {
        for distinct in [1usize, 2, 3, 5, 17, 255, 256, 600] {
            let values: ArrayRef = Arc::new(BinaryArray::from_iter_values(
                (0..distinct).map(|i| format!("value {i}").into_bytes()),
            ));
            let keys: Vec<Option<u16>> = (0..1_000)
                .map(|i| Some((i * 7 % distinct) as u16))
                .collect();
            let slices = [logged(keys, values)];
            let field = Field::new("raw", DataType::Binary, false);
            let (read, _) = round_trip(field, &slices, 300);
            assert_eq!(
                read.as_ref(),
                plain(&slices, &DataType::Binary).as_ref(),
                "{distinct} distinct values"
            );
        }
    }

    /// NULLs in a column that may not hold them are an error, not a file
    /// that lies.
    #[test]
    fn nulls_in_a_required_column_are_an_error() {
        let schema = Schema::new(vec![Field::new("kind", DataType::Utf8, false)]);
        let columns = ArrowSchemaConverter::new().convert(&schema).unwrap();
        let values: ArrayRef = Arc::new(StringArray::from(vec!["open"]));
        let keys = UInt8Array::from(vec![Some(0), None]);
        let slices: [ArrayRef; 1] = [Arc::new(DictionaryArray::try_new(keys, values).unwrap())];
        let properties = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::None)
            .build();
        let err = encode(columns.column(0), &slices, &properties)
            .err()
            .expect("an error");
        assert!(
            err.to_string().contains("1 of its 2 values are NULL"),
            "{err}"
        );
    }

    /// Random row groups: one to four slices, each with its own dictionary
    /// (1 to 700 values, text or binary, keyed by u8, u16 or u32), NULLs
    /// from none to all, slices cut at random, pages of 1 to 3,000 rows.
    /// Every one reads back as its values.
    #[test]
    fn random_row_groups_read_back_as_their_values() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        for case in 0..150 {
            let binary = next(2) == 0;
            let nullable = next(3) != 0;
            let data_type = if binary {
                DataType::Binary
            } else {
                DataType::Utf8
            };
            let slices: Vec<ArrayRef> = (0..1 + next(4))
                .map(|_| {
                    let distinct = 1 + next(700);
                    let texts: Vec<String> = (0..distinct)
                        .map(|i| format!("/private/var/{}/{i}", next(50)))
                        .collect();
                    let values: ArrayRef = if binary {
                        Arc::new(BinaryArray::from_iter_values(
                            texts.iter().map(|t| t.as_bytes()),
                        ))
                    } else {
                        Arc::new(StringArray::from_iter_values(&texts))
                    };
                    let rows = 1 + next(3_000);
                    let null_every = if nullable { next(6) } else { 0 };
                    let codes: Vec<Option<u32>> = (0..rows)
                        .map(|_| {
                            let null = null_every == 1 || (null_every > 1 && next(null_every) == 0);
                            (!null).then(|| next(distinct) as u32)
                        })
                        .collect();
                    let keyed: ArrayRef = match next(3) {
                        0 if distinct <= 256 => Arc::new(
                            DictionaryArray::try_new(
                                UInt8Array::from_iter(codes.iter().map(|c| c.map(|c| c as u8))),
                                values,
                            )
                            .unwrap(),
                        ),
                        1 => Arc::new(
                            DictionaryArray::try_new(
                                arrow::array::UInt32Array::from(codes),
                                values,
                            )
                            .unwrap(),
                        ),
                        _ => logged(codes.iter().map(|c| c.map(|c| c as u16)).collect(), values),
                    };
                    let offset = next(rows);
                    keyed.slice(offset, next(rows - offset + 1))
                })
                .collect();
            let field = Field::new("text", data_type.clone(), nullable);
            let expected = plain(&slices, &data_type);
            if expected.null_count() == expected.len() {
                continue; // Declined: Parquet writes a column of NULLs itself.
            }
            let (read, _) = round_trip(field, &slices, 1 + next(3_000));
            assert_eq!(read.as_ref(), expected.as_ref(), "case {case}");
        }
    }

    /// Integer columns: one to 5,000 distinct values (the table grows),
    /// negative ones, runs of one value, NULLs, several slices; INT32 and
    /// INT64. Each reads back as its values.
    #[test]
    fn integer_columns_read_back_as_their_values() {
        use arrow::array::{Int32Array, Int64Array};
        for distinct in [1i64, 2, 300, 5_000] {
            let value = |i: i64| (i * 7919 % distinct) - distinct / 2;
            let long: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter(
                    (0..3_000i64).map(|i| (i % 17 != 0).then(|| value(i) * 1_000_003)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    (0..2_000i64).map(|i| value(i / 50)),
                )),
            ];
            let (read, _) = round_trip(Field::new("pid", DataType::Int64, true), &long, 700);
            assert_eq!(
                read.as_ref(),
                plain(&long, &DataType::Int64).as_ref(),
                "{distinct}"
            );

            let short: Vec<ArrayRef> = vec![Arc::new(Int32Array::from_iter_values(
                (0..4_000i64).map(|i| value(i) as i32),
            ))];
            let (read, _) = round_trip(Field::new("version", DataType::Int32, false), &short, 999);
            assert_eq!(
                read.as_ref(),
                plain(&short, &DataType::Int32).as_ref(),
                "{distinct}"
            );
        }
    }

    #[test]
    fn bit_packing_matches_the_spec_example() {
        // The Parquet spec's example: 0..=7 at bit width 3.
        let mut body = Vec::new();
        write_bit_packed(&mut body, &[0, 1, 2, 3, 4, 5, 6, 7], 3);
        assert_eq!(body, [0b11, 0b1000_1000, 0b1100_0110, 0b1111_1010]);
        assert_eq!(bits_for(0), 1);
        assert_eq!(bits_for(1), 1);
        assert_eq!(bits_for(2), 2);
        assert_eq!(bits_for(255), 8);
        assert_eq!(bits_for(256), 9);
    }
}
