"""``Skills``: the live set of skills, and calls into their isolated workers.

Every access re-scans the skill folders (a directory listing and a stat per file, throttled to once
per ``min_interval``), so a new or edited file is picked up by a running TUI or daemon without a
restart. Only changed files are re-inspected.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copa.errors import NotFoundError
from copa.skills import discovery
from copa.skills.permissions import PermissionSyntaxError, parse
from copa.tools import ToolResult, ToolSpec

if TYPE_CHECKING:
    from copa.config import Config
    from copa.paths import Paths
    from copa.secrets import SecretStore

log = logging.getLogger("copa.skills")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LOCATIONS = ("builtin", "extra", "user", "project")  # lowest precedence first


@dataclass
class SkillInfo:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    permissions: list[str] = field(default_factory=list)
    dangerous: bool = False
    timeout: float | None = None
    secrets: list[str] = field(default_factory=list)
    processes: int | None = None
    source: str = ""
    location: str = ""
    kind: str = "function"  # function | instructions | mcp
    function: str | None = None
    status: str = "ok"  # ok | error
    error: str | None = None
    shadows: list[str] = field(default_factory=list)  # lower-precedence definitions this one hides
    instructions: str | None = None
    scripts: list[str] = field(default_factory=list)
    fingerprint: tuple = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("fingerprint")
        d.pop("instructions")
        return d

    @property
    def spec(self) -> ToolSpec:
        desc = self.description
        if self.kind == "instructions":
            desc = f"Read the instructions of the '{self.name}' skill: {desc}"
        return ToolSpec(self.name, desc, self.parameters, dangerous=self.dangerous, source=f"skill:{self.name}"
                        if self.kind != "mcp" else self.source)


class SkillTool:
    """A skill as a ``copa.tools.Tool``: calling it runs the skill in its worker."""

    def __init__(self, registry: Skills, info: SkillInfo):
        self._registry = registry
        self.spec = info.spec

    def call(self, arguments: dict[str, Any]) -> ToolResult:
        return self._registry.call(self.spec.name, arguments)


class Skills:
    """The skills of the user's folders (and MCP servers' tools), each run in its own confined worker.

    ``config`` gives skills.* and [mcp.servers]; ``paths`` the user's skill folder, the inspection
    cache and copa's folders, which no skill may touch; ``secrets`` the values a skill declares;
    ``memory`` the store a ``memory``-permitted skill reaches through copa (copa.skills.host). Without
    them (tests, ``copa skills check``): defaults, the given ``dirs`` only, secrets from the
    environment, no memory."""

    def __init__(self, config: Config | None = None, paths: Paths | None = None,
                 secrets: SecretStore | None = None, *, memory: Any = None,
                 dirs: list[tuple[str, Path]] | None = None,
                 cwd: str | None = None, min_interval: float = 0.2, use_cache: bool = True):
        from copa.skills.runner import Limits, WorkerPool

        self.config, self.paths, self.secrets, self.memory = config, paths, secrets, memory
        self.cwd = cwd or os.getcwd()
        self._dirs = dirs
        self.min_interval = min_interval
        cfg = config
        get = (lambda k, d: cfg.get(k)) if cfg is not None else (lambda k, d: d)
        self.limits = Limits(memory_mb=get("skills.memory_mb", 512), cpu_seconds=get("skills.cpu_seconds", 30),
                             timeout=float(get("skills.timeout", 30.0)),
                             idle_seconds=float(get("skills.idle_seconds", 300.0)),
                             max_processes=int(get("skills.max_processes", 64)),
                             allow_unenforced=tuple(get("skills.allow_unenforced", [])))
        self.pool = WorkerPool(self.limits, tmp_parent=str(paths.cache_dir / "workers") if paths is not None else None)
        cache_file = paths.cache_dir / "skills-index.json" if (paths is not None and use_cache) else None
        self._cache = discovery.InspectionCache(cache_file)
        from copa.skills.trust import TrustStore

        self.trust = TrustStore(paths.config_dir / "skills-trust.json" if paths is not None else None)
        self._skills: dict[str, SkillInfo] = {}
        self._broken: list[SkillInfo] = []
        self._last_scan = -1e9
        self._fps: dict[str, tuple] = {}
        self._transient: dict[str, dict] = {}
        self.last_output = ""
        self._mcp = None
        self._lock = threading.RLock()

    # ---- discovery
    def dirs(self) -> list[tuple[str, Path]]:
        if self._dirs is not None:
            return self._dirs
        from copa.plugins import collect

        # every plugin's folders (copa's own: the shipped skills, skills.dirs, the user's, the
        # project's), by precedence: a later location overrides an earlier one's skill of that name
        found = [d for group in collect("copa_skill_sources", config=self.config, paths=self.paths, cwd=self.cwd)
                 for d in group]
        return sorted(found, key=lambda d: LOCATIONS.index(d[0]) if d[0] in LOCATIONS else 0)

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_scan < self.min_interval:
            return
        with self._lock:  # the TUI, the daemon's jobs and the agent may ask at once
            self._refresh(force)

    def _refresh(self, force: bool) -> None:
        force = self.trust.reload_if_changed() or force
        entries = [e for loc, d in self.dirs() for e in discovery.scan_dir(d, loc)]
        fps = {str(e.path): e.fingerprint for e in entries}
        tracked = self.trust.entries()
        for e in entries:  # an approved skill: any file of it changing (scripts/, data) is a change
            if str(e.path) in tracked and e.path.is_dir():
                fps[str(e.path)] = e.fingerprint + discovery.deep_fingerprint(e.path)
        if fps == self._fps and not force and not self._transient:
            self._last_scan = time.monotonic()
            return
        stale = [e for e in entries if e.kind != "instructions" and self._cache.get(e) is None]
        if stale:
            for path, result in discovery.inspect_files([e.path for e in stale], self.limits).items():
                if result.get("transient"):  # the inspector itself failed: try again in the next process
                    self._transient[path] = result
                else:
                    self._transient.pop(path, None)
                    self._cache.put(next(e for e in stale if str(e.path) == path), result)
        self._cache.prune({str(e.path) for e in entries if e.kind != "instructions"})
        self._cache.save()
        changed = {p for p, fp in self._fps.items() if fps.get(p) != fp}
        if changed:  # stop idle workers still running an old version of a file
            self.pool.discard(lambda key: key[0] in changed)
        self._fps = fps
        self._build(entries)
        self._last_scan = time.monotonic()

    def _build(self, entries: list[discovery.Entry]) -> None:
        found: list[SkillInfo] = []
        for e in entries:
            found.extend(self._infos(e))
        skills: dict[str, SkillInfo] = {}
        broken: list[SkillInfo] = []
        rank = {loc: i for i, loc in enumerate(LOCATIONS)}
        for info in sorted(found, key=lambda i: rank.get(i.location, 0)):
            if info.status != "ok":
                broken.append(info)
                continue
            prev = skills.get(info.name)
            if prev is not None and prev.location == info.location:
                info.status, info.error = "error", f"duplicate skill name '{info.name}' (also in {prev.source})"
                broken.append(info)
                continue
            if prev is not None:
                info.shadows = prev.shadows + [prev.source]
            skills[info.name] = info
        self._skills, self._broken = skills, broken

    def _infos(self, e: discovery.Entry) -> list[SkillInfo]:
        infos = self._describe(e)
        changed = self.trust.verify(e.path, self._fps.get(str(e.path), e.fingerprint))
        if changed:  # approved once, different now: not offered until the user approves it again
            for info in infos:
                info.status, info.error = "error", changed
        return infos

    def _describe(self, e: discovery.Entry) -> list[SkillInfo]:
        base = {"source": str(e.path), "location": e.location, "fingerprint": e.fingerprint}
        if e.kind == "instructions":
            meta = discovery.read_instructions(e.path)
            return [SkillInfo(name=meta["name"], description=meta["description"], kind="instructions",
                              instructions=meta["instructions"], scripts=meta["scripts"],
                              status="error" if meta["error"] else "ok", error=meta["error"], **base)]
        result = self._cache.get(e) or self._transient.get(str(e.path)) or {"skills": [], "error": "not inspected"}
        if result["error"]:
            return [SkillInfo(name=_stem(e.path), status="error", error=result["error"], **base)]
        if not result["skills"]:
            return [SkillInfo(name=_stem(e.path), status="error",
                              error="defines no @skill function (decorate one with @skill from copa.skills)", **base)]
        out = []
        for s in result["skills"]:
            info = SkillInfo(name=s["name"], description=s.get("description") or "", parameters=s["parameters"],
                             permissions=s["permissions"], dangerous=s["dangerous"], timeout=s["timeout"],
                             secrets=s["secrets"], function=s["function"], processes=s.get("processes"), **base)
            problem = s.get("error")
            if not problem and not _NAME_RE.match(info.name):
                problem = f"skill name {info.name!r} must be 1-64 letters, digits, '_' or '-'"
            if not problem:
                try:
                    parse(info.permissions, cwd=self.cwd)
                except PermissionSyntaxError as err:
                    problem = str(err)
            if not problem and not info.description:
                problem = "no description: give the function a docstring saying what it does"
            if problem:
                info.status, info.error = "error", problem
            out.append(info)
        return out

    # ---- public API
    def list(self, include_mcp: bool = False) -> list[SkillInfo]:
        """Every skill, working ones by name, then those that failed to load (with their error)."""
        self.refresh()
        out = sorted(self._skills.values(), key=lambda i: i.name) + sorted(self._broken, key=lambda i: i.source)
        if include_mcp:
            out += self.mcp.list()
        return out

    def get(self, name: str) -> SkillInfo:
        self.refresh()
        if name in self._skills:
            return self._skills[name]
        for info in self._broken:
            if info.name == name:
                return info
        if self._mcp is not None or (self.config is not None and self.config.table("mcp.servers")):
            for info in self.mcp.list():
                if info.name == name:
                    return info
        close = difflib.get_close_matches(name, list(self._skills), n=1)
        raise NotFoundError(f"no skill named '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
                            hint="see 'copa skills list'")

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        """Run a skill as the agent does: validated arguments, its own confined worker, limits."""
        from copa.skills.runner import WorkerDied, carve_stamp, sandbox_config

        t0 = time.perf_counter()
        arguments = arguments or {}
        try:
            info = self.get(name)
        except NotFoundError as e:
            return ToolResult(False, error=str(e), error_type="not_found")
        if info.kind == "instructions":
            if info.status != "ok":
                return ToolResult(False, error=info.error, error_type="load")
            return ToolResult(True, content={"name": info.name, "instructions": info.instructions,
                                             "folder": info.source, "scripts": info.scripts})
        if info.kind == "mcp":
            return self.mcp.call(info, arguments)
        if info.status != "ok":
            return ToolResult(False, error=f"skill '{name}' failed to load: {info.error}", error_type="load")
        perms = parse(info.permissions, cwd=self.cwd)
        secrets: dict[str, str] = {}
        for n in info.secrets:
            value = self._secret(n)
            if not value:
                return ToolResult(False, error=f"skill '{name}' needs the secret {n}, which is not set "
                                  f"(copa secrets set {n})", error_type="secret")
            secrets[n] = value
        digest = hashlib.sha256("\0".join(f"{k}={v}" for k, v in sorted(secrets.items())).encode()).hexdigest()
        config = sandbox_config(perms, Path(info.source), self.limits, hidden=self._hidden(),
                                protected=tuple(str(d) for _, d in self.dirs()), max_processes=info.processes)
        config.update(mode="serve", file=info.source, cwd=self.cwd)
        key = (info.source, info.fingerprint, tuple(sorted(info.permissions)), digest, info.processes,
               carve_stamp(config))
        timeout = info.timeout or self.limits.timeout
        for _attempt in range(2):  # a second time only when the first worker had retired
            try:
                worker = self.pool.acquire(key, config, secrets)
            except WorkerDied as e:
                if "cannot enforce" in str(e):  # fails closed: one line saying what is missing and the opt-out
                    return ToolResult(False, error=f"skill '{name}' refused: {e}", error_type="sandbox",
                                      duration_ms=_ms(t0))
                return ToolResult(False, error=f"skill '{name}' could not start: {e}", error_type="load",
                                  duration_ms=_ms(t0))
            except TimeoutError:
                return ToolResult(False, error=f"skill '{name}' took too long to load", error_type="timeout",
                                  duration_ms=_ms(t0))
            pos = worker.output_pos()
            worker.host = self._host_api(info, perms)
            try:
                result = worker.call(info.function or name, arguments, timeout)
                self.last_output = worker.output_since(pos)  # what it printed: shown by `copa skills run`
            finally:
                self.pool.release(worker)
            if result.error_type != "retired":
                break
        if self.last_output:
            log.debug("skill %s printed: %s", name, self.last_output[-2000:])
        result.duration_ms = _ms(t0)
        return result

    def as_tools(self) -> list[SkillTool]:
        """Working skills (and configured MCP servers' tools) as ``copa.tools.Tool`` objects."""
        tools: list[Any] = [SkillTool(self, i) for i in self.list() if i.status == "ok"]
        if self.config is not None and self.config.table("mcp.servers"):
            names = {t.spec.name for t in tools}
            tools += [t for t in self.mcp.tools() if t.spec.name not in names]
        return tools

    def close(self) -> None:
        self.pool.close()
        if self._mcp is not None:
            self._mcp.close()

    # ---- helpers
    @property
    def mcp(self):
        if self._mcp is None:
            from copa.skills.mcp_client import McpServers

            self._mcp = McpServers(self.config, self.secrets)
        return self._mcp

    def _secret(self, name: str) -> str | None:
        if self.secrets is None:
            return os.environ.get(name)
        return self.secrets.resolve(name)

    def _hidden(self) -> tuple[str, ...]:
        """copa's own folders: no skill reads or writes them (the database, secrets, key, config)."""
        from copa.paths import Paths

        paths = self.paths if self.paths is not None else Paths.from_env()
        return tuple(str(p) for p in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.state_dir,
                                      paths.log_dir))

    def _host_api(self, info: SkillInfo, perms):
        """What a worker may ask copa for (copa.skills.host), by its declared permissions."""
        from copa.skills import host_api

        return host_api.handler(info.name, perms, (lambda: self.memory) if self.memory is not None else None)


def _stem(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
