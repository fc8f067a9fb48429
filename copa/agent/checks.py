"""`copa doctor`: which models are configured, whether their keys are there and whether their servers
answer. The probe is a TCP connection (no request, no tokens spent), made to all models at once."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from copa.checks import FAIL, INFO, OK, WARN, Check

if TYPE_CHECKING:
    from copa.providers.types import ModelSpec

PROBE_BUDGET = 3.0  # seconds for all the probes together
PUBLIC = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
          "gemini": "https://generativelanguage.googleapis.com"}


def _endpoint(spec: ModelSpec) -> tuple[str, int]:
    url = urlsplit(spec.base_url or PUBLIC.get(spec.provider, ""))
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def _reachable(spec: ModelSpec, timeout: float = 2.0) -> str | None:
    """None when something accepts connections there, else why not."""
    host, port = _endpoint(spec)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return e.strerror or type(e).__name__


def _probe_all(specs: dict[str, ModelSpec]) -> dict[str, str | None]:
    """Probe every model at once in daemon threads, bounded as a whole: DNS lookups ignore socket
    timeouts, and a stuck lookup must neither hold the doctor nor its exit."""
    results: dict[str, str | None] = {}

    def run(name: str, spec: ModelSpec) -> None:
        results[name] = _reachable(spec)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in specs.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + PROBE_BUDGET
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return {name: results.get(name, f"no answer within {PROBE_BUDGET:g} s") for name in specs}


def _has_key(secrets: Any, spec: ModelSpec) -> bool:
    if not spec.key or os.environ.get(spec.key):
        return True
    try:
        return spec.key in secrets.names()
    except Exception:
        return False


def check_models(models: Any, secrets: Any) -> list[Check]:
    from copa.errors import CopaError
    from copa.providers.registry import CONFIGURE_HINT

    try:
        specs = models.registry.all()
        default = models.default_name()
    except CopaError as e:
        return [Check("models", FAIL, e.message, e.hint or "run 'copa config edit'")]
    if not specs:
        return [Check("models", WARN, "no model configured; everything that needs no model still works",
                      CONFIGURE_HINT)]
    reach = _probe_all(specs)
    out = []
    for name, spec in specs.items():
        label = f"model {name}" + (" (default)" if name == default else "")
        what = f"{spec.provider} {spec.model or '(server first)'} at {spec.base_url or 'the public API'}"
        if not _has_key(secrets, spec) and not spec.base_url:
            out.append(Check(label, FAIL, f"{what}: no key {spec.key}",
                             f"copa secrets set {spec.key} (or export {spec.key})"))
        elif reach[name] is not None:
            out.append(Check(label, WARN if name != default else FAIL, f"{what}: unreachable ({reach[name]})",
                             f"is the server running? then: copa models test {name}"))
        else:
            out.append(Check(label, OK, f"{what}: reachable" + (", key set" if spec.key else "")))
    if default and default not in specs:
        out.append(Check("models", INFO, f"agent.model is {default!r} (a provider:model spec)"))
    return out
