"""The Python side reads the same vectors file as the C tests and must agree with it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from copa.device.codec import CobsError, cobs_decode, cobs_encode, crc16, siphash24
from copa.device.protocol import (
    FrameDecoder,
    Rule,
    Session,
    decode_frame,
    encode_frame,
    kdf,
)

VECTORS = Path(__file__).resolve().parents[2] / "firmware" / "tests" / "vectors.txt"


def _hex(s: str) -> bytes:
    return b"" if s == "-" else bytes.fromhex(s)


def vectors(kind: str) -> list[list[str]]:
    out = []
    for line in VECTORS.read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#") and parts[0] == kind:
            out.append(parts)
    assert out, f"no {kind} vectors"
    return out


def test_file_is_complete():
    kinds = {p.split()[0] for p in VECTORS.read_text().splitlines() if p and not p.startswith("#")}
    assert kinds == {"crc", "cobs", "cobs_bad", "siphash", "frame", "kdf", "auth", "signed", "rule",
                     "rulerun", "exchange"}


def test_crc():
    for _, name, data, c in vectors("crc"):
        assert crc16(_hex(data)) == int(c, 16), name


def test_cobs():
    for _, name, dec, enc in vectors("cobs"):
        assert cobs_encode(_hex(dec)) == _hex(enc), name
        assert cobs_decode(_hex(enc)) == _hex(dec), name
    for _, _name, enc in vectors("cobs_bad"):
        with pytest.raises(CobsError):
            cobs_decode(_hex(enc))


def test_siphash():
    for _, name, key, msg, out in vectors("siphash"):
        assert siphash24(_hex(key), _hex(msg)).hex() == out, name


def test_frames():
    for _, name, t, i, body, wire in vectors("frame"):
        w = _hex(wire)
        assert encode_frame(int(t, 16), int(i, 16), _hex(body)) == w, name
        f = decode_frame(w[:-1])
        assert (f.type, f.id, f.body) == (int(t, 16), int(i, 16), _hex(body)), name
        dec = FrameDecoder()
        assert dec.feed(b"\x01\x02\x00" + w) == [f] and dec.dropped == 1


def test_auth_and_signed():
    for _, name, key, tag, a, b, out in vectors("kdf"):
        assert kdf(_hex(key), _hex(tag), _hex(a), _hex(b)).hex() == out, name
    for _, _name, key, nh, nd, pd, ph, sk in vectors("auth"):
        s = Session(_hex(key))
        s.begin(_hex(nh))
        assert s.answer(_hex(nd), _hex(pd)).hex() == ph
        assert s.session_key.hex() == sk
    for _, name, sk, t, i, payload, ctr, body in vectors("signed"):
        s = Session(b"\x00" * 16, session_key=_hex(sk))
        assert s.sign(int(t, 16), int(i, 16), _hex(payload), int(ctr)) == _hex(body), name


def test_rules_wire():
    for parts in vectors("rule"):
        w = _hex(parts[2])
        fields = [int(x) for x in parts[3:]]
        assert list(struct.unpack("<BBBHHHBBBB", w)) == fields
        assert Rule.from_wire(w).to_wire() == w
    for parts in vectors("rulerun"):
        Rule.from_wire(_hex(parts[2]))  # parses
