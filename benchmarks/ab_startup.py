"""Startup of one-shot commands, this tree against another copa tree, interleaved run by run.

    python benchmarks/ab_startup.py --before /tmp/copa-old [--runs 30]
    python benchmarks/ab_startup.py --before /tmp/copa-old --memories 300 [--embeddings static]

With ``--memories N`` the cases are ``copa ask`` and ``copa memory search`` over a store of N
memories (every one embedded) with a loopback model server answering at once, as in
memory_cost.py: what recall costs a fresh process, before and after a change.

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

MEMORY_CASES = {
    "copa ask": ["ask", "when does the bike shop close?"],
    "copa memory search": ["memory", "search", "when does the bike shop close"],
}
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
    ap.add_argument("--memories", type=int, default=0, help="time ask and memory search over this many memories")
    ap.add_argument("--embeddings", default="static", help="memory.embeddings for --memories (off, static, minilm)")
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    cases, server = CASES, None
    with tempfile.TemporaryDirectory() as h1, tempfile.TemporaryDirectory() as h2:
        sides = {"before": {**os.environ, "COPA_HOME": h1, "PYTHONPATH": str(args.before.resolve())},
                 "after": {**os.environ, "COPA_HOME": h2, "PYTHONPATH": str(here)}}
        if args.memories:
            cases, server = MEMORY_CASES, prepare_stores(sides, args.memories, args.embeddings)
        try:
            compare(cases, sides, args.runs)
        finally:
            if server is not None:
                server.terminate()
                server.wait()
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def prepare_stores(sides: dict[str, dict[str, str]], memories: int, embeddings: str):
    """Each side's COPA_HOME gets the same memories and the model server; returns the server."""
    sys.path[:0] = [str(Path(__file__).resolve().parent)]
    from agent_overhead import start_server
    from memory_cost import prepare_home

    server, base_url = start_server()
    for env in sides.values():
        prepare_home(env["COPA_HOME"], base_url, memories)
        env["COPA_MEMORY_EMBEDDINGS"] = embeddings
        if embeddings != "off":
            subprocess.run([sys.executable, "-m", "copa", "memory", "embed"], env=env, check=True, capture_output=True)
    return server


def compare(cases: dict[str, list[str]], sides: dict[str, dict[str, str]], runs: int) -> None:
    print(f"{'command':<20} {'side':<7} {'wall med':>9} {'wall p90':>9} {'cpu med':>8}   ({runs} runs each, "
          "interleaved)")
    for name, cmd in cases.items():
        results: dict[str, list[tuple[float, float]]] = {s: [] for s in sides}
        for env in sides.values():
            run(cmd, env)
        for _ in range(runs):
            for side, env in sides.items():
                results[side].append(run(cmd, env))
        for side, rs in results.items():
            walls = sorted(w for w, _ in rs)
            print(f"{name:<20} {side:<7} {statistics.median(walls):>9.3f} "
                  f"{walls[int(0.9 * (len(walls) - 1))]:>9.3f} {statistics.median(c for _, c in rs):>8.3f}")


if __name__ == "__main__":
    main()
