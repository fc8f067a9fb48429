"""End to end in a real terminal: tmux starts `copa` (the installed entry point) with COPA_HOME: on a
fresh home, the first screen's keys and the no-daemon banner; with a model pointing at a loopback
server, keys are typed, the screen is captured, and the streamed answer and the recalled memory are
read off it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agent.fake_servers import Answer

COPA = Path(sys.executable).parent / "copa"
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed "
                                "(tests/apt-packages.txt; 'make system-deps')")


class Tmux:
    def __init__(self, name: str):
        self.base = ["tmux", "-L", name]  # a private server: never touches the user's sessions

    def __call__(self, *args: str) -> str:
        return subprocess.run(self.base + list(args), capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "copa")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen()}")


def start(tmux: Tmux, copa_home, size: tuple[int, int]) -> None:
    env = {"COPA_HOME": str(copa_home), "TERM": "xterm-256color", "TZ": "UTC", "PATH": os.environ["PATH"],
           "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    command = "env -i " + " ".join(f"{k}='{v}'" for k, v in env.items()) + f" {COPA}"
    tmux("new-session", "-d", "-s", "copa", "-x", str(size[0]), "-y", str(size[1]), command)


def quit_copa(tmux: Tmux) -> None:
    tmux("send-keys", "-t", "copa", "C-q")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "copa" in tmux("list-sessions"):
        time.sleep(0.1)


def test_fresh_home_first_screen_keys_and_the_no_daemon_banner(copa_home):
    """A new user at 80x24: the first screen says what copa is, how to set up a model and the keys;
    F4 shows that nothing will run the jobs (no daemon) and the key that starts it."""
    assert COPA.exists(), f"{COPA} is missing: install copa into the venv ('make dev')"
    assert not copa_home.exists()
    tmux = Tmux(f"copa-fresh-{os.getpid()}")
    start(tmux, copa_home, (80, 24))
    try:
        shown = tmux.wait_for("No model is configured")
        assert "copa is your workstation in the terminal" in shown
        for keys in ("enter send", "esc stop", "F1-F5 screens", "ctrl+p commands", "? help", "^q Quit", "^g Help"):
            assert keys in shown, keys
        tmux("send-keys", "-t", "copa", "F4")
        shown = tmux.wait_for("The daemon is not running")
        assert "Press D" in shown and "copa daemon" in shown and "press a to add one" in shown
        tmux("send-keys", "-t", "copa", "?")
        shown = tmux.wait_for("Schedules screen")
        assert "start the daemon in the background" in shown  # the screen's own keys come first
        tmux("send-keys", "-t", "copa", "Escape")
        quit_copa(tmux)
    finally:
        tmux("kill-server")


def test_copa_in_tmux_streams_an_answer_with_its_recalled_memory(fake_model, ws, seeded, copa_home):
    assert COPA.exists(), f"{COPA} is missing: install copa into the venv ('make dev')"
    fake_model.add(Answer("You live in Porto, since March 2025.", chunk=3, delay=0.02))
    ws.close()
    tmux = Tmux(f"copa-test-{os.getpid()}")
    start(tmux, copa_home, (100, 30))
    try:
        tmux.wait_for("F1 Chat")
        tmux.wait_for("model fake")
        tmux("send-keys", "-t", "copa", "-l", "where do I live?")
        tmux("send-keys", "-t", "copa", "Enter")
        tmux.wait_for("since March 2025.")  # the streamed answer
        shown = tmux.wait_for("recalled")  # the end of the turn: the memories it was given
        assert "› where do I live?" in shown and "You live in Porto, since March 2025." in shown
        assert "I moved to Porto" in shown  # the recalled memory, beside the answer
        assert "tokens" in shown
        quit_copa(tmux)
    finally:
        tmux("kill-server")
