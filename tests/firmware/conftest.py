"""Fixtures for the firmware conformance suite: one suite, three targets.

``board`` is parametrised over the host build (a Linux process on a pty), the real AVR image in
simavr (firmware/sim harness on a pty) and the real STM32 image in QEMU's stm32vldiscovery
(``-serial pty``); see tests/devkit/targets.py. Each test gets a freshly started board with blank
EEPROM/flash.

A missing toolchain or emulator skips that target with the reason, unless
``COPA_REQUIRE_FIRMWARE=1`` (set in CI), in which case the test fails. A build failure always
fails.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from devkit import targets

REQUIRE = os.environ.get("COPA_REQUIRE_FIRMWARE") == "1"
_built: dict[str, tuple[str, str] | None] = {}  # target -> None (ok) or (skip|fail, reason)


def ensure_built(target: str) -> None:
    """Build a target once per session (make is incremental); skip/fail if tools are missing."""
    if target not in _built:
        missing = targets.missing_tools(target)
        if missing:
            _built[target] = ("skip", f"{target}: missing {', '.join(missing)} "
                              "(install the packages in firmware/apt-packages.txt)")
        else:
            r = targets.build(target)
            _built[target] = None if r.returncode == 0 else (
                "fail", f"{target}: make failed:\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    state = _built[target]
    if state is None:
        return
    if state[0] == "fail":
        pytest.fail(state[1])
    if REQUIRE:
        pytest.fail(f"COPA_REQUIRE_FIRMWARE=1 but {state[1]}")
    pytest.skip(state[1])


class Board:
    """A running target plus the clients opened on it (closed at teardown)."""

    def __init__(self, t: targets.Target):
        self.target = t
        self.name = t.name
        self.path = t.path
        self.clients: list = []

    def open(self, timeout: float = 10.0):
        from devkit.client import Client

        c = Client.open(self.path, timeout=timeout)
        self.clients.append(c)
        return c

    def control(self, line: str) -> str:
        return self.target.control(line)

    def stop(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):
                c.close()
        self.target.stop()


def _board(name: str, tmp_path: Path) -> Iterator[Board]:
    ensure_built(name)
    b = Board(targets.start(name, store=tmp_path / "eeprom.bin"))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(params=["host", "avr", "stm32"])
def board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Board]:
    yield from _board(request.param, tmp_path)


@pytest.fixture
def host_board(tmp_path: Path) -> Iterator[Board]:
    yield from _board("host", tmp_path)


@pytest.fixture
def start_target() -> Iterator:
    """A factory for targets with options: ``start_target("avr", adc_mv={0: 3500})``."""
    started: list[Board] = []

    def start(name: str, **options) -> Board:
        ensure_built(name)
        b = Board(targets.start(name, **options))
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()
