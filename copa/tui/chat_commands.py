"""What the chat's slash commands do. Each is a call into the core (ws.memory, ws.config, the agent)
or a switch to another screen; the results are shown as notes in the conversation."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from copa.tui import slash
from copa.tui.chat_widgets import ToolBlock, UserMessage, markdown
from copa.tui.widgets import ConfirmScreen, local_time, one_line


class SessionsScreen(ModalScreen[str | None]):
    """Earlier conversations, newest first; enter resumes one."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]
    DEFAULT_CSS = """
    SessionsScreen { align: center middle; }
    SessionsScreen > Vertical { width: 90%; max-width: 100; height: 80%; border: thick $accent;
                                background: $surface; }
    SessionsScreen OptionList { height: 1fr; }
    """

    def __init__(self, sessions: list[Any]):
        super().__init__()
        self.sessions = sessions

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(" Resume a conversation (enter), esc closes")
            options = [Option(f"{local_time(s.last_at)}  {escape(one_line(s.title or '(untitled)', 50))} "
                              f"[dim]{s.turns} messages[/dim]", id=s.id) for s in self.sessions]
            yield OptionList(*options, id="session-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class SlashCommands:
    """Mixed into ChatScreen (which provides ws, note(), session_id, model, update_status)."""

    def run_command(self, word: str, args: str) -> None:
        handler = getattr(self, "cmd_" + word.lstrip("/"), None)
        if word not in slash.COMMANDS or handler is None:
            self.note(f"unknown command {word}; /help lists them", error=True)
            return
        try:
            handler(args)
        except Exception as e:
            self.report_error(e)

    def cmd_help(self, args: str) -> None:
        self.query_one("#chat-log").mount(markdown(slash.help_markdown(), "note"))

    def cmd_skills(self, args: str) -> None:
        self.app.switch_mode("skills")

    def cmd_schedule(self, args: str) -> None:
        self.app.switch_mode("schedules")

    def cmd_device(self, args: str) -> None:
        self.app.switch_mode("devices")

    def cmd_model(self, args: str) -> None:
        if args:
            self.ws.models.get(args)  # raises a CopaError with the choices when unknown
            self.model = args
            self.ready = True
            self.note(f"Using model [b]{escape(args)}[/b] for this conversation.")
            self.update_status()
            return
        names = sorted(self.ws.config.table("models"))
        current = self.model or "(none)"
        listed = ", ".join(f"[b]{escape(n)}[/b]" for n in names) if names else "none in the config"
        self.note(f"Model: [b]{escape(current)}[/b]. Configured: {listed}. Use /model NAME "
                  "(a configured name or provider:model).")

    def cmd_new(self, args: str) -> None:
        self.action_new_session()

    def action_new_session(self) -> None:
        self.session_id = None
        self.turns = 0
        self.always_allowed.clear()
        log = self.query_one("#chat-log")
        log.remove_children()
        self.welcome()
        self.update_status()
        self.action_focus_input()

    def cmd_sessions(self, args: str) -> None:
        self.action_sessions()

    def action_sessions(self) -> None:
        sessions = self.ws.memory.sessions(limit=50)
        if not sessions:
            self.note("No earlier conversations yet.")
            return
        self.app.push_screen(SessionsScreen(sessions), self.resume)

    def resume(self, session_id: str | None) -> None:
        if not session_id:
            self.action_focus_input()
            return
        self.session_id = session_id
        self.always_allowed.clear()
        log = self.query_one("#chat-log")
        log.remove_children()
        turns = self.ws.memory.turns(session_id, limit=40)
        self.turns = sum(1 for t in turns if t.role == "user")
        for t in turns:
            if t.role == "user":
                log.mount(UserMessage(t.text))
            elif t.role == "assistant":
                turn_id = (t.metadata or {}).get("turn")
                calls = self.ws.agent.tool_calls(turn_id) if turn_id and (t.metadata or {}).get("tool_calls") else []
                for c in calls:  # the compact tool-call lines, as they were shown live
                    block = ToolBlock(c["tool"], c["call_id"])
                    log.mount(block)
                    block.set_arguments(c["arguments"] or {})
                    block.set_result(c["ok"], c["result"], c["error"],
                                     "denied" if str(c.get("approval", "")).startswith(("refused", "denied"))
                                     else c["error_type"])
                log.mount(markdown(t.text, "answer assistant-message"))
        self.note(f"Resumed a conversation of {self.turns} turn{'s' if self.turns != 1 else ''}; "
                  "new messages continue it.")
        self.update_status()
        self.action_focus_input()

    def cmd_remember(self, args: str) -> None:
        if not args:
            self.note("/remember needs the text to remember, e.g. /remember I prefer tea", error=True)
            return
        self.ws.memory.add(args, kind="note", source="tui")
        self.note(f"Remembered: {escape(one_line(args, 70))}")

    @work
    async def cmd_forget(self, args: str) -> None:
        if not args:
            self.note("/forget needs a memory id or words that find it", error=True)
            return
        store = self.ws.memory
        memory = None
        try:
            memory = store.get(store.resolve(args))
        except Exception:
            hits = store.search(args, limit=1)
            memory = store.get(hits[0].id) if hits else None
        if memory is None:
            self.note(f"No memory matches {escape(args)}", error=True)
            return
        if await self.app.push_screen_wait(ConfirmScreen("Forget this memory for good?", yes="Forget",
                                                         detail=memory.text)):
            store.forget(memory.id)
            self.note(f"Forgotten: {escape(one_line(memory.text, 70))}")

    def cmd_tasks(self, args: str) -> None:
        tasks = self.ws.memory.tasks()
        if not tasks:
            self.note("No open tasks.")
            return
        lines = [f"- {escape(one_line(t.text, 70))}" + (f" (due {local_time(t.due_at)})" if t.due_at else "")
                 for t in tasks[:20]]
        self.query_one("#chat-log").mount(markdown("**Open tasks**\n\n" + "\n".join(lines), "note"))

    def cmd_compact(self, args: str) -> None:
        if not self.session_id:
            self.note("Nothing to compact yet.")
            return
        self._compact()

    @work(thread=True, group="chat-compact")
    def _compact(self) -> None:
        try:
            result = self.ws.agent.compact(self.session_id)
        except Exception as e:
            self.app.call_from_thread(self.report_error, e)
            return
        self.app.call_from_thread(self.note, f"Compacted the conversation. {escape(str(result or ''))}")

