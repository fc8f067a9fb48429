"""Startup time of one-shot commands, against the bare interpreter measured in the same run.

    python benchmarks/startup.py [--runs 30]

Prints the median and p90 wall time of `python -c pass`, `copa --version`, `copa --help` and
`copa config get general.log_level`, each run as a fresh process (what a user pays), and the ratio
to the bare interpreter. Target on the project's 2-core machines: `copa --version` median <= 0.15 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def copa_executable() -> str:
    here = Path(sys.executable).parent / "copa"
    return str(here) if here.exists() else (shutil.which("copa") or "copa")


def measure(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    copa = copa_executable()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "COPA_HOME": home}
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "copa --version": [copa, "--version"],
            "copa --help": [copa, "--help"],
            "copa config get": [copa, "config", "get", "general.log_level"],
        }
        results = {name: measure(cmd, args.runs, env) for name, cmd in cases.items()}
    base = statistics.median(results["python -c pass"])
    print(f"{'command':<20} {'median s':>9} {'p90 s':>7} {'x python':>9}   ({args.runs} runs each)")
    for name, times in results.items():
        med = statistics.median(times)
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        print(f"{name:<20} {med:>9.3f} {p90:>7.3f} {med / base:>9.1f}")
    version = statistics.median(results["copa --version"])
    print(f"\ntarget copa --version median <= 0.150 s: {'met' if version <= 0.15 else 'NOT met'} ({version:.3f} s)")


if __name__ == "__main__":
    main()
