"""A recording HTTP proxy on 127.0.0.1: forwards every request to a real model server unchanged,
streams the answer back as it comes, and keeps what went each way, so a test can assert on what copa
really sent ("the recalled fact is in the request") and what the server really said (status, usage).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailers",
              "upgrade", "proxy-authorization", "proxy-authenticate", "accept-encoding"}


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    response: bytes = b""  # what the server sent back (the whole stream, for a stream)
    chunks: int = 0  # how many pieces the answer came in
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def text(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)

    def answer(self) -> Any:
        try:
            return json.loads(self.response)
        except ValueError:
            return None


class RecordingProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def root(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def chats(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.endswith("/chat/completions")]

    def clear(self) -> None:
        with self._lock:
            self.exchanges.clear()

    def start(self) -> RecordingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("content-length") or 0)))

            def _forward(self, raw: bytes) -> None:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                ex = Exchange(self.command, self.path, dict(self.headers.items()), body)
                with proxy._lock:
                    proxy.exchanges.append(ex)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    with httpx.Client(timeout=httpx.Timeout(300, connect=10)) as client, client.stream(
                            self.command, proxy.upstream + self.path, content=raw or None, headers=headers) as r:
                        ex.status = r.status_code
                        self.send_response(r.status_code)
                        for k, v in r.headers.items():
                            if k.lower() not in HOP_BY_HOP:
                                self.send_header(k, v)
                        self.send_header("transfer-encoding", "chunked")
                        self.end_headers()
                        for piece in r.iter_raw():
                            ex.response += piece
                            ex.chunks += 1
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                except (httpx.TransportError, BrokenPipeError, ConnectionResetError) as e:
                    # The server hung up without a response (llama-cpp-python does when a stream fails):
                    # hang up on the client too, as the server did.
                    ex.status = ex.status or -1
                    ex.response += f"<{type(e).__name__}: {e}>".encode()
                    self.close_connection = True
                finally:
                    ex.seconds = time.monotonic() - ex.started

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hanging up mid-answer (Ctrl-C tests) are expected

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
