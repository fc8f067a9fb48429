"""Memory: remember, recall and forget things, and keep a task list, in copa's memory store."""

from __future__ import annotations

from typing import Literal

from copa.skills import skill
from copa.skills.host import memory

# The memory store is copa's: this skill never opens its database, it asks copa (over the worker's
# channel) to run each operation, so no skill can read the files under copa's folders.


@skill(permissions=["memory"])
def memory_remember(text: str, kind: Literal["note", "fact", "preference", "event"] = "note",
                    subject: str | None = None) -> dict:
    """Save something worth remembering (a note, a fact, a preference or an event).

    Args:
        text: what to remember, as a full sentence.
        kind: what sort of memory it is.
        subject: a stable key such as "user.home_city"; a new value replaces the old one.
    """
    return {"id": memory.remember(text, kind=kind, subject=subject)}


@skill(permissions=["memory"])
def memory_recall(query: str, limit: int = 5) -> list[dict]:
    """Search the memory store for what best answers a question.

    Args:
        query: the question or words to look for.
        limit: most memories to return.
    """
    return memory.recall(query, limit=limit)


@skill(permissions=["memory"], dangerous=True)  # irreversible: asks first
def memory_forget(id: str) -> dict:
    """Delete a memory for good, by its id (from memory_recall).

    Args:
        id: the memory's id.
    """
    return {"deleted": memory.forget(id)}


@skill(permissions=["memory"])
def memory_add_task(text: str, due: str | None = None) -> dict:
    """Add a task to the to-do list.

    Args:
        text: what needs doing.
        due: when it is due, ISO 8601 (e.g. 2025-03-05T17:00) or words such as "today".
    """
    return {"id": memory.add_task(text, due=due)}


@skill(permissions=["memory"])
def memory_tasks(include_done: bool = False) -> list[dict]:
    """The to-do list: open and in-progress tasks, due ones first.

    Args:
        include_done: also list done and cancelled tasks.
    """
    return memory.tasks(include_done=include_done)


@skill(permissions=["memory"])
def memory_set_task_status(id: str, status: Literal["open", "in_progress", "done", "cancelled"]) -> dict:
    """Mark a task open, in progress, done or cancelled.

    Args:
        id: the task's id (from memory_tasks).
        status: its new status.
    """
    return memory.set_task_status(id, status)
