"""Earlier conversations ranked as wholes: "which conversation was that in?"

Three views of a conversation (kind 'episode', one ``session_id``) each rank the candidates:
- **turns**: the sessions of the best turns of recall (recall.search), in the order they first appear;
- **words**: BM25 over whole sessions (the session index, one document per session);
- **meaning**: the mean cosine of the session's turns to the question (with the dense retriever).
They are fused by reciprocal rank (each session scores the sum of 1 / (k + rank) over the views that
rank it; k is ``RecallOptions.session_rank_k``). Each view misses sessions the others find: on the
dev set (docs/benchmarks.md, round 4) all answer sessions were in the top 10 for 63.2 % of questions
by turns alone, 62.1 % for BM25 over whole sessions, and 65.0 % fused. A turn ranking is a poor
session ranking for a second reason: 50 hits often come from fewer than 10 sessions (16 % of dev
questions), so later sessions go unranked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from copa.memory.model import Hit, iso, now_utc, parse_iso, to_utc
from copa.memory.recall import DEFAULT, RecallOptions, analyse, idf, search, session_bm25

if TYPE_CHECKING:
    from copa.memory.store import MemoryStore

TURN_HITS = 50  # turns recalled for the turn view
WORD_SESSIONS = 60  # sessions the word view ranks


@dataclass
class SessionHit:
    """One earlier conversation: its fused score, its span and size, and its best recalled turns."""

    session_id: str
    score: float
    first_at: datetime | None
    last_at: datetime | None
    turns: int
    views: list[str] = field(default_factory=list)  # which views ranked it (turns, words, meaning)
    hits: list[Hit] = field(default_factory=list)  # its turns among the recalled ones, best first

    def as_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "score": self.score, "first_at": iso(self.first_at),
                "last_at": iso(self.last_at), "turns": self.turns, "views": self.views,
                "hits": [h.as_dict() for h in self.hits]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionHit:
        """The inverse of ``as_dict`` (a ranking sent by the daemon, copa/memory/warm.py)."""
        return cls(d["session_id"], d["score"], parse_iso(d["first_at"]), parse_iso(d["last_at"]), d["turns"],
                   views=d["views"], hits=[Hit.from_dict(h) for h in d["hits"]])


def search_sessions(store: MemoryStore, query: str, *, limit: int = 10, asked_at=None, as_of=None,
                    exclude_session: str | None = None, opts: RecallOptions = DEFAULT,
                    turn_hits: list[Hit] | None = None) -> list[SessionHit]:
    """The conversations that best answer ``query``, best first. ``turn_hits``: a turn recall already
    made for this query (``TURN_HITS`` episodes), so a caller that has one does not search twice."""
    limit = max(1, int(limit))
    if turn_hits is None:
        turn_hits = search(store, query, limit=TURN_HITS, kinds=["episode"], as_of=as_of, asked_at=asked_at,
                           exclude_session=exclude_session, opts=opts)
    by_session: dict[str, list[Hit]] = {}
    for h in turn_hits:
        if h.kind == "episode" and h.session_id:
            by_session.setdefault(h.session_id, []).append(h)
    views: dict[str, list[str]] = {"turns": list(by_session)}
    asked = to_utc(asked_at, field_name="asked_at") or to_utc(as_of, field_name="as_of") or now_utc()
    q = analyse(query or "", asked, opts)
    with store._lock:
        c = store.conn
        weights = idf(c, q.stems + [a for alts in q.alts.values() for a in alts])
        words = session_bm25(c, q, weights, replace(opts, session_top=WORD_SESSIONS))
        views["words"] = [s for s in words if s != exclude_session]
        candidates = list(dict.fromkeys(views["turns"] + views["words"]))
        if store.vectors is not None and opts.dense and (query or "").strip() and candidates:
            means = store.vectors.session_means(c, store.vectors.query_vector(query), candidates)
            views["meaning"] = sorted(means, key=lambda s: -means[s])
        fused: dict[str, float] = {}
        seen_in: dict[str, list[str]] = {}
        for name, ranked in views.items():
            for rank, sid in enumerate(ranked):
                fused[sid] = fused.get(sid, 0.0) + 1.0 / (opts.session_rank_k + rank)
                seen_in.setdefault(sid, []).append(name)
        best = sorted(fused, key=lambda s: -fused[s])[:limit]
        spans = _spans(c, best)
    return [SessionHit(sid, round(fused[sid], 6), *spans.get(sid, (None, None, 0)), views=seen_in[sid],
                       hits=by_session.get(sid, [])) for sid in best]


def _spans(c, sessions: list[str]) -> dict[str, tuple[datetime | None, datetime | None, int]]:
    if not sessions:
        return {}
    rows = c.execute(f"SELECT session_id, min(occurred_at), max(occurred_at), count(*) FROM memories "
                     f"WHERE session_id IN ({','.join('?' * len(sessions))}) AND +kind = 'episode' "
                     f"GROUP BY session_id", sessions).fetchall()
    return {sid: (parse_iso(a), parse_iso(b), n) for sid, a, b, n in rows}
