"""The Memory screen: search as you type (in a worker thread, so typing never waits for SQLite);
knowledge (facts, preferences, tasks, notes, events) apart from conversation turns, with a toggle;
filters by kind, subject (exact, or a prefix such as "user."), source and time; "as of" a date and
"show replaced" as `copa memory search --as-of/--all`; a detail view with the subject's history, edit,
forget (confirmed) and pin as preference. Every read and write is a ``ws.memory`` call.

Keys never surprise someone typing: the list's single-letter keys (e, f, p, v) live on the list, not
the screen, so they cannot fire from a text field; ↓ from the search goes into the results and ↑ on
the first result goes back; any other letter typed on the list goes to the search box."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Checkbox, DataTable, Input, Label, Select
from textual.worker import get_current_worker

from copa.termsafe import safe
from copa.tui.base import CopaScreen
from copa.tui.memory_views import KIND_CHOICES, MemoryDetailScreen
from copa.tui.widgets import local_time

TIME_CHOICES = [("any time", ""), ("last day", "1d"), ("last week", "7d"), ("last month", "30d"),
                ("last year", "365d")]
KNOWLEDGE = ("preference", "fact", "task", "note", "event")
VIEWS = {"knowledge": list(KNOWLEDGE), "conversation": ["episode"], "everything": None}
VIEW_CHOICES = [("knowledge", "knowledge"), ("conversation", "conversation"), ("everything", "everything")]
LIMIT = 50  # rows shown: more than a screen holds, few enough to redraw at once
TEXT_LINES = 3  # a long memory wraps to this many lines in the list; the detail view has all of it


@dataclass(frozen=True)
class Query:
    text: str = ""
    kind: str = ""
    subject: str = ""
    source: str = ""
    since: str = ""
    view: str = "knowledge"
    as_of: str = ""
    replaced: bool = False


@dataclass
class Row:
    id: str
    kind: str
    subject: str
    text: str
    when: str
    current: bool = True


def subject_matches(subject: str | None, wanted: str) -> bool:
    """Exact ("user.home_city"), or a prefix when it ends with "." or "*" ("user." is every user.*)."""
    subject, wanted = (subject or "").lower(), wanted.strip().lower()
    if wanted.endswith((".", "*")):
        return subject.startswith(wanted.rstrip("*"))
    return subject == wanted


def valid_at(m: Any, t: datetime) -> bool:
    start = m.valid_from or m.occurred_at
    return (start is None or start <= t) and (m.valid_to is None or m.valid_to > t)


class MemoryTable(DataTable):
    """The results. Its keys act on the selected memory; they are bound here, so they only fire while
    the list has focus."""

    BINDINGS = [
        Binding("e", "screen.edit", "Edit"),
        Binding("f", "screen.forget", "Forget"),
        Binding("p", "screen.pin", "Pin"),
        Binding("v", "screen.cycle_view", "View"),
    ]

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "up" and self.cursor_row <= 0:
            event.stop()
            event.prevent_default()
            self.screen.action_focus_search()  # type: ignore[attr-defined]
            return
        bound = {b.key for b in self.BINDINGS} | {"question_mark", "slash", "space"}
        if event.character and event.character.isprintable() and event.key not in bound and len(event.key) == 1:
            event.stop()  # typed while on the list: the user meant to search
            event.prevent_default()
            search = self.screen.query_one("#search", Input)
            search.focus()
            search.insert_text_at_cursor(event.character)
            return
        await super()._on_key(event)


class SearchBox(Input):
    """↓ goes into the results; enter opens the highlighted result."""

    BINDINGS = [Binding("down", "screen.focus_results", "Results", show=False)]


class MemoryScreen(CopaScreen):
    MODE = "memory"
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
    ]
    HELP_KEYS = [("e / f / p", "on the list: edit, forget, pin as a preference"),
                 ("v", "on the list: knowledge, conversation, everything"),
                 ("↓ (in the search)", "into the results; ↑ on the first result goes back"),
                 ("enter", "open the memory (from the search: the highlighted one)"),
                 ("a letter on the list", "goes to the search box (so typing never edits a memory)"),
                 ("subject filter", "exact (user.home_city) or a prefix ending in '.' (user.)"),
                 ("as of", "what was true then: YYYY-MM-DD, or 30d / 2w ago"),
                 ("replaced", "also values that a newer one replaced (as --all in the CLI)")]

    class Results(Message):
        def __init__(self, query: Query, rows: list[Row], total: int, ms: float):
            super().__init__()
            self.query, self.rows, self.total, self.ms = query, rows, total, ms

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="search-row"):
            yield SearchBox(placeholder="search memories (↓ results, enter opens)", id="search", compact=True,
                            select_on_focus=False)  # a letter typed on the list must add to it, not replace it
            yield Select(VIEW_CHOICES, value="knowledge", allow_blank=False, id="view", compact=True)
        with Horizontal(id="filters"):
            yield Select([(k, k) for k in KIND_CHOICES], prompt="any kind", id="kind", compact=True)
            yield Input(placeholder="subject (user.)", id="subject", compact=True)
            yield Input(placeholder="source", id="source", compact=True)
            yield Select(TIME_CHOICES, value="", allow_blank=False, id="since", compact=True)
            yield Input(placeholder="as of", id="as-of", compact=True)
            yield Checkbox("replaced", id="replaced", compact=True)
        table = MemoryTable(id="memories", cursor_type="row", zebra_stripes=True)
        table.add_column("kind", width=10, key="kind")
        table.add_column("subject", width=16, key="subject")
        table.add_column("memory", width=30, key="text")
        table.add_column("when", width=16, key="when")
        yield table
        yield Label("", id="memory-status")

    def column_widths(self) -> tuple[int, int, int]:
        """(subject, memory, when): at 80 columns the time is a date and the subject narrower, so the
        memory keeps ~40 characters; wider, it takes the rest."""
        narrow = self.size.width < 100
        subject, when = (12, 10) if narrow else (16, 16)
        return subject, max(20, self.size.width - 10 - subject - when - 8 - 2), when

    def on_resize(self, _event: object = None) -> None:
        table = self.query_one("#memories", DataTable)
        subject, text, when = self.column_widths()
        changed = False
        for key, width in (("subject", subject), ("text", text), ("when", when)):
            column = table.columns.get(key)
            if column is not None and column.width != width:
                column.width = width
                changed = True
        if changed and getattr(self, "_last", None) is not None:
            self._fill(self._last)

    def on_mount(self) -> None:
        self.last_ms = 0.0
        self.searches = 0
        self._last: MemoryScreen.Results | None = None
        self.query_one("#search", Input).focus()
        self.refresh_results()

    def on_screen_resume(self) -> None:
        if self.searches:
            self.refresh_results()

    # ---- searching ------------------------------------------------------------------------------
    def current_query(self) -> Query:
        kind = self.query_one("#kind", Select).value
        return Query(text=self.query_one("#search", Input).value.strip(),
                     kind=kind if isinstance(kind, str) else "",
                     subject=self.query_one("#subject", Input).value.strip(),
                     source=self.query_one("#source", Input).value.strip(),
                     since=str(self.query_one("#since", Select).value or ""),
                     view=str(self.query_one("#view", Select).value or "knowledge"),
                     as_of=self.query_one("#as-of", Input).value.strip(),
                     replaced=self.query_one("#replaced", Checkbox).value)

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def refresh_results(self, _event: object = None) -> None:
        self.search(self.current_query())

    def action_refresh(self) -> None:
        self.refresh_results()

    def action_cycle_view(self) -> None:
        view = self.query_one("#view", Select)
        names = [v for _, v in VIEW_CHOICES]
        view.value = names[(names.index(str(view.value)) + 1) % len(names)]
        self.notify(f"showing {view.value}", timeout=2)

    @work(thread=True, exclusive=True, group="memory-search")
    def search(self, q: Query) -> None:
        try:
            self._search(q)
        except Exception as e:  # a bad filter is the user's to fix; the screen stays up
            self.app.call_from_thread(self.report_error, e)

    def _search(self, q: Query) -> None:
        from copa.memory import to_utc

        t0 = time.perf_counter()
        store = self.ws.memory
        kinds = [q.kind] if q.kind else VIEWS.get(q.view)
        as_of = to_utc(q.as_of, field_name="as of") if q.as_of else None
        since = to_utc(q.since) if q.since else None
        filtered = bool(q.subject or q.source or q.since)
        if q.text:
            found: list[Any] = store.search(q.text, limit=LIMIT * (3 if filtered else 1), kinds=kinds,
                                            as_of=as_of, include_superseded=q.replaced)
        else:
            found = store.list(kinds=kinds, since=since, until=as_of, subject=q.subject or None,
                               include_superseded=q.replaced or as_of is not None,
                               limit=LIMIT * (5 if (q.source or as_of) else 1))
            if as_of is not None and not q.replaced:
                found = [m for m in found if valid_at(m, as_of)]
        rows = []
        for m in found:
            if q.subject and not subject_matches(m.subject, q.subject):
                continue
            if q.source and q.source.lower() not in (m.source or "").lower():
                continue
            if since and m.occurred_at and m.occurred_at < since:
                continue
            rows.append(Row(m.id, m.kind, safe(m.subject or ""), safe(m.text), local_time(m.occurred_at),
                            bool(m.current)))
            if len(rows) >= LIMIT:
                break
        total = store.stats()["memories"] if not self.searches else getattr(self, "_total", 0)
        if get_current_worker().is_cancelled:
            return
        self.post_message(self.Results(q, rows, total, (time.perf_counter() - t0) * 1000))

    def on_memory_screen_results(self, msg: Results) -> None:
        self.searches += 1
        self._total = msg.total
        self.last_ms = msg.ms
        self._last = msg
        self._fill(msg)

    def _fill(self, msg: Results) -> None:
        table = self.query_one("#memories", DataTable)
        subject_w, text_w, when_w = self.column_widths()
        console = self.app.console
        table.clear()
        for r in msg.rows:
            text = Text(" ".join(r.text.split()), style="" if r.current else "dim strike")
            lines = text.wrap(console, text_w)
            if len(lines) > TEXT_LINES:
                text = Text("\n").join(list(lines)[:TEXT_LINES])
                text.append("…")
            subject = Text(r.subject, overflow="fold")
            when = r.when[:when_w] + ("" if r.current else "\nreplaced")
            height = max(min(len(lines), TEXT_LINES), len(subject.wrap(console, subject_w)), 1 if r.current else 2)
            table.add_row(r.kind, subject, text, when, key=r.id, height=height)
        q = msg.query
        what = "matching" if q.text else "newest"
        scope = q.kind or q.view
        extra = (f" · as of {q.as_of}" if q.as_of else "") + (" · with replaced" if q.replaced else "")
        self.query_one("#memory-status", Label).update(
            f" {len(msg.rows)} {what} ({scope}){extra} · {msg.total} in all · v switches knowledge/conversation")

    # ---- acting on the selected memory --------------------------------------------------------
    def selected_id(self) -> str | None:
        table = self.query_one("#memories", DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_results(self) -> None:
        table = self.query_one("#memories", DataTable)
        if table.row_count:
            table.focus()

    @on(DataTable.RowSelected)
    def action_open(self, _event: object = None) -> None:
        mid = self.selected_id()
        if mid:
            self.app.push_screen(MemoryDetailScreen(mid), self._after)

    def _open_then(self, action: str) -> None:
        mid = self.selected_id()
        if mid:
            screen = MemoryDetailScreen(mid)
            self.app.push_screen(screen, self._after)
            self.call_after_refresh(screen.run_action, action)

    def action_edit(self) -> None:
        self._open_then("edit")

    def action_forget(self) -> None:
        self._open_then("forget")

    def action_pin(self) -> None:
        self._open_then("pin")

    def _after(self, result: str | None) -> None:
        if result:
            self._total = self.ws.memory.stats()["memories"]
            self.refresh_results()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        """Enter in the search opens the highlighted result (the first, unless the user moved)."""
        if self.selected_id():
            self.action_open()
