"""The real avrdude flashes the virtual Uno (optiboot + reset-on-open in simavr), after which
the application answers HELLO, as a freshly flashed real board does."""

from __future__ import annotations

import time

import pytest
from devkit import targets

from copa.device import NoAnswer
from copa.device.protocol import Board


def test_avrdude_flashes_virtual_uno(start_target):
    board = start_target("uno-boot")
    c = board.open()
    # erased flash: nothing answers HELLO (short retry)
    with pytest.raises(NoAnswer):
        c.hello(attempts=3, interval=0.2)
    c.close()
    board.clients.clear()
    r = targets.avrdude_flash(board.path, targets.BUILD / "avr" / "copa-uno.hex")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "bytes of flash verified" in r.stderr
    c = board.open()  # opening resets the board: ~1 s in the bootloader, then the agent
    t0 = time.monotonic()
    h = c.hello(attempts=40, interval=0.2)
    assert h.board == Board.UNO
    assert 0.2 < time.monotonic() - t0 < 8
    assert c.ping(b"flashed") == b"flashed"
