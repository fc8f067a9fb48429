"""Fixtures for the firmware conformance suite: one suite, three targets.

``board`` is parametrised over the host build (a Linux process on a pty), the real AVR image in
simavr (firmware/sim harness on a pty) and the real STM32 image in QEMU's stm32vldiscovery
(``-serial pty``). Each test gets a freshly started board with blank EEPROM/flash.

A missing toolchain or emulator skips that target with the reason, unless
``COPA_REQUIRE_FIRMWARE=1`` (set in CI), in which case the test fails.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "firmware"
BUILD = FW / "build"
REQUIRE = os.environ.get("COPA_REQUIRE_FIRMWARE") == "1"

TARGETS = {
    # name: (make goals, tools needed, artefacts)
    "host": (["host"], ["cc", "make"], [BUILD / "host" / "copa-fw"]),
    "avr": (["avr", "sim"], ["avr-gcc", "make", "pkg-config"],
            [BUILD / "avr" / "copa-uno.elf", BUILD / "sim" / "uno-pty"]),
    "stm32": (["stm32"], ["arm-none-eabi-gcc", "qemu-system-arm", "make"],
              [BUILD / "stm32" / "copa-stm32.elf"]),
}
_built: dict[str, tuple[str, str] | None] = {}  # target -> None (ok) or (skip|fail, reason)


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"COPA_REQUIRE_FIRMWARE=1 but {reason}")
    pytest.skip(reason)


def ensure_built(target: str) -> None:
    """Build a target once per session (make is incremental); skip/fail if tools are missing."""
    if target not in _built:
        goals, tools, _ = TARGETS[target]
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            _built[target] = ("skip", f"{target}: missing {', '.join(missing)} "
                              "(install firmware/apt-packages.txt)")
        else:
            r = subprocess.run(["make", "-C", str(FW), *goals], capture_output=True, text=True,
                               timeout=600)
            _built[target] = None if r.returncode == 0 else (
                "fail", f"{target}: make {' '.join(goals)} failed:\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    state = _built[target]
    if state is not None:
        if state[0] == "fail":
            pytest.fail(state[1])
        unavailable(state[1])


def _read_line_matching(proc: subprocess.Popen[bytes], stream, pattern: str,
                        timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            m = re.search(pattern, buf.decode(errors="replace"))
            if m:
                return m
        elif proc.poll() is not None:
            break
    raise RuntimeError(f"no pty announced (wanted /{pattern}/), got: {buf[-500:]!r}")


@dataclass
class Board:
    """A running target: ``path`` is the pty; ``open()`` gives a copa.device Client."""

    name: str
    proc: subprocess.Popen[bytes]
    path: str
    clients: list = field(default_factory=list)

    def open(self, timeout: float = 3.0):
        from copa.device.client import Client

        c = Client.open(self.path, timeout=timeout)
        self.clients.append(c)
        return c

    # side channel (host build only)
    def control(self, line: str) -> str:
        assert self.name == "host", "the side channel exists on the host build only"
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        m = _read_line_matching(self.proc, self.proc.stdout, r"([^\n]*)\n", 5.0)
        return m.group(1)

    def stop(self) -> None:
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_board(target: str, tmp: Path) -> Board:
    if target == "host":
        proc = subprocess.Popen([str(BUILD / "host" / "copa-fw"), "--store", str(tmp / "eeprom.bin")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        m = _read_line_matching(proc, proc.stdout, r"PTY (\S+)\n", 10)
    elif target == "avr":
        proc = subprocess.Popen([str(BUILD / "sim" / "uno-pty"), str(BUILD / "avr" / "copa-uno.elf")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        m = _read_line_matching(proc, proc.stdout, r"PTY (\S+)\n", 10)
    else:
        proc = subprocess.Popen(
            ["qemu-system-arm", "-M", "stm32vldiscovery", "-kernel",
             str(BUILD / "stm32" / "copa-stm32.elf"), "-display", "none", "-monitor", "none",
             "-serial", "pty", "-nodefaults"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        m = _read_line_matching(proc, proc.stdout, r"char device redirected to (\S+)", 20)
    return Board(target, proc, m.group(1))


@pytest.fixture(params=list(TARGETS))
def board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Board]:
    ensure_built(request.param)
    b = start_board(request.param, tmp_path)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def host_board(tmp_path: Path) -> Iterator[Board]:
    ensure_built("host")
    b = start_board("host", tmp_path)
    try:
        yield b
    finally:
        b.stop()
