"""The workstation app. Screens grow here as the core parts land (see issue: the TUI)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static

from copa import __version__


class CopaApp(App):
    TITLE = "copa"
    SUB_TITLE = f"v{__version__}"
    BINDINGS = [("q", "quit", "Quit"), ("d", "toggle_dark", "Theme")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._status(), id="status")
        yield Footer()

    def _status(self) -> str:
        from copa.doctor import run_checks
        from copa.workstation import Workstation

        checks = run_checks(Workstation(), ["copa.doctor:check_config", "copa.doctor:check_database",
                                            "copa.doctor:check_providers"])
        lines = ["Welcome to copa.", ""] + [f"{c.name}: {c.detail}" for c in checks]
        lines += ["", "One-shot commands: copa --help"]
        return "\n".join(lines)

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"
