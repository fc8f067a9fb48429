"""A small synchronous client for copa boards over a serial port (development and tests: the
baseline the product's ``DeviceSession`` is measured against).

It speaks docs/protocol.md: HELLO with retry (never a boot banner), request ids with
pipelining, typed helpers for every command, challenge-response authentication and MACed
state-changing commands, and collection of unsolicited events. pyserial is imported only in
:meth:`Client.open`; any object with ``read(n)``, ``write(b)`` and ``in_waiting`` will do.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from copa.device.protocol import (
    AUTHENTICATED,
    PROTOCOL_VERSION,
    Cmd,
    DeviceError,
    Frame,
    FrameDecoder,
    Hello,
    ProtocolError,
    Rule,
    RuleEntry,
    Session,
    Stats,
    Status,
    encode_frame,
    parse_event,
    read_all_rules,
    subscribe_body,
)
from copa.device.session import NoAnswer
from copa.errors import CopaError


class SerialLike(Protocol):
    in_waiting: int

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...


class Client:
    """One connection to one board. Not thread-safe."""

    def __init__(self, port: SerialLike, *, timeout: float = 2.0, max_events: int = 4096):
        self.port = port
        self.timeout = timeout
        self.decoder = FrameDecoder()
        self.events: deque[Frame] = deque(maxlen=max_events)  # oldest dropped when full
        self._responses: dict[int, Frame] = {}
        self._next_id = 0
        self.session: Session | None = None
        self.hello_info: Hello | None = None

    # -------------------------------------------------------------- transport
    @classmethod
    def open(cls, path: str, *, baudrate: int = 115200, timeout: float = 2.0) -> Client:
        """Open a serial device (or pty) with pyserial and wrap it."""
        import serial  # imported here: CLI startup must not pay for pyserial

        port = serial.Serial(path, baudrate=baudrate, timeout=0.02, write_timeout=timeout)
        return cls(port, timeout=timeout)

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close:
            close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write_raw(self, data: bytes) -> None:
        self.port.write(data)

    def _pump(self) -> None:
        """Read what is available (or wait one port timeout for one byte) and sort frames."""
        data = self.port.read(self.port.in_waiting or 1)
        for f in self.decoder.feed(data):
            if f.is_event:
                self.events.append(f)
            elif f.is_response:
                self._responses[f.id] = f
            # anything else is not for us: dropped

    # -------------------------------------------------------------- requests
    def new_id(self) -> int:
        self._next_id = self._next_id % 255 + 1  # 1..255; 0 is for events
        return self._next_id

    def send(self, cmd: int, body: bytes = b"", *, auth: bool | None = None) -> int:
        """Send one request without waiting; returns its id (for :meth:`wait`)."""
        rid = self.new_id()
        self._responses.pop(rid, None)
        if auth is None:
            auth = cmd in AUTHENTICATED and self.session is not None and self.session.established
        if auth:
            if self.session is None:
                raise CopaError("not authenticated", hint="call authenticate() first")
            body = self.session.sign(cmd, rid, body)
        self.port.write(encode_frame(cmd, rid, body))
        return rid

    def wait(self, rid: int, timeout: float | None = None) -> Frame:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while rid not in self._responses:
            if time.monotonic() > deadline:
                raise NoAnswer(f"no answer to request {rid}",
                               hint="check the port and that the board runs copa firmware")
            self._pump()
        return self._responses.pop(rid)

    def request(self, cmd: int, body: bytes = b"", *, auth: bool | None = None,
                timeout: float | None = None, check: bool = True) -> Frame:
        """Send and wait; with ``check`` a non-OK status raises :class:`DeviceError`."""
        f = self.wait(self.send(cmd, body, auth=auth), timeout)
        if f.cmd != cmd:
            raise ProtocolError(f"answer to {Cmd(cmd).name} has type 0x{f.type:02x}")
        if check and f.status != Status.OK:
            raise DeviceError(cmd, f.status)
        return f

    def wait_event(self, pred: Callable[[Any], bool] = lambda e: True,
                   timeout: float | None = None) -> Any:
        """Wait for an event matching ``pred`` (applied to the parsed event); earlier
        non-matching events are kept in ``events``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = 0
        while True:
            while seen < len(self.events):
                ev = parse_event(self.events[seen])
                if pred(ev):
                    del self.events[seen]
                    return ev
                seen += 1
            if time.monotonic() > deadline:
                raise NoAnswer("no matching event")
            self._pump()

    # -------------------------------------------------------------- commands
    def hello(self, *, attempts: int = 25, interval: float = 0.2) -> Hello:
        """HELLO with retry: the first bytes after an open are often lost (board reset,
        bootloader, emulator not yet attached), so ask again until the device answers."""
        last: Exception | None = None
        for _ in range(attempts):
            try:
                f = self.request(Cmd.HELLO, bytes([PROTOCOL_VERSION]), timeout=interval)
                info = Hello.parse(f.payload)
                if info.protocol != PROTOCOL_VERSION:
                    raise ProtocolError(
                        f"the board speaks copa protocol {info.protocol}, this host speaks "
                        f"{PROTOCOL_VERSION}", hint="update copa or the board's firmware")
                self.hello_info = info
                return info
            except NoAnswer as e:
                last = e
        raise NoAnswer(f"no HELLO answer after {attempts} tries",
                       hint="is this a copa board, and is the port right?") from last

    def ping(self, data: bytes = b"") -> bytes:
        return self.request(Cmd.PING, data).payload

    def gpio_mode(self, pin: int, mode: int) -> None:
        self.request(Cmd.GPIO_MODE, bytes([pin, mode]))

    def gpio_read(self, pin: int) -> int:
        return self.request(Cmd.GPIO_READ, bytes([pin])).payload[0]

    def gpio_write(self, pin: int, value: int) -> None:
        self.request(Cmd.GPIO_WRITE, bytes([pin, 1 if value else 0]))

    def adc_read(self, channel: int) -> int:
        return int(struct.unpack("<H", self.request(Cmd.ADC_READ, bytes([channel])).payload)[0])

    def pwm_write(self, pin: int, duty: int) -> None:
        self.request(Cmd.PWM_WRITE, bytes([pin, duty]))

    def i2c_scan(self) -> list[int]:
        bitmap = self.request(Cmd.I2C_SCAN, timeout=max(self.timeout, 5.0)).payload
        return [a for a in range(128) if bitmap[a >> 3] >> (a & 7) & 1]

    def i2c_read(self, addr: int, n: int, register: bytes = b"") -> bytes:
        """Read ``n`` bytes; with ``register`` (1-4 bytes) write it first and read after a
        repeated START (the usual register read). That write makes the command authenticated."""
        body = bytes([addr, n]) + register
        return self.request(Cmd.I2C_READ, body, auth=bool(register)).payload

    def i2c_write(self, addr: int, data: bytes) -> None:
        self.request(Cmd.I2C_WRITE, bytes([addr]) + data)

    def subscribe(self, period_ms: int, items: list[tuple[int, int]]) -> None:
        """Sample pins ((0, pin)) and ADC channels ((1, ch)) every ``period_ms``; [] stops."""
        self.request(Cmd.SUBSCRIBE, subscribe_body(period_ms, items))

    def rules(self) -> list[RuleEntry]:
        return read_all_rules(lambda start: self.request(Cmd.RULE_LIST, bytes([start])).payload)

    def rule_add(self, rule: Rule) -> int:
        return self.request(Cmd.RULE_ADD, rule.to_wire()).payload[0]

    def rule_del(self, slot: int) -> None:
        self.request(Cmd.RULE_DEL, bytes([slot]))

    def rule_clear(self) -> None:
        self.request(Cmd.RULE_CLEAR)

    def stats(self) -> Stats:
        return Stats.parse(self.request(Cmd.STATS).payload)

    def pair(self, key: bytes) -> None:
        """Store ``key`` (16 bytes) on a fresh board or one started with the pairing jumper."""
        if len(key) != 16:
            raise CopaError("a pairing key is 16 bytes")
        self.request(Cmd.PAIR, key)

    def authenticate(self, key: bytes) -> Session:
        """Mutual challenge-response; afterwards state-changing commands are MACed."""
        s = Session(key)
        p = self.request(Cmd.AUTH_BEGIN, s.begin()).payload
        answer = s.answer(p[:8], p[8:16])
        self.request(Cmd.AUTH_FINISH, answer)
        s.confirm()
        self.session = s
        return s

    def reset(self) -> None:
        """Reboot the board (authenticated); the session ends, call hello() again."""
        self.request(Cmd.RESET)
        self.session = None
