"""The agent loop shared by every face: context assembly, recall, tools, write-back, compaction.

    agent = Agent(models, memory, config, tool_sources=[("skills", skills.as_tools)])
    result = agent.run_turn("where do I live?", on_event=print)   # TurnResult

Faces get the wired one as ``ws.agent``. ``run_turn(ws, ...)``, ``available_model(ws)`` and
``compact(ws, session)`` are thin forwarders to it, kept for the faces being moved over this wave;
they take any object with an ``agent`` attribute and import nothing of the service layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from copa.exports import lazy

if TYPE_CHECKING:
    from copa.agent.loop import Agent, TurnResult, new_session_id


def run_turn(ws: Any, message: str, **options: Any) -> TurnResult:
    """``ws.agent.run_turn(message, ...)`` (compatibility forwarder)."""
    return ws.agent.run_turn(message, **options)


def available_model(ws: Any) -> str | None:
    """``ws.agent.available_model()`` (compatibility forwarder)."""
    return ws.agent.available_model()


def compact(ws: Any, session_id: str, keep_recent: int = 4) -> str:
    """``ws.agent.compact(session_id)`` (compatibility forwarder)."""
    return ws.agent.compact(session_id, keep_recent)


__all__ = ["Agent", "TurnResult", "available_model", "compact", "new_session_id", "run_turn"]

# Agent, TurnResult and new_session_id load the loop on first use (~40 ms: providers, context)
__getattr__ = lazy(__name__, {"Agent": "copa.agent.loop", "TurnResult": "copa.agent.loop",
                              "new_session_id": "copa.agent.loop"})
