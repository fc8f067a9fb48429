"""HTTP plumbing shared by the wire protocols: sending a streamed request, reading server-sent events,
and turning failures into messages that say which provider, which model and what to do.

httpx is imported only inside functions: `copa ask --help` must stay cheap.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
MAX_ERROR_BODY = 4000


class AttemptFailed(Exception):
    """One request to one model failed; the router decides whether to retry or fall back."""

    def __init__(self, message: str, *, hint: str = "", retryable: bool = False,
                 retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class StreamBroken(Exception):
    """The stream ended (or broke) before the answer was complete."""


def iter_sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Server-sent events as (event name, data) pairs; multi-line data is joined with newlines."""
    event, data = "", []
    for line in lines:
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment / keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event or "message", "\n".join(data)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def backoff(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Exponential backoff with jitter: ~base, ~2*base, ~4*base ... each scaled by 0.5-1.5."""
    return min(cap, base * (2**attempt)) * (0.5 + random.random())


def error_message(body: bytes) -> str:
    """The human part of an error body (OpenAI, Anthropic and Gemini all use {"error": {"message"}})."""
    text = body[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text.splitlines()[0][:300] if text else ""
    if isinstance(obj, list) and obj:
        obj = obj[0]
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)[:300]
    return str(err)[:300]


def status_failure(status: int, headers: Any, body: bytes, who: str, key_name: str) -> AttemptFailed:
    detail = error_message(body)
    detail = f": {detail}" if detail else ""
    if status in (401, 403):
        hint = (f"check the API key: copa secrets set {key_name}" if key_name
                else "this server wants a key: set one with 'copa models add --key NAME'")
        return AttemptFailed(f"{who} refused the key (HTTP {status}){detail}", hint=hint, status=status)
    if status == 404:
        return AttemptFailed(f"{who}: not found (HTTP 404){detail}",
                             hint="check the model name and base_url ('copa models list')", status=status)
    if status in RETRYABLE_STATUS:
        what = "is rate limiting" if status == 429 else "is overloaded or failing"
        return AttemptFailed(f"{who} {what} (HTTP {status}){detail}", retryable=True,
                             retry_after=parse_retry_after(headers), status=status,
                             hint="wait and retry, or set agent.fallback to a list of other models")
    return AttemptFailed(f"{who} rejected the request (HTTP {status}){detail}",
                         hint="see 'copa models test' and the log file ('copa config path')", status=status)


def transport_failure(exc: Exception, who: str, url: str, read_timeout: float) -> AttemptFailed:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return AttemptFailed(f"cannot connect to {who} at {url} ({type(exc).__name__})", retryable=True,
                             hint="is the server running and the base_url right? ('copa models test NAME')")
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return AttemptFailed(f"no answer from {who} within {read_timeout:g} s", retryable=True,
                             hint="the server may be overloaded; raise agent.read_timeout or try another model")
    return AttemptFailed(f"{who}: connection failed ({type(exc).__name__}: {exc})", retryable=True,
                         hint="check the network and the server, then retry")


@contextlib.contextmanager
def open_stream(client: Any, url: str, *, headers: dict[str, str], body: dict[str, Any], who: str,
                key_name: str) -> Iterator[Any]:
    """POST ``body`` and yield the streaming response once its status is known to be 2xx."""
    with client.stream("POST", url, headers=headers, json=body) as response:
        if response.status_code >= 400:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > MAX_ERROR_BODY:
                    break
            raise status_failure(response.status_code, response.headers, raw, who, key_name)
        yield response


def loads_or_none(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
