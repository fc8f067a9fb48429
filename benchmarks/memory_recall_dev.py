"""Memory recall on the public dev set, copa beside BM25 baselines built in the same run.

    .venv/bin/python benchmarks/memory_recall.py --limit 300           # 300 sampled questions, quick
    .venv/bin/python benchmarks/memory_recall.py                       # all 1,360 questions
    .venv/bin/python benchmarks/memory_recall.py --ablations           # + one row per recall step
    .venv/bin/python benchmarks/memory_recall.py --dense off           # keyword systems only

The data (``--data``, default ../shared/data/memory-dev beside the repository) and the scoring rules
are described in benchmarks/memory_devset.py. Embeddings of turns are cached under
~/.cache/copa-bench (keyed by model and text), so a second run does not embed 14k turns again.
Latency is the mean time of one search, as a ratio to BM25 over turns in the same run; timings are
upper bounds when the machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_devset import BM25Sessions, BM25Turns, Hits, aggregate, load, paired_gap, score  # noqa: E402

from copa.memory import MemoryStore, embeddings  # noqa: E402
from copa.memory.recall import DEFAULT, RecallOptions, search  # noqa: E402
from copa.memory.sessions import search_sessions  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "memory-dev"
CACHE = Path.home() / ".cache" / "copa-bench"
METRICS = ("r@5", "r@10", "all@10", "budget", "sess@10")
# One row per recall step, each the default with one change (RecallOptions fields).
DENSE_ABLATIONS: dict[str, dict] = {
    "adaptive weight (before #14)": {"dense": 0.2, "dense_pivot": 1.5},
    "weight 1.0": {"dense": 1.0},
    "weight 2.5": {"dense": 2.5},
    "rank fusion k=60": {"rrf": 60},
    "no synonyms": {"synonyms": 0},
}
ABLATIONS: dict[str, dict] = {
    "no context turns": {"context": 0},
    "no session fusion": {"session": 0.0, "session_fill": 0, "session_index": 0.0, "session_draw": 0},
    "no session coverage fusion": {"session": 0.0},
    "no session index": {"session_index": 0.0, "session_draw": 0},
    "session index: no drawn turns": {"session_draw": 0},
    "session index: user turns only": {"session_other": 0.0},
    "+ session fill 2": {"session_fill": 2},
    "no role weighting": {"user_turns": 0.0, "length_norm": 0.0},
    "no length norm": {"length_norm": 0.0},
    "no user weight": {"user_turns": 0.0},
    "+ session diversity 0.1": {"spread": 0.1},
    "+ neighbours lend 0.1": {"neighbours": 0.1},
    "context: long neighbours too": {"context_max": 100_000},
    "no stale-episode demotion": {"stale_episodes": False},
}


class CachedEmbedder:
    """The model's vectors, remembered by text on disk (only the benchmark does this)."""

    def __init__(self, inner):
        import numpy as np

        self.inner, self.name, self.dim, self._np = inner, inner.name, inner.dim, np
        self.path = CACHE / f"{inner.name}.npz"
        self.cache: dict[bytes, object] = {}
        self.new = 0
        if self.path.exists():
            z = np.load(self.path)
            self.cache = dict(zip((bytes(k) for k in z["keys"]), z["vecs"], strict=True))
        self.embed_s = 0.0
        self.embedded = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts):
        np = self._np
        keys = [hashlib.blake2b(t.encode(), digest_size=12).digest() for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            t0 = time.perf_counter()
            vecs = self.inner.embed([texts[i] for i in todo])
            self.embed_s += time.perf_counter() - t0
            self.embedded += len(todo)
            for i, v in zip(todo, vecs, strict=True):
                self.cache[keys[i]] = v.astype(np.float32)
            self.new += len(todo)
            if self.new >= 2000:
                self.save()
        return np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

    def save(self):
        np = self._np
        CACHE.mkdir(parents=True, exist_ok=True)
        keys = list(self.cache)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array([np.frombuffer(k, np.uint8) for k in keys]),
                 vecs=np.stack(list(self.cache.values())))
        tmp.replace(self.path)
        self.new = 0


def copa_hits(hits) -> list[Hits]:
    out = []
    for h in hits:
        items = [(h.id, h.session_id, len(h.text))]
        items += [(cid or "-", h.session_id, len(ct)) for cid, ct in zip(h.context_ids, h.context, strict=True)]
        out.append(Hits(items))
    return out


def turn_hits(groups, single: bool) -> list[Hits]:
    return [Hits([(t.id, t.session, len(t.text)) for t in g], single=single) for g in groups]


def main(synthetic=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="the dev set folder (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=0, help="score this many sampled questions (0: all)")
    ap.add_argument("--conversations", type=int, default=0, help="only the first N conversations (0: all)")
    ap.add_argument("--seed", type=int, default=1, help="sampling seed for --limit")
    ap.add_argument("--dense", default="auto", help="embedding models for the hybrid rows: auto, off, or a "
                    "comma list of copa.memory.embeddings specs (static, minilm)")
    ap.add_argument("--ablations", action="store_true", help="one row per recall step switched off")
    ap.add_argument("--dense-ablations", action="store_true", help="ablations on the hybrid store too")
    ap.add_argument("--try", dest="variants", action="append", default=[], metavar="NAME:FIELD=V,...",
                    help="an extra keyword row with these RecallOptions changes (repeatable)")
    ap.add_argument("--try-dense", dest="dense_variants", action="append", default=[], metavar="NAME:FIELD=V,...",
                    help="the same, as an extra row for each hybrid store")
    ap.add_argument("--agent-window", type=int, default=0, metavar="TOKENS",
                    help="also score what the agent puts in its prompt (copa.agent.context.assemble) for a "
                    "model with this context window: the share of evidence turns whose text is in it")
    ap.add_argument("--synthetic", action="store_true", help="also run the generator suite (second suite); "
                    "arguments after '--' go to it")
    ap.add_argument("--synthetic-only", action="store_true", help="run the generator suite alone (~25 s): a "
                    "quick check that a recall change keeps it; never a figure to report alone")
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.synthetic_only:
        if synthetic is None:
            sys.exit("memory_recall: run benchmarks/memory_recall.py for the generator suite")
        synthetic(rest)
        return
    if not args.data.is_dir():
        sys.exit(f"memory_recall: no dev set at {args.data}: pass --data FOLDER")
    convs = load(args.data, args.limit or None, args.seed)
    if args.conversations:
        convs = sorted(convs, key=lambda c: len(c.turns))[:args.conversations]  # the shortest first
    specs = _dense_specs(args.dense)
    systems: dict[str, tuple[str, object]] = {"copa keyword": ("kw", DEFAULT)}
    variant_of: dict[str, str] = {}  # a --try row -> the defaults row of its store, compared in the verdict
    if args.ablations:
        systems |= {f"  kw {n}": ("kw", replace(DEFAULT, **ch)) for n, ch in ABLATIONS.items()}
        systems["  kw as landed (before #14)"] = ("kw", replace(DEFAULT, **LANDED))
    for name, opts in map(parse_variant, args.variants):
        systems[f"  try {name}"] = ("kw", opts)
        variant_of[f"  try {name}"] = "copa keyword"
    for spec in specs:
        systems[f"copa hybrid ({spec})"] = (spec, DEFAULT)
        systems[f"  {spec}: dense alone"] = (spec, "dense-alone")
        for name, opts in map(parse_variant, args.dense_variants):
            systems[f"  {spec} try {name}"] = (spec, opts)
            variant_of[f"  {spec} try {name}"] = f"copa hybrid ({spec})"
        if args.ablations:
            systems |= {f"  {spec} {n}": (spec, replace(DEFAULT, **ch)) for n, ch in DENSE_ABLATIONS.items()}
        if args.dense_ablations:
            systems |= {f"  {spec} {n}": (spec, replace(DEFAULT, **ch)) for n, ch in ABLATIONS.items()}
    rows: dict[str, list] = defaultdict(list)
    prompt_rows: dict[str, list] = defaultdict(list)
    took: dict[str, float] = defaultdict(float)
    ingest = defaultdict(float)
    n_turns = 0
    conversation_of: list[int] = []  # each scored question's conversation, in the order rows are kept
    load_s = {}
    for spec in specs:
        t0 = time.perf_counter()
        emb = embeddings.load(spec)
        load_s[spec] = time.perf_counter() - t0
        embeddings._cache[spec] = CachedEmbedder(emb)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="copa-recall-dev-") as tmp:
        for ci, conv in enumerate(convs):
            stores = {"kw": MemoryStore(Path(tmp) / f"{ci}-kw.db")}
            for spec in specs:
                stores[spec] = MemoryStore(Path(tmp) / f"{ci}-{spec}.db", embeddings=spec)
            bm_turns, bm_raw, bm_sess = BM25Turns(), BM25Turns("unicode61"), BM25Sessions()
            pos = {t.id: i for i, t in enumerate(conv.turns)}
            fed = 0
            for q in conv.questions:
                conversation_of.append(ci)
                new = conv.turns[fed:pos[q.asked_at]]
                fed = pos[q.asked_at]
                if new:
                    n_turns += len(new)
                    for b in (bm_turns, bm_raw, bm_sess):
                        b.add(new)
                    recs = [{"id": f"{conv.id}/{t.id}", "text": t.text, "kind": "episode", "session_id": t.session,
                             "role": t.role, "occurred_at": t.at} for t in new if t.text.strip()]
                    for key, st in stores.items():
                        t0 = time.perf_counter()
                        st.add_many(recs)
                        while st.vectors is not None and st.vectors.catch_up(st):
                            pass  # scored with every turn embedded (a live store embeds lazily)
                        ingest[key] += time.perf_counter() - t0
                for name, b, single in (("bm25-turns", bm_turns, True), ("bm25-turns-raw", bm_raw, True),
                                        ("bm25-sessions", bm_sess, False)):
                    t0 = time.perf_counter()
                    got = b.search(q.text, 50 if single else 10)
                    took[name] += time.perf_counter() - t0
                    rows[name].append((q.category, score(q, turn_hits(got, single))))
                for name, (key, opts) in systems.items():
                    st = stores[key]
                    t0 = time.perf_counter()
                    ranking = None
                    if opts == "dense-alone":
                        hits = _dense_alone(st, q.text)
                    else:
                        hits = search(st, q.text, limit=50, opts=opts, asked_at=q.at)
                        # the product's session ranking (copa memory search --sessions), from these hits
                        ranking = [s.session_id for s in search_sessions(st, q.text, limit=10, opts=opts,
                                                                         asked_at=q.at, turn_hits=hits)]
                    took[name] += time.perf_counter() - t0
                    got = copa_hits(hits)
                    for h in got:  # ids are "<conversation>/<turn id>"
                        h[:] = [(i.split("/", 1)[-1], s, n) for i, s, n in h]
                    rows[name].append((q.category, score(q, got, ranking)))
                if args.agent_window:
                    texts = {t.id: t.text for t in conv.turns}
                    for key, st in stores.items():
                        prompt_rows[key].append((q.category, in_prompt(st, q, texts, args.agent_window)))
            for st in stores.values():
                st.close()
    for spec in specs:
        embeddings._cache[spec].save()
    wall = time.perf_counter() - t_start
    nq = sum(len(c.questions) for c in convs)
    print(f"memory_recall (dev set {args.data.name}): {len(convs)} conversations, {nq} questions, "
          f"{n_turns} turns replayed ({wall:.0f} s){'' if not args.limit else f', sample of {args.limit}'}")
    results = {name: aggregate(r) for name, r in rows.items()}
    bt = results["bm25-turns"]
    cats = ["all"] + sorted((c for c in bt if c != "all"), key=lambda c: -bt[c]["n"])
    base = took["bm25-turns"] or 1e-9
    for cat in cats:
        print(f"\n{cat} ({results['bm25-turns'][cat]['n']} questions)")
        print(f"{'system':<36}" + "".join(f"{m:>9}" for m in METRICS) + f"{'time':>9}")
        for name, res in results.items():
            cells = "".join(f"{100 * res[cat][m]:>9.1f}" for m in METRICS)
            ratio = f"{took[name] / base:>8.1f}x" if cat == "all" else ""
            print(f"{name:<36}{cells}{ratio}")
    print(f"\nBM25 over turns: {1000 * base / nq:.2f} ms a search (mean)")
    for key, s in ingest.items():
        print(f"ingest {key}: {n_turns / s:,.0f} turns/s")
    for spec, s in load_s.items():
        e = embeddings._cache[spec]
        rate = f", {e.embedded / e.embed_s:,.0f} texts/s embedded" if e.embedded else " (all vectors cached)"
        print(f"model {spec}: loaded in {s:.2f} s{rate}")
    _verdict(results, cats, rows, conversation_of, variant_of)
    if prompt_rows:
        print(f"\nevidence in the agent's prompt (copa.agent.context.assemble, a {args.agent_window}-token window; "
              "share of evidence turns whose text the prompt holds)")
        print(f"{'store':<36}" + "".join(f"{c[:14]:>16}" for c in cats))
        for key, r in prompt_rows.items():
            agg = aggregate(r)
            print(f"{key:<36}" + "".join(f"{100 * agg[c]['prompt']:>16.1f}" for c in cats))
    if args.synthetic and synthetic is not None:
        print("\n--- second suite: the generator (benchmarks/memory_dataset.py) ---")
        synthetic(rest)


def _verdict(results, cats, rows, conversation_of: list[int], variant_of: dict[str, str]) -> None:
    """The issue's targets for each copa row, each gap with its 95 % paired bootstrap interval and the
    number of conversations in which copa is ahead (memory_devset.paired_gap)."""
    def gap(name: str, base: str, metric: str) -> str:
        g, lo, hi, ahead, n = paired_gap([m[metric] for _, m in rows[name]], [m[metric] for _, m in rows[base]],
                                         conversation_of)
        return f"{metric} {g:+.1f} [{lo:+.1f}, {hi:+.1f}; ahead in {ahead}/{n}]"

    print("\ngaps in points, [95 % paired bootstrap interval over questions; "
          "conversations where the first system is ahead]")
    for name in (n for n in results if n.startswith("copa ")):
        r, bt = results[name], results["bm25-turns"]
        lost = [c for c in cats if c != "all" and (r[c]["r@10"] < bt[c]["r@10"] or r[c]["budget"] < bt[c]["budget"])]
        print(f"{name}: {gap(name, 'bm25-turns', 'r@10')}, {gap(name, 'bm25-turns', 'budget')} vs bm25-turns; "
              f"{gap(name, 'bm25-sessions', 'sess@10')} vs bm25-sessions; loses on: {', '.join(lost) or 'none'}")
    for name, base in variant_of.items():  # a --try row against its store's defaults, same questions
        print(f"{name.strip()} vs {base}: " + ", ".join(gap(name, base, m) for m in ("r@10", "budget", "sess@10")))


def in_prompt(store, q, texts: dict[str, str], window: int) -> dict[str, float]:
    """{'prompt': share of q's evidence turns whose text (its first 120 characters) is in the prompt
    the agent builds for q, asked at q's time in a new conversation, with no tools}."""
    from copa.agent.context import assemble

    ctx = assemble(store, q.text, session_id="benchmark-question", window=window, answer_tokens=1024, tools=[],
                   now=q.at)
    prompt = ctx.system + "\n" + "\n".join(m.content for m in ctx.messages)
    return {"prompt": sum(texts[e].strip()[:120] in prompt for e in q.evidence) / len(q.evidence)}


def parse_variant(spec: str) -> tuple[str, RecallOptions]:
    """A ``--try`` row, ``NAME:FIELD=V,...``: its name and the defaults with those fields changed."""
    name, _, text = spec.partition(":")
    changes = {}
    for part in filter(None, text.split(",")):
        k, v = part.split("=")
        cur = getattr(DEFAULT, k.strip())
        changes[k.strip()] = (v.strip().lower() in ("1", "true", "yes")) if isinstance(cur, bool) else type(cur)(v)
    return name, replace(DEFAULT, **changes)


def _dense_specs(arg: str) -> list[str]:
    if arg == "off":
        return []
    if arg == "auto":
        return [s for s in ("static", "minilm") if embeddings.resolve(s, quiet=True)]
    return [s.strip() for s in arg.split(",") if s.strip()]


def _dense_alone(store, text):
    from types import SimpleNamespace

    while store.vectors.catch_up(store):
        pass
    near = store.vectors.similar(store.conn, store.vectors.query_vector(text), 50)
    order = sorted(near, key=lambda pk: -near[pk])
    rows = dict((r[0], r[1:]) for r in store.conn.execute(
        f"SELECT pk, id, session_id, text FROM memories WHERE pk IN ({','.join('?' * len(order))})", order))
    return [SimpleNamespace(id=rows[pk][0], session_id=rows[pk][1], text=rows[pk][2], context=[], context_ids=[])
            for pk in order if pk in rows]


LANDED = {"context": 1, "context_max": 100_000, "session": 0.0, "session_fill": 0, "session_index": 0.0,
          "session_draw": 0, "user_turns": 0.0,
          "length_norm": 0.0,
          "stale_episodes": False}

if __name__ == "__main__":
    main()
