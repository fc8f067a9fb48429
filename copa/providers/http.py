"""HTTP plumbing shared by the wire protocols: sending a streamed request, reading server-sent events,
and turning failures into messages that say which provider, which model and what to do.

httpx is imported only inside functions: `copa ask --help` must stay cheap.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Iterable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
MAX_ERROR_BODY = 4000


class AttemptFailed(Exception):
    """One request to one model failed; the router decides whether to retry or fall back."""

    def __init__(self, message: str, *, hint: str = "", retryable: bool = False,
                 retry_after: float | None = None, status: int | None = None, window: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.window = window  # the request did not fit: the context window the server stated (0: unstated)


# How servers say a request is longer than the model's window, and where they state the window.
# llama-cpp-python: "Requested tokens (4547) exceed context window of 2048"; llama.cpp: "the request
# exceeds the available context size" (type exceed_context_size_error, "n_ctx": 2048); OpenAI and
# vLLM: "This model's maximum context length is 8192 tokens..." (code context_length_exceeded);
# Anthropic: "prompt is too long: 210000 tokens > 200000 maximum"; Gemini: "The input token count
# (X) exceeds the maximum number of tokens allowed (Y)".
_OVERFLOW = re.compile(r"exceeds? (?:the )?(?:context window|available context size|maximum number of tokens)"
                       r"|maximum context length|context_length_exceeded|exceed_context_size|prompt is too long"
                       r"|too many tokens", re.I)
_WINDOW = (re.compile(r"context window of (\d+)", re.I), re.compile(r"maximum context length is (\d+)", re.I),
           re.compile(r'"?n_ctx"?\s*[:=]\s*(\d+)'), re.compile(r"> (\d+) maximum"),
           re.compile(r"maximum number of tokens allowed \((\d+)\)", re.I))


def context_overflow(text: str) -> int | None:
    """None when ``text`` is not a too-long-request error; else the window it states (0: unstated)."""
    if not _OVERFLOW.search(text):
        return None
    for pattern in _WINDOW:
        m = pattern.search(text)
        if m:
            return int(m.group(1))
    return 0


def overflow_failure(who: str, detail: str, window: int, status: int | None = None) -> AttemptFailed:
    """The model's window is smaller than the request: retrying the same request cannot help."""
    said = f" (HTTP {status})" if status else ""
    hint = (f"copa now budgets for the {window}-token window the server stated; ask again" if window else
            "set the model's window: copa config set models.NAME.context_window TOKENS")
    return AttemptFailed(f"{who} refused a request longer than its context window{said}: {detail}", hint=hint,
                         status=status, window=window)


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
    if isinstance(err, dict):  # {"error": {"message"}}, or FastAPI's {"detail": ...} (llama-cpp-python)
        return str(err.get("message") or err.get("detail") or err.get("type") or err)[:300]
    return str(err)[:300]


def status_failure(status: int, headers: Any, body: bytes, who: str, key_name: str) -> AttemptFailed:
    detail = error_message(body)
    window = context_overflow(body[:MAX_ERROR_BODY].decode("utf-8", "replace"))
    if window is not None and status < 500:
        return overflow_failure(who, detail, window, status)
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


def post_json(client: Any, url: str, *, headers: dict[str, str], body: dict[str, Any], who: str,
              key_name: str) -> Any:
    """POST ``body`` without streaming and return the decoded JSON answer."""
    response = client.post(url, headers=headers, json=body)
    if response.status_code >= 400:
        raise status_failure(response.status_code, response.headers, response.content, who, key_name)
    text = external_json_text(response.content)
    obj = loads_or_none(text)
    if obj is None and text.strip() != "null":
        raise AttemptFailed(f"{who} answered with something that is not JSON: {text[:200]!r}",
                            retryable=True, hint="check the base_url: is it the model server's API?")
    return obj


def event_error(who: str, err: Any, retryable_types: set[str]) -> AttemptFailed:
    """An error the server stated inside a stream (or a 200 body): as it said it, one line.

    Retryable only when the server says it is transient (overloaded, rate limited, its own failure)."""
    if isinstance(err, dict):
        message = str(err.get("message") or err.get("type") or err)
        kind, code = str(err.get("type") or err.get("status") or ""), err.get("code")
    else:
        message, kind, code = str(err), "", None
    message = " ".join(message.split())[:300]
    window = context_overflow(json.dumps(err) if isinstance(err, dict) else message)
    if window is not None:
        return overflow_failure(who, message, window)
    status = code if isinstance(code, int) else None
    retryable = kind in retryable_types or (status is not None and status in RETRYABLE_STATUS)
    return AttemptFailed(f"{who} reported an error: {message}", retryable=retryable, status=status,
                         hint="wait and retry, or try another model" if retryable else
                         "see 'copa models test' and the log file ('copa config path')")


def external_json_text(body: bytes) -> str:
    """A JSON body as text, by the text policy for what copa receives (docs/cli.md, "Text and
    encodings"): a byte that is not UTF-8 becomes U+FFFD instead of failing the whole answer
    (``json.loads`` of the bytes would raise). A UTF-16/32 body (or a BOM) is still recognised."""
    return body.decode(json.detect_encoding(body), "replace")


def loads_or_none(data: str) -> Any:
    """JSON from a model server, or None when it is not JSON. A ``\\ud800``-style escape (a lone
    surrogate) becomes U+FFFD here, so the answer shown, stored and sent on is the same text."""
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if "\\ud" in data or "\\uD" in data:  # cheap test first: such escapes are rare
        from copa.textio import scrub_deep

        obj = scrub_deep(obj)
    return obj
