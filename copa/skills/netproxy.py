"""The only way out of a ``net:HOST`` worker: an HTTP proxy in copa that allows the declared hosts.

A ``net:HOST`` worker lives in an empty network namespace. It listens on 127.0.0.1 there and hands
that listening socket to copa (see ``isolate.hand_over_proxy_listener``); copa accepts on it, so the
worker's HTTP clients (``HTTP_PROXY``/``HTTPS_PROXY`` point at it) reach copa, and copa, in the real
network, connects to the host only when it matches a declared pattern. A raw ``connect()`` to any
other address finds nothing: the namespace has no route out. Supported: ``CONNECT host:port``
(HTTPS and any TCP, e.g. ``copa.skills.net.connect``) and absolute-form plain HTTP requests (one per
connection). Name resolution happens here, in copa, so the worker needs no DNS.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from urllib.parse import urlsplit

from copa.skills.permissions import host_allowed

log = logging.getLogger("copa.skills.proxy")
_MAX_HEAD = 16384
_HOP_HEADERS = (b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive")


class HostProxy:
    def __init__(self, listener: socket.socket, hosts: tuple[str, ...], name: str = "",
                 connect_timeout: float = 10.0):
        self.listener = listener
        self.hosts = hosts
        self.name = name
        self.connect_timeout = connect_timeout
        self.refused: list[str] = []  # hosts refused, newest last (for the error copa reports)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"copa-skill-proxy-{name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.listener.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(self.connect_timeout)
            head, rest = _read_head(client)
            if head is None:
                return
            request_line, _, headers = head.partition(b"\r\n")
            parts = request_line.split()
            if len(parts) != 3:
                return _refuse(client, 400, "not an HTTP proxy request")
            method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
            if method == "CONNECT":
                host, port = _split_host_port(target, 443)
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    return _refuse(client, 400, "send absolute http:// URLs or CONNECT to this proxy")
                host, port = url.hostname, url.port or 80
            if not host or not host_allowed(host, self.hosts):
                self.refused.append(host)
                log.info("skill %s: refused %s:%s (not declared)", self.name, host, port)
                return _refuse(client, 403, f"copa: network access to {host} was not declared "
                                            f"(add permissions=['net:{host}'])")
            try:
                upstream = socket.create_connection((host, port), timeout=self.connect_timeout)
            except OSError as e:
                return _refuse(client, 502, f"copa: cannot reach {host}:{port}: {e}")
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            else:
                path = url.path or "/"
                if url.query:
                    path += "?" + url.query
                lines = [b" ".join((parts[0], path.encode("latin-1"), parts[2]))]
                lines += [h for h in headers.split(b"\r\n") if h and h.split(b":", 1)[0].strip().lower()
                          not in _HOP_HEADERS]
                lines.append(b"Connection: close")
                upstream.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
            client.settimeout(None)
            upstream.settimeout(None)
            _pipe(client, upstream)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk or len(buf) > _MAX_HEAD:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _split_host_port(target: str, default: int) -> tuple[str, int]:
    if target.startswith("["):
        host, _, port = target[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = target.rpartition(":") if ":" in target else (target, "", "")
    try:
        return host, int(port) if port else default
    except ValueError:
        return "", 0


def _refuse(sock: socket.socket, code: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[code]
    body = message.encode()
    with contextlib.suppress(OSError):
        sock.sendall(f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=one_way, args=(b, a), daemon=True)
    t.start()
    one_way(a, b)
    t.join()
