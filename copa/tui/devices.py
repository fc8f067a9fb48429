"""The Devices screen."""

from __future__ import annotations

from textual.app import ComposeResult

from copa.tui.base import CopaScreen
from copa.tui.widgets import Unavailable


class DevicesScreen(CopaScreen):
    MODE = "devices"

    def compose_body(self) -> ComposeResult:
        yield Unavailable("Devices")
