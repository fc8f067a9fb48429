"""Text at copa's boundaries: one policy, in one place (docs/cli.md, "Text and encodings").

copa's text is UTF-8 everywhere. What comes in is sorted by who can fix it:

* **What you give copa** (command-line arguments, piped stdin, files you import, the config file):
  undecodable bytes are *refused* with a one-line error naming where (argument N, line, byte offset)
  and how to convert the input (``iconv -f latin1 -t utf-8``). Nothing is half-stored.
* **What copa receives from elsewhere** (HTTP bodies, a network serial server's words, a skill's output):
  decoded with U+FFFD (``�``) in place of each undecodable byte, so the rest is kept and the
  replacement is visible; the data is never refused for an encoding slip that is not yours to fix.
* Lone surrogates (Python's ``surrogateescape`` stand-ins for undecodable bytes, or ``\\ud800``
  escapes in JSON) never reach SQLite, JSON or the terminal: :func:`scrub` replaces them with U+FFFD.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import Any

from copa.errors import UsageError

REPLACEMENT = "\ufffd"
ICONV_HINT = "convert it to UTF-8 first, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8"
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def scrub(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (safe for SQLite, JSON, terminals)."""
    return _SURROGATE.sub(REPLACEMENT, text) if _SURROGATE.search(text) else text


def scrub_deep(value: Any) -> Any:
    """:func:`scrub` through dicts, lists and tuples (keys too); other values pass unchanged."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_deep(k): scrub_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_deep(v) for v in value]
    return value


def _escaped(raw: bytes, limit: int = 40) -> str:
    shown = raw[:limit].decode("utf-8", "backslashreplace")
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)  # one line, always
    return shown + ("..." if len(raw) > limit else "")


def decode_strict(data: bytes, where: str, *, show: bool = True) -> str:
    """Decode input the user controls; a clear :class:`UsageError` at the first bad byte (with the
    bytes around it, unless ``show`` is off: a secret is never echoed)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        around = f": {_escaped(data[max(0, e.start - 10):e.start + 10])}" if show else ""
        raise UsageError(f"{where} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}{around})",
                         hint=ICONV_HINT) from None


def decode_external(data: bytes) -> str:
    """Decode bytes copa received from elsewhere (a server, a board, a skill): U+FFFD per bad byte."""
    return data.decode("utf-8", "replace")


def check_argv(args: list[str]) -> None:
    """Refuse an argument that was not UTF-8 on the command line (Python hands such bytes over as
    lone surrogates); names the argument, its byte offset and how to fix it."""
    for i, arg in enumerate(args, 1):
        m = _SURROGATE.search(arg)
        if m is None:
            continue
        raw = arg.encode("utf-8", "surrogateescape") if _only_escapes(arg) else None
        if raw is not None:
            offset = len(arg[:m.start()].encode("utf-8", "surrogateescape"))
            shown = _escaped(raw)
            raise UsageError(f"argument {i} ({shown}) is not UTF-8 (byte 0x{raw[offset]:02x} at offset {offset})",
                             hint="pass UTF-8 text (convert it with iconv -f latin1 -t utf-8)")
        raise UsageError(f"argument {i} holds an invalid character (a lone surrogate at position {m.start()})",
                         hint="pass UTF-8 text")


def _only_escapes(text: str) -> bool:
    """True when every surrogate is a surrogateescape byte (U+DC80..U+DCFF)."""
    return all("\udc80" <= c <= "\udcff" for c in _SURROGATE.findall(text))


def read_stdin(limit: int | None = None, where: str = "the piped input", *, show: bool = True) -> str:
    """Read stdin as UTF-8, refusing undecodable bytes with the offset. ``limit`` in bytes: one more
    byte than the limit is read so the caller can tell the input was longer."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # replaced by a text stream (tests, embedding): already decoded
        text = sys.stdin.read() if limit is None else sys.stdin.read(limit + 1)
        return scrub(text)
    data = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(data) > limit:  # may cut a character in two: only the length matters
        return data.decode("utf-8", "replace")
    return decode_strict(data, where, show=show)


def safe_streams() -> None:
    """Make stdout and stderr unable to crash on text they cannot encode (a surrogate that slipped
    through, a C locale): such characters are written as U+FFFD / '?' instead of raising."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or unusual stream: leave it
                reconfigure(errors="replace")


def describe_unicode_error(e: UnicodeError) -> str:
    """One line for a UnicodeError that reached the CLI's error path."""
    if isinstance(e, UnicodeDecodeError):
        return f"input is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
    return "the text holds a character that cannot be stored (an undecodable byte)"


_sqlite_guarded = False


def guard_sqlite() -> None:
    """Scrub every text value bound to an SQLite statement in this process, whoever binds it (the
    memory store, the scheduler, sqlite-utils): a lone surrogate would otherwise fail the insert
    with a UnicodeEncodeError deep inside a transaction. Costs one C-level regex search per text
    parameter."""
    global _sqlite_guarded
    if _sqlite_guarded:
        return
    import sqlite3

    sqlite3.register_adapter(str, _adapt)
    _sqlite_guarded = True


def _adapt(text: str) -> str:
    return _SURROGATE.sub(REPLACEMENT, text) if _SURROGATE.search(text) else text
