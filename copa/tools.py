"""The contract between things the agent can call (skills, memory tools, device tools, MCP tools)
and the agent loop. Kept tiny and dependency-free so every package can import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolSpec:
    name: str  # unique, [a-zA-Z0-9_-]{1,64}: what the model calls
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})  # JSON Schema
    dangerous: bool = False  # needs the user's approval before each call (unless policy says otherwise)
    source: str = ""  # where it comes from: "skill:files", "memory", "mcp:server", "device:lab"


@dataclass
class ToolResult:
    ok: bool
    content: Any = None  # JSON-able value shown to the model
    error: str | None = None  # a structured, one-line reason when ok is False
    error_type: str | None = None  # e.g. "timeout", "memory", "permission", "exception", "denied"
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ok": self.ok}
        if self.ok:
            d["content"] = self.content
        else:
            d["error"] = self.error
            d["error_type"] = self.error_type
        return d


class Tool(Protocol):
    spec: ToolSpec

    def call(self, arguments: dict[str, Any]) -> ToolResult: ...


Approve = Callable[[ToolSpec, dict[str, Any]], bool]


def decide(spec: ToolSpec, arguments: dict[str, Any], cfg: Any, approve: Approve | None) -> tuple[bool, str]:
    """copa's approval policy: whether a call may run, and why (recorded in the log). ``approve`` asks
    a person; None when nobody can be asked (a one-shot command without a terminal, the daemon's
    MQTT commands), and then a dangerous call runs only if the config allows it outright."""
    if spec.name in cfg.get("agent.deny_tools"):
        return False, "denied by agent.deny_tools"
    if not spec.dangerous:
        return True, "not dangerous"
    if spec.name in cfg.get("agent.allow_tools"):
        return True, "allowed by agent.allow_tools"
    policy = cfg.get("agent.approval")
    if policy == "always":
        return True, "agent.approval = always"
    if policy == "never":
        return False, "agent.approval = never"
    if approve is None:
        return False, "needs approval and nobody can be asked (use --yes, or agent.allow_tools)"
    return (True, "approved by the user") if approve(spec, arguments) else (False, "refused by the user")
