"""Export and import as JSON Lines: lossless, idempotent, committed in batches.

Each line is one record: ``{"record": "memory", ...every column...}`` or ``{"record": "session", ...}``.
Hand-written lines need only ``text`` (plus any of kind, subject, source, occurred_at, metadata...).
Re-importing the same file changes nothing: records carry their id, and a line without one gets an
id derived from its content. Each batch is its own transaction, so a crash mid-import keeps every
batch that was committed and nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from copa.errors import UsageError
from copa.memory.model import COLUMNS, SELECT_COLS, now_utc, row_to_memory
from copa.paths import atomic_writer

if TYPE_CHECKING:
    from copa.memory.store import MemoryStore

FORMAT = "copa-memory/1"
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def iter_export(store: MemoryStore, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every session and memory as a plain dict, oldest first, read in pages (constant memory)."""
    yield {"record": "header", "format": FORMAT, "exported_at": now_utc().isoformat()}
    for sid, title, started, last, turns in store._read(
            "SELECT id, title, started_at, last_at, turns FROM memory_sessions ORDER BY started_at"):
        yield {"record": "session", "id": sid, "title": title, "started_at": started, "last_at": last,
               "turns": turns}
    last_pk = 0
    while True:
        rows = store._read(f"SELECT m.pk, {SELECT_COLS} FROM memories m WHERE m.pk > ? ORDER BY m.pk LIMIT ?",
                           (last_pk, batch))
        if not rows:
            return
        for row in rows:
            yield {"record": "memory", **row_to_memory(row[1:]).as_dict()}
        last_pk = rows[-1][0]


def export_jsonl(store: MemoryStore, path: Path | str) -> int:
    """Write the whole store to ``path`` ('-' = stdout); the file is private (0600) and replaced
    atomically. Returns the number of memories written."""
    n = 0
    if str(path) == "-":
        import sys

        for rec in iter_export(store):
            n += rec["record"] == "memory"
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return n
    path = Path(path)
    try:
        with atomic_writer(path) as f:
            for rec in iter_export(store):
                n += rec["record"] == "memory"
                f.write((json.dumps(rec, ensure_ascii=False) + "\n").encode())
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}", hint="check the folder exists and is writable") from None
    return n


def _content_id(rec: dict[str, Any]) -> str:
    key = json.dumps([rec.get(k) for k in ("kind", "text", "subject", "occurred_at", "session_id", "role")],
                     ensure_ascii=False, default=str)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def import_jsonl(store: MemoryStore, path: Path | str, *, batch: int = 5000,
                 progress: Progress | None = None) -> dict[str, int]:
    """Import a JSON Lines file; returns counts {'added', 'skipped', 'sessions'}."""
    path = Path(path)
    try:
        f: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed below; binary for exact byte progress
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}", hint="check the path") from None
    total = os.fstat(f.fileno()).st_size
    counts = {"added": 0, "skipped": 0, "sessions": 0}
    pending: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    done = 0
    with f:
        for lineno, raw in enumerate(f, 1):
            done += len(raw)
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict):
                    raise ValueError("a line must be a JSON object")
            except ValueError as e:
                _write_batch(store, pending, sessions, counts)  # keep what came before; re-import is safe
                raise UsageError(f"{path}:{lineno}: not a JSON object ({getattr(e, 'msg', e)})",
                                 hint=f"fix that line and import again ({counts['added']} memories before it "
                                 "were imported; they will be skipped)") from None
            kind = rec.pop("record", "memory")
            if kind == "header":
                continue
            if kind == "session":
                sessions.append(rec)
                continue
            if kind != "memory":
                raise UsageError(f"{path}:{lineno}: unknown record type {kind!r}")
            try:
                pending.append(_prepare_import(store, rec))
            except UsageError as e:
                raise UsageError(f"{path}:{lineno}: {e.message}", hint=e.hint) from None
            if len(pending) >= batch:
                _write_batch(store, pending, sessions, counts)
                pending, sessions = [], []
                if progress:
                    progress(done, total)
    _write_batch(store, pending, sessions, counts)
    if progress:
        progress(total, total)
    return counts


def _prepare_import(store: MemoryStore, rec: dict[str, Any]) -> dict[str, Any]:
    unknown = set(rec) - set(COLUMNS) - {"due"}
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(sorted(unknown))}", hint="fields: " + ", ".join(COLUMNS))
    rec.setdefault("id", None)
    if not rec["id"]:
        rec["id"] = _content_id(rec)
    p = store._prepare(rec, now_utc())
    p["subject_current"] = p["subject"] is not None and p["superseded_by"] is None and p["valid_to"] is None
    return p


def _write_batch(store: MemoryStore, pending: list[dict], sessions: list[dict], counts: dict[str, int]) -> None:
    if not pending and not sessions:
        return
    with store._write() as c:
        last = c.execute("SELECT coalesce(max(pk), 0) FROM memories").fetchone()[0]
        for p in pending:
            relink = p.pop("subject_current")
            cols = ", ".join(p)
            cur = c.execute(f"INSERT OR IGNORE INTO memories ({cols}) VALUES ({', '.join('?' * len(p))})",
                            tuple(p.values()))
            if cur.rowcount:
                counts["added"] += 1
                if relink:  # a current value arriving in a store that may know other values of it
                    store._link(c, p["id"], p["subject"], p["valid_from"])
            else:
                counts["skipped"] += 1
        store._index_new(c, last)
        for s in sessions:
            cur = c.execute("INSERT OR IGNORE INTO memory_sessions(id, title, started_at, last_at, turns) "
                            "VALUES (?, ?, ?, ?, ?)", (s["id"], s.get("title") or "", s["started_at"],
                                                       s["last_at"], int(s.get("turns") or 0)))
            counts["sessions"] += cur.rowcount
        touched = {p["session_id"] for p in pending if p["session_id"] and p["kind"] == "episode"}
        for sid in touched:  # keep the session summaries true to the turns now stored
            c.execute(
                "INSERT INTO memory_sessions(id, title, started_at, last_at, turns) "
                "SELECT ?, coalesce((SELECT replace(substr(text, 1, 80), char(10), ' ') FROM memories "
            "WHERE session_id = ?1 AND "
                "+kind = 'episode' AND role = 'user' ORDER BY occurred_at LIMIT 1), ''), min(occurred_at), "
                "max(occurred_at), count(*) FROM memories WHERE session_id = ?1 AND +kind = 'episode' "
                "ON CONFLICT(id) DO UPDATE SET started_at = excluded.started_at, last_at = excluded.last_at, "
                "turns = excluded.turns, title = CASE WHEN title = '' THEN excluded.title ELSE title END",
                (sid,))
