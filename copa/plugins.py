"""The one plugin manager (pluggy), built on first use.

copa's own parts register through the same hooks as other packages: their plugin modules are
listed in ``BUILTIN`` (one per part, so adding a provider, a check or a channel touches only that
part's module). Other packages are found through the ``copa`` entry-point group.

Reading entry points means importing ``importlib.metadata`` and scanning every installed package
(~80 ms here), so the list is cached in the cache folder and rescanned only when a site-packages
folder of ``sys.path`` (or of PYTHONPATH) changed: installing or removing a package changes its mtime.
Nothing here runs for `copa --version` or `copa --help`; a command that needs the parts (its
config, the database, the doctor) builds the manager once per process.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("copa.plugins")
GROUP = "copa"

# copa's own parts, in the order their contributions are read: the foundation first, then the
# memory store (whose tables others reference), then the rest.
BUILTIN: tuple[str, ...] = (
    "copa.checks",
    "copa.memory.plugin",
    "copa.agent.plugin",
    "copa.providers.plugin",
    "copa.device.plugin",
    "copa.scheduler.plugin",
    "copa.daemon.plugin",
    "copa.skills.plugin",
)


@dataclass
class PluginInfo:
    name: str
    module: str
    package: str = "copa"
    version: str = ""
    hooks: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "package": self.package, "version": self.version,
                "hooks": self.hooks, "error": self.error}


def hookimpl(fn: Any = None, **options: Any) -> Any:
    """``@hookimpl``: marks a function as this plugin's answer to the hook of the same name."""
    import pluggy

    marker = pluggy.HookimplMarker(GROUP)
    return marker(fn, **options) if fn is not None else marker(**options)


def _fingerprint() -> list[list[Any]]:
    """The mtimes of the folders installed distributions live in: site-packages (and dist-packages)
    of sys.path, and PYTHONPATH's folders. Not every sys.path entry: the first is the current folder
    or the script's, and a folder such as /tmp changes all the time."""
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    out = []
    for entry in dict.fromkeys([p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
                               + extra):
        try:
            out.append([entry, os.stat(entry).st_mtime_ns])
        except OSError:
            continue
    return out


def _cache_file() -> Path | None:
    try:
        from copa.paths import Paths

        return Paths.from_env().cache_dir / "plugins.json"
    except Exception:  # no usable cache folder: scan every time
        return None


def entry_points() -> list[dict[str, str]]:
    """The installed ``copa`` entry points: name, value ("module" or "module:attr"), package, version."""
    fp = _fingerprint()
    cache = _cache_file()
    if cache is not None:
        try:
            data = json.loads(cache.read_text())
            if data.get("fingerprint") == fp:
                return data["entry_points"]
        except (OSError, ValueError, KeyError):
            pass
    from importlib.metadata import entry_points as scan

    found = [{"name": ep.name, "value": ep.value, "package": ep.dist.name if ep.dist else "?",
              "version": ep.dist.version if ep.dist else ""}
             for ep in sorted(scan(group=GROUP), key=lambda e: e.name)]
    if cache is not None:
        try:
            from copa.paths import atomic_write

            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, json.dumps({"fingerprint": fp, "entry_points": found}).encode())
        except OSError:
            pass
    return found


class Plugins:
    def __init__(self) -> None:
        import pluggy

        from copa import hookspecs

        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        from copa import __version__

        for module in BUILTIN:
            self._register(PluginInfo(module.removeprefix("copa.").removesuffix(".plugin"), module,
                                      version=__version__))
        if os.environ.get("COPA_NO_PLUGINS", "") in ("", "0"):
            for ep in entry_points():
                self._register(PluginInfo(ep["name"], ep["value"], ep["package"], ep["version"]))

    def _register(self, info: PluginInfo) -> None:
        module, _, attr = info.module.partition(":")
        try:
            obj = importlib.import_module(module)
            if attr:
                obj = getattr(obj, attr)
            self.pm.register(obj, name=info.name if info.package == "copa" else f"{info.package}:{info.name}")
            info.hooks = sorted(h.name for h in self.pm.get_hookcallers(obj) or [])
        except Exception as e:  # a broken plugin must not take copa down; `copa plugins list` shows it
            if info.package == "copa":
                raise
            info.error = f"{type(e).__name__}: {e}"
            log.warning("plugin %s (%s) not loaded: %s", info.name, info.package, info.error)
        self.infos.append(info)

    def collect(self, hook: str, **kwargs: Any) -> list[Any]:
        """Each plugin's answer to ``hook``, in registration order (pluggy calls the last registered
        first), without the plugins that gave none."""
        return [r for r in reversed(getattr(self.pm.hook, hook)(**kwargs)) if r is not None]


_manager: Plugins | None = None
_manager_lock = threading.Lock()


def manager() -> Plugins:
    """The process's plugin manager, built on first use (once, even when threads ask together)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = Plugins()
        return _manager


def collect(hook: str, **kwargs: Any) -> list[Any]:
    return manager().collect(hook, **kwargs)


def merged(hook: str, what: str, **kwargs: Any) -> dict[str, Any]:
    """The dicts the plugins answer, merged; a name given twice is an error naming both givers."""
    out: dict[str, Any] = {}
    owner: dict[str, str] = {}
    pm = manager().pm
    for impl in getattr(pm.hook, hook).get_hookimpls():  # registration order
        answer = impl.function(**{k: kwargs[k] for k in impl.argnames})
        for name, value in (answer or {}).items():
            if name in out:
                from copa.errors import ConfigError

                raise ConfigError(f"{what} '{name}' is declared by both {owner[name]} and {impl.plugin_name}",
                                  hint="uninstall one of the two plugins (copa plugins list)")
            out[name], owner[name] = value, impl.plugin_name
    return out
