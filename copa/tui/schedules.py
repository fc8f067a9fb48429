"""The Schedules screen."""

from __future__ import annotations

from textual.app import ComposeResult

from copa.tui.base import CopaScreen
from copa.tui.widgets import Unavailable


class SchedulesScreen(CopaScreen):
    MODE = "schedules"

    def compose_body(self) -> ComposeResult:
        yield Unavailable("Schedules")
