"""`copa skills check`: problems with skills, as errors (unusable) and warnings (risky or unclear)."""

from __future__ import annotations

from typing import Any

from copa.skills.permissions import PermissionSyntaxError, parse


def lint(infos: list[Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(level: str, info: Any, message: str) -> None:
        out.append({"level": level, "skill": info.name, "source": info.source, "message": message})

    for info in infos:
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
