"""Recall: from a question to the memories that answer it.

Pipeline (each step is switchable in ``RecallOptions`` so the benchmark can measure it):
1. Read the question: time phrases ('on March 5', 'last week') become time windows; question words
   and stop-words are dropped; the rest is stemmed exactly as the index stems it.
2. Candidates: FTS5 BM25 over an OR of the content words (words so common they match a large share
   of the store are left out of the index query when rarer ones exist, which keeps latency flat),
   plus memories from the named time windows.
3. Score: BM25 (normalised) blended with idf-weighted coverage of the question's words, so a memory
   holding more of the distinct rare words wins over one repeating a single word; small priors for
   recency, importance and corroboration; a bonus inside the question's time window.
4. Context: a conversation turn next to a strong hit is lifted (answers often sit one turn after
   the question that names the topic); a superseded memory that matches hands its place to the
   version valid now (or at ``as_of``), found through its subject chain.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from copa.memory.model import Hit, check_kind, iso, now_utc, parse_iso, to_utc
from copa.memory.text import QUESTION_WORDS, STOP_WORDS, date_windows, fold, stemmer, words

if TYPE_CHECKING:
    from copa.memory.store import MemoryStore


@dataclass
class RecallOptions:
    pool: int = 300  # BM25 candidates considered
    stop_words: bool = True
    coverage: float = 0.55  # weight of idf coverage against normalised BM25
    common_df: float = 0.08  # terms in more than this share of memories are not used to fetch candidates
    dates: bool = True
    date_bonus: float = 0.35
    neighbours: float = 0.3  # share of a turn's score lent to the turns beside it
    neighbour_from: int = 30  # how many of the best hits lend to their neighbours
    recency: float = 0.04
    importance: float = 0.04
    corroboration: float = 0.02
    chain: bool = True


DEFAULT = RecallOptions()
_FIELDS = ("pk", "id", "text", "kind", "subject", "source", "occurred_at", "valid_from", "valid_to",
           "superseded_by", "session_id", "role", "importance", "metadata", "corroborations")
_SEL = ", ".join("m." + f for f in _FIELDS)


@dataclass
class _Query:
    stems: list[str]  # distinct content stems, in question order
    surface: dict[str, str]  # stem -> a word that stems to it (what goes into MATCH)
    windows: list[tuple[datetime, datetime]]


def analyse(query: str, now: datetime, opts: RecallOptions = DEFAULT) -> _Query:
    windows, rest = date_windows(query, now) if opts.dates else ([], query)
    toks = [fold(t) for t in words(rest)]
    content = [t for t in toks if t not in STOP_WORDS] if opts.stop_words else toks
    if not content:  # "who am I?": keep what is not a question word rather than nothing
        content = [t for t in toks if t not in QUESTION_WORDS]
    stems = stemmer().stems(content)
    surface: dict[str, str] = {}
    for t, s in zip(content, stems, strict=True):
        surface.setdefault(s, t)
    return _Query(list(surface), surface, windows)


def search(store: MemoryStore, query: str, *, limit: int = 10, kinds=None, as_of=None,
           include_superseded: bool = False, opts: RecallOptions = DEFAULT) -> list[Hit]:
    limit = max(1, int(limit))
    at = to_utc(as_of, field_name="as_of")
    q = analyse(query or "", at or now_utc(), opts)
    kinds = [check_kind(k) for k in kinds] if kinds else None
    with store._lock:
        c = store.conn
        weights = _idf(c, q.stems)
        pool: dict[int, dict[str, Any]] = {}
        _fetch_keywords(c, q, weights, pool, kinds, opts)
        if q.windows:
            _fetch_windows(c, q.windows, pool, kinds, opts)
        if not pool:
            return []
        _score(pool, q, weights, opts)
        if opts.neighbours and opts.neighbour_from:
            _lend_to_neighbours(c, pool, kinds, opts)
        visible = _resolve_validity(c, pool, at, include_superseded, opts)
        ranked = sorted(visible.values(), key=lambda r: (-r["score"], -r["pk"]))[:limit]
        return [_hit(c, r) for r in ranked]


def _idf(c, stems: list[str]) -> dict[str, float]:
    if not stems:
        return {}
    n = (c.execute("SELECT max(pk) FROM memories").fetchone()[0] or 0) + 1  # ~count, in O(log n)
    df = dict(c.execute(f"SELECT term, doc FROM memories_vocab WHERE term IN ({','.join('?' * len(stems))})",
                        stems).fetchall())
    return {s: math.log(1 + (n - df[s] + 0.5) / (df[s] + 0.5)) for s in stems if df.get(s)} | \
        {"__n__": float(n), **{f"__df__{s}": float(df.get(s, 0)) for s in stems}}


def _kind_clause(kinds: list[str] | None) -> tuple[str, list[str]]:
    if not kinds:
        return "", []
    return f" AND m.kind IN ({','.join('?' * len(kinds))})", list(kinds)


def _fetch_keywords(c, q: _Query, weights: dict[str, float], pool: dict, kinds, opts: RecallOptions) -> None:
    known = [s for s in q.stems if s in weights]
    if not known:
        return
    n = weights["__n__"]
    rare = [s for s in known if weights[f"__df__{s}"] / n <= opts.common_df]
    use = rare or sorted(known, key=lambda s: weights[f"__df__{s}"])[:2]
    match = " OR ".join(f'"{q.surface[s]}"' for s in use)
    kc, kp = _kind_clause(kinds)
    if kinds:  # filter inside: a rare kind might not make the unfiltered top of the pool
        sql = (f"SELECT {_SEL}, bm25(memories_fts, 1.0, 0.5) FROM memories_fts JOIN memories m "
               f"ON m.pk = memories_fts.rowid WHERE memories_fts MATCH ?{kc} ORDER BY 16 LIMIT ?")
        rows = c.execute(sql, (match, *kp, opts.pool)).fetchall()
    else:
        sql = (f"SELECT {_SEL}, f.r FROM (SELECT rowid, bm25(memories_fts, 1.0, 0.5) AS r FROM memories_fts "
               "WHERE memories_fts MATCH ? ORDER BY r LIMIT ?) f JOIN memories m ON m.pk = f.rowid")
        rows = c.execute(sql, (match, opts.pool)).fetchall()
    for row in rows:
        r = dict(zip(_FIELDS, row[:-1], strict=True))
        r["bm25"] = -row[-1]
        r["why"] = "keywords"
        pool[r["pk"]] = r


def _fetch_windows(c, windows, pool: dict, kinds, opts: RecallOptions) -> None:
    kc, kp = _kind_clause(kinds)
    for start, end in windows:
        rows = c.execute(f"SELECT {_SEL} FROM memories m WHERE m.occurred_at >= ? AND m.occurred_at < ?{kc} "
                         "ORDER BY m.importance DESC, m.occurred_at LIMIT ?",
                         (iso(start), iso(end), *kp, opts.pool)).fetchall()
        for row in rows:
            r = dict(zip(_FIELDS, row, strict=True))
            if r["pk"] not in pool:
                r["bm25"] = 0.0
                r["why"] = "date"
                pool[r["pk"]] = r


def _doc_stems(texts: list[str]) -> list[set[str]]:
    st = stemmer()
    toks = [[fold(w) for w in words(t)] for t in texts]
    flat = st.stems([w for ts in toks for w in ts])
    out, i = [], 0
    for ts in toks:
        out.append(set(flat[i:i + len(ts)]))
        i += len(ts)
    return out


def _score(pool: dict, q: _Query, weights: dict[str, float], opts: RecallOptions) -> None:
    rows = list(pool.values())
    qw = {s: weights[s] for s in q.stems if s in weights}
    total = sum(qw.values()) or 1.0
    best = max((r["bm25"] for r in rows), default=0.0) or 1.0
    times = [r["occurred_at"] for r in rows]
    t0, t1 = parse_iso(min(times)).timestamp(), parse_iso(max(times)).timestamp()
    span = (t1 - t0) or 1.0
    stems = _doc_stems([r["text"] + " " + (r["subject"] or "").replace(".", " ").replace("_", " ") for r in rows])
    for r, ds in zip(rows, stems, strict=True):
        cov = sum(w for s, w in qw.items() if s in ds) / total
        score = (1 - opts.coverage) * (r["bm25"] / best) + opts.coverage * cov
        if q.windows and opts.dates and any(iso(a) <= r["occurred_at"] < iso(b) for a, b in q.windows):
            score += opts.date_bonus
        score += opts.recency * (parse_iso(r["occurred_at"]).timestamp() - t0) / span
        score += opts.importance * (r["importance"] - 0.5)
        score += opts.corroboration * math.log1p(r["corroborations"])
        r["own"] = r["score"] = score


def _neighbour_rows(c, r: dict) -> list[dict]:
    out = []
    for op, order in (("<", "DESC"), (">", "ASC")):
        row = c.execute(f"SELECT {_SEL} FROM memories m WHERE m.session_id = ? AND +m.kind = 'episode' AND "
                        f"(m.occurred_at, m.pk) {op} (?, ?) ORDER BY m.occurred_at {order}, m.pk {order} LIMIT 1",
                        (r["session_id"], r["occurred_at"], r["pk"])).fetchone()
        if row:
            out.append(dict(zip(_FIELDS, row, strict=True)))
    return out


def _lend_to_neighbours(c, pool: dict, kinds, opts: RecallOptions) -> None:
    lenders = sorted((r for r in pool.values() if r["kind"] == "episode" and r["session_id"]),
                     key=lambda r: -r["own"])[:opts.neighbour_from]
    for r in lenders:
        for nb in _neighbour_rows(c, r):
            if kinds and nb["kind"] not in kinds:
                continue
            lent = opts.neighbours * r["own"]
            cur = pool.get(nb["pk"])
            if cur is None:
                nb.update(bm25=0.0, own=0.0, score=lent, why="neighbour")
                pool[nb["pk"]] = nb
            elif cur["score"] < cur["own"] + lent:
                cur["score"] = cur["own"] + lent


def _resolve_validity(c, pool: dict, at: datetime | None, include_superseded: bool,
                      opts: RecallOptions) -> dict[int, dict]:
    """Keep what was valid now (or at ``at``); a matching old version hands its place to the valid one."""
    if include_superseded:
        return pool if at is None else {k: r for k, r in pool.items() if r["valid_from"] <= iso(at)}
    t = iso(at) if at else None
    out: dict[int, dict] = {}
    for pk, r in pool.items():
        if _valid(r, t):
            if pk not in out or out[pk]["score"] < r["score"]:
                out[pk] = r
            continue
        if not (opts.chain and r["subject"]):
            continue
        v = _valid_version(c, r["subject"], t)
        if v is None:
            continue
        v = pool.get(v["pk"], v)
        score = max(v.get("score", 0.0), 0.9 * r["score"])
        if v["pk"] not in out or out[v["pk"]]["score"] < score:
            out[v["pk"]] = {**v, "score": score, "why": v.get("why", "subject")}
    return out


def _valid(r: dict, t: str | None) -> bool:
    if t is None:
        return r["valid_to"] is None and r["superseded_by"] is None
    return r["valid_from"] <= t and (r["valid_to"] is None or r["valid_to"] > t)


def _valid_version(c, subject: str, t: str | None) -> dict | None:
    if t is None:
        row = c.execute(f"SELECT {_SEL} FROM memories m WHERE m.subject = ? AND m.valid_to IS NULL "
                        "AND m.superseded_by IS NULL ORDER BY m.valid_from DESC LIMIT 1", (subject,)).fetchone()
    else:
        row = c.execute(f"SELECT {_SEL} FROM memories m WHERE m.subject = ? AND m.valid_from <= ? AND "
                        "(m.valid_to IS NULL OR m.valid_to > ?) ORDER BY m.valid_from DESC LIMIT 1",
                        (subject, t, t)).fetchone()
    return dict(zip(_FIELDS, row, strict=True)) if row else None


def _hit(c, r: dict) -> Hit:
    context: list[str] = []
    if r["kind"] == "episode" and r["session_id"]:
        context = [f"{n['role']}: {n['text']}" for n in _neighbour_rows(c, r)]
    elif r["subject"] and r["valid_from"]:
        prev = c.execute("SELECT text FROM memories WHERE subject = ? AND superseded_by = ?",
                         (r["subject"], r["id"])).fetchone()
        if prev:
            context = [f"previously: {prev[0]}"]
    return Hit(id=r["id"], text=r["text"], kind=r["kind"], subject=r["subject"], score=round(r["score"], 4),
               occurred_at=parse_iso(r["occurred_at"]), source=r["source"],
               metadata=json.loads(r["metadata"]) if r["metadata"] else {}, session_id=r["session_id"],
               role=r["role"], current=r["valid_to"] is None and r["superseded_by"] is None, context=context,
               why=r.get("why", ""))
