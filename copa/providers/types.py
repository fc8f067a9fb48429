"""Provider-neutral messages, tool calls, stream events and replies.

Every wire protocol (OpenAI-compatible, Anthropic, Gemini) translates to and from these, so the agent
loop, the TUI and the daemon never see a vendor's format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from copa.tools import ToolSpec


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the model's arguments were not a JSON object

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Message:
    role: str  # "user" | "assistant" | "tool"
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant: calls it made
    tool_call_id: str = ""  # tool: which call this answers
    name: str = ""  # tool: the tool's name
    is_error: bool = False  # tool: the call failed


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    # True when copa counted (estimated) the tokens itself because the server stated none: llama.cpp,
    # for one, sends no usage in a stream even when asked to.
    estimated: bool = False

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.estimated = self.estimated or other.estimated

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class ChatRequest:
    messages: list[Message]
    system: str = ""
    tools: list[ToolSpec] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool | None = None  # None: as the model's config says (models.NAME.stream)


@dataclass
class Event:
    """One thing that happened while a reply streamed in (or, for the agent, during a turn).

    Provider-level types: ``text`` (a delta in ``text``), ``tool_start`` (``index``, ``id``, ``name``),
    ``tool_args`` (a piece of JSON arguments in ``text`` for ``index``), ``tool_call`` (a complete
    ``data["call"]``), ``usage`` (``usage``), ``stop`` (reason in ``text``), ``retry`` and ``fallback``
    (``data`` says why). The agent adds ``memories``, ``tool_result`` and ``approval``.
    """

    type: str
    text: str = ""
    index: int = 0
    id: str = ""
    name: str = ""
    usage: Usage | None = None
    data: dict[str, Any] = field(default_factory=dict)


# Stop reasons, normalised across providers.
STOP_END, STOP_TOOLS, STOP_LENGTH, STOP_FILTER = "end", "tool_use", "max_tokens", "content_filter"
STOP_BROKEN, STOP_CANCELLED = "broken", "cancelled"


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = STOP_END
    model: str = ""  # the config name of the model that answered
    interrupted: bool = False  # the stream broke or the user pressed Ctrl-C: ``text`` is partial
    error: str | None = None  # why it was interrupted
    failures: list[str] = field(default_factory=list)  # earlier attempts/models that failed
    ttfb_ms: float | None = None  # request sent -> first byte of the answer
    duration_ms: float = 0.0


@dataclass
class ModelSpec:
    """One usable model: a ``[models.NAME]`` entry, or one found in the environment (zero config)."""

    name: str
    provider: str  # openai | anthropic | gemini | ollama (ollama speaks the OpenAI wire at /v1)
    model: str
    base_url: str = ""
    key: str = ""  # the *name* of the secret holding the API key, never the key itself
    context_window: int = 0  # 0 = the provider's usual size
    price_in: float = 0.0  # per input token, in the user's currency
    price_out: float = 0.0
    tool_mode: str = "native"  # native | prompt
    max_tokens: int = 4096  # answer budget
    stream: bool = True  # false: one plain request (servers or proxies that buffer or break streams)
    source: str = "config"  # config | environment | spec ("provider:model" on the command line)

    @property
    def label(self) -> str:
        """How errors name it: ``openai model gpt-4o-mini ('fast')``."""
        alias = f" ('{self.name}')" if self.name != self.model else ""
        return f"{self.provider} model {self.model or '?'}{alias}"

    def window(self) -> int:
        if self.context_window > 0:
            return self.context_window
        return {"anthropic": 200_000, "gemini": 1_000_000, "ollama": 8_192}.get(
            self.provider, 128_000 if "openai.com" in self.base_url else 8_192)

    def cost(self, usage: Usage) -> float:
        return usage.input_tokens * self.price_in + usage.output_tokens * self.price_out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
