"""Build ``firmware/`` and flash it: avrdude (Uno), stm32flash / st-flash / openocd (blue pill).

Every step's output is streamed line by line to ``progress`` (the CLI prints it), so a user sees the
compiler and the flasher work. Unknown boards and missing tools are refused with what to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from copa.errors import CopaError, UsageError


@dataclass(frozen=True)
class BoardSpec:
    name: str
    make_goal: str
    artefact: str  # relative to firmware/build
    description: str


BOARDS = {
    "uno": BoardSpec("uno", "avr", "avr/copa-uno.hex", "Arduino Uno (ATmega328P, optiboot)"),
    "bluepill": BoardSpec("bluepill", "stm32", "stm32/copa-stm32", "STM32F103 blue pill"),
}
APT_HINT = {"avrdude": "avrdude", "stm32flash": "stm32flash", "st-flash": "stlink-tools",
            "openocd": "openocd", "avr-gcc": "gcc-avr avr-libc binutils-avr",
            "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi", "make": "make"}


def firmware_dir() -> Path:
    env = os.environ.get("COPA_FIRMWARE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "firmware"


def board_spec(board: str) -> BoardSpec:
    spec = BOARDS.get(board.lower())
    if spec is None:
        raise UsageError(f"unknown board {board!r}",
                         hint="copa can flash: " + "; ".join(f"{k} ({b.description})" for k, b in BOARDS.items()))
    return spec


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise CopaError(f"{tool} is not installed",
                        hint=f"install it: sudo apt-get install {APT_HINT.get(tool, tool)}")
    return path


def _run(cmd: list[str], progress: Callable[[str], None], what: str, timeout: float = 600) -> None:
    progress(f"$ {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            progress(line)
            tail = (tail + [line])[-5:]
    rc = proc.wait(timeout=timeout)
    if rc != 0:
        raise CopaError(f"{what} failed (exit {rc}): {tail[-1] if tail else 'no output'}",
                        hint="see the output above; 'copa device flash --help' lists the options")


def build(board: str, progress: Callable[[str], None]) -> Path:
    spec = board_spec(board)
    fw = firmware_dir()
    if not (fw / "Makefile").exists():
        raise CopaError(f"no firmware sources at {fw}", hint="set COPA_FIRMWARE_DIR to the firmware/ folder")
    _need("make")
    _need("avr-gcc" if spec.make_goal == "avr" else "arm-none-eabi-gcc")
    _run(["make", "-C", str(fw), spec.make_goal], progress, "building the firmware")
    return fw / "build" / spec.artefact


def flash_command(board: str, image: Path, port: str | None, tool: str | None = None) -> list[str]:
    """The flashing command line for ``board`` (chooses the tool when ``tool`` is None)."""
    spec = board_spec(board)
    if spec.name == "uno":
        if not port:
            raise UsageError("flashing an Uno needs its serial port",
                             hint="add --port /dev/ttyACM0 (see 'copa device scan')")
        return [_need("avrdude"), "-c", "arduino", "-p", "m328p", "-P", port, "-b", "115200", "-D",
                "-U", f"flash:w:{image}:i"]
    base = image.with_suffix("")
    candidates = [tool] if tool else (["stm32flash"] if port else ["st-flash", "openocd"])
    for t in candidates:
        if t == "stm32flash" and shutil.which(t):
            if not port:
                raise UsageError("stm32flash needs the serial port", hint="add --port /dev/ttyUSB0")
            return [t, "-b", "115200", "-w", f"{base}.bin", "-v", "-g", "0x08000000", port]
        if t == "st-flash" and shutil.which(t):
            return [t, "--reset", "write", f"{base}.bin", "0x08000000"]
        if t == "openocd" and shutil.which(t):
            return [t, "-f", "interface/stlink.cfg", "-f", "target/stm32f1x.cfg", "-c",
                    f"program {base}.elf verify reset exit"]
    want = candidates[0]
    raise CopaError(f"no STM32 flasher found (looked for {', '.join(candidates)})",
                    hint=f"install one: sudo apt-get install {APT_HINT.get(want, want)}"
                    + ("" if port else " (or give --port to use the ROM serial bootloader with stm32flash)"))


def flash(board: str, port: str | None, progress: Callable[[str], None], *, do_build: bool = True,
          tool: str | None = None) -> Path:
    spec = board_spec(board)
    if spec.name == "uno" and not port:
        raise UsageError("flashing an Uno needs its serial port",
                         hint="add --port /dev/ttyACM0 (see 'copa device scan')")
    if port and "://" not in port and not os.path.exists(port):
        raise CopaError(f"no serial port {port}", hint="run 'copa device scan' to see the ports")
    image = build(spec.name, progress) if do_build else firmware_dir() / "build" / spec.artefact
    cmd = flash_command(spec.name, image, port, tool)
    if spec.name == "uno" and not image.exists():
        raise CopaError(f"no firmware image at {image}", hint="build it: make -C firmware avr")
    _run(cmd, progress, f"flashing with {Path(cmd[0]).name}")
    if port:
        progress(verify_hello(port))
    return image


def verify_hello(port: str, wait: float = 12.0) -> str:
    """After flashing, the board must answer HELLO (an Uno first sits ~1 s in its bootloader, longer
    while bytes keep arriving, so this waits generously)."""
    from copa.device.registry import board_name
    from copa.device.session import DeviceSession

    s = DeviceSession(port, name=port, reconnect=False, hello_attempts=max(1, int(wait / 0.25)),
                      hello_interval=0.25)
    try:
        h = s.connect()
    except CopaError as e:
        raise CopaError(f"flashed, but the board does not answer: {e.message}",
                        hint="press its reset button; check the board type (--board)") from None
    finally:
        s.close()
    version = f"{h.firmware[0]}.{h.firmware[1]}"
    return f"the board answers HELLO: copa {board_name(h.board)} {h.device_id.hex()}, firmware {version}"
