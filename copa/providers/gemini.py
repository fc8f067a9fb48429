"""Google Gemini ``streamGenerateContent?alt=sse``: each event is a GenerateContentResponse whose
candidate parts hold text or whole ``functionCall`` objects; usage is cumulative."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from copa.providers.base import Provider
from copa.providers.http import StreamBroken, event_error, loads_or_none
from copa.providers.types import STOP_END, STOP_FILTER, STOP_LENGTH, STOP_TOOLS, ChatRequest, Event, Usage

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_STOPS = {"STOP": STOP_END, "MAX_TOKENS": STOP_LENGTH, "SAFETY": STOP_FILTER, "RECITATION": STOP_FILTER,
          "PROHIBITED_CONTENT": STOP_FILTER, "BLOCKLIST": STOP_FILTER, "SPII": STOP_FILTER, "IMAGE_SAFETY": STOP_FILTER}
# google.rpc status names that mean "try again later".
_RETRYABLE_ERRORS = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"}
# JSON Schema keywords Gemini's OpenAPI subset rejects.
_DROP_KEYS = {"$schema", "$id", "additionalProperties", "examples", "default", "title", "$defs", "definitions"}


def clean_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: clean_schema(v) for k, v in schema.items() if k not in _DROP_KEYS}
    if isinstance(schema, list):
        return [clean_schema(v) for v in schema]
    return schema


def to_wire_contents(request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "tool":
            role = "user"
            value = loads_or_none(m.content)
            response = value if isinstance(value, dict) else {"result": m.content}
            parts = [{"functionResponse": {"name": m.name, "response": response}}]
        elif m.role == "assistant":
            role = "model"
            parts = [{"text": m.content}] if m.content else []
            parts += [{"functionCall": {"name": c.name, "args": c.arguments}} for c in m.tool_calls]
            parts = parts or [{"text": "(no answer)"}]
        else:
            role = "user"
            parts = [{"text": m.content or "(empty)"}]
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out


class GeminiProvider(Provider):
    wire = "gemini"

    def url(self, stream: bool = True) -> str:
        base = (self.spec.base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base.endswith(("/v1beta", "/v1")):
            base += "/v1beta"
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{base}/models/{self.spec.model}:{method}"

    def body(self, request: ChatRequest, stream: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": to_wire_contents(request)}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parameters": clean_schema(t.parameters)}
                for t in request.tools]}]
        config: dict[str, Any] = {}
        if request.max_tokens:
            config["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if config:
            body["generationConfig"] = config
        return body

    def headers(self, stream: bool = True) -> dict[str, str]:
        h = {"accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            h["x-goog-api-key"] = self.api_key
        return h

    def parse_plain(self, obj: Any) -> Iterator[Event]:
        """generateContent answers one GenerateContentResponse: what a stream of one event holds."""
        yield from self.parse(iter([("message", json.dumps(obj))]))

    def parse(self, events: Iterator[tuple[str, str]]) -> Iterator[Event]:
        stopped, calls = False, 0
        for _name, data in events:
            obj = loads_or_none(data)
            if isinstance(obj, list) and len(obj) == 1:  # some proxies wrap errors in a list
                obj = obj[0]
            if not isinstance(obj, dict):
                yield Event("malformed", text=data[:200])
                continue
            if obj.get("error"):
                raise event_error(self.who, obj["error"], _RETRYABLE_ERRORS)
            feedback = obj.get("promptFeedback") or {}
            if feedback.get("blockReason") and not obj.get("candidates"):
                yield Event("stop", text=STOP_FILTER)  # the prompt itself was blocked: no candidates come
                return
            u = obj.get("usageMetadata")
            if isinstance(u, dict):
                yield Event("usage", usage=Usage(int(u.get("promptTokenCount") or 0),
                                                 int(u.get("candidatesTokenCount") or 0)
                                                 + int(u.get("thoughtsTokenCount") or 0)))
            for cand in obj.get("candidates") or []:
                for part in (cand.get("content") or {}).get("parts") or []:
                    if part.get("thought"):
                        continue
                    if part.get("text"):
                        yield Event("text", text=part["text"])
                    fc = part.get("functionCall")
                    if isinstance(fc, dict):
                        yield Event("tool_start", index=calls, id=fc.get("id") or f"call_{calls}",
                                    name=fc.get("name", ""))
                        yield Event("tool_args", index=calls, text=json.dumps(fc.get("args") or {}))
                        calls += 1
                reason = cand.get("finishReason")
                if reason:
                    stopped = True
                    yield Event("stop", text=STOP_TOOLS if calls else _STOPS.get(reason, reason.lower()))
        if not stopped:
            raise StreamBroken("the stream ended before a finishReason")
