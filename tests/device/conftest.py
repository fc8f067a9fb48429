"""Fixtures of the serial-bridge tests: real firmware targets on real ptys.

``board`` runs the host build of firmware/ (a Linux process serving the protocol on a pty) with a
persistent store, behind a stable symlink (like /dev/serial/by-id) so a restarted board is found at
the same path. ``emulated`` is parametrised over the host build, the AVR image in simavr and the
STM32 image in QEMU (devkit.targets); a missing toolchain skips that target with the reason,
unless COPA_REQUIRE_FIRMWARE=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from device_helpers import Board, ensure_built  # noqa: E402


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    ensure_built("host")
    b = Board("host", tmp_path)
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture(params=["host", "avr", "stm32"])
def emulated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Board]:
    ensure_built(request.param)
    b = Board(request.param, tmp_path)
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
def ws(copa_home: Path):
    from copa.workstation import Workstation

    w = Workstation()
    try:
        yield w
    finally:
        w.close()
