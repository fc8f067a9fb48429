"""One memory, opened: its fields and the history of its subject; edit, forget (confirmed), pin as a
preference. Used by the Memory screen and by the recalled memories under each chat answer. The
dialog dismisses with what happened ("edited", "forgotten", "pinned" or None) so the opener refreshes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from copa.tui.widgets import ConfirmScreen, local_time

if TYPE_CHECKING:
    from copa.memory import Memory

KIND_CHOICES = ("preference", "fact", "task", "episode", "event", "note", "report")


def describe(m: Memory) -> str:
    rows = [f"[b]{m.kind}[/b]" + (f"  [i]{escape(m.subject)}[/i]" if m.subject else ""),
            "", escape(m.text), "",
            f"[dim]when[/dim]    {local_time(m.occurred_at)}",
            f"[dim]source[/dim]  {m.source or '-'}"]
    if m.status:
        rows.append(f"[dim]status[/dim]  {m.status}" + (f" (due {local_time(m.due_at)})" if m.due_at else ""))
    if not m.current:
        rows.append(f"[dim]valid[/dim]   until {local_time(m.valid_to)} (superseded)")
    return "\n".join(rows)


class MemoryDetailScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("e", "edit", "Edit"),
        Binding("f", "forget", "Forget"),
        Binding("p", "pin", "Pin as preference"),
    ]
    DEFAULT_CSS = """
    MemoryDetailScreen { align: center middle; }
    MemoryDetailScreen > Vertical { width: 90%; max-width: 100; height: 90%; max-height: 30;
                                    border: thick $accent; background: $surface; padding: 0 1; }
    MemoryDetailScreen #body { height: 1fr; }
    MemoryDetailScreen #history-title { margin-top: 1; color: $text-muted; }
    MemoryDetailScreen Horizontal { height: 3; align-horizontal: right; }
    MemoryDetailScreen Button { margin-left: 1; min-width: 10; }
    """

    def __init__(self, memory_id: str):
        super().__init__()
        self.memory_id = memory_id
        self.memory: Memory | None = None

    @property
    def store(self):
        return self.app.ws.memory  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll(id="body"):
                yield Static("", id="detail")
                yield Label("", id="history-title")
                yield Static("", id="history")
            with Horizontal():
                yield Button("Edit", id="edit")
                yield Button("Pin", id="pin")
                yield Button("Forget", id="forget", variant="error")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        m = self.store.get(self.memory_id)
        self.memory = m
        if m is None:
            self.query_one("#detail", Static).update("This memory no longer exists (it was forgotten).")
            return
        self.query_one("#detail", Static).update(describe(m))
        history = self.store.history(m.subject) if m.subject else []
        if len(history) > 1:
            self.query_one("#history-title", Label).update(f"History of {m.subject} (oldest first)")
            lines = []
            for h in history:
                mark = "●" if h.id == m.id else ("○" if not h.current else "◆")
                state = "current" if h.current else f"until {local_time(h.valid_to)}"
                lines.append(f"{mark} {local_time(h.valid_from)}  {escape(h.text)}  [dim]{state}[/dim]")
            self.query_one("#history", Static).update("\n".join(lines))
        self.query_one("#pin", Button).disabled = m.kind == "preference"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        action = {"edit": self.action_edit, "pin": self.action_pin, "forget": self.action_forget}.get(
            event.button.id or "")
        if action:
            action()
        else:
            self.dismiss(None)

    def action_edit(self) -> None:
        if self.memory is None:
            return

        def done(changed: bool | None) -> None:
            if changed:
                self.dismiss("edited")

        self.app.push_screen(EditMemoryScreen(self.memory), done)

    def action_pin(self) -> None:
        if self.memory is None or self.memory.kind == "preference":
            return
        self.store.update(self.memory.id, kind="preference")
        self.notify("Pinned as a preference: recalled with every conversation")
        self.dismiss("pinned")

    @work
    async def action_forget(self) -> None:
        if self.memory is None:
            return
        ok = await self.app.push_screen_wait(ConfirmScreen("Forget this memory for good?", yes="Forget",
                                                           detail=self.memory.text))
        if ok:
            self.store.forget(self.memory.id)
            self.notify("Forgotten")
            self.dismiss("forgotten")


class EditMemoryScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel"), Binding("ctrl+s", "save", "Save")]
    DEFAULT_CSS = """
    EditMemoryScreen { align: center middle; }
    EditMemoryScreen > Vertical { width: 90%; max-width: 100; height: auto; max-height: 90%;
                                  border: thick $accent; background: $surface; padding: 0 1; }
    EditMemoryScreen TextArea { height: 6; }
    EditMemoryScreen Horizontal { height: auto; }
    EditMemoryScreen #fields Select { width: 20; }
    EditMemoryScreen #fields Input { width: 1fr; }
    EditMemoryScreen #buttons { align-horizontal: right; height: 3; }
    EditMemoryScreen Button { margin-left: 1; }
    """

    def __init__(self, memory: Memory):
        super().__init__()
        self.memory = memory

    def compose(self) -> ComposeResult:
        m = self.memory
        kinds = list(KIND_CHOICES) + ([m.kind] if m.kind not in KIND_CHOICES else [])
        with Vertical():
            yield Label("Edit memory (ctrl+s saves)")
            yield TextArea(m.text, id="text", soft_wrap=True)
            with Horizontal(id="fields"):
                yield Select([(k, k) for k in kinds], value=m.kind, allow_blank=False, id="kind")
                yield Input(m.subject or "", placeholder="subject (e.g. user.home_city)", id="subject")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(False)

    def action_save(self) -> None:
        from copa.errors import CopaError

        text = self.query_one("#text", TextArea).text
        kind = self.query_one("#kind", Select).value
        subject = self.query_one("#subject", Input).value.strip() or None
        try:
            self.app.ws.memory.update(self.memory.id, text=text, kind=kind, subject=subject)  # type: ignore[attr-defined]
        except CopaError as e:
            self.notify(str(e), severity="error")
            return
        self.notify("Saved")
        self.dismiss(True)
