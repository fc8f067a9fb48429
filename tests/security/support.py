"""Helpers shared by the red-team tests (imported as tests.security.support)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from copa.skills import Skills

SECRETS = {"OPENAI_API_KEY": "sk-test-openai-4f9a", "ANTHROPIC_API_KEY": "sk-ant-test-77c1",
           "COPA_PASSPHRASE": "correct horse battery staple"}

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


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


def new_registry(skill_dir: Path) -> Skills:
    return Skills(dirs=[("user", skill_dir)], min_interval=0)
