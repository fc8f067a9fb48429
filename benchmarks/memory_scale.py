"""Memory at scale: batched ingest (records/s), search latency p50/p95 and database size.

    .venv/bin/python benchmarks/memory_scale.py                      # 10k and 100k (a few minutes)
    .venv/bin/python benchmarks/memory_scale.py --sizes 1000000      # the 1M case (several minutes)

Records are synthetic conversation turns and notes: words drawn from a Zipf distribution over a
30,000-word vocabulary (so some words are everywhere and most are rare, as in real text), 6-30 words
each, spread over two years in sessions of ~20 turns. Queries are questions whose 2-4 content words
follow the same Zipf law (minus the 20 commonest words).
Baselines measured in the same run: ingest into a bare FTS5 table (no other columns, no indexes) and
a plain FTS5 BM25 query (OR of the question's words, ORDER BY rank LIMIT 10).
Targets (issue #3): ingest >= 20,000 records/s; keyword search p95 <= 30 ms at 1M.
`--embeddings static` measures the same with the dense retriever (copa[embeddings]) switched on.
Ingest and search are timed as wall clock and as this process's CPU time (SQLite runs in-process):
the machines are shared, and when others load them the CPU figure says what the code costs.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from copa.memory import MemoryStore  # noqa: E402

COMMON = ["the", "a", "and", "to", "of", "i", "my", "you", "it", "is", "in", "that", "for", "was", "on", "with",
          "we", "this", "at", "have", "be", "so", "but", "just", "about", "what", "when", "where", "did", "do",
          "can", "will", "our", "they", "me", "really"]
SYLL = ["ka", "lo", "mi", "ser", "tan", "vel", "dor", "pri", "quo", "zen", "bar", "cu", "fen", "gil", "hol",
        "jor", "kes", "lun", "mor", "nel", "pa", "ros", "sil", "tor", "ul", "vin", "wes", "yor", "zar", "ti"]


def vocabulary(n: int, rnd: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rnd.choice(SYLL) for _ in range(rnd.randint(2, 4))))
    return sorted(words)


class Corpus:
    def __init__(self, seed: int = 7, vocab: int = 30_000):
        self.rnd = random.Random(seed)
        self.words = vocabulary(vocab, self.rnd)
        self.rnd.shuffle(self.words)
        weights = [1.0 / (r + 1) ** 1.05 for r in range(vocab)]
        acc, self.cum = 0.0, []
        for w in weights:
            acc += w
            self.cum.append(acc)
        self.cum_q = [c - self.cum[19] for c in self.cum[20:]]
        self.start = datetime(2023, 1, 1, tzinfo=UTC)

    def sentence(self, lo: int = 6, hi: int = 30) -> str:
        n = self.rnd.randint(lo, hi)
        content = self.rnd.choices(self.words, cum_weights=self.cum, k=max(1, n * 6 // 10))
        glue = self.rnd.choices(COMMON, k=n - len(content))
        toks = content + glue
        self.rnd.shuffle(toks)
        return " ".join(toks).capitalize() + "."

    def records(self, start: int, count: int) -> list[dict]:
        out = []
        for i in range(start, start + count):
            when = self.start + timedelta(seconds=i * 63)  # ~2 years per 1M records
            if i % 10 == 9:
                out.append({"text": self.sentence(), "kind": "note", "occurred_at": when})
            else:
                out.append({"text": self.sentence(), "kind": "episode", "session_id": f"s{i // 20}",
                            "role": "user" if i % 2 == 0 else "assistant", "occurred_at": when})
        return out

    def question(self) -> str:
        # words drawn by the same Zipf law (skipping the 20 most frequent, which act as stop-words),
        # so some questions carry words found in tens of thousands of memories
        content = self.rnd.choices(self.words[20:], cum_weights=self.cum_q, k=self.rnd.randint(2, 4))
        return f"What did I say about {' and '.join(content)}?"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench(size: int, batch: int, queries: int, workdir: Path, embeddings: str = "off") -> dict:
    corpus = Corpus()
    path = workdir / f"scale-{size}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    base_path = workdir / f"scale-{size}-baseline.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base_path}{suffix}").unlink(missing_ok=True)
    base = sqlite3.connect(base_path, isolation_level=None)
    base.execute("PRAGMA journal_mode=WAL")
    base.execute("PRAGMA synchronous=NORMAL")
    base.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')")

    store = MemoryStore(path, embeddings=embeddings)
    t_store = t_base = c_store = 0.0
    done = 0
    while done < size:
        n = min(batch, size - done)
        recs = corpus.records(done, n)
        t0, c0 = time.perf_counter(), time.process_time()
        store.add_many(recs)
        t_store += time.perf_counter() - t0
        c_store += time.process_time() - c0
        rows = [(r["text"],) for r in recs]
        t0 = time.perf_counter()
        base.execute("BEGIN")
        base.executemany("INSERT INTO f(text) VALUES (?)", rows)
        base.execute("COMMIT")
        t_base += time.perf_counter() - t0
        done += n
        if done % (batch * 20) == 0:
            print(f"  ... {done:,} ingested ({done / t_store:,.0f}/s)", file=sys.stderr, flush=True)
    embed_rps = None
    if store.vectors is not None:  # writing embeds nothing (vectors are made lazily): time the back-fill
        t0 = time.perf_counter()
        store.embed_missing()
        embed_rps = size / (time.perf_counter() - t0)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size_bytes = path.stat().st_size

    qs = [corpus.question() for _ in range(queries + 10)]
    warm, qs = qs[:10], qs[10:]
    lat, cpu, lat_base, found = [], [], [], 0
    for q in warm:  # as a long-running process (TUI, daemon) would be
        store.search(q)
    for q in qs:
        t0, c0 = time.perf_counter(), time.process_time()
        hits = store.search(q, limit=10)
        lat.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        found += bool(hits)

    lat_sessions = []  # conversations ranked as wholes (copa memory search --sessions): no target
    for q in qs[:max(20, len(qs) // 3)]:
        t0 = time.perf_counter()
        store.search_sessions(q, limit=10)
        lat_sessions.append((time.perf_counter() - t0) * 1000)

    def base_query(q: str) -> None:
        terms = [w for w in q.rstrip("?").split() if w.lower() not in COMMON]
        base.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY rank LIMIT 10",
                     (" OR ".join(f'"{t}"' for t in terms),)).fetchall()

    for q in warm:
        base_query(q)
    for q in qs:
        t0 = time.perf_counter()
        base_query(q)
        lat_base.append((time.perf_counter() - t0) * 1000)
    store.close()
    base.close()
    return {"size": size, "ingest_rps": size / t_store, "ingest_cpu_rps": size / c_store,
            "base_ingest_rps": size / t_base,
            "p50": statistics.median(lat), "p95": pct(lat, 95), "cpu_p50": statistics.median(cpu),
            "cpu_p95": pct(cpu, 95), "base_p50": statistics.median(lat_base),
            "base_p95": pct(lat_base, 95), "db_mb": size_bytes / 2**20, "answered": found / len(qs),
            "embed_rps": embed_rps, "sessions_p50": statistics.median(lat_sessions),
            "sessions_p95": pct(lat_sessions, 95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated store sizes (default 10000,100000)")
    ap.add_argument("--batch", type=int, default=5000, help="records per add_many() call")
    ap.add_argument("--queries", type=int, default=300, help="search queries timed per size")
    ap.add_argument("--embeddings", default="off", choices=("off", "static", "minilm"),
                    help="the dense retriever: memories are embedded after ingest (its rate is printed), "
                    "then it joins every search")
    ap.add_argument("--dir", default=None, help="where to build the databases (default: a temp dir, removed)")
    args = ap.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="copa-scale-")
    workdir = Path(args.dir or tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"memory_scale: batch {args.batch}, {args.queries} queries per size, cpu {os.cpu_count()}, "
          f"sqlite {sqlite3.sqlite_version}, dense retriever {args.embeddings}")
    head = (f"{'memories':>10} {'ingest/s':>10} {'/cpu-s':>8} {'bare FTS/s':>10} {'ratio':>6} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'cpu p50':>7} {'cpu p95':>7} {'FTS p50':>8} {'FTS p95':>8} {'DB MB':>7} {'answered':>8}")
    print(head)
    results = []
    for size in sizes:
        r = bench(size, args.batch, args.queries, workdir, args.embeddings)
        results.append(r)
        print(f"{r['size']:>10,} {r['ingest_rps']:>10,.0f} {r['ingest_cpu_rps']:>8,.0f} {r['base_ingest_rps']:>10,.0f} "
              f"{r['ingest_rps'] / r['base_ingest_rps']:>6.2f} {r['p50']:>7.1f} {r['p95']:>7.1f} "
              f"{r['cpu_p50']:>7.1f} {r['cpu_p95']:>7.1f} "
              f"{r['base_p50']:>8.1f} {r['base_p95']:>8.1f} {r['db_mb']:>7.1f} {r['answered']:>8.0%}"
              + (f"  embedded {r['embed_rps']:,.0f}/s" if r["embed_rps"] else ""), flush=True)
        print(f"{'':>10} search --sessions: p50 {r['sessions_p50']:.1f} ms, p95 {r['sessions_p95']:.1f} ms", flush=True)
    big = results[-1]
    # The keyword store's own target (30 ms at the largest size) says nothing of a dense run's search.
    keyword = f"; search p95 <= 30 ms at {big['size']:,} (keyword): {'met' if big['p95'] <= 30 else 'NOT met'}"
    print(f"targets: ingest >= 20,000/s: {'met' if all(r['ingest_rps'] >= 20000 for r in results) else 'NOT met'}"
          + (keyword if args.embeddings == "off" else ""))
    at100k = [r for r in results if r["size"] == 100_000]
    if at100k:  # issue 14: 20 ms keyword-only, 50 ms with the dense retriever, at 100k memories
        limit = 20 if args.embeddings == "off" else 50
        print(f"target (issue 14): search p95 <= {limit} ms at 100,000 ({args.embeddings}): "
              f"{'met' if at100k[0]['p95'] <= limit else 'NOT met'} ({at100k[0]['p95']:.1f} ms)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
