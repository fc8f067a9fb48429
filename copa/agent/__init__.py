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


__all__ = ["TurnResult", "available_model", "compact", "new_session_id", "run_turn"]
