"""The records the memory store hands out, and the time handling they share.

Times are timezone-aware UTC datetimes in Python and fixed-width ISO 8601 strings in SQLite
(``2024-03-05T14:00:00.000000+00:00``), so string order is time order and SQL can compare them.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from copa.errors import UsageError
from copa.timeutil import iso, now_utc, parse_iso  # noqa: F401 - the memory API's time helpers

KINDS = ("preference", "fact", "task", "episode", "event", "note", "report")
TASK_STATUSES = ("open", "in_progress", "done", "cancelled")
# Prior importance by kind when the writer gives none: stated preferences and facts matter more
# than one chat turn or one device event.
DEFAULT_IMPORTANCE = {"preference": 0.7, "fact": 0.6, "task": 0.6, "report": 0.5, "note": 0.5,
                      "episode": 0.4, "event": 0.3}
_KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def new_id() -> str:
    """16 hex characters: the second it was made, then 32 random bits. Time first keeps inserts at
    the right edge of the id index (1.6x faster ingest at 300k rows than random ids, measured);
    the store retries the rare collision."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{_RNG.getrandbits(32):08x}"


# Ids need to be unique, not secret: a PRNG seeded from the OS is ~10x cheaper than a syscall per id.
# Re-seeded after fork so that processes started from one parent do not share a sequence.
_RNG = random.Random(secrets.token_bytes(16))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _RNG.seed(secrets.token_bytes(16)))


def check_kind(kind: str) -> str:
    kind = (kind or "").strip().lower()
    if not _KIND_RE.match(kind):
        raise UsageError(f"invalid memory kind {kind!r}",
                         hint="use a lowercase word such as " + ", ".join(KINDS))
    return kind


def check_status(status: str) -> str:
    s = (status or "").strip().lower().replace("-", "_").replace(" ", "_")
    if s not in TASK_STATUSES:
        raise UsageError(f"invalid task status {status!r}", hint="use one of " + ", ".join(TASK_STATUSES))
    return s


_REL_RE = re.compile(r"^(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)"
                     r"(?:\s+ago)?$")
_REL_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def to_utc(value: datetime | date | str | int | float | None, *, field_name: str = "time",
           now: datetime | None = None) -> datetime | None:
    """Accept a datetime, a date, an ISO string, a Unix timestamp or a few relative words
    ('now', 'today', 'yesterday', '3d', '2 weeks ago'); return an aware UTC datetime.
    Naive values are taken as local time, which is what a person typing a time means."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        raw = value.strip()
        low = raw.lower()
        base = now or datetime.now(UTC)
        if low == "now":
            return base
        if low in ("today", "yesterday"):
            local = base.astimezone()
            day = local.replace(hour=0, minute=0, second=0, microsecond=0)
            return (day - timedelta(days=1 if low == "yesterday" else 0)).astimezone(UTC)
        m = _REL_RE.match(low)
        if m:
            unit = _REL_UNIT[m.group(2)[0]]
            return base - timedelta(**{unit: int(m.group(1))})
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
        except ValueError:
            raise UsageError(f"cannot read {field_name} {value!r}",
                             hint="use ISO 8601 like 2024-03-05 or 2024-03-05T14:00, or e.g. '3d ago'") from None
    else:
        raise UsageError(f"cannot read {field_name} {value!r}", hint="give a datetime or an ISO 8601 string")
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time
    return dt.astimezone(UTC)


@dataclass
class Memory:
    id: str
    text: str
    kind: str
    subject: str | None = None
    source: str | None = None
    occurred_at: datetime | None = None
    created_at: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    superseded_by: str | None = None
    status: str | None = None
    due_at: datetime | None = None
    session_id: str | None = None
    role: str | None = None
    importance: float = 0.5
    metadata: dict[str, Any] = field(default_factory=dict)
    corroborations: int = 0  # times the same thing was said again (duplicates folded in)

    @property
    def current(self) -> bool:
        return self.valid_to is None and self.superseded_by is None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = iso(v)
        return d


@dataclass
class Hit:
    id: str
    text: str
    kind: str
    subject: str | None
    score: float
    occurred_at: datetime | None
    source: str | None
    metadata: dict[str, Any]
    session_id: str | None = None
    role: str | None = None
    current: bool = True
    context: list[str] = field(default_factory=list)  # neighbouring turns / earlier values, oldest first
    context_ids: list[str] = field(default_factory=list)  # the memory ids of those turns, same order
    why: str = ""  # which retrieval step found it (keywords, date, neighbour, subject)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["occurred_at"] = iso(self.occurred_at)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hit:
        """The inverse of ``as_dict`` (a hit sent by the daemon, copa/memory/warm.py)."""
        return cls(**{**d, "occurred_at": parse_iso(d.get("occurred_at"))})


@dataclass
class Session:
    id: str
    title: str
    started_at: datetime
    last_at: datetime
    turns: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "started_at": iso(self.started_at),
                "last_at": iso(self.last_at), "turns": self.turns}


# Columns of the memories table, in the order the store selects them.
COLUMNS = ("id", "text", "kind", "subject", "source", "occurred_at", "created_at", "valid_from", "valid_to",
           "superseded_by", "status", "due_at", "session_id", "role", "importance", "metadata", "corroborations")
SELECT_COLS = ", ".join(f"m.{c}" for c in COLUMNS)
_TIME_COLS = {"occurred_at", "created_at", "valid_from", "valid_to", "due_at"}


def row_to_memory(row: tuple) -> Memory:
    d = dict(zip(COLUMNS, row, strict=True))
    for k in _TIME_COLS:
        d[k] = parse_iso(d[k])
    d["metadata"] = json.loads(d["metadata"]) if d["metadata"] else {}
    return Memory(**d)
