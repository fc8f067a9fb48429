"""Model providers as a plugin of copa: the wire protocols and the [models.NAME] table."""

from __future__ import annotations

from typing import Any

from copa.config import Key
from copa.plugins import hookimpl


@hookimpl
def copa_model_providers() -> dict[str, Any]:
    # "module:Class" strings: a wire's module is imported only when a model of it is called.
    # ollama's /v1 is OpenAI-compatible.
    return {"openai": "copa.providers.openai:OpenAIProvider", "anthropic": "copa.providers.anthropic:AnthropicProvider",
            "gemini": "copa.providers.gemini:GeminiProvider", "ollama": "copa.providers.openai:OpenAIProvider"}


@hookimpl
def copa_config_keys() -> dict[str, Any]:
    from copa.plugins import merged

    wires = tuple(merged("copa_model_providers", "model provider"))
    return {"models.NAME": {
        "provider": Key(str, "openai", "Wire protocol", wires),
        "base_url": Key(str, "", "API base URL; empty = the provider's public endpoint"),
        "model": Key(str, "", "The model's name at the provider"),
        "key": Key(str, "", "Name of the secret (or environment variable) holding the API key"),
        "context_window": Key(int, 0, "Context window in tokens; 0 = what the server says (local servers), "
                              "else the provider's usual size"),
        "price_in": Key(float, 0.0, "Price per input token (for cost figures)"),
        "price_out": Key(float, 0.0, "Price per output token"),
        "tool_mode": Key(str, "native", "Tool calling: native, or prompt for models without it", ("native", "prompt")),
        "max_tokens": Key(int, 4096, "Longest answer in tokens"),
        "stream": Key(bool, True, "Stream answers; false sends plain requests (for servers or proxies that buffer "
                      "or break streams)"),
    }}
