"""Doctor check: serial ports (known USB ids) and whether each paired board answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from copa.doctor import Check
    from copa.workstation import Workstation


def check_devices(ws: Workstation) -> list[Check]:
    from copa.doctor import FAIL, INFO, OK, WARN, Check
    from copa.errors import CopaError

    try:
        from copa.device.scan import list_ports
    except ImportError:  # pragma: no cover
        return [Check("serial ports", WARN, "pyserial is not installed", "pip install pyserial")]
    ports = list_ports()
    out = [Check("serial ports", OK, ", ".join(f"{p.port} ({p.kind})" for p in ports)) if ports else
           Check("serial ports", INFO, "no board-like USB serial port visible", "plug a board in over USB to pair it")]
    for rec in ws.devices.list():
        label = f"board {rec.name}"
        try:
            s = ws.devices.registry.session(rec.name, reconnect=False, hello_attempts=8)
        except CopaError as e:
            status = WARN if "busy" in e.message else FAIL
            out.append(Check(label, status, e.message, e.hint or "plug it in; 'copa device scan' shows the ports"))
            continue
        try:
            out.append(Check(label, OK, f"{rec.board} on {s.port_path}, authenticated"))
        finally:
            s.close()
    return out
