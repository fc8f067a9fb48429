"""copa's side of ``copa.skills.host``: the operations a worker may ask for, by permission.

A worker never opens copa's files; a skill with ``memory`` asks copa, which runs the operation on
its own store and answers with plain data. Each operation names the permission it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _brief(m) -> dict:
    return {"id": m.id, "text": m.text, "kind": m.kind, "subject": m.subject,
            "occurred_at": m.occurred_at.isoformat() if m.occurred_at else None}


def _memory_ops(mem, skill: str) -> dict[str, Callable[..., Any]]:
    def tasks(include_done: bool = False) -> list[dict]:
        statuses = ("open", "in_progress", "done", "cancelled") if include_done else ("open", "in_progress")
        return [{**_brief(t), "status": t.status, "due_at": t.due_at.isoformat() if t.due_at else None}
                for t in mem().tasks(statuses)]

    def set_status(id: str, status: str) -> dict:
        t = mem().set_task_status(id, status)
        return {"id": t.id, "status": t.status}

    return {
        "memory.remember": lambda text, kind="note", subject=None: mem().add(
            str(text), kind=kind, subject=subject, source=f"skill:{skill}"),
        "memory.recall": lambda query, limit=5: [{**_brief(h), "score": round(h.score, 4)}
                                                 for h in mem().search(str(query), limit=int(limit))],
        "memory.forget": lambda id: mem().forget(str(id)),
        "memory.add_task": lambda text, due=None: mem().add_task(str(text), due=due),
        "memory.tasks": tasks,
        "memory.set_task_status": set_status,
    }


def processes() -> list[dict]:
    """The machine's processes as copa sees them, CPU measured over 0.3 s (no environments, no memory maps)."""
    import contextlib
    import time

    import psutil

    procs = list(psutil.process_iter(["pid", "name", "username", "memory_info", "cmdline"]))
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(0.3)
    rows = []
    for p in procs:
        try:
            cpu = p.cpu_percent(None)
            mem = p.info["memory_info"].rss if p.info["memory_info"] else 0
        except psutil.Error:
            continue
        cmd = " ".join(p.info["cmdline"] or [])[:120] or p.info["name"]
        rows.append({"pid": p.info["pid"], "name": p.info["name"], "user": p.info["username"],
                     "cpu_percent": round(cpu, 1), "memory_mb": round(mem / 2**20, 1), "command": cmd})
    return rows


def handler(skill: str, perms, memory: Callable[[], Any] | None) -> Callable[[str, dict], Any]:
    def handle(op: str, args: dict) -> Any:
        if op.startswith("memory."):
            if not perms.memory:
                raise PermissionError("the memory store was not declared (add permissions=['memory'])")
            if memory is None:
                raise RuntimeError("no memory store is open here")
            fn = _memory_ops(memory, skill).get(op)
        elif op == "system.processes":
            if not perms.processes:
                raise PermissionError("listing processes was not declared (add permissions=['processes'])")
            fn = processes
        else:
            fn = None
        if fn is None:
            raise PermissionError(f"copa offers no operation '{op}'")
        if not isinstance(args, dict):
            raise TypeError("arguments must be an object")
        return fn(**args)

    return handle
