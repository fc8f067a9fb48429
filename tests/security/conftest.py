"""Fixtures for the red-team suite: hostile skill files run through copa's real runner.

Every test here also runs as an unprivileged user (test_unprivileged.py re-runs this folder as
``nobody``), except those marked ``root_only``.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from copa.skills import Skills

SECRETS = {"OPENAI_API_KEY": "sk-test-openai-4f9a", "ANTHROPIC_API_KEY": "sk-ant-test-77c1",
           "COPA_PASSPHRASE": "correct horse battery staple"}

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def skill_dir(copa_home: Path) -> Path:
    d = copa_home / "config" / "skills"  # the user's own skills folder, inside copa's config folder
    d.mkdir(parents=True)
    return d


@pytest.fixture
def write_skill(skill_dir: Path):
    def write(name: str, source: str, folder: Path | None = None) -> Path:
        path = (folder or skill_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def ws(copa_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A real Workstation with a file secrets store holding a secret, and API keys in the environment."""
    from copa.workstation import Workstation

    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("COPA_SECRETS_BACKEND", "file")
    w = Workstation(interactive=False)
    w.paths.ensure()
    w.secrets.set("WEATHER_KEY", "w-secret-9911")
    (w.paths.config_file).write_text("# config\n")
    w.memory.add("the door code is 4711", kind="fact")
    yield w
    w.close()


@pytest.fixture
def registry(ws):
    return ws.skills


class LocalServer:
    """A real TCP server on 127.0.0.1 that answers 'pong' to each connection, and counts them."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.hits += 1
            with conn:
                conn.sendall(b"pong")

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def local_server():
    srv = LocalServer()
    yield srv
    srv.close()


def new_registry(skill_dir: Path) -> Skills:
    return Skills(dirs=[("user", skill_dir)], min_interval=0)
