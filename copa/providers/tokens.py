"""Token counts without a tokenizer: what copa budgets a model's window with, and what it reports as
usage (marked ``estimated``) when a server states none.

Characters / 4 is right for English prose and badly wrong for logs and numbers: SmolLM2's tokenizer,
like Llama 2's, spends a token on every digit (and on the space before a number), so a server log
costs a token per 1.6 characters. The estimate therefore counts pieces: a run of ASCII letters costs
one token per 4 letters, other letters one per 2, each digit one, a space before a digit one more, a
run of punctuation one per 2 marks. Measured against SmolLM2-135M's tokenizer (llama-cpp-python's
/extras/tokenize/count): estimate / real = 1.17 on English prose (docs/agent.md), 1.13 on Python,
1.01 on a server log and on dpkg.log, 1.39 on tool schemas (JSON), 0.98 on French, 1.00 on numbers.
tests/realmodel/test_budget.py measures it again against the running server. The 2 % under-count on
accented text is covered by the margin the context assembly keeps (5 % of the window).
"""

from __future__ import annotations

import re
from typing import Any

_PIECES = re.compile(r"[^\W\d_]+|\s\d|\d|[^\w\s]+|_+", re.UNICODE)
LETTERS_PER_TOKEN = 4  # ASCII letters; other letters: 2
PUNCTUATION_PER_TOKEN = 2  # '":"', '{"' and the like are one token in most vocabularies
PER_MESSAGE = 8  # chat-template tokens around each message (role markers, separators)


def estimate_tokens(text: str) -> int:
    """A count that errs on the high side (see the module doc)."""
    if not text:
        return 0
    n = 1
    for m in _PIECES.finditer(text):
        piece = m.group()
        c = piece[0]
        if c.isdigit():
            n += 1
        elif c.isspace():  # a space and the digit after it
            n += 2
        elif c.isalpha():
            n += -(-len(piece) // (LETTERS_PER_TOKEN if piece.isascii() else 2))
        else:
            n += -(-len(piece) // PUNCTUATION_PER_TOKEN)
    return n


def cut_to_tokens(text: str, tokens: int, *, keep_tail: bool = False) -> str:
    """The longest prefix (or suffix) of ``text`` whose estimate fits in ``tokens``."""
    if tokens <= 0:
        return ""
    # No token covers more than a few characters except runs of spaces: look at a bounded slice only,
    # so that cutting a 2 MB paste stays a matter of milliseconds.
    bound = tokens * 16
    text = text[-bound:] if keep_tail else text[:bound]
    if estimate_tokens(text) <= tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on the character count: the estimate grows with the text
        mid = (lo + hi + 1) // 2
        part = text[-mid:] if keep_tail else text[:mid]
        if estimate_tokens(part) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return (text[-lo:] if keep_tail else text[:lo]) if lo else ""


def estimate_large(text: str, sample: int = 60_000) -> int:
    """``estimate_tokens`` for texts of any size: beyond a few samples' worth, scaled from samples of
    its beginning, middle and end (counting a 2 MB paste piece by piece takes a second)."""
    if len(text) <= 3 * sample:
        return estimate_tokens(text)
    mid = len(text) // 2
    parts = (text[:sample], text[mid - sample // 2:mid + sample // 2], text[-sample:])
    return int(sum(estimate_tokens(p) for p in parts) * len(text) / (3 * sample)) + 1


def fit_text(text: str, tokens: int, *, what: str = "text") -> tuple[str, int]:
    """``text`` cut to about ``tokens``: its beginning and its end (where logs keep their errors), whole
    lines where it has lines, and a marker saying what was left out. Returns (text, tokens left out)."""
    total = estimate_large(text)
    if total <= tokens:
        return text, 0
    marker_room = 40
    head_budget = max(0, (tokens - marker_room) * 2 // 3)
    tail_budget = max(0, tokens - marker_room - head_budget)
    lines = text.splitlines(keepends=True)
    head_n = tail_n = 0
    if len(lines) > 3:
        used = 0
        while head_n < len(lines) and used + (cost := estimate_tokens(lines[head_n])) <= head_budget:
            used, head_n = used + cost, head_n + 1
        used = 0
        while tail_n < len(lines) - head_n and used + (cost := estimate_tokens(lines[-1 - tail_n])) <= tail_budget:
            used, tail_n = used + cost, tail_n + 1
    if head_n or tail_n:
        head, tail = "".join(lines[:head_n]), "".join(lines[len(lines) - tail_n:])
        unit = f"{len(lines) - head_n - tail_n} lines"
    else:  # one long line, or lines longer than the room
        head = cut_to_tokens(text, head_budget)
        tail = cut_to_tokens(text, tail_budget, keep_tail=True)
        unit = f"{len(text) - len(head) - len(tail)} characters"
    dropped = max(0, total - estimate_tokens(head) - estimate_tokens(tail))
    marker = (f"\n[... copa left out {unit} of this {what} here (about {dropped} tokens) "
              "to fit the model's context window ...]\n")
    return head.rstrip("\n") + marker + tail.lstrip("\n"), dropped


def estimate_request(request: Any) -> int:
    """Prompt tokens of a ChatRequest: system, messages, tool schemas."""
    import json

    n = estimate_tokens(request.system) + PER_MESSAGE
    for m in request.messages:
        n += estimate_tokens(m.content) + PER_MESSAGE
        for c in m.tool_calls:
            n += estimate_tokens(c.name) + estimate_tokens(json.dumps(c.arguments, ensure_ascii=False))
    for t in request.tools:
        n += tool_tokens(t)
    return n


SCHEMA_FACTOR = 0.75  # the piece count over-counts JSON schemas by 1.39 (measured: see the module doc)


def tool_tokens(spec: Any) -> int:
    """What one tool's schema costs in the prompt."""
    import json

    schema = json.dumps(spec.parameters, separators=(",", ":"))
    return estimate_tokens(spec.name) + estimate_tokens(spec.description) + int(
        estimate_tokens(schema) * SCHEMA_FACTOR) + PER_MESSAGE
