"""Recorded exchanges written after the vendors' API references (tests/agent/wire/, each folder's
SOURCE.md names the pages), replayed through copa over HTTP; and the loopback servers checked against
them, so that the servers every other test uses cannot drift from the documented wire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copa.errors import ContextOverflowError, ProviderError
from copa.providers import ChatRequest, Message, ModelSpec
from copa.providers.http import iter_sse
from copa.providers.router import provider_for
from copa.tools import ToolSpec
from copa.workstation import Workstation
from tests.agent.fake_servers import (
    PLAIN,
    Answer,
    FakeModelServer,
    Status,
    encode_anthropic,
    encode_gemini,
    encode_openai,
)

WIRE = Path(__file__).parent / "wire"
WIRES = ["openai", "anthropic", "gemini"]
WEATHER = ToolSpec("get_weather", "Current weather for a city",
                   {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                    "required": ["city"]})
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


def load(wire: str, name: str):
    path = WIRE / wire / name
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()


def blocks(wire: str, name: str) -> list[str]:
    """The SSE blocks of a recorded stream, as the server sends them (separators included)."""
    text = load(wire, name)
    sep = "\r\n\r\n" if "\r\n" in text else "\n\n"
    return [b + sep for b in text.split(sep) if b.strip()]


def request() -> ChatRequest:
    return ChatRequest([Message("user", "What's the weather in Paris?")], system="Be brief.", tools=[WEATHER],
                       max_tokens=256)


@pytest.fixture
def ws(monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "1")
    monkeypatch.setenv("COPA_AGENT_READ_TIMEOUT", "5")
    w = Workstation()
    yield w
    w.close()


@pytest.mark.parametrize("wire", WIRES)
def test_copa_sends_the_documented_request(wire):
    """Against the public endpoints (no base_url) copa builds exactly the documented bodies."""
    provider = provider_for(ModelSpec("m", wire, MODELS[wire]), "key", None, 30)
    documented = load(wire, "request.json")
    assert provider.body(request()) == documented
    plain = provider.body(request(), stream=False)
    if wire == "openai":
        assert plain == {**{k: v for k, v in documented.items() if k != "stream_options"}, "stream": False}
    elif wire == "anthropic":
        assert plain == {**documented, "stream": False}
    else:  # the method says it: :generateContent vs :streamGenerateContent?alt=sse
        assert plain == documented
        assert provider.url(stream=False).endswith("/models/gemini-2.5-flash:generateContent")
        assert provider.url().endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def _check(reply, expect) -> None:
    assert reply.text == expect["text"]
    assert [[c.name, c.arguments] for c in reply.tool_calls] == expect["tool_calls"]
    assert all(c.error is None and c.id for c in reply.tool_calls)
    assert [reply.usage.input_tokens, reply.usage.output_tokens] == expect["usage"]
    assert reply.usage.estimated is False and reply.stop_reason == expect["stop"] and not reply.interrupted


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
def test_recorded_answer_replayed(ws, wire, stream):
    """The stream (thinking and pings skipped, tool arguments joined from their pieces) and the plain
    answer give the same reply."""
    expect = load(wire, "expect.json")
    with FakeModelServer(wire) as srv:
        srv.add(Answer(raw_events=blocks(wire, "stream.sse"), raw_json=load(wire, "response.json")))
        srv.configure("m", stream=stream)
        seen = []
        reply = ws.models.chat(request(), "m", on_event=seen.append)
    _check(reply, expect)
    assert srv.requests[0].body.get("stream", stream) is stream
    assert "thought" not in reply.text and "user wants" not in reply.text
    if stream and wire != "gemini":
        assert len([e for e in seen if e.type == "tool_args"]) >= 2  # the pieces were passed on as they came


@pytest.mark.parametrize("wire", WIRES)
def test_recorded_stream_error_is_the_servers_words_and_retried_when_transient(ws, wire):
    expect = load(wire, "expect.json")
    with FakeModelServer(wire) as srv:
        failing = blocks(wire, "stream_error.sse")
        srv.add(Answer(raw_events=failing), Answer(raw_events=failing))
        srv.configure("m")
        with pytest.raises(ProviderError) as caught:
            ws.models.chat(request(), "m")
    assert expect["stream_error"] in caught.value.message and "\n" not in str(caught.value)
    assert "stream ended" not in caught.value.message
    assert len(srv.requests) == (2 if expect["stream_error_retryable"] else 1)  # agent.retries = 1


@pytest.mark.parametrize("wire", WIRES)
def test_recorded_error_bodies(monkeypatch, wire):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "1")
    for n, case in enumerate(load(wire, "errors.json")):
        with FakeModelServer(wire) as srv:
            srv.add(Status(case["status"], body=case["body"]), Status(case["status"], body=case["body"]))
            srv.configure(f"m{n}")
            ws = Workstation()
            ws.models.sleep = lambda seconds: None  # the Retry-After waits are not what is tested here
            try:
                with pytest.raises(ProviderError) as caught:
                    ws.models.chat(request(), f"m{n}")
            finally:
                ws.close()
        said = (case["body"].get("error") or {}).get("message")
        assert said in caught.value.message and f"HTTP {case['status']}" in caught.value.message, case
        assert len(srv.requests) == (2 if case["retryable"] else 1), case
        if "window" in case:
            assert isinstance(caught.value, ContextOverflowError) and caught.value.window == case["window"]


def _final_with(wire: str, reason: str) -> list[tuple[str, str]]:
    """The recorded stream with its stop reason replaced by ``reason``."""
    out = []
    for name, data in iter_sse(load(wire, "stream.sse").splitlines()):
        obj = json.loads(data) if data != "[DONE]" else None
        if wire == "openai" and obj and obj["choices"] and obj["choices"][0]["finish_reason"]:
            obj["choices"][0]["finish_reason"] = reason
        elif wire == "anthropic" and obj and obj["type"] == "message_delta":
            obj["delta"]["stop_reason"] = reason
        elif wire == "gemini" and obj["candidates"][0].get("finishReason"):
            obj["candidates"][0]["finishReason"] = reason
            obj["candidates"][0]["content"]["parts"] = [{"text": "."}]
        out.append((name, json.dumps(obj) if obj is not None else data))
    return out


@pytest.mark.parametrize("wire", WIRES)
def test_every_documented_stop_reason_has_a_name(wire):
    provider = provider_for(ModelSpec("m", wire, MODELS[wire]), None, None, 30)
    for reason, name in load(wire, "expect.json")["stop_reasons"].items():
        stops = [e.text for e in provider.parse(iter(_final_with(wire, reason))) if e.type == "stop" and e.text]
        if wire == "openai" and reason in ("stop", "length", "content_filter"):
            assert stops == [name], reason  # ("tool_calls" is what copa says when calls were made)
        elif wire != "openai":
            assert stops[0] == name or (reason == "STOP" and stops[0] == "end"), (reason, stops)


# --- the loopback servers against the references ---------------------------------------------------

def _keys(obj, prefix=""):
    """Every key path of a JSON value ('choices[].delta.content'), lists collapsed."""
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(prefix + k)
            out |= _keys(v, prefix + k + ".")
    elif isinstance(obj, list):
        for v in obj:
            out |= _keys(v, prefix.rstrip(".") + "[].")
    return out


def _events(wire: str, sse_blocks: list[str]) -> dict[str, set[str]]:
    """Key paths by event kind (Anthropic: the event type; others: the wire's one kind)."""
    found: dict[str, set[str]] = {}
    for _name, data in iter_sse("".join(sse_blocks).replace("\r\n", "\n").splitlines()):
        if data == "[DONE]":
            continue
        obj = json.loads(data)
        kind = obj.get("type", "chunk") if wire == "anthropic" else "chunk"
        found.setdefault(kind, set()).update(_keys(obj))
    return found


ENCODE = {"openai": encode_openai, "anthropic": encode_anthropic, "gemini": encode_gemini}


# What the recordings carry that the loopback servers have no use for: thinking (no fake model thinks).
THINKING = {"content_block.signature", "content_block.thinking", "delta.signature", "delta.thinking",
            "content[].signature", "content[].thinking", "candidates[].content.parts[].thought",
            "usageMetadata.thoughtsTokenCount"}


@pytest.mark.parametrize("wire", WIRES)
def test_loopback_server_streams_the_documented_fields(wire):
    """Every field the reference lists for such an answer, and no other."""
    documented = _events(wire, blocks(wire, "stream.sse"))
    answer = Answer("Let me check.", tool_calls=[("get_weather", {"city": "Paris"})])
    served = _events(wire, ENCODE[wire](answer, MODELS[wire]))
    assert set(served) == set(documented)
    for kind, paths in served.items():
        assert paths == documented[kind] - THINKING, (kind, sorted(paths ^ (documented[kind] - THINKING)))
    if wire == "anthropic":  # and every event type the reference lists for such an answer
        assert {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "ping",
                "message_delta", "message_stop"} <= set(served)
    if wire == "openai":  # the usage chunk, and "usage": null on the others, as include_usage promises
        assert "usage.prompt_tokens_details.cached_tokens" in served["chunk"]


@pytest.mark.parametrize("wire", WIRES)
def test_loopback_server_plain_answers_the_documented_fields(wire):
    answer = Answer("Let me check.", tool_calls=[("get_weather", {"city": "Paris"})])
    served = _keys(PLAIN[wire](answer, MODELS[wire]))
    documented = _keys(load(wire, "response.json")) - THINKING
    assert served == documented, sorted(served ^ documented)


@pytest.mark.parametrize("wire", WIRES)
def test_loopback_server_errors_only_documented_fields(wire):
    from tests.agent.fake_servers import error_body

    documented = set().union(*(_keys(c["body"]) for c in load(wire, "errors.json")))
    for code in (400, 401, 429, 500):
        assert _keys(error_body(wire, code, "x")) <= documented, code


@pytest.mark.parametrize("wire", WIRES)
def test_copa_ask_no_stream_on_every_wire(wire, run_copa):
    with FakeModelServer(wire) as srv:
        srv.add(Answer("A plain answer.", usage=(30, 4)))
        srv.configure("m")
        r = run_copa("ask", "--no-stream", "--json", "hi", input="")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answer"] == "A plain answer." and out["usage"] == {"input_tokens": 30, "output_tokens": 4,
                                                                   "estimated": False}
    req = srv.requests[0]
    if wire == "gemini":
        assert req.path.endswith(":generateContent")
    else:
        assert req.body["stream"] is False and req.headers["accept"] == "application/json"
