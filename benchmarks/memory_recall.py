"""Recall of the evidence: the public dev set first (benchmarks/memory_recall_dev.py), then, with
``--synthetic``, the generator below as a second suite (never reported alone: it was read while
designing, so its figures do not carry over to conversations nobody here wrote).

    .venv/bin/python benchmarks/memory_recall.py --limit 300          # quick: 300 sampled questions
    .venv/bin/python benchmarks/memory_recall.py                      # all 1,360 questions
    .venv/bin/python benchmarks/memory_recall.py --synthetic-only -- --seeds 5   # the generator alone
    .venv/bin/python benchmarks/memory_recall.py --synthetic-only -- --try "x0.7:session=1.05,session_index=0.7"

The dataset comes from benchmarks/memory_dataset.py (multi-session conversations over months with
planted, changing, two-session, date and assistant-said facts among distractors that share their
words). Every turn is one document for everyone. Baselines built here, in the same run:
  fts5        FTS5 with the default unicode61 tokenizer, question words OR-ed, ranked by BM25
  fts5+porter the same with the porter stemmer (what the store's index uses)
recall@k = share of a question's evidence turns found in the top k, averaged per type.
Ablations switch off one recall step at a time (copa.memory.recall.RecallOptions) to show what
each one is worth; the dev set's conversation steps (rows "kw ...") and the store as it was before
them are among them, since this suite is where their cost shows (docs/benchmarks.md, round 8).
With copa[embeddings] installed, the store is also measured with its dense
retriever ("copa store + dense"), the dense retriever alone, and ablations of the fusion.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_dataset import Dataset, build  # noqa: E402
from memory_recall_dev import ABLATIONS as DEV_ABLATIONS  # noqa: E402
from memory_recall_dev import LANDED, main, parse_variant  # noqa: E402

from copa.memory import MemoryStore, embeddings  # noqa: E402
from copa.memory.recall import DEFAULT, RecallOptions, search  # noqa: E402
from copa.memory.text import words  # noqa: E402

KS = (5, 10)


class FTSBaseline:
    def __init__(self, ds: Dataset, tokenize: str):
        self.db = sqlite3.connect(":memory:")
        self.db.execute(f"CREATE VIRTUAL TABLE f USING fts5(text, tokenize='{tokenize}')")
        self.ids = [t.id for t in ds.turns]
        self.db.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)",
                            [(i + 1, t.text) for i, t in enumerate(ds.turns)])

    def search(self, question: str, k: int) -> list[str]:
        toks = list(dict.fromkeys(w.lower() for w in words(question)))
        if not toks:
            return []
        rows = self.db.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY rank LIMIT ?",
                               (" OR ".join(f'"{t}"' for t in toks), k)).fetchall()
        return [self.ids[r[0] - 1] for r in rows]


def load_store(ds: Dataset, path: Path, embeddings: str | None = None) -> MemoryStore:
    store = MemoryStore(path, embeddings=embeddings)
    store.add_many([{"id": t.id, "text": t.text, "kind": "episode", "session_id": t.session_id, "role": t.role,
                     "occurred_at": t.at} for t in ds.turns])
    return store


def evaluate(ds: Dataset, retrieve) -> dict[str, dict[int, float]]:
    sums: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    for q in ds.questions:
        got = retrieve(q, max(KS))
        for k in KS:
            top = set(got[:k])
            sums[q.qtype][k] += sum(e in top for e in q.evidence) / len(q.evidence)
        counts[q.qtype] += 1
    return {t: {k: sums[t][k] / counts[t] for k in KS} for t in counts}


def dense_retriever(store: MemoryStore):
    """Nearest memories by cosine alone (only those that existed when the question was asked)."""
    ids = dict(store.conn.execute("SELECT pk, id FROM memories"))

    def run(q, k):
        near = store.vectors.similar(store.conn, store.vectors.query_vector(q.text), k)
        return [ids[pk] for pk, _ in sorted(near.items(), key=lambda x: -x[1])]
    return run


def store_retriever(store: MemoryStore, opts: RecallOptions):
    def run(q, k):
        return [h.id for h in search(store, q.text, limit=k, as_of=q.asked_at, opts=opts)]
    return run


ABLATIONS = {
    "no stop-words": {"stop_words": False},
    "no coverage": {"coverage": 0.0},
    "no dates": {"dates": False},
    "+ neighbours 0.1": {"neighbours": 0.1},
    "no priors": {"recency": 0.0, "recency_now": 0.0, "importance": 0.0, "corroboration": 0.0},
    "+ recency prior": {"recency": 0.04},
    "+ 'now' recency": {"recency_now": 0.3},
    "no assistant cue": {"assistant_next": 0.0},
    "no name weight": {"names": 1.0},
    "no diversify": {"diversify": False},
    "no irregular verbs": {"irregular": False},
}
# Rows measured on the store with the dense retriever (copa[embeddings]).
DENSE_ABLATIONS = {
    "dense: no synonyms": {"synonyms": 0},
    "dense: synonyms 5, >= 0.5": {"synonyms": 5, "synonym_min": 0.5},
    "dense: rank fusion k=60": {"rrf": 60},
    "dense: flat weight": {"dense_pivot": 9.0},
    "dense: weight 0.5": {"dense": 0.5},
    "dense: no similarity floor": {"dense_min": -1.0},
    "dense: pool 200": {"dense_pool": 200},
}


def merge(results: list[dict[str, dict[int, float]]]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for t in results[0]:
        out[t] = {k: sum(r[t][k] for r in results) / len(results) for k in KS}
    return out


def synthetic_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description="second suite: the generator (benchmarks/memory_dataset.py)")
    ap.add_argument("--seeds", type=int, default=5, help="datasets to average over (seeds 1..N)")
    ap.add_argument("--sessions", type=int, default=120, help="sessions per dataset")
    ap.add_argument("--no-ablations", dest="ablations", action="store_false", help="skip the ablation rows")
    ap.add_argument("--no-dense", dest="dense", action="store_false", help="skip the dense retriever rows")
    ap.add_argument("--try", dest="variants", action="append", default=[], metavar="NAME:FIELD=V,...",
                    help="an extra row with these RecallOptions changes, on the keyword store and (with the "
                    "extra) on the dense one (repeatable)")
    args = ap.parse_args(argv)
    kw_rows: dict[str, RecallOptions] = {}
    dense_rows: dict[str, RecallOptions] = {}
    if args.ablations:
        kw_rows |= {n: replace(DEFAULT, **ch) for n, ch in ABLATIONS.items()}
        # The dev set's conversation steps switched off one at a time, and the store as it was before
        # them: the steps were chosen on the dev set, so this suite is where a cost of theirs shows.
        kw_rows |= {f"kw {n}": replace(DEFAULT, **ch) for n, ch in DEV_ABLATIONS.items()}
        kw_rows["kw as landed (before #14)"] = replace(DEFAULT, **LANDED)
        dense_rows |= {n: replace(DEFAULT, **ch) for n, ch in DENSE_ABLATIONS.items()}
    for name, opts in map(parse_variant, args.variants):
        kw_rows[f"try {name}"] = opts
        dense_rows[f"dense try {name}"] = opts
    systems: dict[str, list] = defaultdict(list)
    dense = args.dense and embeddings.available()
    if args.dense and not dense:
        print("note: copa[embeddings] is not installed: no dense rows (pip install -e '.[embeddings]')")
    n_turns = n_q = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="copa-recall-") as tmp:
        for seed in range(1, args.seeds + 1):
            ds = build(seed=seed, sessions=args.sessions)
            n_turns += len(ds.turns)
            n_q += len(ds.questions)
            plain = FTSBaseline(ds, "unicode61")
            porter = FTSBaseline(ds, "porter unicode61 remove_diacritics 2")
            systems["fts5"].append(evaluate(ds, lambda q, k, b=plain: b.search(q.text, k)))
            systems["fts5+porter"].append(evaluate(ds, lambda q, k, b=porter: b.search(q.text, k)))
            with load_store(ds, Path(tmp) / f"s{seed}.db") as store:
                systems["copa store"].append(evaluate(ds, store_retriever(store, DEFAULT)))
                for name, opts in kw_rows.items():
                    systems[f"  {name}"].append(evaluate(ds, store_retriever(store, opts)))
            if dense:
                with load_store(ds, Path(tmp) / f"d{seed}.db", "static") as store:
                    systems["copa store + dense"].append(evaluate(ds, store_retriever(store, DEFAULT)))
                    systems["  dense alone"].append(evaluate(ds, dense_retriever(store)))
                    for name, opts in dense_rows.items():
                        systems[f"  {name}"].append(evaluate(ds, store_retriever(store, opts)))
    results = {name: merge(rs) for name, rs in systems.items()}
    types = list(results["fts5"])
    print(f"memory_recall: {args.seeds} datasets, {n_turns} turns, {n_q} questions "
          f"({time.perf_counter() - t0:.1f} s)")
    head = f"{'system':<40}" + "".join(f"{t + ' @5/@10':>22}" for t in types) + f"{'all @5/@10':>16}"
    print(head)
    for name, res in results.items():
        cells = "".join(f"{res[t][5]:>14.2f} / {res[t][10]:.2f}" for t in types)
        allk = {k: sum(res[t][k] for t in types) / len(types) for k in KS}
        print(f"{name:<40}{cells}{allk[5]:>9.2f} / {allk[10]:.2f}")
    name = "copa store + dense" if dense else "copa store"
    store = results[name]
    best = {t: max(results["fts5"][t][5], results["fts5+porter"][t][5]) for t in types}
    beaten = [t for t in types if store[t][5] > best[t] and
              store[t][10] > max(results["fts5"][t][10], results["fts5+porter"][t][10])]
    print(f"{name} beats both baselines at @5 and @10 on {len(beaten)}/{len(types)} types"
          + ("" if len(beaten) == len(types) else f" (not: {', '.join(t for t in types if t not in beaten)})"))


if __name__ == "__main__":
    main(synthetic_main)
