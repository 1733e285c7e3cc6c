#!/usr/bin/env python3
"""Latency of three analyst queries over the same Parquet files: sluice vs DuckDB.

Usage: compare.py SLUICE_BIN DATA_DIR [RUNS]

The data dir is one `sluice bench firehose --keep` (or `sluice ingest`)
wrote. Each query runs RUNS times (default 5) on each engine; the table gives
the best and the median wall time. sluice is timed twice: as a whole
process (`sluice query`, start-up and catalog included), and warm, as an
analyst's client sees it: over Flight SQL to one `sluice serve` on
127.0.0.1, started here, with the ADBC driver (`pip install
adbc-driver-flightsql`; without it that column is left out). DuckDB runs
warm and in-process, on `read_parquet` of the same files. Every query runs twice: over a
ten-minute window in the middle of the history (pruning skips every file
and row group outside it), and over the whole history (nothing can be
skipped), to show what pruning buys. An earlier version wrote the second
filter as `time + 0`; DuckDB folds that back into a range and prunes anyway,
so it did not measure a full scan for both engines.
"""
import json, socket, statistics, subprocess, sys, time

import duckdb

try:
    import adbc_driver_flightsql.dbapi as flight_sql
except ImportError:
    flight_sql = None

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

def window_queries(a, b, parent_from):
    return {
        "time window + path prefix":
            f"SELECT count(*) AS n FROM es_process_file_events WHERE time BETWEEN {a} AND {b} AND filename LIKE '/Users/%'",
        "group-by (top processes by events, window)":
            f"SELECT path, count(*) AS n FROM es_process_file_events WHERE time BETWEEN {a} AND {b} GROUP BY path ORDER BY n DESC, path LIMIT 10",
        "parent/child self-join (window)":
            f"SELECT count(*) AS n FROM es_process_events c JOIN es_process_events p ON c.parent = p.pid "
            f"WHERE c.event_type = 'exec' AND p.event_type = 'exec' AND c.time BETWEEN {a} AND {b} AND p.time BETWEEN {parent_from} AND {b}",
    }


def start_server():
    """`sluice serve` on a free loopback port, and an ADBC connection to it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sluice, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                sys.exit(f"sluice serve did not start on port {port}")
            time.sleep(0.1)
    return server, flight_sql.connect(f"grpc://127.0.0.1:{port}")


def warm_query(connection, sql):
    cursor = connection.cursor()
    cursor.execute(sql)
    rows = cursor.fetchall()
    cursor.close()
    return rows


server, warm = start_server() if flight_sql else (None, None)

pruned = window_queries(t0, t1, t0 - 3600)
# The whole history: every file and row group overlaps the window.
full = window_queries(lo, hi, lo)
queries = {name: (pruned[name], full[name]) for name in pruned}


def timed(fn):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


print(f"rows: es_process_file_events {span['n']:,}, es_process_events {procs:,}; "
      f"history {lo}..{hi} ({(hi - lo) / 3600:.1f} h); window {t0}..{t1}; {runs} runs each")
warm_header = " sluice warm, Flight SQL, best / median (s) |" if warm else ""
print(f"| query | pruning | sluice process best / median (s) |{warm_header} DuckDB best / median (s) | same result |")
print("|---|---|---|" + ("---|" if warm else "") + "---|---|")
try:
    for name, (pruned, unpruned) in queries.items():
        for label, sql in (("yes: 10 min", pruned), ("no: whole history", unpruned)):
            s_best, s_med, s_rows = timed(lambda: sluice_query(sql))
            d_best, d_med, d_rows = timed(lambda: con.execute(sql).fetchall())
            expected = [tuple(r) for r in d_rows]
            same = [tuple(r.values()) for r in s_rows] == expected
            warm_cell = ""
            if warm:
                w_best, w_med, w_rows = timed(lambda: warm_query(warm, sql))
                same = same and [tuple(r) for r in w_rows] == expected
                warm_cell = f" {w_best:.3f} / {w_med:.3f} |"
            print(f"| {name} | {label} | {s_best:.3f} / {s_med:.3f} |{warm_cell} {d_best:.3f} / {d_med:.3f} | {'yes' if same else 'NO'} |")
finally:
    if server:
        warm.close()
        server.terminate()
        server.wait()
