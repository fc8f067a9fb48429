"""What every wire protocol implements: turn a ChatRequest into one HTTP request (streamed, or plain
when the model's config or the caller asks) and the answer into provider-neutral Events."""

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

    def url(self, stream: bool = True) -> str:
        raise NotImplementedError

    def headers(self, stream: bool = True) -> dict[str, str]:
        raise NotImplementedError

    def body(self, request: ChatRequest, stream: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, events: Iterator[tuple[str, str]]) -> Iterator[Event]:
        """Server-sent events (name, data) of this wire -> provider-neutral Events."""
        raise NotImplementedError

    def parse_plain(self, obj: Any) -> Iterator[Event]:
        """A whole (non-streamed) answer -> the same Events a stream of it would give."""
        raise NotImplementedError

    def send(self, request: ChatRequest, stream: bool | None = None) -> Iterator[Event]:
        """Send ``request`` and yield events; raises AttemptFailed, StreamBroken or httpx errors.

        ``stream`` None: as the request says, else as the model's config says."""
        if stream is None:
            stream = self.spec.stream if request.stream is None else request.stream
        if stream:
            yield from self.stream(request)
        else:
            from copa.providers.http import post_json

            obj = post_json(self.client, self.url(stream=False), headers=self.headers(stream=False),
                            body=self.body(request, stream=False), who=self.who, key_name=self.spec.key)
            yield from self.parse_plain(obj)

    def stream(self, request: ChatRequest) -> Iterator[Event]:
        from copa.providers.http import iter_sse, open_stream

        with open_stream(self.client, self.url(), headers=self.headers(), body=self.body(request), who=self.who,
                         key_name=self.spec.key) as response:
            yield from self.parse(iter_sse(response.iter_lines()))
