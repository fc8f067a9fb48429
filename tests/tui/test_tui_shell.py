"""The app shell (F-keys, command palette, themes) and the pure pieces: slash-command parsing and
completion, and the JSON-Schema form's field types."""

from __future__ import annotations

import asyncio

import pytest

from copa.tui import slash
from copa.tui.app import CopaApp
from copa.tui.schema_form import enum_values, field_type
from tests.tui.tui_helpers import screen_text, wait_for


def test_function_keys_palette_and_theme(ws):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            assert app.current_mode == "chat"
            for key, mode in (("f2", "memory"), ("f3", "skills"), ("f4", "schedules"), ("f5", "devices"),
                              ("f1", "chat")):
                await pilot.press(key)
                await wait_for(pilot, lambda m=mode: app.current_mode == m, what=mode)
            assert app.theme == "textual-dark"
            await pilot.press("ctrl+t")
            assert app.theme == "textual-light"
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            for ch in "go to sched":
                await pilot.press("space" if ch == " " else ch)
            await wait_for(pilot, lambda: "Go to Schedules" in screen_text(app), what="the palette entry")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.current_mode == "schedules", what="the palette's switch")
            assert "r Run" in screen_text(app) and "D Daemon" in screen_text(app)  # the footer shows this screen's keys

    asyncio.run(scenario())


@pytest.mark.parametrize(("typed", "expected"), [
    ("/rem buy milk", ("/remember", "buy milk")),
    ("/model fast", ("/model", "fast")),
    ("/s", ("/s", "")),  # ambiguous: /sessions, /skills, /schedule
    ("/HELP", ("/help", "")),
    ("hello /model", None),
    ("//not a command", None),
])
def test_slash_parse(typed, expected):
    assert slash.parse(typed) == expected


def test_slash_complete_and_matches():
    assert slash.complete("/rem") == "/remember "
    assert slash.complete("/s") == "/s"  # nothing common beyond what was typed
    assert slash.complete("/sk") == "/skills "
    assert slash.complete("/zzz") == "/zzz"
    assert slash.matches("/s") == ["/sessions", "/skills", "/schedule"]
    assert slash.matches("/model x") == []  # only while the command word is typed
    assert set(slash.COMMANDS) >= {"/model", "/new", "/sessions", "/remember", "/forget", "/tasks", "/skills",
                                   "/schedule", "/device", "/compact", "/help"}


def test_schema_field_types():
    assert field_type({"type": "string"}) == "string"
    assert field_type({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == "integer"
    assert field_type({"type": ["null", "number"]}) == "number"
    assert field_type({"type": "array", "items": {"type": "string"}}) == "json"
    assert field_type({"enum": ["cpu", "memory"], "type": "string"}) == "enum"
    assert field_type({"type": "boolean"}) == "boolean"
    assert enum_values({"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]}) == ["a", "b"]
