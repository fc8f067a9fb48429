"""The frame every screen shares: navigation bar on top, the screen's body, the footer with its keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from copa.tui.widgets import NavBar

if TYPE_CHECKING:
    from copa.workstation import Workstation


class CopaScreen(Screen):
    MODE = ""  # the app mode this screen is shown in

    @property
    def ws(self) -> Workstation:
        return self.app.ws  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE, id="nav")
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:  # pragma: no cover - every screen overrides it
        yield from ()

    def report_error(self, error: BaseException) -> None:
        """A CopaError is the user's to fix: one line, with its hint. Anything else is a bug."""
        from copa.errors import CopaError

        if isinstance(error, CopaError):
            self.notify(str(error), severity="error", timeout=8)
        else:
            import logging

            logging.getLogger("copa.tui").exception("error in the TUI", exc_info=error)
            self.notify(f"internal error: {type(error).__name__}: {error}", severity="error", timeout=10)
