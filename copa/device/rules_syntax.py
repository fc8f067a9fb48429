"""The readable rule syntax <-> the board's rule structs (``protocol.Rule``).

    a0 > 612 for 5s -> d7 high, notify; clear < 590
    d2 < 1 -> d13 low
    a1 < 200 for 500ms -> notify; clear > 250
    a0 > 700 -> d8 high keep            (leave d8 high when the rule clears)

Source: ``aN`` (ADC channel N) or ``dN`` (digital pin N). ``>`` fires above the threshold, ``<``
below it; ``for`` is how long it must hold (ms, s or m; at most 65.535 s). Actions: ``dN high|low``
(the pin returns to the other level when the rule clears, unless ``keep``) and ``notify`` (an event
on both edges). ``clear`` sets the hysteresis: an above-rule clears below it (default: the
threshold's neighbour: clear as soon as the condition is false).
"""

from __future__ import annotations

import re

from copa.device.protocol import Rule
from copa.errors import UsageError

_HINT = "write it like: a0 > 612 for 5s -> d7 high, notify; clear < 590"
_SRC = re.compile(r"^(a|d|pin)\s*(\d{1,3})$")
_DUR = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m)?$")
_PIN = re.compile(r"^(?:d|pin)\s*(\d{1,3})\s+(high|low|on|off|1|0)(\s+keep)?$")


def _bad(msg: str) -> UsageError:
    return UsageError(f"bad rule: {msg}", hint=_HINT)


def _int(text: str, what: str, hi: int = 0xFFFF) -> int:
    if not text.isdigit() or int(text) > hi:
        raise _bad(f"{what} must be a whole number 0..{hi}, not {text!r}")
    return int(text)


def parse_duration_ms(text: str) -> int:
    m = _DUR.match(text.strip())
    if not m:
        raise _bad(f"cannot read the duration {text!r} (use 500ms, 5s or 1m)")
    ms = float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, None: 1000}[m.group(2)]
    if ms > 0xFFFF:
        raise _bad(f"{text} is longer than the board can time (65.5 s at most)")
    return int(round(ms))


def parse_rule(text: str) -> Rule:
    """Parse one rule; raises UsageError (one line, with an example) when it is not valid."""
    main, _, clear_part = text.strip().partition(";")
    cond, arrow, actions = main.partition("->")
    if not arrow:
        raise _bad("missing '->' between the condition and the actions")
    m = re.match(r"^\s*(\w+?\s*\d+)\s*([<>])\s*(\d+)\s*(?:for\s+(\S+))?\s*$", cond.strip().lower())
    if not m:
        raise _bad(f"cannot read the condition {cond.strip()!r}")
    src = _SRC.match(m.group(1).replace(" ", ""))
    if not src:
        raise _bad(f"unknown source {m.group(1)!r} (use aN for analog, dN for digital)")
    kind = Rule.ADC if src.group(1) == "a" else Rule.PIN
    index = _int(src.group(2), "the source number", 127)
    op = Rule.ABOVE if m.group(2) == ">" else Rule.BELOW
    threshold = _int(m.group(3), "the threshold")
    duration = parse_duration_ms(m.group(4)) if m.group(4) else 0

    act_pin: int | None = None
    act_fire, act_clear, notify = 1, 0, False
    for action in (a.strip().lower() for a in actions.split(",")):
        if not action:
            continue
        if action == "notify":
            notify = True
            continue
        pm = _PIN.match(action)
        if not pm:
            raise _bad(f"unknown action {action!r} (use 'dN high', 'dN low' or 'notify')")
        if act_pin is not None:
            raise _bad("a rule drives one pin at most")
        act_pin = _int(pm.group(1), "the pin", 254)
        act_fire = 1 if pm.group(2) in ("high", "on", "1") else 0
        act_clear = None if pm.group(3) else 1 - act_fire
    if act_pin is None and not notify:
        raise _bad("a rule needs an action: a pin to drive, 'notify', or both")

    clear = default_clear(op, threshold)
    if clear_part.strip():
        cm = re.match(r"^\s*clear\s*([<>])\s*(\d+)\s*$", clear_part.lower())
        if not cm:
            raise _bad(f"cannot read {clear_part.strip()!r} (write: clear < 590)")
        want = "<" if op == Rule.ABOVE else ">"
        if cm.group(1) != want:
            raise _bad(f"a rule that fires {'above' if op == Rule.ABOVE else 'below'} its threshold "
                       f"clears with 'clear {want} N'")
        clear = _int(cm.group(2), "the clear level")
        if (op == Rule.ABOVE and clear > threshold + 1) or (op == Rule.BELOW and clear < threshold - 1):
            raise _bad(f"clear level {clear} is on the wrong side of the threshold {threshold}")
    return Rule(kind, index, op, threshold, clear, duration, act_pin, act_fire,
                act_clear if act_pin is not None else 0, notify)


def default_clear(op: int, threshold: int) -> int:
    """No hysteresis: the firmware takes threshold+1 (above-rules) or threshold-1 (below-rules) to
    mean "clear as soon as the condition is false" (what a digital input needs)."""
    return min(threshold + 1, 0xFFFF) if op == Rule.ABOVE else max(threshold - 1, 0)


def _duration_text(ms: int) -> str:
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def format_rule(r: Rule) -> str:
    """The readable form; ``parse_rule(format_rule(r)) == r`` for every rule the syntax can state."""
    src = ("a" if r.src_kind == Rule.ADC else "d") + str(r.src_index)
    op = ">" if r.op == Rule.ABOVE else "<"
    text = f"{src} {op} {r.threshold}"
    if r.duration_ms:
        text += f" for {_duration_text(r.duration_ms)}"
    actions = []
    if r.act_pin is not None:
        level = "high" if r.act_fire else "low"
        keep = "" if r.act_clear == 1 - r.act_fire else " keep"
        actions.append(f"d{r.act_pin} {level}{keep}")
    if r.notify:
        actions.append("notify")
    text += " -> " + ", ".join(actions or ["nothing"])
    if r.clear != default_clear(r.op, r.threshold):
        text += f"; clear {'<' if r.op == Rule.ABOVE else '>'} {r.clear}"
    return text
