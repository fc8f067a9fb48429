"""copa's memory: one SQLite store for preferences, facts, tasks, conversations, events and reports.

    from copa.memory import MemoryStore
    with MemoryStore(path) as store:
        mid = store.add("I live in Lisbon", kind="fact", subject="user.home_city")
        hits = store.search("where do I live?")

See docs/memory.md for the design (schema, supersession, recall, forgetting, concurrency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from copa.exports import lazy

if TYPE_CHECKING:
    from copa.memory.model import KINDS, TASK_STATUSES, Hit, Memory, Session, to_utc
    from copa.memory.store import MemoryStore
    from copa.memory.transfer import export_jsonl, import_jsonl
    from copa.memory.vectors import release_idle

# Loaded on first use: importing the package (as the plugin manager does, for copa/memory/plugin.py)
# must not cost the store's ~40 ms to a command that never opens it.
_EXPORTS = {"KINDS": "copa.memory.model", "TASK_STATUSES": "copa.memory.model", "Hit": "copa.memory.model",
            "Memory": "copa.memory.model", "Session": "copa.memory.model", "to_utc": "copa.memory.model",
            "MemoryStore": "copa.memory.store", "export_jsonl": "copa.memory.transfer",
            "import_jsonl": "copa.memory.transfer", "release_idle": "copa.memory.vectors"}

__all__ = ["KINDS", "TASK_STATUSES", "Hit", "Memory", "MemoryStore", "Session", "export_jsonl", "import_jsonl",
           "release_idle", "to_utc"]


__getattr__ = lazy(__name__, _EXPORTS)
