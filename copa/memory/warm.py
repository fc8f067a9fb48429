"""Recall answered by a warm process (the daemon) for one-shot commands.

A one-shot ``copa ask`` or ``copa memory search`` with the dense retriever spends ~130 ms importing
numpy and loading the model, and reads every stored vector (51 MB at 100,000 memories) before its
first search. The daemon keeps both loaded, so it answers searches over a UNIX socket in copa's
state folder; a process whose model is not loaded asks it first and searches itself when no daemon
answers (none running, another database or model, an error, or no answer within ``TIMEOUT``).

Who can ask: the socket is the user's alone (0600) and every request carries a token the daemon
writes beside it (0600, new at each start). Skills cannot read copa's folders
(Landlock carve-out), so a skill granted ``network``, whose sockets could reach the socket's path,
still has no token (docs/skills.md; tests/memory/test_memory_warm.py tries).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import socket
import socketserver
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copa.memory.model import Hit

if TYPE_CHECKING:
    from copa.memory.sessions import SessionHit

log = logging.getLogger("copa.memory.warm")

SOCKET_NAME = "recall.sock"
TOKEN_NAME = "recall.token"
TIMEOUT = 3.0  # seconds a one-shot command waits for the daemon before searching itself
MAX_REQUEST = 1 << 20  # bytes: a question longer than this is searched locally
PROTOCOL = 1
_SEARCH_ARGS = ("limit", "kinds", "as_of", "include_superseded", "asked_at", "exclude_session")
_SESSION_ARGS = ("limit", "as_of", "asked_at", "exclude_session")
_serving = threading.Event()  # this process serves recall: it never asks itself


def announced(state_dir: Path | str | None) -> bool:
    """Whether a daemon has said it serves recall for this state folder (its token file exists; it
    may have died since: a search that gets no answer searches itself)."""
    return state_dir is not None and (Path(state_dir) / TOKEN_NAME).exists()


def available() -> bool:
    return hasattr(socket, "AF_UNIX")


class RecallServer:
    """Serves ``store.search`` to the user's other copa processes (started by the daemon)."""

    def __init__(self, store: Any, state_dir: Path):
        self.store = store
        self.sock_path = Path(state_dir) / SOCKET_NAME
        self.token_path = Path(state_dir) / TOKEN_NAME
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    def start(self) -> None:
        token = secrets.token_hex(32)
        self.token_path.unlink(missing_ok=True)  # both may be left by a daemon that was killed
        self.sock_path.unlink(missing_ok=True)
        server = _Server(str(self.sock_path), _Handler)
        os.chmod(self.sock_path, 0o600)
        server.store, server.token = self.store, token
        self._server = server
        _serving.set()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="copa-recall",
                         daemon=True).start()
        threading.Thread(target=self._warm_up, name="copa-recall-warm", daemon=True).start()
        _write_private(self.token_path, token)  # last: a client that reads it finds the socket listening

    def _warm_up(self) -> None:
        """Load the model and the vectors now, so the first question does not pay for them; only
        when there are vectors to search (the model and the vectors cost the daemon ~65 MB, which an
        empty store need not hold: its first search loads it instead)."""
        with contextlib.suppress(Exception):
            if self.store.vectors is not None and self.store._read("SELECT 1 FROM memory_vectors LIMIT 1"):
                self.store.search("warm up", limit=1)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for p in (self.sock_path, self.token_path):
            p.unlink(missing_ok=True)
        _serving.clear()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    store: Any
    token: str


class _Handler(socketserver.StreamRequestHandler):
    timeout = 10.0  # a client that connects and says nothing

    def handle(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
            req = json.loads(line) if len(line) <= MAX_REQUEST else None
            answer = self._answer(server, req)
        except Exception as e:  # a bad request or a failed search: the client searches itself
            log.debug("recall request failed: %s", e)
            answer = {"error": type(e).__name__}
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")

    @staticmethod
    def _answer(server: _Server, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or req.get("v") != PROTOCOL:
            return {"error": "protocol"}
        if not hmac.compare_digest(str(req.get("token", "")), server.token):
            return {"error": "token"}
        store = server.store
        if req.get("db") != str(store.path) or req.get("model") != (store.vectors.model if store.vectors else None):
            return {"error": "another store"}
        if req.get("op") == "ping":
            return {"serving": True}
        if req.get("op", "search") == "sessions":
            kwargs = {k: req[k] for k in _SESSION_ARGS if k in req}
            found = store.search_sessions(str(req.get("query", "")), **kwargs)
            return {"sessions": [f.as_dict() for f in found]}
        kwargs = {k: req[k] for k in _SEARCH_ARGS if k in req}
        hits = store.search(str(req.get("query", "")), **kwargs)
        return {"hits": [h.as_dict() for h in hits]}


def ask(state_dir: Path, store: Any, query: str, **kwargs: Any) -> list[Hit] | None:
    """The daemon's answer to ``store.search(query, **kwargs)``, or None when it gives none."""
    answer = _request(state_dir, store, {"op": "search", "query": query, **kwargs})
    try:
        return None if answer is None else [Hit.from_dict(d) for d in answer["hits"]]
    except (KeyError, TypeError):
        return None


def ask_sessions(state_dir: Path, store: Any, query: str, **kwargs: Any) -> list[SessionHit] | None:
    """The daemon's answer to ``store.search_sessions(query, **kwargs)``, or None."""
    from copa.memory.sessions import SessionHit

    answer = _request(state_dir, store, {"op": "sessions", "query": query, **kwargs})
    try:
        return None if answer is None else [SessionHit.from_dict(d) for d in answer["sessions"]]
    except (KeyError, TypeError):
        return None


def serving(state_dir: Path, store: Any) -> bool:
    """Whether a daemon answers this store's searches with this model (what `copa doctor` tells)."""
    return _request(state_dir, store, {"op": "ping"}) is not None


def _request(state_dir: Path, store: Any, fields: dict[str, Any]) -> dict[str, Any] | None:
    if _serving.is_set() or not available():
        return None
    state_dir = Path(state_dir)
    try:
        token = (state_dir / TOKEN_NAME).read_text().strip()
    except OSError:
        return None  # no daemon serves recall
    req = {"v": PROTOCOL, "token": token, "db": str(store.path), "model": store.vectors.model,
           **{k: v for k, v in fields.items() if v is not None}}
    data = json.dumps(req, ensure_ascii=False, default=_iso).encode() + b"\n"
    if len(data) > MAX_REQUEST:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(str(state_dir / SOCKET_NAME))
            s.sendall(data)
            answer = json.loads(_read_line(s))
    except (OSError, ValueError) as e:
        log.debug("the daemon did not answer (%s): searching here", e)
        return None
    if not isinstance(answer, dict) or "error" in answer:
        log.debug("the daemon refused the search (%s): searching here", answer)
        return None
    return answer


def _read_line(s: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def _iso(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__}")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only the user can read (created 0600, never widened)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
