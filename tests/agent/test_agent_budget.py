"""Fitting a turn into the model's window, and learning the window: the pure parts, then the agent
against the loopback servers (tests/realmodel does the same against a real llama.cpp server)."""

from __future__ import annotations

import json

import pytest

from copa.errors import ContextOverflowError
from copa.providers import ChatRequest, Message
from copa.providers.http import context_overflow
from copa.providers.tokens import estimate_request, estimate_tokens, fit_text
from copa.providers.windows import from_models, from_props, is_local
from copa.workstation import Workstation
from tests.agent.fake_servers import Answer, FakeModelServer, Status, encode_openai

LOG = "".join(f"2026-12-06 14:{i % 60:02d}:{i % 60:02d},{i % 1000:03d} INFO [w-{i % 7}] GET /items/{i * 7919} "
              f"-> 200 in {i % 300} ms\n" for i in range(400))


def test_estimate_counts_digits_and_punctuation_not_just_characters():
    assert estimate_tokens("") == 0
    assert estimate_tokens("1234567890") >= 10  # SmolLM2 / Llama 2 tokenizers: one token per digit
    prose = "The quick brown fox jumps over the lazy dog. " * 20
    assert len(prose) / 5 < estimate_tokens(prose) < len(prose) / 3
    assert estimate_tokens(LOG) > len(LOG) / 2.2  # a log costs far more than characters / 4


def test_fit_text_keeps_both_ends_and_says_what_it_left_out():
    text, dropped = fit_text(LOG, 300, what="piped input")
    lines = LOG.splitlines()
    assert text.startswith(lines[0]) and text.rstrip().endswith(lines[-1])
    assert "[... copa left out" in text and "lines of this piped input" in text
    assert estimate_tokens(text) <= 300 and dropped > 0
    assert fit_text("short", 300) == ("short", 0)
    one_line, _ = fit_text("x" * 50_000, 100)  # no lines to cut at
    assert estimate_tokens(one_line) <= 100 and "characters of this text" in one_line


@pytest.mark.parametrize(("message", "window"), [
    ("Requested tokens (4547) exceed context window of 2048", 2048),
    ("This model's maximum context length is 2048 tokens. However, you requested 4547 tokens", 2048),
    ('{"code": 400, "message": "the request exceeds the available context size", "type": '
     '"exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}', 4096),
    ("prompt is too long: 210000 tokens > 200000 maximum", 200000),
    ("The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", 1048576),
    ("context_length_exceeded", 0),
    ("Rate limit reached", None),
])
def test_context_overflow_messages_of_the_servers_people_run(message, window):
    assert context_overflow(message) == window


def test_windows_servers_state_when_asked():
    assert from_props({"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1}) == 4096  # llama.cpp
    assert from_models({"data": [{"id": "qwen", "max_model_len": 32768}]}, "qwen") == 32768  # vLLM
    assert from_models({"data": [{"id": "a", "loaded_context_length": 8192}]}, "other") == 8192  # the only one
    assert from_models({"data": [{"id": "x", "object": "model", "owned_by": "me"}]}, "x") is None  # llama-cpp-python
    assert from_props({"detail": "Not Found"}) is None
    assert is_local("http://127.0.0.1:8080/v1") and is_local("http://192.168.1.20:11434/v1")
    assert is_local("http://gpu-box.local:8000/v1") and not is_local("https://api.openai.com/v1")


@pytest.fixture
def ws(monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    w = Workstation()
    yield w
    w.close()


def test_a_turn_fits_a_small_window_and_says_what_it_cut(ws):
    with FakeModelServer("openai") as srv:
        srv.add(Answer("It looks fine."))
        srv.configure("small", context_window=1024, max_tokens=128)
        notes = []
        result = ws.agent.run_turn(f"What went wrong?\n\n<input>\n{LOG}</input>", model="small",
                                   on_event=lambda e: notes.append(e.text) if e.type == "notice" else None)
    body = srv.requests[0].body
    sent = ChatRequest([Message(m["role"], m["content"]) for m in body["messages"][1:]],
                       system=body["messages"][0]["content"])
    assert estimate_request(sent) + 128 <= 1024  # the whole request and the answer fit
    assert body["max_tokens"] == 128  # asked for no more than the room kept for the answer
    user = body["messages"][-1]["content"]
    assert user.startswith("What went wrong?") and "[... copa left out" in user and user.endswith("</input>")
    assert any("piped input" in n and "1024-token context window" in n for n in notes)
    assert any("tools were not offered" in n for n in notes)
    assert result.context["window"] == 1024 and result.context["window_from"] == "config"
    assert {t["function"]["name"] for t in body.get("tools", [])} <= {"remember", "recall", "forget", "task_update"}


def test_a_large_window_sends_everything_and_no_max_tokens(ws):
    with FakeModelServer("openai") as srv:
        srv.add(Answer("ok"))
        srv.configure("big", context_window=200_000)
        result = ws.agent.run_turn(f"What went wrong?\n\n<input>\n{LOG}</input>", model="big")
    body = srv.requests[0].body
    assert LOG.strip() in body["messages"][-1]["content"] and "max_tokens" not in body
    assert result.context["notes"] == []


def test_an_empty_stream_is_asked_again_plainly_and_the_stated_window_is_learned(ws, copa_home):
    """What llama-cpp-python does with a request longer than its window: a stream that ends without a
    word; the same request without streaming gets a 400 stating the window; copa fits the turn into
    it, asks again, and remembers the window for the next runs."""
    refusal = {"error": {"message": "This model's maximum context length is 2048 tokens. However, you requested "
                                    "9000 tokens (9000 in the messages, None in the completion).",
                         "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    with FakeModelServer("openai") as srv:
        srv.add(Answer(raw_events=[]), Status(400, body=refusal), Answer("Fitted."))
        srv.configure("local")  # no window configured: a loopback OpenAI server is assumed to have 8192
        result = ws.agent.run_turn(f"Summarise\n\n<input>\n{LOG * 3}</input>", model="local")
    assert result.text == "Fitted." and result.context["window"] == 2048
    assert [r.body["stream"] for r in srv.requests] == [True, False, True]
    assert len(json.dumps(srv.requests[2].body)) < len(json.dumps(srv.requests[0].body)) / 2
    assert ws.models.window("local") == (2048, "server")
    learned = json.loads((copa_home / "cache" / "model-windows.json").read_text())
    assert [v["window"] for v in learned.values()] == [2048]


def test_an_overflow_the_router_cannot_fit_is_one_error_in_the_servers_words(ws):
    refusal = {"error": {"message": "This model's maximum context length is 2048 tokens.", "type":
                         "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    with FakeModelServer("openai") as srv:
        srv.add(Status(400, body=refusal), Status(400, body=refusal))
        srv.configure("local", stream=False)
        with pytest.raises(ContextOverflowError) as caught:
            ws.models.chat(ChatRequest([Message("user", LOG)]), "local", retries=2)
    assert "maximum context length is 2048 tokens" in caught.value.message and caught.value.window == 2048
    assert len(srv.requests) == 1  # not retried: the same request cannot fit the next time either


def test_usage_is_estimated_and_marked_when_the_server_states_none(ws):
    with FakeModelServer("openai") as srv:
        srv.add(Answer(raw_events=encode_openai(Answer("Four words of answer."), "m", include_usage=False)))
        srv.configure("m")
        reply = ws.models.chat(ChatRequest([Message("user", "How are you today?")], system="Be brief."), "m")
    assert reply.usage.estimated is True
    assert reply.usage.output_tokens == estimate_tokens("Four words of answer.")
    assert reply.usage.input_tokens >= estimate_tokens("How are you today?") + estimate_tokens("Be brief.")
