"""The static model's piece cache on the dev set (copa/memory/pieces.py): exact, and how often it helps.

    .venv/bin/python benchmarks/memory_pieces.py                    # 3 histories replayed, ~1 min
    .venv/bin/python benchmarks/memory_pieces.py --conversations 10 --data ../shared/data/memory-dev

1. Exactness: every turn and question of the set is embedded by the tokenizer (which fills a fresh
   cache), then split into pieces again from the cache alone: the ids must be the tokenizer's.
2. Hit rate: each history is replayed in order; before each question the turns said before it are
   stored and embedded (the catch-up a search or the daemon does, which teaches the cache their
   pieces), then the question is searched by a model loaded afresh, as in a new `copa ask`. Counted:
   the questions searched without loading the tokenizer, and the in-process search time of both kinds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from memory_devset import load  # noqa: E402

from copa.memory import MemoryStore, embeddings  # noqa: E402


def exactness(texts: list[str], cache: Path) -> tuple[int, int]:
    """(texts whose cached ids differ from the tokenizer's, texts the cache cannot split)."""
    model = embeddings.StaticEmbedder(*embeddings.static_model_files(), cache_dir=cache)
    for i in range(0, len(texts), 2000):
        model.embed(texts[i:i + 2000])
    want = [e.ids for e in model._tok.encode_batch(texts, add_special_tokens=False)]
    fresh = embeddings.StaticEmbedder(*embeddings.static_model_files(), cache_dir=cache)
    differ = unsplit = 0
    for text, ids in zip(texts, want, strict=True):
        got = fresh._pieces.ids([text])
        if got is None:
            unsplit += 1
        elif got[0] != ids:
            differ += 1
    return differ, unsplit


def replay(conversations, folder: Path) -> tuple[int, list[float], list[float]]:
    """(questions, search ms without the tokenizer, search ms with it)."""
    n, without, with_ = 0, [], []
    for ci, conv in enumerate(conversations):
        store = MemoryStore(folder / f"{ci}.db", embeddings="static", cache_dir=folder / "cache")
        pos = {t.id: i for i, t in enumerate(conv.turns)}
        fed = 0
        for q in conv.questions:
            new = conv.turns[fed:pos[q.asked_at]]
            fed = pos[q.asked_at]
            recs = [{"text": t.text, "kind": "episode", "session_id": t.session, "role": t.role,
                     "occurred_at": t.at} for t in new if t.text.strip()]
            if recs:
                store.add_many(recs)
                while store.vectors.catch_up(store):
                    pass
            embeddings.unload()  # the question meets a model loaded afresh, as in a new process
            t0 = time.perf_counter()
            store.search(q.text, limit=20, asked_at=q.at)
            took = (time.perf_counter() - t0) * 1000
            n += 1
            (with_ if store.vectors.embedder.tokenizer_loaded else without).append(took)
        store.close()
    return n, without, with_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "memory-dev")
    ap.add_argument("--conversations", type=int, default=3, help="histories replayed for the hit rate")
    args = ap.parse_args()
    if not embeddings.available():
        raise SystemExit("memory_pieces: install the extra first (make dev)")
    if not args.data.is_dir():
        raise SystemExit(f"memory_pieces: no dev set at {args.data} (give --data)")
    conversations = load(args.data)
    texts = [t.text for c in conversations for t in c.turns] + [q.text for c in conversations for q in c.questions]
    with tempfile.TemporaryDirectory() as tmp:
        differ, unsplit = exactness(texts, Path(tmp) / "exact")
        print(f"exactness: {len(texts):,} texts, {differ} with ids other than the tokenizer's, "
              f"{unsplit} not split (left to the tokenizer)")
        n, without, with_ = replay(conversations[:args.conversations], Path(tmp) / "replay")
    print(f"hit rate: {len(without)} of {n} questions ({len(without) / n:.1%}) searched without loading the "
          f"tokenizer ({args.conversations} histories replayed)")
    if without and with_:
        print(f"in-process search, fresh model: median {statistics.median(without):.0f} ms without the tokenizer, "
              f"{statistics.median(with_):.0f} ms with it")


if __name__ == "__main__":
    main()
