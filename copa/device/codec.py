"""Byte-level codecs of the board protocol: CRC-16/CCITT-FALSE, COBS and SipHash-2-4.

Pure Python, no dependencies. The firmware's ``firmware/core/codec.c`` and ``siphash.c`` are
the C twins; both are checked against ``firmware/tests/vectors.txt``.
"""

from __future__ import annotations

__all__ = ["crc16", "cobs_encode", "cobs_decode", "siphash24", "CobsError"]


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no xor-out."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result has no zero byte and no trailing delimiter."""
    out = bytearray([0])
    code_at = 0
    code = 1
    n = len(data)
    for i, byte in enumerate(data):
        if byte == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
        else:
            out.append(byte)
            code += 1
            if code == 0xFF and i + 1 < n:
                out[code_at] = code
                code_at = len(out)
                out.append(0)
                code = 1
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS block (without its delimiter); raises ``CobsError`` if malformed."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0:
            raise CobsError("zero byte inside a COBS block")
        end = i + code - 1
        if end > n:
            raise CobsError("COBS block runs past the end")
        chunk = data[i:end]
        if 0 in chunk:
            raise CobsError("zero byte inside a COBS block")
        out += chunk
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


_MASK = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash24(key: bytes, message: bytes) -> bytes:
    """SipHash-2-4 of ``message`` under a 16-byte ``key``; 8 bytes, little-endian."""
    if len(key) != 16:
        raise ValueError("SipHash key must be 16 bytes")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(message)
    tail = message[n - n % 8 :] + bytes(7 - n % 8) + bytes([n & 0xFF])
    padded = message[: n - n % 8] + tail
    for off in range(0, len(padded), 8):
        m = int.from_bytes(padded[off : off + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return ((v0 ^ v1 ^ v2 ^ v3) & _MASK).to_bytes(8, "little")
