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
import time
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
        self._closed = False
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

    def inject_to_host(self, data: bytes) -> None:
        """Send raw bytes to copa as if the board had sent them (chatter, a forged frame)."""
        self._write_all(self._master, data)

    def frames_sent(self) -> list[bytes]:
        """Captured host-to-board frames, each with its 0x00 delimiter."""
        return [bytes(f) + b"\x00" for f in bytes(self.captured).split(b"\x00") if f]

    def close(self) -> None:
        if self._closed:  # closing twice would close fd numbers that now belong to someone else
            return
        self._closed = True
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave, self._board, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fault_campaign(s, n: int, *, batch: int = 96, timeout: float = 0.05, rounds: int = 10,
                   adc_channel: int = 1, adc_value: int | None = None) -> dict:
    """Send ``n`` pipelined requests (PING, GPIO_WRITE d7, PWM_WRITE d3, GPIO_READ d8 or ADC_READ) in
    batches over a faulty link; lost ones time out and are re-sent (up to ``rounds`` times).

    Checks every answer (echoes, read values) and returns counters plus the expected final board
    state: ``last_level`` of d7 and ``last_duty`` of d3 from the last acknowledged writes, and the
    values of writes that never got an answer (``unacked_levels``/``unacked_duties``), any of
    which may legitimately be in force.
    """
    from copa.device.protocol import Cmd, Status
    from copa.device.session import DeviceUnavailable, RequestTimeout

    out = {"requests": n, "ok": 0, "timeouts": 0, "resent": 0, "refused": 0, "malformed": 0, "wrong_answers": 0,
           "wrong": [],
           "failed": 0, "other_errors": 0, "last_level": None, "last_duty": None,
           "unacked_levels": set(), "unacked_duties": set()}

    def make(i: int) -> tuple[int, bytes]:
        k = i % 4
        if k == 0:
            return Cmd.PING, bytes([(i >> s_) & 0xFF for s_ in (0, 8, 16)]) * (1 + i % 5)
        if k == 1:
            return Cmd.GPIO_WRITE, bytes([7, (i // 4) & 1])
        if k == 2:
            return Cmd.PWM_WRITE, bytes([3, 20 + (i // 4) % 200])
        return (Cmd.ADC_READ, bytes([adc_channel])) if adc_value is not None else (Cmd.GPIO_READ, bytes([8]))

    def check(i: int, f) -> str:
        """ok; malformed (the bridge's checks catch it: wrong echo or length -> re-sent); wrong."""
        cmd, body = make(i)
        p = f.payload
        if cmd == Cmd.PING:
            return "ok" if p == body else "malformed"
        if cmd == Cmd.ADC_READ:
            return "malformed" if len(p) != 2 else "ok" if p == adc_value.to_bytes(2, "little") else "wrong"  # type: ignore[union-attr]
        if cmd == Cmd.GPIO_READ:
            return "malformed" if len(p) != 1 else "ok" if p == b"\x00" else "wrong"
        return "ok" if not p else "malformed"

    for start in range(0, n, batch):
        todo = list(range(start, min(n, start + batch)))
        for rnd in range(rounds):
            if not todo:
                break
            if rnd:
                out["resent"] += len(todo)
            futs = []
            for i in todo:
                try:
                    futs.append((i, s.submit(*make(i), wait=timeout * 4)))
                except (RequestTimeout, DeviceUnavailable):
                    futs.append((i, None))
            again = []
            deadline = time.monotonic() + timeout  # one deadline for the batch: lost answers overlap
            for i, fut in futs:
                try:
                    if fut is None:
                        raise RequestTimeout("window full")
                    f = s.result(fut, max(0.0, deadline - time.monotonic()))
                except RequestTimeout:
                    out["timeouts"] += 1
                    again.append(i)
                    continue
                except Exception:  # noqa: BLE001 - counted: the campaign must finish and report
                    out["other_errors"] += 1
                    again.append(i)
                    continue
                if f.status in (Status.BAD_MAC, Status.BAD_LENGTH, Status.REPLAY, Status.AUTH_REQUIRED):
                    out["refused"] += 1  # a damaged frame that passed the CRC and was caught by the MAC
                    again.append(i)
                    continue
                verdict = check(i, f) if f.status == Status.OK else "wrong"
                if verdict == "malformed":
                    out["malformed"] += 1
                    again.append(i)
                    continue
                if verdict == "wrong":
                    out["wrong_answers"] += 1
                    out["wrong"].append((i, f.type, f.id, f.body.hex()))
                    continue
                out["ok"] += 1
                cmd, body = make(i)
                if cmd == Cmd.GPIO_WRITE:
                    out["last_level"] = body[1]
                elif cmd == Cmd.PWM_WRITE:
                    out["last_duty"] = body[1]
            todo = again
        out["failed"] += len(todo)
        for i in todo:
            cmd, body = make(i)
            if cmd == Cmd.GPIO_WRITE:
                out["unacked_levels"].add(body[1])
            elif cmd == Cmd.PWM_WRITE:
                out["unacked_duties"].add(body[1])
    return out
