#!/usr/bin/env python3
"""Serial-bridge figures per target (host build on a pty, AVR in simavr, STM32 in QEMU):

- round trip p50/p95 of an 8-byte PING through DeviceSession (threads, futures, validation), beside
  the firmware engineer's bare synchronous Client in the same run (the baseline: bridge overhead)
  and beside the 115200-baud wire time of the two frames (the floor on a real UART);
- pipelined requests per second, beside the wire-time floor of the larger direction;
- host CPU per request (process time of this process, all threads, over the pipelined run);
- the fault campaign of issue 8: 10,000 requests through a relay that corrupts, drops and
  duplicates 1 % of the bytes each way (host build).

Run from the repo root: ``python benchmarks/bridge.py [--quick] [--targets host,avr,stm32]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from copa.device.codec import cobs_encode  # noqa: E402
from copa.device.protocol import Cmd, frame_bytes  # noqa: E402
from copa.device.session import DeviceSession  # noqa: E402
from tests.devkit import targets  # noqa: E402
from tests.devkit.client import Client  # noqa: E402
from tests.devkit.relay import Relay, fault_campaign  # noqa: E402

BYTE_S = 10 / 115200  # 8N1
PAYLOAD = b"\x5a" * 8
KEY = bytes(range(16))


def wire(type_: int, body: bytes) -> int:
    return len(cobs_encode(frame_bytes(type_, 1, body))) + 1


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def measure(name: str, rounds: int, pipelined: int) -> dict:
    t = targets.start(name, store=Path(tempfile.mkdtemp()) / "store.bin" if name == "host" else None)
    try:
        # baseline: the bare synchronous client (no threads), same board, same frames
        c = Client.open(t.path, timeout=3)
        c.hello()
        base = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            c.ping(PAYLOAD)
            base.append((time.perf_counter() - t0) * 1000)
        c.close()
        s = DeviceSession(t.path, name=name, reconnect=False, timeout=3)
        s.connect()
        s.pair(KEY)
        lat = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.ping(PAYLOAD)
            lat.append((time.perf_counter() - t0) * 1000)
        cpu0, t0 = time.process_time(), time.perf_counter()
        futs = [s.submit(Cmd.PING, PAYLOAD) for _ in range(pipelined)]
        for f in futs:
            s.result(f, 10)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        # authenticated (MACed) writes, pipelined
        s.gpio_mode(7, 1)
        t0 = time.perf_counter()
        futs = [s.submit(Cmd.GPIO_WRITE, bytes([7, i & 1])) for i in range(pipelined // 2)]
        for f in futs:
            s.result(f, 10)
        wall_w = time.perf_counter() - t0
        s.close()
    finally:
        t.stop()
    req, resp = wire(Cmd.PING, PAYLOAD), wire(Cmd.PING | 0x80, b"\x00" + PAYLOAD)
    return {"target": name, "p50": statistics.median(lat), "p95": pct(lat, 0.95),
            "base_p50": statistics.median(base), "floor_rtt": (req + resp) * BYTE_S * 1000,
            "rps": pipelined / wall, "floor_rps": 1 / (max(req, resp) * BYTE_S),
            "writes_rps": (pipelined // 2) / wall_w, "cpu_us": cpu / pipelined * 1e6}


def faults(n: int) -> dict:
    from copa.workstation import Workstation

    os.environ["COPA_HOME"] = tempfile.mkdtemp()
    t = targets.start("host", store=Path(tempfile.mkdtemp()) / "store.bin")
    try:
        with Workstation() as ws:
            ws.devices.pair(t.path, "lab")
            t.control("adc 1 777")
            relay = Relay(t.path, fault_rate=0.01, seed=10)
            try:
                s = ws.devices.registry.session("lab", port=relay.path, reconnect=False, timeout=2)
                s.gpio_mode(7, 1)
                s.gpio_mode(8, 1)
                relay.bytes = 0
                t0 = time.perf_counter()
                r = fault_campaign(s, n, adc_value=777)
                r["seconds"] = time.perf_counter() - t0
                r["bytes"], r["faults"] = relay.bytes, dict(relay.faults)
                relay.fault_rate = 0
                r["usable_after"] = s.ping(b"after") == b"after"
                s.close()
            finally:
                relay.close()
    finally:
        t.stop()
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds, 2,000 fault requests")
    ap.add_argument("--targets", default="host,avr,stm32")
    ap.add_argument("--fault-requests", type=int, default=0)
    a = ap.parse_args()
    rounds, pipelined = (50, 200) if a.quick else (200, 1000)
    rows = []
    for name in a.targets.split(","):
        miss = targets.missing_tools(name)
        if miss or targets.build(name).returncode:
            print(f"{name}: skipped ({', '.join(miss) or 'build failed'})")
            continue
        rows.append(measure(name, rounds, pipelined))
    print(f"## Round trip (8-byte PING, {rounds} sequential) and pipelined throughput ({pipelined} PINGs)")
    print(f"{'target':<7} {'p50 ms':>7} {'p95 ms':>7} {'bare p50':>9} {'overhead':>9} {'wire floor':>11} "
          f"{'req/s':>8} {'floor req/s':>12} {'MACed writes/s':>15} {'CPU us/req':>11}")
    for r in rows:
        print(f"{r['target']:<7} {r['p50']:7.2f} {r['p95']:7.2f} {r['base_p50']:9.2f} "
              f"{r['p50'] / r['base_p50']:8.2f}x {r['floor_rtt']:9.2f}ms {r['rps']:8.0f} {r['floor_rps']:12.0f} "
              f"{r['writes_rps']:15.0f} {r['cpu_us']:11.0f}")
    n = a.fault_requests or (2000 if a.quick else 10_000)
    r = faults(n)
    print(f"\n## Fault injection: {n} requests, 1 % of bytes corrupted/dropped/duplicated each way (host build)")
    print(f"{r['seconds']:.1f} s; {r['bytes']} bytes relayed, faults {r['faults']}; answered {r['ok']}, "
          f"timeouts {r['timeouts']} (re-sent {r['resent']}), damaged answers caught {r['malformed']}, "
          f"refused by the board {r['refused']}, wrong answers {r['wrong_answers']}, "
          f"given up {r['failed']}; session usable after: {r['usable_after']}")


if __name__ == "__main__":
    main()
