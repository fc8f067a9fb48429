"""The help screen (`?`, ctrl+g, or the palette's "Keys and help"): copa's own keys first (everywhere,
then the screen you came from), the generic moving and editing keys last. Esc closes it."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

GLOBAL_KEYS = [
    ("F1 … F5", "Chat, Memory, Skills, Schedules, Devices"),
    ("ctrl+p", "command palette: screens, new chat, resume, theme, screenshot, help"),
    ("? / ctrl+g", "this help (? when you are not typing in a field)"),
    ("ctrl+t", "light / dark theme (remembered)"),
    ("ctrl+q", "quit"),
]
MOVING_KEYS = [
    ("tab / shift+tab", "next / previous field or pane"),
    ("↑ ↓ pgup pgdn home end", "move in a list; scroll a pane or a report"),
    ("enter", "open or run what is selected"),
    ("esc", "close a dialog; in the chat, stop the answer"),
    ("editing", "the usual keys in text fields (ctrl+a/e start/end, ctrl+w/u delete, ctrl+z undo …)"),
]


def key_label(key: str) -> str:
    names = {"slash": "/", "question_mark": "?", "escape": "esc", "enter": "enter"}
    return " / ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def screen_keys(screen: Any) -> list[tuple[str, str]]:
    """A screen's own keys: its bindings with a description, then what it documents beyond them."""
    rows: list[tuple[str, str]] = []
    for b in getattr(type(screen), "BINDINGS", []):
        if isinstance(b, Binding) and b.description:
            rows.append((key_label(b.key), b.description))
    better = dict(getattr(screen, "HELP_KEYS", []))  # a longer word on a bound key replaces its footer label
    rows = [(k, better.pop(k, d)) for k, d in rows]
    return rows + list(better.items())


def key_table(rows: list[tuple[str, str]]) -> Any:
    from rich.table import Table

    table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    table.add_column("key", style="bold", no_wrap=True, width=20)
    table.add_column("what", ratio=1)
    for k, d in rows:
        table.add_row(k, d)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,ctrl+g", "dismiss(None)", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90%; max-width: 100; height: 90%; border: thick $accent; background: $surface; }
    HelpScreen #help-body { height: 1fr; padding: 0 1; }
    HelpScreen .help-section { margin-top: 1; text-style: bold; color: $accent; }
    """

    def __init__(self, title: str, own: list[tuple[str, str]]):
        super().__init__()
        self.sections = [(title, own), ("Everywhere", GLOBAL_KEYS), ("Moving and editing", MOVING_KEYS)]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(" [b]copa keys[/b]  (↑↓ pgup pgdn scroll · esc closes)")
            with VerticalScroll(id="help-body"):
                for title, rows in self.sections:
                    if rows:
                        yield Label(escape(title), classes="help-section")
                        yield Static(key_table(rows))

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()
