"""Network helpers for skill authors: a TCP connection to a declared host, from inside a worker.

A ``net:HOST`` skill runs in a network namespace whose only way out is copa's proxy (HTTP clients
find it through ``HTTPS_PROXY``). For anything that is not HTTP, ``connect(host, port)`` opens a
tunnel through the proxy (``CONNECT``); outside a worker (tests, a plain script) it connects directly.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit


def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A connected TCP socket to ``host:port`` (which the skill must declare as ``net:HOST``)."""
    proxy = os.environ.get("COPA_SKILL_PROXY")
    if not proxy:
        return socket.create_connection((host, port), timeout=timeout)
    p = urlsplit(proxy)
    sock = socket.create_connection((p.hostname, p.port), timeout=timeout)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: what follows the head belongs to the caller
        if not chunk:
            sock.close()
            raise ConnectionError(f"copa's proxy closed the connection to {host}:{port}")
        head += chunk
    status = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"200":
        body = sock.recv(4096).decode("utf-8", "replace")
        sock.close()
        if len(status) > 1 and status[1] == b"403":
            raise PermissionError(body or f"network access to {host} was not declared")
        raise ConnectionError(body or f"cannot reach {host}:{port}")
    return sock
