"""How fast an embedding model runs in-process: texts a second over dev-set turns, and one question.

    .venv/bin/python benchmarks/embed_rate.py                          # MiniLM, this tree only
    .venv/bin/python benchmarks/embed_rate.py --before /tmp/copa-old   # against another tree, interleaved

Each measurement runs in a fresh interpreter with the tree on PYTHONPATH (and a temporary working
folder, or ``python`` would import the repository's copa whatever PYTHONPATH says): the model is
loaded, then ``--texts`` turns of the dev set (../shared/data/memory-dev; the synthetic generator's
texts when it is absent) are embedded in one call (what a back-fill does with a batch) and one
question is embedded five times (the median is what a search pays once the model is loaded). Trees
alternate round by round, so a shared machine's drift falls on both. ``OPENBLAS_NUM_THREADS=1``
in the environment times the single thread a search-ahead child runs with.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "memory-dev" / "conversations.jsonl"

CHILD = """
import json, statistics, sys, time
from copa.memory import embeddings
kind, texts = sys.argv[1], json.loads(sys.stdin.read())
t = time.perf_counter()
model = embeddings.load(kind)
load = time.perf_counter() - t
t = time.perf_counter()
model.embed(texts)
batch = time.perf_counter() - t
question = []
for _ in range(5):
    t = time.perf_counter()
    model.embed(["when does the bike shop close on fridays?"])
    question.append(time.perf_counter() - t)
print(json.dumps({"load": load, "rate": len(texts) / batch, "question": statistics.median(question)}))
"""


def texts(n: int) -> list[str]:
    if DEV.is_file():
        out = []
        with DEV.open() as f:
            for line in f:
                out += [t["text"] for s in json.loads(line)["sessions"] for t in s["turns"] if t["text"]]
                if len(out) >= 4 * n:
                    break
        return out[::4][:n]  # spread over the conversations' turns, short and long alike
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from memory_scale import Corpus

    return [r["text"] for r in Corpus().records(0, n)]


def measure(tree: Path, kind: str, batch: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind], input=json.dumps(batch), capture_output=True,
                         text=True, check=True, cwd=tempfile.gettempdir(),
                         env={**os.environ, "PYTHONPATH": str(tree)})
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm", choices=("minilm", "static"))
    ap.add_argument("--texts", type=int, default=320, help="turns embedded in one call")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=Path, help="another copa tree to time alternately (its root folder)")
    args = ap.parse_args()
    from copa.memory import embeddings

    if not embeddings.available(args.model):
        raise SystemExit(f"embed_rate: the {args.model} model is not installed (make dev installs both)")
    batch = texts(args.texts)
    trees = {"after": ROOT} if args.before is None else {"before": args.before.resolve(), "after": ROOT}
    got: dict[str, list[dict]] = {side: [] for side in trees}
    for _ in range(args.rounds):
        for side, tree in trees.items():
            got[side].append(measure(tree, args.model, batch))
    print(f"embed_rate: {args.model}, {len(batch)} texts ({'dev set' if DEV.is_file() else 'synthetic'}), "
          f"{args.rounds} rounds, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    print(f"{'tree':<7} {'texts/s':>8} {'question ms':>12} {'load ms':>8}   (medians; load includes importing numpy)")
    for side, runs in got.items():
        print(f"{side:<7} {statistics.median(r['rate'] for r in runs):>8.1f} "
              f"{1000 * statistics.median(r['question'] for r in runs):>12.1f} "
              f"{1000 * statistics.median(r['load'] for r in runs):>8.1f}")


if __name__ == "__main__":
    main()
