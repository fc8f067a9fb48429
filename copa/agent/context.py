"""Context assembly: what the model is shown for one turn, within its token budget.

Order of priority: the system prompt, the user's pinned preferences, open tasks, memories recalled
automatically for this message (never left to the model's initiative: weak models do not call tools),
a summary of older turns if the conversation was compacted, the recent turns, the tool schemas.

Everything is fitted into the model's window (``window`` tokens): room is kept for the answer and a
margin for the estimate's error; after the system prompt, the message may take up to half of the rest
(a longer one, such as a pasted log, is cut to its beginning and end, with a note for the user); the
tool schemas up to half of what remains (in order: the memory tools first; the others are left out,
with a note); preferences, tasks, recall and history share the rest. Token counts are estimates
(copa.providers.tokens), deliberately on the high side.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from copa.providers.tokens import PER_MESSAGE, estimate_large, estimate_tokens, fit_text, tool_tokens
from copa.providers.types import Message

BASE_SYSTEM = (
    "You are copa, the user's personal assistant in their terminal. Be direct and concise.\n"
    "You have a long-term memory. What it holds that is relevant now is listed below; rely on it, and "
    "prefer newer information over older. When the user tells you a durable fact, preference or task, save "
    "it with the remember tool (with a subject, so changes replace old values); use task_update for tasks "
    "and recall to search for more. Memory ids are in [brackets]."
)


MESSAGE_SHARE = 1 / 2  # of the room after the system prompt: the most the message may take
TOOL_SHARE = 1 / 2  # of the room after the message: the most the tool schemas may take
_PIPED = re.compile(r"(?s)\A(.*?<input>\n)(.*)(\n</input>)\Z")  # how `copa ask` wraps piped input


@dataclass
class Context:
    system: str
    messages: list[Message]
    memories_used: list[dict[str, Any]] = field(default_factory=list)
    overflow: list[Any] = field(default_factory=list)  # older turns that did not fit (to compact)
    summary: Any = None  # the current compaction summary memory, if any
    tokens: int = 0  # estimated prompt tokens in all
    budget: int = 0  # what preferences, tasks, recall and history could share
    timing: dict[str, float] = field(default_factory=dict)
    message: str = ""  # the user's message as the model sees it (cut to fit when too long)
    tools: list[Any] = field(default_factory=list)  # the tools whose schemas fit
    answer_tokens: int = 0  # room kept for the answer
    window: int = 0
    spent: dict[str, int] = field(default_factory=dict)  # estimated prompt tokens by part
    notes: list[str] = field(default_factory=list)  # what was cut or left out to fit, said to the user

    def report(self) -> dict[str, Any]:
        """What ``--json`` shows of the fitting."""
        return {"window": self.window, "prompt_tokens": self.tokens, "answer_tokens": self.answer_tokens,
                "spent": dict(self.spent), "notes": list(self.notes)}


def _date(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d") if dt else "?"


def _used(m: Any, section: str) -> dict[str, Any]:
    return {"id": m.id, "section": section, "kind": m.kind, "subject": m.subject, "text": m.text,
            "date": _date(m.occurred_at), **({"score": round(m.score, 3)} if hasattr(m, "score") else {})}


# Earlier conversations shown: recalled turns in rank order until EPISODE_TOKENS (or their share of a
# small window) are spent, at most MAX_EPISODES turns. ~1,500 tokens is the budget recall is measured
# with on the dev set (docs/benchmarks.md); a cap of 5 turns, before, left the prompt ~5 points of
# evidence short of it whatever the window (benchmarks/memory_recall.py --agent-window).
MAX_EPISODES = 16
EPISODE_TOKENS = 1500


def _take(lines: list[tuple[str, Any]], budget: int) -> tuple[list[str], list[Any], int]:
    """As many lines as fit in ``budget`` tokens, in order."""
    out, items, used = [], [], 0
    for text, item in lines:
        cost = estimate_tokens(text)
        if used + cost > budget:
            break
        out.append(text)
        items.append(item)
        used += cost
    return out, items, used


def _episode_lines(h: Any, shown: set[str]) -> str:
    """A recalled turn with the short turns around it (``Hit.context``): the answer to what was asked
    is often the reply next to the turn that matched, and recall is measured with them (the dev set's
    budget figure counts a hit's context turns as returned). ``shown``: turn ids already in the
    prompt (left out here; this one's are added)."""
    lines = [f"- [{_date(h.occurred_at)}] {h.role or 'user'}: {h.text[:400]}"]
    shown.add(h.id)
    for cid, text in zip(h.context_ids or [], h.context or [], strict=False):
        if cid and cid not in shown:
            lines.append(f"    (same conversation) {text[:400]}")
            shown.add(cid)
    return "\n".join(lines)


def session_source(session_id: str) -> str:
    """The ``source`` of memories the agent saved during a conversation (tools and extraction)."""
    return f"agent:session:{session_id}"


def _drop_outdated_episodes(mem: Any, episodes: list[tuple[str, Any]], facts: list[Any]) -> list[tuple[str, Any]]:
    """Leave out past turns that may contradict what is true now: the model should see "I moved to
    Lyon", not an older "I live in Paris" next to it. A past turn is dropped when (a) a fact recalled for
    this message changed after that turn, or (b) a fact saved during that turn's conversation has since
    been superseded."""
    if not episodes:
        return episodes
    changed_at = None
    for h in facts:
        if h.subject:
            chain = mem.history(h.subject)
            if len(chain) > 1 and chain[-1].valid_from and (changed_at is None or chain[-1].valid_from > changed_at):
                changed_at = chain[-1].valid_from
    if changed_at is not None:
        episodes = [(line, h) for line, h in episodes if h.occurred_at and h.occurred_at >= changed_at]
    sources = {session_source(h.session_id) for _, h in episodes if h.session_id}
    if not sources:
        return episodes
    marks = ",".join("?" * len(sources))
    rows = mem.conn.execute(f"SELECT DISTINCT source FROM memories WHERE valid_to IS NOT NULL AND source IN ({marks})",
                            tuple(sources)).fetchall()
    stale = {r[0] for r in rows}
    return [(line, h) for line, h in episodes if session_source(h.session_id or "") not in stale]


def summary_subject(session_id: str) -> str:
    return f"conversation.{session_id}.summary"


RECALL_QUERY_CHARS = 1000  # memory search cost grows with the query: a 56k-character paste took 80 s


def _recall_query(message: str) -> str:
    """What recall searches for: the question, and the beginning of any piped input."""
    m = _PIPED.match(message)
    if m:
        question = m.group(1).removesuffix("<input>\n").strip()
        return (question + "\n" + m.group(2)[:max(0, RECALL_QUERY_CHARS - len(question))])[:RECALL_QUERY_CHARS * 2]
    return message[:RECALL_QUERY_CHARS]


def recall_request(message: str, *, session_id: str, recall_limit: int, now: datetime) -> tuple[str, dict[str, Any]]:
    """The memory search ``assemble`` makes for ``message``: (query, keyword arguments), so that a
    caller can start it ahead with the very same arguments (MemoryStore.prefetch)."""
    return _recall_query(message), {"limit": recall_limit + MAX_EPISODES + 6, "exclude_session": session_id,
                                    "asked_at": now}


def _fit_tools(tools: list[Any], room: int) -> tuple[list[Any], int]:
    """The tools, in order, whose schemas fit in ``room`` tokens (the memory tools come first)."""
    kept, used = [], 0
    for t in tools:
        cost = tool_tokens(t.spec)
        if used + cost <= room:
            kept.append(t)
            used += cost
    return kept, used


def _fit_message(message: str, room: int) -> tuple[str, int, int]:
    """The message cut to ``room`` tokens: only its piped input when it has one. -> (text, tokens, cut)."""
    total = estimate_large(message)
    if total <= room:
        return message, total, 0
    m = _PIPED.match(message)
    if m:
        head = estimate_tokens(m.group(1)) + 4
        body, cut = fit_text(m.group(2), max(0, room - head), what="piped input")
        text = m.group(1) + body + m.group(3)
    else:
        text, cut = fit_text(message, room, what="message")
    return text, estimate_tokens(text), cut


def assemble(memory: Any, message: str, *, session_id: str, window: int, answer_tokens: int, tools: list[Any],
             extra_system: str = "", use_memory: bool = True, recall_limit: int = 8, recent_turns: int = 40,
             exclude_ids: set[str] | None = None, now: datetime | None = None, model_name: str = "") -> Context:
    t0 = time.perf_counter()
    now = now or datetime.now(UTC)
    exclude = set(exclude_ids or ())
    system = BASE_SYSTEM if use_memory else "You are copa, the user's assistant in their terminal. Be concise."
    if extra_system:
        system += "\n\n" + extra_system.strip()
    system += f"\n\nNow: {now.astimezone().strftime('%A %Y-%m-%d %H:%M %Z')}."
    answer = max(16, min(answer_tokens, window // 4))
    room = window - answer - max(32, window // 20)  # the margin absorbs the estimate's error
    system_tokens = estimate_tokens(system) + PER_MESSAGE
    left = room - system_tokens
    text, message_tokens, cut = _fit_message(message, max(64, int(left * MESSAGE_SHARE)) - PER_MESSAGE)
    left -= message_tokens + PER_MESSAGE
    kept_tools, tools_spent = _fit_tools(tools, int(max(0, left) * TOOL_SHARE))
    budget = max(0, left - tools_spent)
    ctx = Context(system=system, messages=[], budget=budget, message=text, tools=kept_tools, answer_tokens=answer,
                  window=window, spent={"system": system_tokens, "tools": tools_spent,
                                        "message": message_tokens + PER_MESSAGE})
    where = f"{model_name}'s {window}-token context window" if model_name else f"the {window}-token context window"
    if cut:
        what = "piped input" if _PIPED.match(message) else "message"
        ctx.notes.append(f"the {what} is about {estimate_large(message)} tokens: the model was shown its "
                         f"beginning and end (about {message_tokens} tokens) to fit {where}")
    if len(kept_tools) < len(tools):
        left_out = [t.spec.name for t in tools if t not in kept_tools]
        ctx.notes.append(f"{len(left_out)} of {len(tools)} tools were not offered, to fit {where}: "
                         + ", ".join(left_out[:8]) + ("..." if len(left_out) > 8 else ""))
    if not use_memory:
        ctx.tokens = sum(ctx.spent.values())
        ctx.timing["context_ms"] = (time.perf_counter() - t0) * 1000
        return ctx
    mem = memory
    sections: list[str] = []
    used: list[dict[str, Any]] = []
    left = budget

    prefs = [m for m in mem.preferences(limit=50) if m.id not in exclude]
    lines, items, n = _take([(f"- [{m.id}] {m.text}", m) for m in prefs], int(budget * 0.15))
    if lines:
        sections.append("Pinned preferences of the user:\n" + "\n".join(lines))
        used += [_used(m, "preferences") for m in items]
        left -= n
        ctx.spent["preferences"] = n
    tasks = mem.tasks()[:50]
    task_lines = []
    for m in tasks:
        due = f", due {m.due_at.astimezone().strftime('%Y-%m-%d %H:%M')}" if m.due_at else ""
        task_lines.append((f"- [{m.id}] {m.text} ({m.status}{due})", m))
    lines, items, n = _take(task_lines, int(budget * 0.10))
    if lines:
        sections.append("Open tasks:\n" + "\n".join(lines))
        used += [_used(m, "tasks") for m in items]
        left -= n
        ctx.spent["tasks"] = n
    t1 = time.perf_counter()
    shown = {u["id"] for u in used} | exclude
    # asked_at: "last week" in the message means the week before ``now`` (a replayed history too)
    query, search_args = recall_request(message, session_id=session_id, recall_limit=recall_limit, now=now)
    hits = mem.search(query, **search_args) if query.strip() else []
    ctx.timing["recall_ms"] = (time.perf_counter() - t1) * 1000
    facts, episodes = [], []
    turns_shown: set[str] = set()  # a turn is shown once, as a hit or as the context of one
    for h in hits:
        if h.id in shown or (h.kind == "episode" and h.session_id == session_id):
            continue
        if h.kind == "episode":
            if len(episodes) < MAX_EPISODES and h.id not in turns_shown:
                episodes.append((_episode_lines(h, turns_shown), h))
        elif len(facts) < recall_limit and not (h.subject or "").startswith(f"conversation.{session_id}."):
            subj = f" ({h.subject})" if h.subject else ""
            facts.append((f"- [{h.id}] {h.kind}{subj}, {_date(h.occurred_at)}: {h.text[:600]}", h))
    lines, items, n = _take(facts, int(budget * 0.25))
    if lines:
        sections.append("Memories relevant to this message (current values):\n" + "\n".join(lines))
        used += [_used(h, "recalled") for h in items]
        left -= n
        ctx.spent["recall"] = n
    episodes = _drop_outdated_episodes(mem, episodes, [h for _, h in facts])
    # Earlier conversations get their own share plus what the facts left of theirs.
    share = int(budget * 0.08) + max(0, int(budget * 0.25) - ctx.spent.get("recall", 0))
    lines, items, n = _take(episodes, min(EPISODE_TOKENS, share))
    if lines:
        sections.append("From earlier conversations (may be out of date; the memories above take precedence):\n"
                        + "\n".join(lines))
        used += [_used(h, "earlier_conversations") for h in items]
        left -= n
        ctx.spent["recall"] = ctx.spent.get("recall", 0) + n

    # The conversation so far: the summary of compacted turns, then as many recent turns as fit.
    summary = None
    for m in reversed(mem.history(summary_subject(session_id))):
        if m.current:
            summary = m
            break
    from copa.memory.model import iso

    through = summary.metadata.get("through") if summary else None
    turns = [t for t in mem.turns(session_id, limit=max(recent_turns * 4, 200)) if t.id not in exclude]
    if through:
        turns = [t for t in turns if (iso(t.occurred_at) or "") > through]
    if summary:
        summary_text, _ = fit_text(summary.text, max(0, left // 3), what="summary")
        text = f"Summary of the earlier part of this conversation:\n{summary_text}"
        sections.append(text)
        used.append(_used(summary, "summary"))
        left -= estimate_tokens(text)
        ctx.spent["summary"] = estimate_tokens(text)
    kept: list[tuple[Any, str]] = []
    spent = 0
    for t in reversed(turns):
        shown, cost = t.text, estimate_large(t.text) + PER_MESSAGE
        if cost > max(0, left) // 3 and not kept:  # a huge latest turn (an earlier paste): its ends only
            shown, _ = fit_text(t.text, max(0, left) // 3, what="earlier message")
            cost = estimate_tokens(shown) + PER_MESSAGE
        if len(kept) >= recent_turns or spent + cost > left:
            break
        kept.append((t, shown))
        spent += cost
    kept.reverse()
    ctx.overflow = turns[: len(turns) - len(kept)]
    ctx.summary = summary
    ctx.messages = [Message("assistant" if t.role == "assistant" else "user", shown) for t, shown in kept]
    ctx.spent["history"] = spent
    if sections:
        ctx.system = system + "\n\n" + "\n\n".join(sections)
    ctx.memories_used = used
    ctx.tokens = estimate_tokens(ctx.system) + PER_MESSAGE + spent + tools_spent + ctx.spent["message"]
    ctx.timing["context_ms"] = (time.perf_counter() - t0) * 1000
    return ctx
