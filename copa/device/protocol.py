"""copa board protocol, host side: frames, commands, messages and authentication.

The single specification is ``docs/protocol.md``; the constants below mirror it and
``firmware/core/copa_fw.h``. Test vectors shared with the C tests live in
``firmware/tests/vectors.txt``.

A frame before encoding is ``type(1) id(1) body(n) crc16(2, little-endian)``; on the wire it is
COBS-encoded and followed by one ``0x00``. Requests carry a command as ``type``; responses carry
``command | 0x80`` and their body starts with a status byte; events carry ``0xC0``, id 0, and
their body starts with an event kind.
"""

from __future__ import annotations

import enum
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from copa.device.codec import CobsError, cobs_decode, cobs_encode, crc16, siphash24
from copa.errors import CopaError

PROTOCOL_VERSION = 1
RESPONSE_FLAG = 0x80
EVENT_TYPE = 0xC0
MAC_LEN = 8
AUTH_TRAILER = 12  # counter (4, little-endian) + MAC (8)


class Cmd(enum.IntEnum):
    PING = 0x01
    HELLO = 0x02
    GPIO_MODE = 0x03
    GPIO_READ = 0x04
    GPIO_WRITE = 0x05
    ADC_READ = 0x06
    PWM_WRITE = 0x07
    I2C_SCAN = 0x08
    I2C_READ = 0x09
    I2C_WRITE = 0x0A
    SUBSCRIBE = 0x0B
    RULE_LIST = 0x0C
    RULE_ADD = 0x0D
    RULE_DEL = 0x0E
    RULE_CLEAR = 0x0F
    STATS = 0x10
    PAIR = 0x11
    AUTH_BEGIN = 0x12
    AUTH_FINISH = 0x13
    RESET = 0x14


#: commands that change state and therefore need a session, a counter and a MAC
#: (plus I2C_READ when it carries a register-address prefix, which is an I2C write)
AUTHENTICATED = frozenset(
    {Cmd.GPIO_MODE, Cmd.GPIO_WRITE, Cmd.PWM_WRITE, Cmd.I2C_WRITE, Cmd.RULE_ADD, Cmd.RULE_DEL,
     Cmd.RULE_CLEAR, Cmd.RESET}
)


class Status(enum.IntEnum):
    OK = 0
    UNKNOWN_CMD = 1
    BAD_LENGTH = 2
    BAD_ARG = 3
    UNSUPPORTED = 4
    AUTH_REQUIRED = 5
    BAD_MAC = 6
    REPLAY = 7
    NOT_PAIRABLE = 8
    FULL = 9
    NOT_FOUND = 10
    I2C_NACK = 11
    HW_TIMEOUT = 12
    BAD_STATE = 13


class Event(enum.IntEnum):
    SAMPLE = 1
    RULE = 2


class Cap(enum.IntFlag):
    IN = 1
    OUT = 2
    PULLUP = 4
    PWM = 8
    ADC = 16


class Mode(enum.IntEnum):
    INPUT = 0
    OUTPUT = 1
    INPUT_PULLUP = 2


class Board(enum.IntEnum):
    HOST = 1
    UNO = 2
    STM32F103 = 3


class ProtocolError(CopaError):
    """The device sent something that does not follow docs/protocol.md."""


class DeviceError(CopaError):
    """The device answered a request with a non-zero status."""

    def __init__(self, cmd: int, status: int):
        try:
            name = Status(status).name
        except ValueError:
            name = f"status {status}"
        try:
            cname = Cmd(cmd).name
        except ValueError:
            cname = f"command 0x{cmd:02x}"
        hint = {
            Status.AUTH_REQUIRED: "pair the board and authenticate first",
            Status.NOT_PAIRABLE: "hold the pairing jumper while the board starts, then pair again",
            Status.BAD_MAC: "the pairing key does not match this board; pair it again",
        }.get(status)  # type: ignore[call-overload]
        super().__init__(f"device refused {cname}: {name}", hint=hint)
        self.cmd = cmd
        self.status = status


# ---------------------------------------------------------------- frames

@dataclass(frozen=True)
class Frame:
    """One decoded frame (the CRC has been checked and removed)."""

    type: int
    id: int
    body: bytes = b""

    @property
    def is_event(self) -> bool:
        return self.type == EVENT_TYPE

    @property
    def is_response(self) -> bool:
        return self.type & RESPONSE_FLAG != 0 and not self.is_event

    @property
    def cmd(self) -> int:
        return self.type & 0x7F

    @property
    def status(self) -> int:
        """Status of a response (or kind of an event): the first body byte."""
        return self.body[0] if self.body else -1

    @property
    def payload(self) -> bytes:
        """Body after the status / event-kind byte."""
        return self.body[1:]


def frame_bytes(type_: int, id_: int, body: bytes = b"") -> bytes:
    """The unencoded frame: type, id, body and CRC-16 (little-endian)."""
    raw = bytes([type_ & 0xFF, id_ & 0xFF]) + bytes(body)
    return raw + struct.pack("<H", crc16(raw))


def encode_frame(type_: int, id_: int, body: bytes = b"") -> bytes:
    """The wire form of a frame: COBS of :func:`frame_bytes`, then the 0x00 delimiter."""
    return cobs_encode(frame_bytes(type_, id_, body)) + b"\x00"


def decode_frame(block: bytes) -> Frame:
    """Decode one COBS block (delimiter removed); raises ``ProtocolError``."""
    try:
        raw = cobs_decode(block)
    except CobsError as e:
        raise ProtocolError(f"bad COBS: {e}") from None
    if len(raw) < 4:
        raise ProtocolError("frame too short")
    if crc16(raw[:-2]) != struct.unpack("<H", raw[-2:])[0]:
        raise ProtocolError("bad CRC")
    return Frame(raw[0], raw[1], bytes(raw[2:-2]))


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole frames back.

    Bytes that do not form a valid frame (boot noise, bootloader chatter, a corrupted frame)
    are dropped and counted in ``dropped``.
    """

    def __init__(self, max_block: int = 1024):
        self._buf = bytearray()
        self._max = max_block
        self._skip = False
        self.dropped = 0

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for byte in data:
            if byte == 0:
                if self._skip:
                    self.dropped += 1
                elif self._buf:
                    try:
                        frames.append(decode_frame(bytes(self._buf)))
                    except ProtocolError:
                        self.dropped += 1
                self._buf.clear()
                self._skip = False
            elif not self._skip:
                self._buf.append(byte)
                if len(self._buf) > self._max:
                    self._skip = True
                    self._buf.clear()
        return frames


# ---------------------------------------------------------------- messages

@dataclass(frozen=True)
class Hello:
    """The HELLO answer: who the device is and what it can do."""

    protocol: int
    firmware: tuple[int, int]
    board: int
    device_id: bytes
    max_body: int
    paired: bool
    session: bool
    pair_open: bool
    pins: tuple[int, ...]  # capability bits (Cap) per pin number
    adc_channels: int
    adc_bits: int
    i2c: bool
    max_rules: int
    max_subs: int

    @property
    def device_id_hex(self) -> str:
        return self.device_id.hex()

    def pins_with(self, cap: Cap) -> list[int]:
        return [i for i, c in enumerate(self.pins) if c & cap]

    @classmethod
    def parse(cls, p: bytes) -> Hello:
        try:
            proto, fmaj, fmin, board = p[0], p[1], p[2], p[3]
            dev = bytes(p[4:12])
            max_body, flags, npins = p[12], p[13], p[14]
            pins = tuple(p[15 : 15 + npins])
            rest = p[15 + npins :]
            nadc, bits, i2c, rules, subs = rest[0], rest[1], rest[2], rest[3], rest[4]
        except IndexError:
            raise ProtocolError("HELLO answer too short") from None
        return cls(proto, (fmaj, fmin), board, dev, max_body, bool(flags & 1), bool(flags & 2),
                   bool(flags & 4), pins, nadc, bits, bool(i2c), rules, subs)


@dataclass(frozen=True)
class Rule:
    """A rule of the board's tiny agent (docs/protocol.md, "Rules").

    ``op`` ABOVE fires when the value stays above ``threshold`` for ``duration_ms`` and clears
    when it falls below ``clear``; BELOW is the mirror image. ``act_pin`` (or ``None``) is driven
    to ``act_fire`` on firing and to ``act_clear`` (``None``: leave it) on clearing; ``notify``
    sends an event on both edges.
    """

    ABOVE = 0
    BELOW = 1
    PIN = 0
    ADC = 1

    src_kind: int
    src_index: int
    op: int
    threshold: int
    clear: int
    duration_ms: int = 0
    act_pin: int | None = None
    act_fire: int = 1
    act_clear: int | None = 0
    notify: bool = True

    def to_wire(self) -> bytes:
        return struct.pack(
            "<BBBHHHBBBB", self.src_kind, self.src_index, self.op, self.threshold, self.clear,
            self.duration_ms, 0xFF if self.act_pin is None else self.act_pin, self.act_fire,
            0xFF if self.act_clear is None else self.act_clear, 1 if self.notify else 0)

    @classmethod
    def from_wire(cls, w: bytes) -> Rule:
        k, i, op, thr, clr, dur, pin, fire, clear, flags = struct.unpack("<BBBHHHBBBB", w[:13])
        return cls(k, i, op, thr, clr, dur, None if pin == 0xFF else pin, fire,
                   None if clear == 0xFF else clear, bool(flags & 1))


RULE_WIRE = 13


@dataclass(frozen=True)
class RuleEntry:
    slot: int
    rule: Rule
    state: int  # 0 idle, 1 pending (over threshold, waiting), 2 active (fired)


def decode_rule_page(payload: bytes) -> tuple[list[RuleEntry], int | None]:
    """One RULE_LIST answer: its entries, and the slot to ask from next (None: that was all)."""
    if not payload:
        raise ProtocolError("RULE_LIST answer is empty")
    mask, rest = payload[0], payload[1:]
    entries: list[RuleEntry] = []
    for off in range(0, len(rest) - RULE_WIRE - 1, RULE_WIRE + 2):
        wire = rest[off + 1: off + 1 + RULE_WIRE]
        entries.append(RuleEntry(rest[off], Rule.from_wire(wire), rest[off + 1 + RULE_WIRE]))
    last = entries[-1].slot if entries else -1
    more = last >= 0 and mask >> (last + 1)
    return entries, (last + 1 if more else None)


def read_all_rules(fetch_page: Callable[[int], bytes]) -> list[RuleEntry]:
    """Every rule, asking ``fetch_page(start_slot)`` for RULE_LIST pages until the last one."""
    out: list[RuleEntry] = []
    start: int | None = 0
    while start is not None:
        entries, start = decode_rule_page(fetch_page(start))
        out += entries
    return out


@dataclass(frozen=True)
class Stats:
    frames_ok: int
    bad_crc: int
    bad_frame: int
    oversize: int
    auth_fail: int
    uptime_ms: int
    free_ram: int
    boot_count: int

    @classmethod
    def parse(cls, p: bytes) -> Stats:
        if len(p) < 28:
            raise ProtocolError("STATS answer too short")
        return cls(*struct.unpack("<IIIIIIHH", p[:28]))


@dataclass(frozen=True)
class SampleEvent:
    t_ms: int
    values: tuple[int, ...]


@dataclass(frozen=True)
class RuleEvent:
    slot: int
    fired: bool  # False: cleared
    value: int


def parse_event(f: Frame) -> SampleEvent | RuleEvent | Frame:
    """Turn an event frame into a typed event (unknown kinds are returned as the frame)."""
    p = f.payload
    if f.status == Event.SAMPLE and len(p) >= 4 and len(p) % 2 == 0:
        (t,) = struct.unpack("<I", p[:4])
        return SampleEvent(t, tuple(struct.unpack(f"<{(len(p) - 4) // 2}H", p[4:])))
    if f.status == Event.RULE and len(p) >= 4:
        return RuleEvent(p[0], bool(p[1]), struct.unpack("<H", p[2:4])[0])
    return f


def sub_item(kind: int, index: int) -> int:
    """One SUBSCRIBE item: a pin (kind 0) or an ADC channel (kind 1)."""
    return (0x80 if kind == Rule.ADC else 0) | (index & 0x7F)


def subscribe_body(period_ms: int, items: list[tuple[int, int]]) -> bytes:
    return struct.pack("<H", period_ms) + bytes(sub_item(k, i) for k, i in items)


# ---------------------------------------------------------------- authentication

def kdf(key: bytes, tag: bytes, a: bytes, b: bytes) -> bytes:
    """SipHash(key, tag || a || b): proofs and session-key halves (docs/protocol.md)."""
    return siphash24(key, tag + a + b)


@dataclass
class Session:
    """Host half of an authenticated session (mutual challenge-response, then MACed commands).

    Usage: ``nh = s.begin()``; send AUTH_BEGIN(nh); ``ph = s.answer(nd, proof)`` (raises if the
    device's proof is wrong); send AUTH_FINISH(ph); then ``s.sign(cmd, id, payload)`` for every
    state-changing command.
    """

    key: bytes
    host_nonce: bytes = b""
    device_nonce: bytes = b""
    session_key: bytes = b""
    counter: int = 0
    established: bool = field(default=False)

    def begin(self, nonce: bytes | None = None) -> bytes:
        self.host_nonce = nonce if nonce is not None else secrets.token_bytes(8)
        self.established = False
        return self.host_nonce

    def answer(self, device_nonce: bytes, device_proof: bytes) -> bytes:
        if len(device_nonce) != 8 or len(device_proof) != 8:
            raise ProtocolError("AUTH_BEGIN answer has the wrong length")
        expect = kdf(self.key, b"D", self.host_nonce, device_nonce)
        if not secrets.compare_digest(expect, device_proof):
            raise ProtocolError("the device failed to prove it holds the pairing key",
                                hint="this is not the board you paired, or it was re-paired")
        self.device_nonce = device_nonce
        self.session_key = (kdf(self.key, b"S", self.host_nonce, device_nonce)
                            + kdf(self.key, b"T", self.host_nonce, device_nonce))
        self.counter = 0
        return kdf(self.key, b"H", device_nonce, self.host_nonce)

    def confirm(self) -> None:
        self.established = True

    def sign(self, type_: int, id_: int, payload: bytes, counter: int | None = None) -> bytes:
        """Body of an authenticated request: payload || counter || MAC."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        covered = payload + struct.pack("<I", counter)
        mac = siphash24(self.session_key, bytes([type_, id_ & 0xFF]) + covered)
        return covered + mac
