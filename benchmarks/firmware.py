#!/usr/bin/env python3
"""Firmware figures: image sizes per port against StandardFirmata, and protocol round-trip
latency per target and body size against the 115200-baud wire time.

Run from the repo root: ``python benchmarks/firmware.py [--rounds N] [--targets host,avr,stm32]``.
Builds what it needs with make; targets whose toolchain is missing are reported and skipped.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from copa.device.codec import cobs_encode  # noqa: E402
from copa.device.protocol import Cmd, frame_bytes  # noqa: E402
from tests.devkit import targets  # noqa: E402

FIRMATA_FLASH, FIRMATA_RAM = 13926, 1068  # StandardFirmata 2.5.9, Uno, Debian avr-gcc
BUDGET = {"avr": (8192, 1024), "stm32": (12288, None)}
BAUD_BYTE_S = 10 / 115200  # 8N1


def wire_bytes(type_: int, body: bytes) -> int:
    return len(cobs_encode(frame_bytes(type_, 1, body))) + 1


def sizes() -> None:
    print("## Image sizes (flash = text + data, static RAM = data + bss)")
    rows = [("avr", "avr-size", targets.BUILD / "avr" / "copa-uno.elf"),
            ("stm32", "arm-none-eabi-size", targets.BUILD / "stm32" / "copa-stm32.elf")]
    print(f"{'port':<6} {'flash B':>8} {'RAM B':>6} {'budget':>12} {'vs Firmata flash':>17} {'vs Firmata RAM':>15}")
    for port, tool, elf in rows:
        if targets.missing_tools(port) or targets.build(port).returncode:
            print(f"{port:<6} (toolchain missing or build failed)")
            continue
        out = subprocess.run([tool, str(elf)], capture_output=True, text=True, check=True).stdout
        text, data, bss = (int(x) for x in out.splitlines()[1].split()[:3])
        flash, ram = text + data, data + bss
        fb, rb = BUDGET[port]
        budget = f"{flash / fb:.0%} of {fb // 1024}K" + (f", {ram / rb:.0%}" if rb else "")
        print(f"{port:<6} {flash:>8} {ram:>6} {budget:>12} {flash / FIRMATA_FLASH:>16.2f}x "
              f"{ram / FIRMATA_RAM:>14.2f}x")
    print(f"StandardFirmata 2.5.9 on the Uno: {FIRMATA_FLASH} B flash, {FIRMATA_RAM} B RAM "
          "(57600 baud, no CRC, no authentication)")


def latency(names: list[str], rounds: int) -> None:
    from tests.devkit.client import Client

    print(f"\n## PING round trip, median of {rounds} (p90 in brackets), vs wire time at 115200 8N1")
    sizes_ = [0, 16, 32, 63]
    print(f"{'target':<7}" + "".join(f"{f'body {n}':>22}" for n in sizes_))
    wire = [(wire_bytes(Cmd.PING, bytes(n)) + wire_bytes(0x81, bytes(n + 1))) * BAUD_BYTE_S * 1000
            for n in sizes_]
    print(f"{'wire':<7}" + "".join(f"{w:>19.2f} ms" for w in wire))
    for name in names:
        if targets.missing_tools(name) or targets.build(name).returncode:
            print(f"{name:<7} (toolchain missing or build failed)")
            continue
        with targets.start(name) as t:
            c = Client.open(t.path, timeout=3)
            t_hello = time.perf_counter()
            c.hello()
            t_hello = time.perf_counter() - t_hello
            cells = []
            for n, w in zip(sizes_, wire, strict=True):
                body = bytes((i * 37 + 11) & 0xFF for i in range(n))
                samples = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    assert c.ping(body) == body
                    samples.append((time.perf_counter() - t0) * 1000)
                med = statistics.median(samples)
                p90 = statistics.quantiles(samples, n=10)[-1]
                cells.append(f"{med:6.2f} [{p90:5.2f}] ms {med / w:4.1f}x")
            c.close()
        print(f"{name:<7}" + "".join(f"{x:>22}" for x in cells) + f"   (first HELLO {t_hello * 1000:.0f} ms)")
    print("ratio = round trip / wire time of request + response; the host build and QEMU do not")
    print("model baud timing, simavr does (its figures approximate a real Uno's).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--targets", default="host,avr,stm32")
    a = ap.parse_args()
    sizes()
    latency([t for t in a.targets.split(",") if t], a.rounds)
    print(f"\n72 bytes on the wire at 115200 baud: {72 * BAUD_BYTE_S * 1000:.2f} ms")


if __name__ == "__main__":
    main()
