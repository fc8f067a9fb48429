"""A pids cgroup per skill worker: the kernel's cap on how many processes and threads it may have.

copa (not the worker) creates ``copa-skills-<copa pid>/w<n>`` under its own cgroup in the pids
hierarchy (cgroup v1 ``pids`` or a cgroup v2 subtree with the pids controller), writes ``pids.max``,
and removes it when the worker is gone. The worker joins it first thing. Where no such cgroup can be
made (not root, no delegation), ``create`` returns None and the worker falls back to RLIMIT_NPROC in
a user namespace (see isolate.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys

_counter = itertools.count(1)
_base: str | None | bool = False  # False: not looked up yet


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of cgroup file systems."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, rfields = left.split(), right.split()
                if rfields and rfields[0] in ("cgroup", "cgroup2"):
                    out.append((fields[4], rfields[0], rfields[2] if len(rfields) > 2 else ""))
    except OSError:
        pass
    return out


def _own(controller: str) -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if (controller and controller in ctrls.split(",")) or (not controller and ctrls == ""):
                    return path
    except OSError:
        pass
    return None


def _find_base() -> str | None:
    """A folder where copa may create worker cgroups with a pids limit, or None."""
    if not sys.platform.startswith("linux"):
        return None
    for mount, fstype, opts in _mounts():
        if fstype == "cgroup" and "pids" in opts.split(","):
            own = _own("pids")
            if own is not None:
                return _ensure(os.path.join(mount, own.lstrip("/")), v2=False)
    for mount, fstype, _ in _mounts():
        if fstype == "cgroup2":
            own = _own("")
            if own is not None:
                return _ensure(os.path.join(mount, own.lstrip("/")), v2=True)
    return None


def _ensure(parent: str, v2: bool) -> str | None:
    base = os.path.join(parent, f"copa-skills-{os.getpid()}")
    try:
        if v2:  # the controller must be enabled for children (works at the root, or when delegated)
            with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                f.write("+pids")
        os.makedirs(base, exist_ok=True)
        if v2:
            with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                f.write("+pids")
        if not os.path.exists(os.path.join(base, "pids.max")) and not v2:
            return None
        return base
    except OSError:
        with contextlib.suppress(OSError):
            os.rmdir(base)
        return None


def create(max_pids: int) -> str | None:
    """A new cgroup capped at ``max_pids`` tasks, or None where none can be made."""
    global _base
    if _base is False:
        _base = _find_base()
    if not _base or max_pids <= 0:
        return None
    path = os.path.join(str(_base), f"w{next(_counter)}")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write(str(max_pids))
        return path
    except OSError:
        remove(path)
        return None


def remove(path: str | None) -> None:
    """Remove a worker's cgroup (its processes are gone; a straggler makes rmdir fail: retried later)."""
    if not path:
        return
    with contextlib.suppress(OSError):
        os.rmdir(path)


def cleanup() -> None:
    """At exit: the per-copa folder, once its worker cgroups are gone."""
    if isinstance(_base, str):
        with contextlib.suppress(OSError):
            for name in os.listdir(_base):
                if name.startswith("w"):
                    remove(os.path.join(_base, name))
            os.rmdir(_base)
