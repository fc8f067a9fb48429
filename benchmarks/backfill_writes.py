"""What a back-fill of vectors does to the user's other commands, and how fast it goes.

    .venv/bin/python benchmarks/backfill_writes.py                    # MiniLM when installed
    .venv/bin/python benchmarks/backfill_writes.py --embeddings static --memories 20000

(Subprocesses run in the temporary home, not here: ``python -m copa`` in this folder would import
this tree's copa whatever PYTHONPATH says, and ``PYTHONPATH=/tmp/old`` is how to time another tree.)

A store of N memories without vectors (conversation turns of the development set when it is
there, else generated notes) gets them from a real ``copa memory embed`` process while
``copa memory add`` runs again and again beside it: each add's wall time and exit code, beside
the same adds with nothing else running (the baseline, same run). Then the back-fill's rate.

Until December 2026 the model ran inside the write transaction: with MiniLM (~9 turns a second
here) every add waited the 30 s busy timeout and failed with exit 70. Target: adds during a
back-fill as fast as without one (within the machine's noise), every one exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "memory-dev" / "conversations.jsonl"


def texts(n: int) -> list[str]:
    """n texts: turns of the development set (in file order) when it is there, then generated notes."""
    out: list[str] = []
    if DEV.is_file():
        with DEV.open(encoding="utf-8") as f:
            for line in f:
                for session in json.loads(line).get("sessions", []):
                    out += [t.get("text") or "" for t in session.get("turns", []) if t.get("text")]
                if len(out) >= n:
                    return out[:n]
    note = "the plumber said the boiler needs a new valve before winter and the invoice is due"
    words = note.split(" ")
    return out + [" ".join(words[: 5 + i % 12] * (1 + i % 7)) + f" (note {i})" for i in range(n - len(out))]


def copa(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "copa", *args], env=env, capture_output=True, cwd=env["COPA_HOME"])
    return time.perf_counter() - t, done.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=None, help="default: 300 for MiniLM, 20,000 for the static model")
    ap.add_argument("--adds", type=int, default=5, help="copa memory add runs during the back-fill")
    ap.add_argument("--embeddings", default=None, help="minilm (default when installed) or static")
    args = ap.parse_args()
    from copa.memory import MemoryStore, embeddings

    kind = args.embeddings or ("minilm" if embeddings.available("minilm") else "static")
    args.memories = args.memories or (300 if kind == "minilm" else 20_000)  # a back-fill of ~30 s / ~5 s here
    home = tempfile.mkdtemp(prefix="copa-backfill-")
    env = {**os.environ, "COPA_HOME": home, "COPA_MEMORY_EMBEDDINGS": kind}
    copa(["memory", "add", "a first note"], env)
    db = next(Path(home).rglob("copa.db"))
    with MemoryStore(db) as store:  # no dense retriever: stored without vectors
        store.add_many([{"text": t} for t in texts(args.memories)])

    alone = [copa(["memory", "add", f"baseline note {i}"], env) for i in range(args.adds)]
    t0 = time.perf_counter()
    fill = subprocess.Popen([sys.executable, "-m", "copa", "memory", "embed", "--no-progress", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home)
    time.sleep(2.0)  # the back-fill has loaded the model and is embedding
    during = []
    for i in range(args.adds):
        if fill.poll() is not None:
            break
        during.append(copa(["memory", "add", f"note written during the back-fill {i}"], env))
    out, err = fill.communicate()
    took = time.perf_counter() - t0
    if fill.returncode != 0:
        raise SystemExit(f"copa memory embed failed ({fill.returncode}): {err.strip()}")
    embedded = json.loads(out)["embedded"]
    with MemoryStore(db, embeddings=kind) as store:
        left = store.missing_vectors()

    def row(name: str, runs: list[tuple[float, int]]) -> str:
        ms = [1000 * t for t, _ in runs]
        codes = sorted({c for _, c in runs})
        return f"{name:<34}{statistics.median(ms):>8.0f}{max(ms):>8.0f}   {codes}"

    print(f"backfill_writes: {args.memories} memories, model {kind}, {len(during)} adds during the back-fill")
    print(f"{'copa memory add':<34}{'med ms':>8}{'max ms':>8}   exit codes")
    print(row("  with nothing else running", alone))
    print(row("  during copa memory embed", during) if during else "  (the back-fill ended before any add)")
    print(f"back-fill: {embedded} memories in {took:.1f} s ({embedded / took:.1f} a second, process start "
          f"and model load included); {left} left without a vector")
    if not during:
        print("target: not measured (the back-fill ended before any add: give more --memories)")
        return
    ok = all(c == 0 for _, c in during) and left == 0
    print(f"target: every add during the back-fill succeeds and nothing is left: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
