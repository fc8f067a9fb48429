"""Model back-ends over httpx, one module per wire protocol, behind one router.

Public API::

    models = Models(config, secrets)        # or ws.models, wired by the Workstation
    reply = models.chat(ChatRequest([Message("user", "hi")]), "fast", on_event=print)
    models.get("openai:gpt-4o-mini")         # ModelSpec
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from copa.exports import lazy

if TYPE_CHECKING:
    from copa.providers.registry import CONFIGURE_HINT
    from copa.providers.router import Models
    from copa.providers.types import ChatRequest, Event, Message, ModelSpec, Reply, ToolCall, Usage

_EXPORTS = {"Models": "copa.providers.router", "CONFIGURE_HINT": "copa.providers.registry",
            **{n: "copa.providers.types" for n in ("ChatRequest", "Event", "Message", "ModelSpec", "Reply",
                                                   "ToolCall", "Usage")}}

__all__ = ["CONFIGURE_HINT", "ChatRequest", "Event", "Message", "ModelSpec", "Models", "Reply", "ToolCall",
           "Usage"]


__getattr__ = lazy(__name__, _EXPORTS)
