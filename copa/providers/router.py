"""Sending a chat to a model: retries with backoff and jitter (honouring Retry-After), the fallback
chain, and keeping a partial answer (marked interrupted) when a stream breaks or the user presses Ctrl-C.

A retry or a fallback happens only before the first byte of the answer reached the caller: after
that, text has been shown and repeating the request would show it twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from copa.errors import ContextOverflowError, ProviderError
from copa.providers.http import AttemptFailed, StreamBroken, backoff, transport_failure
from copa.providers.registry import CONFIGURE_HINT, OLLAMA_DEFAULT, Registry
from copa.providers.types import (
    STOP_BROKEN,
    STOP_CANCELLED,
    STOP_END,
    STOP_TOOLS,
    ChatRequest,
    Event,
    Message,
    ModelSpec,
    Reply,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from pathlib import Path

    from copa.config import Config
    from copa.secrets import SecretStore

log = logging.getLogger("copa.providers")
OnEvent = Callable[[Event], None]


def provider_for(spec: ModelSpec, api_key: str | None, client: Any, read_timeout: float):
    """The wire protocol of ``spec``, as registered through the ``copa_model_providers`` hook."""
    import importlib

    from copa.plugins import merged

    wires = merged("copa_model_providers", "model provider")
    cls = wires.get(spec.provider)
    if cls is None:
        raise ProviderError(f"unknown provider {spec.provider!r} for {spec.label}",
                            hint="known: " + ", ".join(sorted(wires)) + " (copa plugins list)")
    if isinstance(cls, str):
        module, _, name = cls.partition(":")
        cls = getattr(importlib.import_module(module), name)
    return cls(spec, api_key, client, read_timeout)


def _ollama_listening(timeout: float = 0.2) -> bool:
    """Zero config for a local Ollama on its default port (a refused loopback connect is instant)."""
    import socket

    host, port = OLLAMA_DEFAULT.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


class _Collector:
    """Builds a Reply from provider events and passes them on to the caller."""

    def __init__(self, reply: Reply, on_event: OnEvent | None, t0: float):
        self.reply, self.on_event, self.t0 = reply, on_event, t0
        self.started = False  # something reached the caller: no more retries
        self.stopped = False
        self.calls: dict[int, dict[str, Any]] = {}
        self.malformed = 0
        self.usage_seen = False
        self.seen = False  # any event at all (even a malformed one) came from the server

    def feed(self, ev: Event) -> None:
        r = self.reply
        self.seen = True
        if ev.type == "malformed":
            self.malformed += 1
            log.warning("%s: skipped a malformed event: %r", r.model, ev.text[:120])
            return
        if ev.type in ("text", "tool_start", "tool_args"):
            if r.ttfb_ms is None:
                r.ttfb_ms = (time.perf_counter() - self.t0) * 1000
            self.started = True
        if ev.type == "text":
            r.text += ev.text
        elif ev.type == "tool_start":
            slot = self.calls.setdefault(ev.index, {"id": "", "name": "", "args": []})
            slot["id"] = slot["id"] or ev.id
            slot["name"] = slot["name"] or ev.name
        elif ev.type == "tool_args":
            self.calls.setdefault(ev.index, {"id": "", "name": "", "args": []})["args"].append(ev.text)
        elif ev.type == "usage" and ev.usage:
            self.usage_seen = True
            r.usage.input_tokens = max(r.usage.input_tokens, ev.usage.input_tokens)
            r.usage.output_tokens = max(r.usage.output_tokens, ev.usage.output_tokens)
        elif ev.type == "stop":
            self.stopped = True
            if ev.text:
                r.stop_reason = ev.text
        if self.on_event:
            self.on_event(ev)

    def estimate_usage(self, request: ChatRequest) -> None:
        """The server stated no usage (llama.cpp sends none in a stream): count it, marked estimated."""
        r = self.reply
        if self.usage_seen and (r.usage.input_tokens or r.usage.output_tokens):
            return
        from copa.providers.tokens import estimate_request, estimate_tokens

        output = estimate_tokens(r.text) + sum(estimate_tokens("".join(c["name"]) + "".join(c["args"]))
                                              for c in self.calls.values())
        r.usage = Usage(estimate_request(request), output, estimated=True)

    def finish(self) -> Reply:
        r = self.reply
        for index in sorted(self.calls):
            slot = self.calls[index]
            raw = "".join(slot["args"]).strip()
            call = ToolCall(slot["id"] or f"call_{index}", slot["name"])
            try:
                value = json.loads(raw) if raw else {}
                if isinstance(value, dict):
                    call.arguments = value
                else:
                    call.error = "the arguments are not a JSON object"
            except ValueError as e:
                call.error = f"the arguments are not valid JSON ({e.msg} at {e.pos}): {raw[:200]}"
            r.tool_calls.append(call)
        if r.tool_calls and r.stop_reason == STOP_END:
            r.stop_reason = STOP_TOOLS  # some servers say "stop" even when they called tools
        r.duration_ms = (time.perf_counter() - self.t0) * 1000
        return r


class Models:
    """The models copa can use, and the one place that sends requests to them.

    ``config`` gives the [models.NAME] tables and the agent.* timeouts; ``secrets`` the API keys
    (it is touched only when a key is needed, so a model without one never opens the store)."""

    def __init__(self, config: Config, secrets: SecretStore, env: dict[str, str] | None = None,
                 cache_dir: Path | None = None):
        self.config = config
        self.secrets = secrets
        # where windows servers stated when refusing a request are remembered (None: this process only)
        self.cache_dir = cache_dir
        self.env = os.environ if env is None else env
        self._client = None
        self._client_lock = threading.Lock()
        self._registry: Registry | None = None
        self._windows: dict[str, tuple[int, str]] = {}
        self._refused: dict[str, int] = {}  # windows stated by servers refusing a request, this process
        self.sleep = time.sleep  # tests may replace it
        self.stream: bool | None = None  # None: each model as its config says; False: plain requests (--no-stream)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            stored: set[str] = set()
            if not any(self.env.get(k) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                                                  "GEMINI_API_KEY", "OLLAMA_HOST")) and not self.config.table(
                                                      "models"):
                stored = self._stored_names()
            self._registry = Registry(self.config, self.env, stored)
            if not self._registry.all() and _ollama_listening():
                self._registry = Registry(self.config, {**self.env, "OLLAMA_HOST": OLLAMA_DEFAULT}, stored)
        return self._registry

    def _stored_names(self) -> set[str]:
        from copa.errors import CopaError

        try:
            return set(self.secrets.names())
        except (CopaError, OSError):
            return set()

    @property
    def client(self):
        with self._client_lock:
            return self._make_client()

    def _make_client(self):
        if self._client is None:
            import httpx

            from copa import __version__
            from copa.providers.transport import make_client

            cfg = self.config
            connect, read = cfg.get("agent.connect_timeout"), cfg.get("agent.read_timeout")
            self._client = make_client(timeout=httpx.Timeout(read, connect=connect),
                                       headers={"user-agent": f"copa/{__version__}"})
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- naming -----------------------------------------------------------------------------
    def get(self, name: str) -> ModelSpec:
        return self.registry.get(name)

    def default_name(self) -> str | None:
        return self.registry.default_name()

    def fast_name(self) -> str | None:
        return self.registry.fast_name()

    def api_key(self, spec: ModelSpec) -> str | None:
        if not spec.key:
            return None
        value = self.env.get(spec.key)
        if value:
            from copa.log import redact_value

            redact_value(value)
            return value
        from copa.errors import CopaError

        try:
            value = self.secrets.get(spec.key)
        except CopaError as e:
            raise AttemptFailed(f"{spec.label}: cannot read the key {spec.key} ({e.message})",
                                hint=e.hint or "") from None
        if not value and not spec.base_url and spec.provider != "ollama":
            raise AttemptFailed(f"{spec.label}: no API key (looked for {spec.key} in the environment and secrets)",
                                hint=f"run 'copa secrets set {spec.key}' or export {spec.key}")
        return value

    def resolve_model_name(self, spec: ModelSpec) -> ModelSpec:
        """Ollama with no model named: ask the server which models it has and use the first."""
        if spec.model or spec.provider != "ollama":
            return spec
        from dataclasses import replace

        url = spec.base_url.removesuffix("/v1") + "/api/tags"
        try:
            from copa.providers.http import external_json_text, loads_or_none

            tags = loads_or_none(external_json_text(self.client.get(url, timeout=5).content)).get("models") or []
        except Exception as e:
            raise AttemptFailed(f"cannot list Ollama's models at {url} ({type(e).__name__})", retryable=True,
                                hint="is Ollama running? ('ollama serve')") from None
        if not tags:
            raise AttemptFailed("Ollama has no models", hint="pull one: ollama pull llama3.2")
        return replace(spec, model=tags[0].get("name") or tags[0].get("model"))

    # -- context windows ----------------------------------------------------------------------
    def window(self, name: str) -> tuple[int, str]:
        """The model's context window in tokens and where that figure came from: ``config``, ``server``
        (it said so when asked, or when it refused a request as too long) or ``default``.

        A window the server stated when refusing a request wins over a larger configured one: the
        server is the one that counts."""
        spec = self.get(name)
        key = f"{spec.base_url}|{spec.model}"
        if key not in self._windows:
            self._windows[key] = self._find_window(spec)
        found = self._windows[key]
        if spec.context_window > 0:
            learned = self._learned(spec)
            if learned and learned < spec.context_window:
                return learned, "server"
            return spec.context_window, "config"
        return found

    def _find_window(self, spec: ModelSpec) -> tuple[int, str]:
        from copa.providers import windows

        if spec.context_window > 0:
            return spec.context_window, "config"
        if spec.base_url and spec.provider in ("openai", "ollama") and windows.is_local(spec.base_url):
            said = windows.probe(self.client, spec.base_url, spec.model)
            if said:
                return said, "server"
        learned = self._learned(spec)
        if learned:
            return learned, "server"
        return spec.window(), "default"

    def learn_window(self, spec: ModelSpec, window: int) -> None:
        """A server stated the window when it refused a request: use it from now on (and next time)."""
        from copa.providers import windows

        if window > 0:
            self._windows[f"{spec.base_url}|{spec.model}"] = (window, "server")
            self._refused[f"{spec.base_url}|{spec.model}"] = window
            if self.cache_dir is not None:
                windows.Learned(self.cache_dir).put(spec.base_url, spec.model, window)

    def _learned(self, spec: ModelSpec) -> int | None:
        from copa.providers import windows

        key = f"{spec.base_url}|{spec.model}"
        if key in self._refused:
            return self._refused[key]
        return windows.Learned(self.cache_dir).get(spec.base_url, spec.model) if self.cache_dir else None

    # -- sending ----------------------------------------------------------------------------
    def chat(self, request: ChatRequest, model: str | None = None, *, on_event: OnEvent | None = None,
             fallback: bool = True, retries: int | None = None) -> Reply:
        """Send ``request``; returns the Reply (possibly partial and ``interrupted``).

        Raises ProviderError when no model in the chain produced anything.
        """
        if model is None and not self.default_name():
            raise ProviderError("no model is configured", hint=CONFIGURE_HINT)
        chain = self.registry.chain(model) if fallback else [self.get(model or self.default_name() or "")]
        cfg = self.config
        retries = cfg.get("agent.retries") if retries is None else retries
        max_wait = cfg.get("agent.max_retry_wait")
        failures: list[str] = []
        last: AttemptFailed | None = None
        for n, spec in enumerate(chain):
            if n and on_event:
                on_event(Event("fallback", name=spec.name, data={"reason": failures[-1] if failures else ""}))
            for attempt in range(max(0, retries) + 1):
                try:
                    reply = self._attempt(spec, request, on_event)
                except AttemptFailed as e:
                    last = e
                    failures.append(e.message)
                    log.warning("attempt %d failed: %s", attempt + 1, e.message)
                    if e.window:
                        self.learn_window(spec, e.window)
                    if not e.retryable or attempt >= retries:
                        break
                    delay = e.retry_after if e.retry_after is not None else backoff(attempt)
                    if delay > max_wait:
                        failures[-1] += f" (asked to wait {delay:.0f} s, more than agent.max_retry_wait)"
                        break
                    if on_event:
                        on_event(Event("retry", name=spec.name, data={"reason": e.message, "delay": delay,
                                                                      "attempt": attempt + 1}))
                    try:
                        self.sleep(delay)
                    except KeyboardInterrupt:
                        return Reply(model=spec.name, interrupted=True, stop_reason=STOP_CANCELLED,
                                     error="interrupted", failures=failures)
                    continue
                reply.failures = failures
                return reply
        assert last is not None
        tried = "" if len(chain) == 1 else f" (tried {', '.join(s.name for s in chain)})"
        hint = last.hint or "see 'copa models test NAME'"
        if last.window is not None:
            raise ContextOverflowError(last.message + tried, window=last.window, hint=hint)
        if len(chain) == 1 and last.retryable:
            hint += "; a fallback chain helps: copa config set agent.fallback NAME,NAME"
        raise ProviderError(last.message + tried, hint=hint)

    def _attempt(self, spec: ModelSpec, request: ChatRequest, on_event: OnEvent | None) -> Reply:
        import httpx

        spec = self.resolve_model_name(spec)
        provider = provider_for(spec, self.api_key(spec), self.client, self.config.get("agent.read_timeout"))
        t0 = time.perf_counter()
        collector = _Collector(Reply(model=spec.name), on_event, t0)
        events = None
        sent = request
        streamed = self.stream if self.stream is not None else (
            spec.stream if request.stream is None else request.stream)
        names = {t.name for t in request.tools}
        if spec.tool_mode == "prompt" and request.tools:
            from copa.providers import prompt_tools

            sent = prompt_tools.prepare(request)

        def open_events(stream: bool):
            events = provider.send(sent, stream)
            return prompt_tools.filter_events(events, names) if sent is not request else events

        try:
            events = open_events(streamed)
            try:
                for ev in events:
                    collector.feed(ev)
                if not collector.stopped:
                    raise StreamBroken("the stream ended before the answer was complete")
            except (StreamBroken, httpx.ReadError, httpx.RemoteProtocolError) as e:
                if not streamed or collector.seen:
                    raise
                # The request went out and not one event came back: a server that fails inside its
                # stream handler may just hang up (llama-cpp-python does when the request exceeds
                # its window: "Server disconnected without sending a response"). The same request
                # without streaming gets the error as an HTTP status and body, in the server's words.
                log.warning("%s: the stream ended without a word (%s); asking once more without streaming",
                            spec.label, type(e).__name__)
                events.close()
                # On a new connection: the pooled one is the one the server just hung up.
                with httpx.Client(timeout=self.client.timeout, headers=self.client.headers) as fresh:
                    provider.client = fresh
                    try:
                        events = open_events(False)
                        for ev in events:
                            collector.feed(ev)
                    finally:
                        provider.client = self.client
                if not collector.stopped:
                    raise StreamBroken("the answer ended before it was complete") from None
            collector.estimate_usage(sent)
        except KeyboardInterrupt:
            collector.estimate_usage(sent)
            return self._partial(collector, STOP_CANCELLED, "interrupted")
        except (httpx.TransportError, StreamBroken, AttemptFailed) as e:
            if isinstance(e, AttemptFailed):
                failure = e
            elif isinstance(e, StreamBroken):
                failure = AttemptFailed(f"{spec.label}: {e}", retryable=True,
                                        hint="retry; if it keeps happening, try another model")
            else:
                failure = transport_failure(e, spec.label, provider.url(), self.config.get("agent.read_timeout"))
            if collector.started:
                collector.estimate_usage(sent)
                return self._partial(collector, STOP_BROKEN, failure.message)
            raise failure from None
        finally:
            # A Ctrl-C in the consumer leaves the stream suspended mid-answer: close it (and its HTTP
            # response) now rather than whenever the garbage collector finds it.
            if events is not None:
                events.close()
        return collector.finish()

    @staticmethod
    def _partial(collector: _Collector, reason: str, error: str) -> Reply:
        collector.calls.clear()  # half a tool call is not a call
        reply = collector.finish()
        reply.interrupted, reply.stop_reason, reply.error = True, reason, error
        return reply

    def test(self, name: str) -> dict[str, Any]:
        """One small request without fallback or retries: time to the first token, generation speed,
        answer and usage (estimated, and said so, when the server states none)."""
        t0 = time.perf_counter()
        request = ChatRequest([Message("user", "Count from 1 to 20, the numbers separated by spaces.")],
                              max_tokens=64)
        reply = self.chat(request, name, fallback=False, retries=0)
        spec = self.get(name)
        window, window_from = self.window(name)
        streamed = self.stream if self.stream is not None else spec.stream
        first, out = reply.ttfb_ms, reply.usage.output_tokens
        if not streamed:  # the whole answer arrives at once: no first-token time, only the overall rate
            first, rate = None, out / (reply.duration_ms / 1000) if out and reply.duration_ms else None
        else:  # generation proper: the tokens after the first, over the time after the first
            rate = (out - 1) / ((reply.duration_ms - first) / 1000) if first is not None and out > 1 and \
                reply.duration_ms > first else None
        return {"model": name, "provider": spec.provider, "ok": not reply.interrupted, "answer": reply.text.strip(),
                "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
                "first_token_ms": round(first, 1) if first is not None else None,
                "ttfb_ms": round(first, 1) if first is not None else None,
                "tokens_per_s": round(rate, 1) if rate is not None else None,
                "streamed": streamed,
                "context_window": window, "context_window_from": window_from,
                "usage": reply.usage.as_dict(), "error": reply.error}
