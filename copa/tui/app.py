"""The workstation app: one mode (with its own screen stack) per screen, F1-F5 to move between them,
a command palette (ctrl+p), help (? or ctrl+g), light and dark themes (ctrl+t, remembered). The app
owns the ``Workstation`` every screen drives; it opens nothing itself, so the first paint does not
wait for the database."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from copa import __version__
from copa.tui.chat import ChatScreen
from copa.tui.state import TuiState
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
        Binding("question_mark", "help", "Help", key_display="?", show=False),  # not while typing
        Binding("ctrl+g", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, ws: Workstation | None = None, *, theme: str | None = None, mode: str | None = None):
        super().__init__()
        self.ws = ws or Workstation()
        self.state = TuiState(self.ws.paths.state_dir / "tui.json")
        self.theme = theme or self.state.theme or DARK
        self._start_mode = mode

    def on_mount(self) -> None:
        if self._start_mode and self._start_mode != self.DEFAULT_MODE:
            self.switch_mode(self._start_mode)

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def watch_theme(self, theme: str) -> None:
        """Any change (ctrl+t, the palette's theme picker) is remembered for the next start."""
        if getattr(self, "state", None) is not None and self.state.theme != theme:
            self.state.theme = theme
            self.state.save()

    def action_help(self) -> None:
        from copa.tui.help import HelpScreen, screen_keys

        if isinstance(self.screen, ModalScreen):
            return  # a dialog has its own keys, shown on it
        title = f"{self.screen.MODE.capitalize()} screen" if getattr(self.screen, "MODE", "") else "This screen"
        self.push_screen(HelpScreen(title, screen_keys(self.screen)))

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Saved to ~/Downloads when it exists, else to copa's data folder (never a failure because a
        folder is missing); the notification says where."""
        folder = Path(path) if path else screenshot_dir(self.ws.paths)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(folder))
        except OSError as e:
            self.notify(f"could not save the screenshot in {folder}: {e.strerror or e}", severity="error")
            return
        self.notify(f"Screenshot saved to {saved}", title="Screenshot")

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
        yield SystemCommand("Keys and help", "copa's keys, on this screen and everywhere (? or ctrl+g)",
                            self.action_help)
        for command in super().get_system_commands(screen):
            if command.title == "Keys":  # Textual's panel lists ~40 editing keys first: ours is above
                continue
            if command.title == "Screenshot":  # Textual's fails when ~/Downloads does not exist
                command = SystemCommand("Screenshot", "Save an SVG picture of the screen (where: in the notice)",
                                        lambda: self.set_timer(0.1, self.action_screenshot))
            yield command

    def _in_chat(self, action: str) -> None:
        def go() -> None:
            self.screen.run_action(action)

        if self.current_mode != "chat":
            self.switch_mode("chat")
        self.call_later(go)

    def on_unmount(self) -> None:
        self.ws.close()


def screenshot_dir(paths) -> Path:
    """The user's Downloads folder when there is one; else copa's own data folder."""
    from platformdirs import user_downloads_dir

    downloads = Path(user_downloads_dir())
    return downloads if downloads.is_dir() else paths.data_dir / "screenshots"
