"""How many tokens a model's context window holds, in this order:

1. ``models.NAME.context_window`` when the user set it;
2. what a server on this machine or the local network says when asked (llama.cpp's ``/props``,
   vLLM's ``max_model_len`` and LM Studio's ``loaded_context_length`` in ``/v1/models``);
3. what a server stated when it refused a request as too long ("Requested tokens (4547) exceed
   context window of 2048"), remembered in the cache folder for the next runs;
4. the provider's usual size (``ModelSpec.window()``).

Public APIs are never probed: their windows are large and their model lists are slow.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("copa.providers")
PROBE_TIMEOUT = 2.0


def is_local(base_url: str) -> bool:
    """A server on this machine or the local network (worth asking; cheap to ask)."""
    host = urlsplit(base_url).hostname or ""
    if host in ("localhost", "host.docker.internal") or host.endswith((".local", ".lan", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def from_props(obj: Any) -> int | None:
    """llama.cpp's ``GET /props``: the slots' window (``n_ctx``), not the training length."""
    if not isinstance(obj, dict):
        return None
    settings = obj.get("default_generation_settings") or {}
    return _int(settings.get("n_ctx")) or _int(obj.get("n_ctx"))


def from_models(obj: Any, model: str) -> int | None:
    """``GET /v1/models``: the entry for ``model`` (or the only one) says its window, when it does."""
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list) or not data:
        return None
    entries = [e for e in data if isinstance(e, dict) and e.get("id") == model] or (data if len(data) == 1 else [])
    for e in entries:
        meta = e.get("meta") if isinstance(e.get("meta"), dict) else {}
        for value in (e.get("max_model_len"), e.get("loaded_context_length"), e.get("context_length"),
                      meta.get("n_ctx")):
            if _int(value):
                return value
    return None


def probe(client: Any, base_url: str, model: str) -> int | None:
    """Ask a local OpenAI-compatible server for its window; None when it does not say."""
    from copa.providers.http import external_json_text, loads_or_none

    base = base_url.rstrip("/")
    root = base.removesuffix("/v1")
    for url, read in ((root + "/props", from_props), (base + "/models", lambda o: from_models(o, model))):
        try:
            response = client.get(url, timeout=PROBE_TIMEOUT)
            if response.status_code == 200:
                window = read(loads_or_none(external_json_text(response.content)))  # U+FFFD policy
                if window:
                    log.info("%s says its context window is %d tokens", url, window)
                    return window
        except Exception as e:  # a server that does not answer this is common: fall through
            log.debug("window probe %s: %s: %s", url, type(e).__name__, e)
    return None


class Learned:
    """Windows servers stated when they refused a request, kept in ``cache_dir/model-windows.json``."""

    def __init__(self, cache_dir: Path):
        self.path = cache_dir / "model-windows.json"

    @staticmethod
    def key(base_url: str, model: str) -> str:
        return f"{base_url.rstrip('/')}|{model}"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, base_url: str, model: str) -> int | None:
        return _int((self._read().get(self.key(base_url, model)) or {}).get("window"))

    def put(self, base_url: str, model: str, window: int | None) -> None:
        from datetime import UTC, datetime

        from copa.paths import atomic_write

        data = self._read()
        if window:
            data[self.key(base_url, model)] = {"window": window, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        else:
            data.pop(self.key(base_url, model), None)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(data, indent=1).encode(), mode=0o600)
        except OSError as e:  # a read-only cache costs the next run one refused request, nothing more
            log.warning("cannot remember the window in %s: %s", self.path, e)
