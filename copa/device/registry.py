"""Paired boards under the names users chose: pairing, lookup, sessions, forgetting.

A row in ``devices`` says which board (its 8-byte id), where it was last seen and what the host's
message counter has reached; the 16-byte pairing key lives only in copa's secrets store, under
``copa.device.<id>``, never in the database or a log line.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from copa.db import rows
from copa.errors import CopaError, NotFoundError, UsageError

# The protocol (enums, frames, the codec: ~15 ms to import) only where a board is talked to: every
# `copa ask` builds this registry to learn whether any board is paired, and usually none is.
if TYPE_CHECKING:
    from copa.device.protocol import Hello
    from copa.device.session import DeviceSession

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def board_name(code: int) -> str:
    from copa.device.protocol import Board

    names = {Board.HOST: "host", Board.UNO: "uno", Board.STM32F103: "stm32f103"}
    return names.get(code, f"board-{code}")  # type: ignore[call-overload]


def secret_name(device_id: str) -> str:
    return f"copa.device.{device_id}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class DeviceRecord:
    name: str
    device_id: str
    board: str
    port: str
    paired_at: str
    last_seen: str | None = None
    usb_serial: str | None = None
    firmware: str | None = None
    counter: int = 0
    watch: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_device_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise UsageError(f"invalid device name {name!r}",
                         hint="use 1-32 lower-case letters, digits, '-' or '_' (e.g. greenhouse)")
    return name


def stable_path(port: str) -> str:
    """Prefer a /dev/serial/by-id link (it survives re-enumeration as ttyACM1 and the like)."""
    by_id = "/dev/serial/by-id"
    if port.startswith("/dev/") and os.path.isdir(by_id):
        real = os.path.realpath(port)
        for entry in sorted(os.listdir(by_id)):
            link = os.path.join(by_id, entry)
            if os.path.realpath(link) == real:
                return link
    return port


def usb_serial_of(port: str) -> str | None:
    try:
        from serial.tools import list_ports
    except ImportError:  # pragma: no cover
        return None
    real = os.path.realpath(port)
    for p in list_ports.comports():
        if os.path.realpath(p.device) == real:
            return p.serial_number
    return None


class DeviceRegistry:
    """Paired boards: rows in ``devices`` (``conn``: a plain sqlite3 connection to the database,
    possibly a per-thread deferral), their keys in ``secrets``, timeouts from ``config``."""

    def __init__(self, conn: Any, secrets: Any, config: Any):
        self.conn, self.secrets, self.config = conn, secrets, config

    def list(self) -> list[DeviceRecord]:
        return [self._record(r) for r in rows(self.conn, "SELECT * FROM devices ORDER BY name")]

    def names(self) -> list[str]:
        return [r["name"] for r in rows(self.conn, "SELECT name FROM devices ORDER BY name")]

    def get(self, name: str) -> DeviceRecord:
        found = rows(self.conn, "SELECT * FROM devices WHERE name = ?", [name])
        if not found:
            known = self.names()
            raise NotFoundError(
                f"no paired board named {name!r}",
                hint=("known boards: " + ", ".join(known)) if known
                else "pair one first: copa device pair PORT --name NAME")
        return self._record(found[0])

    @staticmethod
    def _record(r: dict[str, Any]) -> DeviceRecord:
        return DeviceRecord(r["name"], r["device_id"], r["board"], r["port"], r["paired_at"],
                            r["last_seen"], r["usb_serial"], r["firmware"], r["counter"],
                            json.loads(r["watch"] or "{}"), json.loads(r["info"] or "{}"))

    def key(self, rec: DeviceRecord) -> bytes:
        value = self.secrets.resolve(secret_name(rec.device_id))
        if not value:
            raise CopaError(f"the pairing key of {rec.name} is missing from the secrets store",
                            hint=f"pair it again: hold its pairing jumper, reset it, then "
                            f"'copa device forget {rec.name}' and 'copa device pair {rec.port} --name {rec.name}'")
        return bytes.fromhex(value)

    def touch(self, name: str, *, port: str | None = None, hello: Hello | None = None) -> None:
        fields: dict[str, Any] = {"last_seen": now_iso()}
        if port:
            fields["port"] = port
        if hello is not None:
            fields["firmware"] = f"{hello.firmware[0]}.{hello.firmware[1]}"
            fields["info"] = json.dumps(hello_info(hello))
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE devices SET {sets} WHERE name = ?", [*fields.values(), name])

    def set_watch(self, name: str, watch: dict[str, Any]) -> None:
        self.get(name)
        self.conn.execute("UPDATE devices SET watch = ? WHERE name = ?", [json.dumps(watch), name])

    def _counter_store(self, name: str):
        def load() -> int:
            found = rows(self.conn, "SELECT counter FROM devices WHERE name = ?", [name])
            return int(found[0]["counter"]) if found else 0

        def save(value: int) -> None:
            self.conn.execute("UPDATE devices SET counter = MAX(counter, ?) WHERE name = ?", [value, name])

        return load, save

    # ------------------------------------------------------------------ sessions
    def session(self, name: str, *, connect: bool = True, port: str | None = None,
                timeout: float | None = None, reconnect: bool = True, **kw: Any) -> DeviceSession:
        """A session with a paired board: HELLO, identity check, mutual authentication."""
        from copa.device.protocol import DeviceError
        from copa.device.session import DeviceSession

        rec = self.get(name)
        key = self.key(rec)
        kw.setdefault("hello_attempts", self._hello_attempts())
        s = DeviceSession(port or rec.port, key=key, device_id=bytes.fromhex(rec.device_id), name=name,
                          resolve=lambda: self.resolve(name), counters=self._counter_store(name),
                          timeout=timeout or self.config.get("device.timeout"),
                          reconnect=reconnect, **kw)
        if connect:
            try:
                h = s.connect()
            except DeviceError as e:
                s.close()
                raise e
            except BaseException:
                s.close()
                raise
            self.touch(name, hello=h)
        return s

    def _hello_attempts(self) -> int:
        return max(1, round(float(self.config.get("device.hello_timeout")) / 0.2))

    def resolve(self, name: str) -> str | None:
        """Where the board is now: its stored (stable) path, else the USB port with its serial."""
        rec = self.get(name)
        if "://" in rec.port or os.path.exists(rec.port):
            return rec.port
        if rec.usb_serial:
            try:
                from serial.tools import list_ports
            except ImportError:  # pragma: no cover
                return None
            for p in list_ports.comports():
                if p.serial_number == rec.usb_serial:
                    return p.device
        return None

    # ------------------------------------------------------------------ pairing
    def pair(self, port: str, name: str, *, timeout: float | None = None) -> DeviceRecord:
        """Pair the board on ``port`` under ``name``; the key goes to the secrets store first, so
        a crash after the board stored it never leaves a board nobody holds the key of."""
        from copa.device.protocol import DeviceError, Status
        from copa.device.session import DeviceSession

        check_device_name(name)
        if name in self.names():
            raise UsageError(f"a board named {name!r} is already paired",
                             hint=f"choose another name, or 'copa device forget {name}' first")
        s = DeviceSession(port, name=name, reconnect=False, hello_attempts=self._hello_attempts(),
                          timeout=timeout or self.config.get("device.timeout"))
        try:
            h = s.connect()
            dev = h.device_id.hex()
            clash = rows(self.conn, "SELECT name FROM devices WHERE device_id = ?", [dev])
            if clash:
                raise UsageError(f"this board is already paired as {clash[0]['name']!r}",
                                 hint=f"use that name, or 'copa device forget {clash[0]['name']}' first")
            if not h.pair_open:
                raise CopaError("this board is paired with another host and refuses a new key",
                                hint="hold its pairing jumper while it starts (or reset it with the "
                                "jumper on), then pair again")
            key = _secrets.token_bytes(16)
            sname = secret_name(dev)
            self.secrets.set(sname, key.hex())
            try:
                s.pair(key)
            except DeviceError as e:
                self.secrets.delete(sname)
                if e.status == Status.NOT_PAIRABLE:
                    raise CopaError("the board refused the new key (pairing is closed)",
                                    hint="hold its pairing jumper while it starts, then pair again") from None
                raise
            except BaseException:
                self.secrets.delete(sname)
                raise
            rec = DeviceRecord(name=name, device_id=dev, board=board_name(h.board),
                               port=stable_path(port), paired_at=now_iso(), last_seen=now_iso(),
                               usb_serial=None if "://" in port else usb_serial_of(port),
                               firmware=f"{h.firmware[0]}.{h.firmware[1]}",
                               counter=s.auth.counter + 256 if s.auth else 0, info=hello_info(h))
            row = {**rec.as_dict(), "watch": "{}", "info": json.dumps(rec.info)}
            self.conn.execute(f"INSERT INTO devices ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                              list(row.values()))
            return rec
        finally:
            s.close()

    def forget(self, name: str) -> DeviceRecord:
        rec = self.get(name)
        self.secrets.delete(secret_name(rec.device_id))
        self.conn.execute("DELETE FROM devices WHERE name = ?", [name])
        return rec


def hello_info(h: Hello) -> dict[str, Any]:
    from copa.device.protocol import Cap

    return {
        "protocol": h.protocol, "firmware": f"{h.firmware[0]}.{h.firmware[1]}", "board": board_name(h.board),
        "device_id": h.device_id.hex(), "paired": h.paired, "pins": len(h.pins),
        "outputs": h.pins_with(Cap.OUT), "pwm": h.pins_with(Cap.PWM), "adc_channels": h.adc_channels,
        "adc_bits": h.adc_bits, "i2c": h.i2c, "max_rules": h.max_rules, "max_subs": h.max_subs,
        "max_body": h.max_body,
    }
