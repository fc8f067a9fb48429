"""What a skill may do, as declared in ``@skill(permissions=[...])``.

    net                 any network access            net:api.example.org   only that host (also *.example.org)
    fs.read:PATH        read files under PATH         fs.write:PATH         read and write under PATH
    exec                run programs (read+execute in the system's program and library folders)
    memory              copa's memory store, through copa (copa.skills.host.memory): never its files
    processes           the list of processes on the machine, through copa (copa.skills.host.system)
    device              talk to paired boards (reserved for the device bridge)

PATH may start with ``~``; a relative PATH is taken from the directory copa runs in. Everything not
declared is refused: see ``sandbox.py`` for how, per platform.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_HOST_RE = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$")
KNOWN = ("net", "net:HOST", "fs.read:PATH", "fs.write:PATH", "exec", "memory", "processes", "device")


class PermissionSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Permissions:
    net: str = "none"  # none | any | hosts
    hosts: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    exec: bool = False
    memory: bool = False
    processes: bool = False
    device: bool = False
    declared: tuple[str, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict:
        return {"net": self.net, "hosts": list(self.hosts), "read": list(self.read), "write": list(self.write),
                "exec": self.exec, "memory": self.memory, "processes": self.processes, "device": self.device}


def _path(raw: str, cwd: str | None) -> str:
    if not raw:
        raise PermissionSyntaxError("empty path")
    p = Path(os.path.expanduser(raw))
    if not p.is_absolute():
        p = Path(cwd or os.getcwd()) / p
    return os.path.normpath(str(p))


def parse(declared: Iterable[str], cwd: str | None = None) -> Permissions:
    """Parse permission strings; PermissionSyntaxError names the first bad one."""
    net, hosts, read, write = "none", [], [], []
    flags = {"exec": False, "memory": False, "processes": False, "device": False}
    items = list(declared)
    for item in items:
        if not isinstance(item, str):
            raise PermissionSyntaxError(f"permission {item!r} is not a string")
        kind, sep, arg = item.partition(":")
        kind = kind.strip()
        if kind == "net":
            if not sep or arg in ("", "*"):
                net = "any"
            else:
                if not _HOST_RE.match(arg):
                    raise PermissionSyntaxError(f"'{item}': not a host name")
                hosts.append(arg.lower())
                if net != "any":
                    net = "hosts"
        elif kind in ("fs.read", "fs.write"):
            if not sep:
                raise PermissionSyntaxError(f"'{item}' needs a path, e.g. {kind}:~/Documents")
            (read if kind == "fs.read" else write).append(_path(arg, cwd))
        elif kind in flags and not sep:
            flags[kind] = True
        else:
            raise PermissionSyntaxError(f"unknown permission '{item}' (known: {', '.join(KNOWN)})")
    if net == "any":
        hosts = []
    return Permissions(net=net, hosts=tuple(hosts), read=tuple(read), write=tuple(write), declared=tuple(items),
                       **flags)


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Does ``host`` match one of ``allowed`` (exact name, or ``*.domain`` for subdomains)?"""
    host = host.lower().rstrip(".")
    for pattern in allowed:
        name = pattern.rsplit(":", 1)[0] if not pattern.startswith("[") else pattern.split("]")[0] + "]"
        name = name.strip("[]")
        if name.startswith("*."):
            if host.endswith(name[1:]) or host == name[2:]:
                return True
        elif host == name:
            return True
    return False
