"""The agent's tables: one row per turn (model, usage, memories used, timing) and one per tool call
(arguments, result, approval, duration), so every call is traceable to the turn that made it."""

from __future__ import annotations

from typing import Any


def _m001_init(db: Any) -> None:
    for sql in (
        """CREATE TABLE agent_turns (
            turn_id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            user_memory_id TEXT,
            answer_memory_id TEXT,
            model TEXT,
            stop_reason TEXT,
            interrupted INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            memories_used TEXT,
            timing TEXT,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX agent_turns_session ON agent_turns(session_id, created_at)",
        """CREATE TABLE agent_tool_calls (
            pk INTEGER PRIMARY KEY,
            turn_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            call_id TEXT,
            tool TEXT NOT NULL,
            source TEXT,
            arguments TEXT,
            approval TEXT,
            ok INTEGER NOT NULL,
            result TEXT,
            error TEXT,
            error_type TEXT,
            duration_ms REAL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX agent_tool_calls_turn ON agent_tool_calls(turn_id)",
    ):
        db.execute(sql)


MIGRATIONS = [("agent_001_init", _m001_init)]
