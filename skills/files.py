"""Files: list, read and search files in your home folder and the project copa runs in.

Read-only. The sandbox only lets this skill see ~ and the current folder; paths elsewhere fail.
Credential stores inside those (~/.ssh, ~/.aws, copa's secrets files, ...) are refused too.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from copa.skills import skill

PERMISSIONS = ["fs.read:~", "fs.read:."]
MAX_READ_BYTES = 512 * 1024
SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".tox"}


def _sensitive() -> tuple[str, ...]:
    """Credential stores inside the allowed roots that the model has no business reading."""
    from copa.paths import Paths

    home = os.path.expanduser("~")
    paths = Paths.from_env()
    names = [".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".pgpass", ".password-store",
             ".config/gcloud", ".local/share/keyrings", ".git-credentials"]
    return tuple([os.path.join(home, n) for n in names] + [str(paths.secrets_file), str(paths.secrets_key_file),
                                                           str(paths.secrets_index_file)])


def _refused(p: Path) -> bool:
    s = str(p)
    return any(s == r or s.startswith(r + os.sep) for r in _sensitive())


def _resolve(path: str) -> Path:
    p = Path(os.path.expanduser(path))
    if not p.is_absolute():
        p = Path(os.environ.get("COPA_CWD", os.getcwd())) / p
    p = p.resolve()
    if _refused(p):
        raise PermissionError(f"{path} holds credentials; the files skill does not read it")
    if not p.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return p


def _is_text(data: bytes) -> bool:
    return b"\0" not in data[:4096]


@skill(permissions=PERMISSIONS)
def list_files(path: str = ".", pattern: str = "*", recursive: bool = False, limit: int = 200) -> dict:
    """List the files and folders in a folder.

    Args:
        path: folder to list; relative paths start at the current project folder.
        pattern: shell-style name filter, e.g. "*.py".
        recursive: also list sub-folders (skips .git, node_modules and the like).
        limit: most entries to return.
    """
    root = _resolve(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    entries, truncated = [], False
    walker = os.walk(root) if recursive else [(str(root), None, None)]
    for folder, dirs, _ in walker:
        if dirs is not None:
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not _refused(Path(folder) / d))
        with os.scandir(folder) as it:
            for e in sorted(it, key=lambda e: e.name):
                if not fnmatch.fnmatch(e.name, pattern) or (recursive and e.is_dir()) or _refused(Path(e.path)):
                    continue
                if len(entries) >= limit:
                    truncated = True
                    break
                st = e.stat(follow_symlinks=False)
                entries.append({"path": os.path.relpath(e.path, root), "type": "dir" if e.is_dir() else "file",
                                "size": st.st_size})
        if truncated:
            break
    return {"root": str(root), "entries": entries, "truncated": truncated}


@skill(permissions=PERMISSIONS)
def read_file(path: str, start_line: int = 1, max_lines: int = 400) -> dict:
    """Read a text file, or part of it (by line numbers).

    Args:
        path: the file; relative paths start at the current project folder.
        start_line: first line to return (1 = the beginning).
        max_lines: most lines to return.
    """
    p = _resolve(path)
    if p.is_dir():
        raise IsADirectoryError(f"{path} is a folder; use list_files")
    with open(p, "rb") as f:
        data = f.read(MAX_READ_BYTES + 1)
    if not _is_text(data):
        raise ValueError(f"{path} is a binary file ({p.stat().st_size} bytes)")
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    lines = text.splitlines()
    start = max(start_line, 1) - 1
    chunk = lines[start : start + max_lines]
    return {"path": str(p), "start_line": start + 1, "lines": len(chunk), "total_lines": len(lines),
            "truncated": start + max_lines < len(lines) or len(data) > MAX_READ_BYTES, "text": "\n".join(chunk)}


@skill(permissions=PERMISSIONS)
def search_files(query: str, path: str = ".", glob: str = "*", regex: bool = False, limit: int = 50) -> dict:
    """Search text files under a folder for a word or pattern (like grep).

    Args:
        query: the text to find (case-insensitive), or a regular expression when regex is true.
        path: folder to search in; relative paths start at the current project folder.
        glob: only files whose name matches, e.g. "*.md".
        regex: treat query as a regular expression.
        limit: most matching lines to return.
    """
    root = _resolve(path)
    pattern = re.compile(query if regex else re.escape(query), re.IGNORECASE)
    matches, scanned = [], 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not _refused(Path(folder) / d))
        for name in sorted(files):
            if not fnmatch.fnmatch(name, glob) or _refused(Path(folder) / name):
                continue
            full = os.path.join(folder, name)
            scanned += 1
            if scanned > 5000:
                return {"matches": matches, "truncated": True, "files_scanned": scanned - 1}
            try:
                with open(full, "rb") as f:
                    data = f.read(MAX_READ_BYTES)
            except OSError:
                continue
            if not _is_text(data):
                continue
            for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                if pattern.search(line):
                    matches.append({"path": os.path.relpath(full, root), "line": n, "text": line.strip()[:300]})
                    if len(matches) >= limit:
                        return {"matches": matches, "truncated": True, "files_scanned": scanned}
    return {"matches": matches, "truncated": False, "files_scanned": scanned}
