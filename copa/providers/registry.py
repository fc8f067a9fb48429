"""Which models exist: ``[models.NAME]`` entries, plus zero-config ones found in the environment
(OPENAI_API_KEY / OPENAI_BASE_URL, ANTHROPIC_API_KEY, GEMINI_API_KEY, OLLAMA_HOST), plus
``provider:model`` written directly (``copa ask --model anthropic:claude-sonnet-4-5``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from copa.config import Config
from copa.errors import ConfigError, NotFoundError
from copa.providers.types import ModelSpec

PROVIDERS = ("openai", "anthropic", "gemini", "ollama")
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash",
                  "ollama": ""}
KEY_NAMES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY",
             "ollama": ""}
OLLAMA_DEFAULT = "127.0.0.1:11434"
CONFIGURE_HINT = ("set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, start Ollama, "
                  "or run 'copa models add NAME --provider ... --model ...'")


def ollama_base(host: str) -> str:
    host = host.strip().rstrip("/") or OLLAMA_DEFAULT
    if "://" not in host:
        host = "http://" + host
    if host.count(":") < 2:  # no port given
        host += ":11434"
    return host + "/v1"


def environment_models(env: Mapping[str, str] | None = None, stored: set[str] | None = None) -> dict[str, ModelSpec]:
    """Models usable with no config at all, keyed by provider name. ``stored`` = secret names in the store."""
    env = os.environ if env is None else env
    stored = stored or set()
    found: dict[str, ModelSpec] = {}
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL") or "OPENAI_API_KEY" in stored:
        found["openai"] = ModelSpec("openai", "openai", DEFAULT_MODELS["openai"],
                                    base_url=env.get("OPENAI_BASE_URL", ""), key="OPENAI_API_KEY",
                                    source="environment")
    for p in ("anthropic", "gemini"):
        if env.get(KEY_NAMES[p]) or KEY_NAMES[p] in stored:
            found[p] = ModelSpec(p, p, DEFAULT_MODELS[p], key=KEY_NAMES[p], source="environment")
    if env.get("OLLAMA_HOST"):
        found["ollama"] = ModelSpec("ollama", "ollama", "", base_url=ollama_base(env["OLLAMA_HOST"]),
                                    source="environment")
    return found


def configured_models(config: Config) -> dict[str, ModelSpec]:
    out: dict[str, ModelSpec] = {}
    for name, entry in config.table("models").items():
        provider = entry["provider"]
        base = entry["base_url"]
        if provider == "ollama" and not base:
            base = ollama_base(os.environ.get("OLLAMA_HOST", ""))
        default_key = "" if base and provider != "anthropic" else KEY_NAMES.get(provider, "")  # a plugin's: none
        out[name] = ModelSpec(name=name, provider=provider, model=entry["model"] or name, base_url=base,
                              key=entry["key"] or default_key,
                              context_window=entry["context_window"], price_in=entry["price_in"],
                              price_out=entry["price_out"], tool_mode=entry["tool_mode"],
                              max_tokens=entry["max_tokens"], stream=entry["stream"], source="config")
    return out


class Registry:
    """Name -> ModelSpec for one configuration (and environment)."""

    def __init__(self, config: Config, env: Mapping[str, str] | None = None, stored: set[str] | None = None):
        self.config = config
        self.env = os.environ if env is None else env
        self.configured = configured_models(config)
        self.environment = environment_models(self.env, stored)

    def all(self) -> dict[str, ModelSpec]:
        out = dict(self.environment)
        out.update(self.configured)  # a [models.openai] entry overrides the zero-config one
        return out

    def get(self, name: str) -> ModelSpec:
        specs = self.all()
        if name in specs:
            return specs[name]
        if name in ("default", "fast"):  # role names: reports.summary_model = "fast" etc.
            target = self.default_name() if name == "default" else self.fast_name()
            if target and target not in ("default", "fast"):
                return self.get(target)
        provider, sep, model = name.partition(":")
        if sep and provider in PROVIDERS and model:
            base = specs.get(provider) if provider in self.environment else None
            return ModelSpec(name=name, provider=provider, model=model, base_url=base.base_url if base else
                             (ollama_base(self.env.get("OLLAMA_HOST", "")) if provider == "ollama" else ""),
                             key=KEY_NAMES[provider], source="spec")
        known = ", ".join(sorted(specs)) or "none yet"
        raise NotFoundError(f"no model named {name!r} (known: {known})",
                            hint="see 'copa models list', or use provider:model such as openai:gpt-4o-mini")

    def default_name(self) -> str | None:
        chosen = self.config.get("agent.model")
        if chosen:
            return chosen
        if self.configured:
            return next(iter(self.configured))
        return next(iter(self.environment), None)

    def fast_name(self) -> str | None:
        return self.config.get("agent.fast_model") or self.default_name()

    def chain(self, name: str | None) -> list[ModelSpec]:
        """The model asked for, then the configured fallbacks (each once)."""
        first = name or self.default_name()
        if not first:
            raise ConfigError("no model is configured", hint=CONFIGURE_HINT)
        names = [first] + [n for n in self.config.get("agent.fallback") if n != first]
        seen: set[str] = set()
        out = []
        for n in names:
            if n not in seen:
                seen.add(n)
                out.append(self.get(n))
        return out
