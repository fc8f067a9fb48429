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

Two steps, so that the slow part starts as early as possible: the child is forked as soon as the
caller knows it will search (``start``: the child loads numpy and the model), and is handed the
search itself once its arguments are known (``Ahead.ask``: the question, the conversation, the time
it is asked). ``copa ask`` forks first thing, before it even opens the store (copa/agent/ahead.py),
and asks when its turn starts.

The child opens its own connection (a SQLite connection must not be used across a fork), searches,
writes the hits as JSON into a pipe (its stdout and stderr are /dev/null) and leaves with
``os._exit`` (no atexit handler runs, no buffer of the parent's is flushed twice); a parent that
leaves without asking closes the request pipe, and the child ends. Its default SIGINT disposition
is restored: a Ctrl-C reaches the whole process group and the child just ends. The parent takes
the hits at the search with the same arguments; a child that fails, dies, is too slow or was asked
another question leaves the parent to search itself, so the answer is the same either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
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
MAX_REQUEST = 60_000  # bytes: a request that fits in a pipe's buffer never waits for the child


def possible() -> bool:
    """Whether this process may fork a search now."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


class Ahead:
    """A child process forked ahead: it gets ready (``prepare``), then runs the one search the parent
    hands it (``ask``); the parent takes the hits at the search with the same ``key``."""

    def __init__(self, pid: int, request_fd: int, answer_fd: int):
        self.pid, self.request_fd, self.fd = pid, request_fd, answer_fd
        self.key: Any = None  # the search it was asked; None until then

    @property
    def asked(self) -> bool:
        return self.request_fd < 0

    def ask(self, key: Any, request: Any) -> bool:
        """Hand the child its search (``request``, passed to the function ``prepare`` returned);
        False when it cannot take it (it died): the caller searches itself."""
        if self.asked:
            return False
        try:
            data = pickle.dumps(request)  # between two copies of this process: no foreign data is unpickled
            if len(data) > MAX_REQUEST:  # a pipe holds 64 KiB: a longer write would wait for the child
                return False
            os.write(self.request_fd, data)
            self.key = key
            return True
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as e:  # gone (EPIPE), or not data
            log.debug("the search ahead cannot be asked (%s): searching here", e)
            return False
        finally:
            os.close(self.request_fd)  # end of the request: the child reads up to here
            self.request_fd = -1

    def take(self, key: Any) -> list[Hit] | None:
        """The child's hits when it answered ``key``; None otherwise (the caller searches itself)."""
        try:
            if self.key is None or key != self.key:
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
        """Close the pipes and reap the child (ending it first if it still runs)."""
        if self.fd < 0:
            return
        for fd in (self.request_fd, self.fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.request_fd = self.fd = -1
        with contextlib.suppress(OSError):
            if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                os.kill(self.pid, signal.SIGKILL)  # its work is atomic: a batch of vectors commits or not
                os.waitpid(self.pid, 0)


def start(prepare: Callable[[], Callable[[Any], list[Hit]] | None]) -> Ahead | None:
    """Fork a child that runs ``prepare`` (loading what a search needs) at once, then waits for its
    request (``Ahead.ask``) and answers it with the function ``prepare`` returned (``prepare``
    returning None ends it). None when forking is not possible here."""
    if not possible():
        return None
    request_r, request_w = os.pipe()
    answer_r, answer_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        for fd in (request_r, request_w, answer_r, answer_w):
            os.close(fd)
        log.debug("cannot fork a search ahead (%s)", e)
        return None
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(request_w)  # or the request would never end
            os.close(answer_r)
            quiet = os.open(os.devnull, os.O_WRONLY)  # its one output is the answer: no warning of a
            os.dup2(quiet, 1)  # library it imports (nor one of the configuration it reads) reaches
            os.dup2(quiet, 2)  # the terminal, twice or in the middle of an answer
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # nor does it hold a pipe the parent reads
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            # One BLAS thread: numpy's OpenBLAS otherwise starts one per core at import, and its
            # spinning took the core the parent runs on (a fresh `copa ask` 279 -> 245 ms with this
            # alone, docs/benchmarks.md round 11); one search's products are too small to share out.
            os.environ["OPENBLAS_NUM_THREADS"] = "1"
            search = prepare()
            if search is None:  # nothing to search ahead after all
                os._exit(0)
            request = _read_all(request_r, time.monotonic() + WAIT)
            if request:  # empty: the parent left without asking
                hits = search(pickle.loads(request))
                data = json.dumps({"hits": [h.as_dict() for h in hits]}, ensure_ascii=False).encode()
                view = memoryview(data)
                while view:
                    view = view[os.write(answer_w, view):]
                status = 0
        except BaseException:  # noqa: BLE001 - the parent searches itself; nothing may escape a forked child
            pass
        finally:
            os._exit(status)
    os.close(request_r)
    os.close(answer_w)
    return Ahead(pid, request_w, answer_r)


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
