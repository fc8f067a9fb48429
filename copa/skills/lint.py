"""`copa skills check`: problems with skills, as errors (unusable) and warnings (risky or unclear)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from copa.skills.permissions import PermissionSyntaxError, parse

# What shared malicious skills do (as met by users of other agents): hide a payload in an encoding
# and hand it to exec or a shell, or tell the model to fetch a script and run it.
_RUNNERS = (r"(?:\bexec|\beval|\bcompile|os\.system|os\.popen|subprocess\.\w+|Popen|__import__|pickle\.loads"
            r"|marshal\.loads)")
_DECODERS = (r"(?:b64decode|b32decode|b16decode|a85decode|b85decode|decodebytes|fromhex|unhexlify|zlib\.decompress"
             r"|bz2\.decompress|lzma\.decompress|codecs\.decode|rot13|\[::-1\])")
_ENCODED_RUN = re.compile(rf"{_RUNNERS}\s*\((?:[^()]|\([^()]*\)){{0,400}}{_DECODERS}", re.S)
_LONG_BLOB = re.compile(r"[\"'][A-Za-z0-9+/=]{300,}[\"']|(?:\\x[0-9a-fA-F]{2}){60,}")
_FETCH_AND_RUN = re.compile(
    r"(?:curl|wget|fetch|iwr|invoke-webrequest)\b[^\n|]{0,300}\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b"
    r"|(?:bash|sh|zsh)\s+<\(\s*(?:curl|wget)"
    r"|(?:python3?|node|perl|ruby)\s+-c\s+[\"']?\$\(\s*(?:curl|wget)"
    r"|\|\s*iex\b"
    r"|\b(?:download|fetch|get)\b[^.\n]{0,80}\b(?:and|then)\s+(?:run|execute|exec|source)\b"
    r"|\bpip3?\s+install\s+(?:--\S+\s+)*(?:https?://|git\+)", re.I)


def risky_patterns(source: Path) -> list[str]:
    """Warnings for the text of a skill (its .py files, SKILL.md and scripts)."""
    files = [source] if source.is_file() else sorted(
        p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        and p.suffix in (".py", ".md", ".sh", ".txt", ".js", ".ps1", ""))[:200]
    out: list[str] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")[:1_000_000]
        except OSError:
            continue
        name = f.name if source.is_dir() else source.name
        if f.suffix == ".py":
            if _ENCODED_RUN.search(text):
                out.append(f"{name}: hands an encoded payload to exec/eval or a shell (hidden code); read it "
                           "before you run it")
            elif _LONG_BLOB.search(text) and re.search(_RUNNERS + r"\s*\(", text):
                out.append(f"{name}: holds a long encoded blob and runs code dynamically; read it before you run it")
        if f.suffix in (".md", ".txt", ".sh", ".ps1", "") and _FETCH_AND_RUN.search(text):
            out.append(f"{name}: tells the model (or a script) to fetch code from the network and run it")
    return out


def lint(infos: list[Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(level: str, info: Any, message: str) -> None:
        out.append({"level": level, "skill": info.name, "source": info.source, "message": message})

    scanned: set[str] = set()
    for info in infos:
        if info.kind != "mcp" and info.source and info.source not in scanned and Path(info.source).exists():
            scanned.add(info.source)
            for warning in risky_patterns(Path(info.source)):
                add("warning", info, warning)
        if info.status != "ok":
            add("error", info, info.error or "failed to load")
            continue
        if info.kind != "function":
            continue
        try:
            perms = parse(info.permissions)
        except PermissionSyntaxError as e:  # already an error above; kept for completeness
            add("error", info, str(e))
            continue
        props = info.parameters.get("properties", {})
        for name, schema in props.items():
            if not schema.get("description"):
                add("warning", info, f"parameter '{name}' has no description (document it under Args:)")
        if any(p in ("/", "/root") or p == _home() for p in perms.write) and not info.dangerous:
            add("warning", info, "writes to / or the whole home folder but is not marked dangerous=True")
        wholesale = [p for p in perms.read + perms.write if p in ("/", "/proc") or p.startswith("/proc/")
                     and p.split("/")[2].isdigit()]
        if wholesale and not info.dangerous:
            add("warning", info, f"reads {' and '.join(sorted(set(wholesale)))} wholesale; name the files it needs "
                                 "(e.g. fs.read:/proc/meminfo) or use the 'processes' permission")
        if perms.exec and not info.dangerous:
            add("warning", info, "runs programs ('exec') but is not marked dangerous=True")
        if perms.net == "any" and not info.dangerous:
            add("info", info, "may reach any host ('net'); name the hosts ('net:HOST') if you can")
        if len(info.description) < 12:
            add("warning", info, "its description is very short; the model decides from it when to call the skill")
    return out


def _home() -> str:
    import os

    return os.path.expanduser("~")
