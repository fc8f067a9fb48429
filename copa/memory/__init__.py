"""copa's memory: one SQLite store for preferences, facts, tasks, conversations, events and reports.

    from copa.memory import MemoryStore
    with MemoryStore(path) as store:
        mid = store.add("I live in Lisbon", kind="fact", subject="user.home_city")
        hits = store.search("where do I live?")

See docs/memory.md for the design (schema, supersession, recall, forgetting, concurrency).
"""

from copa.memory.model import KINDS, TASK_STATUSES, Hit, Memory, Session, to_utc
from copa.memory.store import MemoryStore

__all__ = ["KINDS", "TASK_STATUSES", "Hit", "Memory", "MemoryStore", "Session", "to_utc"]
