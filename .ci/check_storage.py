"""Reads sluice's own Parquet files with an independent reader.

Usage: check_storage.py DATA_DIR SLUICE_BIN

The roll writes some column chunks itself (`sinks/src/parquet_persister/
dictionary_chunk.rs`: free text, `event_type`, `pid`, `parent`, `version`)
rather than through the parquet crate, so a second implementation must read
them as sluice does. pyarrow (Parquet C++) reads every file of each ES table
under DATA_DIR, and its text and integer columns, in `eid` order, must equal
what `sluice query` returns for the same table. .ci/run ingests 20,000
firehose lines, so the batches are large and repetitive enough for the WAL
to dictionary-encode their text, and those columns reach that writer; the
last check makes sure they are dictionary columns without statistics, the
kind it writes.
"""

import glob
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

TABLES = ("es_process_events", "es_process_file_events")


def main():
    data_dir, sluice = sys.argv[1], sys.argv[2]
    for table in TABLES:
        files = sorted(glob.glob(os.path.join(data_dir, table, "*", "*", "*.parquet")))
        if not files:
            sys.exit(f"check_storage: {table}: no Parquet files under {data_dir}")
        rows = pa.concat_tables([pq.read_table(f) for f in files]).sort_by("eid")
        columns = [
            f.name for f in rows.schema
            if pa.types.is_string(f.type) or pa.types.is_integer(f.type)
        ]
        sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY eid"
        out = subprocess.run(
            [sluice, "query", "--data-dir", data_dir, "--format", "json", sql],
            check=True, capture_output=True, text=True,
        ).stdout
        expected = json.loads(out)
        if len(expected) != rows.num_rows:
            sys.exit(f"check_storage: {table}: pyarrow {rows.num_rows} rows, sluice {len(expected)}")
        for name in columns:
            got = rows.column(name).to_pylist()
            want = [r.get(name) for r in expected]
            if got != want:
                at = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
                sys.exit(f"check_storage: {table}.{name}: row {at}: pyarrow {got[at]!r}, sluice {want[at]!r}")
        print(f"check_storage: {table}: {rows.num_rows} rows, {len(columns)} columns: ok")

    metadata = pq.ParquetFile(
        sorted(glob.glob(os.path.join(data_dir, "es_process_file_events", "*", "*", "*.parquet")))[0]
    ).metadata.row_group(0)
    for i in range(metadata.num_columns):
        column = metadata.column(i)
        if column.path_in_schema in ("filename", "event_type", "pid"):
            if "RLE_DICTIONARY" not in column.encodings or column.is_stats_set:
                sys.exit(f"check_storage: {column.path_in_schema} is not a dictionary column without statistics: {column}")
    print("check_storage: dictionary columns without statistics read back alike")


if __name__ == "__main__":
    main()
