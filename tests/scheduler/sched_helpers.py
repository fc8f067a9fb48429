"""Helpers for the scheduler tests: real daemon subprocesses (always killed at teardown), a real
HTTP receiver on 127.0.0.1, and small polling helpers with hard time bounds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def query(home: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    db = home / "data" / "copa.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        conn.close()


class DaemonProcs:
    """Start `copa daemon` subprocesses; every one is killed (SIGKILL, process group) at teardown."""

    def __init__(self, home: Path):
        self.home = home
        self.procs: list[subprocess.Popen] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "COPA_HOME": str(self.home), "COPA_SCHEDULER_POLL_INTERVAL": "0.2",
                "COPA_SCHEDULER_RETRY_DELAY": "0.2", "COPA_SCHEDULER_DELIVERY_RETRY_DELAY": "0.1", **extra}

    def start(self, **extra: str) -> subprocess.Popen:
        log = open(self.home / f"daemon-{len(self.procs)}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "copa", "daemon"], env=self.env(**extra), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        proc.log_file = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        wait_for(lambda: proc.poll() is not None or "running (pid" in Path(log.name).read_text(), 30,
                 what="the daemon to start")
        assert proc.poll() is None, Path(log.name).read_text()
        return proc

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            p.log_file.close()


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request. ``plan[path]`` is a list of
    status codes to answer in turn (then 200); ``hold[path]`` an Event a request waits on."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: dict[str, list[int]] = {}
        self.hold: dict[str, threading.Event] = {}
        self.body_for: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - serves files put in ``outer.files``
                data = outer.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                rec = {"path": self.path, "headers": dict(self.headers), "body": body}
                try:
                    rec["json"] = json.loads(body)
                except ValueError:
                    rec["json"] = None
                outer.requests.append(rec)
                ev = outer.hold.get(self.path)
                if ev is not None:
                    ev.wait(60)
                codes = outer.plan.get(self.path) or []
                code = codes.pop(0) if codes else 200
                payload = outer.body_for.get(self.path, b'{"ok": true}')
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        for ev in self.hold.values():
            ev.set()
        self.server.shutdown()
        self.server.server_close()



def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path(f"/proc/{pid}/stat")).read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
