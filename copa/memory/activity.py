"""Conversations, tasks, preferences and change reports: the parts of MemoryStore that the agent
loop, the scheduler and the TUI call every turn or every report. Mixed into MemoryStore."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from copa.errors import UsageError
from copa.memory.model import (
    SELECT_COLS,
    TASK_STATUSES,
    Memory,
    Session,
    check_status,
    iso,
    now_utc,
    parse_iso,
    row_to_memory,
    to_utc,
)


class ActivityMixin:
    """Uses MemoryStore's plumbing: _read, _write, _get, _insert_batch, _unlink, _conn, _lock, path."""

    # ---- conversations --------------------------------------------------------------------------
    def add_turn(self, session_id: str, role: str, text: str, occurred_at: datetime | str | None = None,
                 metadata: dict[str, Any] | None = None) -> str:
        """One conversation turn, committed before this returns (write it before calling a model)."""
        if not session_id or not str(session_id).strip():
            raise UsageError("a turn needs a session id")
        role = (role or "").strip().lower()
        if not role:
            raise UsageError("a turn needs a role (user, assistant, tool, system)")
        p = self._prepare({"text": text, "kind": "episode", "occurred_at": occurred_at, "metadata": metadata,
                           "session_id": str(session_id), "role": role, "source": f"session:{session_id}"},
                          now_utc())
        with self._write() as c:
            mid = self._insert_batch(c, [p])[0]
        return mid

    def turns(self, session_id: str, limit: int | None = None) -> list[Memory]:
        """The session's turns, oldest first (the last ``limit`` of them when given)."""
        sql = (f"SELECT {SELECT_COLS} FROM memories m WHERE m.session_id = ? AND +m.kind = 'episode' "
               "ORDER BY m.occurred_at DESC, m.pk DESC")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [row_to_memory(r) for r in reversed(self._read(sql, (str(session_id),)))]

    def sessions(self, limit: int = 20) -> list[Session]:
        rows = self._read("SELECT id, title, started_at, last_at, turns FROM memory_sessions "
                          "ORDER BY last_at DESC LIMIT ?", (int(limit),))
        return [Session(r[0], r[1], parse_iso(r[2]), parse_iso(r[3]), r[4]) for r in rows]

    def last_session(self) -> str | None:
        rows = self._read("SELECT id FROM memory_sessions ORDER BY last_at DESC LIMIT 1")
        return rows[0][0] if rows else None

    # ---- tasks and preferences ------------------------------------------------------------------
    def add_task(self, text: str, due: datetime | str | None = None, subject: str | None = None) -> str:
        return self.add_many([{"text": text, "kind": "task", "due_at": due, "subject": subject, "status": "open"}])[0]

    def set_task_status(self, id: str, status: str) -> Memory:
        status = check_status(status)
        with self._write() as c:
            m = self._get(c, id)
            if m.kind != "task":
                raise UsageError(f"memory {id} is a {m.kind}, not a task")
            c.execute("UPDATE memories SET status = ? WHERE id = ?", (status, id))
            return self._get(c, id)

    def tasks(self, statuses: Iterable[str] = ("open", "in_progress")) -> list[Memory]:
        """Current tasks with these statuses: due ones first (soonest first), then newest."""
        sts = [check_status(s) for s in statuses] or list(TASK_STATUSES)
        rows = self._read(
            f"SELECT {SELECT_COLS} FROM memories m WHERE m.kind = 'task' AND m.status IN "
            f"({','.join('?' * len(sts))}) AND m.valid_to IS NULL "
            "ORDER BY m.due_at IS NULL, m.due_at, m.occurred_at DESC", sts)
        return [row_to_memory(r) for r in rows]

    def preferences(self, limit: int = 50) -> list[Memory]:
        rows = self._read(f"SELECT {SELECT_COLS} FROM memories m WHERE m.kind = 'preference' AND m.kind != 'episode' "
                          "AND m.valid_to IS NULL AND m.superseded_by IS NULL "
                          "ORDER BY m.importance DESC, m.occurred_at DESC LIMIT ?", (int(limit),))
        return [row_to_memory(r) for r in rows]

    def changes_since(self, when: datetime | str, *, include_episodes: bool = False,
                      limit: int = 1000) -> list[Memory]:
        """Memories stored since ``when`` plus those superseded or ended since then, oldest first.
        Conversation turns are left out unless asked for: a report wants knowledge, not chat."""
        t = iso(to_utc(when, field_name="when"))
        skip = "" if include_episodes else " AND kind != 'episode'"
        rows = self._read(
            f"SELECT {SELECT_COLS} FROM memories m WHERE m.pk IN (SELECT pk FROM memories WHERE created_at >= ?{skip} "
            f"UNION SELECT pk FROM memories WHERE valid_to >= ?{skip}) ORDER BY m.created_at, m.pk LIMIT ?",
            (t, t, int(limit)))
        return [row_to_memory(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        total = self._read("SELECT count(*) FROM memories")[0][0]
        # kinds other than turns come from their (partial) index; turns are the rest
        by_kind = dict(self._read("SELECT kind, count(*) FROM memories WHERE kind != 'episode' GROUP BY kind"))
        if total - sum(by_kind.values()):
            by_kind["episode"] = total - sum(by_kind.values())
        by_kind = dict(sorted(by_kind.items()))
        current_by_kind = dict(self._read("SELECT kind, count(*) FROM memories WHERE kind != 'episode' AND "
                                          "valid_to IS NULL AND superseded_by IS NULL GROUP BY kind"))
        superseded = self._read("SELECT count(*) FROM memories WHERE valid_to IS NOT NULL")[0][0]
        sessions = self._read("SELECT count(*) FROM memory_sessions")[0][0]
        open_tasks = len(self._read("SELECT 1 FROM memories WHERE kind = 'task' AND status IN "
                                    "('open', 'in_progress') AND valid_to IS NULL"))
        span = self._read("SELECT min(occurred_at), max(occurred_at) FROM memories")[0]
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        vectors = 0 if self.vectors is None else self._read("SELECT count(*) FROM memory_vectors WHERE model = ?",
                                                            (self.vectors.model,))[0][0]
        return {"memories": total, "current": total - superseded, "superseded": superseded, "by_kind": by_kind,
                "current_by_kind": current_by_kind,
                "sessions": sessions, "open_tasks": open_tasks, "oldest": span[0], "newest": span[1],
                "db_bytes": size, "path": str(self.path), "vectors": vectors,
                "embeddings": self.vectors.kind if self.vectors is not None else None}

