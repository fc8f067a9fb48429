"""Providers against real HTTP servers on 127.0.0.1 speaking each wire protocol."""

from __future__ import annotations

import json
import time

import pytest

from copa.errors import ProviderError
from copa.providers import ChatRequest, Message, ToolCall
from copa.tools import ToolSpec
from copa.workstation import Workstation
from tests.agent.fake_servers import Answer, FakeModelServer, Hang, Status

WIRES = ["openai", "anthropic", "gemini"]
RECALL = ToolSpec("recall", "Search memory", {"type": "object", "properties": {"query": {"type": "string"}},
                                              "required": ["query"], "additionalProperties": False})


@pytest.fixture
def ws(monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "1")
    monkeypatch.setenv("COPA_AGENT_READ_TIMEOUT", "2")
    w = Workstation()
    yield w
    w.close()


def _server(wire, **kw):
    return FakeModelServer(wire, **kw).start()


@pytest.mark.parametrize("wire", WIRES)
def test_streamed_answer_usage_and_request_shape(ws, wire, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-test-123456789012345")
    with FakeModelServer(wire) as srv:
        srv.add(Answer("Paris is the capital of France.", chunk=3, usage=(21, 9)))
        srv.configure("m", key="FAKE_KEY")
        events = []
        reply = ws.models.chat(ChatRequest([Message("user", "capital of France?")], system="Be brief."), "m",
                               on_event=events.append)
    assert reply.text == "Paris is the capital of France."
    assert not reply.interrupted and reply.stop_reason == "end" and reply.model == "m"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (21, 9)
    assert len([e for e in events if e.type == "text"]) >= 10  # really streamed in pieces
    req = srv.requests[0]
    body = req.text()
    assert "capital of France?" in body and "Be brief." in body
    if wire == "openai":
        assert req.path == "/v1/chat/completions" and req.headers["authorization"] == "Bearer sk-test-123456789012345"
        assert req.body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert req.body["stream"] is True and req.body["model"] == "fake-model"
    elif wire == "anthropic":
        assert req.path == "/v1/messages" and req.headers["x-api-key"] == "sk-test-123456789012345"
        assert req.headers["anthropic-version"] and req.body["system"] == "Be brief."
        assert req.body["max_tokens"] == 4096
    else:
        assert req.path == "/v1beta/models/fake-model:streamGenerateContent?alt=sse"
        assert req.headers["x-goog-api-key"] == "sk-test-123456789012345"
        assert req.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


@pytest.mark.parametrize("wire", WIRES)
def test_tool_call_arguments_split_over_many_chunks(ws, wire):
    args = {"query": "where does the user live, and since when?", "limit": 3, "nested": {"a": [1, 2]}}
    with FakeModelServer(wire) as srv:
        srv.add(Answer("Let me check.", tool_calls=[("recall", args), ("recall", {"query": "x"})], arg_chunk=2))
        srv.configure("m")
        starts = []
        reply = ws.models.chat(ChatRequest([Message("user", "hi")], tools=[RECALL]), "m",
                               on_event=lambda e: starts.append(e) if e.type == "tool_args" else None)
    assert reply.stop_reason == "tool_use"
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("recall", args), ("recall", {"query": "x"})]
    assert all(c.error is None and c.id for c in reply.tool_calls)
    if wire != "gemini":  # Gemini sends whole functionCall objects
        assert len(starts) > 20
    body = srv.requests[0].body
    if wire == "openai":
        assert body["tools"][0]["function"]["name"] == "recall"
    elif wire == "anthropic":
        assert body["tools"][0]["input_schema"]["required"] == ["query"]
    else:
        decl = body["tools"][0]["functionDeclarations"][0]
        assert decl["name"] == "recall" and "additionalProperties" not in decl["parameters"]


@pytest.mark.parametrize("wire", WIRES)
def test_tool_round_trip_history_in_wire_format(ws, wire):
    call = ToolCall("call_7", "recall", {"query": "city"})
    history = [Message("user", "where do I live?"), Message("assistant", "", tool_calls=[call]),
               Message("tool", json.dumps({"ok": True, "content": "Lyon"}), tool_call_id="call_7", name="recall")]
    with FakeModelServer(wire) as srv:
        srv.add(Answer("You live in Lyon."))
        srv.configure("m")
        reply = ws.models.chat(ChatRequest(history, tools=[RECALL]), "m")
    assert reply.text == "You live in Lyon."
    body = srv.requests[0].body
    if wire == "openai":
        msgs = body["messages"]
        assert msgs[1]["tool_calls"][0]["function"] == {"name": "recall", "arguments": '{"query": "city"}'}
        assert msgs[2] == {"role": "tool", "tool_call_id": "call_7", "content": '{"ok": true, "content": "Lyon"}'}
    elif wire == "anthropic":
        msgs = body["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
        assert msgs[1]["content"][0] == {"type": "tool_use", "id": "call_7", "name": "recall",
                                         "input": {"query": "city"}}
        assert msgs[2]["content"][0]["type"] == "tool_result" and msgs[2]["content"][0]["tool_use_id"] == "call_7"
    else:
        contents = body["contents"]
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        assert contents[1]["parts"][0] == {"functionCall": {"name": "recall", "args": {"query": "city"}}}
        assert contents[2]["parts"][0]["functionResponse"]["response"] == {"ok": True, "content": "Lyon"}


@pytest.mark.parametrize("wire", WIRES)
def test_429_then_success_honours_retry_after(ws, wire):
    with FakeModelServer(wire) as srv:
        srv.add(Status(429, "slow down", retry_after="1"), Answer("ok now"))
        srv.configure("m")
        events = []
        t0 = time.monotonic()
        reply = ws.models.chat(ChatRequest([Message("user", "hi")]), "m", on_event=events.append)
        elapsed = time.monotonic() - t0
    assert reply.text == "ok now" and len(srv.requests) == 2
    retry = [e for e in events if e.type == "retry"]
    assert len(retry) == 1 and retry[0].data["delay"] == 1.0 and "HTTP 429" in retry[0].data["reason"]
    assert elapsed >= 0.95  # the server's Retry-After was waited out
    assert reply.failures and "rate limiting" in reply.failures[0]


def test_500_then_fallback_to_next_model_on_another_wire(ws, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    with FakeModelServer("openai") as bad, FakeModelServer("anthropic") as good:
        bad.add(Status(500, "internal kaboom"))
        good.add(Answer("from the fallback"))
        bad.configure("primary")
        good.configure("backup")
        monkeypatch.setenv("COPA_AGENT_FALLBACK", "backup")
        events = []
        reply = Workstation().models.chat(ChatRequest([Message("user", "hi")]), "primary", on_event=events.append)
    assert reply.text == "from the fallback" and reply.model == "backup"
    assert "internal kaboom" in reply.failures[0] and "HTTP 500" in reply.failures[0]
    fb = [e for e in events if e.type == "fallback"]
    assert fb and fb[0].name == "backup"


def test_every_model_failing_names_provider_model_and_fix(ws, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    with FakeModelServer("openai") as srv:
        srv.add(Status(503, "overloaded"))
        srv.configure("only")
        with pytest.raises(ProviderError) as e:
            ws.models.chat(ChatRequest([Message("user", "hi")]), "only")
    msg = str(e.value)
    assert "openai model fake-model ('only')" in msg and "HTTP 503" in msg and "agent.fallback" in msg


@pytest.mark.parametrize("wire", WIRES)
def test_malformed_event_is_skipped_and_answer_completes(ws, wire):
    with FakeModelServer(wire) as srv:
        srv.add(Answer("abcdefghijkl", chunk=2, malformed_at=3))
        srv.configure("m")
        reply = ws.models.chat(ChatRequest([Message("user", "hi")]), "m")
    assert reply.text == "abcdefghijkl" and not reply.interrupted


@pytest.mark.parametrize("wire", WIRES)
def test_connection_dropped_mid_stream_keeps_partial_answer(ws, wire):
    full = "The first part arrives, the rest never does."
    with FakeModelServer(wire) as srv:
        srv.add(Answer(full, chunk=5, drop_after=5))
        srv.configure("m")
        shown = []
        reply = ws.models.chat(ChatRequest([Message("user", "hi")]), "m",
                               on_event=lambda e: shown.append(e.text) if e.type == "text" else None)
    assert reply.interrupted and reply.stop_reason == "broken"
    assert reply.text and full.startswith(reply.text) and reply.text != full
    assert "".join(shown) == reply.text
    assert len(srv.requests) == 1  # no retry once text was shown
    assert "fake-model" in reply.error


def test_stream_that_stalls_mid_answer_times_out_with_partial(ws, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_READ_TIMEOUT", "0.5")
    with FakeModelServer("openai") as srv:
        srv.add(Answer("partial then silence", chunk=4, hang_after=3))
        srv.configure("m")
        reply = Workstation().models.chat(ChatRequest([Message("user", "hi")]), "m")
    assert reply.interrupted and reply.text and "partial then silence".startswith(reply.text)


@pytest.mark.parametrize("wire", WIRES)
def test_server_that_never_answers_times_out(wire, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("COPA_AGENT_RETRIES", "1")
    ws = Workstation()
    with FakeModelServer(wire) as srv:
        srv.add(Hang(), Hang())
        srv.configure("m")
        t0 = time.monotonic()
        with pytest.raises(ProviderError) as e:
            ws.models.chat(ChatRequest([Message("user", "hi")]), "m")
        elapsed = time.monotonic() - t0
    assert "no answer from" in str(e.value) and "fake-model" in str(e.value) and "agent.read_timeout" in str(e.value)
    assert len(srv.requests) == 2 and elapsed < 10


def test_nothing_listening_says_cannot_connect(ws):
    srv = FakeModelServer("openai").start()
    srv.configure("m")
    srv.stop()  # the port is now closed
    with pytest.raises(ProviderError) as e:
        ws.models.chat(ChatRequest([Message("user", "hi")]), "m", retries=0)
    assert "cannot connect" in str(e.value) and "copa models test" in str(e.value)


def test_bad_key_names_the_secret_to_fix(ws, monkeypatch):
    monkeypatch.setenv("MY_KEY", "wrong-key-value")
    with FakeModelServer("anthropic") as srv:
        srv.add(Status(401, "invalid x-api-key"))
        srv.configure("claude", key="MY_KEY")
        with pytest.raises(ProviderError) as e:
            ws.models.chat(ChatRequest([Message("user", "hi")]), "claude")
    assert "refused the key (HTTP 401)" in str(e.value) and "copa secrets set MY_KEY" in str(e.value)
    assert len(srv.requests) == 1  # auth failures are not retried


def test_anthropic_overloaded_error_event_before_content_is_retried(ws):
    overloaded = ['event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3}}}\n\n',
                  'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n']
    with FakeModelServer("anthropic") as srv:
        srv.add(Answer(raw_events=overloaded), Answer("second time lucky"))
        srv.configure("m")
        reply = ws.models.chat(ChatRequest([Message("user", "hi")]), "m")
    assert reply.text == "second time lucky" and "Overloaded" in reply.failures[0]


def test_zero_config_from_openai_environment(monkeypatch):
    with FakeModelServer("openai", model="gpt-4o-mini") as srv:
        srv.add(Answer("zero config works"))
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-envkey-abcdefghijklmnop")
        ws = Workstation()
        assert ws.models.default_name() == "openai"
        reply = ws.models.chat(ChatRequest([Message("user", "hi")]))
    assert reply.text == "zero config works"
    assert srv.requests[0].headers["authorization"] == "Bearer sk-envkey-abcdefghijklmnop"
    assert srv.requests[0].body["model"] == "gpt-4o-mini"


def test_zero_config_ollama_asks_the_server_for_its_models(monkeypatch):
    with FakeModelServer("openai", model="llama3.2:1b") as srv:
        srv.add(Answer("hi from ollama"))
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{srv.port}")
        ws = Workstation()
        reply = ws.models.chat(ChatRequest([Message("user", "hi")]))
    assert reply.text == "hi from ollama" and srv.requests[0].body["model"] == "llama3.2:1b"
    assert "authorization" not in srv.requests[0].headers


def test_provider_model_spec_on_the_fly(monkeypatch):
    with FakeModelServer("anthropic", model="claude-x") as srv:
        srv.add(Answer("spec works"))
        monkeypatch.setenv("ANTHROPIC_API_KEY", "k-abcdefgh")
        srv.configure("a", model="claude-x")
        ws = Workstation()
        spec = ws.models.get("anthropic:claude-x")
        assert spec.provider == "anthropic" and spec.model == "claude-x" and spec.key == "ANTHROPIC_API_KEY"
        assert ws.models.chat(ChatRequest([Message("user", "hi")]), "a").text == "spec works"


def test_ctrl_c_during_stream_keeps_partial_answer(ws):
    with FakeModelServer("openai") as srv:
        srv.add(Answer("one two three four five", chunk=4, delay=0.02))
        srv.configure("m")
        seen = []

        def on_event(e):
            if e.type == "text":
                seen.append(e.text)
                if len(seen) == 2:
                    raise KeyboardInterrupt

        reply = ws.models.chat(ChatRequest([Message("user", "hi")]), "m", on_event=on_event)
    assert reply.interrupted and reply.stop_reason == "cancelled" and reply.text == "".join(seen)


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_prompt_level_tool_protocol(ws, wire):
    answer = 'I will look that up.\n<tool_call>{"name": "recall", "arguments": {"query": "home city"}}</tool_call>'
    with FakeModelServer(wire) as srv:
        srv.add(Answer(answer, chunk=3))
        srv.configure("small", tool_mode="prompt")
        shown = []
        reply = ws.models.chat(ChatRequest([Message("user", "where do I live?")], tools=[RECALL]), "small",
                               on_event=lambda e: shown.append(e.text) if e.type == "text" else None)
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("recall", {"query": "home city"})]
    assert reply.stop_reason == "tool_use"
    assert "<tool_call" not in "".join(shown) and "".join(shown).strip() == "I will look that up."
    body = srv.requests[0].body
    assert "tools" not in body and "<tool_call>" in json.dumps(body) and "recall" in json.dumps(body)


def test_zero_config_finds_a_local_ollama_on_its_default_port():
    try:
        srv = FakeModelServer("openai", model="qwen2.5:0.5b", port=11434).start()
    except OSError:
        pytest.skip("port 11434 is taken on this machine (a real Ollama?), cannot stand in for it")
    try:
        srv.add(Answer("local hello"))
        ws = Workstation()
        assert ws.models.default_name() == "ollama"
        assert ws.models.chat(ChatRequest([Message("user", "hi")])).text == "local hello"
        assert srv.requests[-1].body["model"] == "qwen2.5:0.5b"
    finally:
        srv.stop()


def test_role_names_default_and_fast(monkeypatch):
    with FakeModelServer("openai", model="big") as big, FakeModelServer("gemini", model="small") as small:
        big.configure("big")
        small.configure("small")
        monkeypatch.setenv("COPA_AGENT_FAST_MODEL", "small")
        small.add(Answer("fast answer"))
        ws = Workstation()
        assert ws.models.get("default").name == "big" and ws.models.get("fast").name == "small"
        assert ws.models.chat(ChatRequest([Message("user", "hi")]), "fast").text == "fast answer"
