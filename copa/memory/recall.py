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
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from copa.memory.model import Hit, check_kind, iso, now_utc, parse_iso, to_utc
from copa.memory.text import (
    _WORD_RE,
    IRREGULAR,
    QUESTION_WORDS,
    STOP_WORDS,
    date_windows,
    fold,
    norm_key,
    stemmer,
    words,
)

_WORD_ITER = _WORD_RE.finditer
_ROLES = frozenset({"user", "assistant", "system", "tool"})

if TYPE_CHECKING:
    from copa.memory.store import MemoryStore


@dataclass
class RecallOptions:
    # A question's distinct content words beyond this many are dropped, the most common first: a
    # pasted document as the query (56,000 characters) took 80 s, most of it finding word neighbours
    # and scoring thousands of keys per candidate. On the dev set 99 % of questions have <= 64.
    max_terms: int = 64
    pool: int = 300  # BM25 candidates considered (100 lost date and update recall at 14k turns)
    stop_words: bool = True
    coverage: float = 0.55  # weight of idf coverage against normalised BM25
    # Candidates are fetched with the rarest words whose posting lists add up to at most this many
    # entries (the others still count in scoring): BM25 over long posting lists is what makes a
    # query slow at a million memories, and the rare words carry most of the weight anyway.
    fetch_budget: int = 3_000
    dates: bool = True
    # 0.35 before issue 14: the conversation priors outweighed it (the generator's date questions fell
    # from 1.00 to 0.58 at @10); 1.0 restored them, and 2.0 again once the session's meaning joined
    # the priors (a date the question names is its strongest cue; -0.2 r@10 on the dev set).
    date_bonus: float = 2.0
    # Generic lending to neighbours measured as a loss (it lifts chatter next to strong matches above
    # a second piece of evidence), so only the assistant cue below lends by default.
    neighbours: float = 0.0  # share of a turn's score lent to the next turn (half to the one before)
    neighbour_from: int = 30  # how many of the best hits lend to their neighbours
    assistant_next: float = 0.8  # ... when the question asks what the assistant said ("did you suggest")
    # Recency priors are off: on the recall benchmark they pushed recent chatter above older evidence
    # (knowledge updates are handled by supersession instead). Kept switchable for measuring.
    recency: float = 0.0
    recency_now: float = 0.0  # ... when the question asks about the present ("now", "currently")
    importance: float = 0.04
    corroboration: float = 0.02
    names: float = 2.0  # weight of a name (a capitalised word inside the question) against other words
    diversify: bool = True  # one copy of repeated text; several named things -> each one represented
    irregular: bool = True  # also look for irregular verb forms (buy -> bought)
    chain: bool = True
    # Dense retriever (only when the store has one, copa[embeddings]): its nearest memories join the
    # pool, and each candidate's cosine similarity adds dense * (dense_pivot - best keyword score),
    # clamped to [0, 1]: the weaker the keyword evidence, the more meaning counts. A flat weight or
    # rank fusion cost update and date recall on the benchmark; this cost nothing there (measured).
    # Flat since issue 14: on conversations nobody here wrote (the dev set) the adaptive weight below
    # left meaning out (the conversation priors lift keyword scores past the pivot); a flat 1.5 was
    # +5 points at r@10 for both models, 2.5 and rank fusion less (docs/memory.md).
    dense: float = 1.0
    dense_pool: int = 50
    catch_up: int = 256  # new memories a dense search embeds first (vectors are made lazily, never on write)
    dense_pivot: float = 100.0  # the adaptive weight of the synthetic suite was dense 0.2, pivot 1.5
    synonyms: int = 3  # words close in meaning added to each content word (dense retriever only)
    synonym_min: float = 0.6  # ... at least this similar to it
    synonym_weight: float = 0.5  # ... counting this much of a word of the question
    dense_min: float = 0.25  # a memory found by meaning alone must be at least this similar (cosine)
    rrf: int = 0  # > 0: reciprocal rank fusion with this k instead of the adaptive weight (measured: worse)
    # Conversations (kind 'episode'): what a session is about says more than one turn's words.
    session_fill: int = 0  # the turns of this many best sessions join the candidates (measured: +0.4, off)
    session: float = 1.5  # weight of the session's idf coverage of the question (its matching turns pooled)
    user_turns: float = 0.25  # bonus for the user's own turns (unless the question asks what the assistant said)
    length_norm: float = 0.2  # penalty per doubling of a turn's length over ``length_pivot`` characters
    length_pivot: int = 600
    # BM25 over whole sessions (memory_sessions_fts, one document per session): each turn of a session
    # among the ``session_top`` best gains ``session_index`` x that session's BM25 (as a share of the
    # best session's); the turns of the ``session_draw`` best sessions join the candidates.
    session_index: float = 1.0
    session_top: int = 20
    session_draw: int = 3
    session_budget: int = 6_000  # posting-list entries (turns) the session query may read, rarest words first
    session_other: float = 1.0  # bm25 weight of the other speakers' column (0: the user's turns only)
    # ... times the session's coverage of the question (idf share of its words said in the session's
    # candidate turns) to this power. It was 1.0 while facts got no share: a lone session matching one
    # word then outranked a fact that answers. Since a fact is a session of one (_conversation_priors)
    # that cannot happen, and unscaled is +1.0 r@10 and +1.4 sessions keyword-only on the dev set.
    session_index_cov: float = 0.0
    # Each conversation's mean cosine to the question (min-max over the candidates' sessions; a fact
    # is a session of one) lent to its turns, _session_meaning: +2.2 r@10 and +1.9 all answer
    # sessions on the dev set, with the turn's own cosine weighted 1.0 instead of 1.5 (docs/memory.md).
    session_dense: float = 1.0
    # Ranking conversations as wholes (copa/memory/sessions.py): reciprocal rank fusion of the turn
    # ranking's sessions, BM25 over whole sessions and the sessions' meaning, 1 / (k + rank) each.
    # Measured on the dev set: k 10 / 20 / 30 / 60 gave 65.1 / 65.4 / 65.1 / 65.1 % all answer sessions
    # in the top 10 (offline, docs/benchmarks.md round 4); views are short, so a small k lets rank count.
    session_rank_k: int = 20
    spread: float = 0.0  # MMR-style: each earlier hit from the same session costs this much (measured: a loss)
    context: int = 1  # neighbouring turns a conversation hit carries (1: one each side; 0: none)
    context_max: int = 400  # ... only those at most this long (a long reply costs the prompt's budget)
    stale_episodes: bool = True  # a turn stating what a current fact superseded ranks below that fact


DEFAULT = RecallOptions()
_FIELDS = ("pk", "id", "text", "kind", "subject", "source", "occurred_at", "valid_from", "valid_to",
           "superseded_by", "session_id", "role", "importance", "metadata", "corroborations")
_SEL = ", ".join("m." + f for f in _FIELDS)


@dataclass
class _Query:
    stems: list[str]  # distinct content stems, in question order
    surface: dict[str, str]  # stem -> a word that stems to it (what goes into MATCH)
    windows: list[tuple[datetime, datetime]]
    names: set[str] = field(default_factory=set)  # stems of capitalised words: people, places, things
    alts: dict[str, list[str]] = field(default_factory=dict)  # stem -> stems of its irregular forms
    synonyms: dict[str, list[str]] = field(default_factory=dict)  # stem -> stems of words close in meaning
    now: bool = False  # asks about the present state ("now", "currently", "these days")
    assistant: bool = False  # asks what the assistant said ("what did you recommend")


_NOW_RE = re.compile(r"\b(now|currently|current|these days|nowadays|at the moment|anymore|still|latest|"
                     r"most recent(ly)?|present)\b", re.I)
_ASSISTANT_RE = re.compile(r"\byou\b.*\b(recommend|suggest|said|say|told|tell|mention|gave|give|propos|advis|"
                           r"list|name|explain)\w*|\b(recommend|suggest|said|told|mention|advis)\w*\b.*\byou\b", re.I)
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)$")


def analyse(query: str, now: datetime, opts: RecallOptions = DEFAULT) -> _Query:
    windows, rest = date_windows(query, now) if opts.dates else ([], query)
    raw = [(m.group(), m.start()) for m in _WORD_ITER(rest)]
    toks = [fold(t) for t, _ in raw]
    keep = [t not in STOP_WORDS for t in toks] if opts.stop_words else [True] * len(toks)
    if not any(keep):  # "who am I?": keep what is not a question word rather than nothing
        keep = [t not in QUESTION_WORDS for t in toks]
    content = [t for t, k in zip(toks, keep, strict=True) if k]
    stems = stemmer().stems(content)
    surface: dict[str, str] = {}
    for t, s in zip(content, stems, strict=True):
        surface.setdefault(s, t)
    alts: dict[str, list[str]] = {}
    for t, st in zip(content, stems, strict=True):
        forms = [f for f in IRREGULAR.get(t, ()) if f not in STOP_WORDS] if opts.irregular else []
        if forms:
            fs = stemmer().stems(forms)
            alts[st] = [f for f in fs if f != st]
            for f, fst in zip(forms, fs, strict=True):
                surface.setdefault(fst, f)
    names = set()
    for (word, pos), k, st in zip(raw, keep, stemmer().stems(toks), strict=True):
        if k and (word[:1].isupper() or word.isdigit()) and not _SENTENCE_START.search(rest[:pos]):
            names.add(st)
    return _Query(list(dict.fromkeys(stems)), surface, windows, names=names, alts=alts,
                  now=bool(_NOW_RE.search(query)), assistant=bool(_ASSISTANT_RE.search(query)))


def search(store: MemoryStore, query: str, *, limit: int = 10, kinds=None, as_of=None,
           include_superseded: bool = False, opts: RecallOptions = DEFAULT, asked_at=None,
           exclude_session: str | None = None) -> list[Hit]:
    """``as_of``: answer with what was valid then. ``asked_at``: when the question is asked, which
    relative dates in it ('last week', 'two months ago') count from (default: ``as_of``, else now);
    a replayed history is scored as it happened without hiding later corrections.
    ``exclude_session``: leave out that conversation's turns (the agent shows its own session as
    history; the session index ranks that session first, so its turns would fill every slot)."""
    limit = max(1, int(limit))
    at = to_utc(as_of, field_name="as_of")
    asked = to_utc(asked_at, field_name="asked_at") or at or now_utc()
    q = analyse(query or "", asked, opts)
    kinds = [check_kind(k) for k in kinds] if kinds else None
    if len(q.stems) > opts.max_terms:
        with store._lock:
            cap_terms(store.conn, q, opts.max_terms)
    if store.vectors is not None and opts.synonyms and hasattr(store.vectors.embedder, "neighbours"):
        _add_synonyms(store.vectors.embedder, q, opts)  # a static model's vocabulary holds word neighbours
    qv = None
    if store.vectors is not None and opts.dense and (query or "").strip():
        qv = store.vectors.query_vector(query)  # first: when it loads the tokenizer, the catch-up uses it too
        store.vectors.catch_up(store, min(opts.catch_up, store.vectors.catch_up_limit), defer=True)
    with store._lock:
        c = store.conn
        weights = idf(c, q.stems + [a for alts in (*q.alts.values(), *q.synonyms.values()) for a in alts])
        pool: dict[int, dict[str, Any]] = {}
        _fetch_keywords(c, q, weights, pool, kinds, opts, limit)
        if q.windows:
            _fetch_windows(c, q.windows, pool, kinds, opts)
        if qv is not None:
            near = store.vectors.similar(c, qv, opts.dense_pool)
            _fetch_pks(c, [pk for pk, sim in near.items() if sim >= opts.dense_min], pool, kinds, "dense")
        if not pool:
            return []
        _score(pool, q, weights, opts)
        _conversation_priors(c, pool, q, weights, opts, kinds)
        if qv is not None:
            _blend_dense(c, store.vectors, qv, pool, opts)
            if opts.session_dense:
                _session_meaning(c, store.vectors, qv, pool, opts)
        if opts.neighbour_from and (opts.neighbours or (q.assistant and opts.assistant_next)):
            _lend_to_neighbours(c, pool, q, kinds, opts)
        visible = _resolve_validity(c, pool, at, include_superseded, opts)
        if exclude_session:
            visible = {pk: r for pk, r in visible.items()
                       if not (r["kind"] == "episode" and r["session_id"] == exclude_session)}
        ranked = sorted(visible.values(), key=lambda r: (-r["score"], -r["pk"]))
        if opts.diversify:
            ranked = _diversify(ranked, q, limit)
        if opts.spread:
            ranked = _spread_sessions(ranked, limit, opts.spread)
        return [_hit(c, r, opts) for r in ranked[:limit]]


def cap_terms(c, q: _Query, n: int) -> None:
    """Keep the question's ``n`` most informative content words: the rarest in the store first, then
    words the store has never seen (they match nothing, but a name may still be a speaker)."""
    df: dict[str, int] = {}
    for i in range(0, len(q.stems), 500):
        chunk = q.stems[i:i + 500]
        df.update(c.execute(f"SELECT term, doc FROM memories_vocab WHERE term IN ({','.join('?' * len(chunk))})",
                            chunk).fetchall())
    keep = set(sorted(q.stems, key=lambda s: (s not in df, df.get(s, 0)))[:n])
    q.stems = [s for s in q.stems if s in keep]
    q.alts = {s: a for s, a in q.alts.items() if s in keep}
    q.names &= keep


def _conversation_priors(c, pool: dict, q: _Query, weights: dict[str, float], opts: RecallOptions,
                         kinds=None) -> None:
    """Session fusion, role weighting and length normalisation for conversation turns.

    A session's coverage is the idf share of the question's words said anywhere in its matching
    turns: BM25 over whole sessions beats BM25 over turns on multi-session chats, because the turn
    that holds the answer often shares few words with the question while its session shares many.
    Long assistant turns match many words by sheer length (coverage has no length norm), and in a
    user-assistant history most of what is worth remembering was said by the user."""
    if not (opts.session or opts.session_index or opts.user_turns or opts.length_norm):
        return
    qw = _match_keys(q, weights, opts)
    total = sum(qw.values()) or 1.0
    sess_keys: dict[str, set[str]] = {}
    for r in pool.values():
        if r["kind"] == "episode" and r["session_id"] and r.get("stems"):
            sess_keys.setdefault(r["session_id"], set()).update(r["stems"])
    sess_cov = {sid: sum(w for keys, w in qw.items() if any(k in ks for k in keys)) / total
                for sid, ks in sess_keys.items()}
    episodes = not kinds or "episode" in kinds
    sess_bm25 = session_bm25(c, q, weights, opts) if opts.session_index and episodes else {}
    if opts.session_draw and sess_bm25:
        _draw_turns(c, pool, list(sess_bm25)[:opts.session_draw], "session index", q, weights, opts)
    if opts.session_fill and sess_cov and (not kinds or "episode" in kinds):
        # The best sessions' other turns join: the answer is often a turn of the right session
        # that shares no word with the question (BM25 over sessions finds it, over turns does not).
        top = sorted(sess_cov, key=lambda sid: -sess_cov[sid])[:opts.session_fill]
        _draw_turns(c, pool, top, "session", q, weights, opts)
    best_bm25 = max((r["bm25"] for r in pool.values()), default=0.0) or 1.0
    for r in pool.values():
        if r["kind"] == "episode":
            cov = sess_cov.get(r["session_id"], 0.0)
            share = sess_bm25.get(r["session_id"], 0.0)
            if opts.session_index_cov:
                share *= cov ** opts.session_index_cov
            user = r["role"] == "user"
        else:  # a fact, a note, a task: a session of one, said (or saved) by the user
            cov = sum(w for keys, w in qw.items() if any(k in r.get("stems", ()) for k in keys)) / total
            share = (r["bm25"] / best_bm25) * cov ** opts.session_index_cov if sess_bm25 else 0.0
            user = True
        bonus = opts.session * cov + opts.session_index * share
        if user and not q.assistant:
            bonus += opts.user_turns
        if opts.length_norm and len(r["text"]) > opts.length_pivot:
            bonus -= opts.length_norm * math.log2(len(r["text"]) / opts.length_pivot)
        r["own"] = r["score"] = r["score"] + bonus


def session_bm25(c, q: _Query, weights: dict[str, float], opts: RecallOptions) -> dict[str, float]:
    """The best sessions by BM25 over whole sessions, best first, each as a share of the best's score."""
    terms = [s for s in q.stems if s in weights]
    terms += [a for s in terms for a in q.alts.get(s, ()) if a in weights]
    if not terms:
        return {}
    # The rarest words within the candidates' posting budget, as for turns: a word said in most
    # sessions ranks nothing, and BM25 over its posting list is what a query costs at a million memories.
    use, _ = _rarest_within(terms, weights, opts.session_budget)
    match = " OR ".join(f'"{q.surface[s]}"' for s in use)
    rows = c.execute("SELECT d.session_id, bm25(memory_sessions_fts, 1.0, ?) AS r FROM memory_sessions_fts "
                     "JOIN memory_session_docs d ON d.doc = memory_sessions_fts.rowid "
                     "WHERE memory_sessions_fts MATCH ? ORDER BY r LIMIT ?",
                     (opts.session_other, match, opts.session_top)).fetchall()
    best = -rows[0][1] if rows else 0.0
    return {sid: -r / best for sid, r in rows} if best > 0 else {}


def _draw_turns(c, pool: dict, sessions: list[str], why: str, q: _Query, weights: dict[str, float],
                opts: RecallOptions) -> None:
    """The turns of these sessions join the candidates, scored like the others: the answer is often
    a turn of the right session that shares no word with the question."""
    if not sessions:
        return
    extra: dict[int, dict] = {}
    for row in c.execute(f"SELECT {_SEL} FROM memories m WHERE m.session_id IN ({','.join('?' * len(sessions))}) "
                         "AND m.kind = 'episode'", sessions).fetchall():
        r = dict(zip(_FIELDS, row, strict=True))
        if r["pk"] not in pool:
            r["bm25"], r["why"] = 0.0, why
            extra[r["pk"]] = r
    if extra:
        _score(extra, q, weights, opts)
        pool.update(extra)


def _spread_sessions(ranked: list[dict], limit: int, cost: float) -> list[dict]:
    """Greedy re-ranking: a hit loses ``cost`` for each hit already picked from its session, so a
    question whose parts were said in several sessions is not answered by one session ten times."""
    head, tail = ranked[:limit * 3], ranked[limit * 3:]
    picked: list[dict] = []
    seen: dict[str, int] = {}
    while head and len(picked) < limit:
        best = max(head, key=lambda r: r["score"] - cost * seen.get(r["session_id"] or "", 0))
        head.remove(best)
        picked.append(best)
        if best["session_id"]:
            seen[best["session_id"]] = seen.get(best["session_id"], 0) + 1
    return picked + head + tail


def _add_synonyms(embedder, q: _Query, opts: RecallOptions) -> None:
    """Let a word also match its nearest words in the embedding's vocabulary, as alternative forms
    (cat -> kitten, sibling -> brother): the lexical side then finds what is said in other words."""
    for s in q.stems:
        if s in q.names:
            continue
        near = [w for w in embedder.neighbours(q.surface[s], opts.synonyms, opts.synonym_min) if w not in STOP_WORDS]
        stems = [st for st in stemmer().stems(near) if st != s]
        for w, st in zip(near, stems, strict=False):
            q.surface.setdefault(st, w)
        if stems:
            q.synonyms[s] = list(dict.fromkeys(stems))


def _diversify(ranked: list[dict], q: _Query, limit: int) -> list[dict]:
    """Drop repeats of the same text (keep the best), and when the question names several things
    ('Oslo and Krakow'), let a hit that brings a name not yet covered move up."""
    seen: set[str] = set()
    unique = []
    for i, r in enumerate(ranked):
        if len(unique) >= limit * 3:  # beyond what can be shown: keep the order, skip the hashing
            unique += ranked[i:]
            break
        key = norm_key(r["text"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    names = [k for k in ("=" + q.surface[n] for n in q.names if n in q.surface)
             if any(k in r.get("stems", ()) for r in unique[:limit * 3])]
    if len(names) < 2:
        return unique
    picked: list[dict] = []
    rest = unique[:limit * 3]
    covered: set[str] = set()
    while rest and len(picked) < limit:
        def gain(r: dict) -> float:
            new = [n for n in names if n in r.get("stems", ()) and n not in covered]
            return r["score"] + 0.3 * len(new) / len(names)
        best = max(rest, key=gain)
        rest.remove(best)
        picked.append(best)
        covered.update(n for n in names if n in best.get("stems", ()))
    return picked + rest + unique[limit * 3:]


def idf(c, stems: list[str]) -> dict[str, float]:
    if not stems:
        return {}
    n = (c.execute("SELECT max(pk) FROM memories").fetchone()[0] or 0) + 1  # ~count, in O(log n)
    df = dict(c.execute(f"SELECT term, doc FROM memories_vocab WHERE term IN ({','.join('?' * len(stems))})",
                        stems).fetchall())
    return {s: math.log(1 + (n - df[s] + 0.5) / (df[s] + 0.5)) for s in stems if df.get(s)} | \
        {"__n__": float(n), **{f"__df__{s}": float(df.get(s, 0)) for s in stems}}


def _rarest_within(terms, weights: dict[str, float], budget: int) -> tuple[list[str], float]:
    """The rarest of ``terms`` (at least one) whose posting lists add up to at most ``budget``
    entries, and how many entries they add up to (document frequencies from ``idf``)."""
    use, total = [], 0.0
    for s in sorted(dict.fromkeys(terms), key=lambda s: weights[f"__df__{s}"]):
        if use and total + weights[f"__df__{s}"] > budget:
            break
        use.append(s)
        total += weights[f"__df__{s}"]
    return use, total


def _kind_clause(kinds: list[str] | None) -> tuple[str, list[str]]:
    if not kinds:
        return "", []
    return f" AND m.kind IN ({','.join('?' * len(kinds))})", list(kinds)


def _fetch_keywords(c, q: _Query, weights: dict[str, float], pool: dict, kinds, opts: RecallOptions,
                    limit: int = 10) -> None:
    pool_size = max(opts.pool, 2 * limit)  # a caller asking for 100 hits gets a pool to rank them from
    known = [s for s in q.stems if s in weights]
    if not known:
        return
    terms = set(known) | {a for s in known for a in q.alts.get(s, ()) if a in weights} | \
        {a for syns in q.synonyms.values() for a in syns if a in weights}
    use, total = _rarest_within(terms, weights, opts.fetch_budget)
    match = " OR ".join(f'"{q.surface[s]}"' for s in use)
    kc, kp = _kind_clause(kinds)
    order = "ORDER BY r"
    if total > 2 * opts.fetch_budget:  # even the rarest word is everywhere: take its newest matches
        order = "ORDER BY rowid DESC"  # (ranking all of them would mean scoring a huge posting list)
    if kinds:  # filter inside: a rare kind might not make the unfiltered top of the pool
        sql = (f"SELECT {_SEL}, bm25(memories_fts, 1.0, 0.5) FROM memories_fts JOIN memories m "
               f"ON m.pk = memories_fts.rowid WHERE memories_fts MATCH ?{kc} "
               f"{'ORDER BY 16' if order.endswith('r') else 'ORDER BY m.pk DESC'} LIMIT ?")
        rows = c.execute(sql, (match, *kp, pool_size)).fetchall()
    else:
        sql = (f"SELECT {_SEL}, f.r FROM (SELECT rowid, bm25(memories_fts, 1.0, 0.5) AS r FROM memories_fts "
               f"WHERE memories_fts MATCH ? {order} LIMIT ?) f JOIN memories m ON m.pk = f.rowid")
        rows = c.execute(sql, (match, pool_size)).fetchall()
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


def _fetch_pks(c, pks, pool: dict, kinds, why: str) -> None:
    kc, kp = _kind_clause(kinds)
    new = [pk for pk in pks if pk not in pool]
    for i in range(0, len(new), 500):
        chunk = new[i:i + 500]
        for row in c.execute(f"SELECT {_SEL} FROM memories m WHERE m.pk IN ({','.join('?' * len(chunk))}){kc}",
                             (*chunk, *kp)).fetchall():
            r = dict(zip(_FIELDS, row, strict=True))
            r["bm25"] = 0.0
            r["why"] = why
            pool[r["pk"]] = r


def _blend_dense(c, vectors, qv, pool: dict, opts: RecallOptions) -> None:
    if opts.rrf:
        _fuse_ranks(pool, vectors.similarity_of(c, qv, list(pool)), opts.rrf)
        return
    top = max((r["score"] for r in pool.values() if r["why"] == "keywords"), default=0.0)
    w = opts.dense * min(1.0, max(0.0, opts.dense_pivot - top))
    if not w:
        return
    for pk, sim in vectors.similarity_of(c, qv, list(pool)).items():
        r = pool[pk]
        r["own"] = r["score"] = r["score"] + w * sim


def _session_meaning(c, vectors, qv, pool: dict, opts: RecallOptions) -> None:
    """Each candidate's conversation, as a whole, compared with the question by meaning: the mean
    cosine of all its turns (the cosine to the session's centroid), scaled between the least and the
    most similar candidate, lent to each of its turns. A memory outside a conversation (a fact, a
    note) is a session of one and takes its own cosine, so a fact that answers is not outranked by a
    chat that is merely on topic. The question's words rarely appear in the turn that answers it;
    what the whole conversation was about says more than one turn's words (BM25 over whole sessions
    beats BM25 over turns for the same reason), and meaning catches what keywords miss."""
    sessions = list({r["session_id"] for r in pool.values() if r["kind"] == "episode" and r["session_id"]})
    alone = [pk for pk, r in pool.items() if not (r["kind"] == "episode" and r["session_id"])]
    mean: dict[Any, float] = dict(vectors.session_means(c, qv, sessions))
    mean.update({("alone", pk): sim for pk, sim in vectors.similarity_of(c, qv, alone).items()})
    if len(mean) < 2:
        return
    lo, hi = min(mean.values()), max(mean.values())
    if hi <= lo:
        return
    for pk, r in pool.items():
        key = r["session_id"] if r["kind"] == "episode" and r["session_id"] else ("alone", pk)
        if key in mean:
            r["own"] = r["score"] = r["score"] + opts.session_dense * (mean[key] - lo) / (hi - lo)


def _fuse_ranks(pool: dict, sims: dict[int, float], k: int) -> None:
    """Reciprocal rank fusion of the keyword order and the cosine order (measured against the
    adaptive weight and rejected; kept as RecallOptions.rrf for the benchmark's ablation)."""
    fused = dict.fromkeys(pool, 0.0)
    for order in (sorted(pool, key=lambda pk: -pool[pk]["score"]), sorted(sims, key=lambda pk: -sims[pk])):
        for rank, pk in enumerate(order, 1):
            fused[pk] += 1.0 / (k + rank)
    for pk, r in pool.items():
        r["own"] = r["score"] = fused[pk]


def _doc_keys(texts: list[str], qw: dict[tuple[str, ...], float]) -> list[set[str]]:
    """For each text, which of the question's match keys it holds: stems, and '=word' for names
    (matched as written). Only words sharing their first three letters with a wanted stem are
    stemmed (porter rewrites endings, not beginnings): stemming every word of every candidate
    was most of a query's time at a million memories."""
    wanted = {k for keys in qw for k in keys}
    names = {k[1:] for k in wanted if k.startswith("=")}
    prefixes = {k[:3] for k in wanted if not k.startswith("=")}
    raws = []
    for t in texts:  # lower the whole text once; only non-ASCII words need the slow fold
        raws.append({w if w.isascii() else fold(w) for w in words(t.lower())})
    stem = stemmer().stem_map({w for raw in raws for w in raw if w[:3] in prefixes})
    out = []
    for raw in raws:
        keys = {stem[w] for w in raw if w in stem and stem[w] in wanted}
        keys.update("=" + w for w in raw if w in names)
        out.append(keys)
    return out


def _match_keys(q: _Query, weights: dict[str, float], opts: RecallOptions) -> dict[str, float]:
    """What to look for in a candidate, with its weight. Names are matched as written, not stemmed:
    porter turns 'Ines' into 'in', which would make a rare name as common as a preposition."""
    known = [weights[s] for s in q.stems if s in weights]
    top = max(known, default=1.0)
    keys: dict[tuple[str, ...], float] = {}
    for syns in q.synonyms.values():  # a weaker key of their own: a synonym is a guess
        forms = tuple(a for a in syns if a in weights and a not in q.stems)
        if forms:
            keys[forms] = opts.synonym_weight * max(weights[a] for a in forms)
    for s in q.stems:
        forms = [a for a in (s, *q.alts.get(s, ())) if a in weights]
        if s in q.names:  # a name absent from every text may still be a speaker (role) of turns
            w = weights[s] if s in weights and q.surface[s] == s else max(weights.get(s, 0.0), top)
            keys[("=" + q.surface[s],)] = w * opts.names
        elif forms:
            keys[tuple(forms)] = max(weights[a] for a in forms)
    return keys


def _score(pool: dict, q: _Query, weights: dict[str, float], opts: RecallOptions) -> None:
    rows = list(pool.values())
    qw = _match_keys(q, weights, opts)
    recency = opts.recency_now if q.now else opts.recency
    total = sum(qw.values()) or 1.0
    best = max((r["bm25"] for r in rows), default=0.0) or 1.0
    if recency:
        times = [r["occurred_at"] for r in rows]
        t0, t1 = parse_iso(min(times)).timestamp(), parse_iso(max(times)).timestamp()
        span = (t1 - t0) or 1.0
    windows = [(iso(a), iso(b)) for a, b in q.windows] if opts.dates else []
    # A speaker's name ("Caroline") is part of what a turn says about whom, though not of its text.
    stems = _doc_keys([" ".join((r["text"], (r["subject"] or "").replace(".", " "),
                                 r["role"] if r["role"] and r["role"] not in _ROLES else ""))
                       for r in rows], qw)
    for r, ds in zip(rows, stems, strict=True):
        r["stems"] = ds
        cov = sum(w for keys, w in qw.items() if any(k in ds for k in keys)) / total
        score = (1 - opts.coverage) * (r["bm25"] / best) + opts.coverage * cov
        if windows and any(a <= r["occurred_at"] < b for a, b in windows):
            score += opts.date_bonus
        if recency:
            score += recency * (parse_iso(r["occurred_at"]).timestamp() - t0) / span
        score += opts.importance * (r["importance"] - 0.5)
        score += opts.corroboration * math.log1p(r["corroborations"])
        r["own"] = r["score"] = score


def _neighbour_rows(c, r: dict) -> list[dict]:
    """The turn before and the turn after (each marked with 'side' -1 / +1)."""
    out = []
    for op, order, side in (("<", "DESC", -1), (">", "ASC", 1)):
        row = c.execute(f"SELECT {_SEL} FROM memories m WHERE m.session_id = ? AND +m.kind = 'episode' AND "
                        f"(m.occurred_at, m.pk) {op} (?, ?) ORDER BY m.occurred_at {order}, m.pk {order} LIMIT 1",
                        (r["session_id"], r["occurred_at"], r["pk"])).fetchone()
        if row:
            out.append({**dict(zip(_FIELDS, row, strict=True)), "side": side})
    return out


def _lend_to_neighbours(c, pool: dict, q: _Query, kinds, opts: RecallOptions) -> None:
    lenders = sorted((r for r in pool.values() if r["kind"] == "episode" and r["session_id"]),
                     key=lambda r: -r["own"])[:opts.neighbour_from]
    for r in lenders:
        for nb in _neighbour_rows(c, r):
            if kinds and nb["kind"] not in kinds:
                continue
            share = opts.neighbours if nb["side"] > 0 else opts.neighbours / 2
            if q.assistant and nb["side"] > 0 and nb["role"] == "assistant" and r["role"] != "assistant":
                share = max(share, opts.assistant_next)
            lent = share * r["own"]
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
    replaced: list[tuple[dict, int]] = []  # (an outdated memory that matched, pk of the version valid now)
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
        replaced.append((r, v["pk"]))
    if opts.stale_episodes and replaced:
        _demote_stale_turns(out, replaced)
    return out


def _demote_stale_turns(out: dict[int, dict], replaced: list[tuple[dict, int]]) -> None:
    """A conversation turn said before a fact's current value, repeating what that value replaced
    ("Remember this: I live in Paris" after "I moved to Lyon" superseded "I live in Paris"), ranks
    just below the current value and is marked as outdated: turns have no validity of their own."""
    for old, vpk in replaced:
        v = out[vpk]
        stale = {w for w in words(old["text"].lower()) if w not in STOP_WORDS} - \
            {w for w in words(v["text"].lower())}
        if not stale:
            continue
        for pk, r in out.items():
            if (r["kind"] == "episode" and r["occurred_at"] < v["valid_from"] and r["score"] >= v["score"]
                    and stale & set(words(r["text"].lower()))):
                out[pk] = {**r, "score": v["score"] - 1e-3, "stale_by": v}


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


def _hit(c, r: dict, opts: RecallOptions = DEFAULT) -> Hit:
    context: list[str] = []
    context_ids: list[str] = []
    if r.get("stale_by"):
        context.append(f"outdated by: {r['stale_by']['text']}")
    if r["kind"] == "episode" and r["session_id"] and opts.context:
        rows = [n for n in _neighbour_rows(c, r) if len(n["text"]) <= opts.context_max]
        context_ids = [""] * len(context) + [n["id"] for n in rows]
        context += [f"{n['role']}: {n['text']}" for n in rows]
    elif r["subject"] and r["valid_from"]:
        prev = c.execute("SELECT text FROM memories WHERE subject = ? AND superseded_by = ?",
                         (r["subject"], r["id"])).fetchone()
        if prev:
            context = [f"previously: {prev[0]}"]
    return Hit(id=r["id"], text=r["text"], kind=r["kind"], subject=r["subject"], score=round(r["score"], 4),
               occurred_at=parse_iso(r["occurred_at"]), source=r["source"],
               metadata=json.loads(r["metadata"]) if r["metadata"] else {}, session_id=r["session_id"],
               role=r["role"], current=r["valid_to"] is None and r["superseded_by"] is None and not r.get("stale_by"),
               context=context,
               context_ids=context_ids, why=r.get("why", ""))
