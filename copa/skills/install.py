"""``copa skills install``: put a skill from a path, a git URL or an archive into the user's folder.

Nothing of the skill runs here: files are copied (archives extracted without links, devices or paths
leaving the target), the source and the SHA-256 of every file are recorded (trust.py), and copa's
confined inspector reads it on the next listing like any other skill.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from copa.errors import UsageError

_ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def is_git_url(source: str) -> bool:
    return source.startswith(("git@", "git://", "ssh://", "git+")) or (
        "://" in source and (source.endswith(".git") or source.startswith("file://")))


def _skill_root(folder: Path) -> Path:
    """The folder that is the skill: the given one, or its only sub-folder (archives often wrap one)."""
    if (folder / "SKILL.md").is_file() or (folder / "__init__.py").is_file():
        return folder
    items = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(items) == 1 and items[0].is_dir():
        return _skill_root(items[0])
    pys = [p for p in items if p.suffix == ".py" and p.is_file()]
    if len(items) == 1 and pys:
        return pys[0]
    raise UsageError(f"{folder.name} is not a skill: it has no SKILL.md or __init__.py and is not a single .py file",
                     hint="install a .py file, a package folder, or an Agent Skills folder with SKILL.md")


def _extract(archive: Path, into: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                target = (into / info.filename).resolve()
                if not str(target).startswith(str(into.resolve()) + os.sep) and target != into.resolve():
                    raise UsageError(f"{archive.name}: the entry {info.filename!r} points outside the archive",
                                     hint="this archive is not safe to install")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UsageError(f"{archive.name}: the entry {info.filename!r} is a symbolic link",
                                     hint="this archive is not safe to install")
            z.extractall(into)
        return
    try:
        with tarfile.open(archive) as t:
            members = t.getmembers()
            root = into.resolve()
            for m in members:  # our own check: Python < 3.11.4 has no extraction filters
                target = (into / m.name).resolve()
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or (
                        target != root and not str(target).startswith(str(root) + os.sep)):
                    raise tarfile.TarError(f"the entry {m.name!r} is not a plain file inside the archive")
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, members=members, filter="data")
            else:
                t.extractall(into, members=members)  # noqa: S202 - every member was checked above
    except (tarfile.TarError, OSError) as e:
        raise UsageError(f"cannot extract {archive.name}: {e}", hint="is it a .tar.gz, .tgz, .tar or .zip?") from None


def fetch(source: str, workdir: Path) -> tuple[Path, str]:
    """(the skill's file or folder, a description of where it came from) for a path, archive or git URL."""
    if is_git_url(source):
        dest = workdir / "clone"
        try:
            r = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--", source, str(dest)],
                               capture_output=True, text=True, timeout=300,
                               env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        except FileNotFoundError:
            raise UsageError("git is not installed",
                             hint="install git, or download the skill and install the folder") from None
        if r.returncode != 0:
            raise UsageError(f"git clone {source} failed: {r.stderr.strip().splitlines()[-1] if r.stderr else ''}",
                             hint="check the URL and that you can clone it")
        head = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True)
        shutil.rmtree(dest / ".git", ignore_errors=True)
        return _skill_root(dest), f"{source} @ {head.stdout.strip()[:40]}"
    path = Path(os.path.expanduser(source))
    if not path.exists():
        raise UsageError(f"{source} does not exist", hint="give a .py file, a skill folder, an archive or a git URL")
    if path.is_file() and path.name.endswith(_ARCHIVES):
        dest = workdir / "archive"
        dest.mkdir()
        _extract(path, dest)
        return _skill_root(dest), f"{path.resolve()} (archive)"
    if path.is_file() and path.suffix != ".py":
        raise UsageError(f"{path.name} is neither a .py file nor an archive",
                         hint="archives: .zip, .tar.gz, .tgz, .tar")
    return (path.resolve() if path.is_file() else _skill_root(path.resolve())), str(path.resolve())


def install(source: str, dest_dir: Path, name: str | None = None, force: bool = False) -> tuple[Path, str]:
    """Copy the skill into ``dest_dir``; returns (where it now is, its source description)."""
    with tempfile.TemporaryDirectory(prefix="copa-install-") as tmp:
        root, described = fetch(source, Path(tmp))
        target_name = name or (root.name if root.is_dir() else root.name)
        if root.is_file() and not target_name.endswith(".py"):
            target_name += ".py"
        if not target_name or not set(target_name) <= _NAME_OK or target_name.startswith((".", "_")):
            raise UsageError(f"invalid skill name {target_name!r}", hint="use letters, digits, '_', '-' (--name NAME)")
        target = dest_dir / target_name
        if target.exists() or target.is_symlink():
            if not force:
                raise UsageError(f"{target} already exists", hint="remove it, or install with --force to replace it")
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        if root.is_dir():
            links = [p for p in root.rglob("*") if p.is_symlink()]
            if links:  # a link could copy (or later expose) a file from elsewhere on the machine
                raise UsageError(f"{links[0].relative_to(root)} is a symbolic link; copa installs plain files only",
                                 hint="replace the link with the file it points to, if it belongs to the skill")
        dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = dest_dir / f".{target_name}.installing"
        shutil.rmtree(staging, ignore_errors=True)
        if root.is_dir():
            shutil.copytree(root, staging, symlinks=False,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
        else:
            shutil.copy2(root, staging)
        os.replace(staging, target)  # appears whole or not at all (a live copa may be listing)
        return target, described
