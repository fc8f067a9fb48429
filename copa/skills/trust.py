"""Which skill files the user approved, and exactly which bytes: the supply-chain record.

``copa skills install`` and ``copa skills trust`` write, for a skill (a file, a package folder or
an Agent Skills folder), its source (a path, a git URL, an archive) and the SHA-256 of every file
in it. From then on a skill whose files differ from what was approved (an edit, a ``git pull``, a
file another program dropped in) is not offered to the agent until the user trusts it again. Skills
never approved (drop-in files you write yourself) are not tracked.

The record lives in copa's config folder (``skills-trust.json``), which no skill can read or write.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from copa.paths import atomic_write

_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn"}
MAX_FILES = 2000


def files_of(entry: Path) -> list[Path]:
    """The files that make up a skill entry (sorted; caches and VCS folders left out)."""
    if entry.is_file():
        return [entry]
    out = []
    for root, dirs, names in os.walk(entry):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(names):
            if name.endswith((".pyc", ".pyo")):
                continue
            out.append(Path(root) / name)
            if len(out) > MAX_FILES:
                raise ValueError(f"{entry} holds more than {MAX_FILES} files")
    return out


def digest(entry: Path) -> dict[str, str]:
    """{relative path: sha256} of every file of the entry."""
    base = entry.parent if entry.is_file() else entry
    out = {}
    for f in files_of(entry):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                h.update(block)
        out[str(f.relative_to(base))] = h.hexdigest()
    return out


class TrustStore:
    def __init__(self, file: Path | None):
        self.file = file
        self._data: dict | None = None
        self._verified: dict[str, tuple[tuple, str | None]] = {}  # path -> (fingerprint, verdict)

    @property
    def data(self) -> dict:
        if self._data is None:
            self._stamp = self._file_stamp()
            try:
                self._data = json.loads(self.file.read_text()) if self.file else {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def _file_stamp(self) -> tuple:
        try:
            st = os.stat(self.file) if self.file else None
        except OSError:
            return ()
        return (st.st_mtime_ns, st.st_size) if st else ()

    def reload_if_changed(self) -> bool:
        """Another copa process approved a skill: read the record again (True when it changed)."""
        if self._data is not None and self._file_stamp() != getattr(self, "_stamp", ()):
            self._data = None
            self._verified.clear()
            return True
        return False

    def entries(self) -> dict[str, dict]:
        return self.data.setdefault("skills", {})

    def record(self, entry: Path, source: str, name: str = "") -> dict:
        """Approve the entry as it is now (its files and their hashes)."""
        rec = {"name": name or entry.stem, "source": source, "approved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                        time.gmtime()),
               "files": digest(entry)}
        self.entries()[str(entry)] = rec
        self._verified.pop(str(entry), None)
        self.save()
        return rec

    def forget(self, entry: Path) -> None:
        if self.entries().pop(str(entry), None) is not None:
            self.save()

    def save(self) -> None:
        if self.file is not None:
            atomic_write(self.file, json.dumps(self.data, indent=1, sort_keys=True).encode(), mode=0o600)
            self._stamp = self._file_stamp()

    def verify(self, entry: Path, fingerprint: tuple = ()) -> str | None:
        """None when the entry is untracked or unchanged; else what changed since it was approved."""
        rec = self.entries().get(str(entry))
        if rec is None:
            return None
        cached = self._verified.get(str(entry))
        if cached is not None and fingerprint and cached[0] == fingerprint:
            return cached[1]
        try:
            now = digest(entry)
        except (OSError, ValueError) as e:
            verdict: str | None = f"cannot be checked against what you approved: {e}"
        else:
            approved = rec.get("files", {})
            changed = sorted(f for f in set(now) | set(approved) if now.get(f) != approved.get(f))
            verdict = None if not changed else (
                f"changed since you approved it ({', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}); "
                "review it, then 'copa skills trust " + str(rec.get("name") or entry.stem) + "'")
        self._verified[str(entry)] = (fingerprint, verdict)
        return verdict
