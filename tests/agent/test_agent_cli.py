"""`copa ask` and `copa models` as a user runs them: real subprocesses, a real loopback model server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.agent.fake_servers import Answer, FakeModelServer, Status


def system_of(req) -> str:
    msgs = req.body["messages"]
    return msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else ""


@pytest.fixture
def srv():
    with FakeModelServer("openai") as s:
        s.configure("fake")
        yield s


def test_help_does_not_import_httpx():
    code = ("import sys; from copa.cli.main import main\n"
            "for args in (['ask', '--help'], ['models', '--help'], ['models', 'add', '--help']):\n"
            "    assert main(args) == 0\n"
            "bad = [m for m in ('httpx', 'sqlite_utils', 'textual', 'keyring') if m in sys.modules]\n"
            "print('IMPORTED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "IMPORTED []" in out.stdout and "--continue" in out.stdout and "--tool-mode" in out.stdout


def test_an_answer_over_plain_http_needs_no_sqlite_utils_and_no_certificates(srv, run_copa):
    """The hot path of a one-shot question: the board registry reads the database through a plain
    connection (sqlite-utils costs ~50 ms to import; only a pending migration needs it, as in the
    first command of a new home), a plain-http server needs no CA bundle (~16 ms) and, with no board
    paired, the board protocol is not imported (~15 ms: its enums, frames and codec)."""
    srv.add(Answer("First."))
    srv.add(Answer("Sure."))
    assert run_copa("ask", "--no-memory", "hello").returncode == 0  # the first command migrates
    code = ("import ssl, sys\n"
            "bundles = []\n"
            "real = ssl.SSLContext.load_verify_locations\n"
            "ssl.SSLContext.load_verify_locations = lambda self, *a, **k: (bundles.append(1), real(self, *a, **k))[1]\n"
            "from copa.cli.main import main\n"
            "assert main(['ask', '--no-memory', 'hi']) == 0\n"
            "watched = ('sqlite_utils', 'numpy', 'copa.device.protocol')\n"
            "print('\\nIMPORTED', [m for m in watched if sys.modules.get(m)],\n"
            "      'BUNDLES', len(bundles))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COPA_MEMORY_EMBEDDINGS": "off"})
    assert out.returncode == 0, out.stderr
    assert "Sure." in out.stdout and "IMPORTED [] BUNDLES 0" in out.stdout
    assert srv.requests[-1].body["messages"][-1]["content"] == "hi"


def test_no_model_configured_one_line_says_how(run_copa):
    r = run_copa("ask", "hello", input="")
    assert r.returncode == 3 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no model is configured" in lines[0] and "copa models add" in lines[0]
    assert run_copa("memory", "list", input="").returncode == 0  # commands that need no model still work


def test_answer_streams_to_stdout_and_turns_are_stored(srv, run_copa):
    srv.add(Answer("Bonjour! Paris is lovely.", chunk=2))
    r = run_copa("ask", "Say", "hello", input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Bonjour! Paris is lovely.\n"
    assert srv.requests[0].body["messages"][-1]["content"] == "Say hello"


def test_stdin_is_put_in_the_prompt(srv, run_copa):
    srv.add(Answer("It is a shopping list."))
    r = run_copa("ask", "summarise", input="eggs\nflour\nmilk\n")
    assert r.returncode == 0, r.stderr
    content = srv.requests[0].body["messages"][-1]["content"]
    assert content.startswith("summarise") and "eggs\nflour\nmilk" in content
    srv.add(Answer("ok"))
    assert run_copa("ask", input="only piped text\n").returncode == 0
    assert srv.requests[1].body["messages"][-1]["content"] == "only piped text"


def test_json_output_and_continue_and_named_session(srv, run_copa):
    srv.add(Answer("First.", tool_calls=[("remember", {"text": "The user's dog is Rex.", "subject": "user.dog"})]),
            Answer("Saved."), Answer("Rex."), Answer("Still Rex."))
    r = run_copa("ask", "--json", "--session", "dogs", "My dog is Rex.", input="")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answer"] == "First.\n\nSaved." and out["session_id"] == "dogs" and out["model"] == "fake"
    assert out["tool_calls"][0]["name"] == "remember" and out["tool_calls"][0]["ok"] is True
    assert out["usage"] == {"input_tokens": 24, "output_tokens": 14, "estimated": False}  # the server said
    assert out["timing"]["total_ms"] > 0 and out["context"]["window"] == 8192
    r = run_copa("ask", "--continue", "--json", "What is my dog called?", input="")
    out = json.loads(r.stdout)
    assert out["session_id"] == "dogs" and any(m["text"] == "The user's dog is Rex." for m in out["memories_used"])
    history = [m["content"] for m in srv.requests[2].body["messages"][1:]]
    assert history[:2] == ["My dog is Rex.", "First.\n\nSaved."]
    r = run_copa("ask", "-s", "dogs", "again?", input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Still Rex.\n" and len(srv.requests[3].body["messages"]) == 6


def test_provider_failure_exit_code_and_message(srv, run_copa):
    srv.add(Status(503, "try later"))
    r = run_copa("ask", "hi", input="", env={"COPA_AGENT_RETRIES": "0"})
    assert r.returncode == 4 and r.stdout == ""
    assert "openai model fake-model ('fake')" in r.stderr and "HTTP 503" in r.stderr


def test_usage_error_exit_code(srv, run_copa):
    r = run_copa("ask", "--continue", "--session", "x", "hi", input="")
    assert r.returncode == 2 and "cannot be used together" in r.stderr
    r = run_copa("ask", "--model", "nope", "hi", input="")
    assert r.returncode == 5 and "no model named 'nope'" in r.stderr


def test_broken_stream_prints_partial_and_exits_provider_error(srv, run_copa):
    srv.add(Answer("This answer is cut", chunk=3, drop_after=4))
    r = run_copa("ask", "hi", input="")
    assert r.returncode == 4 and r.stdout.strip() and "This answer is cut".startswith(r.stdout.strip())
    assert "partial answer was kept" in r.stderr


def test_ctrl_c_keeps_partial_answer_and_exits_130(srv, copa_home):
    srv.add(Answer("Streaming slowly and then", chunk=3, hang_after=4))
    # A job started in the background by a non-interactive shell (CI runners, `cmd &`) inherits SIGINT
    # ignored, and Python then keeps it ignored: give copa the default disposition a terminal gives it.
    proc = subprocess.Popen([sys.executable, "-m", "copa", "ask", "--session", "cc", "tell me"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.read(3)  # the first bytes of the answer have been printed
    assert first == b"Str"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    con = sqlite3.connect(copa_home / "data" / "copa.db")
    sql = "SELECT text, metadata FROM memories WHERE session_id = 'cc' AND role = 'assistant'"
    text, meta = con.execute(sql).fetchone()
    con.close()
    assert "Streaming slowly and then".startswith(text) and json.loads(meta)["interrupted"] is True


def test_models_add_list_and_test(srv, run_copa):
    r = run_copa("models", "add", "local", "--provider", "openai", "--model", "fake-model", "--base-url", srv.base_url,
                 "--tool-mode", "prompt", "--context-window", "8192", "--default")
    assert r.returncode == 0, r.stderr
    r = run_copa("models", "list", "--json")
    data = json.loads(r.stdout)
    assert data["default"] == "local"
    local = next(m for m in data["models"] if m["name"] == "local")
    assert local["tool_mode"] == "prompt" and local["context_window"] == 8192 and "default" in local["roles"]
    srv.add(Answer("ok"))
    r = run_copa("models", "test", "local")
    assert r.returncode == 0 and r.stdout.startswith("ok  local:") and " ms" in r.stdout
    srv.add(Status(401, "bad key"))
    r = run_copa("models", "test", "local")
    assert r.returncode == 4 and "refused the key" in r.stderr
    r = run_copa("models", "add", "bad", "--tool-mode", "sometimes")
    assert r.returncode == 3 and "tool_mode" in r.stderr
    assert "bad" not in run_copa("config", "show").stdout.split("models.")[-1]


def test_models_list_shows_zero_config_environment(run_copa):
    r = run_copa("models", "list", "--json", env={"ANTHROPIC_API_KEY": "sk-ant-xxxxxxxxxxxx"})
    data = json.loads(r.stdout)
    assert data["default"] == "anthropic"
    m = data["models"][0]
    assert m["provider"] == "anthropic" and m["source"] == "environment" and m["key_state"] == "ANTHROPIC_API_KEY (env)"


def test_text_of_successive_steps_is_printed_as_paragraphs(srv, run_copa):
    srv.add(Answer("Let me look.", tool_calls=[("recall", {"query": "keys"})]), Answer("They are by the door."))
    r = run_copa("ask", "where are my keys?", input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Let me look.\n\nThey are by the door.\n"


def test_key_kept_in_the_secrets_store_is_used(run_copa):
    with FakeModelServer("openai", model="gpt-4o-mini") as s:
        s.add(Answer("stored key works"))
        env = {"COPA_SECRETS_BACKEND": "file", "OPENAI_BASE_URL": s.base_url}
        r = run_copa("secrets", "set", "OPENAI_API_KEY", input="sk-stored-0123456789abcdef\n", env=env)
        assert r.returncode == 0, r.stderr
        r = run_copa("ask", "hi", input="", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "stored key works\n"
        assert s.requests[0].headers["authorization"] == "Bearer sk-stored-0123456789abcdef"
    r = run_copa("models", "list", "--json", env={"COPA_SECRETS_BACKEND": "file"})
    data = json.loads(r.stdout)  # no environment at all: the stored key alone makes 'openai' usable
    assert data["default"] == "openai" and data["models"][0]["key_state"] == "OPENAI_API_KEY (stored)"


def test_models_remove_clears_roles(run_copa):
    assert run_copa("models", "add", "a", "--base-url", "http://127.0.0.1:9/v1", "--default", "--fast").returncode == 0
    assert run_copa("models", "add", "b", "--base-url", "http://127.0.0.1:9/v1").returncode == 0
    assert run_copa("config", "set", "agent.fallback", "a,b").returncode == 0
    r = run_copa("models", "remove", "a")
    assert r.returncode == 0 and "agent.model" in r.stdout and "agent.fallback" in r.stdout
    data = json.loads(run_copa("models", "list", "--json").stdout)
    assert [m["name"] for m in data["models"]] == ["b"] and data["default"] == "b" and data["fallback"] == ["b"]
    r = run_copa("models", "remove", "a")
    assert r.returncode == 5 and "no [models.a]" in r.stderr
