"""One agent turn, shared by every face (CLI, TUI, daemon, device bridge).

1. The user's message is stored first (a crash later loses nothing the user said).
2. The context is assembled within the model's budget (copa/agent/context.py); older turns that no
   longer fit are compacted into a summary memory.
3. The model is called with the tools; tool calls run (dangerous ones only when approved) and their
   results go back, up to ``agent.max_tool_steps`` rounds. Every call and result is logged with the turn.
4. The answer is stored with the memories it was shown; optionally the fast model proposes memories.
A broken stream or Ctrl-C keeps the partial answer, stored and returned marked ``interrupted``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from copa.agent.context import assemble, recall_request
from copa.errors import ContextOverflowError, ProviderError
from copa.providers.tokens import PER_MESSAGE, cut_to_tokens, estimate_tokens
from copa.providers.types import STOP_CANCELLED, ChatRequest, Event, Message, Reply, ToolCall, Usage
from copa.tools import Approve, ToolResult, decide

log = logging.getLogger("copa.agent")
OnEvent = Callable[[Event], None]
MAX_RESULT_CHARS = 12_000
SMALL_WINDOW = 32_768  # up to this many tokens, copa sends max_tokens = the room it kept for the answer


@dataclass
class TurnResult:
    text: str
    session_id: str
    model: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    memories_used: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    interrupted: bool = False
    timing: dict[str, float] = field(default_factory=dict)
    turn_id: str = ""
    stop_reason: str = "end"
    error: str | None = None
    cost: float = 0.0
    saved: list[str] = field(default_factory=list)  # memory ids written by tools or extraction
    context: dict[str, Any] = field(default_factory=dict)  # the window and what each part of the prompt took

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == STOP_CANCELLED

    def as_dict(self) -> dict[str, Any]:
        return {"answer": self.text, "session_id": self.session_id, "turn_id": self.turn_id, "model": self.model,
                "stop_reason": self.stop_reason, "interrupted": self.interrupted, "error": self.error,
                "tool_calls": self.tool_calls, "memories_used": self.memories_used, "usage": self.usage.as_dict(),
                "cost": self.cost, "saved": self.saved, "context": self.context,
                "timing": {k: round(v, 2) for k, v in self.timing.items()}}


def new_session_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


ToolSource = Callable[[], Iterable[Any]]


class Agent:
    """The turn loop over the parts it uses: ``models`` to answer, ``memory`` to store and recall,
    ``config`` for the agent.* keys, and ``tool_sources``: (label, callable) pairs asked for their
    tools at each turn (the skills, the paired boards), so a part added or fixed meanwhile counts.
    It owns its turn log: one connection to the database, opened at the first turn."""

    def __init__(self, models: Any, memory: Any, config: Any,
                 tool_sources: Sequence[tuple[str, ToolSource]] = ()):
        self.models, self.memory, self.config = models, memory, config
        self.tool_sources = list(tool_sources)
        self._turn_log: Any = None
        self._log_lock = threading.Lock()

    def available_model(self) -> str | None:
        """The model a turn would use now, or None when none is configured (nor found in the environment)."""
        return self.models.default_name()

    @property
    def turn_log(self) -> Any:
        with self._log_lock:
            if self._turn_log is None:
                from copa.agent.store import TurnLog

                self._turn_log = TurnLog(self.memory.path)
            return self._turn_log

    def tool_calls(self, turn_id: str) -> list[dict[str, Any]]:
        """The tool calls of one turn, in order (tool, call_id, arguments, approval, ok, result, error,
        error_type, duration_ms): what a face shows when it replays a conversation."""
        return self.turn_log.calls(turn_id)

    def close(self) -> None:
        with self._log_lock:
            if self._turn_log is not None:
                self._turn_log.close()
                self._turn_log = None

    def tools(self, *, use_memory: bool, session_id: str, turn_id: str, saved: list[str]) -> list[Any]:
        """The tools of one turn: memory tools first, then each source's; the first of a name wins."""
        from copa.agent.memtools import memory_tools

        tools: list[Any] = memory_tools(self.memory, session_id=session_id, turn_id=turn_id, saved=saved) \
            if use_memory else []
        for label, source in self.tool_sources:
            try:
                # memory_* skills duplicate the built-in memory tools without subjects (so no supersession)
                # or the approval on forget; and --no-memory must mean no memory: the agent leaves them out.
                tools += [t for t in source() if not t.spec.name.startswith("memory_")]
            except Exception as e:  # a broken skill set or an unreadable registry must not break the conversation
                log.warning("%s unavailable to the agent: %s: %s", label, type(e).__name__, e)
        seen: set[str] = set()
        out = []
        for t in tools:
            if t.spec.name in seen:
                log.warning("tool %s from %s hidden by an earlier tool of that name", t.spec.name, t.spec.source)
                continue
            seen.add(t.spec.name)
            out.append(t)
        return out

    def compact(self, session_id: str, keep_recent: int = 4) -> str:
        """Fold a conversation, all but its last ``keep_recent`` turns, into its summary now (/compact)."""
        from copa.agent.writeback import compact_session

        return compact_session(self.models, self.memory, session_id, keep_recent)

    def _search_ahead(self, message: str, *, session_id: str, now: datetime) -> None:
        """Start the memory search this turn's context will make, in a forked process (memory decides
        whether it can), so that it overlaps what the turn does before it needs the hits.

        The fork copies only this thread: no other may have started (none imports httpx meanwhile:
        measured, a fresh `copa ask` was 10-25 ms slower with one, two threads taking turns at the
        GIL with nothing to overlap)."""
        from copa.agent import ahead

        query, search_args = recall_request(message, session_id=session_id,
                                            recall_limit=self.config.get("agent.recall_limit"), now=now)
        ahead.search(self.memory, query, search_args)

    def run_turn(self, message: str, *, session_id: str | None = None, model: str | None = None,
                 system: str | None = None, use_memory: bool = True, on_event: OnEvent | None = None,
                 approve: Approve | None = None) -> TurnResult:
        """Run one turn of the conversation ``session_id`` (a new one when None); see the module doc."""
        t_start = time.perf_counter()
        cfg = self.config
        models = self.models
        memory = self.memory
        model = model or models.default_name()
        if not model:
            from copa.providers.registry import CONFIGURE_HINT

            raise ProviderError("no model is configured", hint=CONFIGURE_HINT)
        spec = models.get(model)
        session_id = session_id or new_session_id()
        now = datetime.now(UTC)
        if use_memory and cfg.get("memory.prefetch"):
            self._search_ahead(message, session_id=session_id, now=now)
        turn_id = secrets.token_hex(8)
        timing: dict[str, float] = {}
        cancelled = []  # a face cancels by raising KeyboardInterrupt from on_event (the TUI's stop key)

        def emit(event: Event) -> None:
            if on_event is not None:
                try:
                    on_event(event)
                except KeyboardInterrupt:
                    cancelled.append(True)

        t = time.perf_counter()
        user_mid = memory.add_turn(session_id, "user", message, metadata={"turn": turn_id}) if use_memory else None
        turn_log = self.turn_log  # one connection per agent, not per turn
        timing["store_ms"] = (time.perf_counter() - t) * 1000

        saved: list[str] = []
        t = time.perf_counter()
        tools = self.tools(use_memory=use_memory, session_id=session_id, turn_id=turn_id, saved=saved)
        timing["tools_load_ms"] = (time.perf_counter() - t) * 1000
        by_name = {tl.spec.name: tl for tl in tools}
        extra = "\n\n".join(s for s in (cfg.get("agent.system_prompt"), system) if s)

        def fit() -> Any:
            return assemble(memory, message, session_id=session_id, window=models.window(model)[0],
                            answer_tokens=spec.max_tokens, tools=tools, extra_system=extra, use_memory=use_memory,
                            recall_limit=cfg.get("agent.recall_limit"), recent_turns=cfg.get("agent.recent_turns"),
                            exclude_ids={user_mid} if user_mid else None, now=now, model_name=model)

        ctx = fit()
        timing.update(ctx.timing)
        if ctx.overflow:  # the conversation outgrew its budget: fold the oldest turns into a summary
            t = time.perf_counter()
            from copa.agent.writeback import compact

            try:
                if compact(models, memory, session_id, ctx.overflow, ctx.summary, models.fast_name()):
                    emit(Event("compaction", data={"turns": len(ctx.overflow)}))
                    ctx = fit()
            except ProviderError as e:
                log.warning("compaction failed, older turns left out of context: %s", e)
            timing["compaction_ms"] = (time.perf_counter() - t) * 1000
        for note in ctx.notes:  # something was cut or left out to fit the window: the face says so
            emit(Event("notice", text=note))
        if ctx.memories_used:
            emit(Event("memories", data={"memories": ctx.memories_used}))

        messages = ctx.messages + [Message("user", ctx.message)]
        specs = [tl.spec for tl in ctx.tools]
        # On small windows ask for no more than the room kept for the answer (vLLM refuses prompt +
        # max_tokens > window); on large ones leave the provider's own default.
        max_tokens = ctx.answer_tokens if ctx.window <= SMALL_WINDOW else None
        result = TurnResult(text="", session_id=session_id, model=model, turn_id=turn_id,
                            memories_used=ctx.memories_used, saved=saved,
                            context={**ctx.report(), "window_from": models.window(model)[1]})
        texts: list[str] = []
        refitted = False
        model_ms = tools_ms = 0.0
        max_steps = max(1, cfg.get("agent.max_tool_steps"))
        reply = Reply()
        error: ProviderError | None = None
        try:
            for step in range(max_steps + 2):  # max_steps rounds of tools, then one told to answer
                if cancelled:
                    raise KeyboardInterrupt
                try:
                    reply = models.chat(ChatRequest(messages, system=ctx.system, tools=specs, max_tokens=max_tokens),
                                        model, on_event=on_event)
                except ContextOverflowError as e:
                    # The server stated a smaller window than copa assumed (and the router learned it):
                    # fit the turn into it and ask once more. Later steps carry tool results: not refitted.
                    if step or refitted or not e.window or e.window >= ctx.window:
                        raise
                    refitted = True
                    ctx = fit()
                    for note in ctx.notes:
                        emit(Event("notice", text=note))
                    messages = ctx.messages + [Message("user", ctx.message)]
                    specs = [tl.spec for tl in ctx.tools]
                    max_tokens = ctx.answer_tokens if ctx.window <= SMALL_WINDOW else None
                    result.memories_used = ctx.memories_used
                    result.context = {**ctx.report(), "window_from": models.window(model)[1]}
                    reply = models.chat(ChatRequest(messages, system=ctx.system, tools=specs, max_tokens=max_tokens),
                                        model, on_event=on_event)
                model_ms += reply.duration_ms
                if reply.ttfb_ms is not None and "ttfb_ms" not in timing:
                    timing["ttfb_ms"] = reply.ttfb_ms
                result.usage.add(reply.usage)
                result.cost += models.get(reply.model).cost(reply.usage) if reply.model else 0.0
                result.model = reply.model or model
                if reply.text.strip():
                    texts.append(reply.text.strip())
                if reply.interrupted or not reply.tool_calls or step > max_steps:
                    break
                messages.append(Message("assistant", reply.text, tool_calls=reply.tool_calls))
                t = time.perf_counter()
                for call in reply.tool_calls:
                    if cancelled:
                        raise KeyboardInterrupt
                    if step >= max_steps:
                        res, how = ToolResult(False, error="tool step limit reached (agent.max_tool_steps = "
                                              f"{max_steps}); answer with what you have", error_type="limit"), "limit"
                    else:
                        res, how = _run_call(call, by_name, cfg, approve, emit)
                    turn_log.log_call(turn_id=turn_id, session_id=session_id, step=step, call_id=call.id,
                                      tool=call.name,
                                      source=by_name[call.name].spec.source if call.name in by_name else "",
                                      arguments=call.arguments, approval=how, ok=res.ok,
                                      result=res.content if res.ok else None, error=res.error,
                                      error_type=res.error_type, duration_ms=res.duration_ms)
                    entry = {"step": step, "name": call.name, "arguments": call.arguments, "ok": res.ok,
                             "approval": how, "duration_ms": round(res.duration_ms, 2),
                             **({"result": res.content} if res.ok else {"error": res.error})}
                    result.tool_calls.append(entry)
                    emit(Event("tool_result", name=call.name, id=call.id, data=entry))
                    messages.append(Message("tool", _content(res, _room(ctx, messages)), tool_call_id=call.id,
                                            name=call.name, is_error=not res.ok))
                tools_ms += (time.perf_counter() - t) * 1000
        except KeyboardInterrupt:  # Ctrl-C outside the stream (a tool, the store): keep what we have
            reply = Reply(model=result.model, interrupted=True, stop_reason=STOP_CANCELLED, error="interrupted")
        except ProviderError as e:  # nothing came back from any model
            error = e
            reply = Reply(model=result.model, interrupted=True, stop_reason="error", error=e.message)

        result.text = "\n\n".join(texts)
        result.interrupted = reply.interrupted
        result.stop_reason = reply.stop_reason
        result.error = reply.error
        t = time.perf_counter()
        answer_mid = None
        if use_memory and (result.text or not error):
            meta = {"turn": turn_id, "model": result.model, "memories_used": [m["id"] for m in ctx.memories_used],
                    "tool_calls": len(result.tool_calls)}
            if result.interrupted:
                meta.update(interrupted=True, error=result.error)
            answer_mid = memory.add_turn(session_id, "assistant", result.text or "(no answer)", metadata=meta)
        timing["model_ms"], timing["tools_ms"] = model_ms, tools_ms
        timing["total_ms"] = (time.perf_counter() - t_start) * 1000
        timing["overhead_ms"] = timing["total_ms"] - model_ms - tools_ms - timing.get("compaction_ms", 0.0)
        turn_log.log_turn(turn_id=turn_id, session_id=session_id, user_memory_id=user_mid, answer_memory_id=answer_mid,
                          model=result.model, stop_reason=result.stop_reason, interrupted=result.interrupted,
                          error=result.error, input_tokens=result.usage.input_tokens,
                          output_tokens=result.usage.output_tokens, cost=result.cost,
                          memories_used=ctx.memories_used, timing=timing)
        timing["store_ms"] += (time.perf_counter() - t) * 1000
        result.timing = timing
        if error is not None:
            raise error
        if use_memory and not result.interrupted and cfg.get("agent.extract_memories") and result.text:
            from copa.agent.writeback import extract

            t = time.perf_counter()
            try:
                result.saved += extract(models, memory, session_id, turn_id, message, result.text, models.fast_name())
            except ProviderError as e:
                log.warning("memory extraction failed: %s", e)
            timing["extract_ms"] = (time.perf_counter() - t) * 1000
        return result


def _content(result: ToolResult, room: int | None = None) -> str:
    """A tool's result as the model sees it: at most MAX_RESULT_CHARS, and at most ``room`` tokens."""
    text = json.dumps(result.as_dict(), ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"... [truncated, {len(text)} characters in all]"
    if room is not None and estimate_tokens(text) > room:
        text = cut_to_tokens(text, max(0, room - 30)) + (
            f"... [cut to fit the model's context window; {len(text)} characters in all]")
    return text


def _room(ctx: Any, messages: list[Message]) -> int:
    """Tokens one more tool result may take: half of what the window has left after the turn so far."""
    used = estimate_tokens(ctx.system) + sum(estimate_tokens(m.content) + PER_MESSAGE for m in messages)
    used += ctx.spent.get("tools", 0) + ctx.answer_tokens + max(32, ctx.window // 20)
    return max(60, (ctx.window - used) // 2)


def _run_call(call: ToolCall, by_name: dict[str, Any], cfg: Any, approve: Approve | None,
              emit: OnEvent) -> tuple[ToolResult, str]:
    emit(Event("tool_call", name=call.name, id=call.id, data={"name": call.name, "arguments": call.arguments}))
    tool = by_name.get(call.name)
    if tool is None:
        return ToolResult(False, error=f"unknown tool {call.name!r}; available: {', '.join(sorted(by_name))}",
                          error_type="unknown_tool"), "n/a"
    if call.error:
        return ToolResult(False, error=call.error, error_type="arguments"), "n/a"
    allowed, how = decide(tool.spec, call.arguments, cfg, approve)
    if not allowed:
        return ToolResult(False, error=f"not run: {how}", error_type="denied"), how
    t0 = time.perf_counter()
    try:
        res = tool.call(call.arguments)
    except Exception as e:  # a tool's bug is the model's information, not the turn's end
        log.exception("tool %s crashed", call.name)
        res = ToolResult(False, error=f"{type(e).__name__}: {e}", error_type="exception")
    if not res.duration_ms:
        res.duration_ms = (time.perf_counter() - t0) * 1000
    return res, how
