"""Model back-ends over httpx, one module per wire protocol, behind one router.

Public API::

    models = Models(config, secrets)        # or ws.models, wired by the Workstation
    reply = models.chat(ChatRequest([Message("user", "hi")]), "fast", on_event=print)
    models.get("openai:gpt-4o-mini")         # ModelSpec
"""

from copa.providers.registry import CONFIGURE_HINT
from copa.providers.router import Models
from copa.providers.types import (
    ChatRequest,
    Event,
    Message,
    ModelSpec,
    Reply,
    ToolCall,
    Usage,
)

__all__ = ["CONFIGURE_HINT", "ChatRequest", "Event", "Message", "ModelSpec", "Models", "Reply", "ToolCall", "Usage"]
