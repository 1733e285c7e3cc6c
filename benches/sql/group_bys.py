#!/usr/bin/env python3
"""Whole-history group-bys over the same Parquet files: sluice builds vs DuckDB.

Usage: group_bys.py DATA_DIR SLUICE_BIN [SLUICE_BIN ...]

Each query runs three times on each engine, with no time filter, and the
best wall time is printed: sluice as a whole `sluice query` process (start-up
and catalog included), DuckDB warm and in-process on `read_parquet`. Giving
two builds compares them; the last column says whether every engine
returned the same rows.
"""
import subprocess, sys, time

import duckdb

data_dir, builds = sys.argv[1], sys.argv[2:]
queries = [
    "SELECT path, count(*) AS n FROM es_process_file_events GROUP BY path ORDER BY n DESC, path LIMIT 10",
    "SELECT path, event_type, count(*) AS n FROM es_process_file_events GROUP BY path, event_type ORDER BY n DESC, path, event_type LIMIT 10",
    "SELECT pid, path, count(*) AS n FROM es_process_file_events GROUP BY pid, path ORDER BY n DESC, pid, path LIMIT 10",
    "SELECT filename, count(*) AS n FROM es_process_file_events GROUP BY filename ORDER BY n DESC, filename LIMIT 10",
]
con = duckdb.connect()
con.execute(
    "CREATE VIEW es_process_file_events AS SELECT * FROM "
    f"read_parquet('{data_dir}/es_process_file_events/**/*.parquet', hive_partitioning=false)"
)


def best(run, times=3):
    walls, out = [], None
    for _ in range(times):
        start = time.perf_counter()
        out = run()
        walls.append(time.perf_counter() - start)
    return min(walls), out


def sluice(build, sql):
    args = [build, "query", "--data-dir", data_dir, "--format", "csv", sql]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[1:]


print("| grouped by | " + " | ".join(builds) + " | DuckDB | same rows |")
print("|---|" + "---:|" * (len(builds) + 1) + "---|")
for sql in queries:
    grouped_by = sql.split("GROUP BY ")[1].split(" ORDER")[0]
    cells, results = [], []
    for build in builds:
        wall, rows = best(lambda: sluice(build, sql))
        cells.append(f"{wall:.3f}")
        results.append(rows)
    wall, rows = best(lambda: con.execute(sql).fetchall())
    cells.append(f"{wall:.3f}")
    duck = [",".join(str(v) for v in row) for row in rows]
    same = all(r == duck for r in results)
    print(f"| `{grouped_by}` | " + " | ".join(cells) + f" | {'yes' if same else 'NO'} |")
