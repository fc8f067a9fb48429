"""One-shot commands of two checkouts, interleaved: wall and CPU medians of fresh processes.

    git worktree add /tmp/copa-base HEAD~1
    .venv/bin/python benchmarks/oneshot_ab.py --base /tmp/copa-base [--runs 15] [--mode static]

Each round runs `copa ask` and `copa memory search` once in the base checkout and once in this one,
against the same store (300 memories, every one embedded) and a loopback model server answering at
once. Interleaving matters on a noisy machine: two back-to-back runs of memory_cost.py differed by
more than the changes measured. CPU is user + system time of the command (numpy's BLAS threads
make it exceed wall time).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from agent_overhead import start_server  # noqa: E402
from memory_cost import prepare_home  # noqa: E402

COMMANDS = {"ask": ["ask", "when does the bike shop close?"],
            "search": ["memory", "search", "when does the bike shop close"]}


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "copa", *args], env=env, check=True, capture_output=True, cwd=cwd)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="another checkout of copa (python -m copa runs there)")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--memories", type=int, default=300)
    ap.add_argument("--mode", default="static", help="memory.embeddings for the timed commands")
    args = ap.parse_args()
    if not (args.base / "copa" / "__main__.py").is_file():
        raise SystemExit(f"oneshot_ab: {args.base} is not a copa checkout (no copa/__main__.py)")
    trees = {"base": args.base.resolve(), "this": ROOT}
    proc, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as home:
            prepare_home(home, base_url, args.memories)
            env = {**os.environ, "COPA_MEMORY_EMBEDDINGS": args.mode}
            if args.mode != "off":
                subprocess.run([sys.executable, "-m", "copa", "memory", "embed"], env=env, check=True,
                               capture_output=True, cwd=ROOT)
            times: dict[tuple[str, str], list[tuple[float, float]]] = {(c, t): [] for c in COMMANDS for t in trees}
            for i in range(args.runs + 1):  # round 0 warms both (caches, page cache) and is not counted
                for c, cmd in COMMANDS.items():
                    for t, cwd in trees.items():
                        sample = run(cmd, env, cwd)
                        if i:
                            times[(c, t)].append(sample)
    finally:
        proc.terminate()
        proc.wait()
    print(f"oneshot_ab: {args.memories} memories, memory.embeddings = {args.mode}, {args.runs} interleaved rounds; "
          f"base = {trees['base']}")
    print(f"{'command':<10}{'checkout':<10}{'wall ms':>9}{'CPU ms':>9}")
    for (c, t), samples in times.items():
        print(f"{c:<10}{t:<10}{statistics.median(s[0] for s in samples):>9.0f}"
              f"{statistics.median(s[1] for s in samples):>9.0f}")


if __name__ == "__main__":
    main()
