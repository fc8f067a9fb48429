"""OpenAI-compatible chat completions (OpenAI, Ollama /v1, llama.cpp, vLLM, LM Studio, OpenRouter...).

Streaming is server-sent events of ``chat.completion.chunk`` objects ending with ``data: [DONE]``;
tool calls arrive as ``delta.tool_calls[i]`` whose ``function.arguments`` come in pieces.
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
    Message,
    Usage,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_STOPS = {"stop": STOP_END, "tool_calls": STOP_TOOLS, "function_call": STOP_TOOLS, "length": STOP_LENGTH,
          "content_filter": STOP_FILTER}
# Error types (OpenAI, vLLM, llama.cpp) that say the failure is transient.
_RETRYABLE_ERRORS = {"server_error", "rate_limit_error", "rate_limit_exceeded", "overloaded_error",
                     "service_unavailable", "timeout", "unavailable_error"}


def to_wire_messages(request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for m in request.messages:
        out.append(_message(m))
    return out


def _message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        return {"role": "assistant", "content": m.content or None, "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for c in m.tool_calls]}
    return {"role": m.role, "content": m.content}


class OpenAIProvider(Provider):
    wire = "openai"

    def url(self, stream: bool = True) -> str:
        return (self.spec.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"

    def body(self, request: ChatRequest, stream: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.spec.model, "messages": to_wire_messages(request), "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if request.tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                               "parameters": t.parameters}} for t in request.tools]
        if request.max_tokens:
            official = "api.openai.com" in (self.spec.base_url or DEFAULT_BASE_URL)
            body["max_completion_tokens" if official else "max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def headers(self, stream: bool = True) -> dict[str, str]:
        h = {"accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        return h

    def parse(self, events: Iterator[tuple[str, str]]) -> Iterator[Event]:
        stopped = False
        for _name, data in events:
            if data.strip() == "[DONE]":
                if not stopped:
                    yield Event("stop", text=STOP_END)
                return
            obj = loads_or_none(data)
            if not isinstance(obj, dict):
                yield Event("malformed", text=data[:200])
                continue
            for ev in self._events(obj):
                stopped = stopped or ev.type == "stop"
                yield ev
        if not stopped:
            raise StreamBroken("the stream ended before the answer was complete")

    def parse_plain(self, obj: Any) -> Iterator[Event]:
        if not isinstance(obj, dict) or not (obj.get("choices") or obj.get("error")):
            raise AttemptFailed(f"{self.who} answered without choices: {str(obj)[:200]}", retryable=True)
        yield from self._events(obj)

    def _events(self, obj: dict[str, Any]) -> Iterator[Event]:
        """One chat.completion.chunk (streamed) or chat.completion (plain) object."""
        if obj.get("error"):
            raise event_error(self.who, obj["error"], _RETRYABLE_ERRORS)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            yield Event("usage", usage=Usage(int(usage.get("prompt_tokens") or 0),
                                             int(usage.get("completion_tokens") or 0)))
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            if delta.get("content"):
                yield Event("text", text=delta["content"])
            if delta.get("refusal"):
                yield Event("text", text=delta["refusal"])
            for i, tc in enumerate(delta.get("tool_calls") or []):
                index = tc.get("index", i)
                fn = tc.get("function") or {}
                if tc.get("id") or fn.get("name"):
                    yield Event("tool_start", index=index, id=tc.get("id") or "", name=fn.get("name") or "")
                if fn.get("arguments"):
                    args = fn["arguments"]
                    yield Event("tool_args", index=index, text=args if isinstance(args, str) else json.dumps(args))
            reason = choice.get("finish_reason")
            if reason:
                yield Event("stop", text=_STOPS.get(reason, reason))
