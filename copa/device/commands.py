"""Typed board commands on top of ``DeviceSession.request`` (a mixin, so session.py keeps to the
transport, ids, windows, authentication and reconnects)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from copa.device.protocol import Cmd, Frame, ProtocolError, Rule, RuleEntry, Stats, read_all_rules

if TYPE_CHECKING:
    from copa.device.session import DeviceSession

    _Base = DeviceSession
else:
    _Base = object


class BoardCommands(_Base):
    def ping(self, data: bytes = b"") -> bytes:
        return self.request(Cmd.PING, data, expect=lambda f: f.payload == data).payload

    def gpio_mode(self, pin: int, mode: int) -> None:
        self.request(Cmd.GPIO_MODE, bytes([pin, mode]))

    def gpio_read(self, pin: int) -> int:
        return self.request(Cmd.GPIO_READ, bytes([pin]), expect=_length(1)).payload[0]

    def gpio_write(self, pin: int, value: int) -> None:
        self.request(Cmd.GPIO_WRITE, bytes([pin, 1 if value else 0]))

    def adc_read(self, channel: int) -> int:
        return int(struct.unpack("<H", self.request(Cmd.ADC_READ, bytes([channel]), expect=_length(2)).payload)[0])

    def pwm_write(self, pin: int, duty: int) -> None:
        self.request(Cmd.PWM_WRITE, bytes([pin, duty]))

    def i2c_scan(self) -> list[int]:
        bitmap = self.request(Cmd.I2C_SCAN, timeout=max(self.timeout, 5.0), expect=_length(16)).payload
        return [a for a in range(128) if bitmap[a >> 3] >> (a & 7) & 1]

    def i2c_read(self, addr: int, n: int, register: bytes = b"") -> bytes:
        """Read ``n`` bytes; with ``register`` (1-4 bytes) write it first, then read after a repeated
        START. That write makes the request authenticated (docs/protocol.md)."""
        return self.request(Cmd.I2C_READ, bytes([addr, n]) + register, expect=_length(n),
                            sign=bool(register)).payload

    def i2c_write(self, addr: int, data: bytes) -> None:
        self.request(Cmd.I2C_WRITE, bytes([addr]) + data)

    def rules(self) -> list[RuleEntry]:
        return read_all_rules(lambda start: self.request(Cmd.RULE_LIST, bytes([start])).payload)

    def rule_add(self, rule: Rule) -> int:
        return _payload(self.request(Cmd.RULE_ADD, rule.to_wire()), 1)[0]

    def rule_del(self, slot: int) -> None:
        self.request(Cmd.RULE_DEL, bytes([slot]))

    def rule_clear(self) -> None:
        self.request(Cmd.RULE_CLEAR)

    def board_stats(self) -> Stats:
        return Stats.parse(self.request(Cmd.STATS, expect=lambda f: len(f.payload) >= 28).payload)

    def pair(self, key: bytes) -> None:
        """Store ``key`` on a board whose pairing is open, then authenticate with it."""
        self.request(Cmd.PAIR, key, retries=0)
        self.key = key
        self._authenticate()


def _length(n: int) -> Callable[[Frame], bool]:
    return lambda f: len(f.payload) == n


def _payload(f: Frame, n: int) -> bytes:
    if len(f.payload) < n:
        raise ProtocolError(f"answer to command 0x{f.cmd:02x} is too short")
    return f.payload
