"""Anthropic Messages API: ``message_start``, ``content_block_start/delta/stop`` (``text_delta``,
``input_json_delta`` for tool arguments in pieces), ``message_delta`` (stop reason, usage), ``message_stop``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from copa.providers.base import Provider
from copa.providers.http import AttemptFailed, StreamBroken, event_error, loads_or_none
from copa.providers.types import (
    STOP_END,
    STOP_FILTER,
    STOP_LENGTH,
    STOP_TOOLS,
    ChatRequest,
    Event,
    Usage,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
_STOPS = {"end_turn": STOP_END, "stop_sequence": STOP_END, "tool_use": STOP_TOOLS, "max_tokens": STOP_LENGTH,
          "refusal": STOP_FILTER, "pause_turn": STOP_END, "model_context_window_exceeded": STOP_LENGTH}
_RETRYABLE_ERRORS = {"overloaded_error", "rate_limit_error", "api_error"}


def _input_tokens(usage: dict[str, Any]) -> int:
    """Cached prompt tokens are prompt tokens too (the docs list them apart from input_tokens)."""
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_read_input_tokens",
                                                 "cache_creation_input_tokens"))


def to_wire_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Messages must alternate user/assistant; tool results travel as user-side blocks."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "tool":
            role = "user"
            blocks = [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content or "(empty)",
                       **({"is_error": True} if m.is_error else {})}]
        elif m.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
            if not blocks:
                blocks = [{"type": "text", "text": "(no answer)"}]
        else:
            role = "user"
            blocks = [{"type": "text", "text": m.content or "(empty)"}]
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


class AnthropicProvider(Provider):
    wire = "anthropic"

    def url(self, stream: bool = True) -> str:
        base = (self.spec.base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
        return base + "/v1/messages"

    def body(self, request: ChatRequest, stream: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.spec.model, "max_tokens": request.max_tokens or self.spec.max_tokens,
                                "messages": to_wire_messages(request), "stream": stream}
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                             for t in request.tools]
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def headers(self, stream: bool = True) -> dict[str, str]:
        h = {"accept": "text/event-stream" if stream else "application/json", "anthropic-version": API_VERSION}
        if self.api_key:
            h["x-api-key"] = self.api_key
        return h

    def parse(self, events: Iterator[tuple[str, str]]) -> Iterator[Event]:
        input_tokens = 0
        for name, data in events:
            obj = loads_or_none(data)
            if not isinstance(obj, dict):
                yield Event("malformed", text=data[:200])
                continue
            kind = obj.get("type") or name
            if kind == "message_start":
                u = (obj.get("message") or {}).get("usage") or {}
                input_tokens = _input_tokens(u)
                yield Event("usage", usage=Usage(input_tokens, int(u.get("output_tokens") or 0)))
            elif kind == "content_block_start":
                block = obj.get("content_block") or {}
                index = int(obj.get("index", 0))
                if block.get("type") == "tool_use":
                    yield Event("tool_start", index=index, id=block.get("id", ""), name=block.get("name", ""))
                elif block.get("type") == "text" and block.get("text"):
                    yield Event("text", text=block["text"])
            elif kind == "content_block_delta":
                delta = obj.get("delta") or {}
                index = int(obj.get("index", 0))
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield Event("text", text=delta["text"])
                elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                    yield Event("tool_args", index=index, text=delta["partial_json"])
            elif kind == "message_delta":
                u = obj.get("usage") or {}
                if u:  # cumulative counts; recent API versions repeat the input counts here
                    input_tokens = _input_tokens(u) or input_tokens
                    yield Event("usage", usage=Usage(input_tokens, int(u.get("output_tokens") or 0)))
                reason = (obj.get("delta") or {}).get("stop_reason")
                if reason:
                    yield Event("stop", text=_STOPS.get(reason, reason))
            elif kind == "message_stop":
                yield Event("stop", text="")  # confirms the end; the reason came with message_delta
                return
            elif kind == "error":
                raise event_error(self.who, obj.get("error") or {}, _RETRYABLE_ERRORS)
        raise StreamBroken("the stream ended before message_stop")

    def parse_plain(self, obj: Any) -> Iterator[Event]:
        """A Message object: content blocks (text, tool_use; thinking is skipped), stop_reason, usage."""
        if not isinstance(obj, dict):
            raise AttemptFailed(f"{self.who} answered with {str(obj)[:200]!r}", retryable=True)
        if obj.get("type") == "error" or obj.get("error"):
            raise event_error(self.who, obj.get("error") or {}, _RETRYABLE_ERRORS)
        u = obj.get("usage") or {}
        yield Event("usage", usage=Usage(_input_tokens(u), int(u.get("output_tokens") or 0)))
        calls = 0
        for block in obj.get("content") or []:
            if block.get("type") == "text" and block.get("text"):
                yield Event("text", text=block["text"])
            elif block.get("type") == "tool_use":
                yield Event("tool_start", index=calls, id=block.get("id", ""), name=block.get("name", ""))
                yield Event("tool_args", index=calls, text=json.dumps(block.get("input") or {}))
                calls += 1
        reason = obj.get("stop_reason") or "end_turn"
        yield Event("stop", text=_STOPS.get(reason, reason))
