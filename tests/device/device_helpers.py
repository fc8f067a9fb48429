"""Helpers of the serial-bridge tests (a module with a unique name: several test folders have a
conftest.py, so nothing imports from ``conftest``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from devkit import targets

REQUIRE = os.environ.get("COPA_REQUIRE_FIRMWARE") == "1"
_built: dict[str, str | None] = {}


def ensure_built(name: str) -> None:
    if name not in _built:
        missing = targets.missing_tools(name)
        if missing:
            _built[name] = f"{name}: missing {', '.join(missing)} (install firmware/apt-packages.txt)"
        else:
            r = targets.build(name)
            _built[name] = None if r.returncode == 0 else f"{name}: make failed: {(r.stdout + r.stderr)[-1500:]}"
    why = _built[name]
    if why:
        if REQUIRE or "make failed" in why:
            pytest.fail(why)
        pytest.skip(why)


class Board:
    """A running target behind a stable symlink; ``restart()`` brings it back (same store)."""

    def __init__(self, name: str, tmp: Path, *, persist: bool | None = None):
        self.name = name
        self.tmp = tmp
        # storage kept across restarts: the host build's store file, the simavr Uno's EEPROM file
        self.persist = (name == "host") if persist is None else persist
        self.link = str(tmp / f"tty-{name}")
        self.store = tmp / f"{name}-store.bin"
        self.t: targets.Target | None = None
        self.start()

    def start(self) -> None:
        self.t = targets.start(self.name, store=self.store if self.persist else None)
        tmp_link = self.link + ".new"
        os.symlink(self.t.path, tmp_link)
        os.replace(tmp_link, self.link)  # atomic: the registry never sees a missing link

    @property
    def pty(self) -> str:
        assert self.t is not None
        return self.t.path

    def control(self, line: str) -> str:
        assert self.t is not None
        return self.t.control(line)

    def pin(self, n: int) -> tuple[int, int, int]:
        """(mode, out, pwm) of pin n, seen from the board's side (host build)."""
        _, _, mode, out, pwm = self.control(f"get {n}").split()
        return int(mode), int(out), int(pwm)

    def kill(self) -> None:
        # like udev's /dev/serial/by-id link, the stable path goes away with the board, so nothing
        # reconnects through it to a recycled /dev/pts number that now belongs to someone else
        if os.path.lexists(self.link):
            os.unlink(self.link)
        if self.t is not None:
            self.t.stop()
            self.t = None

    def restart(self) -> None:
        self.kill()
        self.start()
