"""The agent loop calling real skills in their workers, against a loopback model server."""

from __future__ import annotations

import json

import pytest

from copa.workstation import Workstation
from tests.agent.fake_servers import Answer, FakeModelServer

SKILLS = '''
import os
from copa.skills import skill

@skill
def word_count(text: str) -> dict:
    """Count the words in a text.

    Args:
        text: the text to count.
    """
    return {"words": len(text.split()), "pid": os.getpid()}

@skill
def crashes() -> str:
    """Crashes its process."""
    os._exit(9)

@skill(dangerous=True)
def wipe(path: str) -> str:
    """Deletes things.

    Args:
        path: what to delete.
    """
    open(os.environ["TMPDIR"] + "/wiped", "w").write(path)
    return "wiped"
'''


@pytest.fixture
def ws(copa_home, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    folder = copa_home / "config" / "skills"
    folder.mkdir(parents=True)
    (folder / "words.py").write_text(SKILLS)
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        w = Workstation()
        yield w, srv
        w.close()


def test_agent_calls_skills_in_workers(ws):
    w, srv = ws
    srv.add(Answer(tool_calls=[("word_count", {"text": "one two three"}), ("crashes", {})]),
            Answer("Three words; the other tool crashed."))
    r = w.agent.run_turn("How many words in 'one two three'?", session_id="s")
    offered = {t["function"]["name"] for t in srv.requests[0].body["tools"]}
    assert {"word_count", "crashes", "read_file", "current_time"} <= offered
    calls = {c["name"]: c for c in r.tool_calls}
    assert calls["word_count"]["ok"] and calls["crashes"]["ok"] is False
    tool_msgs = [m for m in srv.requests[1].body["messages"] if m["role"] == "tool"]
    results = [json.loads(m["content"]) for m in tool_msgs]
    assert {"ok": True, "content": {"words": 3, "pid": results[0]["content"]["pid"]}} in results
    crash = next(x for x in results if not x["ok"])
    assert crash["error_type"] == "crash" and "code 9" in crash["error"]
    assert r.text == "Three words; the other tool crashed."


def test_dangerous_skill_waits_for_approval(ws):
    w, srv = ws
    srv.add(Answer(tool_calls=[("wipe", {"path": "/important"})]), Answer("I was not allowed."))
    asked = []
    r = w.agent.run_turn("wipe it", session_id="d", approve=lambda spec, args: asked.append((spec.name, args)) or False)
    assert asked == [("wipe", {"path": "/important"})]
    assert r.tool_calls[0]["ok"] is False
