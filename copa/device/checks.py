"""Doctor checks: firmware toolchains, serial ports (known USB ids) and whether each paired board answers."""

from __future__ import annotations

import shutil
from typing import Any

from copa.checks import FAIL, INFO, OK, WARN, Check


def check_devices(devices: Any) -> list[Check]:
    from copa.errors import CopaError

    try:
        from copa.device.scan import list_ports
    except ImportError:  # pragma: no cover
        return [Check("serial ports", WARN, "pyserial is not installed", "pip install pyserial")]
    ports = list_ports()
    out = [Check("serial ports", OK, ", ".join(f"{p.port} ({p.kind})" for p in ports)) if ports else
           Check("serial ports", INFO, "no board-like USB serial port visible", "plug a board in over USB to pair it")]
    for rec in devices.list():
        label = f"board {rec.name}"
        try:
            s = devices.registry.session(rec.name, reconnect=False, hello_attempts=8)
        except CopaError as e:
            status = WARN if "busy" in e.message else FAIL
            out.append(Check(label, status, e.message, e.hint or "plug it in; 'copa device scan' shows the ports"))
            continue
        try:
            out.append(Check(label, OK, f"{rec.board} on {s.port_path}, authenticated"))
        finally:
            s.close()
    return out


def check_toolchains() -> Check:
    tools = {"avr-gcc": "Uno", "arm-none-eabi-gcc": "STM32", "avrdude": "flash Uno",
             "simavr": "AVR emulator", "qemu-system-arm": "STM32 emulator"}
    have = [t for t in tools if shutil.which(t)]
    missing = [t for t in tools if t not in have]
    if not missing:
        return Check("firmware tools", OK, "all present: " + ", ".join(have))
    return Check("firmware tools", INFO, "missing: " + ", ".join(missing),
                 "only needed to build or flash boards: sudo make system-deps (from a copa clone)")


def check_mqtt(config: Any, paths: Any) -> Check:
    """The daemon's MQTT bridge: off, connected, or why not (a refused login says what to fix)."""
    from copa.device.mqtt import bridge_status

    st = bridge_status(config, paths.state_dir)
    if not st["enabled"]:
        return Check("mqtt", INFO, "bridge off", "copa config set mqtt.enabled true (docs/remote.md)")
    if st["state"] == "connected":
        return Check("mqtt", OK, f"connected to {st['broker']}, {len(st['boards'])} board(s), "
                     f"{st['dropped']['samples']} samples dropped while away")
    if st["state"] == "not running":
        return Check("mqtt", WARN, st["error"], "start the daemon: copa daemon (or copa daemon install)")
    return Check("mqtt", FAIL, st.get("error") or f"not connected to {st['broker']}",
                 "'copa mqtt test' tries the login; check mqtt.host/port and that the broker runs")
