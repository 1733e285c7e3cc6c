#!/usr/bin/env python3
"""Latency of three analyst queries over the same Parquet files: sluice vs DuckDB.

Usage: compare.py SLUICE_BIN DATA_DIR [RUNS]

The data dir is one `sluice bench firehose --keep` (or `sluice ingest`)
wrote. Each query runs RUNS times (default 5) on each engine; the table gives
the best and the median wall time. sluice is timed as a whole process
(`sluice query`, start-up and catalog included); DuckDB in-process, on
`read_parquet` of the same files. Every query is also run with its time
filter written so that nothing can be pruned (`time + 0`), to show what
pruning buys.
"""
import json, statistics, subprocess, sys, time

import duckdb

sluice, data_dir = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5


def sluice_query(sql):
    out = subprocess.run([sluice, "query", "--data-dir", data_dir, "--format", "jsonl", sql],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


span = sluice_query("SELECT min(time) AS lo, max(time) AS hi, count(*) AS n FROM es_process_file_events")[0]
procs = sluice_query("SELECT count(*) AS n FROM es_process_events")[0]["n"]
lo, hi = span["lo"], span["hi"]
# A ten-minute window in the middle of the history.
t0 = lo + (hi - lo) // 2
t1 = t0 + 600

con = duckdb.connect()
for table in ("es_process_file_events", "es_process_events"):
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{data_dir}/{table}/**/*.parquet', hive_partitioning=false)")

queries = {
    "time window + path prefix": (
        f"SELECT count(*) AS n FROM es_process_file_events WHERE time BETWEEN {t0} AND {t1} AND filename LIKE '/Users/%'",
        f"SELECT count(*) AS n FROM es_process_file_events WHERE time + 0 BETWEEN {t0} AND {t1} AND filename LIKE '/Users/%'",
    ),
    "group-by (top processes by events, window)": (
        f"SELECT path, count(*) AS n FROM es_process_file_events WHERE time BETWEEN {t0} AND {t1} GROUP BY path ORDER BY n DESC, path LIMIT 10",
        f"SELECT path, count(*) AS n FROM es_process_file_events WHERE time + 0 BETWEEN {t0} AND {t1} GROUP BY path ORDER BY n DESC, path LIMIT 10",
    ),
    "parent/child self-join (window)": (
        f"SELECT count(*) AS n FROM es_process_events c JOIN es_process_events p ON c.parent = p.pid "
        f"WHERE c.event_type = 'exec' AND p.event_type = 'exec' AND c.time BETWEEN {t0} AND {t1} AND p.time BETWEEN {t0 - 3600} AND {t1}",
        f"SELECT count(*) AS n FROM es_process_events c JOIN es_process_events p ON c.parent = p.pid "
        f"WHERE c.event_type = 'exec' AND p.event_type = 'exec' AND c.time + 0 BETWEEN {t0} AND {t1} AND p.time + 0 BETWEEN {t0 - 3600} AND {t1}",
    ),
}


def timed(fn):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


print(f"rows: es_process_file_events {span['n']:,}, es_process_events {procs:,}; "
      f"history {lo}..{hi} ({(hi - lo) / 3600:.1f} h); window {t0}..{t1}; {runs} runs each")
print("| query | pruning | sluice best / median (s) | DuckDB best / median (s) | same result |")
print("|---|---|---|---|---|")
for name, (pruned, unpruned) in queries.items():
    for label, sql in (("yes", pruned), ("no (`time + 0`)", unpruned)):
        s_best, s_med, s_rows = timed(lambda: sluice_query(sql))
        d_best, d_med, d_rows = timed(lambda: con.execute(sql).fetchall())
        same = [tuple(r.values()) for r in s_rows] == [tuple(r) for r in d_rows]
        print(f"| {name} | {label} | {s_best:.3f} / {s_med:.3f} | {d_best:.3f} / {d_med:.3f} | {'yes' if same else 'NO'} |")
