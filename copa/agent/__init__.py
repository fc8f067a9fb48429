"""The agent loop shared by every face: context assembly, recall, tools, write-back, compaction.

    agent = Agent(models, memory, config, tool_sources=[("skills", skills.as_tools)])
    result = agent.run_turn("where do I live?", on_event=print)   # TurnResult

Faces get the wired one as ``ws.agent``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from copa.exports import lazy

if TYPE_CHECKING:
    from copa.agent.ahead import fork_early, get_ready
    from copa.agent.loop import Agent, TurnResult, new_session_id

__all__ = ["Agent", "TurnResult", "fork_early", "get_ready", "new_session_id"]

# Agent, TurnResult and new_session_id load the loop on first use (~40 ms: providers, context)
# fork_early and get_ready are light: copa ask calls them before anything else (copa/agent/ahead.py)
__getattr__ = lazy(__name__, {"Agent": "copa.agent.loop", "TurnResult": "copa.agent.loop",
                              "new_session_id": "copa.agent.loop", "fork_early": "copa.agent.ahead",
                              "get_ready": "copa.agent.ahead"})
