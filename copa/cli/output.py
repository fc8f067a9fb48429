"""Small output helpers shared by the commands: JSON, aligned tables, text, the workstation.

Everything printed from outside copa (skill results, model answers, memories) goes through
``copa.termsafe`` here, so it is shown as data and never obeyed by the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON: stable key order (as built), UTF-8, one document."""
    from copa.termsafe import safe_json
    from copa.textio import scrub

    # scrub: a lone surrogate (an undecodable byte in a file name, a server's reply) never reaches JSON;
    # safe_json: C1 and bidi controls in strings are written as escapes (json escapes only C0)
    sys.stdout.write(safe_json(scrub(json.dumps(data, indent=2, ensure_ascii=False, default=_default))) + "\n")


def say(text: str, *, err: bool = False, end: str = "\n", flush: bool = False) -> None:
    """Print text that may come from outside copa (a skill, a model, a memory) as inert data."""
    from copa.termsafe import safe
    from copa.textio import scrub

    stream = sys.stderr if err else sys.stdout
    stream.write(safe(scrub(text)) + end)
    if flush:
        stream.flush()


def print_table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> None:
    from copa.termsafe import safe_line

    rows = [["" if c is None else safe_line(str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False))
    print(line.rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def workstation(interactive: bool | None = None):
    from copa.workstation import Workstation

    if interactive is None:
        interactive = sys.stdin.isatty()
    return Workstation(interactive=interactive)

