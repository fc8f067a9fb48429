"""The workstation app: one mode (with its own screen stack) per screen, F1-F5 to move between them,
a command palette (ctrl+p), light and dark themes (ctrl+t). The app owns the ``Workstation`` every
screen drives; it opens nothing itself, so the first paint does not wait for the database."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from copa import __version__
from copa.tui.chat import ChatScreen
from copa.tui.widgets import SCREENS
from copa.workstation import Workstation

DARK, LIGHT = "textual-dark", "textual-light"


def _lazy(module: str, name: str):
    """A screen imported when first shown: the first paint pays only for the chat screen."""

    def make() -> Screen:
        import importlib

        return getattr(importlib.import_module(module), name)()

    return make


class CopaApp(App):
    TITLE = "copa"
    SUB_TITLE = f"v{__version__}"
    CSS_PATH = "copa.tcss"
    MODES = {"chat": ChatScreen, "memory": _lazy("copa.tui.memory", "MemoryScreen"),
             "skills": _lazy("copa.tui.skills", "SkillsScreen"),
             "schedules": _lazy("copa.tui.schedules", "SchedulesScreen"),
             "devices": _lazy("copa.tui.devices", "DevicesScreen")}
    DEFAULT_MODE = "chat"
    BINDINGS = [Binding(key, f"switch_mode('{mode}')", title, show=False) for mode, key, title in SCREENS] + [
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, ws: Workstation | None = None, *, theme: str | None = None, mode: str | None = None):
        super().__init__()
        self.ws = ws or Workstation()
        self.theme = theme or DARK
        self._start_mode = mode

    def on_mount(self) -> None:
        if self._start_mode and self._start_mode != self.DEFAULT_MODE:
            self.switch_mode(self._start_mode)

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for mode, key, title in SCREENS:
            yield SystemCommand(f"Go to {title}", f"Show the {title} screen ({key.upper()})",
                                lambda m=mode: self.switch_mode(m))
        yield SystemCommand("Toggle light/dark", "Switch between the light and the dark theme (ctrl+t)",
                            self.action_toggle_theme)
        yield SystemCommand("New chat", "Start a new conversation",
                            lambda: self._in_chat("new_session"))
        yield SystemCommand("Resume a conversation", "Pick an earlier session to continue",
                            lambda: self._in_chat("sessions"))
        yield from super().get_system_commands(screen)

    def _in_chat(self, action: str) -> None:
        def go() -> None:
            self.screen.run_action(action)

        if self.current_mode != "chat":
            self.switch_mode("chat")
        self.call_later(go)

    def on_unmount(self) -> None:
        self.ws.close()
