"""The HTTP client the model providers share, with TLS set up on the first https request.

httpx builds its TLS context, loading the whole CA bundle, when a client is created: ~30 ms of every
one-shot command, though most local servers (llama.cpp, Ollama, vLLM on the LAN) speak plain http.
Here the https transport is built when an https URL is first sent, with httpx's own defaults, so the
trust and verification of https requests are exactly httpx's. Imported only where httpx is wanted.
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
from typing import Any

import httpx


class _TLSOnFirstUse(httpx.BaseTransport):
    """httpx's default transport, built by the first request that reaches it (an https one)."""

    def __init__(self) -> None:
        self._inner: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if self._inner is None:
                self._inner = httpx.HTTPTransport()  # verify=True: certifi's bundle, as httpx does
        return self._inner.handle_request(request)

    def close(self) -> None:
        with self._lock:
            if self._inner is not None:
                self._inner.close()


def make_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client(**kwargs)`` that loads no CA bundle until an https URL is sent.

    With proxies in the environment (HTTPS_PROXY and friends), httpx's own client is returned
    unchanged: httpx routes through them only when it builds the transports itself."""
    if any(scheme != "no" for scheme in urllib.request.getproxies()):  # NO_PROXY alone routes nothing
        return httpx.Client(**kwargs)
    # plain http never uses the context; one with no trusted certificate fails closed if it ever did
    plain = httpx.HTTPTransport(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    return httpx.Client(transport=_TLSOnFirstUse(), mounts={"http://": plain}, **kwargs)
