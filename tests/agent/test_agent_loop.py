"""The agent loop against a real loopback model server, a real SQLite store and real memory."""

from __future__ import annotations

import json
import sqlite3

import pytest

from copa.agent.writeback import EXTRACT_PROMPT, SUMMARY_PROMPT
from copa.errors import ProviderError
from copa.tools import ToolResult, ToolSpec
from copa.workstation import Workstation
from tests.agent.fake_servers import Answer, FakeModelServer, Status


def system_of(req) -> str:
    msgs = req.body["messages"]
    return msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else ""


@pytest.fixture
def srv():
    with FakeModelServer("openai") as s:
        s.configure("fake")
        yield s


@pytest.fixture
def ws(srv, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    w = Workstation()
    yield w
    w.close()


def tool_log(ws) -> list[tuple]:
    con = sqlite3.connect(ws.paths.db_file)
    try:
        sql = "SELECT tool, arguments, approval, ok, error_type FROM agent_tool_calls ORDER BY pk"
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_no_model_configured_says_how(monkeypatch):
    w = Workstation()
    assert w.agent.available_model() is None
    with pytest.raises(ProviderError) as e:
        w.agent.run_turn("hi")
    assert "no model is configured" in str(e.value) and "copa models add" in str(e.value)


def test_user_message_is_stored_first_even_when_the_model_fails(srv, ws):
    srv.add(Status(500, "down"))
    with pytest.raises(ProviderError):
        ws.agent.run_turn("please remember the milk", session_id="s1")
    turns = ws.memory.turns("s1")
    assert [(t.role, t.text) for t in turns] == [("user", "please remember the milk")]


def test_context_has_preferences_tasks_and_recalled_memories(srv, ws):
    pref = ws.memory.add("The user prefers metric units.", kind="preference")
    task = ws.memory.add_task("Renew the passport", due="2030-01-05")
    fact = ws.memory.add("The user's sister Ana lives in Porto.", kind="fact", subject="user.sister.city")
    ws.memory.add("Unrelated: the router password is on the fridge.", kind="note")
    srv.add(Answer("Ana lives in Porto."))
    events = []
    r = ws.agent.run_turn("Where does my sister Ana live?", session_id="s1", on_event=events.append)
    system = system_of(srv.requests[0])
    assert "The user prefers metric units." in system and f"[{pref}]" in system
    assert "Renew the passport (open, due 2030-01-0" in system
    assert "Ana lives in Porto" in system and f"[{fact}]" in system
    assert "router password" not in system  # recall is about this message, not everything
    assert srv.requests[0].body["messages"][-1] == {"role": "user", "content": "Where does my sister Ana live?"}
    used = {m["id"]: m["section"] for m in r.memories_used}
    assert used[fact] == "recalled" and used[pref] == "preferences" and used[task] == "tasks"
    assert any(e.type == "memories" for e in events)
    answer = ws.memory.turns("s1")[-1]
    assert answer.role == "assistant" and answer.text == "Ana lives in Porto."
    assert fact in answer.metadata["memories_used"]
    assert r.text == "Ana lives in Porto." and r.usage.input_tokens == 12 and r.timing["overhead_ms"] > 0


def test_recent_turns_of_the_session_are_replayed(srv, ws):
    srv.add(Answer("Nice to meet you, Rui."), Answer("Your name is Rui."))
    ws.agent.run_turn("My name is Rui.", session_id="s1")
    ws.agent.run_turn("What is my name?", session_id="s1")
    msgs = srv.requests[1].body["messages"]
    assert [(m["role"], m["content"]) for m in msgs[1:]] == [
        ("user", "My name is Rui."), ("assistant", "Nice to meet you, Rui."), ("user", "What is my name?")]


def test_remember_tool_round_trip_logged_and_superseding(srv, ws):
    srv.add(Answer("Noted.", tool_calls=[("remember", {"text": "The user lives in Paris.", "kind": "fact",
                                                       "subject": "user.home_city"})], arg_chunk=3),
            Answer("I'll remember that you live in Paris."),
            Answer(tool_calls=[("remember", {"text": "The user lives in Lyon.", "subject": "user.home_city"})]),
            Answer("Got it: Lyon."),
            Answer("You live in Lyon."))
    r1 = ws.agent.run_turn("I live in Paris.", session_id="a")
    assert r1.tool_calls[0]["name"] == "remember" and r1.tool_calls[0]["ok"] and r1.saved
    # the tool result went back to the model in the second request of the turn
    tool_msg = srv.requests[1].body["messages"][-1]
    assert tool_msg["role"] == "tool" and json.loads(tool_msg["content"])["ok"] is True
    r2 = ws.agent.run_turn("I moved to Lyon.", session_id="b")
    assert r2.tool_calls[0]["result"]["replaces"] == "The user lives in Paris."
    ws.agent.run_turn("Which city do I live in?", session_id="c")
    system = system_of(srv.requests[4])
    assert "The user lives in Lyon." in system and "The user lives in Paris." not in system
    assert [m.text for m in ws.memory.history("user.home_city")] == ["The user lives in Paris.",
                                                                     "The user lives in Lyon."]
    log = tool_log(ws)
    assert [row[0] for row in log] == ["remember", "remember"] and all(row[3] == 1 for row in log)
    assert json.loads(log[1][1])["subject"] == "user.home_city"


class DangerTool:
    spec = ToolSpec("wipe_disk", "Erase things", {"type": "object", "properties": {}}, dangerous=True,
                    source="skill:test")

    def __init__(self):
        self.calls = 0

    def call(self, arguments):
        self.calls += 1
        return ToolResult(True, "wiped")


class WSWithSkills(Workstation):
    """A workstation whose skills part offers one dangerous tool (what ws.skills.as_tools() returns)."""

    def __init__(self, tool):
        super().__init__()
        self._tool = tool

    @property
    def skills(self):
        tool = self._tool

        class S:
            def as_tools(self):
                return [tool]

        return S()


@pytest.mark.parametrize(("policy", "approve", "ran", "how"), [
    ("ask", None, False, "needs approval"),
    ("ask", lambda spec, args: True, True, "approved by the user"),
    ("ask", lambda spec, args: False, False, "refused by the user"),
    ("never", lambda spec, args: True, False, "agent.approval = never"),
    ("always", None, True, "agent.approval = always"),
])
def test_dangerous_tools_need_approval(srv, monkeypatch, policy, approve, ran, how):
    monkeypatch.setenv("COPA_AGENT_APPROVAL", policy)
    tool = DangerTool()
    w = WSWithSkills(tool)
    srv.add(Answer(tool_calls=[("wipe_disk", {})]), Answer("done"))
    r = w.agent.run_turn("wipe it", session_id="s", approve=approve)
    assert tool.calls == (1 if ran else 0)
    assert r.tool_calls[0]["ok"] is ran and how in r.tool_calls[0]["approval"]
    if not ran:
        assert json.loads(srv.requests[1].body["messages"][-1]["content"])["error_type"] == "denied"
    w.close()


def test_tool_step_limit_unknown_tools_and_bad_arguments(srv, ws, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_MAX_TOOL_STEPS", "2")
    w = Workstation()
    bad_args = Answer(raw_events=[
        'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c9","type":"function",'
        '"function":{"name":"recall","arguments":"{\\"query\\": "}}]}}]}\n\n',
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n', "data: [DONE]\n\n"])
    srv.add(Answer(tool_calls=[("no_such_tool", {})]), bad_args,
            Answer(tool_calls=[("recall", {"query": "x"})]), Answer("giving up"))
    r = w.agent.run_turn("loop forever", session_id="s")
    assert [c["ok"] for c in r.tool_calls] == [False, False, False]
    assert "unknown tool 'no_such_tool'" in r.tool_calls[0]["error"]
    assert "not valid JSON" in r.tool_calls[1]["error"]
    assert "agent.max_tool_steps = 2" in r.tool_calls[2]["error"]
    assert r.text == "giving up" and len(srv.requests) == 4


def test_broken_stream_keeps_partial_answer_marked_interrupted(srv, ws):
    srv.add(Answer("The answer starts well but", chunk=4, drop_after=4))
    r = ws.agent.run_turn("tell me", session_id="s")
    assert r.interrupted and r.stop_reason == "broken" and r.text and "The answer starts well but".startswith(r.text)
    stored = ws.memory.turns("s")[-1]
    assert stored.text == r.text and stored.metadata["interrupted"] is True


def test_no_memory_mode_reads_and_writes_nothing(srv, ws):
    ws.memory.add("The user prefers tea.", kind="preference")
    srv.add(Answer("ok"))
    r = ws.agent.run_turn("drink?", session_id="s", use_memory=False)
    body = srv.requests[0].body
    assert "prefers tea" not in srv.requests[0].text()
    assert not {t["function"]["name"] for t in body.get("tools", [])} & {"remember", "recall", "forget"}
    assert ws.memory.turns("s") == [] and r.memories_used == []


def test_compaction_summarises_older_turns_into_a_memory(srv, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    srv.configure("tiny", context_window=1200, max_tokens=100)
    w = Workstation()
    for i in range(30):
        w.memory.add_turn("long", "user" if i % 2 == 0 else "assistant", f"turn {i}: " + "blah " * 60)

    def responder(req):
        if SUMMARY_PROMPT in system_of(req):
            return Answer("Goal: test compaction. Progress: 30 turns of blah.")
        return Answer("fine")

    srv.responder = responder
    r = w.agent.run_turn("and now?", session_id="long", model="tiny")
    summary_req = [q for q in srv.requests if SUMMARY_PROMPT in system_of(q)]
    assert len(summary_req) == 1 and "turn 0:" in summary_req[0].text()
    final = srv.requests[-1]
    assert "Goal: test compaction" in system_of(final) and "turn 0:" not in final.text()
    assert r.text == "fine" and any(m["section"] == "summary" for m in r.memories_used)
    hist = w.memory.history("conversation.long.summary")
    assert len(hist) == 1 and hist[0].metadata["session_id"] == "long"
    assert len(w.memory.turns("long")) == 32  # the full turns stay in the store
    w.close()


def test_post_turn_extraction_saves_memories_with_subjects(srv, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_EXTRACT_MEMORIES", "true")
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    w = Workstation()

    def responder(req):
        if EXTRACT_PROMPT in system_of(req):
            return Answer('Here: [{"kind": "fact", "subject": "user.home_city", "text": "The user lives in Lyon."}]')
        return Answer("Lyon is lovely.")

    srv.responder = responder
    r = w.agent.run_turn("I just moved to Lyon!", session_id="s")
    assert r.text == "Lyon is lovely." and len(r.saved) == 1
    assert [m.text for m in w.memory.history("user.home_city")] == ["The user lives in Lyon."]
    w.close()


def test_a_face_cancels_by_raising_keyboardinterrupt_from_on_event(srv, ws):
    """The TUI's stop key: raising from on_event ends the turn, keeping what streamed, never crashing."""
    srv.add(Answer("abc", tool_calls=[("recall", {"query": "x"}), ("recall", {"query": "y"})]), Answer("never"))

    def on_event(e):
        if e.type == "tool_result":
            raise KeyboardInterrupt

    r = ws.agent.run_turn("go", session_id="s", on_event=on_event)
    assert r.cancelled and r.interrupted and r.text == "abc" and len(r.tool_calls) == 1
    assert len(srv.requests) == 1
    assert ws.memory.turns("s")[-1].metadata["interrupted"] is True


@pytest.mark.parametrize("wire", ["anthropic", "gemini"])
def test_tool_round_trip_through_the_loop_on_other_wires(wire, monkeypatch):
    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    with FakeModelServer(wire) as s:
        s.configure("m")
        s.add(Answer("Saving.", tool_calls=[("remember", {"text": "The user plays the cello.",
                                                          "subject": "user.instrument"})], arg_chunk=3),
              Answer("Noted: cello."), Answer("You play the cello."))
        w = Workstation()
        r1 = w.agent.run_turn("I play the cello.", session_id="a")
        assert r1.text == "Saving.\n\nNoted: cello." and r1.tool_calls[0]["ok"]
        r2 = w.agent.run_turn("Which instrument do I play?", session_id="b")
        assert r2.text == "You play the cello."
        body = s.requests[2].text()
        assert "The user plays the cello." in body
        second = s.requests[1].body
        if wire == "anthropic":
            assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
            assert second["messages"][2]["content"][0]["type"] == "tool_result"
        else:
            assert "functionResponse" in json.dumps(second["contents"][-1])
        w.close()


def test_skills_tools_are_offered_but_not_the_memory_skills(srv, ws):
    srv.add(Answer("ok"), Answer("ok"))
    ws.agent.run_turn("hi", session_id="s")
    names = {t["function"]["name"] for t in srv.requests[0].body["tools"]}
    assert {"remember", "recall", "forget", "task_update"} <= names
    skills = {t.spec.name for t in ws.skills.as_tools()}
    assert (skills - names) == {n for n in skills if n.startswith("memory_")}
    ws.agent.run_turn("hi", session_id="s2", use_memory=False)
    names = {t["function"]["name"] for t in srv.requests[1].body.get("tools", [])}
    assert not any(n.startswith("memory_") or n in ("remember", "recall") for n in names)


def test_compact_now_folds_all_but_the_recent_turns(srv, monkeypatch):
    """/compact: the older turns become the summary the model is shown; the last turns stay verbatim."""

    monkeypatch.setenv("COPA_AGENT_RETRIES", "0")
    w = Workstation()
    for i in range(10):
        w.memory.add_turn("chat", "user" if i % 2 == 0 else "assistant", f"turn {i}: about the garden")

    def responder(req):
        if SUMMARY_PROMPT in system_of(req):
            return Answer("Goal: plan the garden. Progress: six turns so far.")
        return Answer("fine")

    srv.responder = responder
    assert "6 earlier turns" in w.agent.compact("chat")
    summary_req = [q for q in srv.requests if SUMMARY_PROMPT in system_of(q)]
    assert len(summary_req) == 1 and "turn 5:" in summary_req[0].text() and "turn 6:" not in summary_req[0].text()
    w.agent.run_turn("what next?", session_id="chat", model="fake")
    final = srv.requests[-1]
    assert "Goal: plan the garden" in system_of(final)
    assert "turn 0:" not in final.text() and "turn 9:" in final.text()
    # a second /compact folds only what came since the first (turns 6-7), never a turn twice
    assert "2 earlier turns" in w.agent.compact("chat")
    assert "turn 5:" not in srv.requests[-1].text() and "turn 7:" in srv.requests[-1].text()
    summaries = w.memory.history("conversation.chat.summary")
    assert len(summaries) == 1  # the fake model repeated itself: the summary is corroborated, not duplicated...
    assert summaries[0].metadata["turns"] == 8  # ...and it now covers turns 0-7
    w.agent.run_turn("and?", session_id="chat", model="fake")
    assert "turn 7:" not in srv.requests[-1].text() and "turn 8:" in srv.requests[-1].text()
    assert len(w.memory.turns("chat")) == 14  # the full turns stay in the store
    w.close()


def test_compact_with_nothing_to_fold(srv):

    w = Workstation()
    w.memory.add_turn("short", "user", "hello")
    assert w.agent.compact("short") == "Nothing to compact yet."
    assert srv.requests == []
    w.close()
