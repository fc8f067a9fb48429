"""The frame every screen shares: navigation bar on top, the screen's body, the footer with its keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import get_current_worker

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

    def show_latest(self, show: Callable[..., object], *args: object) -> None:
        """From an ``exclusive`` thread worker: ``show(*args)`` on the app's thread, unless a newer
        call of the same worker was started meanwhile. A cancelled thread worker still runs to its
        end, and its older result must not be painted over the newer one."""
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(show, *args)

    def report_error(self, error: BaseException) -> None:
        """A CopaError is the user's to fix: one line, with its hint (so is a database another process
        kept locked: try again). Anything else is a bug."""
        from copa.db import as_busy
        from copa.errors import CopaError

        error = as_busy(error) or error
        if isinstance(error, CopaError):
            self.notify(str(error), severity="error", timeout=8)
        else:
            import logging

            logging.getLogger("copa.tui").exception("error in the TUI", exc_info=error)
            self.notify(f"internal error: {type(error).__name__}: {error}", severity="error", timeout=10)
