"""Forgetting for real: deleting rows, repairing subject chains and session summaries, and making
the deletion physical (FTS5 segments rewritten, freed pages zeroed, WAL truncated). Mixed into
MemoryStore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime

from copa.errors import UsageError
from copa.memory.model import SELECT_COLS, Memory, now_utc, row_to_memory


class ForgetMixin:
    """Uses MemoryStore's plumbing: _read, _write, _get, _insert_batch, _unlink, _conn, _lock, path, cache_dir."""

    # ---- forgetting -----------------------------------------------------------------------------
    def forget(self, id: str, *, history: bool = False) -> int:
        """Delete a memory for real: the row, its index entries and (``history=True``) every other
        value of its subject; the freed pages are zeroed and the WAL is emptied. Returns rows deleted."""
        with self._write() as c:
            m = self._get(c, id)
            ids = [id]
            if history and m.subject:
                ids = [r[0] for r in c.execute("SELECT id FROM memories WHERE subject = ?", (m.subject,))]
            n = self._delete(c, ids)
        self.purge()
        return n

    def select_for_forget(self, *, subject: str | None = None, kind: str | None = None, source: str | None = None,
                          since: datetime | str | None = None, until: datetime | str | None = None,
                          query: str | None = None) -> list[Memory]:
        """What a bulk forget would delete. ``query`` matches memories holding *all* its content words
        (stricter than recall: deleting on a ranked guess would be reckless)."""
        if not any(v not in (None, "") for v in (subject, kind, source, since, until, query)):
            raise UsageError("say what to forget", hint="give an id, --subject, --kind, --source, --since/--until "
                             "or --match")
        where, params = self._filters(kinds=[kind] if kind else None, since=since, until=until, subject=subject,
                                      source=source)
        if query is not None:
            from copa.memory.recall import analyse

            q = analyse(query, now_utc())
            if not q.stems:
                raise UsageError(f"--match {query!r} has no words to match", hint="use more specific words")
            match = " AND ".join(f'"{q.surface[s]}"' for s in q.stems)
            where = (where + " AND " if where else "WHERE ") + \
                "m.pk IN (SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?)"
            params.append(match)
        rows = self._read(f"SELECT {SELECT_COLS} FROM memories m {where} ORDER BY m.occurred_at, m.pk", params)
        return [row_to_memory(r) for r in rows]

    def forget_many(self, ids: Iterable[str]) -> int:
        """Delete these memories in one transaction, then make the deletion physical."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        with self._write() as c:
            n = self._delete(c, ids)
        self.purge()
        return n

    def _delete(self, c: sqlite3.Connection, ids: list[str]) -> int:
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for (mid,) in c.execute(f"SELECT id FROM memories WHERE subject IS NOT NULL AND id IN "
                                    f"({','.join('?' * len(chunk))})", chunk).fetchall():
                self._unlink(c, mid)
        sessions: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            sessions.update(r[0] for r in c.execute(
                f"SELECT DISTINCT session_id FROM memories WHERE session_id IS NOT NULL AND id IN "
                f"({','.join('?' * len(chunk))})", chunk))
        n = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            n += c.execute(f"DELETE FROM memories WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
        for sid in sessions:  # a session title is the text of a turn: it must go with it
            self._refresh_session(c, sid)
        return n

    @staticmethod
    def _refresh_session(c: sqlite3.Connection, sid: str) -> None:
        c.execute("DELETE FROM memory_sessions WHERE id = ?", (sid,))
        c.execute(
            "INSERT INTO memory_sessions(id, title, started_at, last_at, turns) "
            "SELECT ?1, coalesce((SELECT replace(substr(text, 1, 80), char(10), ' ') FROM memories "
            "WHERE session_id = ?1 AND "
            "+kind = 'episode' AND role = 'user' ORDER BY occurred_at, pk LIMIT 1), ''), min(occurred_at), "
            "max(occurred_at), count(*) FROM memories WHERE session_id = ?1 AND +kind = 'episode' "
            "HAVING count(*) > 0", (sid,))

    def purge(self) -> None:
        """Make deletions physical: FTS5 keeps deleted terms in old index segments until they are
        merged ('optimize' rewrites them; secure_delete zeroes the freed pages), and the WAL still holds
        old page images until it is checkpointed and truncated. The static model's piece cache holds
        words of memories (copa/memory/pieces.py): it is deleted, and filled again as memories are embedded."""
        from copa.memory import pieces

        with self._lock:
            self._conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('optimize')")
            self._conn.execute("INSERT INTO memory_sessions_fts(memory_sessions_fts) VALUES ('optimize')")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pieces.forget_all(self.cache_dir)
