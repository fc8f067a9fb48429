"""The Chat screen: a conversation with the agent. ``ws.agent.run_turn`` runs in a worker thread;
its events (text deltas, tool calls, recalled memories) come back to the UI through
``call_from_thread``, so the screen stays responsive while an answer streams. A dangerous tool asks
inline (y allow, n deny, a always in this conversation) while the worker waits. A new conversation
opens on a welcome: what copa is, what it knows about the user, the model (or how to set one up)
and the keys that matter."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from copa.tui import slash
from copa.tui.base import CopaScreen
from copa.tui.chat_commands import SlashCommands
from copa.tui.chat_widgets import (
    ApprovalBar,
    AssistantMessage,
    ChatInput,
    MemoryItem,
    Note,
    RecalledMemories,
    UserMessage,
    _get,
)

FLUSH_EVERY = 0.1  # seconds between screen updates while an answer streams (10 a second: keys come first)
KEYS_THAT_MATTER = ("[b]enter[/b] send · [b]esc[/b] stop · [b]F1-F5[/b] screens · [b]ctrl+p[/b] commands · "
                    "[b]?[/b] help")


class ChatScreen(SlashCommands, CopaScreen):
    MODE = "chat"
    BINDINGS = [
        Binding("ctrl+n", "new_session", "New chat"),
        Binding("ctrl+o", "sessions", "Sessions"),
        Binding("escape", "stop", "Stop the answer (what came so far is kept)", show=False),
        Binding("ctrl+l", "focus_input", "Back to the input", show=False),
        Binding("pageup", "scroll_log(-1)", "Scroll the conversation up", show=False, priority=True),
        Binding("pagedown", "scroll_log(1)", "Scroll the conversation down", show=False, priority=True),
    ]
    HELP_KEYS = [("enter", "send"), ("ctrl+j", "new line (shift/alt+enter where the terminal sends them)"),
                 ("↑ ↓", "earlier inputs (on the first / last line; kept across restarts)"),
                 ("tab", "complete a /command (type / to see them)"),
                 ("y / n / a", "on a tool approval: allow, deny, always allow it in this conversation"),
                 ("? on an empty input", "this help")]

    def __init__(self) -> None:
        super().__init__()
        self.session_id: str | None = None
        self.model: str | None = None
        self.ready: bool | None = None  # a model is configured and the agent exists
        self.busy = False
        self.turns = 0
        self._stop = threading.Event()
        self._pending: list[str] = []  # text deltas not yet shown
        self._flushed = 0.0
        self.always_allowed: set[str] = set()  # tools the user allowed for the rest of this conversation
        self.waiting: str | None = None  # a message sent before the model check finished

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="chat-log"):
            yield Welcome()
        yield OptionList(id="completions")
        yield Label("", id="chat-status")
        yield ChatInput(id="chat-input", placeholder="Message copa (enter sends, ctrl+j new line, / commands)")

    def on_unmount(self) -> None:
        self._stop.set()  # a turn still running ends (and a pending approval is refused)

    def on_mount(self) -> None:
        self.query_one("#completions", OptionList).display = False
        box = self.query_one("#chat-input", ChatInput)
        box.inputs = list(self.app.state.history)  # type: ignore[attr-defined]
        box.focus()
        self.set_timer(0.05, self.check_model)  # after the first paint: it imports the providers

    # ---- state --------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="chat-check")
    def check_model(self) -> None:
        try:
            known = knowledge_summary(self.ws)
        except Exception as e:  # the store could not be read: the welcome says so, chat still works
            known = f"(could not read the memory store: {e})"
        self.app.call_from_thread(self._show_known, known)
        try:
            model = self.ws.agent.available_model()
        except Exception as e:  # a broken config: say it, keep the rest of the app working
            self.app.call_from_thread(self._set_ready, False, str(e))
            return
        if model is None:
            self.app.call_from_thread(self._set_ready, False, no_model_hint())
        else:
            self.app.call_from_thread(self._set_ready, True, "", model)

    def _show_known(self, known: str) -> None:
        for welcome in self.query(Welcome):
            welcome.known = known
            welcome.show()

    def _set_ready(self, ready: bool, message: str, model: str | None = None) -> None:
        self.ready = ready
        if model and not self.model:
            self.model = model
        for welcome in self.query(Welcome):
            welcome.model, welcome.problem = self.model, (message if not ready else "")
            welcome.show()
        self.update_status()
        if self.waiting is not None:
            text, self.waiting = self.waiting, None
            self.ask(text)

    def update_status(self, usage: str = "") -> None:
        parts = []
        if self.model:
            parts.append(f"model {self.model}")
        parts.append(f"{self.turns} turn{'s' if self.turns != 1 else ''}" if self.session_id else "new conversation")
        if usage:
            parts.append(usage)
        if self.busy:
            parts.append("answering… (esc stops)")
        self.query_one("#chat-status", Label).update(" " + " · ".join(parts))

    def note(self, text: str, *, error: bool = False) -> None:
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(Note(text, error=error))
        log.scroll_end(animate=False)

    def action_focus_input(self) -> None:
        self.query_one("#chat-input", ChatInput).focus()

    def action_scroll_log(self, pages: int) -> None:
        """Page keys scroll the conversation even while typing (the input is a few lines at most)."""
        log = self.query_one("#chat-log", VerticalScroll)
        log.scroll_to(y=log.scroll_y + pages * max(1, log.size.height - 2), animate=False)

    def welcome(self) -> None:
        """A new conversation starts on the welcome (with what is known so far)."""
        w = Welcome()
        w.model, w.problem = self.model, ("" if self.ready or self.ready is None else no_model_hint())
        self.query_one("#chat-log", VerticalScroll).mount(w)
        self.check_model()

    # ---- input and completion -----------------------------------------------------------------
    @on(ChatInput.Changed, "#chat-input")
    def _typed(self, event: ChatInput.Changed) -> None:
        found = slash.matches(event.text_area.text)
        menu = self.query_one("#completions", OptionList)
        menu.clear_options()
        if found:
            menu.add_options([Option(f"{c}  [dim]{escape(slash.COMMANDS[c])}[/dim]", id=c) for c in found])
        menu.display = bool(found)

    @on(ChatInput.Complete)
    def _complete(self, _event: ChatInput.Complete) -> None:
        box = self.query_one("#chat-input", ChatInput)
        box.text = slash.complete(box.text)
        box.move_cursor(box.document.end)

    def on_key(self, event) -> None:
        """↑ on the first command of the menu goes back to the input; esc closes the menu."""
        menu = self.query_one("#completions", OptionList)
        if self.focused is menu and ((event.key == "up" and not menu.highlighted) or event.key == "escape"):
            event.stop()
            if event.key == "escape":
                menu.display = False
            self.action_focus_input()

    @on(OptionList.OptionSelected, "#completions")
    def _pick(self, event: OptionList.OptionSelected) -> None:
        box = self.query_one("#chat-input", ChatInput)
        box.text = f"{event.option.id} "
        box.move_cursor(box.document.end)
        box.focus()

    @on(ChatInput.Submitted)
    def _submitted(self, event: ChatInput.Submitted) -> None:
        self.query_one("#completions", OptionList).display = False
        self.app.state.remember_input(event.text)  # type: ignore[attr-defined]
        parsed = slash.parse(event.text)
        if parsed is not None:
            self.run_command(*parsed)
            return
        self.ask(event.text)

    # ---- a turn -------------------------------------------------------------------------------
    def ask(self, text: str) -> None:
        box = self.query_one("#chat-input", ChatInput)
        if self.busy:
            box.keep(text)
            self.notify("Still answering: your message is kept in the input; press esc to stop the answer",
                        severity="warning")
            return
        if self.ready is None:  # the model check has not finished: send it when it has
            self.waiting = text
            self.notify("Checking the model; your message goes as soon as that is done", timeout=3)
            return
        if not self.ready:
            box.keep(text)  # never thrown away: it waits in the input until a model is set up
            self.note(f"Not sent: {no_model_hint()} Your message is kept in the input; after setting up a model, "
                      "press enter again (or /model NAME).", error=True)
            return
        log = self.query_one("#chat-log", VerticalScroll)
        log.anchor()
        answer = AssistantMessage()
        log.mount(UserMessage(text))
        log.mount(answer)
        self.busy = True
        self._stop.clear()
        self.update_status()
        self.run_turn(text, answer)

    def action_stop(self) -> None:
        if self.busy:
            self._stop.set()
            self.notify("Stopping…")

    @work(thread=True, exclusive=True, group="chat-turn")
    def run_turn(self, text: str, answer: AssistantMessage) -> None:
        call = self.app.call_from_thread
        result = None
        try:
            kwargs: dict[str, Any] = {"session_id": self.session_id, "model": self.model,
                                      "on_event": lambda ev: self._event_from_thread(ev, answer),
                                      "approve": lambda spec, args: self._approve_from_thread(spec, args, answer)}
            result = self.ws.agent.run_turn(text, **kwargs)
            self._flush(answer)
        except Exception as e:
            self._flush(answer)
            call(self.report_error, e)
            call(self.note, str(e), error=True)
        call(self._turn_done, answer, result)

    def _event_from_thread(self, event: Any, answer: AssistantMessage) -> None:
        """Text deltas are batched (at most ~20 UI updates a second): one round trip to the event
        loop per token would pace the stream by the UI and leave no time for keys."""
        if self._stop.is_set():
            raise KeyboardInterrupt  # the agent keeps what streamed so far and ends the turn
        if _get(event, "type", "") == "text":
            self._pending.append(_get(event, "text", ""))
            if time.monotonic() - self._flushed < FLUSH_EVERY:
                return
        self._flush(answer)
        if _get(event, "type", "") != "text":
            self.app.call_from_thread(self.on_agent_event, event, answer)

    def _flush(self, answer: AssistantMessage) -> None:
        self._flushed = time.monotonic()
        if self._pending:
            text, self._pending = "".join(self._pending), []
            self.app.call_from_thread(answer.write, text)

    async def on_agent_event(self, event: Any, answer: AssistantMessage) -> None:
        kind = _get(event, "type", "")
        data = _get(event, "data", {}) or {}
        if kind == "text":
            await answer.write(_get(event, "text", ""))
        elif kind == "tool_start":
            await answer.tool(_get(event, "id", "") or str(_get(event, "index", 0)), _get(event, "name", "tool"))
        elif kind == "tool_call":  # the provider's (data["call"]) or the agent's (name, arguments)
            call = data.get("call")
            key = _get(event, "id", "") or _get(call, "id", "")
            block = await answer.tool(key, _get(event, "name", "") or _get(call, "name", "tool"))
            block.set_arguments(data.get("arguments") or _get(call, "arguments", {}) or {})
        elif kind == "tool_result":
            block = await answer.tool(_get(event, "id", ""), _get(event, "name", "tool"))
            if not block.arguments and data.get("arguments"):
                block.set_arguments(data["arguments"])
            approval = str(data.get("approval", ""))
            denied = approval.startswith(("refused", "denied", "agent.approval = never", "needs approval"))
            block.set_result(bool(data.get("ok")), data.get("result"), data.get("error"),
                             "denied" if denied else data.get("error_type"))
        elif kind == "memories":
            answer.recalled = data.get("memories") or data.get("hits") or []
        elif kind in ("retry", "fallback"):
            self.notify(f"{kind}: {data.get('reason') or data.get('error') or ''}".strip(": "), timeout=4)

    def _approve_from_thread(self, spec: Any, arguments: dict[str, Any], answer: AssistantMessage) -> bool:
        name = _get(spec, "name", "tool")
        if name in self.always_allowed:
            return True
        decided = threading.Event()
        box: dict[str, bool] = {}

        def decide(choice: str) -> None:  # from the bar, on the UI thread
            box["allow"] = choice in ("allow", "always")
            if choice == "always":
                self.always_allowed.add(name)
            decided.set()
            self.action_focus_input()  # typing goes to the input again at once

        self.app.call_from_thread(self._ask_approval, spec, arguments, answer, decide)
        while not decided.wait(0.1):
            if self._stop.is_set():
                return False
        return box.get("allow", False)

    async def _ask_approval(self, spec: Any, arguments: dict[str, Any], answer: AssistantMessage, decide) -> None:
        name = _get(spec, "name", "tool")
        block = answer.tools.get(next((k for k, b in answer.tools.items() if b.tool_name == name
                                       and b.state == "calling"), ""), None)
        if block is not None:
            block.set_waiting()
        await answer.end_segment()
        await answer.mount(ApprovalBar(name, arguments, decide))
        self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    async def _turn_done(self, answer: AssistantMessage, result: Any) -> None:
        await answer.end_segment()
        self.busy = False
        usage = ""
        if result is not None:
            self.session_id = _get(result, "session_id", self.session_id)
            self.model = _get(result, "model", self.model) or self.model
            if not answer.text and _get(result, "text"):
                await answer.write(_get(result, "text"))
                await answer.end_segment()
            hits = _get(result, "memories_used", None) or getattr(answer, "recalled", [])
            if hits:
                await answer.mount(RecalledMemories(hits))
            usage = usage_text(result)
            if _get(result, "interrupted", False):
                answer.mount(Note("[dim](stopped)[/dim]"))
            self.turns += 1
        self.update_status(usage)
        self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    # ---- recalled memories --------------------------------------------------------------------
    @on(RecalledMemories.Open)
    def _open_memory(self, event: RecalledMemories.Open) -> None:
        item: MemoryItem = event.item

        def after(result: str | None) -> None:
            if result:
                item.mark(result)

        from copa.tui.memory_views import MemoryDetailScreen

        self.app.push_screen(MemoryDetailScreen(item.memory_id), after)


def usage_text(result: Any) -> str:
    """'19 tokens (12 in, 7 out) · $0.0004' from a TurnResult, when the numbers are known."""
    usage = _get(result, "usage")
    if usage is None:
        return ""
    tin, tout = _get(usage, "input_tokens", 0) or 0, _get(usage, "output_tokens", 0) or 0
    text = f"{tin + tout} tokens ({tin} in, {tout} out)" if (tin or tout) else ""
    cost = _get(result, "cost")
    if cost:
        text += f" · ${cost:.4f}"
    return text


def no_model_hint() -> str:
    """The line `copa ask` prints when no model is configured (its error and hint)."""
    from copa.providers import CONFIGURE_HINT

    return f"No model is configured: {CONFIGURE_HINT}."


def knowledge_summary(ws: Any) -> str:
    """'12 facts, 3 preferences, 2 open tasks, 4 notes · 5 earlier conversations' from the store's stats."""
    st = ws.memory.stats()
    by_kind = st.get("by_kind", {})
    parts = [f"{by_kind[k]} {name if by_kind[k] != 1 else name[:-1]}" for k, name in (
        ("fact", "facts"), ("preference", "preferences"), ("note", "notes"), ("event", "events"))
        if by_kind.get(k)]
    if st.get("open_tasks"):
        parts.append(f"{st['open_tasks']} open task{'s' if st['open_tasks'] != 1 else ''}")
    known = ", ".join(parts) if parts else "nothing yet: tell it about yourself, or /remember TEXT"
    if st.get("sessions"):
        known += f" · {st['sessions']} earlier conversation{'s' if st['sessions'] != 1 else ''} (ctrl+o)"
    return known


class Welcome(Static):
    """The first screen of a conversation: what copa is, what it knows, the model, the keys."""

    def __init__(self) -> None:
        super().__init__("", classes="welcome")
        self.known = "…"
        self.model: str | None = None
        self.problem = ""

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        if self.problem:
            model = f"[b $error]{escape(self.problem)}[/]\nThen restart copa, or type /model NAME."
        elif self.model:
            model = f"[b]{escape(self.model)}[/b] (/model to change)"
        else:
            model = "checking the model…"
        self.update(
            "[b]copa[/b] is your workstation in the terminal: a chat that remembers what you tell it, "
            "skills it can run, scheduled reports, and your boards.\n\n"
            f"[b]What copa knows about you:[/b] {escape(self.known)} (F2 Memory)\n"
            f"[b]Model:[/b] {model}\n\n"
            f"{KEYS_THAT_MATTER}")
