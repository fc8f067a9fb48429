"""A byte relay between copa and a board (two ptys), for fault injection and frame capture.

copa opens ``relay.path`` (a fresh pty); the relay copies bytes to and from the board's port and
can, per byte and direction, corrupt, drop or duplicate it with probability ``fault_rate`` (each
fault kind a third of that). ``capture`` keeps the host-to-board bytes so a test can re-send a
recorded frame verbatim (a replay attack). A development tool: tests and benchmarks/bridge.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import termios
import threading
import tty


class Relay:
    def __init__(self, board_path: str, *, fault_rate: float = 0.0, seed: int = 1, capture: bool = False):
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.capture = capture
        self.captured = bytearray()
        self.faults = {"corrupt": 0, "drop": 0, "dup": 0}
        self.bytes = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline before copa opens it
        self.path = os.ttyname(self._slave)
        self._board = os.open(board_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        with contextlib.suppress(termios.error):
            tty.setraw(self._board)
        os.set_blocking(self._master, False)
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="copa-relay")
        self._thread.start()

    def _mangle(self, data: bytes) -> bytes:
        rate = self.fault_rate
        if rate <= 0:
            return data
        out = bytearray()
        for b in data:
            if self.rng.random() >= rate:
                out.append(b)
                continue
            kind = self.rng.randrange(3)
            if kind == 0:
                out.append(b ^ self.rng.randrange(1, 256))
                self.faults["corrupt"] += 1
            elif kind == 1:
                self.faults["drop"] += 1
            else:
                out += bytes([b, b])
                self.faults["dup"] += 1
        return bytes(out)

    def _write_all(self, fd: int, data: bytes) -> None:
        while data:
            try:
                n = os.write(fd, data)
                data = data[n:]
            except BlockingIOError:
                select.select([], [fd], [], 0.05)
            except OSError:
                return

    def _loop(self) -> None:
        fds = [self._master, self._board, self._stop_r]
        while True:
            try:
                r, _, _ = select.select(fds, [], [], 0.5)
            except (OSError, ValueError):
                return
            if self._stop_r in r:
                return
            for src, dst in ((self._master, self._board), (self._board, self._master)):
                if src not in r:
                    continue
                try:
                    data = os.read(src, 4096)
                except BlockingIOError:
                    continue
                except OSError:  # the board went away: stop relaying, copa will see silence
                    return
                if not data:
                    continue
                with self._lock:
                    self.bytes += len(data)
                    if src == self._master and self.capture:
                        self.captured += data
                    data = self._mangle(data)
                self._write_all(dst, data)

    def inject(self, data: bytes) -> None:
        """Send raw bytes to the board as if copa had sent them."""
        self._write_all(self._board, data)

    def frames_sent(self) -> list[bytes]:
        """Captured host-to-board frames, each with its 0x00 delimiter."""
        return [bytes(f) + b"\x00" for f in bytes(self.captured).split(b"\x00") if f]

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave, self._board, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
