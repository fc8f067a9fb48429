"""What every wire protocol implements: turn a ChatRequest into one streamed HTTP request and the
answer into provider-neutral Events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from copa.providers.types import ChatRequest, Event, ModelSpec


class Provider:
    wire = ""

    def __init__(self, spec: ModelSpec, api_key: str | None, client: Any, read_timeout: float = 120.0):
        self.spec = spec
        self.api_key = api_key
        self.client = client
        self.read_timeout = read_timeout

    @property
    def who(self) -> str:
        return self.spec.label

    def url(self) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, events: Iterator[tuple[str, str]]) -> Iterator[Event]:
        """Server-sent events (name, data) of this wire -> provider-neutral Events."""
        raise NotImplementedError

    def stream(self, request: ChatRequest) -> Iterator[Event]:
        """Send ``request`` and yield events; raises AttemptFailed, StreamBroken or httpx errors."""
        from copa.providers.http import iter_sse, open_stream

        with open_stream(self.client, self.url(), headers=self.headers(), body=self.body(request), who=self.who,
                         key_name=self.spec.key) as response:
            yield from self.parse(iter_sse(response.iter_lines()))
