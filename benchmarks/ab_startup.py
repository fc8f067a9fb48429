"""Startup of one-shot commands, this tree against another copa tree, interleaved run by run.

    python benchmarks/ab_startup.py --before /tmp/copa-old [--runs 30]

The other tree is a checkout of an earlier commit (``git archive COMMIT | tar -x -C /tmp/copa-old``),
run by the same interpreter with PYTHONPATH pointing at it. Each case alternates before/after, so a
shared machine's load drifts over both sides alike; besides the wall time it reports the CPU time
(user + system) of each process, which a loaded machine disturbs much less. Every process gets a
fresh COPA_HOME per side, warmed by one run first (the plugin cache, the page cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "copa --version": ["--version"],
    "copa --help": ["--help"],
    "copa config get": ["config", "get", "general.log_level"],
    "copa doctor --help": ["doctor", "--help"],
}


def run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "copa", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"copa {' '.join(args)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, type=Path, help="the other copa tree (its root folder)")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as h1, tempfile.TemporaryDirectory() as h2:
        sides = {"before": {**os.environ, "COPA_HOME": h1, "PYTHONPATH": str(args.before.resolve())},
                 "after": {**os.environ, "COPA_HOME": h2, "PYTHONPATH": str(here)}}
        print(f"{'command':<20} {'side':<7} {'wall med':>9} {'wall p90':>9} {'cpu med':>8}   ({args.runs} runs each, "
              "interleaved)")
        for name, cmd in CASES.items():
            results: dict[str, list[tuple[float, float]]] = {s: [] for s in sides}
            for env in sides.values():
                run(cmd, env)
            for _ in range(args.runs):
                for side, env in sides.items():
                    results[side].append(run(cmd, env))
            for side, rs in results.items():
                walls = sorted(w for w, _ in rs)
                print(f"{name:<20} {side:<7} {statistics.median(walls):>9.3f} "
                      f"{walls[int(0.9 * (len(walls) - 1))]:>9.3f} {statistics.median(c for _, c in rs):>8.3f}")
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
