"""The agent loop shared by every face: context assembly, recall, tools, write-back, compaction.

    from copa.agent import run_turn, available_model
    result = run_turn(ws, "where do I live?", on_event=print)   # TurnResult
"""

from __future__ import annotations

from typing import Any

from copa.agent.loop import TurnResult, new_session_id, run_turn
from copa.agent.writeback import compact_session as compact


def available_model(ws: Any) -> str | None:
    """The model a turn would use now, or None when none is configured (nor found in the environment)."""
    return ws.models.default_name()


def turn_tool_calls(ws: Any, turn_id: str) -> list[dict[str, Any]]:
    """The tool calls of one turn, in order (tool, call_id, arguments, approval, ok, result, error,
    error_type, duration_ms): what a face shows when it replays a conversation."""
    from copa.agent.store import TurnLog

    log = ws.__dict__.get("_agent_turn_log")  # the one the loop writes through, when it exists
    if log is None:
        log = ws.__dict__["_agent_turn_log"] = TurnLog(ws.paths.db_file)
    return log.calls(turn_id)


__all__ = ["TurnResult", "available_model", "compact", "new_session_id", "run_turn", "turn_tool_calls"]
