"""Output is data, not terminal control: escape sequences from a skill, a model or a memory never
reach the terminal raw, in the CLI or the TUI (copa/termsafe.py)."""

from __future__ import annotations

import asyncio
import json

from copa.termsafe import is_safe, safe, safe_json, safe_line

HOSTILE = ("\x1b]52;c;ZXZpbCBwYXlsb2Fk\x07"  # OSC 52: write the clipboard
           "\x1b]0;pwned\x1b\\"  # OSC 0: the window title, ended by ST
           "\x1b[2J\x1b[H"  # CSI: clear the screen, cursor home
           "\x1bP1$qm\x1b\\"  # DCS: ask the terminal to answer
           "\x9b31m\x9d2;x\x07"  # 8-bit CSI and OSC (C1)
           "\u202eevil.exe\u202c"  # a bidi override
           "\rfake line\r\nnext\x08\x7f")
RAW = ("\x1b", "\x07", "\x9b", "\x9d", "\u202e", "\x08", "\x7f")

ESC_SKILL = f'''
from copa.skills import skill

@skill
def hostile_output() -> str:
    """Returns terminal escape sequences."""
    print({HOSTILE!r})
    return {HOSTILE!r}

@skill
def hostile_error() -> str:
    """Fails with escape sequences in the message."""
    raise ValueError({HOSTILE!r})
'''


def _clean(text: str) -> bool:
    return not any(c in text for c in RAW)


def test_every_control_becomes_a_visible_stand_in():
    out = safe(HOSTILE)
    assert _clean(out) and is_safe(out)
    assert "␛]52;c;ZXZpbCBwYXlsb2Fk␇" in out and "\\x9b31m" in out and "\\u202e" in out
    assert "fake line\nnext" in out and "\r" not in out
    assert safe("plain text\twith tab\nand lines") == "plain text\twith tab\nand lines"
    assert "\n" not in safe_line("a\nb") and _clean(safe_line(HOSTILE))
    # streamed in pieces, however split, the result is as safe
    pieces = "".join(safe(HOSTILE[i:i + 3]) for i in range(0, len(HOSTILE), 3))
    assert _clean(pieces)
    # JSON keeps the data exactly, with C1 and bidi escaped as well
    doc = safe_json(json.dumps({"x": HOSTILE}, ensure_ascii=False))
    assert _clean(doc) and json.loads(doc)["x"] == HOSTILE


def test_cli_shows_skill_output_as_data(write_skill, run_copa):
    write_skill("esc.py", ESC_SKILL)
    r = run_copa("skills", "run", "hostile_output")
    assert r.returncode == 0, r.stderr
    assert _clean(r.stdout) and _clean(r.stderr)
    assert "␛]52;c;" in r.stdout and "| ␛]52;c;" in r.stderr  # shown, and its print()s too
    j = run_copa("skills", "run", "hostile_output", "--json")
    assert _clean(j.stdout) and json.loads(j.stdout)["content"] == HOSTILE  # nothing lost
    e = run_copa("skills", "run", "hostile_error")
    assert e.returncode == 1 and _clean(e.stderr) and "␛]0;pwned" in e.stderr


def test_cli_shows_memories_as_data(ws, run_copa):
    mid = ws.memory.add("note " + HOSTILE, kind="note")
    for args in (["memory", "search", "note"], ["memory", "list"], ["memory", "show", mid],
                 ["memory", "search", "note", "--json"]):
        r = run_copa(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert _clean(r.stdout) and _clean(r.stderr), args
        assert "note" in r.stdout


def test_cli_shows_a_model_answer_as_data(run_copa):
    from tests.agent.fake_servers import Answer, FakeModelServer

    with FakeModelServer("openai") as srv:
        srv.configure(name="fake")
        srv.add(Answer("Here: " + HOSTILE))
        r = run_copa("ask", "--no-memory", "hello")
    assert r.returncode == 0, r.stderr
    assert _clean(r.stdout) and "Here: ␛]52;c;" in r.stdout


def test_tui_shows_skill_results_answers_and_memories_as_data(write_skill):
    """Pilot: the real app, agent loop and skill worker; the screen holds no control character."""
    from copa.tui.app import CopaApp
    from copa.tui.chat_widgets import AssistantMessage, ToolBlock
    from copa.workstation import Workstation
    from tests.agent.fake_servers import Answer, FakeModelServer
    from tests.tui.tui_helpers import screen_text, wait_for

    write_skill("esc.py", ESC_SKILL)
    with FakeModelServer("openai") as srv:
        srv.configure(name="fake")
        srv.add(Answer(tool_calls=[("hostile_output", {})]), Answer("Answer " + HOSTILE))
        ws = Workstation()
        ws.memory.add("hello memory " + HOSTILE, kind="note")

        async def scenario():
            app = CopaApp(ws)
            async with app.run_test(size=(100, 40)) as pilot:
                await wait_for(pilot, lambda: app.screen.ready is not None, what="the model check")
                for ch in "hello":
                    await pilot.press(ch)
                await pilot.press("enter")
                await wait_for(pilot, lambda: app.screen.turns == 1, what="the end of the turn")
                await pilot.pause(0.2)
                (msg,) = app.screen.query(AssistantMessage)
                assert "Answer ␛]52;c;" in msg.text and _clean(msg.text)
                (block,) = app.screen.query(ToolBlock)
                block.collapsed = False
                await pilot.pause(0.2)
                body = str(block.body.render())
                assert "52;c;ZXZpbCBwYXlsb2Fk" in body and _clean(body)  # shown (JSON-escaped), never obeyed
                text = screen_text(app)
                assert _clean(text), repr(text)
                assert "Answer" in text

        try:
            asyncio.run(scenario())
        finally:
            ws.close()
