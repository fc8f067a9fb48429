"""The pieces of a conversation on screen: messages, streamed Markdown answers, tool-call blocks
that expand, the inline approve/deny bar, the recalled memories under an answer, and the input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.markup import escape
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Collapsible, Label, ListItem, ListView, Static, TextArea

from copa.termsafe import safe
from copa.tui.widgets import one_line


def markdown(text: str, classes: str) -> Any:
    from textual.widgets import Markdown

    return Markdown(text, classes=classes)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Hits and calls may arrive as objects or as dicts (JSON from the core): read either."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class UserMessage(Static):
    def __init__(self, text: str):
        super().__init__(f"[b]›[/b] {escape(text)}", classes="user-message")


class Note(Static):
    """A line from copa itself (help, errors, results of slash commands); Markdown allowed."""

    def __init__(self, text: str, *, error: bool = False):
        super().__init__(escape(text) if error else text, classes="note error" if error else "note")


class ToolBlock(Collapsible):
    """One tool call: a compact title line (name, argument preview, state); expands to show the
    arguments and the result."""

    def __init__(self, name: str, call_id: str = ""):
        self.tool_name, self.call_id = name, call_id
        self.arguments: dict[str, Any] = {}
        self.state = "calling"
        self.body = Static("", classes="tool-body")
        super().__init__(self.body, title=self._title_text(), collapsed=True, classes="tool-block")

    def _title_text(self) -> str:
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.arguments.items())
        mark = {"calling": "…", "ok": "✓", "error": "✗", "denied": "⊘", "waiting": "?"}[self.state]
        return one_line(safe(f"⚙ {self.tool_name}({args}) {mark}"), 70)

    def set_arguments(self, arguments: dict[str, Any]) -> None:
        self.arguments = dict(arguments or {})
        self.title = self._title_text()
        shown = safe(json.dumps(self.arguments, indent=2, ensure_ascii=False))
        self.body.update("[b]arguments[/b]\n" + escape(shown))

    def set_result(self, ok: bool, content: Any, error: str | None = None, error_type: str | None = None) -> None:
        self.state = "ok" if ok else ("denied" if error_type == "denied" else "error")
        self.title = self._title_text()
        shown = json.dumps(content, indent=2, ensure_ascii=False, default=str) if ok else f"{error_type}: {error}"
        shown = safe(shown)  # a skill's result is data: no escape sequence reaches the terminal
        self.body.update("[b]arguments[/b]\n" + escape(safe(json.dumps(self.arguments, indent=2, ensure_ascii=False)))
                         + "\n[b]result[/b]\n" + escape(one_line(shown, 2000) if len(shown) > 2000 else shown))

    def set_waiting(self) -> None:
        self.state = "waiting"
        self.title = self._title_text()


def call_text(arguments: dict[str, Any]) -> str:
    """The whole call, as it will run: a command-like string argument shown raw, else indented JSON."""
    if len(arguments) == 1 and isinstance(next(iter(arguments.values())), str):
        key, value = next(iter(arguments.items()))
        return f"{key}: {value}"
    return json.dumps(arguments, indent=2, ensure_ascii=False)


class ApprovalBar(Vertical):
    """Inline: 'Allow <tool>?' with the whole call (wrapped; scrollable when long) and y allow, n deny,
    a always (for the rest of this conversation). ``decide("allow"|"deny"|"always")`` is called once."""

    BINDINGS = [Binding("y", "decide('allow')", "Allow"), Binding("n", "decide('deny')", "Deny"),
                Binding("a", "decide('always')", "Always allow")]

    def __init__(self, name: str, arguments: dict[str, Any], decide: Callable[[str], None]):
        super().__init__(classes="approval")
        self.tool_name, self.arguments, self._decide = name, arguments, decide
        self.decided: str | None = None

    def compose(self) -> ComposeResult:
        from rich.text import Text

        yield Label(f"Allow [b]{escape(self.tool_name)}[/b] to run with:", classes="approval-question")
        with VerticalScroll(classes="approval-call"):
            yield Static(Text(call_text(self.arguments), overflow="fold"))
        with Horizontal(classes="approval-buttons"):
            yield Button("Allow (y)", id="allow", variant="warning", compact=True)
            yield Button("Deny (n)", id="deny", variant="primary", compact=True)
            yield Button("Always in this chat (a)", id="always", compact=True)

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_decide(event.button.id or "deny")

    def action_decide(self, choice: str) -> None:
        if self.decided is not None:
            return
        self.decided = choice
        self.remove()
        self._decide(choice)


class MemoryItem(ListItem):
    def __init__(self, hit: Any):
        self.memory_id = str(_get(hit, "id", ""))
        self.text = safe(str(_get(hit, "text", "")))
        kind = safe(_get(hit, "kind", "") or "")
        self.label = Label(f"[dim]{escape(kind)}[/dim] {escape(one_line(self.text, 64))}")
        super().__init__(self.label)

    def mark(self, what: str) -> None:
        if what == "forgotten":
            self.label.update(f"[strike dim]{escape(one_line(self.text, 56))}[/] (forgotten)")
            self.disabled = True
        elif what in ("edited", "pinned"):
            self.label.update(f"{escape(one_line(self.text, 56))} [dim]({what})[/dim]")


class RecalledMemories(Collapsible):
    """The memories recalled for an answer; select one to open it (edit, forget, pin)."""

    class Open(Message):
        def __init__(self, item: MemoryItem):
            super().__init__()
            self.item = item

    def __init__(self, hits: list[Any]):
        self.hits = list(hits)
        n = len(self.hits)
        title = f"{n} memor{'y' if n == 1 else 'ies'} recalled"
        super().__init__(ListView(*[MemoryItem(h) for h in self.hits], classes="recalled-list"),
                         title=title, collapsed=False, classes="recalled")

    @on(ListView.Selected)
    def _selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, MemoryItem) and not event.item.disabled:
            self.post_message(self.Open(event.item))


class AssistantMessage(Vertical):
    """An answer as it streams: Markdown segments interleaved with tool blocks, then the recalled
    memories and the usage line."""

    def __init__(self) -> None:
        super().__init__(classes="assistant-message")
        self.current: Any = None  # the Markdown segment being streamed into
        self.stream = None
        self.text = ""
        self.tools: dict[str, ToolBlock] = {}

    async def write(self, delta: str) -> None:
        if self.current is None:
            from textual.widgets import Markdown  # markdown-it is imported with the first answer, not at start

            self.current = Markdown(classes="answer")
            await self.mount(self.current)
            self.stream = Markdown.get_stream(self.current)
        delta = safe(delta)  # a model's answer is data: shown, never obeyed by the terminal
        self.text += delta
        await self.stream.write(delta)

    async def end_segment(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
        self.current, self.stream = None, None

    async def tool(self, key: str, name: str) -> ToolBlock:
        if key not in self.tools:
            await self.end_segment()
            block = ToolBlock(name, key)
            self.tools[key] = block
            await self.mount(block)
        return self.tools[key]


class ChatInput(TextArea):
    """Enter sends; ctrl+j (or shift/alt+enter where the terminal sends them) starts a new line;
    up/down on the first/last line walk through earlier inputs; tab completes a slash command."""

    class Submitted(Message):
        def __init__(self, text: str):
            super().__init__()
            self.text = text

    class Complete(Message):
        pass

    def __init__(self, **kwargs: Any):
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", compact=True, **kwargs)
        self.inputs: list[str] = []
        self._pos: int | None = None  # index into history while walking it

    def keep(self, text: str) -> None:
        """A message that could not be sent goes back into the input (unless something new was typed)."""
        if not self.text.strip():
            self._show(text)

    async def _on_key(self, event: events.Key) -> None:
        if event.character == "?" and not self.text:  # "? for help" on an empty input, as in many REPLs
            event.stop()
            event.prevent_default()
            self.app.action_help()  # type: ignore[attr-defined]
            return
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text.strip()
            if text:
                if not self.inputs or self.inputs[-1] != text:
                    self.inputs.append(text)
                self._pos = None
                self.clear()
                self.post_message(self.Submitted(text))
            return
        if event.key in ("ctrl+j", "shift+enter", "alt+enter"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key == "tab" and self.text.startswith("/"):
            event.stop()
            event.prevent_default()
            self.post_message(self.Complete())
            return
        row = self.cursor_location[0]
        menu = self.screen.query("#completions")
        if event.key == "down" and menu and menu.first().display:  # into the command menu, as into results
            event.stop()
            event.prevent_default()
            menu.first().focus()
            return
        if event.key == "up" and row == 0 and self.inputs:
            event.stop()
            event.prevent_default()
            self._pos = len(self.inputs) - 1 if self._pos is None else max(0, self._pos - 1)
            self._show(self.inputs[self._pos])
            return
        if event.key == "down" and self._pos is not None and row == self.document.line_count - 1:
            event.stop()
            event.prevent_default()
            self._pos += 1
            if self._pos >= len(self.inputs):
                self._pos = None
                self._show("")
            else:
                self._show(self.inputs[self._pos])
            return
        await super()._on_key(event)

    def _show(self, text: str) -> None:
        self.text = text
        self.move_cursor(self.document.end)
