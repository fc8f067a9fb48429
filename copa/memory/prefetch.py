"""A search started ahead, in a forked process, for a one-shot command (``copa ask``).

Why: without the daemon, a dense search in a fresh process first imports numpy and loads the model
(80-150 ms on this project's slow VM), while ``copa ask`` has other work to do before it needs the
answer (storing the question, loading the tools, preferences and tasks: ~80 ms). A forked child
does the search on the second core meanwhile, with everything the parent has imported already.

When: Linux only (after macOS's system frameworks are loaded a fork without exec is not safe), from a
single-threaded caller (a fork copies only the calling thread: a lock another thread held would
never be released in the child), with the dense model not loaded in this process and no daemon
serving recall (either answers sooner than a fork); the store decides the last two. Otherwise
nothing starts and the search runs where it is asked.

The child opens its own connection (a SQLite connection must not be used across a fork), searches,
writes the hits as JSON into a pipe and leaves with ``os._exit`` (no atexit handler runs, no buffer
of the parent's is flushed twice). Its default SIGINT disposition is restored: a Ctrl-C reaches the
whole process group and the child just ends. The parent takes the hits at the search with the same
arguments; a child that fails, dies, is too slow or was asked another question leaves the parent to
search itself, so the answer is the same either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from copa.memory.model import Hit

log = logging.getLogger("copa.memory.prefetch")

WAIT = 30.0  # seconds the parent waits for the child's answer before searching itself
MAX_ANSWER = 16 << 20  # bytes: more is not an answer


def possible() -> bool:
    """Whether this process may fork a search now."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


class Pending:
    """A search running in a child process, identified by ``key`` (its arguments)."""

    def __init__(self, key: Any, pid: int, fd: int):
        self.key, self.pid, self.fd = key, pid, fd

    def take(self, key: Any) -> list[Hit] | None:
        """The child's hits when it answered ``key``; None otherwise (the caller searches itself)."""
        try:
            if key != self.key:
                return None
            data = _read_all(self.fd, time.monotonic() + WAIT)
            if data is None:
                log.debug("the search ahead did not answer in %.0f s: searching here", WAIT)
                return None
            answer = json.loads(data) if data else None
            return [Hit.from_dict(d) for d in answer["hits"]] if isinstance(answer, dict) else None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.debug("the search ahead failed (%s): searching here", e)
            return None
        finally:
            self.discard()

    def discard(self) -> None:
        """Close the pipe and reap the child (ending it first if it still runs)."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1
        with contextlib.suppress(OSError):
            if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                os.kill(self.pid, signal.SIGKILL)  # its work is atomic: a batch of vectors commits or not
                os.waitpid(self.pid, 0)


def start(key: Any, search: Callable[[], list[Hit]]) -> Pending | None:
    """Run ``search`` in a forked child; None when that is not possible here."""
    if not possible():
        return None
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        os.close(r)
        os.close(w)
        log.debug("cannot fork a search ahead (%s)", e)
        return None
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(r)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            data = json.dumps({"hits": [h.as_dict() for h in search()]}, ensure_ascii=False).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
            status = 0
        except BaseException:  # noqa: BLE001 - the parent searches itself; nothing may escape a forked child
            pass
        finally:
            os._exit(status)
    os.close(w)
    return Pending(key, pid, r)


def _read_all(fd: int, deadline: float) -> bytes | None:
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER:
            return None
