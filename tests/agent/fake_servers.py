"""Loopback model servers that speak the real wire protocols, scripted per test.

Reusable by any test (agent, TUI, scheduler, daemon)::

    from tests.agent.fake_servers import Answer, FakeModelServer, Hang, Status

    with FakeModelServer("openai") as srv:          # or "anthropic", "gemini"
        srv.add(Status(429, retry_after="1"))         # first request: rate limited
        srv.add(Answer("Hello there", chunk=3))       # second: streamed in 3-character pieces
        srv.add(Answer(tool_calls=[("recall", {"query": "city"})], arg_chunk=2))
        srv.configure(name="fake")                    # writes [models.fake] into $COPA_HOME's config
        ...                                           # run copa (in-process or `copa ask` subprocess)
        srv.requests[0].body["messages"]              # what the model was shown

Each request takes the next scripted item; when the script is empty, ``srv.responder(request)`` is asked
(``None`` by default, which answers HTTP 500 "script exhausted" so a missing step fails loudly).
Items: ``Answer`` (a streamed reply; ``drop_after`` closes the socket mid-stream, ``malformed_at``
injects an unparseable event, ``hang_after`` stalls mid-stream, ``delay`` paces events), ``Status``
(an HTTP error with the provider's error body and optional Retry-After), ``Hang`` (accept the request,
never answer). A callable item is called with the request and must return one of those.

Wire formats: OpenAI chat-completions SSE (``/v1/chat/completions``, tool-call argument deltas,
``[DONE]``), Anthropic Messages event stream (``/v1/messages``, ``input_json_delta``), Gemini
``/v1beta/models/M:streamGenerateContent?alt=sse`` (CRLF-separated events); a request that does not
ask for a stream (``"stream": false``, Gemini's ``:generateContent``) gets the whole answer as one JSON
object. ``error_after`` ends a stream with the wire's error event. OpenAI also answers ``GET
/api/tags`` like Ollama. Run it by hand: ``python tests/agent/fake_servers.py openai --text hi``.

The shapes follow the vendors' API references, and the recorded exchanges in tests/agent/wire/
(which cite them) are checked against these encoders (tests/agent/test_wire_exchanges.py): where the
two differ, the documentation wins.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WIRES = ("openai", "anthropic", "gemini")


@dataclass
class Answer:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, arguments)
    chunk: int = 4  # characters of text per event
    arg_chunk: int = 5  # characters of JSON arguments per event (OpenAI, Anthropic)
    usage: tuple[int, int] = (12, 7)  # input, output tokens
    stop: str | None = None  # wire-level stop reason; default: end of turn, or tool use when calling
    delay: float = 0.0  # seconds between events
    drop_after: int | None = None  # close the connection after this many events (no proper end)
    malformed_at: int | None = None  # send an unparseable event before event number N
    hang_after: int | None = None  # after N events, stall (connection open) until the server stops
    raw_events: list[str | bytes] | None = None  # send these SSE blocks verbatim instead (bytes: as they are)
    raw_json: dict[str, Any] | bytes | None = None  # a plain request gets this body verbatim instead
    error_after: int | None = None  # after N events, send the wire's error event and end the stream
    error: tuple[str, str] = ("overloaded_error", "Overloaded")  # (error type, message) for error_after


@dataclass
class Status:
    code: int
    message: str = "scripted failure"
    retry_after: str | None = None
    body: dict[str, Any] | None = None  # the error body verbatim (default: the wire's shape with ``message``)


@dataclass
class Hang:
    """Read the request, then send nothing (until the server stops)."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float

    def text(self) -> str:
        """The whole body as text: handy for 'was the model shown X' assertions."""
        return json.dumps(self.body, ensure_ascii=False)


Item = Answer | Status | Hang | Callable[[Recorded], Any]


def _pieces(s: str, n: int) -> list[str]:
    n = max(1, n)
    return [s[i:i + n] for i in range(0, len(s), n)] or []


# --- encoders: one list of SSE blocks per answer ---------------------------------------------

def _openai_tool_calls(a: Answer) -> list[dict[str, Any]]:
    return [{"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(a.tool_calls)]


def _openai_usage(a: Answer) -> dict[str, Any]:
    return {"prompt_tokens": a.usage[0], "completion_tokens": a.usage[1], "total_tokens": sum(a.usage),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def encode_openai(a: Answer, model: str, include_usage: bool = True) -> list[str]:
    """chat.completion.chunk objects; with stream_options.include_usage every chunk carries "usage":
    null and one last chunk with empty choices carries the usage (the API reference's words)."""
    def chunk(delta: dict | None = None, finish: str | None = None, **extra: Any) -> str:
        obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
               "service_tier": "default", "system_fingerprint": "fp_fake",
               "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                     "finish_reason": finish}]}
        if include_usage:
            obj["usage"] = None
        obj.update(extra)
        return f"data: {json.dumps(obj)}\n\n"

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": p}) for p in _pieces(a.text, a.chunk)]
    for i, (name, args) in enumerate(a.tool_calls):
        out.append(chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
                for p in _pieces(json.dumps(args), a.arg_chunk)]
    out.append(chunk({}, a.stop or ("tool_calls" if a.tool_calls else "stop")))
    if include_usage:
        out.append(chunk(None, usage=_openai_usage(a)))
    out.append("data: [DONE]\n\n")
    return out


def plain_openai(a: Answer, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": a.text or None, "refusal": None, "annotations": []}
    if a.tool_calls:
        message["tool_calls"] = _openai_tool_calls(a)
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": a.stop or ("tool_calls" if a.tool_calls else "stop")}],
            "usage": _openai_usage(a), "service_tier": "default", "system_fingerprint": "fp_fake"}


def encode_anthropic(a: Answer, model: str) -> list[str]:
    def ev(obj: dict) -> str:
        return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n"

    out = [ev({"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {
            "input_tokens": a.usage[0], "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": 1}}}),
        ev({"type": "ping"})]
    index = 0
    if a.text:
        out.append(ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        out += [ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
                for p in _pieces(a.text, a.chunk)]
        out.append(ev({"type": "content_block_stop", "index": 0}))
        index = 1
    for i, (name, args) in enumerate(a.tool_calls, start=index):
        out.append(ev({"type": "content_block_start", "index": i,
                       "content_block": {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": {}}}))
        out += [ev({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta",
                                                                          "partial_json": p}})
                for p in _pieces(json.dumps(args), a.arg_chunk)]
        out.append(ev({"type": "content_block_stop", "index": i}))
    out.append(ev({"type": "message_delta", "delta": {"stop_reason": a.stop or ("tool_use" if a.tool_calls
                                                                                 else "end_turn"),
                                                      "stop_sequence": None},
                   "usage": {"output_tokens": a.usage[1]}}))
    out.append(ev({"type": "message_stop"}))
    return out


def _gemini_usage(a: Answer) -> dict[str, Any]:
    return {"promptTokenCount": a.usage[0], "candidatesTokenCount": a.usage[1], "totalTokenCount": sum(a.usage),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": a.usage[0]}]}


def encode_gemini(a: Answer, model: str) -> list[str]:
    usage = _gemini_usage(a)
    parts: list[list[dict]] = [[{"text": p}] for p in _pieces(a.text, a.chunk)]
    if a.tool_calls:
        parts.append([{"functionCall": {"name": n, "args": args}} for n, args in a.tool_calls])
    parts = parts or [[{"text": ""}]]
    out = []
    for i, p in enumerate(parts):
        cand: dict[str, Any] = {"content": {"role": "model", "parts": p}, "index": 0}
        if i == len(parts) - 1:
            cand["finishReason"] = a.stop or "STOP"
        chunk = {"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": "fake-response"}
        out.append(f"data: {json.dumps(chunk)}\r\n\r\n")
    return out


def plain_anthropic(a: Answer, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": a.text}] if a.text else []
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
                for i, (name, args) in enumerate(a.tool_calls, start=len(content))]
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": a.stop or ("tool_use" if a.tool_calls else "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": a.usage[0], "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": a.usage[1]}}


def plain_gemini(a: Answer, model: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": a.text}] if a.text else []
    parts += [{"functionCall": {"name": n, "args": args}} for n, args in a.tool_calls]
    return {"candidates": [{"content": {"role": "model", "parts": parts or [{"text": ""}]},
                            "finishReason": a.stop or "STOP", "index": 0}],
            "usageMetadata": _gemini_usage(a), "modelVersion": model, "responseId": "fake-response"}


def error_event(wire: str, kind: str, message: str) -> str:
    """The event each wire ends a stream with when the server fails mid-answer."""
    if wire == "anthropic":
        return f"event: error\ndata: {json.dumps({'type': 'error', 'error': {'type': kind, 'message': message}})}\n\n"
    if wire == "gemini":
        return f"data: {json.dumps({'error': {'code': 503, 'message': message, 'status': 'UNAVAILABLE'}})}\r\n\r\n"
    return f"data: {json.dumps({'error': {'message': message, 'type': kind, 'param': None, 'code': None}})}\n\n"


ENCODERS = {"openai": encode_openai, "anthropic": encode_anthropic, "gemini": encode_gemini}
PLAIN = {"openai": plain_openai, "anthropic": plain_anthropic, "gemini": plain_gemini}
MALFORMED = {"openai": "data: {\"choices\": [{\"delta\": {\"content\": \"oops\"\n\n",
             "anthropic": "event: content_block_delta\ndata: {not json at all\n\n",
             "gemini": "data: {\"candidates\": [\r\n\r\n"}


# Error types by HTTP status, as the API references list them.
ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                    529: "overloaded_error"}
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_body(wire: str, code: int, message: str) -> dict[str, Any]:
    if wire == "anthropic":
        return {"type": "error", "error": {"type": ANTHROPIC_ERRORS.get(code, "api_error"), "message": message},
                "request_id": "req_fake"}
    if wire == "gemini":
        return {"error": {"code": code, "message": message, "status": GEMINI_STATUS.get(code, "INTERNAL")}}
    kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(
        code, "server_error" if code >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up are expected here
            super().handle_error(request, client_address)


class FakeModelServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (free port) answering like the chosen provider."""

    def __init__(self, wire: str = "openai", model: str = "fake-model",
                 responder: Callable[[Recorded], Any] | None = None, port: int = 0):
        if wire not in WIRES:
            raise ValueError(f"wire must be one of {WIRES}")
        self.wire, self.model, self.responder, self._port = wire, model, responder, port
        self.script: list[Item] = []
        self.requests: list[Recorded] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ----------------------------------------------------------------------------
    def add(self, *items: Item) -> FakeModelServer:
        with self._lock:
            self.script.extend(items)
        return self

    def _next(self, req: Recorded) -> Any:
        with self._lock:
            self.requests.append(req)
            item = self.script.pop(0) if self.script else None
        if item is None and self.responder is not None:
            item = self.responder(req)
        if callable(item) and not isinstance(item, Answer | Status | Hang):
            item = item(req)
        return item if item is not None else Status(500, "fake server: script exhausted")

    # -- addresses ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "start the server first"
        return self._server.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What goes in [models.NAME].base_url (or OPENAI_BASE_URL) for this wire."""
        return self.root + "/v1" if self.wire == "openai" else self.root

    def model_entry(self, **extra: Any) -> dict[str, Any]:
        entry = {"provider": self.wire, "base_url": self.base_url, "model": self.model}
        entry.update(extra)
        return entry

    def configure(self, name: str = "fake", paths: Any = None, **extra: Any) -> str:
        """Write ``[models.NAME]`` for this server into the config (``$COPA_HOME`` by default)."""
        from copa.config import set_value
        from copa.paths import Paths

        paths = paths or Paths.from_env()
        for field_name, value in self.model_entry(**extra).items():
            set_value(paths, f"models.{name}.{field_name}", value)
        return name

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> FakeModelServer:
        self._server = _QuietServer(("127.0.0.1", self._port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"fake-{self.wire}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_handler(srv: FakeModelServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Send each small write at once, as real model servers do: with Nagle on, a streamed chunk waits
        # for the client's delayed ACK (~40 ms on loopback), time that is neither copa's nor a model's.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith(("/api/tags", "/models")):
                self._json(200, {"models": [{"name": srv.model, "model": srv.model}],
                                 "data": [{"id": srv.model, "object": "model"}]})
            else:
                self._json(404, error_body(srv.wire, 404, f"no route {self.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            req = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
            item = srv._next(req)
            if isinstance(item, Status):
                headers = {"retry-after": item.retry_after} if item.retry_after is not None else {}
                self._json(item.code, item.body if item.body is not None else
                           error_body(srv.wire, item.code, item.message), headers)
            elif isinstance(item, Hang):
                self.close_connection = True
                srv.stopping.wait(60)
            elif isinstance(item, Answer) and not self._wants_stream(req):
                self._json(200, item.raw_json if item.raw_json is not None else PLAIN[srv.wire](item, srv.model))
            elif isinstance(item, Answer):
                self._stream(item, req)
            else:
                raise TypeError(f"unknown script item {item!r}")

        def _json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()  # bytes: sent as they are
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _wants_stream(self, req: Recorded) -> bool:
            if srv.wire == "gemini":
                return ":streamGenerateContent" in req.path
            return isinstance(req.body, dict) and bool(req.body.get("stream"))

        def _stream(self, a: Answer, req: Recorded) -> None:
            if a.raw_events is not None:
                events = list(a.raw_events)
            elif srv.wire == "openai":
                include_usage = bool(((req.body or {}).get("stream_options") or {}).get("include_usage"))
                events = encode_openai(a, srv.model, include_usage=include_usage)
            else:
                events = ENCODERS[srv.wire](a, srv.model)
            if a.error_after is not None:
                events = events[:a.error_after] + [error_event(srv.wire, *a.error)]
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for i, block in enumerate(events):
                    if a.malformed_at == i:
                        self._chunk(MALFORMED[srv.wire].encode())
                    if a.drop_after is not None and i >= a.drop_after:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if a.hang_after is not None and i >= a.hang_after:
                        self.close_connection = True
                        srv.stopping.wait(60)
                        return
                    if a.delay and i:
                        time.sleep(a.delay)
                    self._chunk(block if isinstance(block, bytes) else block.encode())
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


if __name__ == "__main__":  # a server to poke at by hand or from a benchmark
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wire", choices=WIRES)
    ap.add_argument("--text", default="Hello from the fake model.")
    args = ap.parse_args()
    server = FakeModelServer(args.wire, responder=lambda req: Answer(args.text)).start()
    print(f"{args.wire} server at {server.base_url} (model {server.model}); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
