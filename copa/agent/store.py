"""The turn and tool-call log (tables from copa/agent/migrations.py), on the one copa database.

Uses a plain sqlite3 connection with the house settings (no sqlite_utils import: it costs ~0.1 s of
`copa ask` startup)."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class _DB:  # what copa.db.migrate needs: .conn and .execute
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class TurnLog:
    def __init__(self, path: Path | str):
        from copa.db import connect, migrate

        self.conn = connect(path)
        self._lock = threading.Lock()
        done = {r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='agent_tool_calls'")}
        if not done:
            from copa.agent.migrations import MIGRATIONS

            migrate(_DB(self.conn), MIGRATIONS)

    def log_call(self, *, turn_id: str, session_id: str, step: int, call_id: str, tool: str, source: str,
                 arguments: Any, approval: str, ok: bool, result: Any, error: str | None,
                 error_type: str | None, duration_ms: float) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT INTO agent_tool_calls (turn_id, session_id, step, call_id, tool, source, arguments, approval,"
                " ok, result, error, error_type, duration_ms, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (turn_id, session_id, step, call_id, tool, source, _dumps(arguments), approval, int(ok),
                 _dumps(result)[:100_000], error, error_type, duration_ms, _now()))

    def log_turn(self, *, turn_id: str, session_id: str, user_memory_id: str | None,
                 answer_memory_id: str | None, model: str, stop_reason: str, interrupted: bool,
                 error: str | None, input_tokens: int, output_tokens: int, cost: float,
                 memories_used: list[dict[str, Any]], timing: dict[str, Any]) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT OR REPLACE INTO agent_turns (turn_id, session_id, user_memory_id, answer_memory_id, model,"
                " stop_reason, interrupted, error, input_tokens, output_tokens, cost, memories_used, timing,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (turn_id, session_id, user_memory_id, answer_memory_id, model, stop_reason, int(interrupted), error,
                 input_tokens, output_tokens, cost, _dumps(memories_used), _dumps(timing), _now()))

    def calls(self, turn_id: str) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT step, call_id, tool, source, arguments, approval, ok, result, error,"
                                " error_type, duration_ms FROM agent_tool_calls WHERE turn_id = ? ORDER BY pk",
                                (turn_id,))
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            d = dict(zip(cols, row, strict=True))
            d["arguments"], d["result"], d["ok"] = json.loads(d["arguments"]), json.loads(d["result"]), bool(d["ok"])
            out.append(d)
        return out

    def turn(self, turn_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM agent_turns WHERE turn_id = ?", (turn_id,))
        row = cur.fetchone()
        if row is None:
            return None
        d = dict(zip([c[0] for c in cur.description], row, strict=True))
        d["memories_used"], d["timing"] = json.loads(d["memories_used"]), json.loads(d["timing"])
        d["interrupted"] = bool(d["interrupted"])
        return d

    def close(self) -> None:
        self.conn.close()
