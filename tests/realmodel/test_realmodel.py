"""copa end to end against a model that really generates (see conftest.py). Assertions hold for any
model: they are about what copa sent, showed, stored and reported, never about what the model said."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.realmodel.conftest import N_CTX

pytestmark = pytest.mark.realmodel
TIMEOUT = 300  # seconds for one copa command on a loaded machine


def copa(*args: str, input: str = "", timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "copa", *args], input=input, capture_output=True, text=True,
                          env=dict(os.environ), timeout=timeout)


def server_log(n_lines: int, seed: int = 7) -> str:
    """A server log as pasted into a terminal: timestamps, ids, numbers (about 30 tokens a line)."""
    rnd = random.Random(seed)
    lines = []
    for i in range(n_lines):
        level = "ERROR" if i % 97 == 13 else "INFO"
        lines.append(f"2026-12-06 14:{i // 60 % 60:02d}:{i % 60:02d},{rnd.randrange(1000):03d} {level} "
                     f"[worker-{rnd.randrange(8)}] GET /api/v1/items/{rnd.randrange(10**6)} -> "
                     f"{500 if level == 'ERROR' else 200} in {rnd.randrange(900)} ms")
    return "\n".join(lines) + "\n"


def test_ask_streams_real_tokens_to_stdout(local):
    """The answer reaches stdout in pieces while the model generates, not all at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "copa", "ask", "Describe the sea in three sentences."],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reads: list[tuple[float, bytes]] = []
    while True:
        piece = os.read(proc.stdout.fileno(), 4096)
        if not piece:
            break
        reads.append((time.monotonic(), piece))
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=TIMEOUT) == 0, err
    printed = b"".join(p for _, p in reads).decode()
    assert printed.strip(), "no answer printed"
    assert len(reads) >= 2 and reads[-1][0] - reads[0][0] > 0.05, "the answer arrived in one piece"
    (chat,) = local.chats()
    assert chat.body["stream"] is True and chat.status == 200 and chat.chunks >= 3


def test_json_reports_server_usage_or_an_estimate_marked_as_such(local):
    r = copa("ask", "--json", "Name one planet.")
    assert r.returncode == 0, r.stderr
    streamed = json.loads(r.stdout)
    # llama.cpp states no usage in a stream (even with stream_options.include_usage): copa counts
    assert b'"usage"' not in local.chats()[0].response or b'"usage": null' in local.chats()[0].response
    assert streamed["usage"]["estimated"] is True and streamed["usage"]["input_tokens"] > 20
    assert streamed["usage"]["output_tokens"] > 0 and streamed["answer"].strip()

    local.clear()
    r = copa("ask", "--json", "--no-stream", "Name one planet.")
    assert r.returncode == 0, r.stderr
    plain = json.loads(r.stdout)
    (chat,) = local.chats()
    assert chat.body["stream"] is False and "stream_options" not in chat.body
    said = chat.answer()["usage"]  # a plain answer carries the server's own count
    assert plain["usage"] == {"input_tokens": said["prompt_tokens"], "output_tokens": said["completion_tokens"],
                              "estimated": False}
    # The estimate errs on the high side of the server's count, not wildly (same prompt but for the
    # time of day). It counts the tool schemas copa sent, which SmolLM2's chat template leaves out.
    messages = streamed["usage"]["input_tokens"] - streamed["context"]["spent"]["tools"]
    assert 0.9 * said["prompt_tokens"] <= messages <= 1.6 * said["prompt_tokens"]


def test_server_error_is_shown_as_said_on_one_line_and_not_retried(local, monkeypatch):
    monkeypatch.setenv("LOCAL_KEY", "not-the-key")
    r = copa("ask", "Name one planet.")
    assert r.returncode == 4 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "HTTP 401" in lines[0] and "Invalid API key" in lines[0]  # llama-cpp-python's own words
    assert "stream ended" not in lines[0] and "retrying" not in r.stderr
    assert len(local.chats()) == 1  # a refused key is not retried


def test_a_request_longer_than_the_window_gets_the_servers_words_and_no_retry(local, copa_home):
    """In-process, below the agent: the router alone, with a request it cannot fit."""
    from copa.errors import ContextOverflowError
    from copa.providers import ChatRequest, Message
    from copa.workstation import Workstation

    ws = Workstation()
    try:
        with pytest.raises(ContextOverflowError) as caught:
            ws.models.chat(ChatRequest([Message("user", server_log(400))]), "local")
        assert caught.value.window == N_CTX
        assert f"maximum context length is {N_CTX} tokens" in caught.value.message  # the server's words
        assert "\n" not in str(caught.value)
        # llama-cpp-python hangs up on the stream without a word; copa asks once without streaming
        # to hear why, and does not retry a request that cannot fit.
        assert [c.body["stream"] for c in local.chats()] == [True, False]
        assert local.chats()[1].status == 400
        assert ws.models.window("local") == (N_CTX, "server")  # learned, and remembered for next time
    finally:
        ws.close()
    learned = json.loads((copa_home / "cache" / "model-windows.json").read_text())
    assert [v["window"] for v in learned.values()] == [N_CTX]


def _fill(copa_home: Path, memories: int, turns: int) -> str:
    """``memories`` memories (facts and preferences, some about logs) and a session of ``turns`` turns."""
    from copa.workstation import Workstation

    ws = Workstation()
    try:
        rnd = random.Random(3)
        topics = ["server", "garden", "bike", "sister", "budget", "piano", "car", "holiday", "diet", "office"]
        records = [{"text": f"The user's {rnd.choice(topics)} note {i}: " + " ".join(
            rnd.choice(["remember", "the", "worker", "error", "blue", "Tuesday", "log", "rotation", "alert"])
            for _ in range(12)), "kind": "preference" if i % 25 == 0 else "fact",
            "subject": f"user.note{i}"} for i in range(memories)]
        ws.memory.add_many(records)
        for i in range(turns):
            ws.memory.add_turn("long", "user" if i % 2 == 0 else "assistant",
                               f"Turn {i}: " + " ".join(rnd.choice(topics) for _ in range(60)))
    finally:
        ws.close()
    return "long"


def test_everything_at_once_fits_the_window(local, copa_home):
    """500 memories, a long session, a pasted 5,000-token log and every skill offered, with the window
    from models.NAME.context_window (llama-cpp-python does not state it unless refusing): no request
    is refused for length, and the cut is said."""
    from copa.config import set_value
    from copa.paths import Paths
    from copa.providers.tokens import estimate_tokens

    set_value(Paths.from_env(), "models.local.context_window", N_CTX)
    session = _fill(copa_home, memories=500, turns=40)
    log = server_log(170)
    assert estimate_tokens(log) >= 5000
    r = copa("ask", "--json", "--session", session, "What went wrong in this log?", input=log)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answer"].strip() and out["error"] is None
    assert "copa: note: the piped input is about" in r.stderr and "beginning and end" in r.stderr
    assert out["context"]["window"] == N_CTX and out["context"]["window_from"] == "config"
    chats = local.chats()
    assert chats and all(c.status == 200 and c.body["stream"] for c in chats), [c.status for c in chats]
    shown = chats[-1].body["messages"][-1]["content"]
    first, last = log.splitlines()[0], log.splitlines()[-1]
    assert first in shown and last in shown and "[... copa left out" in shown  # its ends, and the marker
    assert out["context"]["prompt_tokens"] <= N_CTX - out["context"]["answer_tokens"]
    assert out["context"]["spent"]["history"] > 0 and out["context"]["spent"].get("recall", 0) > 0


def test_the_window_learned_from_a_refusal_is_used_and_kept(local, copa_home):
    """No window configured: the first over-long request is refused, copa learns the window the server
    stated, fits the turn and answers; the next run knows the window and nothing is refused."""
    r = copa("ask", "--json", "What went wrong in this log?", input=server_log(170))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answer"].strip() and out["context"]["window"] == N_CTX
    statuses = [c.status for c in local.chats()]
    assert statuses.count(400) == 1 and statuses[-1] == 200, statuses
    from copa.workstation import Workstation

    ws = Workstation()  # the next run knows it from the start (no request is refused again)
    try:
        assert ws.models.window("local") == (N_CTX, "server")
    finally:
        ws.close()


def test_recall_is_in_the_request_for_a_model_that_never_calls_tools(local, copa_home):
    from copa.workstation import Workstation

    ws = Workstation()
    try:
        ws.memory.add("The user's bike lock code is 4312.", kind="fact", subject="user.bike_lock")
        ws.memory.add("The user's sister lives in Ghent.", kind="fact", subject="user.sister_city")
    finally:
        ws.close()
    r = copa("ask", "--json", "What did I tell you about my bike lock?")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["tool_calls"] == []  # SmolLM2 through llama.cpp's template never calls a tool...
    (chat,) = local.chats()
    assert "The user's bike lock code is 4312." in chat.body["messages"][0]["content"]  # ...and needs none
    assert any(m["subject"] == "user.bike_lock" for m in out["memories_used"])


def test_prompt_level_tool_protocol_never_leaks_markup(local, copa_home):
    """tool_mode = prompt with a model that may or may not follow it: each turn ends cleanly, tool-call
    markup never reaches the user, and what the model did call ran. (The success rate is measured by
    benchmarks/agent_real.py.)"""
    from copa.config import set_value
    from copa.paths import Paths

    set_value(Paths.from_env(), "models.local.tool_mode", "prompt")
    set_value(Paths.from_env(), "models.local.context_window", N_CTX)
    set_value(Paths.from_env(), "agent.max_tool_steps", 1)  # one round of tools at most: keeps it quick
    r = copa("ask", "--json", "Remember that my favourite colour is green.")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    system = local.chats()[0].body["messages"][0]["content"]
    assert "<tool_call>" in system and '"name": "TOOL_NAME"' in system and "tools" not in local.chats()[0].body
    assert "<tool_call>" not in out["answer"] and "</tool_call>" not in out["answer"]
    for call in out["tool_calls"]:  # what was parsed was run (or refused with a reason the model saw)
        assert "ok" in call and ("result" in call or "error" in call)


def test_ctrl_c_mid_generation_keeps_the_partial_answer(local, copa_home):
    from copa.config import set_value
    from copa.paths import Paths

    set_value(Paths.from_env(), "models.local.max_tokens", 400)
    proc = subprocess.Popen([sys.executable, "-m", "copa", "ask", "--session", "cc",
                             "Write a long story about a lighthouse keeper."],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = os.read(proc.stdout.fileno(), 64)  # the model has started answering
    assert first, proc.stderr.read().decode()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted; the partial answer was kept" in err
    printed = (first + rest).decode().strip()
    con = sqlite3.connect(copa_home / "data" / "copa.db")
    text, meta = con.execute("SELECT text, metadata FROM memories WHERE session_id = 'cc' AND role = 'assistant'"
                             ).fetchone()
    con.close()
    assert json.loads(meta)["interrupted"] is True
    assert text.strip() and printed.startswith(text.strip()[:20])


def test_models_test_reports_first_token_time_and_speed(local):
    r = copa("models", "test", "local", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["streamed"] is True
    assert 0 < report["first_token_ms"] < report["latency_ms"]
    assert report["tokens_per_s"] > 0 and report["usage"]["estimated"] is True
    r = copa("models", "test", "local")
    assert r.returncode == 0 and "first token" in r.stdout and "tokens/s" in r.stdout


def test_no_stream_option_per_model_in_config(local):
    from copa.config import set_value
    from copa.paths import Paths

    set_value(Paths.from_env(), "models.local.stream", False)
    r = copa("ask", "Name one colour.")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    (chat,) = local.chats()
    assert chat.body["stream"] is False and chat.status == 200
