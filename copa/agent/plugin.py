"""The agent loop as a plugin of copa: the agent.* keys, its turn log's tables, the models check."""

from __future__ import annotations

from typing import Any

from copa.config import Key
from copa.plugins import hookimpl


@hookimpl
def copa_config_keys() -> dict[str, Any]:
    return {
        "agent.model": Key(str, "", "Default model: a [models.NAME] name or provider:model; empty = first available"),
        "agent.fast_model": Key(str, "", "Model for internal work (summaries, memory extraction); empty = agent.model"),
        "agent.fallback": Key(list, [], "Models tried in order when the chosen one fails (names or provider:model)"),
        "agent.system_prompt": Key(str, "", "Extra system prompt added to every turn"),
        "agent.max_tool_steps": Key(int, 8, "Most model calls with tool use in one turn"),
        "agent.approval": Key(str, "ask", "Dangerous tools: ask each time, always allow, or never allow",
                              ("ask", "always", "never")),
        "agent.allow_tools": Key(list, [], "Dangerous tools allowed without asking"),
        "agent.deny_tools": Key(list, [], "Tools never allowed"),
        "agent.recall_limit": Key(int, 8, "Memories recalled automatically for each message"),
        "agent.recent_turns": Key(int, 40, "Most earlier turns of the conversation put in context"),
        "agent.extract_memories": Key(bool, False, "After each turn, let the fast model propose memories to save"),
        "agent.retries": Key(int, 2, "Retries of one model on 429/5xx/timeouts before the fallback"),
        "agent.max_retry_wait": Key(float, 30.0, "Longest Retry-After (seconds) honoured before falling back"),
        "agent.connect_timeout": Key(float, 10.0, "Seconds to connect to a model server"),
        "agent.read_timeout": Key(float, 120.0, "Seconds to wait for the next bytes of an answer"),
    }


@hookimpl
def copa_migrations() -> list:
    from copa.agent.migrations import MIGRATIONS

    return MIGRATIONS


@hookimpl
def copa_doctor_checks() -> list:
    from copa.agent.checks import check_models

    return [check_models]
