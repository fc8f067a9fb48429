"""Finding skills: the folders, the files in them, and what each file defines.

Where discovery runs: copa's own process only lists folders and stats files. What a ``.py`` skill
defines (names, schemas, import errors) is learnt by importing it in a confined inspector process
(``worker.py`` in "inspect" mode: no network, read-only filesystem, no secrets, limits), so untrusted
skill code never runs inside copa. Results are cached on disk by (path, mtime, size), so a warm
``copa skills list`` starts no process at all, and an edited file is re-inspected on next access.
Agent Skills folders (``SKILL.md``) are plain text and parsed here.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copa
from copa.paths import atomic_write

CACHE_VERSION = 2
_SKIP_PREFIXES = ("_", ".", "test_")
_FRONT_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str  # file | package | instructions
    location: str  # builtin | extra | user | project
    fingerprint: tuple


def builtin_dir() -> Path | None:
    """Shipped skills: the repository's ``skills/`` (dev install) or ``copa/_builtin/skills`` (wheel)."""
    pkg = Path(copa.__file__).resolve().parent
    repo = pkg.parent / "skills"
    if repo.is_dir() and (pkg.parent / "pyproject.toml").exists():
        return repo
    wheel = pkg / "_builtin" / "skills"
    return wheel if wheel.is_dir() else None


def _fp(path: Path) -> tuple:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


def _package_fp(path: Path) -> tuple:
    parts: list[Any] = []
    for i, f in enumerate(sorted(path.rglob("*.py"))):
        if i > 500 or "__pycache__" in f.parts:
            break
        st = f.stat()
        parts.append((f.name, st.st_mtime_ns, st.st_size))
    return (len(parts), max((p[1] for p in parts), default=0), sum(p[2] for p in parts))


def deep_fingerprint(path: Path, limit: int = 2000) -> tuple:
    """(count, newest mtime, total size) of every file under a folder: a stat each."""
    n = newest = total = 0
    for root, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".git")]
        for name in names:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            n, newest, total = n + 1, max(newest, st.st_mtime_ns), total + st.st_size
            if n > limit:
                return (n, newest, total)
    return (n, newest, total)


def scan_dir(d: Path, location: str) -> list[Entry]:
    """Skill entries directly inside ``d`` (a missing folder has none)."""
    out: list[Entry] = []
    try:
        items = sorted(os.scandir(d), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return out
    for e in items:
        name = e.name
        try:
            if e.is_file() and name.endswith(".py"):
                if name.startswith(_SKIP_PREFIXES) or name.endswith("_test.py") or name == "conftest.py":
                    continue
                out.append(Entry(Path(e.path), "file", location, _fp(Path(e.path))))
            elif e.is_dir() and not name.startswith((".", "_")):
                p = Path(e.path)
                if (p / "SKILL.md").is_file():
                    out.append(Entry(p, "instructions", location, _fp(p / "SKILL.md")))
                elif (p / "__init__.py").is_file():
                    out.append(Entry(p, "package", location, _package_fp(p)))
        except OSError:
            continue  # vanished while we looked
    return out


# ---- Agent Skills (SKILL.md) ------------------------------------------------------------------

def read_instructions(folder: Path) -> dict[str, Any]:
    """name, description, instructions and scripts of an Agent Skills folder; 'error' when invalid."""
    out: dict[str, Any] = {"name": folder.name, "description": "", "instructions": "", "scripts": [], "error": None}
    try:
        text = (folder / "SKILL.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        out["error"] = f"cannot read SKILL.md: {e}"
        return out
    m = _FRONT_RE.match(text)
    if not m:
        out["error"] = "SKILL.md must start with YAML front matter (---, name:, description:, ---)"
        return out
    import yaml

    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as e:
        out["error"] = f"SKILL.md front matter is not valid YAML: {str(e).splitlines()[0]}"
        return out
    if not isinstance(meta, dict):
        out["error"] = "SKILL.md front matter must be a mapping with name and description"
        return out
    name, desc = meta.get("name"), meta.get("description")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        out["error"] = "SKILL.md needs a 'name' of letters, digits, '-' or '_' (at most 64)"
        return out
    if not isinstance(desc, str) or not desc.strip():
        out["error"] = "SKILL.md needs a 'description' saying when to use the skill"
        out["name"] = name
        return out
    scripts = folder / "scripts"
    out.update(name=name, description=" ".join(desc.split()), instructions=m.group(2).strip(),
               scripts=sorted(str(p.relative_to(folder)) for p in scripts.rglob("*") if p.is_file())
               if scripts.is_dir() else [])
    return out


# ---- inspection cache -------------------------------------------------------------------------

class InspectionCache:
    """path -> (fingerprint, inspection result), persisted as JSON in the cache folder."""

    def __init__(self, file: Path | None):
        self.file = file
        self.data: dict[str, Any] = {}
        self._dirty = False
        self._tag = f"{CACHE_VERSION}:{copa.__version__}:{sys.version_info[:2]}"
        if file is not None:
            try:
                raw = json.loads(file.read_text())
                if raw.get("tag") == self._tag:
                    self.data = raw.get("entries", {})
            except (OSError, ValueError, AttributeError):
                pass

    def get(self, entry: Entry) -> dict | None:
        hit = self.data.get(str(entry.path))
        if hit and tuple(hit["fp"]) == tuple(entry.fingerprint):
            return hit["result"]
        return None

    def put(self, entry: Entry, result: dict) -> None:
        self.data[str(entry.path)] = {"fp": list(entry.fingerprint), "result": result}
        self._dirty = True

    def prune(self, keep: set[str]) -> None:
        for k in [k for k in self.data if k not in keep]:
            del self.data[k]
            self._dirty = True

    def save(self) -> None:
        if self.file is None or not self._dirty:
            return
        try:
            atomic_write(self.file, json.dumps({"tag": self._tag, "entries": self.data}).encode(), mode=0o600)
            self._dirty = False
        except OSError:
            pass  # a read-only cache folder only costs speed


def inspect_files(paths: list[Path], limits, per_file_timeout: float = 15.0) -> dict[str, dict]:
    """Import each file in a confined inspector process; {path: {"skills": [...], "error": str|None}}."""
    from copa.skills.permissions import Permissions
    from copa.skills.runner import Worker, WorkerDied, new_tmpdir, sandbox_config, worker_env

    remaining = [str(p) for p in paths]
    results: dict[str, dict] = {}
    while remaining:
        cfg = sandbox_config(Permissions(), paths[0], limits)
        dirs = {str(Path(p) if Path(p).is_dir() else Path(p).parent) for p in remaining}
        cfg["read"] = sorted(set(cfg["read"]) | dirs)
        tmp = new_tmpdir()
        cfg["write"] = [tmp if p == "{tmp}" else p for p in cfg["write"]]
        cfg.update(mode="inspect", files=list(remaining))
        w = Worker(key=("inspect",), config=cfg, env=worker_env(tmp, {}), tmpdir=tmp)
        current: str | None = None
        try:
            w.start(timeout=per_file_timeout)
            while True:
                msg = w.read_message(per_file_timeout)
                if "started" in msg:
                    current = msg["started"]
                elif "path" in msg:
                    results[msg["path"]] = {"skills": msg["skills"], "error": msg["error"]}
                    remaining.remove(msg["path"])
                    current = None
                elif msg.get("done"):
                    break
                elif msg.get("ready") is False:  # the inspector could not confine itself
                    for p in remaining:
                        results[p] = {"skills": [], "error": msg.get("error"), "transient": True}
                    remaining = []
                    break
        except TimeoutError:
            _fail(results, remaining, current, f"importing took longer than {per_file_timeout:g} s")
        except (WorkerDied, ValueError):
            kind, why = w.death_reason()
            _fail(results, remaining, current, f"importing it stopped the inspector: {why}")
        finally:
            w.close()
    return results


def _fail(results: dict, remaining: list[str], current: str | None, message: str) -> None:
    if current is None:  # died before naming a file: blame them all rather than loop, and do not cache
        for p in list(remaining):
            results[p] = {"skills": [], "error": message, "transient": True}
        remaining.clear()
        return
    results[current] = {"skills": [], "error": message}
    remaining.remove(current)


def now() -> float:
    return time.monotonic()
