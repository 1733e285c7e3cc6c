#!/usr/bin/env python3
"""One query, several sluice builds, alternating: which build is faster?

Usage: builds.py DATA_DIR SQL SLUICE_BIN [SLUICE_BIN ...] [--runs N]

Runs `sluice query --data-dir DATA_DIR SQL` as a whole process with each
build in turn, N rounds (3 by default), and prints each build's best wall
time in seconds. Alternating rather than running one build N times and then
the next spreads this machine's drifting load over all of them. Exits 1 if
a run fails or two builds print different results.
"""
import subprocess, sys, time

args = sys.argv[1:]
runs = 3
if "--runs" in args:
    at = args.index("--runs")
    runs = int(args[at + 1])
    del args[at:at + 2]
if len(args) < 3:
    sys.exit(__doc__)
data_dir, sql, builds = args[0], args[1], args[2:]

best = {build: float("inf") for build in builds}
outputs = {}
for _ in range(runs):
    for build in builds:
        start = time.perf_counter()
        done = subprocess.run([build, "query", "--data-dir", data_dir, sql],
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{build}: {done.stderr.strip()}")
        best[build] = min(best[build], elapsed)
        outputs.setdefault(build, done.stdout)

print("  ".join(f"{build} {best[build]:.3f}" for build in builds), " ", sql)
if len(set(outputs.values())) > 1:
    sys.exit("the builds printed different results")
