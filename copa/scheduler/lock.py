"""One daemon (one scheduler engine) per COPA_HOME: an exclusive flock on ``state/daemon.lock``.

The file holds JSON ``{"pid": ..., "started": ...}`` (what ``copa doctor`` and ``daemon status``
read), but the *lock* is what says a daemon runs: the kernel drops it when the process dies, even on
SIGKILL, so a stale file never blocks a start and a recycled pid never fakes a running daemon.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from copa.errors import CopaError, ExitCode


class DaemonRunning(CopaError):
    exit_code = ExitCode.FAILURE


def read_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
        return info if isinstance(info, dict) else None
    except (FileNotFoundError, ValueError, OSError):
        return None


def holder(path: Path) -> dict[str, Any] | None:
    """The lock file's JSON if a live process holds the lock, else None (a probe, never blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_info(path) or {"pid": None, "started": None}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class DaemonLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self.started = datetime.now(UTC)

    def acquire(self) -> DaemonLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for _ in range(10):  # the file may be unlinked by an exiting daemon between open and lock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                info = read_info(self.path) or {}
                raise DaemonRunning(
                    f"a daemon is already running for this COPA_HOME (pid {info.get('pid', '?')}, "
                    f"since {info.get('started', '?')})",
                    hint="see 'copa daemon status'; stop it with 'copa daemon stop'",
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(),
                                     "started": self.started.isoformat(timespec="seconds")}).encode())
            os.fsync(fd)
            self.fd = fd
            return self
        raise DaemonRunning("could not take the daemon lock (it kept changing)", hint="try again")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlink while still holding it: see the inode check above
        finally:
            os.close(self.fd)
            self.fd = None
