"""Finding boards: serial ports with known USB ids, and whether copa firmware answers HELLO."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# (vid, pid or None for any) -> what it usually is
KNOWN_USB: dict[tuple[int, int | None], str] = {
    (0x2341, None): "Arduino",
    (0x2A03, None): "Arduino (.org)",
    (0x1A86, 0x7523): "CH340 USB-serial",
    (0x10C4, 0xEA60): "CP210x USB-serial",
    (0x0403, None): "FTDI USB-serial",
    (0x0483, 0x374B): "ST-LINK/V2-1",
}


def known_usb(vid: int | None, pid: int | None) -> str | None:
    if vid is None:
        return None
    return KNOWN_USB.get((vid, pid)) or KNOWN_USB.get((vid, None))


@dataclass
class PortInfo:
    port: str
    usb_id: str | None  # "2341:0043"
    kind: str | None  # what the USB id says, or None if unknown
    description: str
    serial_number: str | None = None
    copa: bool | None = None  # None: not probed
    board: str | None = None
    device_id: str | None = None
    paired: bool | None = None
    paired_as: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_ports(extra: list[str] | None = None, *, all_ports: bool = False) -> list[PortInfo]:
    """USB serial ports with a known id (all of them with ``all_ports``), plus ``extra`` paths/URLs."""
    from serial.tools import list_ports as lp

    out: list[PortInfo] = []
    for p in sorted(lp.comports(), key=lambda p: p.device):
        kind = known_usb(p.vid, p.pid)
        if kind is None and not all_ports:
            continue
        usb = f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else None
        out.append(PortInfo(p.device, usb, kind, p.description or "", p.serial_number))
    for e in extra or []:
        if e not in [o.port for o in out]:
            out.append(PortInfo(e, None, None, "given"))
    return out


def probe(info: PortInfo, *, attempts: int = 8, interval: float = 0.2,
          known: dict[str, str] | None = None) -> PortInfo:
    """Ask the port for HELLO (a real Uno resets on open: ~1.1 s in its bootloader)."""
    from copa.device.registry import board_name
    from copa.device.session import DeviceSession
    from copa.errors import CopaError

    s = DeviceSession(info.port, reconnect=False, hello_attempts=attempts, hello_interval=interval)
    try:
        h = s.connect()
    except CopaError as e:
        info.copa = False
        info.error = e.message
        return info
    finally:
        s.close()
    info.copa = True
    info.board = board_name(h.board)
    info.device_id = h.device_id.hex()
    info.paired = h.paired
    info.paired_as = (known or {}).get(info.device_id)
    return info
