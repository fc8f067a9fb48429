"""Helpers for the TUI tests: the screen as plain text, waiting for a condition without sleeping blindly."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from rich.console import Console


def screen_text(app) -> str:
    """What a person would read on the terminal right now (no colours)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_for(pilot, condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    """Let the app run until ``condition()`` is truthy (bounded), and return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


async def settle(pilot, timeout: float = 10.0) -> None:
    """Wait until no worker is running (cancelled ones included), then let the screen repaint."""
    from textual.worker import WorkerState

    await wait_for(pilot, lambda: all(w.state not in (WorkerState.PENDING, WorkerState.RUNNING)
                                      for w in pilot.app.workers), timeout, what="workers to finish")
    await pilot.pause(0.1)


def no_blink(app) -> None:
    """A blinking cursor makes a screenshot depend on the millisecond it was taken."""
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False


KEY_NAMES = {" ": "space", "/": "slash", "?": "question_mark", ".": "full_stop", "-": "minus", ":": "colon",
             "=": "equals_sign", "'": "apostrophe", ",": "comma"}


async def type_text(pilot, text: str) -> None:
    """Type as a person would: one key per character."""
    for ch in text:
        await pilot.press(KEY_NAMES.get(ch, ch))
