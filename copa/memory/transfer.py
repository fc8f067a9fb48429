"""Export and import as JSON Lines: lossless, idempotent, committed in batches.

Each line is one record: ``{"record": "memory", ...every column...}`` or ``{"record": "session", ...}``.
Hand-written lines need only ``text`` (plus any of kind, subject, source, occurred_at, metadata...).
Re-importing the same file changes nothing: records carry their id, and a line without one gets an
id derived from its content. An import is all or nothing: every line is checked first (the error
names the line and the field), then the whole file is written in one transaction; ``skip_bad``
imports the valid lines and reports the others by number.
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
from copa.textio import decode_strict, has_surrogates

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


class BadLine(UsageError):
    """One line of an import file that cannot be imported (its number and field in the message)."""

    def __init__(self, lineno: int, message: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.lineno = lineno


# The type each field of a memory line must have (None always allowed); times are checked by the store.
_TEXT_FIELDS = ("id", "text", "kind", "subject", "source", "occurred_at", "created_at", "valid_from", "valid_to",
                "superseded_by", "status", "due_at", "due", "session_id", "role")
_SESSION_FIELDS = {"id": str, "title": str, "started_at": str, "last_at": str, "turns": int}


def _type_of(value: Any) -> str:
    return {str: "text", bool: "true/false", int: "a number", float: "a number", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _check_memory_fields(rec: dict[str, Any]) -> None:
    """Every field's type and range, before the store sees the record; the error names the field."""
    unknown = set(rec) - set(COLUMNS) - {"due"}
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(sorted(unknown))}", hint="fields: " + ", ".join(COLUMNS))
    for name in _TEXT_FIELDS:
        value = rec.get(name)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"field {name!r} must be text, not {_type_of(value)} ({json.dumps(value)[:40]})")
        if isinstance(value, str) and has_surrogates(value):
            raise UsageError(f"field {name!r} holds an invalid character (a lone surrogate escape such as "
                             "\\ud800)", hint="remove it or write the character itself")
    if not (rec.get("text") or "").strip():
        raise UsageError("field 'text' is missing or empty", hint="every memory needs its text")
    imp = rec.get("importance")
    if imp is not None and (isinstance(imp, bool) or not isinstance(imp, int | float) or not 0 <= imp <= 1):
        raise UsageError(f"field 'importance' must be a number from 0 to 1, not {json.dumps(imp)[:40]}")
    cor = rec.get("corroborations")
    if cor is not None and (isinstance(cor, bool) or not isinstance(cor, int) or cor < 0):
        raise UsageError(f"field 'corroborations' must be a whole number >= 0, not {json.dumps(cor)[:40]}")
    meta = rec.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise UsageError(f"field 'metadata' must be an object, not {_type_of(meta)}")
    if meta and has_surrogates(json.dumps(meta, ensure_ascii=False)):
        raise UsageError("field 'metadata' holds an invalid character (a lone surrogate escape)")


def _check_session(rec: dict[str, Any]) -> dict[str, Any]:
    unknown = set(rec) - set(_SESSION_FIELDS)
    if unknown:
        raise UsageError(f"unknown session field(s) {', '.join(sorted(unknown))}",
                         hint="fields: " + ", ".join(_SESSION_FIELDS))
    for name, t in _SESSION_FIELDS.items():
        value = rec.get(name)
        required = name in ("id", "started_at", "last_at")
        if value is None:
            if required:
                raise UsageError(f"session field {name!r} is missing")
            continue
        if not isinstance(value, t) or isinstance(value, bool) or (t is int and value < 0):
            raise UsageError(f"session field {name!r} must be {'text' if t is str else 'a whole number >= 0'}, "
                             f"not {json.dumps(value)[:40]}")
        if t is str and has_surrogates(value):
            raise UsageError(f"session field {name!r} holds an invalid character (a lone surrogate escape)")
    return rec


def _records(store: MemoryStore, f: IO[bytes], path: Path) -> Iterator[tuple[int, int, Any]]:
    """(line number, bytes read so far, prepared record | ("session", rec) | a BadLine) per line."""
    done = 0
    for lineno, raw in enumerate(f, 1):
        done += len(raw)
        if not raw.strip():
            continue
        try:
            text = decode_strict(raw, f"{path}:{lineno}")
        except UsageError as e:
            yield lineno, done, BadLine(lineno, e.message, e.hint)
            continue
        try:
            rec = json.loads(text)
            if not isinstance(rec, dict):
                raise ValueError("a line must be a JSON object")
        except ValueError as e:
            yield lineno, done, BadLine(lineno, f"{path}:{lineno}: not a JSON object ({getattr(e, 'msg', e)})")
            continue
        kind = rec.pop("record", "memory")
        try:
            if kind == "header":
                continue
            if kind == "session":
                yield lineno, done, ("session", _check_session(rec))
            elif kind == "memory":
                _check_memory_fields(rec)
                yield lineno, done, _prepare_import(store, rec)
            else:
                raise UsageError(f"unknown record type {kind!r}", hint="use memory, session or header")
        except UsageError as e:
            yield lineno, done, BadLine(lineno, f"{path}:{lineno}: {e.message}", e.hint)


def import_jsonl(store: MemoryStore, path: Path | str, *, batch: int = 5000, skip_bad: bool = False,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Import a JSON Lines file, all or nothing: every line is checked first (each field's type and
    range), then everything is written in one transaction. With ``skip_bad`` the valid lines are
    imported and the others reported. Returns counts {'added', 'skipped', 'sessions'} ('skipped':
    already present), with ``skip_bad`` also 'bad' and 'bad_lines': [{'line', 'error'}]."""
    path = Path(path)
    try:
        f: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed below; binary for exact byte progress
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}", hint="check the path") from None
    counts: dict[str, Any] = {"added": 0, "skipped": 0, "sessions": 0}
    with f:
        total = os.fstat(f.fileno()).st_size
        # pass 1: check every line (nothing is kept in memory but the errors)
        bad: list[BadLine] = []
        for _lineno, done, item in _records(store, f, path):
            if isinstance(item, BadLine):
                bad.append(item)
            if progress:
                progress(done // 2, total)
        if bad and not skip_bad:
            first = bad[0]
            more = f" (and {len(bad) - 1} more bad line(s))" if len(bad) > 1 else ""
            raise UsageError(first.message + more, hint=(first.hint + "; " if first.hint else "") +
                             "nothing was imported: fix the line(s), or import the valid ones with --skip-bad")
        if skip_bad:
            counts["bad"] = len(bad)
            counts["bad_lines"] = [{"line": b.lineno, "error": b.message} for b in bad]
        # pass 2: the same lines again, written in one transaction (a crash leaves nothing half-done)
        f.seek(0)
        with store._write() as c:
            pending: list[dict[str, Any]] = []
            sessions: list[dict[str, Any]] = []
            for _lineno, done, item in _records(store, f, path):
                if isinstance(item, BadLine):
                    continue
                if isinstance(item, tuple):
                    sessions.append(item[1])
                else:
                    pending.append(item)
                if len(pending) >= batch:
                    _write_batch(store, c, pending, sessions, counts)
                    pending, sessions = [], []
                    if progress:
                        progress(total // 2 + done // 2, total)
            _write_batch(store, c, pending, sessions, counts)
    if progress:
        progress(total, total)
    return counts


def _prepare_import(store: MemoryStore, rec: dict[str, Any]) -> dict[str, Any]:
    rec.setdefault("id", None)
    if not rec["id"]:
        rec["id"] = _content_id(rec)
    try:
        p = store._prepare(rec, now_utc())
    except (TypeError, ValueError) as e:  # a value the store's own checks did not expect
        raise UsageError(f"a field has a value that cannot be stored ({e})") from None
    p["subject_current"] = p["subject"] is not None and p["superseded_by"] is None and p["valid_to"] is None
    return p


def _write_batch(store: MemoryStore, c: Any, pending: list[dict], sessions: list[dict],
                 counts: dict[str, Any]) -> None:
    if not pending and not sessions:
        return
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
    store._index_sessions(c, touched)
