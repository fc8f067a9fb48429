"""What running two things at once costs on this machine: why the search ahead's child runs one BLAS thread.

    .venv/bin/python benchmarks/cpu_sharing.py [--runs 25]

1. numpy's import in a fresh process, by default and with ``OPENBLAS_NUM_THREADS=1``: wall and CPU
   time (user + system). numpy's wheels bring OpenBLAS, which starts a thread per core at import;
   CPU time above wall time is that thread's.
2. The same with another core kept busy (a process spinning), as the forked search ahead of
   ``copa ask`` keeps it (copa/memory/prefetch.py): does a process slow down when the other core
   works, and does OpenBLAS's thread then compete with it?

Both sides of each row alternate run by run; medians in ms. A baseline (the interpreter importing
what copa ask has loaded by the time it forks, without numpy) is printed in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

BEFORE = "import json, pickle, inspect, datetime, sqlite3, typer"  # loaded by copa ask before it forks
WITH_NUMPY = BEFORE + "; import numpy"


def timed(code: str, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall * 1000, cpu * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=25)
    args = ap.parse_args()
    plain = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    one = {**plain, "OPENBLAS_NUM_THREADS": "1"}
    cases = {"baseline (no numpy)": (BEFORE, plain, False), "baseline, other core busy": (BEFORE, plain, True),
             "numpy, default threads": (WITH_NUMPY, plain, False),
             "numpy, default threads, other core busy": (WITH_NUMPY, plain, True),
             "numpy, one BLAS thread": (WITH_NUMPY, one, False),
             "numpy, one BLAS thread, other core busy": (WITH_NUMPY, one, True)}
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for code, env, _ in cases.values():  # warm the page cache
        timed(code, env)
    for _ in range(args.runs):
        for name, (code, env, busy) in cases.items():
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            if hog is not None:
                time.sleep(0.05)  # let it take its core
            try:
                got[name].append(timed(code, env))
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    print(f"cpu_sharing: {os.cpu_count()} cores, median of {args.runs} fresh processes (ms)")
    print(f"{'case':42s} {'wall':>6s} {'cpu':>6s}")
    for name, rows in got.items():
        print(f"{name:42s} {statistics.median(r[0] for r in rows):6.0f} {statistics.median(r[1] for r in rows):6.0f}")


if __name__ == "__main__":
    main()
