"""The contract between things the agent can call (skills, memory tools, device tools, MCP tools)
and the agent loop. Kept tiny and dependency-free so every package can import it.
"""

from __future__ import annotations

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
