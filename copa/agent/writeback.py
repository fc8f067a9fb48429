"""What the agent writes back besides the turns themselves: compaction summaries of older turns, and
(optional) memories proposed by the ``fast`` model after a turn, with subjects so updates supersede."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from copa.agent.context import session_source, summary_subject
from copa.providers.tokens import PER_MESSAGE, estimate_tokens, fit_text
from copa.providers.types import ChatRequest, Message

log = logging.getLogger("copa.agent")

SUMMARY_PROMPT = (
    "Summarise this conversation so far for your own later use. Keep every detail that matters for "
    "continuing it, under these headings: Goal, Constraints, Decisions, Progress, Next steps. Be brief; "
    "omit empty headings. Write only the summary."
)
EXTRACT_PROMPT = (
    "From the exchange below, list durable things worth remembering about the user: facts about them and "
    "their world, their preferences, tasks they committed to. Ignore small talk and things only the "
    "assistant said. Answer with only a JSON array (possibly empty) of objects with keys: kind (fact, "
    "preference or task), subject (a stable dotted key such as user.home_city or user.diet, the same key "
    "when a value changes), text (one full sentence, e.g. 'The user lives in Lyon.')."
)


def _room(models: Any, model: str | None, system: str, answer: int) -> tuple[int, int]:
    """(answer tokens, tokens the input may take) for one internal request to ``model``."""
    window = models.window(model or models.default_name() or "")[0]
    answer = min(answer, window // 4)
    return answer, max(64, window - answer - estimate_tokens(system) - max(32, window // 20) - 3 * PER_MESSAGE)


def compact(models: Any, memory: Any, session_id: str, turns: list[Any], previous: Any,
            model: str | None) -> str | None:
    """Summarise ``turns`` (plus the previous summary) into a memory that supersedes the previous one."""
    from copa.memory.model import iso

    if not turns:
        return None
    transcript = "\n".join(f"{t.role or 'user'}: {t.text}" for t in turns)
    if previous is not None:
        transcript = f"Earlier summary:\n{previous.text}\n\nLater turns:\n{transcript}"
    answer, room = _room(models, model, SUMMARY_PROMPT, 800)
    transcript, _ = fit_text(transcript[-60_000:], room, what="conversation")
    reply = models.chat(ChatRequest([Message("user", transcript)], system=SUMMARY_PROMPT, max_tokens=answer), model)
    if reply.interrupted or not reply.text.strip():
        return None
    metadata = {"session_id": session_id, "through": iso(turns[-1].occurred_at),
                "turns": len(turns) + (previous.metadata.get("turns", 0) if previous else 0)}
    mid = memory.add(reply.text.strip(), kind="note", subject=summary_subject(session_id),
                     source="agent:compaction", metadata=metadata)
    if previous is not None and mid == previous.id:  # the same text corroborates: still move "through" on
        memory.update(mid, metadata={**previous.metadata, **metadata})
    return mid


def parse_proposals(text: str) -> list[dict[str, str]]:
    m = re.search(r"\[.*\]", text, re.S)
    if not m:
        return []
    try:
        items = json.loads(m.group(0))
    except ValueError:
        return []
    out = []
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, dict) or not isinstance(it.get("text"), str) or not it["text"].strip():
            continue
        kind = it.get("kind") if it.get("kind") in ("fact", "preference", "task") else "fact"
        subject = it.get("subject") if isinstance(it.get("subject"), str) and it["subject"].strip() else None
        out.append({"kind": kind, "subject": subject, "text": it["text"].strip()})
    return out[:10]


def extract(models: Any, memory: Any, session_id: str, turn_id: str, user_text: str, answer: str,
            model: str | None) -> list[str]:
    """Ask the fast model for memories in this exchange and store them; returns the ids saved."""
    exchange = f"user: {user_text[:8000]}\nassistant: {answer[:4000]}"
    answer_tokens, room = _room(models, model, EXTRACT_PROMPT, 600)
    exchange, _ = fit_text(exchange, room, what="exchange")
    # no temperature: reasoning models refuse any value but their default
    reply = models.chat(ChatRequest([Message("user", exchange)], system=EXTRACT_PROMPT, max_tokens=answer_tokens),
                        model)
    ids = []
    for p in parse_proposals(reply.text):
        meta = {"session_id": session_id, "turn": turn_id, "via": "extract"}
        if p["kind"] == "task":
            ids.append(memory.add_task(p["text"], subject=p["subject"]))
        else:
            ids.append(memory.add(p["text"], kind=p["kind"], subject=p["subject"], source=session_source(session_id),
                                  metadata=meta))
    return ids


def compact_session(models: Any, memory: Any, session_id: str, keep_recent: int = 4) -> str:
    """Fold a conversation, all but its last ``keep_recent`` turns, into its summary memory now
    (the faces' /compact; the loop also compacts by itself when a conversation outgrows its budget).
    The full turns stay in the store; only what the model is shown changes."""
    from copa.agent.context import summary_subject
    from copa.errors import ProviderError
    from copa.memory.model import iso

    previous = next((m for m in reversed(memory.history(summary_subject(session_id))) if m.current), None)
    through = previous.metadata.get("through") if previous else None
    turns = [t for t in memory.turns(session_id) if not through or (iso(t.occurred_at) or "") > through]
    older = turns[: max(0, len(turns) - keep_recent)]
    if not older:
        return "Nothing to compact yet."
    if compact(models, memory, session_id, older, previous, models.fast_name()) is None:
        raise ProviderError("the model returned no summary; nothing was changed", hint="try again")
    return f"{len(older)} earlier turns are now a summary; the last {len(turns) - len(older)} stay as they were."
