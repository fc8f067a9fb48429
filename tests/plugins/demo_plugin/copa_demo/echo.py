"""A model provider that answers with the user's last message (no network)."""

from __future__ import annotations

from copa.providers.base import Provider
from copa.providers.types import Event, Usage


class EchoProvider(Provider):
    wire = "echo"

    def url(self) -> str:
        return "echo://local"

    def stream(self, request):
        last = next(m for m in reversed(request.messages) if m.role == "user")
        yield Event("text", text=f"echo: {last.content}")
        yield Event("usage", usage=Usage(input_tokens=1, output_tokens=2))
        yield Event("stop", text="end")
