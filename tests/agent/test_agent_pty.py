"""`copa ask` asks before a dangerous tool runs, on the real terminal (a pseudo-terminal here)."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

from copa.workstation import Workstation
from tests.agent.fake_servers import Answer, FakeModelServer


def _read_until(fd: int, needle: bytes, timeout: float = 30.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def _run_in_pty(args: list[str], answer: bytes) -> tuple[bytes, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, as in a user's shell
        os.execv(sys.executable, [sys.executable, "-m", "copa", *args])
    try:
        out = _read_until(fd, b"[y/N]")
        os.write(fd, answer)
        out += _read_until(fd, b"\x00", timeout=30)  # until the child closes the pty
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_dangerous_tool_asks_on_the_terminal(copa_home):
    ws = Workstation()
    mid = ws.memory.add("The user lived in Lisbon.", kind="fact")
    ws.close()
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        srv.add(Answer(tool_calls=[("forget", {"id": mid})]), Answer("Forgotten."))
        out, code = _run_in_pty(["ask", "forget Lisbon"], b"y\n")
        tool_result = srv.requests[1].body["messages"][-1]["content"]
    assert code == 0, out
    assert b"allow forget (memory) with" in out and b"Forgotten." in out
    assert '"ok": true' in tool_result, (tool_result, out)
    ws = Workstation()
    assert ws.memory.get(mid) is None
    ws.close()


def test_refusing_on_the_terminal_keeps_the_memory(copa_home):
    ws = Workstation()
    mid = ws.memory.add("The user lived in Porto.", kind="fact")
    ws.close()
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        srv.add(Answer(tool_calls=[("forget", {"id": mid})]), Answer("Kept it."))
        out, code = _run_in_pty(["ask", "forget Porto"], b"n\n")
        assert '"refused by the user"' in srv.requests[1].text() or "refused by the user" in srv.requests[1].text()
    assert code == 0 and b"Kept it." in out
    ws = Workstation()
    assert ws.memory.get(mid) is not None
    ws.close()
