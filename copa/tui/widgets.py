"""Small widgets every screen shares: the navigation bar, a confirmation dialog, the help screen,
and time formatting (local time, as a person reads it)."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

# (mode, key, title) for every screen, in the order of the navigation bar.
SCREENS: list[tuple[str, str, str]] = [
    ("chat", "f1", "Chat"),
    ("memory", "f2", "Memory"),
    ("skills", "f3", "Skills"),
    ("schedules", "f4", "Schedules"),
    ("devices", "f5", "Devices"),
]


def local_time(dt: datetime | None, *, seconds: bool = False) -> str:
    """A stored (UTC) time shown in the machine's zone: '2024-03-05 14:00'."""
    if dt is None:
        return "-"
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def one_line(text: str, width: int = 60) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class NavBar(Static):
    """The top line: which screen is shown and the keys that switch screens (clickable)."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, current: str, **kwargs):
        super().__init__(**kwargs)
        self.current = current

    def on_mount(self) -> None:
        parts = [" [b]copa[/b] "]
        for mode, key, title in SCREENS:
            label = f"{key.upper()} {title}"
            if mode == self.current:
                parts.append(f"[reverse b] {label} [/]")
            else:
                parts.append(f"[@click=app.switch_mode('{mode}')] {label} [/]")
        self.update("".join(parts))


class ConfirmScreen(ModalScreen[bool]):
    """Ask yes or no before something that cannot be undone (forget, toggle a pin, run a dangerous
    skill). ``detail`` (a command, arguments) is shown whole: wrapped, and scrollable with the keys."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; max-width: 95%; height: auto; max-height: 95%; border: thick $warning;
                               background: $surface; padding: 0 1; }
    ConfirmScreen #detail { height: auto; max-height: 12; background: $boost; margin-top: 1; }
    ConfirmScreen #detail Static { width: 100%; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 1; }
    """

    def __init__(self, question: str, yes: str = "Yes", no: str = "No", detail: str | None = None):
        super().__init__()
        self.question, self.yes, self.no, self.detail = question, yes, no, detail

    def compose(self) -> ComposeResult:
        from rich.text import Text

        with Vertical():
            yield Label(self.question, id="question")
            if self.detail is not None:
                with VerticalScroll(id="detail"):
                    yield Static(Text(self.detail, overflow="fold"))
            with Horizontal():
                yield Button(f"{self.no} (n)", id="no", compact=True)
                yield Button(f"{self.yes} (y)", id="yes", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


def text_field_focused(app) -> bool:
    """True while the user is typing (an input or a text area has focus): single-letter shortcuts of
    lists must not fire then (typing "decaf" in a search must not edit a memory)."""
    from textual.widgets import Input, TextArea

    return isinstance(app.focused, Input | TextArea)
