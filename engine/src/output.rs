//! How query results are printed: an aligned table, a JSON array, JSON
//! lines, CSV, one `column = value` per line, or a Parquet file.
//!
//! The formats are for people (`table`, `line`), for pipes (`json`,
//! `jsonl`, `csv`) and for data tools (`parquet`). Each prints something
//! useful for an empty result: CSV still has its header and Parquet its
//! schema, so a consumer can tell "no rows" from "no output"; `json` prints
//! `[]`; JSON lines prints nothing, one object per row being the whole
//! contract.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// An output format for query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned table with a header, for reading in a terminal.
    #[default]
    Table,
    /// One JSON array of objects (as `osqueryi --json` prints), NULL
    /// columns included as `null`, timestamps as RFC 3339 strings.
    Json,
    /// Newline-delimited JSON: one object per row, otherwise as `json`.
    Jsonl,
    /// CSV with a header row.
    Csv,
    /// osqueryi's line mode: `column = value`, one per line, a blank line
    /// between rows.
    Line,
    /// A zstd-compressed Parquet file with the result's own schema (binary:
    /// for `--out FILE` or a pipe, never a terminal).
    Parquet,
}

impl OutputFormat {
    /// Every format.
    pub const ALL: [OutputFormat; 6] = [
        OutputFormat::Table,
        OutputFormat::Json,
        OutputFormat::Jsonl,
        OutputFormat::Csv,
        OutputFormat::Line,
        OutputFormat::Parquet,
    ];

    /// Whether the format is text a terminal can show (all but Parquet).
    pub fn is_text(self) -> bool {
        self != OutputFormat::Parquet
    }

    /// The format's name, as the CLI and `.mode` spell it.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
            OutputFormat::Line => "line",
            OutputFormat::Parquet => "parquet",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`OutputFormat::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?}; expected one of table, json, jsonl, csv, line, parquet")]
pub struct UnknownFormat(pub String);

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Why results could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Arrow could not encode or write the rows.
    #[error("cannot write results as {format}: {source}")]
    Encode {
        /// The format being written.
        format: OutputFormat,
        /// What Arrow said.
        source: ArrowError,
    },
    /// The output could not be written (a closed pipe, a full disk).
    #[error("cannot write results as {format}: {source}")]
    Io {
        /// The format being written.
        format: OutputFormat,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl OutputError {
    /// Whether the reader went away (`sluice query … | head`), which is how a
    /// pipe normally ends rather than a failure worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return true;
            }
            source = err.source();
        }
        false
    }
}

/// Writes `batches`, whose columns are `schema`, to `out` in `format`.
///
/// `schema` is passed separately because a query with no rows may produce no
/// batches at all, and the table and CSV headers still need the column names.
pub fn write_batches(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<(), OutputError> {
    let encode = |source| OutputError::Encode { format, source };
    let io = |source| OutputError::Io { format, source };
    match format {
        OutputFormat::Table => {
            let table =
                arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), batches)
                    .map_err(encode)?;
            writeln!(out, "{table}").map_err(io)?;
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut *out);
            for batch in batches {
                writer.write(batch).map_err(encode)?;
            }
            // Prints `[]` for no rows.
            writer.finish().map_err(encode)?;
            writeln!(out).map_err(io)?;
        }
        OutputFormat::Jsonl => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut *out);
            for batch in batches {
                writer.write(batch).map_err(encode)?;
            }
            writer.finish().map_err(encode)?;
        }
        OutputFormat::Parquet => {
            // ArrowWriter wants an owned `Write + Send`; the file is built in
            // memory (the rows already are) and written in one go.
            let parquet = |source: parquet::errors::ParquetError| encode(source.into());
            let properties = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))
                    .map_err(parquet)?;
            for batch in batches {
                writer.write(batch).map_err(parquet)?;
            }
            let bytes = writer.into_inner().map_err(parquet)?;
            out.write_all(&bytes).map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            // The header is written with the first batch; an empty one makes
            // sure it is written even when there are no rows.
            writer
                .write(&RecordBatch::new_empty(schema.clone()))
                .map_err(encode)?;
            for batch in batches {
                writer.write(batch).map_err(encode)?;
            }
        }
        OutputFormat::Line => write_lines(schema, batches, out).map_err(|e| match e {
            ArrowError::IoError(_, source) => io(source),
            other => encode(other),
        })?,
    }
    out.flush().map_err(io)
}

/// osqueryi's (and sqlite's) line mode: column names right-aligned to the
/// longest, so the `=` signs line up down each row.
fn write_lines(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<(), ArrowError> {
    let width = schema
        .fields()
        .iter()
        .map(|f| f.name().chars().count())
        .max()
        .unwrap_or(0);
    let options = FormatOptions::default().with_display_error(true);
    let mut first = true;
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            if !first {
                writeln!(out)?;
            }
            first = false;
            for (field, formatter) in schema.fields().iter().zip(&formatters) {
                writeln!(out, "{:>width$} = {}", field.name(), formatter.value(row))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn sample() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("pid", DataType::Int64, true),
            Field::new("path", DataType::Utf8, true),
            Field::new(
                "time_ns",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(22)])),
                Arc::new(StringArray::from(vec![Some("/bin/ls"), None])),
                Arc::new(
                    TimestampNanosecondArray::from(vec![Some(1_704_067_200_000_000_000), None])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .expect("batch");
        (schema, batch)
    }

    fn render(format: OutputFormat, schema: &SchemaRef, batches: &[RecordBatch]) -> String {
        let mut out = Vec::new();
        write_batches(format, schema, batches, &mut out).expect("write");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn json_is_an_array_and_empty_is_an_empty_array() {
        let (schema, batch) = sample();
        assert_eq!(
            render(OutputFormat::Json, &schema, &[batch]),
            "[{\"pid\":1,\"path\":\"/bin/ls\",\"time_ns\":\"2024-01-01T00:00:00Z\"},\
             {\"pid\":22,\"path\":null,\"time_ns\":null}]\n"
        );
        assert_eq!(render(OutputFormat::Json, &schema, &[]), "[]\n");
    }

    #[test]
    fn parquet_round_trips_rows_and_keeps_the_schema_without_rows() {
        let (schema, batch) = sample();
        let mut out = Vec::new();
        write_batches(
            OutputFormat::Parquet,
            &schema,
            std::slice::from_ref(&batch),
            &mut out,
        )
        .expect("write");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            bytes::Bytes::from(out),
            1024,
        )
        .expect("reader");
        let read: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
        assert_eq!(read, vec![batch]);
        let mut empty = Vec::new();
        write_batches(OutputFormat::Parquet, &schema, &[], &mut empty).expect("write");
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(empty),
        )
        .expect("reader");
        assert_eq!(builder.schema().fields(), schema.fields());
    }

    #[test]
    fn jsonl_is_one_object_per_row_with_explicit_nulls_and_rfc3339_times() {
        let (schema, batch) = sample();
        assert_eq!(
            render(OutputFormat::Jsonl, &schema, &[batch]),
            "{\"pid\":1,\"path\":\"/bin/ls\",\"time_ns\":\"2024-01-01T00:00:00Z\"}\n\
             {\"pid\":22,\"path\":null,\"time_ns\":null}\n"
        );
    }

    #[test]
    fn csv_has_a_header_even_without_rows() {
        let (schema, batch) = sample();
        assert_eq!(
            render(OutputFormat::Csv, &schema, &[batch]),
            "pid,path,time_ns\n1,/bin/ls,2024-01-01T00:00:00Z\n22,,\n"
        );
        assert_eq!(
            render(OutputFormat::Csv, &schema, &[]),
            "pid,path,time_ns\n"
        );
    }

    #[test]
    fn table_has_a_header_even_without_rows() {
        let (schema, batch) = sample();
        let table = render(OutputFormat::Table, &schema, &[batch]);
        assert!(
            table.contains("| pid | path    | time_ns              |"),
            "{table}"
        );
        assert!(
            table.contains("| 1   | /bin/ls | 2024-01-01T00:00:00Z |"),
            "{table}"
        );
        let empty = render(OutputFormat::Table, &schema, &[]);
        assert!(empty.contains("| pid | path | time_ns |"), "{empty}");
    }

    #[test]
    fn line_mode_aligns_names_and_separates_rows() {
        let (schema, batch) = sample();
        assert_eq!(
            render(OutputFormat::Line, &schema, &[batch]),
            "    pid = 1\n   path = /bin/ls\ntime_ns = 2024-01-01T00:00:00Z\n\n    pid = 22\n   path = \ntime_ns = \n"
        );
    }

    #[test]
    fn format_names_round_trip() {
        for format in OutputFormat::ALL {
            assert_eq!(format.name().parse::<OutputFormat>(), Ok(format));
        }
        assert_eq!("JSON".parse::<OutputFormat>(), Ok(OutputFormat::Json));
        assert!("xml".parse::<OutputFormat>().is_err());
    }

    #[test]
    fn broken_pipe_is_recognised_through_arrow() {
        let err = OutputError::Encode {
            format: OutputFormat::Csv,
            source: ArrowError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        assert!(err.is_broken_pipe());
        let other = OutputError::Io {
            format: OutputFormat::Csv,
            source: std::io::Error::other("disk full"),
        };
        assert!(!other.is_broken_pipe());
    }
}
