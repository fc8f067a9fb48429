"""A prompt-level tool protocol for models without native tool calling (many small local models).

The tools are described in the system prompt; the model answers ``<tool_call>{"name": ..., "arguments":
{...}}</tool_call>``; results go back as ``<tool_result>`` user messages. Parsing is lenient because
small models are: a missing closing tag, a fenced JSON block, a bare JSON object, ``parameters`` or
``args`` instead of ``arguments`` and trailing prose are all accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from copa.providers.types import STOP_TOOLS, ChatRequest, Event, Message, ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_NAME_KEYS = ("name", "tool", "function", "tool_name")
_ARG_KEYS = ("arguments", "parameters", "args", "input")
_FENCE = re.compile(r"```(?:json|tool_call)?\s*(.*?)```", re.S)


def describe_tools(request: ChatRequest) -> str:
    lines = ["You can use tools. To call a tool, write exactly one line like this and then stop:",
             f'{OPEN}{{"name": "TOOL_NAME", "arguments": {{...}}}}{CLOSE}',
             "You may write several such lines to call several tools. The results come back in a message "
             "that starts with <tool_result>. When you have what you need, answer normally with no "
             f"{OPEN}. Available tools:"]
    for t in request.tools:
        lines.append(f"- {t.name}: {t.description}\n  arguments (JSON Schema): "
                     f"{json.dumps(t.parameters, separators=(',', ':'))}")
    return "\n".join(lines)


def prepare(request: ChatRequest) -> ChatRequest:
    """The same request with tools moved into the prompt and tool history turned into text."""
    system = (request.system + "\n\n" if request.system else "") + describe_tools(request)
    messages: list[Message] = []
    for m in request.messages:
        if m.role == "assistant" and m.tool_calls:
            calls = "\n".join(f"{OPEN}{json.dumps({'name': c.name, 'arguments': c.arguments})}{CLOSE}"
                              for c in m.tool_calls)
            messages.append(Message("assistant", (m.content + "\n" if m.content else "") + calls))
        elif m.role == "tool":
            status = "error" if m.is_error else "ok"
            block = f'<tool_result name="{m.name}" status="{status}">\n{m.content}\n</tool_result>'
            if messages and messages[-1].role == "user" and messages[-1].content.startswith("<tool_result"):
                messages[-1] = Message("user", messages[-1].content + "\n" + block)
            else:
                messages.append(Message("user", block))
        else:
            messages.append(m)
    return ChatRequest(messages=messages, system=system, tools=[], max_tokens=request.max_tokens,
                       temperature=request.temperature, stream=request.stream)


def _json_objects(text: str) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    i = text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            obj, end = _repair(text[i:]), i + 1
        if obj is not None:
            yield obj
        i = text.find("{", max(end, i + 1))


def _repair(fragment: str) -> Any:
    """A truncated object (missing closing braces) or single quotes, as small models write them."""
    candidate = fragment.strip().split(CLOSE)[0].strip().rstrip(",")
    for attempt in (candidate, candidate.replace("'", '"')):
        opened = attempt.count("{") - attempt.count("}")
        if opened > 0:
            attempt += "}" * opened
        try:
            return json.loads(attempt)
        except ValueError:
            continue
    return None


def _as_call(obj: Any, n: int) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if isinstance(obj.get("function"), dict):  # {"function": {"name":..., "arguments":...}}
        return _as_call(obj["function"], n)
    if not name:
        return None
    args = next((obj[k] for k in _ARG_KEYS if k in obj), {})
    if isinstance(args, str):
        parsed = _repair(args) if args.strip() else {}
        args = parsed if isinstance(parsed, dict) else {"input": args}
    if not isinstance(args, dict):
        return ToolCall(f"call_{n}", name, {}, error="arguments must be a JSON object")
    return ToolCall(f"call_{n}", name, args)


def parse_calls(text: str, tool_names: set[str] | None = None) -> tuple[str, list[ToolCall]]:
    """Split a model's answer into its prose and the tool calls it asked for."""
    calls: list[ToolCall] = []
    if OPEN in text:
        prose, *blocks = text.split(OPEN)
        for block in blocks:
            body = block.split(CLOSE)[0]
            for obj in _json_objects(body):
                call = _as_call(obj, len(calls))
                if call:
                    calls.append(call)
                    break
        return prose.strip(), calls
    stripped = text.strip()
    candidates = [m.group(1) for m in _FENCE.finditer(stripped)] if "```" in stripped else []
    if stripped.startswith("{"):
        candidates.append(stripped)
    for cand in candidates:
        for obj in _json_objects(cand):
            call = _as_call(obj, len(calls))
            if call and (tool_names is None or call.name in tool_names):
                calls.append(call)
    if calls:
        return _FENCE.sub("", stripped).strip() if not stripped.startswith("{") else "", calls
    return text, []


def _held_prefix(text: str) -> int:
    """How many trailing characters could be the start of the opening tag (kept back while streaming)."""
    for n in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-n:]):
            return n
    return 0


def filter_events(events: Iterator[Event], tool_names: set[str]) -> Iterator[Event]:
    """Pass prose through as it streams; hold back tool-call markup and turn it into tool events."""
    full = ""
    emitted = 0  # characters of ``full`` already passed on
    capturing = False  # saw the opening tag, or the answer looks like bare JSON
    stop: Event | None = None
    for ev in events:
        if ev.type == "stop":
            stop = ev
            continue
        if ev.type != "text":
            yield ev
            continue
        full += ev.text
        if capturing:
            continue
        if OPEN in full:
            capturing = True
            cut = full.index(OPEN)
        elif full.lstrip().startswith(("{", "`")):
            capturing = True
            continue
        else:
            cut = len(full) - _held_prefix(full)
        if cut > emitted:
            yield Event("text", text=full[emitted:cut])
            emitted = cut
    prose, calls = parse_calls(full, tool_names)
    if calls:
        rest = full[emitted:full.index(OPEN)] if OPEN in full else prose
        if rest.strip():
            yield Event("text", text=rest.rstrip())
        for i, call in enumerate(calls):
            yield Event("tool_start", index=i, id=call.id, name=call.name)
            yield Event("tool_args", index=i, text=json.dumps(call.arguments))
        yield Event("stop", text=STOP_TOOLS)
        return
    if len(full) > emitted:
        yield Event("text", text=full[emitted:])
    if stop is not None:
        yield stop
