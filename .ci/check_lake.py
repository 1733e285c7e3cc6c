"""Reads a lake written by `sluice export` with an independent reader.

Usage: check_lake.py LAKE_DIR SLUICE_BIN DATA_DIR HOST

pyarrow (installed from PyPI by .ci/run in a throwaway virtualenv) opens each
`table=<t>` directory as a dataset with Hive partition discovery, and the row
count of every table must match what `sluice query` counts in the data dir the
lake was exported from. The partition values are checked against the rows:
`host` is the host identifier, and `date`/`hour` are the UTC date and hour of
each row's `time`.
"""

import datetime
import os
import subprocess
import sys

import pyarrow.dataset as ds


def sluice_count(sluice, data_dir, table):
    out = subprocess.run(
        [sluice, "query", "--data-dir", data_dir, "--format", "csv",
         f"SELECT count(*) AS n FROM {table} WHERE time IS NOT NULL"],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()
    return int(out[-1])


def main():
    lake, sluice, data_dir, host = sys.argv[1:5]
    exported = sorted(
        name.split("=", 1)[1] for name in os.listdir(lake) if name.startswith("table=")
    )
    if not exported:
        sys.exit(f"check_lake: no table= directories in {lake}")
    failures = 0
    # Every event table (those with `time_ns`) with rows must be in the lake.
    tables = subprocess.run(
        [sluice, "query", "--data-dir", data_dir, "--format", "csv",
         "SELECT DISTINCT table_name FROM information_schema.columns "
         "WHERE column_name = 'time_ns' ORDER BY 1"],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[1:]
    for table in tables:
        if table == "osquery_events" or table in exported:
            continue
        n = sluice_count(sluice, data_dir, table)
        if n:
            print(f"check_lake: {table}: {n} rows in sluice, not in the lake")
            failures += 1
    for table in exported:
        dataset = ds.dataset(
            os.path.join(lake, f"table={table}"), format="parquet", partitioning="hive"
        )
        data = dataset.to_table(columns=["time", "host_identifier", "host", "date", "hour"])
        expected = sluice_count(sluice, data_dir, table)
        ok = data.num_rows == expected
        hosts = set(data.column("host").to_pylist()) | set(
            data.column("host_identifier").to_pylist()
        )
        if hosts != {host}:
            print(f"check_lake: {table}: host values {hosts}, expected {{{host!r}}}")
            ok = False
        for time, date, hour in zip(
            data.column("time").to_pylist(),
            data.column("date").to_pylist(),
            data.column("hour").to_pylist(),
        ):
            at = datetime.datetime.fromtimestamp(time, datetime.timezone.utc)
            if (str(date), int(hour)) != (at.strftime("%Y-%m-%d"), at.hour):
                print(f"check_lake: {table}: row at {at} filed under date={date}/hour={hour}")
                ok = False
                break
        status = "ok" if ok else "MISMATCH"
        print(f"check_lake: {table}: pyarrow {data.num_rows} rows, sluice {expected} rows: {status}")
        failures += not ok
    if failures:
        sys.exit(f"check_lake: {failures} tables do not match")
    print(f"check_lake: all {len(exported)} exported tables match sluice query")


if __name__ == "__main__":
    main()
