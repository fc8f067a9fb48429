"""The public development set (../shared/data/memory-dev, RealMem, Apache-2.0) replayed in order.

Each conversation is fed turn by turn; a question is scored when its ``asked_at`` turn comes up,
against the turns said before it only, with relative dates counted from that moment. Every system
sees the same turns at the same time. Baselines are built in the same run:

  bm25-turns     FTS5 BM25, one document per turn (porter stemmer, as a strong keyword baseline)
  bm25-turns-raw the same with unicode61 only (closest to the README's reference figures)
  bm25-sessions  FTS5 BM25 (porter), one document per session (its turns so far joined)

Metrics per category (README "Scoring", plus the issue's budget rule):
  r@5, r@10      share of a question's evidence turns in the top 5 / 10 turns (a session hit counts
                 as its turns, in order, so k is counted in turns)
  all@10         the question's evidence turns are all in the top 10
  budget         hits in rank order until 6,000 characters of returned text (a hit's own text and
                 any neighbouring turns it carries); an evidence turn counts when it is returned
                 whole inside the budget
  sess@10        every answer session is among the first 10 distinct sessions of the ranking
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from copa.memory.text import words

BUDGET = 6_000
DEPTH = 50  # hits asked of each system (sessions are read from this many)


@dataclass
class Turn:
    id: str
    session: str
    role: str
    text: str
    at: datetime


@dataclass
class Question:
    id: str
    text: str
    category: str
    evidence: list[str]
    sessions: list[str]
    asked_at: str
    at: datetime = None  # type: ignore[assignment]


@dataclass
class Conversation:
    id: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)  # in the order they are asked


def load(folder: Path, limit: int | None = None, seed: int = 1) -> list[Conversation]:
    """The conversations with their questions; ``limit`` samples that many questions (fixed seed)."""
    convs: dict[str, Conversation] = {}
    for line in (folder / "conversations.jsonl").open(encoding="utf-8"):
        c = json.loads(line)
        conv = Conversation(c["id"])
        for s in c["sessions"]:
            day = datetime.fromisoformat(s["date"]).replace(hour=9, tzinfo=UTC)
            for k, t in enumerate(s["turns"]):  # a turn a minute, from 9:00 on the session's day
                conv.turns.append(Turn(t["id"], s["id"], "user" if t["speaker"].lower() == "user" else "assistant",
                                       t["text"], day + timedelta(minutes=k)))
        convs[conv.id] = conv
    questions = [json.loads(line) for line in (folder / "questions.jsonl").open(encoding="utf-8")]
    if limit and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    for q in questions:
        conv = convs[q["conversation"]]
        conv.questions.append(Question(q["id"], q["question"], q["category"], q["evidence"],
                                       q["evidence_sessions"], q["asked_at"]))
    for conv in convs.values():
        pos = {t.id: i for i, t in enumerate(conv.turns)}
        for q in conv.questions:
            q.at = conv.turns[pos[q.asked_at]].at
        conv.questions.sort(key=lambda q: pos[q.asked_at])
    return [c for c in convs.values() if c.questions]


class BM25Turns:
    """FTS5 BM25 over single turns, question words OR-ed."""

    def __init__(self, tokenize: str = "porter unicode61 remove_diacritics 2"):
        self.db = sqlite3.connect(":memory:")
        self.db.execute(f"CREATE VIRTUAL TABLE f USING fts5(text, tokenize='{tokenize}')")
        self.turns: list[Turn] = []

    def add(self, turns: list[Turn]) -> None:
        base = len(self.turns)
        self.db.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)",
                            [(base + i + 1, t.text) for i, t in enumerate(turns)])
        self.turns += turns

    def search(self, question: str, k: int) -> list[list[Turn]]:
        return [[self.turns[rowid - 1]] for rowid in _bm25(self.db, question, k)]


class BM25Sessions:
    """FTS5 BM25 with one document per session (the turns said so far, joined)."""

    def __init__(self):
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')")
        self.sessions: dict[str, list[Turn]] = {}
        self.rowid: dict[str, int] = {}
        self.by_row: dict[int, str] = {}

    def add(self, turns: list[Turn]) -> None:
        touched = []
        for t in turns:
            if t.session not in self.sessions:
                self.sessions[t.session] = []
                self.rowid[t.session] = len(self.rowid) + 1
                self.by_row[self.rowid[t.session]] = t.session
            self.sessions[t.session].append(t)
            touched.append(t.session)
        for s in dict.fromkeys(touched):
            self.db.execute("DELETE FROM f WHERE rowid = ?", (self.rowid[s],))
            self.db.execute("INSERT INTO f(rowid, text) VALUES (?, ?)",
                            (self.rowid[s], "\n".join(t.text for t in self.sessions[s])))

    def search(self, question: str, k: int) -> list[list[Turn]]:
        return [list(self.sessions[self.by_row[rowid]]) for rowid in _bm25(self.db, question, k)]


def _bm25(db: sqlite3.Connection, question: str, k: int) -> list[int]:
    """FTS5 BM25 rowids for the question's words OR-ed (the plain baseline query)."""
    toks = list(dict.fromkeys(w.lower() for w in words(question)))
    if not toks:
        return []
    return [r[0] for r in db.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY rank LIMIT ?",
                                     (" OR ".join(f'"{t}"' for t in toks), k))]


def score(q: Question, hits: list[Hits], session_ranking: list[str] | None = None) -> dict[str, float]:
    """``hits``: ranked, each the (turn id, session id, characters) it returns, its own turn first.
    Turn ranks count a hit's own turn only (a context turn is not a ranked result); a session hit
    ranks all its turns. ``session_ranking``: the system's own ranking of sessions, when it has one
    (copa's search_sessions); otherwise sessions rank in the order the hits first name them."""
    ranked: list[str] = []
    sessions: list[str] = []
    for h in hits:
        own = h[:1] if h.single else h
        for tid, _, _ in own:
            if tid not in ranked:
                ranked.append(tid)
        if h and h[0][1] not in sessions:
            sessions.append(h[0][1])
    ev = q.evidence
    out = {f"r@{k}": sum(e in ranked[:k] for e in ev) / len(ev) for k in (5, 10)}
    out["all@10"] = float(all(e in ranked[:10] for e in ev))
    spent, inside = 0, set()
    for h in hits:
        stop = False
        for tid, _, n in h:
            if spent + n > BUDGET:
                stop = True
                break
            spent += n
            inside.add(tid)
        if stop:
            break
    out["budget"] = sum(e in inside for e in ev) / len(ev)
    if session_ranking is not None:
        sessions = session_ranking
    out["sess@10"] = float(all(s in sessions[:10] for s in q.sessions))
    return out


class Hits(list):
    """One hit: its turns as (id, session, chars); ``single`` hits rank only their first turn."""

    def __init__(self, items, single: bool = True):
        super().__init__(items)
        self.single = single


def aggregate(rows: list[tuple[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    for cat, m in rows:
        for c in (cat, "all"):
            counts[c] += 1
            for k, v in m.items():
                sums[c][k] += v
    return {c: {k: v / counts[c] for k, v in sums[c].items()} | {"n": counts[c]} for c in counts}


def paired_gap(ours: list[float], theirs: list[float], groups: list[int], *, resamples: int = 2000,
               seed: int = 1) -> tuple[float, float, float, int, int]:
    """How sure a gap between two systems scored on the same questions is: (gap, low, high, ahead,
    groups) in points. ``low``..``high`` is a 95 % paired bootstrap interval over questions (each
    resample redraws questions with replacement and keeps both systems' scores of a question
    together); ``ahead`` counts the groups (conversations) in which ours is ahead. Questions of one
    conversation are not independent, so the interval is narrower than the truth: read it with the
    per-conversation count, which a gap driven by one history cannot fake."""
    diffs = [a - b for a, b in zip(ours, theirs, strict=True)]
    n = len(diffs)
    if not n:
        return 0.0, 0.0, 0.0, 0, 0
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    by_group: dict[int, float] = defaultdict(float)
    for g, d in zip(groups, diffs, strict=True):
        by_group[g] += d
    ahead = sum(v > 0 for v in by_group.values())
    return (100 * sum(diffs) / n, 100 * means[int(0.025 * resamples)], 100 * means[int(0.975 * resamples) - 1],
            ahead, len(by_group))
