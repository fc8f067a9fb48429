"""The built-in memory tools the model can call: remember, recall, forget, task_update.

They are ``copa.tools.Tool`` objects over the ``MemoryStore``. Subjects are what make updates work: a new
memory with the subject of an older one supersedes it ("I moved to Lyon" replaces the old city).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from copa.agent.context import session_source
from copa.errors import CopaError
from copa.tools import ToolResult, ToolSpec

SUBJECT_HELP = ("A stable dotted key for what this is about, e.g. user.home_city, user.diet, project.copa.deadline. "
                "A new memory with the same subject replaces the old one, so reuse subjects for updates.")


class FunctionTool:
    """A Tool from a spec and a function(arguments) -> JSON-able content (raising CopaError = a failed call)."""

    def __init__(self, spec: ToolSpec, fn: Callable[[dict[str, Any]], Any]):
        self.spec = spec
        self.fn = fn

    def call(self, arguments: dict[str, Any]) -> ToolResult:
        t0 = time.perf_counter()
        try:
            content = self.fn(arguments)
            return ToolResult(True, content, duration_ms=(time.perf_counter() - t0) * 1000)
        except (CopaError, KeyError, TypeError, ValueError) as e:
            msg = e.message if isinstance(e, CopaError) else f"bad arguments: {e}"
            return ToolResult(False, error=msg, error_type="memory",
                              duration_ms=(time.perf_counter() - t0) * 1000)


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


def memory_tools(mem: Any, *, session_id: str | None = None, turn_id: str | None = None,
                 saved: list[str] | None = None) -> list[FunctionTool]:
    saved = saved if saved is not None else []
    source = session_source(session_id) if session_id else "agent"

    def remember(a: dict[str, Any]) -> Any:
        kind = a.get("kind") or "fact"
        if kind not in ("fact", "preference", "note", "task"):
            raise ValueError("kind must be fact, preference, note or task")
        subject = (a.get("subject") or "").strip() or None
        replaces = None
        if subject:
            current = [m for m in mem.history(subject) if m.current]
            replaces = current[-1].text if current else None
        meta = {"session_id": session_id, "turn": turn_id, "via": "tool"}
        if kind == "task":
            mid = mem.add_task(a["text"], due=a.get("due") or None, subject=subject)
        else:
            mid = mem.add(a["text"], kind=kind, subject=subject, source=source, metadata=meta)
        saved.append(mid)
        out: dict[str, Any] = {"saved": mid, "kind": kind}
        if replaces and replaces != a["text"]:
            out["replaces"] = replaces
        return out

    def recall(a: dict[str, Any]) -> Any:
        hits = mem.search(a["query"], limit=int(a.get("limit") or 8),
                          include_superseded=bool(a.get("include_history")))
        return [{"id": h.id, "kind": h.kind, "subject": h.subject, "text": h.text, "current": h.current,
                 "date": h.occurred_at.date().isoformat() if h.occurred_at else None} for h in hits]

    def forget(a: dict[str, Any]) -> Any:
        mid = mem.resolve(a["id"])
        n = mem.forget(mid, history=bool(a.get("all_versions")))
        return {"forgotten": n}

    def task_update(a: dict[str, Any]) -> Any:
        if not a.get("id"):
            if not a.get("text"):
                raise ValueError("give the id of a task to change, or text for a new task")
            mid = mem.add_task(a["text"], due=a.get("due") or None)
            saved.append(mid)
            return {"created": mid}
        mid = mem.resolve(a["id"])
        fields = {k: a[k] for k in ("text",) if a.get(k)}
        if a.get("due"):
            fields["due_at"] = a["due"]
        if fields:
            mem.update(mid, **fields)
        if a.get("status"):
            mem.set_task_status(mid, a["status"])
        m = mem.get(mid)
        return {"id": mid, "text": m.text, "status": m.status, "due": m.due_at.isoformat() if m.due_at else None}

    specs = [
        (ToolSpec("remember", "Save something worth keeping about the user or their work: a fact, a preference, "
                  "a note or a task. Use a subject so later changes replace earlier ones.",
                  _obj({"text": {"type": "string", "description": "The memory, as a full sentence"},
                        "kind": {"type": "string", "enum": ["fact", "preference", "note", "task"]},
                        "subject": {"type": "string", "description": SUBJECT_HELP},
                        "due": {"type": "string", "description": "For tasks: ISO 8601 due date/time"}},
                       ["text"]), source="memory"), remember),
        (ToolSpec("recall", "Search the user's memory (facts, preferences, tasks, past conversations).",
                  _obj({"query": {"type": "string"}, "limit": {"type": "integer"},
                        "include_history": {"type": "boolean", "description": "Also return superseded values"}},
                       ["query"]), source="memory"), recall),
        (ToolSpec("forget", "Delete a memory by id (for real). Only when the user asks to forget something.",
                  _obj({"id": {"type": "string"},
                        "all_versions": {"type": "boolean", "description": "Also earlier values of its subject"}},
                       ["id"]), dangerous=True, source="memory"), forget),
        (ToolSpec("task_update", "Create a task (no id) or change one: its text, due date or status.",
                  _obj({"id": {"type": "string"}, "text": {"type": "string"},
                        "status": {"type": "string", "enum": ["open", "in_progress", "done", "cancelled"]},
                        "due": {"type": "string"}}, []), source="memory"), task_update),
    ]
    return [FunctionTool(spec, fn) for spec, fn in specs]
