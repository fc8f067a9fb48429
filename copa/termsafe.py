"""Text from outside made inert for a terminal: skill results, model answers, memories.

A terminal obeys what it is sent: CSI sequences repaint or move the cursor, OSC sets the window title
or (OSC 52) writes the clipboard, DCS/APC/PM reach the terminal's own parsers, 8-bit C1 bytes do the
same without an ESC, and bidirectional overrides make text read differently from what it is. copa
prints such text as data: every control character becomes a visible stand-in (ESC -> "␛", BEL ->
"␇", C1 -> "\\x9b", bidi controls -> "\\u202e"), so nothing is lost and nothing is obeyed.

The mapping is per character, so text streamed in pieces is safe however it is split. Tab and line
feed stay; CR LF becomes LF (a lone CR, which would overwrite the line, becomes "␍").
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _table(keep_newlines: bool) -> dict[int, str]:
    table = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}  # control pictures
    table[0x7F] = "\u2421"  # ␡
    for c in range(0x80, 0xA0):  # C1: 0x9b is an 8-bit CSI, 0x9d an 8-bit OSC
        table[c] = f"\\x{c:02x}"
    for ch in _BIDI:
        table[ord(ch)] = f"\\u{ord(ch):04x}"
    if not keep_newlines:
        table[0x0A] = "\u240a"  # ␊
        table[0x09] = " "
    return table


_TEXT = _table(True)
_LINE = _table(False)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f" + _BIDI + "]")


def safe(text: str) -> str:
    """``text`` with every terminal control made visible and inert (newlines and tabs kept)."""
    if not _UNSAFE.search(text):
        return text  # the common case costs one scan
    return text.replace("\r\n", "\n").translate(_TEXT)


def safe_line(text: str) -> str:
    """Like ``safe``, for one line (a table cell, an error message): newlines become "␊"."""
    return text.replace("\r\n", "\n").translate(_LINE)


def safe_json(document: str) -> str:
    """A JSON document whose strings may hold C1 or bidi controls (``json.dumps`` escapes only
    C0): the same data, with those written as \\uXXXX escapes."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def is_safe(text: str) -> bool:
    return _UNSAFE.search(text) is None
