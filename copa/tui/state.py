"""What the TUI remembers between runs: the theme and the chat's input history, in one small JSON
file in the state folder (``COPA_HOME/state/tui.json``), written atomically (mode 0600: inputs are
the user's words). A missing or damaged file means defaults, never a failed start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HISTORY_LIMIT = 500  # inputs kept (oldest dropped)


class TuiState:
    def __init__(self, path: Path):
        self.path = path
        self.theme: str | None = None
        self.history: list[str] = []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            self.theme = data.get("theme") if isinstance(data.get("theme"), str) else None
            history = data.get("history")
            if isinstance(history, list):
                self.history = [h for h in history if isinstance(h, str)][-HISTORY_LIMIT:]

    def save(self) -> None:
        from copa.paths import atomic_write

        data: dict[str, Any] = {"theme": self.theme, "history": self.history[-HISTORY_LIMIT:]}
        try:
            atomic_write(self.path, json.dumps(data, ensure_ascii=False).encode())
        except OSError:  # a read-only home loses the history, not the session
            import logging

            logging.getLogger("copa.tui").warning("could not save %s", self.path, exc_info=True)

    def remember_input(self, text: str) -> None:
        if not self.history or self.history[-1] != text:
            self.history.append(text)
            self.save()
