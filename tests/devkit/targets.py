"""Start copa firmware targets on a pseudo-terminal: the host build, the Uno image in simavr,
the STM32 image in QEMU. Used by the conformance suite and ``benchmarks/firmware.py``; useful
by hand too (``python -m tests.devkit.targets avr`` from the repo root prints the pty and waits).

Everything here is for development machines with the firmware toolchains installed
(``firmware/apt-packages.txt``); nothing in it is needed to talk to a real board.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
BUILD = FIRMWARE / "build"

#: target -> (make goals, required tools)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "host": (["host"], ["cc", "make"]),
    "avr": (["avr", "sim"], ["avr-gcc", "make", "pkg-config"]),
    "stm32": (["stm32"], ["arm-none-eabi-gcc", "qemu-system-arm", "make"]),
    # the virtual Uno with optiboot and reset-on-open, flashed by the real avrdude
    "uno-boot": (["avr", "boot"], ["avr-gcc", "make", "pkg-config", "avrdude"]),
}
OPTIBOOT_SRC = Path("/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot.c")


def missing_tools(target: str) -> list[str]:
    missing = [t for t in TARGETS[target][1] if shutil.which(t) is None]
    if target == "uno-boot" and not OPTIBOOT_SRC.exists():
        missing.append(f"{OPTIBOOT_SRC} (package arduino-core-avr)")
    return missing


def build(target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(FIRMWARE), *TARGETS[target][0]], capture_output=True,
                          text=True, timeout=600)


def _wait_for(proc: subprocess.Popen[bytes], pattern: str, timeout: float) -> re.Match[str]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
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
    raise RuntimeError(f"target did not announce its pty (/{pattern}/); output: {buf[-500:]!r}")


@dataclass
class Target:
    """A running target; ``path`` is the pty to open with pyserial."""

    name: str
    proc: subprocess.Popen[bytes]
    path: str

    def control(self, line: str) -> str:
        """Host build only: one side-channel command (``adc 0 700``, ``in 5 1``, ``get 7``)."""
        if self.name != "host" or self.proc.stdin is None:
            raise RuntimeError("the side channel exists on the host build only")
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return _wait_for(self.proc, r"([^\n]*)\n", 5.0).group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(target: str, *, store: Path | None = None, adc_mv: dict[int, int] | None = None) -> Target:
    """Start a built target. Storage starts blank, except that ``store`` names a file that holds
    it across restarts (the host build's store, the simavr Uno's EEPROM); ``adc_mv`` sets the
    simavr Uno's analog inputs in millivolts."""
    if target == "host":
        cmd = [str(BUILD / "host" / "copa-fw")] + (["--store", str(store)] if store else [])
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        pattern, timeout = r"PTY (\S+)\n", 10.0
    elif target == "avr":
        args = [a for ch, mv in (adc_mv or {}).items() for a in ("-a", f"{ch}={mv}")]
        if store:
            args += ["-e", str(store)]
        proc = subprocess.Popen([str(BUILD / "sim" / "uno-pty"), *args, str(BUILD / "avr" / "copa-uno.elf")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        pattern, timeout = r"PTY (\S+)\n", 10.0
    elif target == "uno-boot":
        proc = subprocess.Popen([str(BUILD / "sim" / "uno-boot"), str(BUILD / "sim" / "optiboot.bin")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        pattern, timeout = r"PTY (\S+)\n", 10.0
    elif target == "stm32":
        proc = subprocess.Popen(
            ["qemu-system-arm", "-M", "stm32vldiscovery", "-kernel", str(BUILD / "stm32" / "copa-stm32.elf"),
             "-display", "none", "-monitor", "none", "-serial", "pty", "-nodefaults"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        pattern, timeout = r"char device redirected to (\S+)", 20.0
    else:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    try:
        m = _wait_for(proc, pattern, timeout)
    except Exception:
        proc.kill()
        raise
    return Target(target, proc, m.group(1))


def avrdude_flash(port: str, hex_file: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Flash an Intel-hex image through the Uno bootloader, exactly as on a real board."""
    return subprocess.run(["avrdude", "-c", "arduino", "-p", "m328p", "-P", port, "-b", "115200", "-D",
                           "-U", f"flash:w:{hex_file}:i"], capture_output=True, text=True, timeout=timeout)


if __name__ == "__main__":  # pragma: no cover - a developer convenience
    name = sys.argv[1] if len(sys.argv) > 1 else "host"
    r = build(name)
    if r.returncode:
        sys.exit(r.stdout + r.stderr)
    with start(name) as t:
        print(t.path, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            t.proc.wait()
