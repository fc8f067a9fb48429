"""Asking copa for things a worker may not touch itself (inside a worker; for skill authors).

A skill with the ``memory`` permission never opens copa's database: it calls ``memory.*`` here,
and copa (the parent process) runs the operation on its own store and sends back plain data. The
request and the answer travel over the worker's protocol pipes, one JSON line each.

    from copa.skills.host import memory
    memory.remember("Ana's birthday is 3 May", kind="fact")
    memory.recall("birthday", limit=3)
"""

from __future__ import annotations

import json
from typing import Any


class HostError(Exception):
    """copa refused or failed an operation (the message says why)."""


_channel: tuple[Any, Any] | None = None  # (reply stream, request stream), set by the worker


def attach(out, inp) -> None:
    global _channel
    _channel = (out, inp)


def call(op: str, **args: Any) -> Any:
    if _channel is None:
        raise HostError(f"'{op}' is only available inside a copa skill worker")
    out, inp = _channel
    out.write(json.dumps({"host": op, "args": args}, ensure_ascii=False, default=str).encode() + b"\n")
    out.flush()
    line = inp.readline()
    if not line:
        raise HostError("copa closed the worker's channel")
    reply = json.loads(line)
    if not reply.get("ok"):
        err = reply.get("error") or f"{op} failed"
        raise (PermissionError(err) if reply.get("error_type") == "permission" else HostError(err))
    return reply.get("result")


class _Memory:
    """copa's memory store, through copa (needs the ``memory`` permission)."""

    def remember(self, text: str, kind: str = "note", subject: str | None = None) -> str:
        return call("memory.remember", text=text, kind=kind, subject=subject)

    def recall(self, query: str, limit: int = 5) -> list[dict]:
        return call("memory.recall", query=query, limit=limit)

    def forget(self, id: str) -> int:
        return call("memory.forget", id=id)

    def add_task(self, text: str, due: str | None = None) -> str:
        return call("memory.add_task", text=text, due=due)

    def tasks(self, include_done: bool = False) -> list[dict]:
        return call("memory.tasks", include_done=include_done)

    def set_task_status(self, id: str, status: str) -> dict:
        return call("memory.set_task_status", id=id, status=status)


class _System:
    """Facts only copa can see from outside the worker's PID namespace (``processes`` permission)."""

    def processes(self) -> list[dict]:
        return call("system.processes")


memory = _Memory()
system = _System()
